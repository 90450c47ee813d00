"""The Sirekap scraper against a local server in the API's shape, with faults; never the internet."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analysis.cli import main
from analysis.sources.sirekap import endpoints as ep
from analysis.sources.sirekap.parse import read_snapshot, read_tps_bodies, with_dapil_check
from analysis.sources.sirekap.scrape import ScrapeConfig, retry_after_seconds, scrape_async
from analysis.sources.sirekap.store import BLOBS, read_manifest
from analysis.sources.sirekap.testserver import FAULTS, PARTIES, TreeServer, dpd_tree, legislative_tree, tree_from_election
from analysis.synth import make_election

EXAMPLES = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sirekap" / "examples"
REPO = Path(__file__).resolve().parents[1]
FAST = dict(rate=1000.0, concurrency=4, timeout=0.25, backoff=0.002, max_backoff=0.02, progress=False)
VOTES = ["01", "02", "03", "registered", "voters", "valid", "invalid", "dpt"]


@pytest.fixture(scope="module")
def election():
    return make_election(scale=0.0002, min_tps=25, provinces_only=["31", "11"], seed=5).election


@pytest.fixture(scope="module")
def tree(election):
    return tree_from_election(election, unpublished=0.06, seed=3, official=True)


def run(config, sleeps=None):
    """scrape_async with a sleep that records the delays asked for and waits a token time instead."""
    async def sleep(delay):
        if sleeps is not None:
            sleeps.append(delay)
        await asyncio.sleep(min(delay, 0.002))
    return asyncio.run(scrape_async(config, sleep=sleep))


def stored_tree(snapshot: Path) -> dict[str, bytes]:
    return {p: (snapshot / r["file"]).read_bytes() for p, r in read_manifest(snapshot).items() if r["outcome"] == "ok"}


def walked(tree: dict[str, bytes], official: bool) -> dict[str, bytes]:
    return {p: b for p, b in tree.items() if official or not p.startswith("pemilu/hr/")}


# ----------------------------------------------------------------------------- endpoints

def test_paths_nest_codes_and_refuse_anything_but_digits():
    assert ep.hhcw_path("ppwp", "3101011001001") == "pemilu/hhcw/ppwp/31/3101/310101/3101011001/3101011001001.json"
    assert ep.wilayah_path("0") == "wilayah/pemilu/ppwp/0.json" and ep.hhcw_path("pdpr", "0") == "pemilu/hhcw/pdpr.json"
    assert ep.hr_path("ppwp", "3101") == "pemilu/hr/ppwp/31/3101.json"
    assert ep.classify("pemilu/hhcw/pdprdp/33/3302/330214/3302142011/3302142011001.json") == ("tps", "pdprdp", "3302142011001")
    for bad in ("../31", "3a", 31, "123", "31010110010011", "", None, "31/01"):
        with pytest.raises(ep.CodeError):
            ep.hhcw_path("ppwp", bad)
    assert ep.is_child("0", "31") and ep.is_child("3101011001", "3101011001901")
    assert not ep.is_child("31", "3201") and not ep.is_child("31", "310101") and not ep.is_child("31", "../x")
    assert not any(ep.is_child(parent, child) for parent, child in [
        ("0", "0"), ("0", "3"), ("31", "31\uff101"), ("0", "\u0663\u0661"), ("310", "3101"), ("31", 3101), (None, "31"),
        ("3101011001001", "31010110010011"), ("3a", "3a01")])
    with pytest.raises(ValueError):
        ep.hhcw_path("pilkada", "31")


CODES = st.one_of(st.sampled_from(["0", "31", "3101", "310101", "3101011001", "3101011001001", "3a", "310", "", "\u0663\u0661"]),
                  st.text("0123456789\u0663/", max_size=14))


@settings(max_examples=300, deadline=None)
@given(CODES, st.one_of(st.none(), st.just("x"), st.lists(st.one_of(
    st.none(), st.just([1]), st.fixed_dictionaries({"kode": st.one_of(CODES, st.integers(0, 99), st.none())},
                                                    optional={"nama": st.one_of(st.text(max_size=3), st.none(), st.integers())})),
    max_size=6)))
def test_children_of_a_region_list_are_the_items_is_child_takes(parent, items):
    expected = [(item["kode"], item.get("nama")) for item in items or () if isinstance(item, dict) and ep.is_child(parent, item.get("kode"))]
    assert ep.children(parent, items) == (expected if isinstance(items, list) else [])


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=16))
def test_any_text_is_refused_or_becomes_a_path_of_digits(text):
    try:
        path = ep.hhcw_path("ppwp", text)
    except ep.CodeError:
        return
    assert set(path.removeprefix("pemilu/hhcw/ppwp").removesuffix(".json")) <= set("0123456789/")


SEGMENT = st.one_of(st.from_regex(r"[0-9]{1,14}", fullmatch=True), st.sampled_from(["", "x", "\u0663\u0661", "31\n", ".."]))


@st.composite
def api_paths(draw):
    """TPS body paths of every ballot, some changed a little, and other paths."""
    ballot = draw(st.sampled_from(list(ep.BALLOTS)))
    if draw(st.booleans()):
        path = ep.hhcw_path(ballot, draw(st.from_regex(r"[0-9]{13}", fullmatch=True)))
        cut = draw(st.sampled_from(["", "prefix", "segment", "suffix", "ballot"]))
        if cut == "prefix":
            path = draw(st.sampled_from(["/", "x", "pemilu/hr/"])) + path
        elif cut == "segment":
            parts = path.split("/")
            parts[draw(st.integers(3, len(parts) - 1))] = draw(SEGMENT) + (".json" if draw(st.booleans()) else "")
            path = "/".join(parts)
        elif cut == "suffix":
            path += draw(st.sampled_from(["\n", "x", "/", ".json"]))
        elif cut == "ballot":
            path = path.replace(ballot, draw(st.sampled_from(["Pdpr", "pdpr2", "ppwp", "pdpd"])), 1)
        return path
    prefix = draw(st.sampled_from(["pemilu/hhcw/", "wilayah/pemilu/", ""]))
    return prefix + "/".join([ballot, *draw(st.lists(SEGMENT, max_size=6))]) + draw(st.sampled_from([".json", ".json\n", ""]))


@settings(max_examples=400, deadline=None)
@given(api_paths(), st.sampled_from(list(ep.BALLOTS)))
def test_the_tps_body_pattern_of_a_ballot_takes_what_classify_calls_its_tps_bodies(path, asked):
    match = ep.tps_body_pattern(asked).match(path)
    kind, found, code = ep.classify(path)
    assert (match is not None) == (kind == "tps" and found == asked)
    assert match is None or match["code"] == code


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_seconds("7") == 7
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_the_pacer_spaces_requests_and_a_retry_after_holds_every_worker():
    from analysis.sources.sirekap.scrape import _Pacer

    async def go():
        pacer = _Pacer(rate=50)
        started = time.monotonic()
        await asyncio.gather(*(pacer.wait() for _ in range(6)))
        spaced = time.monotonic() - started
        pacer.hold(0.3)
        started = time.monotonic()
        await pacer.wait()
        return spaced, time.monotonic() - started

    spaced, held = asyncio.run(go())
    assert spaced >= 5 / 50 * 0.9 and held >= 0.29


def test_config_refuses_plain_http_to_another_host_and_bad_values():
    with pytest.raises(ValueError, match="loopback"):
        ScrapeConfig(ballot="ppwp", base_url="http://sirekap-obj-data.kpu.go.id")
    for bad in ({"region": "../1"}, {"level": "kecamatan"}, {"rate": 0}, {"concurrency": 0}, {"ballot": "pilkada"}):
        with pytest.raises(ValueError):
            ScrapeConfig(**{"ballot": "ppwp", **bad})


# ----------------------------------------------------------------------------- scraping with faults

@pytest.fixture(scope="module")
def faulty_scrape(tree, tmp_path_factory):
    """One scrape of the whole tree through every kind of fault (about a third of the files hit)."""
    out = tmp_path_factory.mktemp("store")
    target = "pemilu/hhcw/ppwp/31.json"
    sleeps: list[float] = []
    with TreeServer(tree, fault_rate=0.35, seed=11, slow=0.6, retry_after="7",
                    faults={target: ["429", "503", "cut"]}) as server:
        summary = run(ScrapeConfig(ballot="ppwp", region="0", base_url=server.url, out=str(out), snapshot="a",
                                   official=True, **FAST), sleeps)
    return summary, server, out / "a", sleeps


def test_faults_are_survived_and_the_stored_tree_equals_the_served_one(faulty_scrape, tree):
    summary, server, snapshot, sleeps = faulty_scrape
    assert set(server.injected) == set(FAULTS), server.injected  # every kind of fault was met
    assert sum(server.injected.values()) >= 30
    assert summary.ok, summary.text()
    assert stored_tree(snapshot) == walked(tree, official=True)
    # Retry-After: 7 was honoured (the recorded wait), while plain retries back off by milliseconds here.
    assert max(sleeps) >= 7 and min(sleeps) < 0.05
    headers = server.headers[0]
    assert headers.get("Referer") == ep.REFERER and "Mozilla/5.0" in headers.get("User-Agent", "")


def test_nothing_corrupt_is_stored_and_the_manifest_matches_the_files(faulty_scrape):
    import hashlib

    _, _, snapshot, _ = faulty_scrape
    records = read_manifest(snapshot)
    for path, record in records.items():
        if record["outcome"] == "ok":
            body = (snapshot / record["file"]).read_bytes()
            json.loads(body)
            assert hashlib.sha256(body).hexdigest() == record["sha256"] and len(body) == record["size"]
            assert record["status"] == 200 and record["url"].endswith("/" + path)
    on_disk = {str(p.relative_to(snapshot)) for p in snapshot.rglob("*") if p.is_file()} - {"manifest.jsonl", "snapshot.json"}
    assert on_disk == {r["file"] for r in records.values() if r["outcome"] == "ok"}  # no temp files, nothing unlisted


def test_404_is_recorded_as_not_published_and_asked_once(faulty_scrape, tree, election):
    summary, server, snapshot, _ = faulty_scrape
    missing = [ep.hhcw_path("ppwp", code) for code in election.table.index if ep.hhcw_path("ppwp", code) not in tree]
    assert missing and summary.not_published == len(missing)
    records = read_manifest(snapshot)
    for path in missing:
        assert records[path]["outcome"] == "not_published" and records[path]["status"] == 404
        assert server.requests[path] == 1  # a 404 is an answer, not a fault: never asked again


def test_build_reproduces_the_served_numbers(faulty_scrape, election, tree, tmp_path):
    _, _, snapshot, _ = faulty_scrape
    built = read_snapshot(snapshot)
    table, truth = built.election.table, election.table
    assert set(table.index) == set(truth.index)  # every TPS of the walked tree, published or not
    served = [c for c in truth.index if ep.hhcw_path("ppwp", c) in tree]
    assert (table.loc[served, "fetch_status"] == "ok").all()
    pd.testing.assert_frame_equal(table.loc[served, VOTES], truth.loc[served, VOTES], check_names=False)
    hidden = table.index.difference(served)
    assert (table.loc[hidden, "fetch_status"] == "not_published").all() and table.loc[hidden, VOTES].isna().all().all()
    # The TPS add up to the served province aggregates.
    national = json.loads(tree["pemilu/hhcw/ppwp.json"])["table"]
    sums = table.groupby("province")[["01", "02", "03"]].sum()
    for province, row in national.items():
        assert [int(sums.loc[province, n]) for n in ("01", "02", "03")] == [row["100025"], row["100026"], row["100027"]]
    prov = built.election.provenance
    assert prov["snapshot"] == "a" and len(prov["manifest_sha256"]) == 64 and prov["first_fetched_at"] <= prov["last_fetched_at"]
    # The CLI writes the same Election, and read_tps_bodies reads a snapshot folder too.
    assert main(["build", "--raw", str(snapshot), "--out", str(tmp_path / "s.parquet")]) == 0
    again, rejects = read_tps_bodies(snapshot)
    pd.testing.assert_frame_equal(again.table[VOTES], table[VOTES])
    assert rejects.empty
    with pytest.raises(FileNotFoundError, match="snapshot store; pass one snapshot folder"):
        read_tps_bodies(snapshot.parent)


# ----------------------------------------------------------------------------- failures, resume, dedup, hosts

def test_a_file_that_keeps_failing_fails_with_its_reason_and_a_resume_fetches_only_it(tree, tmp_path):
    target = "pemilu/hhcw/ppwp/11.json"
    config = ScrapeConfig(ballot="ppwp", region="11", base_url="http://127.0.0.1:1", out=str(tmp_path), snapshot="s",
                          retries=2, **FAST)
    with TreeServer(tree, faults={target: ["503"] * 3}) as server:
        first = run(ScrapeConfig(**{**config.__dict__, "base_url": server.url}))
        assert not first.ok and first.failed == ((target, "HTTP 503 after 3 attempts"),)
        assert not (tmp_path / "s" / target).exists() and server.requests[target] == 3
        before = sum(server.requests.values())
        second = run(ScrapeConfig(**{**config.__dict__, "base_url": server.url}))
        assert second.ok and second.fetched == 1 and second.resumed == first.known - 1
        assert sum(server.requests.values()) - before == 1  # only the failed file was asked again
    assert main(["scrape", "--ballot", "ppwp", "--region", "11", "--base-url", "http://127.0.0.1:9", "--out",
                 str(tmp_path), "--snapshot", "t", "--retries", "0", "--timeout", "0.2", "--no-progress"]) == 1


def test_json_of_the_wrong_shape_is_never_stored_as_good(tree, tmp_path):
    odd = dict(tree)
    odd[ep.wilayah_path("1101")] = b'{"error": "sedang pemeliharaan"}'
    odd[ep.hhcw_path("ppwp", "1101")] = b"[]"
    with TreeServer(odd) as server:
        summary = run(ScrapeConfig(ballot="ppwp", region="1101", base_url=server.url, out=str(tmp_path), snapshot="w",
                                   retries=1, **FAST))
    assert dict(summary.failed) == {ep.wilayah_path("1101"): "HTTP 200 with JSON of the wrong shape (dict) after 2 attempts",
                                    ep.hhcw_path("ppwp", "1101"): "HTTP 200 with JSON of the wrong shape (list) after 2 attempts"}
    assert not (tmp_path / "w" / ep.wilayah_path("1101")).exists() and not (tmp_path / "w" / ep.hhcw_path("ppwp", "1101")).exists()


def test_an_answer_trickled_byte_by_byte_times_out_and_is_fetched_again(tree, tmp_path):
    target = ep.hhcw_path("ppwp", "1101")
    with TreeServer(tree, faults={target: ["trickle"]}, slow=0.1) as server:
        started = time.monotonic()
        summary = run(ScrapeConfig(ballot="ppwp", region="1101", base_url=server.url, out=str(tmp_path), snapshot="t",
                                   **{**FAST, "timeout": 0.1}))
        elapsed = time.monotonic() - started
    assert summary.ok and server.injected["trickle"] == 1 and server.requests[target] == 2
    assert (tmp_path / "t" / target).read_bytes() == tree[target]
    assert elapsed < len(tree[target]) * 0.01 / 2  # a byte every 10 ms would take far longer


def test_a_second_snapshot_of_an_unchanged_tree_adds_no_blob_bytes(tree, tmp_path):
    def blob_bytes():
        return sum(p.stat().st_size for p in (tmp_path / BLOBS).rglob("*") if p.is_file())

    config = dict(ballot="ppwp", region="31", out=str(tmp_path), **FAST)
    changed = dict(tree)
    with TreeServer(changed) as server:
        first = run(ScrapeConfig(base_url=server.url, snapshot="20240215T100000Z", **config))
        size = blob_bytes()
        second = run(ScrapeConfig(base_url=server.url, snapshot="20240215T110000Z", **config))
        assert second.ok and second.fetched == 0 and second.unchanged == first.fetched
        assert second.new_blob_bytes == 0 and blob_bytes() == size
        # Conditional requests with the previous ETags: the server sent no body at all the second time.
        assert second.bytes_received == 0 and sum(server.not_modified.values()) == first.fetched
        assert stored_tree(tmp_path / "20240215T110000Z") == stored_tree(tmp_path / "20240215T100000Z")
        path = next(p for p in read_manifest(tmp_path / "20240215T100000Z") if p.endswith(".json") and len(p) > 60)
        a, b = tmp_path / "20240215T100000Z" / path, tmp_path / "20240215T110000Z" / path
        assert os.stat(a).st_ino == os.stat(b).st_ino  # one file on disk, two names
        body = json.loads(changed[path])
        body["ts"] = "2024-02-20 13:00:00"
        server.tree[path] = json.dumps(body).encode()
        third = run(ScrapeConfig(base_url=server.url, snapshot="20240215T120000Z", **config))
    assert third.fetched == 1 and third.new_blob_bytes == len(server.tree[path]) and blob_bytes() == size + len(server.tree[path])


def test_the_scraper_talks_to_its_base_url_only(tree, tmp_path):
    poisoned = dict(tree)
    provinces = json.loads(tree["wilayah/pemilu/ppwp/0.json"])
    provinces += [{"nama": "X", "id": 1, "kode": "../../etc"}, {"nama": "Y", "id": 2, "kode": "3101"},
                  {"nama": "Z", "id": 3, "kode": "http://evil.invalid/31"}, {"nama": "W", "id": 4, "kode": 31}]
    poisoned["wilayah/pemilu/ppwp/0.json"] = json.dumps(provinces).encode()
    with TreeServer({"pemilu/hhcw/ppwp.json": b"{}"}) as elsewhere:
        with TreeServer(poisoned, faults={"pemilu/hhcw/ppwp/11.json": ["redirect"]}, redirect_to=elsewhere.url) as server:
            summary = run(ScrapeConfig(ballot="ppwp", region="0", base_url=server.url, out=str(tmp_path), snapshot="h", **FAST))
        assert sum(elsewhere.requests.values()) == 0
    assert dict(summary.failed) == {"pemilu/hhcw/ppwp/11.json": "HTTP 302 redirect not followed (only the base URL is used)"}
    assert summary.walk_errors == (("wilayah/pemilu/ppwp/0.json", "4 entries without a valid child code were not followed"),)
    assert all(".." not in p and "evil" not in p for p in server.requests)


def test_kill_9_in_the_middle_then_resume_completes_with_few_refetches(tree, tmp_path):
    command = [sys.executable, "-m", "analysis.cli", "scrape", "--ballot", "ppwp", "--region", "0", "--out", str(tmp_path),
               "--snapshot", "k", "--rate", "200", "--concurrency", "3", "--no-progress"]
    manifest = tmp_path / "k" / "manifest.jsonl"
    with TreeServer(tree, delay=0.02) as server:
        process = subprocess.Popen([*command, "--base-url", server.url], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            if manifest.exists() and manifest.read_bytes().count(b"\n") >= 40:
                break
            time.sleep(0.005)
        assert process.poll() is None, "the scrape ended before it could be killed"
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        asked_before = sum(server.requests.values())
        assert asked_before < len(walked(tree, official=False)) + 3
        resumed = subprocess.run([*command, "--base-url", server.url], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        refetched = sum(server.requests.values()) - len(server.requests)
    assert refetched <= 3 + 1  # at most the requests in flight when killed (plus a half-written manifest line)
    assert stored_tree(tmp_path / "k") == walked(tree, official=False)
    assert "already there (resumed)" in resumed.stdout
    assert not list(tmp_path.rglob("*.tmp"))  # what the killed run left half-written is gone


# ----------------------------------------------------------------------------- desa level, legislative, real bodies

def test_desa_level_stops_at_the_desa_tables_and_builds_their_votes(election, tree, tmp_path):
    with TreeServer(tree) as server:
        summary = run(ScrapeConfig(ballot="ppwp", region="31", level="desa", base_url=server.url, out=str(tmp_path), snapshot="d", **FAST))
    assert summary.ok and not any(len(p.rsplit("/", 1)[-1]) == 18 for p in server.requests)  # no TPS body asked
    table = read_snapshot(tmp_path / "d").election.table
    truth = election.table[election.table["province"] == "31"]
    assert set(table.index) == set(truth.index) and (table["fetch_status"] == "desa_table").all()
    served = [c for c in truth.index if ep.hhcw_path("ppwp", c) in tree]
    pd.testing.assert_frame_equal(table.loc[served, ["01", "02", "03"]], truth.loc[served, ["01", "02", "03"]], check_names=False)
    assert table["registered"].isna().all()  # desa tables carry no DPT


def test_a_party_ballot_scrapes_and_builds_parties_and_candidates(election, tmp_path):
    tree, long = legislative_tree(election, ballot="pdprdp", seed=4, unpublished=0.05)
    with TreeServer(tree, fault_rate=0.1, seed=5, mix=("503", "cut", "html200")) as server:
        summary = run(ScrapeConfig(ballot="pdprdp", region="11", base_url=server.url, out=str(tmp_path), snapshot="l", **FAST))
        desa = run(ScrapeConfig(ballot="pdprdp", region="11", level="desa", base_url=server.url, out=str(tmp_path), snapshot="m", **FAST))
    assert summary.ok and desa.ok, summary.text()
    from_desa = read_snapshot(tmp_path / "m")
    assert from_desa.votes_long.empty  # desa tables carry party totals only
    assert main(["build", "--raw", str(tmp_path / "l"), "--out", str(tmp_path / "l.parquet")]) == 0
    built = read_snapshot(tmp_path / "l")
    table, served = built.election.table, long[long["unit_id"].str.startswith("11")]
    assert built.election.candidates == tuple(f"{int(p):02d}" for p in PARTIES)  # the served party list
    totals = served.groupby(["unit_id", "party"])["votes"].sum().unstack()
    for party in totals.columns:
        assert (table.loc[totals.index, f"{int(party):02d}"].astype(int) == totals[party]).all()
        assert (from_desa.election.table.loc[totals.index, f"{int(party):02d}"].astype(int) == totals[party]).all()
    got = pd.read_parquet(tmp_path / "l-candidates.parquet")
    keys = ["unit_id", "party", "candidate"]
    assert all(isinstance(got[key].dtype, pd.CategoricalDtype) for key in keys)  # as built: ~10^8 rows nationally
    got = got.astype(dict.fromkeys(keys, object)).sort_values(keys).reset_index(drop=True)
    want = served.sort_values(keys).reset_index(drop=True)
    assert got[keys].equals(want[keys].astype(object))
    assert (got["votes"].astype(int) == want["votes"]).all()


def test_dpd_uses_each_provinces_candidate_list_for_ballot_numbers(election, tmp_path):
    tree, votes = dpd_tree(election, seed=2)
    with TreeServer(tree) as server:
        summary = run(ScrapeConfig(ballot="pdpd", region="0", base_url=server.url, out=str(tmp_path), snapshot="p", **FAST))
    assert summary.ok and server.requests["pemilu/caleg/dpd/11.json"] == 1 and server.requests["pemilu/caleg/dpd/31.json"] == 1
    table = read_snapshot(tmp_path / "p").election.table
    pd.testing.assert_frame_equal(table[["01", "02", "03", "04"]], votes.loc[table.index], check_names=False)


@pytest.mark.skipif(not EXAMPLES.exists(), reason="../shared/data/sirekap/examples is absent")
def test_real_bodies_served_and_built(tmp_path):
    read = lambda name: (EXAMPLES / name).read_bytes()  # noqa: E731
    desa = "1101012001"
    tree = {ep.wilayah_path(desa): read("wilayah_ppwp_desa_1101012001_tps_list.json"),
            ep.hhcw_path("ppwp", desa): read("hhcw_ppwp_desa_1101012001__ridwaanhall.json"),
            ep.hhcw_path("ppwp", desa + "001"): read("tps_1101012001001__ridwaanhall.json"),
            ep.hhcw_path("ppwp", desa + "002"): read("tps_adm_null_3101011001008__hendragunawan.json"),
            "pemilu/ppwp.json": read("ppwp_candidates__rfaturriza.json")}
    with TreeServer(tree, faults={ep.hhcw_path("ppwp", desa + "001"): ["html200", "cut"]}) as server:
        summary = run(ScrapeConfig(ballot="ppwp", region=desa, base_url=server.url, out=str(tmp_path), snapshot="r", **FAST))
        desa_level = run(ScrapeConfig(ballot="ppwp", region=desa, level="desa", base_url=server.url, out=str(tmp_path), snapshot="q", **FAST))
    assert summary.ok and summary.not_published == 1 and desa_level.ok
    table = read_snapshot(tmp_path / "r").election.table
    assert list(table.index) == [desa + "001", desa + "002", desa + "003"]
    assert list(table.loc[desa + "001", ["01", "02", "03", "voters"]]) == [144, 19, 2, 239]  # the revised real body
    assert list(table["fetch_status"]) == ["ok", "ok", "not_published"] and table.loc[desa + "003", VOTES].isna().all()
    assert table.loc[desa + "001", "village_name"] != "<NA>"
    from_desa = read_snapshot(tmp_path / "q").election.table
    assert list(from_desa.loc[desa + "002", ["01", "02", "03"]]) == [209, 37, 6]  # the real desa table's row


# ----------------------------------------------------------------------------- dapils and candidate lists (legislative)

from analysis.sources.sirekap import caleg  # noqa: E402
from analysis.sources.sirekap.store import SnapshotStore  # noqa: E402
from analysis.sources.sirekap.testserver import legislative_dapils  # noqa: E402

#: Code length of the region that owns a ballot's dapil list: DPR RI dapils by province, DPRD kabupaten/kota by kabupaten.
OWNER = {"pdpr": 2, "pdprdp": 2, "pdprdk": 4}


def list_paths(paths) -> set[str]:
    return {p for p in paths if ep.classify(p)[0] in ("dapils", "candidates")}


def expected_dapils(election, ballot: str, region: str) -> set[str]:
    """The dapils of every TPS in the region's province (DPR RI, DPRD provinsi) or kabupaten (DPRD kabupaten/kota)."""
    dapils = legislative_dapils(election, ballot)
    return set(dapils) if region == "0" else set(dapils[dapils.index.str.startswith(region[:OWNER[ballot]])])


def test_dapil_paths_codes_and_kinds():
    assert ep.dapil_list_path("pdpr") == ep.dapil_list_path("pdpr", "3302") == "wilayah/pemilu/pdpr/dapil_dpr.json"
    assert ep.dapil_list_path("pdprdp", "33") == "wilayah/pemilu/pdprdp/33.json"
    assert ep.dapil_list_path("pdprdk", "3302") == "wilayah/pemilu/pdprdk/33/3302.json"
    nowhere = [("pdprdp", "0"), ("pdprdp", "3302"), ("pdprdk", "33"), ("pdprdk", "330214"), ("pdprdp", "99"),
               ("pdprdk", "9901"), ("ppwp", "33"), ("pdpd", "33")]
    assert {ep.dapil_list_path(ballot, code) for ballot, code in nowhere} == {None}
    assert ep.candidate_list_path("3101") == "pemilu/caleg/partai/3101.json"
    for bad in ("../1", "31/01", 3101, "", "3", "\u0663\u0661\u0660\u0661", "3101\n", "12345678901234", None, "31 01"):
        with pytest.raises(ep.CodeError):
            ep.candidate_list_path(bad)
    assert ep.dapil_code_of({"kode_dapil": "110001", "kode": "x"}) == "110001"
    assert ep.dapil_code_of({"nama": "ACEH I", "id": 5001, "kode": "1101"}) == "1101"  # dapil_dpr.json's items
    unusable = ({"kode_dapil": 110001}, {"nama": "X"}, "3101", None, {"kode": "../31"}, {"kode_dapil": None, "kode": "3101"})
    assert {ep.dapil_code_of(item) for item in unusable} == {None}
    assert ep.dapil_in_region("pdpr", "3302142011", "3301") and not ep.dapil_in_region("pdpr", "33", "3201")
    assert ep.dapil_in_region("pdpr", "0", "3201") and ep.dapil_in_region("pdprdk", "3302", "9999")
    assert ep.dapil_in_region("pdpr", "99", ep.OVERSEAS_DPR_DAPIL) and not ep.dapil_in_region("pdpr", "9901", "9901")
    assert ep.classify("wilayah/pemilu/pdpr/dapil_dpr.json") == ("dapils", "pdpr", "0")
    assert ep.classify("wilayah/pemilu/pdprdp/11.json") == ("dapils", "pdprdp", "11")  # not a list of regions
    assert ep.classify("wilayah/pemilu/pdprdk/33/3302.json") == ("dapils", "pdprdk", "3302")
    assert ep.classify("wilayah/pemilu/pdprdk/31/3302.json")[0] == "other"
    assert ep.classify("pemilu/caleg/partai/3101.json") == ("candidates", None, "3101")
    assert ep.classify("pemilu/caleg/dpd/31.json")[0] == "contestants"
    lists = [ep.DPR_DAPILS_PATH, ep.dapil_list_path("pdprdp", "11"), ep.dapil_list_path("pdprdk", "3302"),
             ep.candidate_list_path("3101"), ep.candidate_list_path("3302042")]
    assert {ep.classify(p)[0] for p in lists} == {"dapils", "candidates"}
    assert all(p.startswith(ep.LIST_PREFIXES) for p in lists)  # the filter read_candidate_lists uses keeps them


@pytest.mark.parametrize("ballot, region", [("pdpr", "31"), ("pdprdp", "0"), ("pdprdk", "village")])
def test_a_legislative_scrape_fetches_its_regions_candidate_lists_and_the_build_names_them(election, tmp_path, ballot, region):
    if region == "village":  # below the kabupaten: every dapil of the kabupaten (the lists do not say which kecamatan)
        region = election.table.loc[election.table["province"] == "11", "village"].iloc[0]  # DKI elects no DPRD kab/kota
    tree, served = legislative_tree(election, ballot=ballot, seed=6, unpublished=0.05)
    with TreeServer(tree, fault_rate=0.2, seed=2, mix=("503", "cut", "html200")) as server:
        summary = run(ScrapeConfig(ballot=ballot, region=region, base_url=server.url, out=str(tmp_path), snapshot="n", **FAST))
    assert summary.ok, summary.text()
    dapils = expected_dapils(election, ballot, region)
    wanted = {ep.candidate_list_path(d) for d in dapils}
    in_region = [c for c in election.table.index if region == "0" or c.startswith(region)]
    owners = {ep.dapil_list_path(ballot, "0" if ballot == "pdpr" else c[:OWNER[ballot]]) for c in in_region}
    assert None not in owners and list_paths(server.requests) == wanted | owners
    everything = {p for p in tree if ep.classify(p)[0] == "candidates"}
    assert wanted <= everything and (wanted == everything) == (region == "0")  # only the region's when it is not all
    assert set(stored_tree(tmp_path / "n")) >= wanted | owners

    assert main(["build", "--raw", str(tmp_path / "n"), "--out", str(tmp_path / "n.parquet")]) == 0
    built = read_snapshot(tmp_path / "n")
    got = pd.read_parquet(tmp_path / "n-candidates.parquet")
    assert got.shape == built.votes_long.shape
    truth = served[served["unit_id"].isin(built.election.table.index)]
    both = got.merge(truth, on=["unit_id", "party", "candidate"], how="outer", indicator=True, validate="one_to_one")
    assert (both["_merge"] == "both").all() and len(both) == len(truth) > 0
    people = both[both["candidate"] != ""]
    assert (people["candidate_name"].astype(str) == people["name"]).all()  # verbatim, HTML and quotes included
    assert (people["candidate_number"] == people["number"]).all()
    assert (people["dapil_x"].astype(str) == people["dapil_y"]).all()
    assert (people["candidate_gender"].astype(str) == people["gender"]).all()
    assert people["candidate_name"].astype(str).str.contains('<b>', regex=False).any()
    assert set(people["dapil_x"].astype(str)) == dapils and both["party_name"].notna().all()
    assert (both["party_name"].astype(str) == "PARTAI " + both["party"]).all()
    assert both.loc[both["candidate"] == "", ["candidate_name", "candidate_number", "dapil_x"]].isna().all().all()
    counts = built.counts
    assert counts["candidate_rows_unnamed"] == 0 and counts["candidate_rows_named"] == len(people)
    assert counts["candidate_lists_read"] == len(wanted) and built.election.provenance["count_candidate_rows_unnamed"] == 0
    lists = pd.read_csv(tmp_path / "n-candidate-lists.csv", dtype={"dapil": str})
    assert set(lists["path"]) == wanted | owners and (lists["outcome"] == "ok").all()


def test_malformed_dapil_and_candidate_lists_fail_or_are_rejected_with_their_reason(election, tmp_path):
    tree, served = legislative_tree(election, ballot="pdpr", seed=7)
    odd = dict(tree)
    dapils = json.loads(tree[ep.DPR_DAPILS_PATH])
    odd[ep.DPR_DAPILS_PATH] = json.dumps(dapils + [{"nama": "X", "kode": "../../etc"}, {"kode_dapil": 3101}, {"nama": "Y"},
                                                   {"kode": "31/01"}, "3101"]).encode()
    not_json, a_list, partial, wrong = (ep.candidate_list_path(d) for d in ("1101", "1102", "3101", "3102"))
    odd[not_json] = b"<!DOCTYPE html><html><body>Sedang pemeliharaan</body></html>"
    odd[a_list] = b"[]"
    body = json.loads(tree[partial])
    body["x"] = body.pop("2")  # a party key that is not a number: that party's candidates go unnamed
    first = next(iter(body["1"]))
    body["1"][first]["nomor_urut"] = "1"  # a number as a string
    odd[partial] = json.dumps(body).encode()
    odd[wrong] = b'{"1": "none"}'
    with TreeServer(odd) as server:
        summary = run(ScrapeConfig(ballot="pdpr", region="0", base_url=server.url, out=str(tmp_path), snapshot="b",
                                   retries=1, **FAST))
    assert dict(summary.failed) == {
        not_json: "HTTP 200 with a body that is not JSON (cut off or an error page) after 2 attempts",
        a_list: "HTTP 200 with JSON of the wrong shape (list) after 2 attempts"}
    assert summary.walk_errors == ((ep.DPR_DAPILS_PATH, "5 entries without a usable dapil code (kode_dapil or kode: "
                                    "a string of 2 to 13 digits) were not followed"),)
    assert all(".." not in p and "etc" not in p for p in server.requests)

    built = read_snapshot(tmp_path / "b")  # the build works, and says what each list gave
    lists = built.candidate_lists.set_index("path")
    assert lists.loc[not_json, "outcome"] == "failed" and "not JSON" in lists.loc[not_json, "reason"]
    assert lists.loc[a_list, "outcome"] == "failed" and "wrong shape (list)" in lists.loc[a_list, "reason"]
    assert lists.loc[partial, "outcome"] == "partial" and lists.loc[partial, "reason"] == (
        f"2 of {len(json.loads(tree[partial])['1']) * len(PARTIES) - 2} entries not in the expected shape "
        "(e.g. candidate " + first + " has no ballot number (nomor_urut) from 1 to 999)")
    assert lists.loc[wrong, "outcome"] == "rejected" and lists.loc[wrong, "reason"].endswith(
        "(e.g. party 1 is a str, not an object of candidates)")
    assert lists.loc[ep.DPR_DAPILS_PATH, "outcome"] == "partial" and lists.loc[ep.DPR_DAPILS_PATH, "entries"] == len(dapils)
    long = built.votes_long
    people = long[long["candidate"] != ""].merge(served, on=["unit_id", "party", "candidate"])
    lost = people["dapil_y"].isin(["1101", "1102", "3102"]) | ((people["dapil_y"] == "3101") & (
        (people["party"] == "2") | (people["candidate"] == first)))
    assert lost.any() and (~lost).any()
    assert people.loc[lost, "candidate_name"].isna().all()
    assert (people.loc[~lost, "candidate_name"].astype(str) == people.loc[~lost, "name"]).all()
    assert built.counts["candidate_rows_unnamed"] == lost.sum()
    assert built.counts["candidate_ids_unlisted"] == people.loc[lost, "candidate"].nunique()
    assert built.counts["candidate_lists_bad"] == 4 and built.counts["dapil_lists_bad"] == 1


def test_an_unpublished_dapil_list_is_not_a_failure_and_its_candidates_stay_unnamed(election, tmp_path):
    tree, served = legislative_tree(election, ballot="pdprdp", seed=8)
    missing = ep.dapil_list_path("pdprdp", "31")
    del tree[missing]
    with TreeServer(tree) as server:
        summary = run(ScrapeConfig(ballot="pdprdp", region="0", base_url=server.url, out=str(tmp_path), snapshot="u", **FAST))
    assert summary.ok and summary.not_published == 1 and server.requests[missing] == 1
    assert not any(p.startswith("pemilu/caleg/partai/31") for p in server.requests)
    assert main(["build", "--raw", str(tmp_path / "u"), "--out", str(tmp_path / "u.parquet")]) == 0
    built = read_snapshot(tmp_path / "u")
    long = built.votes_long
    people = long[long["candidate"] != ""]
    jakarta = people["unit_id"].str.startswith("31")
    assert jakarta.any() and people.loc[jakarta, ["candidate_name", "candidate_number", "dapil"]].isna().all().all()
    assert people.loc[~jakarta, "candidate_name"].notna().all()
    assert built.counts["candidate_rows_unnamed"] == jakarta.sum() and built.counts["dapil_lists_not_published"] == 1
    assert built.counts["candidate_ids_unlisted"] == people.loc[jakarta, "candidate"].nunique() > 0
    lists = built.candidate_lists.set_index("path")
    assert lists.loc[missing, "outcome"] == "not_published" and lists.loc[missing, "reason"] == "HTTP 404 (not published)"
    assert (pd.read_parquet(tmp_path / "u-candidates.parquet")["candidate_name"].isna() == long["candidate_name"].isna()).all()


def test_candidate_lists_are_resumed_and_revalidated_like_every_file(election, tmp_path):
    tree, _ = legislative_tree(election, ballot="pdprdk", seed=9)
    config = dict(ballot="pdprdk", region="11", out=str(tmp_path), **FAST)
    with TreeServer(tree) as server:
        first = run(ScrapeConfig(base_url=server.url, snapshot="20240215T100000Z", **config))
        again = run(ScrapeConfig(base_url=server.url, snapshot="20240215T100000Z", **config))  # resume: nothing left to do
        later = run(ScrapeConfig(base_url=server.url, snapshot="20240215T110000Z", **config))  # the next hour: 304s
    assert first.ok and again.ok and later.ok
    assert again.known == first.known == later.known and again.resumed == first.known and again.requests == 0
    assert later.not_modified == first.fetched and later.new_blob_bytes == 0
    stored = stored_tree(tmp_path / "20240215T110000Z")
    assert stored == stored_tree(tmp_path / "20240215T100000Z")
    assert list_paths(stored) == {ep.candidate_list_path(d) for d in expected_dapils(election, "pdprdk", "11")} | {
        ep.dapil_list_path("pdprdk", k) for k in set(election.table.loc[election.table["province"] == "11", "regency"])}


# ----------------------------------------------------------------------------- the join itself

def _snapshot_with(tmp_path, files: dict[str, bytes]) -> Path:
    store = SnapshotStore(tmp_path, "c")
    for path, body in files.items():
        store.put(path, f"http://127.0.0.1:0/{path}", body, status=200, attempts=1)
    store.close()
    return store.path


def _candidates(**people: tuple[str, int]) -> dict:
    """``_candidates(c100001=("A", 1))`` -> a party's entry of a candidate list."""
    return {cid[1:]: {"nama": name, "nomor_urut": number, "jenis_kelamin": "P", "tempat_tinggal": "KOTA"}
            for cid, (name, number) in people.items()}


def _present(values: pd.Series) -> list:
    return list(values.astype(object).where(values.notna(), None))


def test_an_id_under_another_party_or_in_two_lists_differently_is_left_unnamed_and_counted(tmp_path):
    path = _snapshot_with(tmp_path, {
        "pemilu/caleg/partai/3101.json": json.dumps({"1": _candidates(c100001=("A", 1), c100002=("B", 2)),
                                                     "2": _candidates(c100003=("C", 1), c100005=("E", 1))}).encode(),
        "pemilu/caleg/partai/3102.json": json.dumps({"1": _candidates(c100004=("D", 1), c100005=("E2", 1))}).encode(),
        "pemilu/caleg/partai/3103.json": json.dumps({"1": _candidates(c100006=("A", 1))}).encode(),  # a name twice is fine
    })
    lists = caleg.read_candidate_lists(path, read_manifest(path), "pdpr")
    assert lists.counts["candidate_ids_ambiguous"] == 1 and "100005" not in set(lists.candidates["candidate"])
    reasons = lists.lists.set_index("dapil")["reason"]
    assert reasons["3101"] == reasons["3102"] == "1 candidate ids also listed elsewhere (left unnamed)"
    assert reasons["3103"] == ""
    assert len(lists.candidates) == 5 and lists.counts["candidate_lists_read"] == 3
    votes = pd.DataFrame({"unit_id": pd.array(["3101011001001"] * 6, dtype="str"),
                          "party": pd.array(["1", "1", "1", "2", "1", "2"], dtype="str"),
                          "candidate": pd.array(["", "100001", "100003", "100003", "100005", "999999"], dtype="str"),
                          "votes": pd.array([1, 2, 3, 4, 5, 6], dtype="Int64")})
    out, counts = caleg.attach_candidates(votes, lists.candidates, {"1": "PARTAI SATU"})
    assert _present(out["candidate_name"]) == [None, "A", None, "C", None, None]
    assert _present(out["candidate_number"]) == [None, 1, None, 1, None, None]
    assert counts == {"candidate_rows": 5, "candidate_rows_named": 2, "candidate_rows_unnamed": 3,
                      "candidate_rows_other_party": 1, "candidate_ids_unlisted": 2}
    assert _present(out["party_name"]) == ["PARTAI SATU"] * 3 + [None, "PARTAI SATU", None]
    pd.testing.assert_frame_equal(out[list(votes.columns)], votes)  # the votes themselves are untouched
    empty, counts = caleg.attach_candidates(votes.iloc[:0], lists.candidates)
    assert list(empty.columns) == [*votes.columns, *caleg.ATTACHED] and counts["candidate_rows"] == 0


LISTED = pd.DataFrame({"candidate": ["100001", "100002", "100003", "100004"], "dapil": ["3101", "3101", "3102", "3102"],
                       "party": ["1", "1", "2", "10"], "number": pd.array([1, 2, 1, 1], dtype="Int64"),
                       "name": ["A", "B", "<b>C</b>", "A"], "gender": ["L", "P", "L", "P"]})


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["1", "2", "10", "01", "x"]),
                          st.sampled_from(["", "100001", "100002", "100003", "100004", "999999", None])), max_size=40),
       st.booleans())
def test_attached_columns_are_each_rows_lookup_from_strings_or_categories(rows, categorical):
    votes = pd.DataFrame({"unit_id": pd.array(["3101011001001"] * len(rows), dtype="str"),
                          "party": pd.array([p for p, _ in rows], dtype="str"),
                          "candidate": pd.array([c for _, c in rows], dtype="str"),
                          "votes": pd.array(range(len(rows)), dtype="Int64")})
    if categorical:  # as the build makes them
        votes = votes.astype({"unit_id": "category", "party": "category", "candidate": "category"})
    out, counts = caleg.attach_candidates(votes, LISTED, {"1": "SATU", "2": "DUA"})
    listed = LISTED.set_index("candidate")
    # One row at a time: named when the id is listed under the row's party (party numbers read as numbers).
    named = [c in listed.index and str(int(p)) == listed.loc[c, "party"] if p.isdigit() else False for p, c in rows]
    assert _present(out["candidate_name"]) == [listed.loc[c, "name"] if n else None for (_, c), n in zip(rows, named)]
    assert _present(out["dapil"]) == [listed.loc[c, "dapil"] if n else None for (_, c), n in zip(rows, named)]
    assert _present(out["candidate_number"]) == [listed.loc[c, "number"] if n else None for (_, c), n in zip(rows, named)]
    assert _present(out["party_name"]) == [{"1": "SATU", "2": "DUA"}.get(str(int(p))) if p.isdigit() else None for p, _ in rows]
    person = [c not in ("", None) for _, c in rows]
    found = [c in listed.index for _, c in rows]
    assert counts == {"candidate_rows": sum(person), "candidate_rows_named": sum(named),
                      "candidate_rows_unnamed": sum(p and not n for p, n in zip(person, named)),
                      "candidate_rows_other_party": sum(p and f and not n for p, f, n in zip(person, found, named)),
                      "candidate_ids_unlisted": len({c for (_, c), p, f in zip(rows, person, found) if p and not f})}
    pd.testing.assert_frame_equal(out[list(votes.columns)], votes)


def test_attached_ballot_numbers_are_never_wrapped_into_a_small_type():
    votes = pd.DataFrame({"unit_id": ["3101011001001"] * 2, "party": ["1", "1"], "candidate": ["100001", "100002"],
                          "votes": pd.array([1, 2], dtype="Int64")})
    small, _ = caleg.attach_candidates(votes, LISTED)
    assert small["candidate_number"].dtype == "Int16" and _present(small["candidate_number"]) == [1, 2]
    big = LISTED.assign(number=pd.array([40_000, 2**40, 1, 1], dtype="Int64"))  # only through a direct call
    out, _ = caleg.attach_candidates(votes, big)
    assert _present(out["candidate_number"]) == [40_000, 2**40]


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers(-5, 2000) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text("0123x", max_size=4), inner, max_size=3),
                    max_leaves=12))
def test_any_json_as_a_candidate_list_is_read_or_refused_with_a_reason(data):
    good, bad, example = caleg._candidate_list(data)
    assert (bad == 0) == (example is None)
    for cid, party, number, name, gender in good:
        assert cid.isdigit() and party.isdigit() and 0 < number < 1000 and gender in ("L", "P", None)
        assert any(caleg._party(key) == party and data[key][cid]["nama"] == name
                   for key in data if isinstance(data[key], dict) and cid in data[key])


def test_a_stored_list_that_is_not_json_or_not_an_object_is_rejected_with_its_reason(tmp_path):
    # The scraper stores only JSON of the right top-level type; a snapshot edited or copied by hand may hold anything.
    path = _snapshot_with(tmp_path, {"pemilu/caleg/partai/3101.json": b"<html>x</html>", "pemilu/caleg/partai/3102.json": b"[1]",
                                     "pemilu/caleg/partai/3103.json": b"{}", ep.DPR_DAPILS_PATH: b'{"kode": "3101"}',
                                     "wilayah/pemilu/pdprdp/31.json": b"[]"})  # another ballot's dapil list: not this build's
    lists = caleg.read_candidate_lists(path, read_manifest(path), "pdpr")
    got = {row.path: (row.outcome, row.reason) for row in lists.lists.itertuples()}
    assert got == {"pemilu/caleg/partai/3101.json": ("rejected", "not JSON"),
                   "pemilu/caleg/partai/3102.json": ("rejected", "a JSON list, not an object of parties"),
                   "pemilu/caleg/partai/3103.json": ("ok", "lists no candidate"),
                   ep.DPR_DAPILS_PATH: ("rejected", "a JSON dict, not a list of dapils")}
    assert lists.candidates.empty and lists.counts["candidate_lists_bad"] == 2 and lists.counts["dapil_lists_bad"] == 1


# ----------------------------------------------------------------------------- legislative trees as served (issue 19)

#: The keys of a pdpr TPS body in the strict zod schemas of 2024 (sirekap-api.md, "Legislative ballots as served").
NESTED_KEYS = ["chart", "images", "kode_dapil", "administrasi", "caleg", "psu", "ts", "status_suara", "status_adm"]
FLAT_KEYS = ["chart", "images", "administrasi", "psu", "ts", "status_suara", "status_adm"]


@pytest.mark.parametrize("ballot", ["pdpr", "pdprdp", "pdprdk"])
def test_the_test_server_serves_legislative_bodies_only_in_the_shapes_served(election, ballot):
    tree, served = legislative_tree(election, ballot=ballot, seed=3, flat=0.2, nulls=0.1)
    bodies = {p: json.loads(b) for p, b in tree.items() if ep.classify(p)[0] == "tps"}
    assert bodies and {ep.classify(p)[1] for p in bodies} == {ballot}
    shapes = set()
    for path, body in bodies.items():
        if list(body) == FLAT_KEYS:
            shapes.add("flat")
            assert body["chart"] is None or all(v is None or type(v) is int for v in body["chart"].values())
            continue
        assert list(body) == NESTED_KEYS, list(body)
        shapes.add("nested")
        assert body["kode_dapil"] is None or (body["kode_dapil"].isdigit() and len(body["kode_dapil"]) in (4, 6))
        if body["chart"] is None:
            assert body["caleg"] is None
            continue
        assert all(list(entry) == ["jml_suara_total", "jml_suara_partai"] for entry in body["chart"].values())
        assert set(body["caleg"]) == set(body["chart"])
        for party, entry in body["caleg"].items():
            assert "null" in entry and entry["null"] is None
            assert all(k.isdigit() and (v is None or type(v) is int) for k, v in entry.items() if k != "null")
            votes = [v or 0 for k, v in entry.items() if k != "null"]
            assert body["chart"][party]["jml_suara_total"] == body["chart"][party]["jml_suara_partai"] + sum(votes)
    assert shapes == {"flat", "nested"}
    no_tree = [c for c in election.table.index if ep.not_applicable(ballot, c)]
    assert not any(ep.hhcw_path(ballot, c) in tree for c in no_tree)
    assert (ballot == "pdprdk") == bool(no_tree)  # DKI Jakarta elects no DPRD kabupaten/kota
    hhcd = [p for p in tree if ep.classify(p)[0] == "hhcd"]
    assert {ep.classify(p)[2] for p in hhcd} - {"0"} == set(served["dapil"].dropna())


def test_a_dprd_kabupaten_scrape_skips_jakarta_records_it_as_not_applicable_and_checks_dapil_totals(election, tmp_path):
    tree, served = legislative_tree(election, ballot="pdprdk", seed=4)
    with TreeServer(tree) as server:
        summary = run(ScrapeConfig(ballot="pdprdk", region="0", base_url=server.url, out=str(tmp_path), snapshot="k", **FAST))
        jakarta = run(ScrapeConfig(ballot="pdprdk", region="3101", base_url=server.url, out=str(tmp_path), snapshot="j", **FAST))
    assert summary.ok and summary.not_applicable == 1 and summary.not_published == 0, summary.text()
    assert not any(p.startswith(("pemilu/hhcw/pdprdk/31", "wilayah/pemilu/ppwp/31")) for p in server.requests)
    assert "not applicable" in summary.text()
    records = read_manifest(tmp_path / "k")
    assert records["pemilu/hhcw/pdprdk/31.json"]["outcome"] == "not_applicable"
    assert "DKI Jakarta (31) elects no DPRD kabupaten/kota" in records["pemilu/hhcw/pdprdk/31.json"]["reason"]
    dapils = set(served["dapil"])
    assert {ep.classify(p)[2] for p in server.requests if ep.classify(p)[0] == "hhcd"} == dapils
    assert jakarta.ok and jakarta.known == 1 and jakarta.not_applicable == 1 and jakarta.requests == 0
    built = with_dapil_check(read_snapshot(tmp_path / "k"))
    assert not built.election.table.index.str.startswith("31").any()
    check = built.dapil_check
    assert set(check["dapil"]) == dapils and (check["difference"] == 0).all() and check["difference"].notna().all()
    assert built.counts["hhcd_files"] == len(dapils)
    assert main(["build", "--raw", str(tmp_path / "k"), "--out", str(tmp_path / "k.parquet")]) == 0
    assert len(pd.read_csv(tmp_path / "k-dapil-check.csv")) == len(check)


def test_trees_that_do_not_exist_and_the_official_recap_paths():
    assert ep.not_applicable("pdprdk", "31") and ep.not_applicable("pdprdk", "3101011001001")
    assert ep.not_applicable("pdprdp", "9901") and ep.not_applicable("pdpd", "99") and ep.not_applicable("pdprdk", "99")
    assert not any(ep.not_applicable(b, c) for b, c in [("ppwp", "99"), ("pdpr", "99"), ("pdprdp", "31"), ("pdpd", "31"),
                                                       ("pdprdk", "32"), ("pdprdk", "0")])
    assert ep.hr_dapil_paths("pdpr", "3601") == ["pemilu/hr/pdpr/3601dc.json", "pemilu/hr/pdpr/3601dd.json"]
    for ballot in ("pdprdp", "pdprdk", "pdpd"):
        with pytest.raises(ValueError, match="refused"):
            ScrapeConfig(ballot=ballot, official=True)
        with pytest.raises(ep.NoEvidencedPath):
            ep.hr_path(ballot, "31")
    assert ep.hhcd_path("pdpr", "0") == "pemilu/hhcd/pdpr/0.json"
    assert ep.hhcd_path("pdprdp", "320012") == "pemilu/hhcd/pdprdp/32/320012.json"
    assert ep.hhcd_path("pdprdk", "360202") == "pemilu/hhcd/pdprdk/36/3602/360202.json"  # the real example's path
    assert ep.classify("pemilu/hhcd/pdprdk/36/3602/360202.json") == ("hhcd", "pdprdk", "360202")
    for bad in ("../1", "36/02", "", None):
        with pytest.raises(ep.CodeError):
            ep.hhcd_path("pdpr", bad)


def test_abroad_only_president_and_dpr_are_asked_and_dpr_official_uses_the_dapil_paths(election, tmp_path):
    with TreeServer({}) as server:
        for ballot in ("pdpd", "pdprdp", "pdprdk"):
            summary = run(ScrapeConfig(ballot=ballot, region="99", base_url=server.url, out=str(tmp_path), snapshot=ballot, **FAST))
            assert summary.ok and summary.requests == 0 and summary.not_applicable == 1
        assert not server.requests
    tree, _ = legislative_tree(election, ballot="pdpr", seed=2, official=True)
    with TreeServer(tree) as server:
        summary = run(ScrapeConfig(ballot="pdpr", region="11", official=True, base_url=server.url, out=str(tmp_path),
                                   snapshot="o", **FAST))
    assert summary.ok, summary.text()
    hr = {p for p in server.requests if p.startswith("pemilu/hr/")}
    dapils = expected_dapils(election, "pdpr", "11")
    assert hr == {p for d in dapils for p in ep.hr_dapil_paths("pdpr", d)}

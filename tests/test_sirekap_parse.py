import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from analysis.consistency import check_consistency
from analysis.sources.sirekap.parse import parse_tps_bodies, read_tps_bodies, to_election

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sirekap"
JAKARTA = SHARED / "tps_json_dki_sample.zip"
CODE = "1101012001001"


def body(**changes):
    """A complete TPS body as the API serves it (the example of sirekap-api.md)."""
    data = {
        "chart": {"100025": 186, "100026": 44, "100027": 8, "null": None},
        "images": [f"https://sirekap-obj-formc.kpu.go.id/204f/pemilu/ppwp/11/01/01/20/01/{CODE}-20240215-101421--bf8d.jpg",
                   None, "https://example.invalid/not-a-photo-name.jpg"],
        "administrasi": {"suara_sah": 238, "suara_total": 239, "suara_tidak_sah": 1,
                         "pemilih_dpt_j": 284, "pemilih_dpt_l": 139, "pemilih_dpt_p": 145,
                         "pengguna_dpt_j": 236, "pengguna_dpt_l": 110, "pengguna_dpt_p": 126,
                         "pengguna_dptb_j": 1, "pengguna_dptb_l": 0, "pengguna_dptb_p": 1,
                         "pengguna_non_dpt_j": 2, "pengguna_non_dpt_l": 2, "pengguna_non_dpt_p": 0,
                         "pengguna_total_j": 239, "pengguna_total_l": 112, "pengguna_total_p": 127},
        "psu": None, "ts": "2024-02-15 23:29:50", "status_suara": True, "status_adm": True, "mode": "hhcw",
    }
    data.update(changes)
    return data


def test_a_full_body_becomes_the_contract_columns():
    parsed = parse_tps_bodies({CODE: json.dumps(body()).encode()})
    row = parsed.table.loc[CODE]
    assert (row["province"], row["regency"], row["district"], row["village"]) == ("11", "1101", "110101", "1101012001")
    assert (row["01"], row["02"], row["03"]) == (186, 44, 8)
    assert row["registered"] == 284 + 1 and row["voters"] == 239 and row["valid"] == 238
    assert row["invalid"] == 1 and row["ballots"] == 239 and row["dpt"] == 284 and row["dpk_voters"] == 2
    assert row["ts"] == pd.Timestamp("2024-02-15 23:29:50", tz="Asia/Jakarta")
    assert row["photo_1_time"] == pd.Timestamp("2024-02-15 10:14:21", tz="Asia/Jakarta")
    assert pd.isna(row["photo_2_time"]) and pd.isna(row["photo_3_time"])
    assert row["has_chart"] and row["has_administrasi"] and pd.isna(row["psu"])
    election = to_election(parsed)
    assert election.candidates == ("01", "02", "03") and election.levels == ("province", "regency", "district", "village")


def test_half_filled_forms_are_rows_with_na_never_zero():
    bodies = {
        "3101011001004": body(chart=None),
        "3101011001008": body(administrasi=None),
        "3101011001009": body(administrasi={**body()["administrasi"], "suara_sah": None}),
        "3101011001010": body(chart={"null": None}),
    }
    table = parse_tps_bodies(bodies).table
    assert table.loc["3101011001004", ["01", "02", "03"]].isna().all() and not table.loc["3101011001004", "has_chart"]
    assert table.loc["3101011001004", "voters"] == 239
    assert table.loc["3101011001008", ["registered", "voters", "valid"]].isna().all()
    assert table.loc["3101011001008", "01"] == 186 and not table.loc["3101011001008", "has_administrasi"]
    assert pd.isna(table.loc["3101011001009", "valid"]) and table.loc["3101011001009", "voters"] == 239
    assert table.loc["3101011001010", "has_chart"] and table.loc["3101011001010", ["01", "02", "03"]].isna().all()


def test_numbers_as_strings_or_whole_floats_are_read_psu_kept():
    chart = {"100025": "186", "100026": 44.0, "100027": 8}
    table = parse_tps_bodies({CODE: body(chart=chart, psu="Pemungutan Suara Ulang")}).table
    assert table.loc[CODE, "01"] == 186 and table.loc[CODE, "02"] == 44
    assert table.loc[CODE, "psu"] == "Pemungutan Suara Ulang"


@pytest.mark.parametrize("key, raw, reason", [
    (CODE, b"<html>502 Bad Gateway</html>", "not JSON"),
    (CODE, b'{"chart": {"100025": 1', "not JSON"),
    (CODE, b"", "empty"),
    (CODE, b"[1, 2]", "not an object"),
    (CODE, b"{}", "neither chart nor administrasi"),
    (CODE, json.dumps(body(chart={"100025": -5})).encode(), "negative"),
    (CODE, json.dumps(body(chart={"100025": 1.5})).encode(), "not a whole number"),
    (CODE, json.dumps(body(chart={"999999": 3})).encode(), "unknown candidate"),
    (CODE, json.dumps(body(chart={"100025": "banyak"})).encode(), "not a count"),
    ("31010110", json.dumps(body()).encode(), "13-digit TPS code"),
])
def test_bad_bodies_are_rejected_with_a_reason(key, raw, reason):
    parsed = parse_tps_bodies({key: raw})
    assert parsed.table.empty and len(parsed.rejects) == 1
    assert reason in parsed.rejects["reason"].iloc[0]


def test_file_names_give_the_code_and_duplicates_are_rejected():
    parsed = parse_tps_bodies({f"a/b/{CODE}.json": body(), f"c/{CODE}.json": body()})
    assert list(parsed.table.index) == [CODE]
    assert "second body" in parsed.rejects["reason"].iloc[0]


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["chart", "administrasi", "images", "psu", "ts", "100025", "100026", "null",
                         "suara_sah", "pemilih_dpt_j", "status_adm"]) | st.text(max_size=5), children, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.one_of(st.just(CODE), st.from_regex(r"[0-9]{13}", fullmatch=True), st.text(max_size=15)),
                       st.one_of(JSON, st.binary(max_size=40), JSON.map(json.dumps)), max_size=6))
def test_parser_never_raises_and_accounts_for_every_body(bodies):
    parsed = parse_tps_bodies(bodies)
    assert len(parsed.table) + len(parsed.rejects) == len(bodies)
    assert parsed.counts == {"bodies": len(bodies), "rows": len(parsed.table), "rejected": len(parsed.rejects)}
    if len(parsed.table):
        to_election(parsed)  # whatever was accepted satisfies the Election contract


@pytest.mark.skipif(not JAKARTA.exists(), reason="../shared/data/sirekap/tps_json_dki_sample.zip is absent")
def test_real_jakarta_bodies_reproduce_the_published_counts():
    election, rejects = read_tps_bodies(JAKARTA)
    table = election.table
    assert len(table) + len(rejects) == 1000
    assert int(table["has_chart"].sum()) == 462 and int(table["has_administrasi"].sum()) == 465
    both = table["has_chart"] & table["has_administrasi"]
    assert int(both.sum()) == 348
    result = check_consistency(election)
    assert int((result.failed["candidates_sum_to_valid"] & both).sum()) == 28  # sirekap-api.md
    assert int(((table["voters"] > table["registered"]).fillna(False) & both).sum()) == 17
    assert table["dpt"].max() == 778 and table[["01", "02", "03"]].max().max() == 641  # visible misreadings
    assert len(election.provenance["input_sha256"]) == 64


def test_a_folder_and_a_zip_give_the_same_election(tmp_path):
    folder = tmp_path / "raw" / "31" / "3101"
    folder.mkdir(parents=True)
    for i in range(3):
        (folder / f"310101100100{i}.json").write_text(json.dumps(body()))
    (folder / "3101011001009.json").write_text("not json")
    with zipfile.ZipFile(tmp_path / "raw.zip", "w") as archive:
        for path in sorted(folder.glob("*.json")):
            archive.write(path, f"31/3101/{path.name}")
    from_folder, rejects_folder = read_tps_bodies(tmp_path / "raw")
    from_zip, rejects_zip = read_tps_bodies(tmp_path / "raw.zip")
    pd.testing.assert_frame_equal(from_folder.table, from_zip.table)
    assert len(from_folder) == 3 and len(rejects_folder) == len(rejects_zip) == 1
    with pytest.raises(FileNotFoundError):
        read_tps_bodies(tmp_path / "nothing")


# ----------------------------------------------------------------------------- party ballots (DPR, DPRD) and DPD

from analysis.sources.sirekap.parse import PARTY_COLUMNS  # noqa: E402

PDPRDP = SHARED / "pdprdp_tps"


def party_body(**changes):
    """A DPRD/DPR TPS body: per party its total, its party-only votes and its candidates' votes."""
    data = body(chart={"null": None,
                       "1": {"jml_suara_total": 19, "jml_suara_partai": 4, "1001": 10, "1002": 5},
                       "15": {"jml_suara_total": 4, "jml_suara_partai": 4},
                       "24": {"jml_suara_total": 0, "jml_suara_partai": 0, "24001": 0}})
    data.update(changes)
    return data


def test_a_party_body_gives_party_columns_and_long_candidate_votes():
    parsed = parse_tps_bodies({CODE: json.dumps(party_body())}, candidates=PARTY_COLUMNS, parties=True)
    row = parsed.table.loc[CODE]
    assert (row["01"], row["15"], row["24"]) == (19, 4, 0) and pd.isna(row["02"]) and row["voters"] == 239
    long = parsed.votes_long
    assert list(long.itertuples(index=False, name=None)) == [
        (CODE, "1", "", 4), (CODE, "1", "1001", 10), (CODE, "1", "1002", 5), (CODE, "15", "", 4), (CODE, "24", "", 0),
        (CODE, "24", "24001", 0)]
    election = to_election(parsed, candidates=PARTY_COLUMNS)
    assert election.candidates == tuple(f"{n:02d}" for n in range(1, 25))


def test_long_votes_are_categorical_with_parties_in_ballot_order_and_any_digit_key_is_data():
    huge = "1" * 5000  # beyond int()'s 4,300 digits: a hostile party key must stay a string
    columns = {**PARTY_COLUMNS, huge: "99"}
    bodies = {CODE: party_body(), "3101011001002": party_body(chart={"10": {"jml_suara_total": 3, "jml_suara_partai": 3},
                                                                       "2": {"jml_suara_total": 1, "jml_suara_partai": 1},
                                                                       huge: {"jml_suara_total": 2, "jml_suara_partai": 2}})}
    for fast in (True, False):
        long = parse_tps_bodies(bodies, candidates=columns, parties=True, fast=fast).votes_long
        assert all(isinstance(long[c].dtype, pd.CategoricalDtype) for c in ("unit_id", "party", "candidate"))
        assert list(long["party"].cat.categories) == ["1", "2", "10", "15", "24", huge]
        assert list(long["unit_id"].cat.categories) == [CODE, "3101011001002"]  # every category has rows
        assert long.loc[long["party"] == huge, "votes"].tolist() == [2]


@pytest.mark.parametrize("chart, reason", [
    ({"31": {"jml_suara_total": 3}}, "unknown party number"),
    ({"1": {"jml_suara_total": 3, "1001": -1}}, "negative"),
    ({"1": {"jml_suara_total": "banyak"}}, "not a count"),
    ({"1": [1, 2]}, "not a count"),
])
def test_bad_party_bodies_are_rejected_and_leave_no_votes_behind(chart, reason):
    bodies = {CODE: party_body(chart=chart), "3101011001002": party_body()}
    parsed = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True)
    assert list(parsed.rejects["unit_id"]) == [CODE] and reason in parsed.rejects["reason"].iloc[0]
    assert set(parsed.votes_long["unit_id"]) == {"3101011001002"}


def test_dpd_ids_of_every_province_map_to_ballot_numbers():
    candidates = {"9001": "01", "9002": "02", "7001": "01", "7002": "02"}
    bodies = {"1101012001001": body(chart={"9001": 5, "9002": 7}), "3101011001001": body(chart={"7001": 1, "7002": 2}),
              "3101011001002": body(chart={"7001": 1, "9001": 2})}
    parsed = parse_tps_bodies(bodies, candidates=candidates)
    assert parsed.table.loc["1101012001001", ["01", "02"]].tolist() == [5, 7]
    assert parsed.table.loc["3101011001001", ["01", "02"]].tolist() == [1, 2]
    assert "two candidates with ballot number 01" in parsed.rejects["reason"].iloc[0]


PARTY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**10) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(
        st.sampled_from(["1", "2", "24", "99", "jml_suara_total", "jml_suara_partai", "1001", "null"]) | st.text(max_size=4),
        children, max_size=4),
    max_leaves=16)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.from_regex(r"[0-9]{13}", fullmatch=True),
                       st.one_of(PARTY_JSON.map(lambda chart: {"chart": chart, "administrasi": None}), PARTY_JSON), max_size=5))
def test_party_parser_never_raises_and_accounts_for_every_body(bodies):
    parsed = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True)
    assert len(parsed.table) + len(parsed.rejects) == len(bodies)
    assert set(parsed.votes_long["unit_id"]) <= set(parsed.table.index)
    if len(parsed.table):
        to_election(parsed, candidates=PARTY_COLUMNS)


@pytest.mark.skipif(not PDPRDP.exists(), reason="../shared/data/sirekap/pdprdp_tps is absent")
def test_real_dprd_provinsi_rows_as_party_bodies_keep_every_total():
    """Real Banyumas/Cilacap DPRD-provinsi TPS rows, put in the party-body shape, come back party by party."""
    for path in sorted(PDPRDP.glob("*.csv.gz")):
        frame = pd.read_csv(path, sep=";", dtype=str)
        parties = {column.split(" ", 1)[0]: column for column in frame.columns[3:]}
        bodies, numbers = {}, {}
        for i, row in enumerate(frame.itertuples(index=False)):
            code = f"3302{i:09d}"
            values = [row[3 + k] for k in range(len(parties))]
            if all(isinstance(v, str) and v.strip().isdigit() for v in values):
                chart = {p: {"jml_suara_total": int(v)} for p, v in zip(parties, values)}
                numbers[code] = [int(v) for v in values]
            else:  # "Data sedang diproses ...": published without numbers
                chart = None
            bodies[code] = {"chart": chart, "administrasi": None}
        parsed = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True)
        assert parsed.rejects.empty and len(parsed.table) == len(frame)
        columns = [f"{int(p):02d}" for p in parties]
        got = parsed.table.loc[list(numbers), columns].astype(int).to_numpy()
        assert (got == pd.DataFrame(numbers).T.to_numpy()).all()
        waiting = parsed.table.index.difference(list(numbers))
        assert len(waiting) > 0 and parsed.table.loc[waiting, columns].isna().all().all()
        assert int(parsed.table[columns].sum().sum()) == sum(map(sum, numbers.values()))


# ----------------------------------------------------------------------------- the fast path reads bodies as _row does

from analysis.sources.sirekap import parse as parse_module, store as store_module  # noqa: E402
from analysis.sources.sirekap.parse import ADMINISTRASI_FIELDS  # noqa: E402

ODD = st.sampled_from([-1, 10**9, 10**9 + 1, 2**63, 2**64 + 1, 10**30, 3.0, 1.5, float("nan"), float("inf"), "12", " 7 ",
                       "banyak", True, False, [1], {"a": 1}])
COUNT = st.one_of(*[st.integers(0, 300)] * 8, st.none(), st.none(), ODD)
PPWP_CHART = st.one_of(
    st.none(), st.just({}), st.just({"null": None}),
    st.dictionaries(st.sampled_from(["100025", "100026", "100027", "null", "999999"]), COUNT, max_size=4),
    st.fixed_dictionaries({"100025": COUNT, "100026": COUNT, "100027": COUNT, "null": st.none()}))
ADMINISTRASI = st.one_of(
    st.none(), st.just({}), st.just([1, 2]), st.dictionaries(st.sampled_from(ADMINISTRASI_FIELDS + ("lain",)), COUNT, max_size=6),
    st.fixed_dictionaries({name: COUNT for name in ADMINISTRASI_FIELDS}))
IMAGES = st.one_of(st.none(), st.just("x"), st.lists(st.one_of(
    st.none(), st.just(1), st.just(f"https://x/{CODE}-20240215-101421--ab.jpg"), st.just("https://x/y.jpg")), max_size=4))


def _entry(draw):
    kind = draw(st.sampled_from(["usual"] * 6 + ["total", "none", "empty", "no_only", "reversed", "other_key", "empty_key"]))
    ids = draw(st.lists(st.sampled_from(["1001", "1002", "1003", "2001", "٣"]), unique=True, max_size=3))
    usual = {"jml_suara_total": draw(COUNT), "jml_suara_partai": draw(COUNT), **{i: draw(COUNT) for i in ids}}
    return {"usual": usual, "total": draw(COUNT), "none": None, "empty": {},
            "no_only": {"jml_suara_total": draw(COUNT), **{i: draw(COUNT) for i in ids}},
            "reversed": dict(reversed(list(usual.items()))), "other_key": {**usual, "nama": "x"},
            "empty_key": {**usual, "": 1}}[kind]


@st.composite
def party_chart(draw):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.sampled_from([None, {}, {"null": None}, [1]]))
    parties = draw(st.lists(st.sampled_from(["1", "2", "15", "24", "99", "null"]), unique=True, min_size=1, max_size=5))
    return {party: (None if party == "null" else _entry(draw)) for party in parties}


@st.composite
def tps_bodies(draw, chart):
    out = {}
    for i in range(draw(st.integers(1, 6))):
        code = draw(st.sampled_from([f"310101100100{i}", CODE]))
        key = draw(st.sampled_from([code, f"31/3101/{code}.json", f"a\\{code}.json", "not-a-code"]))
        body = {"chart": draw(chart), "administrasi": draw(ADMINISTRASI), "images": draw(IMAGES),
                "psu": draw(st.sampled_from([None, "", " ", "Pemungutan Suara Ulang", 3])),
                "ts": draw(st.sampled_from(["2024-02-15 23:29:50", "garbage", None, 5])),
                "status_suara": draw(st.sampled_from([True, False, None, 1])), "status_adm": draw(st.sampled_from([True, None]))}
        for name in draw(st.lists(st.sampled_from(list(body)), unique=True, max_size=3)):
            del body[name]  # bodies without administrasi, chart, ...
        form = draw(st.sampled_from(["bytes"] * 4 + ["str", "dict", "cut", "html", "bigint"]))
        text = json.dumps(body)
        out[key] = {"bytes": text.encode(), "str": text, "dict": body, "cut": text.encode()[:-3], "html": b"<html>502</html>",
                    "bigint": text.replace('"ts"', '"mode": 123456789012345678901234567890, "ts"', 1).encode()}[form]
    return out


def _assert_same(fast, slow):
    pd.testing.assert_frame_equal(fast.table, slow.table)
    pd.testing.assert_frame_equal(fast.rejects, slow.rejects)
    assert fast.counts == slow.counts
    if slow.votes_long is not None:
        pd.testing.assert_frame_equal(fast.votes_long, slow.votes_long)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tps_bodies(PPWP_CHART))
def test_the_fast_path_gives_what_the_general_code_gives(bodies):
    _assert_same(parse_tps_bodies(bodies), parse_tps_bodies(bodies, fast=False))


#: The party-chart readers of the fast path: Python, and the compiled one where the install built it.
READERS = [False, *([True] if parse_module._party_chart_compiled is not None else [])]


@pytest.mark.parametrize("compiled", READERS)
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=tps_bodies(party_chart()))
def test_the_fast_path_gives_what_the_general_code_gives_for_party_bodies(bodies, compiled):
    fast = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, _compiled=compiled)
    _assert_same(fast, parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, fast=False))


@pytest.mark.parametrize("compiled", READERS)
def test_party_bodies_of_many_layouts_and_a_number_out_of_range_read_as_the_general_code_reads_them(compiled):
    bodies = {}
    for i in range(60):
        chart = {str(p): {"jml_suara_total": i + p, "jml_suara_partai": p, **{f"{p}00{k}": k * i for k in range(1, 1 + (i + p) % 4)}}
                 for p in (1, 2, 3, 24)[: 2 + i % 3]}
        bodies[f"3101011{i:06d}"] = party_body(chart={"null": None, **chart})
    bodies["3101011000061"] = party_body(chart={"1": {"jml_suara_total": 3, "jml_suara_partai": 1, "1001": -2}})
    bodies["3101011000062"] = party_body(chart={"1": {"jml_suara_total": 2**63 + 5, "jml_suara_partai": 1}})
    fast = parse_tps_bodies({k: json.dumps(v) for k, v in bodies.items()}, candidates=PARTY_COLUMNS, parties=True, _compiled=compiled)
    slow = parse_tps_bodies({k: json.dumps(v) for k, v in bodies.items()}, candidates=PARTY_COLUMNS, parties=True, fast=False)
    _assert_same(fast, slow)
    assert set(fast.rejects["unit_id"]) == {"3101011000061", "3101011000062"} and len(fast.table) == 60


def test_without_orjson_the_parser_and_the_manifest_reader_still_work(monkeypatch, tmp_path):
    bodies = {k: json.dumps(v).encode() for k, v in {CODE: body(), "3101011001002": body(administrasi=None)}.items()}
    expected = parse_tps_bodies(bodies)
    monkeypatch.setattr(parse_module, "_fast_loads", parse_module._json_loads_utf8)
    monkeypatch.setattr(store_module, "_fast_loads", None)
    _assert_same(parse_tps_bodies(bodies), expected)
    # json.loads would guess UTF-16/32 and skip a BOM: the fallback reads bytes as strict UTF-8, as _row does.
    odd = {CODE: b"\xef\xbb\xbf" + bodies[CODE], "3101011001002": json.dumps(body()).encode("utf-16"),
           "3101011001003": json.dumps(body()).encode("utf-32-le")}
    _assert_same(parse_tps_bodies(odd), parse_tps_bodies(odd, fast=False))
    assert len(parse_tps_bodies(odd).rejects) == 3
    (tmp_path / store_module.MANIFEST).write_text('{"path": "a", "outcome": "ok"}\n{"path": "b", "outc')
    assert list(store_module.read_manifest(tmp_path)) == ["a"]


@pytest.mark.parametrize("text", [
    '{"path": "a", "n": 1}\n{"path": "b"}\n',
    '{"path": "a", "n": 1}\n\n  \n{"path": "a", "n": 2}\n{"path": "b", "outc',  # blank lines, a later line wins, a cut line
    '{"path": "a"},{"path": "b"}\n{"path": "c"}\n',  # two records on one line: json reads neither
    '{"path": "a", "x": NaN}\n{"path": "b", "nama": "\u2028"}\n[1]\n"x"\n{"path": 5}\n',
    '{"path": "a"}\r\n{"path": "b"}\r{"path": "c", "x": "\\ud800"}\n',
    # a split line and a merged one keep the line count: still read line by line
    '{"path":"a","outcome":"ok"},{"path":"b","outcome":"ok"}\n{"path":"c","outcome":"ok","x":[1\n2]}\n',
    # integers beyond 64 bits stay integers (orjson would make them floats, and change the input hash)
    '{"path":"a","outcome":"ok","size":18446744073709551616,"sha256":-99999999999999999999}\n',
    '{"path": "a"}\x1c{"path": "b"}\x0b{"path": "c"}\n',  # separators str.splitlines knows
    # lines decoded in one pass: the last of a path wins at the place of its first; what is not a record with a
    # text path is left out; no newline at the end, blank lines at the end, nothing at all
    '{"path":"a","n":1}\n{"path":"b"}\n{"path":"a","n":2}\n{"path":5}\n{"n":3}\n{"path":null}\n{"path":"c","ok":true}',
    '{"path":"a"}\n{"path":"b"}\n\n\n', '', '\n', '\n{"path":"a"}\n', '{"path":"a",\r"n":1}\n{"path":"b"}\n',  # \r: a line break too
    '{"path":"a"}\n[1]\n"x"\n{"path":"b"}\n', '{"path":"a","x":{"y":1}}\n{"path":"b"}\n', '{"path":"a","x":1.0}\n',
    '{"path":"a"}\n{"path":"b","x":"\\u00e9"}\n{"path":"c","x":"é"}\n',  # an escape, and a line that is not ASCII
])
def test_the_manifest_is_read_at_once_as_it_is_read_line_by_line(tmp_path, monkeypatch, text):
    (tmp_path / store_module.MANIFEST).write_bytes(text.encode("utf-8", errors="surrogatepass"))
    fast = store_module.read_manifest(tmp_path)
    monkeypatch.setattr(store_module, "_fast_loads", None)
    slow = store_module.read_manifest(tmp_path)
    assert json.dumps(fast, sort_keys=True) == json.dumps(slow, sort_keys=True)
    assert list(fast) == list(slow) and [list(r) for r in fast.values()] == [list(r) for r in slow.values()]


def test_deeply_nested_bodies_read_the_same_at_any_stack_depth():
    # How deep json gets depends on the caller's stack: a body nested ~900 deep must be read by json
    # on the fast path too, or fast and slow disagree when the parser is called from deep inside a program.
    deep = b'{"chart":null,"x":' + b"[" * 890 + b"]" * 890 + b"}"
    assert len(deep) < 1800

    def at_depth(n, fast):
        return at_depth(n - 1, fast) if n else parse_tps_bodies({CODE: deep}, fast=fast)

    for depth in (0, 150):
        _assert_same(at_depth(depth, True), at_depth(depth, False))


DEEP = "[" * 890 + "]" * 890


@pytest.mark.parametrize("where", ["chart null", "administrasi", "images", "psu", "ts", "status_suara", "other key", "in a text"])
@pytest.mark.parametrize("parties", [False, True])
def test_a_deep_value_anywhere_a_body_is_not_read_makes_fast_and_slow_agree_at_any_stack_depth(where, parties):
    # The fast path reads a body with orjson and takes it only if no value it leaves unread can be deep
    # (json's depth depends on the caller's stack); a text full of brackets is as shallow as any other.
    data = party_body() if parties else body()
    deep = json.loads(DEEP)
    if where == "chart null":
        data["chart"]["null"] = deep
    elif where == "administrasi":
        data["administrasi"]["x"] = deep
    elif where == "images":
        data["images"] = [None, deep]
    elif where == "other key":
        data["y"] = [deep]
    elif where == "in a text":
        data["psu"] = DEEP[:300] + "]" * 300
    else:
        data[where] = deep
    raw = json.dumps(data).encode()
    candidates = PARTY_COLUMNS if parties else parse_module.PPWP_CANDIDATES

    def at_depth(n, fast):
        return at_depth(n - 1, fast) if n else parse_tps_bodies({CODE: raw}, candidates=candidates, parties=parties, fast=fast)

    for depth in (0, 150):
        _assert_same(at_depth(depth, True), at_depth(depth, False))
    if where == "in a text":
        assert len(at_depth(150, True).table) == 1


def test_a_many_to_one_party_mapping_range_checks_every_total():
    # Two chart keys on one column: the fast path would keep (and range-check) only the last total.
    candidates = {"1": "01", "100": "01", "2": "02"}
    for bad in (-5, 10**12):
        chart = {"100": {"jml_suara_total": bad, "jml_suara_partai": 1}, "1": {"jml_suara_total": 3, "jml_suara_partai": 1},
                 "2": {"jml_suara_total": 4, "jml_suara_partai": 4}}
        bodies = {CODE: json.dumps({"chart": chart, "administrasi": None}).encode()}
        fast = parse_tps_bodies(bodies, candidates=candidates, parties=True)
        _assert_same(fast, parse_tps_bodies(bodies, candidates=candidates, parties=True, fast=False))
        assert len(fast.rejects) == 1 and "chart[100].jml_suara_total" in fast.rejects["reason"].iloc[0]


def test_json_files_keep_integers_beyond_64_bits(tmp_path):
    # orjson reads them as floats; a stored list or desa table must read as json reads it.
    text = '{"31": {"nama": "DKI", "n": 123456789012345678901234567890, "x": [1, {"y": 18446744073709551616}]}}'
    (tmp_path / "a.json").write_text(text)
    (tmp_path / "b.json").write_text('{"31": {"nama": "DKI", "n": 5}}')
    for name, raw in (("a.json", text), ("b.json", '{"31": {"nama": "DKI", "n": 5}}')):
        value = parse_module._json_file(tmp_path, {"file": name, "size": len(raw)})
        assert value == json.loads(raw) and json.dumps(value) == json.dumps(json.loads(raw))


def test_a_manifest_size_is_only_a_hint(tmp_path):
    # An absurd size in the manifest must neither crash (OverflowError) nor allocate it.
    (tmp_path / "a.json").write_text('{"31": 1}')
    for size in (2**63, 10**12, -1, "9", None, 2):
        assert parse_module._json_file(tmp_path, {"file": "a.json", "size": size}) == {"31": 1}


# ----------------------------------------------------------------------------- batches of realistic party bodies, a few odd

PARTY_NUMBERS = [str(n) for n in (*range(1, 18), 24)]
#: What a count in a body may be instead of a small int: the fast path leaves these to a check of whole
#: columns, and a batch holding one is read again body by body, as the general code reads it.
ODD_COUNT = st.sampled_from([None, -1, -(2**63) - 1, 10**9, 10**9 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1, 10**30,
                             0.0, 3.0, 1.5, -0.0, 1e300, "7", " 12 ", "", "x", True, False, [], [3], {}, {"a": 1}])


@st.composite
def real_party_body(draw, candidates: int = 3):
    """A DPR/DPRD body as Sirekap serves it: 18 parties, each its total, party-only votes and candidates, and the
    administration page (or null), in the key order of the API; the candidate ids follow the electoral district."""
    district = draw(st.integers(1, 3))
    chart = {"null": None}
    for party in PARTY_NUMBERS:
        votes = draw(st.lists(st.integers(0, 120), min_size=candidates + 1, max_size=candidates + 1))
        chart[party] = {"jml_suara_total": sum(votes), "jml_suara_partai": votes[0],
                        **{str(district * 100000 + int(party) * 100 + k): votes[k] for k in range(1, candidates + 1)}}
    administrasi = draw(st.one_of(st.none(), st.fixed_dictionaries({name: st.integers(0, 300) for name in ADMINISTRASI_FIELDS})))
    return {"chart": chart, "images": [None, None, None], "administrasi": administrasi, "psu": None,
            "ts": "2024-02-15 23:29:50", "status_suara": True, "status_adm": administrasi is not None}


@st.composite
def odd_party_body(draw):
    """A realistic party body with one thing changed: a count, a key, an entry, the shape."""
    data = draw(real_party_body(candidates=draw(st.integers(0, 4))))
    chart = data["chart"]
    party = draw(st.sampled_from(PARTY_NUMBERS))
    entry = chart[party]
    key = draw(st.sampled_from(list(entry)))
    change = draw(st.sampled_from(["count", "count", "count", "admin", "drop_key", "extra_key", "entry_none", "entry_int",
                                   "entry_empty", "reorder", "unknown_party", "no_null", "drop_party", "extra_top",
                                   "chart_none", "chart_list", "admin_partial", "huge_text"]))
    if change == "count":
        entry[key] = draw(ODD_COUNT)
    elif change == "admin":
        data["administrasi"] = {**{name: 1 for name in ADMINISTRASI_FIELDS}, draw(st.sampled_from(ADMINISTRASI_FIELDS)): draw(ODD_COUNT)}
    elif change == "drop_key":
        del entry[key]
    elif change == "extra_key":
        entry[draw(st.sampled_from(["nama", "", "9x", "٣", "jml_suara_total2", "12345"]))] = draw(st.one_of(st.integers(0, 9), ODD_COUNT))
    elif change == "entry_none":
        chart[party] = None
    elif change == "entry_int":
        chart[party] = draw(st.one_of(st.integers(0, 50), ODD_COUNT))
    elif change == "entry_empty":
        chart[party] = {}
    elif change == "reorder":
        chart[party] = dict(reversed(list(entry.items())))
    elif change == "unknown_party":
        chart[draw(st.sampled_from(["99", "0", "18x", "01"]))] = dict(entry)
    elif change == "no_null":
        del chart["null"]
    elif change == "drop_party":
        del chart[party]
    elif change == "extra_top":
        data[draw(st.sampled_from(["mode", "x", "images"]))] = draw(st.sampled_from(["hhcw", 5, [[1]], {"a": [2.5]}, None]))
    elif change == "chart_none":
        data["chart"] = None
    elif change == "chart_list":
        data["chart"] = [1, 2]
    elif change == "admin_partial":
        data["administrasi"] = {name: 5 for name in draw(st.lists(st.sampled_from(ADMINISTRASI_FIELDS), max_size=5))}
    elif change == "huge_text":  # an integer beyond 64 bits as the JSON text has it (json keeps it, orjson would not)
        return json.dumps(data).replace('"jml_suara_total": ', '"jml_suara_total": 1234567890123456789012345', 1).encode()
    return data


@st.composite
def party_batches(draw):
    """20-60 bodies of one or more districts in code order, as a snapshot holds them; some odd, some as text with
    whitespace, duplicate keys or as a caller's dict."""
    n = draw(st.integers(20, 60))
    odd = set(draw(st.lists(st.integers(0, n - 1), max_size=3)))
    out = {}
    for i in range(n):
        data = draw(odd_party_body()) if i in odd else draw(real_party_body())
        if isinstance(data, bytes):
            out[f"3301{i:09d}"] = data
            continue
        form = draw(st.sampled_from(["compact"] * 4 + ["spaced", "indented", "str", "dict", "duplicate"]))
        text = {"compact": lambda: json.dumps(data, separators=(",", ":")), "spaced": lambda: json.dumps(data),
                "indented": lambda: json.dumps(data, indent=2), "str": lambda: json.dumps(data), "dict": lambda: None,
                # a key twice: json and orjson keep the last value, at the place of the first
                "duplicate": lambda: json.dumps(data).replace('"jml_suara_partai": ', '"jml_suara_partai": 5, "jml_suara_partai": ', 1),
                }[form]()
        out[f"3301{i:09d}"] = data if form == "dict" else text if form == "str" else text.encode()
    return out


@pytest.mark.parametrize("compiled", READERS)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(bodies=party_batches())
def test_batches_of_real_party_bodies_with_odd_ones_read_as_the_general_code_reads_them(bodies, compiled):
    fast = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, _compiled=compiled)
    slow = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, fast=False)
    _assert_same(fast, slow)
    assert len(fast.table) + len(fast.rejects) == len(bodies)
    if len(fast.table):
        pd.testing.assert_frame_equal(to_election(fast, candidates=PARTY_COLUMNS).table, to_election(slow, candidates=PARTY_COLUMNS).table)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.fixed_dictionaries({name: st.one_of(*[st.integers(0, 300)] * 6, ODD_COUNT) for name in ADMINISTRASI_FIELDS}),
                min_size=5, max_size=30),
       st.lists(st.one_of(*[st.integers(0, 300)] * 6, ODD_COUNT), min_size=3, max_size=3))
def test_presidential_batches_with_odd_counts_read_as_the_general_code_reads_them(administrasi, votes):
    bodies = {f"3101011{i:06d}": json.dumps(body(administrasi=a, chart={"null": None, "100025": 1, "100026": 2, "100027": 3}
                                                 if i else dict(zip(("100025", "100026", "100027"), votes)))).encode()
              for i, a in enumerate(administrasi)}
    _assert_same(parse_tps_bodies(bodies), parse_tps_bodies(bodies, fast=False))


@pytest.mark.parametrize("odd", [-1, 10**9 + 1, 2**63, 2**64 - 1, 2**64 + 1, 1.5, 2.0, -0.0, 1e300, float("nan"), float("inf"),
                                 True, False, "3", "", [1], [], {"a": 1}, {}])
def test_the_column_check_refuses_anything_but_counts_anywhere_in_a_column(odd):
    for at in (0, 5_000, 9_999):
        values = [7] * 10_000
        values[at] = odd
        assert parse_module._checked_counts([[1, None], values]) is None
        values = [None] * 10_000
        values[at] = odd
        assert parse_module._checked_counts([values]) is None
    checked = parse_module._checked_counts([[0, None, 10**9], [None, None], []])
    assert [a.to_pylist() for a in checked] == [[0, None, 10**9], [None, None], []]
    assert all(str(a.type) == "int64" for a in checked)


def test_columns_of_plain_ints_are_read_as_pyarrow_reads_them():
    import pyarrow as pa

    columns = [[7] * 5_000 + [10**9, 0], (3, 0, None, 5), [None, 4], [0], list(range(300)), (None,) * 4]
    for values in columns:
        checked, = parse_module._checked_counts([values])
        inferred = pa.array(values)
        expected = pa.nulls(len(values), pa.int64()) if inferred.type == pa.null() else inferred
        assert checked.type == pa.int64() and checked.equals(expected)
    assert parse_module._plain_ints([3, None]) is None and parse_module._plain_ints([2**63]) is False


@pytest.mark.parametrize("compiled", READERS)
def test_a_party_number_of_one_body_out_of_range_is_rejected_alone(monkeypatch, compiled):
    bodies = {f"3301{i:09d}": json.dumps(party_body()).encode() for i in range(30)}
    bodies["3301000000017"] = json.dumps(party_body(chart={"1": {"jml_suara_total": 2, "jml_suara_partai": 1, "1001": 10**10},
                                                           "2": {"jml_suara_total": 1, "jml_suara_partai": 1}})).encode()
    calls = []
    strict = parse_module.parse_tps_bodies

    def spy(*args, **kwargs):
        calls.append(kwargs.get("_strict", False))
        return strict(*args, **kwargs)

    monkeypatch.setattr(parse_module, "parse_tps_bodies", spy)
    parsed = parse_module.parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, _compiled=compiled)
    # Python's reader checks a batch's numbers at the end, and reads the batch again body by body if one is
    # not a count; the compiled reader checks each as it comes, and sends that body to the general code.
    assert calls == ([False] if compiled else [False, True])
    assert list(parsed.rejects["unit_id"]) == ["3301000000017"] and "implausibly large" in parsed.rejects["reason"].iloc[0]
    assert len(parsed.table) == 29 and parsed.votes_long["unit_id"].nunique() == 29


def test_the_compiled_party_chart_reader_is_built_where_required():
    """CI sets FORENSIK_REQUIRE_COMPILED: there a failed compile (which pip only warns of) fails here."""
    import os

    if parse_module._party_chart_compiled is None:
        assert not os.environ.get("FORENSIK_REQUIRE_COMPILED"), "the compiled party-chart reader was not built (see pip's output)"
        pytest.skip("the compiled party-chart reader was not built (no C compiler at install)")


def _python_party_chart(chart):
    """What ``_fast_row`` reads of a party chart in Python: names, keys, lengths and numbers, or None."""
    names, entries = list(chart), list(chart.values())
    if "null" in chart:
        j = names.index("null")
        del names[j], entries[j]
    if len(entries) < 2 or set(map(type, entries)) != {dict} or not all(type(k) is str for k in chart):
        return None
    numbers = [v for e in entries for v in e.values()]
    keys = [k for e in entries for k in e]
    if not all(v is None or type(v) is int and 0 <= v <= 10**9 for v in numbers) or not all(type(k) is str for k in keys):
        return None
    return names, keys, tuple(map(len, entries)), [0 if v is None else v for v in numbers], [i for i, v in enumerate(numbers) if v is None]


PARTY_ENTRY = st.one_of(
    st.dictionaries(st.sampled_from(["jml_suara_total", "jml_suara_partai", "1001", "1002", "77"]),
                    st.one_of(*[st.integers(0, 10**9)] * 6, st.integers(-5, 2**65),
                              st.sampled_from([True, False, None, 1.0, 2.5, "3", [1], {}])), max_size=5),
    st.sampled_from([None, 3, [1, 2], "x"]))


@pytest.mark.skipif(parse_module._party_chart_compiled is None, reason="the compiled party-chart reader was not built (no C compiler at install)")
@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.sampled_from(["1", "2", "3", "10", "null"]), PARTY_ENTRY, max_size=5),
       st.one_of(st.none(), st.dictionaries(st.sampled_from(["1", "2", "3", "10"]), PARTY_ENTRY, min_size=2, max_size=4)))
def test_the_compiled_party_chart_reader_reads_as_python_does(chart, previous_chart):
    """Names, keys, lengths, numbers and nulls of a chart, or None; the previous body's lists where equal."""
    from array import array

    previous = _python_party_chart(previous_chart) if previous_chart is not None else None
    previous = None if previous is None else (list(previous[0]), list(previous[1]), previous[2], 1)
    out, missing = array("q", [99] * 7), [5]  # scratch holding another body's numbers
    got = parse_module._party_chart_compiled(chart, out, missing, previous)
    expected = _python_party_chart(chart)
    if expected is None:
        assert got is None
        return
    names, keys, lens = got
    assert (names, keys, lens, list(out), missing) == expected
    if previous is not None:
        assert (names is previous[0]) == (names == previous[0]) and (keys is previous[1]) == (keys == previous[1])


def test_the_compiled_party_chart_reader_refuses_what_is_not_a_count():
    from array import array

    if parse_module._party_chart_compiled is None:
        pytest.skip("the compiled party-chart reader was not built (no C compiler at install)")

    class Count(int):
        pass

    def read(chart, previous=None):
        return parse_module._party_chart_compiled(chart, array("q"), [], previous)

    limit = parse_module._LIMIT  # the .pyx has its own copy of the parser's bound: both must agree
    for value in (True, False, 1.0, -1, limit + 1, 2**63, 2**64 + 1, Count(3), np.int64(3), "3"):
        assert read({"1": {"jml_suara_total": 1}, "2": {"1": value}}) is None, value
    assert read({"null": None, "1": {"a": limit, "b": 0}, "2": {}}) == (["1", "2"], ["a", "b"], (2, 0))
    assert read({"1": {"a": 1}}) is None and read({}) is None  # fewer than two entries
    assert read({"1": {"a": 1}, "2": 5}) is None  # a party total alone: the caller reads it

    class Key(str):  # a caller's key whose comparison changes the chart: never compared, the chart is not read
        def __eq__(self, other):
            chart["2"].update({str(k): 1 for k in range(1000)})
            return str.__eq__(self, other)

        __hash__ = str.__hash__

    chart = {Key("1"): {"a": 1}, "2": {"b": 2}}
    assert read(chart) is None and read({"1": {Key("a"): 1}, "2": {"b": 2}}) is None
    # Arguments of the wrong kind are refused, never written through.
    for out, missing, previous in ((None, [], None), (array("b"), [], None), (array("q"), None, None), (array("q"), [], ()), (array("q"), [], ([],))):
        with pytest.raises((TypeError, ValueError)):
            parse_module._party_chart_compiled({"1": {"a": 1}, "2": {"b": 2}}, out, missing, previous)


def test_columns_of_times_read_as_one_value_at_a_time():
    from analysis.sources.sirekap.parse import _wib, _wib_text

    for values in ([None] * 5, [None], [None, "20240215 101421"], ["20240215 101421", None], [], ("x", None)):
        got = _wib_text(values, "%Y%m%d %H%M%S")
        expected = _wib(pd.to_datetime(pd.Series(list(values), dtype=object), errors="coerce", format="%Y%m%d %H%M%S"))
        assert type(got) is type(expected) and got.dtype == expected.dtype
        pd.testing.assert_series_equal(pd.Series(got), pd.Series(expected))


def _small_snapshot(tmp_path, name="s"):
    from analysis.sources.sirekap import endpoints
    from analysis.sources.sirekap.store import SnapshotStore

    desa, store = "3101011001", SnapshotStore(tmp_path, name)
    store.write_meta({"ballot": "ppwp", "region": desa, "level": "tps"})
    listing = [{"nama": f"TPS {i:03d}", "id": i, "kode": f"{desa}{i:03d}", "tingkat": 5} for i in range(1, 4)]
    store.put(endpoints.wilayah_path(desa), "u", json.dumps(listing).encode(), status=200, attempts=1)
    for i in (1, 2):
        store.put(endpoints.hhcw_path("ppwp", f"{desa}{i:03d}"), "u", json.dumps(body()).encode(), status=200, attempts=1)
    store.close()
    return store.path


def test_a_snapshot_build_leaves_the_garbage_collector_as_it_found_it(tmp_path):
    import gc

    from analysis.sources.sirekap.parse import read_snapshot

    path = _small_snapshot(tmp_path)
    assert gc.isenabled()
    read_snapshot(path)
    assert gc.isenabled()
    gc.disable()
    try:
        read_snapshot(path)
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.skipif(not hasattr(__import__("os"), "O_NOATIME"), reason="no O_NOATIME on this system")
def test_files_of_another_owner_are_read_without_o_noatime(tmp_path, monkeypatch):
    import errno
    import os

    from analysis.sources.sirekap.parse import read_snapshot

    path = _small_snapshot(tmp_path)
    expected = read_snapshot(path)
    real_open, refused = os.open, []

    def open_as_another_user(file, flags, *args, **kwargs):  # O_NOATIME is for the owner only: EPERM
        if flags & os.O_NOATIME and str(file).startswith(str(tmp_path)):
            refused.append(file)
            raise PermissionError(errno.EPERM, "Operation not permitted", file)
        return real_open(file, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_as_another_user)
    monkeypatch.setattr(parse_module, "_OPEN_FLAGS", [os.O_RDONLY | os.O_NOATIME])
    built = read_snapshot(path)
    assert len(refused) == 1 and parse_module._OPEN_FLAGS == [os.O_RDONLY]  # asked once, then plainly
    pd.testing.assert_frame_equal(built.election.table, expected.election.table)
    assert list(built.election.table["fetch_status"]) == ["ok", "ok", "not_fetched"]


def test_a_snapshot_body_that_cannot_be_read_is_a_failed_row_and_the_others_are_read(tmp_path):
    from analysis.sources.sirekap import endpoints
    from analysis.sources.sirekap.parse import read_snapshot
    from analysis.sources.sirekap.store import SnapshotStore

    desa, store = "3101011001", SnapshotStore(tmp_path, "s")
    store.write_meta({"ballot": "ppwp", "region": desa, "level": "tps"})
    listing = [{"nama": f"TPS {i:03d}", "id": i, "kode": f"{desa}{i:03d}", "tingkat": 5} for i in range(1, 6)]
    store.put(endpoints.wilayah_path(desa), "u", json.dumps(listing).encode(), status=200, attempts=1)
    for i in (1, 2, 3):
        store.put(endpoints.hhcw_path("ppwp", f"{desa}{i:03d}"), "u", json.dumps(body()).encode(), status=200, attempts=1)
    store.put(endpoints.hhcw_path("ppwp", f"{desa}005"), "u", b'{"chart": {"100025": "banyak"}}', status=200, attempts=1)
    store.close()
    (store.path / endpoints.hhcw_path("ppwp", f"{desa}002")).unlink()  # gone since the scrape
    built = read_snapshot(store.path)
    table = built.election.table
    assert list(table["fetch_status"]) == ["ok", "failed", "ok", "not_fetched", "rejected"]
    assert list(built.rejects["unit_id"]) == [f"{desa}005"] and "not a count" in built.rejects["reason"].iloc[0]
    assert table.loc[f"{desa}001", "01"] == 186
    assert table.loc[[f"{desa}002", f"{desa}004", f"{desa}005"], ["01", "voters"]].isna().all().all()
    # A manifest line of an "ok" body without a usable file name: failed too, not a traceback.
    with open(store.path / "manifest.jsonl", "a") as manifest:
        manifest.write(json.dumps({"path": endpoints.hhcw_path("ppwp", f"{desa}003"), "outcome": "ok", "file": None}) + "\n")
    assert list(read_snapshot(store.path).election.table["fetch_status"]) == ["ok", "failed", "failed", "not_fetched", "rejected"]


def test_huge_pages_are_off_while_builds_run_and_restored_after_the_last_even_when_they_overlap():
    import threading

    switch = parse_module._set_madvise_hugepage
    if switch is None:
        pytest.skip("this numpy has no madvise hugepage switch")
    before = switch(True)  # a known state: on
    try:
        first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
        seen = {}

        def first():
            with parse_module._small_pages():
                first_in.set()
                second_in.wait(5)
            first_out.set()

        def second():
            first_in.wait(5)
            with parse_module._small_pages():
                second_in.set()
                first_out.wait(5)
                seen["inside, after the first left"] = switch(False)  # reads the setting (and keeps it off)

        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert seen == {"inside, after the first left": False}
        assert switch(True) is True  # restored once the last build left
        with pytest.raises(RuntimeError):
            with parse_module._small_pages():
                raise RuntimeError("a build that fails")
        assert switch(True) is True
    finally:
        switch(before)


# ----------------------------------------------------------------------------- legislative bodies as served (issue 19)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sirekap_legislative"
LEGISLATIVE_EXAMPLES = SHARED / "examples" / "legislative"


def _fixture(path):
    return (FIXTURES / path).read_bytes()


NESTED = "pemilu/hhcw/pdpr/36/3601/360101/3601011001/3601011001001.json"
NESTED_LATE = "pemilu/hhcw/pdpr/36/3601/360101/3601011001/3601011001002.json"
FLAT = "pemilu/hhcw/pdpr/36/3601/360101/3601011001/3601011001003.json"
PDPD = "pemilu/hhcw/pdpd/11/1101/110101/1101012001/1101012001001.json"


@pytest.mark.parametrize("compiled", READERS)
@pytest.mark.parametrize("fast", [True, False])
def test_served_pdpr_bodies_give_party_totals_candidate_votes_and_the_dapil(compiled, fast):
    bodies = {path: _fixture(path) for path in (NESTED, NESTED_LATE, FLAT)}
    parsed = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, photos=5, fast=fast, _compiled=compiled)
    assert parsed.rejects.empty
    table = parsed.table
    assert table.loc["3601011001001", ["01", "02", "03", "24"]].tolist() == [21, 17, 9, 13]
    assert pd.isna(table.at["3601011001002", "01"]) and table.at["3601011001002", "02"] == 15
    assert table.loc["3601011001003", ["01", "02", "24"]].tolist() == [20, 17, 13] and pd.isna(table.at["3601011001003", "03"])
    assert table["dapil"].tolist()[:2] == ["3601", "3601"] and pd.isna(table.at["3601011001003", "dapil"])
    assert table["chart_parties"].tolist() == [4, 4, 4] and table["photo_count"].tolist() == [2, 3, 1]
    assert str(table.at["3601011001002", "photo_3_time"]) == "2024-03-05 12:00:00+07:00" and "photo_5_time" in table
    long = parsed.votes_long
    first = long[long["unit_id"] == "3601011001001"]
    assert [(p, c, None if pd.isna(v) else int(v)) for p, c, v in first[["party", "candidate", "votes"]].itertuples(index=False)] == [
        ("1", "", 4), ("1", "900101", 10), ("1", "900102", 7), ("2", "", 2), ("2", "900201", 15), ("2", "900202", 0),
        ("3", "", 9), ("24", "", 1), ("24", "902401", 12), ("24", "902402", None)]
    late = long[long["unit_id"] == "3601011001002"].set_index("candidate")
    assert late.loc["900101", "votes"] is pd.NA and late.loc["900201", "votes"] == 11
    assert "3601011001003" not in set(long["unit_id"])  # the flat chart has party totals alone


def test_a_dpd_body_keeps_five_photo_times():
    parsed = parse_tps_bodies({PDPD: _fixture(PDPD)}, candidates={f"7001{k:02d}": f"{k:02d}" for k in range(1, 5)}, photos=5, dapil=True)
    row = parsed.table.iloc[0]
    assert parsed.rejects.empty and row["04"] == 45 and row["photo_count"] == 5
    assert [str(row[f"photo_{i}_time"]) for i in (1, 5)] == ["2024-02-20 10:46:00+07:00", "2024-02-21 01:11:18+07:00"]
    assert pd.isna(row["dapil"])  # DPD bodies carry no kode_dapil: the province is the district


@pytest.mark.skipif(not LEGISLATIVE_EXAMPLES.exists(), reason="../shared/data/sirekap/examples/legislative is absent")
def test_the_real_pdpd_bodies_are_read_whole():
    paths = sorted(LEGISLATIVE_EXAMPLES.glob("hhcw_pdpd_tps_*.json"))
    bodies = {p.name.split("_")[3] + ".json": p.read_bytes() for p in paths}
    ids = sorted({k for b in bodies.values() for k in json.loads(b)["chart"] if k != "null"})
    parsed = parse_tps_bodies(bodies, candidates={i: i for i in ids}, photos=5, dapil=True)
    assert parsed.rejects.empty and len(parsed.table) == len(paths)
    for code, raw in bodies.items():
        data = json.loads(raw)
        row = parsed.table.loc[code[:13]]
        assert all(row[k] == v for k, v in data["chart"].items() if k != "null")
        assert row["photo_count"] == len(data["images"]) and pd.notna(row[f"photo_{len(data['images'])}_time"])


@pytest.mark.parametrize("change, reason", [
    ({"caleg": [1, 2]}, "caleg is a list"),
    ({"caleg": {"1": {"900101": 1, "null": 3}}}, '"null"] holds a number'),
    ({"caleg": {"1": {"nama": 1}}}, "not a candidate id"),
    ({"caleg": {"1": 5}}, "caleg[1] is a int"),
    ({"caleg": {"31": {"1": 1}}}, "caleg has an unknown party number"),
    ({"caleg": {"1": {"900101": -2}}}, "negative"),
    ({"caleg": {"1": {"900101": 1}, "2": {"900101": 1}}}, "appears twice"),
    ({"kode_dapil": "36/01"}, "kode_dapil is not a dapil code"),
    ({"kode_dapil": 3601}, "kode_dapil is not a dapil code"),
    ({"chart": {"1": {"jml_suara_total": 1, "persen": 2}}}, "neither a candidate id nor a party count"),
])
def test_bad_served_party_bodies_are_rejected_with_a_reason(change, reason):
    data = {**json.loads(_fixture(NESTED)), **change}
    bodies = {"3601011001001": json.dumps(data).encode(), "3601011001002": _fixture(NESTED_LATE)}
    for compiled in READERS:
        for fast in (True, False):
            parsed = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, fast=fast, _compiled=compiled)
            assert list(parsed.rejects["unit_id"]) == ["3601011001001"], parsed.rejects
            assert reason in parsed.rejects["reason"].iloc[0]
            assert set(parsed.votes_long["unit_id"]) == {"3601011001002"}


CALEG_COUNT = st.one_of(*[st.integers(0, 300)] * 6, st.none())


@st.composite
def served_party_bodies(draw):
    """Bodies of one or two dapils in the shapes served (nested chart + caleg, flat, nulls anywhere, the two
    jml_suara keys in either order, parties without candidates), and the votes they hold."""
    n = draw(st.integers(1, 25))
    parties = draw(st.lists(st.sampled_from(["1", "2", "5", "15", "17", "24"]), unique=True, min_size=1, max_size=5))
    per_party = {p: [f"{900000 + 100 * int(p) + k}" for k in range(draw(st.integers(0, 7)))] for p in parties}
    swapped = draw(st.booleans())
    bodies, expected = {}, {}
    for i in range(n):
        code = f"36010110010{i:02d}"
        kind = draw(st.sampled_from(["nested"] * 6 + ["flat", "no_chart", "no_caleg"]))
        if kind == "flat":
            chart = {p: draw(CALEG_COUNT) for p in parties}
            data = {"chart": chart, "images": [None], "administrasi": None, "psu": None, "ts": "2024-02-16 08:00:00",
                    "status_suara": True, "status_adm": False}
            expected[code] = ({p: chart[p] for p in parties}, [])
        elif kind == "no_chart":
            data = {"chart": None, "images": [None, None, None], "kode_dapil": None, "administrasi": None, "caleg": None,
                    "psu": None, "ts": "2024-02-19 08:00:00", "status_suara": False, "status_adm": False}
            expected[code] = ({}, [])
        else:
            chart, caleg, rows = {}, {}, []
            for p in parties:
                total, only = draw(CALEG_COUNT), draw(CALEG_COUNT)
                chart[p] = {"jml_suara_partai": only, "jml_suara_total": total} if swapped else {"jml_suara_total": total, "jml_suara_partai": only}
                rows.append((p, "", only))
                if kind == "nested":
                    votes = {c: draw(CALEG_COUNT) for c in per_party[p]}
                    caleg[p] = {**votes, "null": None}
                    rows += [(p, c, v) for c, v in votes.items()]
            data = {"chart": chart, "images": [None, None, None], "kode_dapil": "3601" if i < n // 2 else "3602",
                    "administrasi": None, **({"caleg": caleg} if kind == "nested" else {}), "psu": None,
                    "ts": "2024-02-19 08:00:00", "status_suara": True, "status_adm": False}
            expected[code] = ({p: chart[p]["jml_suara_total"] for p in parties}, rows)
        bodies[code] = json.dumps(data, separators=(",", ":")).encode()
    return bodies, expected


@pytest.mark.parametrize("compiled", READERS)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(served=served_party_bodies())
def test_served_party_bodies_keep_every_number_fast_or_slow(served, compiled):
    bodies, expected = served
    fast = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, _compiled=compiled)
    _assert_same(fast, parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, fast=False))
    assert fast.rejects.empty and len(fast.table) == len(bodies)
    got = [(u, p, c, None if pd.isna(v) else int(v)) for u, p, c, v in fast.votes_long.itertuples(index=False)]
    assert got == [(u, *row) for u, (_, rows) in expected.items() for row in rows]
    for code, (totals, _) in expected.items():
        for party, total in totals.items():
            value = fast.table.at[code, PARTY_COLUMNS[party]]
            assert (pd.isna(value) and total is None) or value == total


CALEG = st.one_of(
    st.none(), st.just([1]),
    st.dictionaries(st.sampled_from(["1", "2", "15", "24", "99", "null"]),
                    st.one_of(st.none(), st.just(3), st.dictionaries(
                        st.sampled_from(["1001", "1002", "2001", "null", "jml_suara_partai", "jml_suara_total", "x", ""]),
                        COUNT, max_size=4)), max_size=4))


@st.composite
def odd_served_bodies(draw):
    out = {}
    for i in range(draw(st.integers(1, 6))):
        data = {"chart": draw(party_chart()), "images": draw(IMAGES), "administrasi": draw(ADMINISTRASI),
                "psu": None, "ts": "2024-02-19 08:00:00", "status_suara": True, "status_adm": True}
        if draw(st.booleans()):
            data["caleg"] = draw(CALEG)
        if draw(st.booleans()):
            data["kode_dapil"] = draw(st.sampled_from([None, "3601", "320012", "36/1", 3601, "٣٦٠١", "1" * 14]))
        out[f"310101100100{i}"] = json.dumps(data).encode() if draw(st.booleans()) else data
    return out


@pytest.mark.parametrize("compiled", READERS)
# 80 examples per reader: each builds two tables (~0.3 s); 250 took most of a slow worker's time.
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=odd_served_bodies())
def test_odd_caleg_and_kode_dapil_read_as_the_general_code_reads_them(bodies, compiled):
    fast = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, photos=5, _compiled=compiled)
    _assert_same(fast, parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, photos=5, fast=False))
    assert len(fast.table) + len(fast.rejects) == len(bodies)


@pytest.mark.skipif(parse_module._party_chart_compiled is None, reason="the compiled party-chart reader was not built (no C compiler at install)")
@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["1", "2", "3", "null"]), PARTY_ENTRY, max_size=4),
       st.dictionaries(st.sampled_from(["1", "2", "3", "9", "null"]),
                       st.one_of(st.none(), st.just(2), st.dictionaries(st.sampled_from(["1001", "1002", "null", "jml", "j1", "7"]),
                                                                          st.one_of(st.integers(0, 10**9), st.none(), st.just(-1)),
                                                                          max_size=3)), max_size=4))
def test_the_compiled_reader_with_caleg_reads_as_the_python_merge_does(chart, caleg):
    from array import array

    names, entries = list(chart), list(chart.values())
    if "null" in chart:
        j = names.index("null")
        del names[j], entries[j]
    merged = parse_module._with_caleg(names, entries, caleg)
    expected = None
    if merged is not None and not any(type(e) is dict and any(k[:1] == "j" for k in (caleg.get(n) or {})) for n, e in zip(names, merged)):
        expected = _python_party_chart(dict(zip(names, merged)))
    got = parse_module._party_chart_compiled(chart, array("q"), [], None, caleg)
    if expected is None:
        assert got is None
    else:
        out, missing = array("q"), []
        names2, keys, lens = parse_module._party_chart_compiled(chart, out, missing, None, caleg)
        assert (names2, keys, lens, list(out), missing) == expected


PHOTO = "https://sirekap-obj-formc.kpu.go.id/204f/pemilu/pdpr/36/01/01/10/01/3601011001001-20240215-101421--0000-0.jpg"
#: Photo names around the one the pattern takes: other digits, a slash after, a line break, too short, not ASCII.
PHOTO_NAMES = st.sampled_from([
    PHOTO, PHOTO.replace("-0.jpg", ""), PHOTO.replace("--0000-0.jpg", "--"), PHOTO.replace("--0000-0.jpg", "-"),
    PHOTO + "\n", PHOTO + "/x.jpg", PHOTO.replace("20240215", "2024021٥"), PHOTO.replace("101421", "10142"),
    PHOTO.replace("3601011001001-", "360101100100-"), PHOTO.replace("https://", "https://é/"), "/3601011001001-20240215-101421--",
    "3601011001001-20240215-101421--x.jpg", "", "/", PHOTO.replace("pdpr/", "pdpr//"), PHOTO.replace("-101421", "_101421")])
#: The fields beside the chart: odd and usual values of each, as the compiled party row must read them.
ROW_FIELDS = {
    "images": st.one_of(st.none(), st.just("x"), st.lists(st.one_of(st.none(), st.just(1), st.just([]), PHOTO_NAMES, PHOTO_NAMES), max_size=6)),
    "psu": st.sampled_from([None, "", " ", "\u3000", "\u00a0x", "Pemungutan Suara Ulang", 3, ["x"]]),
    "ts": st.sampled_from(["2024-02-19 08:00:00", None, 5, "x"]),
    "status_suara": st.sampled_from([True, False, None, 1, 0]),
    "status_adm": st.sampled_from([True, False, None, "true"]),
    "kode_dapil": st.sampled_from(["3601", None, "36", "1" * 13, "1" * 14, "3", "", "٣٦٠١", "36a1", 3601, ["3601"]]),
    "administrasi": st.one_of(
        st.none(), st.just({}), st.fixed_dictionaries({name: st.one_of(*[st.integers(0, 300)] * 6, st.none(), ODD_COUNT)
                                                     for name in ADMINISTRASI_FIELDS}),
        st.just({**{name: 1 for name in ADMINISTRASI_FIELDS[1:]}, "lain": 1}),
        st.just({**{name: 1 for name in ADMINISTRASI_FIELDS}, "lain": [1]})),
}


USUAL_FIELDS = {"images": [PHOTO, PHOTO.replace("101421", "111421"), None], "psu": None, "ts": "2024-02-19 08:00:00",
                "status_suara": True, "status_adm": True, "kode_dapil": "3601", "administrasi": dict.fromkeys(ADMINISTRASI_FIELDS, 7)}


@st.composite
def party_rows_of_one_layout(draw):
    """Bodies of one district in the served shape (chart totals, caleg votes, kode_dapil), every one in the same
    layout, with the fields besides the chart drawn from usual and odd values, and now and then a deep value."""
    bodies = {}
    for i in range(draw(st.integers(2, 8))):
        chart = {"null": None, **{p: {"jml_suara_total": draw(CALEG_COUNT), "jml_suara_partai": draw(CALEG_COUNT)} for p in ("1", "2", "24")}}
        caleg = {"null": None, **{p: {**{f"9{p:0>2}0{k}": draw(CALEG_COUNT) for k in (1, 2)}, "null": None} for p in ("1", "2", "24")}}
        # Each field odd one time in four (else as served), so that many bodies are rows made in C.
        data = {"chart": chart, "caleg": caleg, **{name: draw(values) if draw(st.integers(0, 3)) == 0 else USUAL_FIELDS[name]
                                                   for name, values in ROW_FIELDS.items()}}
        extra = draw(st.sampled_from([None] * 6 + ["mode", "deep", "null_list"]))
        if extra == "mode":
            data["mode"] = draw(st.sampled_from(["hhcw", [1], {"a": 1}]))
        elif extra == "deep":  # a value nobody reads, nested deeper than a real body
            data["x"] = json.loads("[" * 120 + "]" * 120)
        elif extra == "null_list":
            chart["null"] = [1]
        bodies[f"36010110010{i:02d}"] = json.dumps(data, separators=(",", ":")).encode()
    return bodies


@pytest.mark.skipif(parse_module._party_row_compiled is None, reason="the compiled party-row reader was not built (no C compiler at install)")
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies=party_rows_of_one_layout())
def test_the_compiled_party_row_reads_every_field_as_python_does(bodies):
    kwargs = dict(candidates=PARTY_COLUMNS, parties=True, photos=5)
    rows_in_c = parse_module._party_row_compiled
    errors = []

    def spy(*args):  # a raise would send the body to the general code and hide itself in the comparison
        try:
            return rows_in_c(*args)
        except Exception as err:
            errors.append(err)
            raise

    try:
        parse_module._party_row_compiled = spy
        compiled = parse_tps_bodies(bodies, **kwargs)
        parse_module._party_row_compiled = None
        python_rows = parse_tps_bodies(bodies, **kwargs)  # the compiled chart reader alone
    finally:
        parse_module._party_row_compiled = rows_in_c
    assert not errors
    _assert_same(compiled, python_rows)
    _assert_same(compiled, parse_tps_bodies(bodies, **kwargs, fast=False))


def test_the_compiled_party_row_takes_the_usual_bodies(monkeypatch):
    """The bodies of a district after its first become rows in C (so the test above compares what it means to)."""
    if parse_module._party_row_compiled is None:
        pytest.skip("the compiled party-row reader was not built (no C compiler at install)")
    made = []
    reader = parse_module._party_row_compiled
    monkeypatch.setattr(parse_module, "_party_row_compiled", lambda *args: made.append(reader(*args)) or made[-1])
    usual = json.loads(_fixture(NESTED))
    images = [[], [PHOTO], [PHOTO, None], [PHOTO, None, PHOTO + "x"], None, "x"]  # None, "x": no photo list
    bodies = {f"36010110010{i:02d}": json.dumps({**usual, "images": images[i], "psu": [None, " x"][i % 2]}).encode() for i in range(6)}
    del_images = {**usual}
    del del_images["images"]
    bodies["3601011001006"] = json.dumps(del_images).encode()
    parsed = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, photos=5)
    assert [row is not None for row in made] == [False] + [True] * 6
    _assert_same(parsed, parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, photos=5, fast=False))
    assert str(parsed.table["photo_1_time"].iloc[1]) == "2024-02-15 10:14:21+07:00"
    assert parsed.table["photo_count"].tolist()[:4] == [0, 1, 1, 2] and parsed.table["photo_count"].iloc[4:].isna().all()


def test_read_raw_takes_the_ballots_bodies_from_a_dump_folder_or_zip(tmp_path):
    import shutil

    from analysis.sources.sirekap.parse import read_raw, with_dapil_check

    dump = tmp_path / "dump" / "top"
    shutil.copytree(FIXTURES, dump)
    archive = shutil.make_archive(str(tmp_path / "dump"), "zip", tmp_path / "dump")
    built = with_dapil_check(read_raw(dump.parent, ballot="pdpr"))
    zipped = read_raw(archive, ballot="pdpr")
    pd.testing.assert_frame_equal(built.election.table, zipped.election.table)
    assert built.counts["tps_bodies"] == 3 and built.counts["files_not_read"] == 2 and built.rejects.empty
    assert built.election.provenance["ballot"] == "pdpr" and "Sirekap paths" in built.election.provenance["source"]
    dpd = read_raw(archive, ballot="pdpd")
    assert list(dpd.election.candidates) == ["700101", "700102", "700103", "700104"]  # no DPD list in the dump: ids
    with pytest.raises(ValueError, match="holds no TPS body of ppwp"):
        read_raw(archive, ballot="ppwp")
    check = built.dapil_check.set_index(["party", "kind", "candidate"])
    assert check.loc[("2", "party_total", ""), "difference"] == 0 and check.loc[("1", "candidate", "900101"), "tps_unpublished"] == 1


@pytest.mark.parametrize("compiled", READERS)
def test_served_party_bodies_take_the_fast_path(monkeypatch, compiled):
    """The shape Sirekap served is the usual one: no body of it is left to the general code (which reads it the same, slower)."""
    calls = []
    general = parse_module._row
    monkeypatch.setattr(parse_module, "_row", lambda *a, **k: calls.append(a[0]) or general(*a, **k))
    bodies = {}
    for i in range(20):
        data = json.loads(_fixture(NESTED if i % 2 else NESTED_LATE))
        bodies[f"36010110010{i:02d}"] = json.dumps(data, separators=(",", ":")).encode()
    bodies["3601011001099"] = _fixture(FLAT)
    parsed = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True, photos=5, _compiled=compiled)
    assert calls == [] and parsed.rejects.empty and len(parsed.table) == 21

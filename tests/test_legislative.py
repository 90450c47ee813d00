import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from analysis.legislative import party_form_checks, party_gain, party_misreadings
from analysis.sources.sirekap.parse import PARTY_COLUMNS, parse_tps_bodies, to_election

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "sirekap_legislative" / "pemilu" / "hhcw" / "pdpr"


def build(bodies):
    parsed = parse_tps_bodies(bodies, candidates=PARTY_COLUMNS, parties=True)
    return to_election(parsed, candidates=PARTY_COLUMNS), parsed.votes_long


@pytest.fixture()
def served():
    return {p.name: json.loads(p.read_bytes()) for p in sorted(FIXTURES.rglob("*.json"))}


def test_party_lines_that_do_not_add_up_per_party_and_candidate(served):
    election, long = build({k: json.dumps(v) for k, v in served.items()})
    forms = party_form_checks(election, long)
    assert forms.by_party.loc["02", ["evaluable", "failed", "net_difference"]].tolist() == [2, 1, -1.0]
    assert forms.broken[["unit_id", "party", "total", "parts"]].values.tolist() == [["3601011001002", "2", 15.0, 14.0]]
    row = forms.by_candidate.set_index("candidate").loc["900201"]
    assert (row["tps"], row["tps_in_broken_forms"], row["votes"], row["votes_in_broken_forms"]) == (2, 1, 26, 11)


def test_a_misread_candidate_is_found_by_one_edit(served):
    body = served["3601011001001.json"]
    body["caleg"]["1"]["900101"] = 70  # 10 written, 70 read: a substituted digit
    election, long = build({"3601011001001": json.dumps(body)})
    found = party_misreadings(election, long)
    repairs = found.table[found.table["party"] == "1"]
    assert ("900101", 70, 10) in set(zip(repairs["field"], repairs["reported"], repairs["proposed"]))
    assert found.summary().loc["explained by one OCR edit", "count"] == 1


def test_a_party_gain_is_split_into_new_and_revised_tps(served):
    first = {k: v for k, v in served.items() if k != "3601011001003.json"}
    before, before_long = build({k: json.dumps(v) for k, v in first.items()})
    later = json.loads(json.dumps(served))
    later["3601011001001.json"]["chart"]["15"] = {"jml_suara_total": 30, "jml_suara_partai": 30}  # party 15 appears, valid unchanged
    after, after_long = build({k: json.dumps(v) for k, v in later.items()})
    gain = party_gain(before, after, "15", before_long=before_long, after_long=after_long)
    assert gain.summary.loc["newly published", "party_gain"] == 30
    assert gain.summary.loc["revised: party up, valid ballots not up", "tps"] == 0  # NA before: newly published
    assert gain.tps.iloc[0]["unit_id"] == "3601011001001" and 0 < gain.share_of_added <= 1
    with pytest.raises(KeyError):
        party_gain(before, after, "99")


@pytest.mark.slow
def test_the_dpr_notebook_runs_on_two_builds(tmp_path):
    """notebooks/dpr.ipynb on two DPR RI builds of the test server's tree (the later one with a misread number)."""
    import sys

    papermill = pytest.importorskip("papermill")
    from analysis.cli import main
    from analysis.sources.sirekap.testserver import legislative_tree
    from analysis.synth import make_election

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_scrape import store_tree

    election = make_election(scale=0.0002, min_tps=25, provinces_only=["11", "31"], seed=5).election
    early = replace(election, table=election.table.iloc[: len(election.table) // 2])
    for name, e, seed in (("before", early, 3), ("after", election, 3)):
        tree, _ = legislative_tree(e, ballot="pdpr", seed=seed, nulls=0.02, flat=0.05)
        if name == "after":
            path = next(p for p in sorted(tree) if p.count("/") == 7 and b'"caleg":{' in tree[p])
            body = json.loads(tree[path])
            party = next(iter(body["caleg"]))
            cid = next(k for k in body["caleg"][party] if k != "null")
            body["caleg"][party][cid] = (body["caleg"][party][cid] or 0) * 10 + 7  # a digit inserted
            tree[path] = json.dumps(body).encode()
        snapshot = store_tree(tree, e, tmp_path / name, "pdpr")
        assert main(["build", "--raw", str(snapshot), "--out", str(tmp_path / f"{name}.parquet")]) == 0
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    out = tmp_path / "dpr.ipynb"
    papermill.execute_notebook(str(notebooks / "dpr.ipynb"), str(out), kernel_name="python3", progress_bar=False, cwd=str(notebooks),
                               parameters={"data_path": str(tmp_path / "after.parquet"), "before_path": str(tmp_path / "before.parquet")})
    text = out.read_text()
    assert "newly published" in text and "explained by one OCR edit" in text
    stored = json.loads((notebooks / "dpr.ipynb").read_text())
    assert all(not c.get("outputs") for c in stored["cells"] if c["cell_type"] == "code")  # stored without outputs

"""analysis/placebo.py: false flags on real clean elections, read off rendered report sets."""

import json

import pandas as pd
import pytest

from analysis.placebo import ANY, build_placebo, load_placebo, method_of, placebo_rows


def _flag(test, region, flagged, q):
    return {"test": test, "region": region, "statistic": 1.0, "pvalue": q / 2, "qvalue": q, "flagged": flagged,
            "note": ""}


def _site(tmp_path, national, within, election_tests=()):
    reports = [{"code": "national", "status": "ok",
                "summary": {"flags": national, "election_tests": list(election_tests)}}]
    reports += [{"code": code, "status": "ok", "summary": {"flags": flags}} for code, flags in within.items()]
    (tmp_path / "index.json").write_text(json.dumps({"reports": reports, "build": {"data_file": "x.parquet"}}))
    return tmp_path


def test_method_of_drops_the_column():
    assert method_of("second digit (02)") == "second digit" and method_of("broken forms rate") == "broken forms rate"


def test_rows_count_regions_under_both_rules(tmp_path):
    national = [_flag("second digit (A)", "r1", False, 0.01), _flag("second digit (B)", "r1", False, 0.2),
                _flag("second digit (A)", "r2", True, 0.001), _flag("extreme cluster", "r2", False, 0.5),
                _flag("extreme cluster", "r3", False, 0.9), _flag("second digit (A)", "r3", False, 0.9)]
    within = {"r1": [_flag("extreme cluster", "s1", False, 0.04), _flag("extreme cluster", "s2", False, 0.5)],
              "r2": [_flag("extreme cluster", "s1", False, 0.5)]}
    site = _site(tmp_path, national, within, [{"test": "last digit (A)", "pvalue": 0.5, "flagged": False}])
    rows = placebo_rows(site, "Testland").set_index(["page", "method"])
    assert rows.loc[("national", ANY), "flagged"] == 1 and rows.loc[("national", ANY), "regions"] == 3
    assert rows.loc[("national", "second digit"), "flagged_per_family_bh"] == 2  # r1 and r2 under the old rule
    assert rows.loc[("within", "extreme cluster"), "regions"] == 3  # r1/s1, r1/s2 and r2/s1 kept apart
    assert rows.loc[("within", "extreme cluster"), "flagged_per_family_bh"] == 1
    assert rows.loc[("election", "election-level tests"), "flagged"] == 0


def test_failed_sites_are_refused_and_tables_round_trip(tmp_path):
    site = _site(tmp_path / "a", [_flag("t", "r", False, 0.5)], {}) if (tmp_path / "a").mkdir() is None else None
    path = build_placebo([("Testland", site)], directory=tmp_path / "out")
    table, meta = load_placebo(path.parent)
    assert list(table["election"].unique()) == ["Testland"] and meta["sites"]["Testland"]["data_file"] == "x.parquet"
    body = json.loads((site / "index.json").read_text())
    body["reports"][0]["status"] = "failed"
    (site / "index.json").write_text(json.dumps(body))
    with pytest.raises(ValueError, match="failed"):
        placebo_rows(site, "Testland")

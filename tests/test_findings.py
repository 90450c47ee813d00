"""The Findings page: coverage counts, the favouring test's error rate and power, escaping, and the real table.

The favouring test's null: given each repaired misreading and the direction it moved its number,
the candidate whose box it landed on is exchangeable (random OCR errors do not care whose box
they hit). Synthetic OCR errors that land on a box chosen at random satisfy it; errors planted to
read one candidate's number larger do not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import findings as F
from analysis.consistency import find_misreadings
from analysis.election import Election
from analysis.synth import make_election

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
ALPHA = 0.05


def _tree(codes_names: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame({"code": list(codes_names), "name": list(codes_names.values()), "level": "province",
                         "parent": "", "tps": np.nan})


# ------------------------------------------------------------------------------------ coverage
def test_coverage_counts_every_tps_and_names_the_missing_provinces():
    e = make_election(scale=0.002, min_tps=200, seed=11, provinces_only=["11", "94", "95"], plan={}).election
    table = e.table.copy()
    # Papua Pegunungan with numbers on 3 TPS only, as in the real table's pattern.
    rows_95 = table.index[table["province"] == "95"]
    for c in e.candidates:
        table.loc[rows_95[3:], c] = pd.NA
    e = Election.from_frame(table.reset_index(), levels=e.levels, candidates=e.candidates, name=e.name,
                            provenance=e.provenance)
    tree = _tree({"11": "ACEH", "32": "JAWA BARAT", "94": "PAPUA TENGAH", "95": "PAPUA PEGUNUNGAN"})
    cov = F.coverage(e, tree)
    by = cov.table.set_index("province")
    expected = table[list(e.candidates)].notna().any(axis=1).groupby(table["province"]).sum()
    assert by["with_votes"].to_dict() == expected.astype(int).to_dict()
    assert by.loc["95", "with_votes"] == 3
    assert by.loc["95", "share_votes"] == pytest.approx(3 / len(rows_95))
    assert by["tps"].sum() == len(table)
    assert cov.missing["province"].tolist() == ["32"]
    assert "JAWA BARAT (32)" in cov.note and "not a national estimate" in cov.note
    assert bool(by.loc["94", "noken"]) and bool(by.loc["95", "noken"]) and not bool(by.loc["11", "noken"])
    assert "PAPUA PEGUNUNGAN (95)" in F.findings(e, names=tree, run_flags=False, n_boot=100).headline()[0]


def test_coverage_without_a_region_tree_says_it_cannot_name_missing_provinces():
    e = make_election(scale=0.001, min_tps=100, seed=2, provinces_only=["11"], plan={}).election
    cov = F.coverage(e)
    assert cov.missing.empty and "unknown" in cov._repr_html_()


def test_an_election_without_provinces_gets_a_clear_error():
    e = make_election(scale=0.001, min_tps=100, seed=2, provinces_only=["11"], plan={}).election
    flat = Election.from_frame(e.table.reset_index().drop(columns=["province", "province_name"]),
                               levels=[lv for lv in e.levels if lv != "province"], candidates=e.candidates)
    with pytest.raises(F.FindingsError, match="province"):
        F.coverage(flat)


# ------------------------------------------------------------------------------------ favouring
def _favouring(seed: int, **plant):
    e = make_election(scale=0.004, min_tps=900, seed=seed, ocr_rate=0.05,
                      provinces_only=["11", "12", "13", "14", "15", "16", "36", "73", "74", "51"], **plant).election
    return F.favouring(e, find_misreadings(e), alpha=ALPHA)


def test_favouring_false_positive_rate_is_near_alpha_on_random_ocr_errors():
    """Clean synthetic OCR errors: the per-test rejection rate at alpha stays near alpha (the
    exact test is discrete, so at most alpha plus noise), and the page control flags next to nothing."""
    pvalues, flagged, national = [], 0, []
    for seed in range(4):
        result = _favouring(seed, plan={})
        pvalues += result.tests["pvalue"].dropna().tolist()
        flagged += len(result.flagged) + len(result.flagged_noken)
        national += result.national["pvalue"].tolist()
    p = np.array(pvalues)
    rate = float((p < ALPHA).mean())
    se = np.sqrt(ALPHA * (1 - ALPHA) / len(p))
    assert len(p) >= 100
    assert rate <= ALPHA + 2.5 * se, f"rejection rate {rate:.3f} on {len(p)} tests under the null"
    assert flagged <= 1, f"{flagged} provinces flagged on clean OCR errors over 4 elections"
    assert min(national) > ALPHA / len(national), national  # Bonferroni over the national rows


def test_favouring_flags_errors_planted_to_favour_one_candidate():
    for seed in range(2):
        result = _favouring(seed, plan={"directional_misreading": "36"}, directional_share=0.06)
        assert result.flagged == ["36"], result.provinces
        row = result.provinces.set_index("province").loc["36"]
        assert "misreadings favour 02" in row["flagged_tests"]
        assert row["min_pvalue"] < row["pvalue"] or row["pvalue"] < ALPHA


def test_smallest_attainable_pvalue_bounds_every_pvalue():
    result = _favouring(5, plan={})
    t = result.tests.dropna(subset=["pvalue"])
    assert (t["min_pvalue"] <= t["pvalue"] + 1e-12).all()
    assert (t["min_pvalue"] > 0).all()


# ------------------------------------------------------------------------------------ the page
def test_misreading_effect_reports_the_model_and_moves_the_margin_by_the_repairs():
    e = make_election(scale=0.004, min_tps=600, seed=4, ocr_rate=0.03, provinces_only=["11", "36", "73"], plan={}).election
    eff = F.misreading_effect(e, n_boot=200, seed=1)
    assert eff.model.startswith("default priors")
    found = eff.found.table
    called = found[found["explained"]]
    for row in eff.by_candidate.itertuples():
        part = called[called["field"] == row.candidate]
        assert row.net_votes == pytest.approx(float((part["reported"] - part["proposed"]).astype(float).sum()))
        assert row.low <= row.net_votes <= row.high
    o = eff.overall
    totals = e.table[list(e.candidates)].astype(float).sum()
    net = eff.by_candidate.set_index("candidate")["net_votes"]
    assert o["margin"] == pytest.approx(totals[o["leader"]] - totals[o["runner_up"]])
    assert o["margin_repaired"] == pytest.approx(o["margin"] - net[o["leader"]] + net[o["runner_up"]])


def test_the_learned_edit_model_is_opt_in_and_named():
    e = make_election(scale=0.002, min_tps=300, seed=6, ocr_rate=0.03, provinces_only=["11", "36"], plan={}).election
    assert F.misreading_effect(e, n_boot=50).model.startswith("default priors")
    assert F.misreading_effect(e, n_boot=50, learned=True).model.startswith("learned from KPU's corrections")


def test_hostile_region_names_stay_escaped_on_the_rendered_page(tmp_path, monkeypatch):
    from analysis.report.export import active_content, sort_script
    from analysis.report.findings import render_findings
    from tests.hostile import PAYLOADS, hostile_election

    data = hostile_election().to_parquet(tmp_path / "hostile.parquet")
    monkeypatch.chdir(tmp_path)  # a relative output folder, as `make real` gives it, lands here, not in notebooks/
    page = render_findings(data, "site", seed=3)
    text = page.read_text(encoding="utf-8")
    for payload in PAYLOADS:
        assert payload not in text
    assert "&lt;script&gt;alert" in text or "&lt;img src=x" in text
    assert active_content(text, frozenset({sort_script()})) == []  # nothing runs but the page's pinned sort script
    assert "Findings" in text and "Two sources" in text
    assert (tmp_path / "site" / "findings.json").is_file()


def test_render_findings_names_a_missing_input(tmp_path):
    from analysis.report.findings import ReportError, render_findings

    with pytest.raises(ReportError, match="Election data: no file"):
        render_findings(tmp_path / "nothing.parquet", tmp_path)
    data = make_election(scale=0.001, min_tps=50, seed=1, provinces_only=["11"], plan={}).election.to_parquet(tmp_path / "e.parquet")
    with pytest.raises(ReportError, match="KawalPemilu desa file: no file"):
        render_findings(data, tmp_path, kawalpemilu=tmp_path / "none.csv.gz")


def test_cli_findings_without_data_is_a_sentence_not_a_traceback(tmp_path, capsys):
    from analysis.cli import main

    assert main(["findings", "--data", str(tmp_path / "none.parquet"), "--out", str(tmp_path)]) == 2
    assert "no election file" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ the real table
REAL = SHARED / "sirekap" / "tps_ppwp_2024" / "ppwp_tps_36_regions_20240320.csv.gz"
SMALL_PROVINCES = ("65", "75", "94")  # Kalimantan Utara, Gorontalo, Papua Tengah (noken)


@pytest.mark.skipif(not REAL.is_file(), reason=f"the real Sirekap table is not here ({REAL}); it lives in ../shared")
def test_real_table_subset_findings():
    from analysis.sources.tabular import read_table

    election, _ = read_table(REAL, "sirekap_tps_2024")
    e = election.select(province=list(SMALL_PROVINCES))
    desa, tree = F.read_inputs(SHARED / "kawalpemilu" / "desa_ppwp_2024.csv.gz",
                               SHARED / "sirekap" / "wilayah_ppwp_all_levels.csv.gz")
    result = F.findings(e, kawalpemilu=desa, names=tree, n_boot=200, n_sim=100, seed=1)
    by = result.coverage.table.set_index("province")
    # The README's per-region counts (TPS rows, TPS with votes: any candidate's number).
    assert by.loc["65", ["tps", "with_votes"]].tolist() == [2295, 1849]
    assert by.loc["75", ["tps", "with_votes"]].tolist() == [3539, 3032]
    assert by.loc["94", ["tps", "with_votes"]].tolist() == [4474, 232]
    assert {"32", "33", "35"} <= set(result.coverage.missing["province"])
    assert bool(by.loc["94", "noken"])
    s = result.sources.counts
    assert s["compared"] > 0 and s["agree"] + s["disagree"] == s["compared"]
    assert len(result.headline()) >= 5
    assert all("fraud" not in h.lower() for h in result.headline())


def test_a_flagged_test_whose_statistic_grows_with_size_gets_a_caution():
    import numpy as np
    import pandas as pd

    from analysis.findings import size_dependence

    sizes = pd.Series({str(i): 1000 * (i + 1) for i in range(12)})
    rng = np.random.default_rng(3)
    grows = pd.DataFrame({"test": "second digit (02)", "region": [str(i) for i in range(12)],
                          "statistic": [9 + 0.01 * n + rng.normal(0, 2) for n in sizes], "flagged": [False] * 11 + [True]})
    flat = grows.assign(test="last digit (02)", statistic=rng.permutation(grows["statistic"].to_numpy()))
    table = size_dependence(pd.concat([grows, flat]), sizes).set_index("test")
    assert table.loc["second digit (02)", "rho"] > 0.8 and table.loc["second digit (02)", "pvalue"] < 0.01
    assert abs(table.loc["last digit (02)", "rho"]) < 0.8
    unflagged = size_dependence(grows.assign(flagged=False), sizes)
    assert unflagged.empty  # only flagged tests are looked at

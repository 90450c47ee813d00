"""Tests of compare_sources: agreement, direction, region bookkeeping, the direction tests' false-positive rate."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.compare import aggregate_totals, compare_sources, region_totals_election
from analysis.election import Election
from analysis.synth import make_election

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="module")
def source():
    return make_election(scale=0.003, seed=11, min_tps=60, plan={}, ocr_rate=0.0).election


def _with(election: Election, table: pd.DataFrame, name: str) -> Election:
    return Election.from_frame(table, levels=election.levels, candidates=election.candidates, name=name)


def test_identical_sources_agree_everywhere(source):
    result = compare_sources(source, source, on="village", by="province", names=("sirekap", "kawal"))
    assert result.counts["matched"] == source.table["village"].nunique()
    complete = source.table[list(source.candidates)].notna().all(axis=1).groupby(source.table["village"]).all()
    assert result.counts["compared"] == int(complete.sum()) and result.counts["incomplete"] == int((~complete).sum())
    assert result.agreement_rate == 1.0
    assert (result.summary["equal"] == result.counts["compared"]).all()
    assert result.summary["sign_pvalue"].isna().all()  # nothing to test: no difference at all


def test_a_one_sided_difference_is_found_in_its_region_only(source):
    table = source.table.copy()
    inflated = table["province"] == table["province"].unique()[0]
    table.loc[inflated, "02"] = table.loc[inflated, "02"] + 3
    other = _with(source, table, "inflated")
    result = compare_sources(other, source, on="village", by="province", names=("inflated", "clean"))
    row = result.summary.set_index("candidate").loc["02"]
    assert row["higher_in_a"] > 0 and row["higher_in_b"] == 0 and row["total_difference"] > 0
    assert row["sign_pvalue"] < 0.05
    assert result.summary.set_index("candidate").loc["01", "higher_in_a"] == 0
    assert "inflated" in result.sentences()
    flagged = result.by_region[result.by_region["flagged"]]
    assert set(flagged["province"]) <= {table["province"].unique()[0]} and set(flagged["candidate"]) <= {"02"}
    assert 0 < result.agreement_rate < 1


def test_regions_only_in_one_source_and_shares(source):
    table = source.table
    keep = table["province"] != table["province"].unique()[-1]
    fewer = _with(source, table[keep], "fewer")
    result = compare_sources(source, fewer, on="regency", measure="shares", tolerance=0.0)
    assert result.counts["only_a"] == table.loc[~keep, "regency"].nunique()
    assert result.counts["only_b"] == 0
    assert result.agreement_rate == 1.0
    row = result.regions.iloc[0]
    assert sum(row[f"a_{c}"] for c in source.candidates) == pytest.approx(100.0)


def test_sign_test_false_positive_rate_under_symmetric_noise(source):
    # Null: a - b symmetric about 0. Symmetric -3..3 noise on every TPS's 01, 100 times: the sign
    # test must reject at 5 % no more often than 5 % + 2.33 standard errors (it is exact, so at most 5 %).
    rng = np.random.default_rng(3)
    base = source.table
    full = base[list(source.candidates)].notna().all(axis=1).to_numpy()
    counts = base["01"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    rejected = 0
    for _ in range(100):
        noise = rng.choice([-3, -2, -1, 0, 1, 2, 3], size=len(base))
        table = base.copy()
        table["01"] = pd.array(np.where(full & (counts >= 3), counts + noise, counts), dtype="Float64").round().astype("Int64")
        # The table stays a valid Election (only 01 changed, non-negative): skip re-validation.
        result = compare_sources(replace(source, table=table), source, on="village")
        rejected += result.summary.set_index("candidate").loc["01", "sign_pvalue"] < 0.05
    assert rejected / 100 <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / 100)


def test_region_totals_and_bad_codes():
    frame = pd.DataFrame({"region": ["1101", "1102"], "01": [5, 6], "02": [7, 8], "03": [1, 2]})
    election = region_totals_election(frame)
    assert election.levels == ("province", "regency") and list(election.table.index) == ["1101", "1102"]
    with pytest.raises(ValueError, match="one length"):
        region_totals_election(pd.DataFrame({"region": ["11", "1101"], "01": [1, 2], "02": [1, 2], "03": [1, 2]}))
    with pytest.raises(KeyError, match="not a level"):
        compare_sources(election, election, on="village")
    with pytest.raises(ValueError, match="measure"):
        compare_sources(election, election, on="regency", measure="ratio")


def test_html_escapes_source_names(source):
    result = compare_sources(source, source, on="regency", names=("<b>x</b>", "y"))
    out = result._repr_html_()
    assert "<b>x</b>" not in out and "&lt;b&gt;x&lt;/b&gt;" in out


def test_sirekap_desa_aggregates_against_kawalpemilu():
    """The 10 desa whose Sirekap aggregate is cached, against KawalPemilu's crowd-verified totals."""
    aggregates = SHARED / "sirekap" / "aggregates" / "ppwp_aggregates_all_levels.csv"
    desa = SHARED / "kawalpemilu" / "desa_ppwp_2024.csv.gz"
    hierarchy = SHARED / "kawalpemilu" / "tps_hierarchy.json.gz"
    if not (aggregates.exists() and desa.exists() and hierarchy.exists()):
        pytest.skip(f"real data not found under {SHARED} (../shared is absent)")
    from analysis.sources.kawalpemilu import read_desa
    from analysis.sources.sirekap.aggregates import read_all_levels

    sirekap = aggregate_totals(read_all_levels(aggregates), "village")
    kawal = read_desa(desa, hierarchy=hierarchy).election
    complete = sirekap.table.index[sirekap.table["tps_reported"] == sirekap.table["tps_total"]]
    result = compare_sources(kawal, sirekap.select(village=list(complete)), on="village",
                             names=("kawalpemilu", "sirekap"))
    assert result.counts["compared"] == 10
    differing = result.regions[~result.regions["agree"]].set_index("village")
    # sirekap-api.md: TPS 1101012001001 read 186/44/8 on 15 Feb and 144/19/2 after revision;
    # KawalPemilu's desa total carries the first reading (differences 42 / 25 / 6).
    assert list(differing.index) == ["1101012001"]
    assert differing.loc["1101012001", ["diff_01", "diff_02", "diff_03"]].tolist() == [186 - 144, 44 - 19, 8 - 2]


@pytest.mark.slow
def test_sources_notebook_runs_on_the_real_files(tmp_path):
    if not (SHARED / "kawalpemilu" / "desa_ppwp_2024.csv.gz").exists():
        pytest.skip(f"real data not found under {SHARED} (../shared is absent)")
    papermill = pytest.importorskip("papermill")
    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    papermill.execute_notebook(str(notebooks / "sources.ipynb"), str(tmp_path / "sources.ipynb"), kernel_name="python3",
                               parameters={"shared": str(SHARED), "sirekap_wilayah": ""}, cwd=str(notebooks),
                               progress_bar=False)

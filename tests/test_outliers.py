"""Tests of local outliers (analysis/turnout/outliers.py).

Null: on clean synthetic elections (every TPS drawn from the same hierarchical model) no TPS
should reach q <= 0.05; planted misreadings must come out on top with q <= 0.05.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis import plots
from analysis.synth import make_election
from analysis.turnout.outliers import _loo_median, _relative_excess, betabinom_two_sided, local_outliers, sirekap_url


def test_sirekap_url_only_for_tps_codes():
    assert sirekap_url("3171011001001") == (
        "https://pemilu2024.kpu.go.id/pilpres/hitung-suara/31/3171/317101/3171011001/3171011001001")
    assert sirekap_url("12/34/5") is None and sirekap_url("317101100100") is None


def test_leave_one_out_median_matches_brute_force():
    rng = np.random.default_rng(3)
    x, g = rng.normal(size=300), rng.integers(0, 40, 300)
    med, m = _loo_median(x, g)
    for i in range(300):
        others = np.delete(x, i)[np.delete(g, i) == g[i]]
        assert m[i] == len(others)
        assert (np.isnan(med[i]) if len(others) == 0 else med[i] == pytest.approx(np.median(others)))


def test_betabinomial_tails_match_scipy():
    rng = np.random.default_rng(4)
    n = rng.integers(5, 300, 1500).astype(float)
    a, b = rng.uniform(0.5, 150, 1500), rng.uniform(0.5, 150, 1500)
    k = rng.binomial(n.astype(int), rng.beta(a, b)).astype(float)
    k[:50], k[50:100] = 0, n[50:100]
    exact = np.minimum(1, 2 * np.minimum(stats.betabinom.cdf(k, n, a, b), stats.betabinom.sf(k - 1, n, a, b)))
    assert betabinom_two_sided(k, n, a, b, exact_beyond=0) == pytest.approx(exact, abs=1e-9)
    fast = betabinom_two_sided(k, n, a, b)
    # The normal shortcut (units within 2 sd of their mean) is exact far out and conservative
    # where it is used on a skewed law: never a smaller p-value than the exact one.
    small = exact < 0.02
    assert np.all(fast[small] >= exact[small] - 1e-9)
    near = (exact >= 0.02) & (exact < 0.1)  # approximate there: down to 0.7 x exact (documented)
    assert np.all(fast[near] >= 0.7 * exact[near])
    assert fast[exact < 1e-4] == pytest.approx(exact[exact < 1e-4], rel=1e-6, abs=1e-11)


@pytest.fixture(scope="module")
def clean():
    return make_election(plan={}, ocr_rate=0, scale=0.02, seed=7, provinces_only=["31", "73", "11"]).election


def test_clean_election_flags_no_tps(clean):
    result = local_outliers(clean)
    assert (result.table["q"] <= 0.05).sum() == 0
    assert len(result.table) == len(clean.table)
    assert set(result.table["reference"]) <= {"village", "district", "regency", ""}


def test_robust_z_has_one_scale_whatever_the_neighbourhood_and_its_tails_are_as_documented():
    # A TPS compared with its kecamatan or kabupaten also differs by its desa's effect; with one
    # latent spread per region its |z| ran wide (median 0.69-0.89 instead of 0.674 on this election).
    election = make_election(scale=0.05, seed=11, plan={}, ocr_rate=0, provinces_only=["32", "33", "35"]).election
    table = local_outliers(election).table
    tails = []
    for variable in ("turnout", "01", "02", "03"):
        # The table's reference column is the level of the first variable (turnout) a TPS has.
        for reference, group in table.groupby("reference") if variable == "turnout" else ():
            z = group[f"{variable}_z"].dropna().abs()
            if len(z) >= 300:
                assert abs(z.median() - 0.6745) < 0.02, (variable, reference, z.median())
        z = table[f"{variable}_z"].dropna().abs()
        tails.append((z > stats.norm.isf(0.005)).mean() / 0.01)
    # The docstring's measured tail (1.2-2 x nominal at 1 %); the flags use the beta-binomial p.
    assert all(0.8 < t < 2.5 for t in tails), tails
    assert (table["q"] <= 0.05).sum() == 0


def test_excess_against_other_regions_holds_its_level_and_finds_a_region_with_three_times_the_rate():
    # Null: every region's outlier rate drawn from one law (here Beta, mean 1 %, between-region
    # spread as real elections show); a region is tested against the others' fitted beta-binomial.
    rng = np.random.default_rng(1)
    pvalues, caught = [], 0
    for _ in range(40):
        units = rng.integers(300, 6000, 38)
        pvalues.append(_relative_excess(rng.binomial(units, rng.beta(2, 198, 38)), units))
        hits = rng.binomial(units, 0.002)
        hits[0] = rng.binomial(units[0], 0.006)
        caught += _relative_excess(hits, units)[0] < 0.05
    pvalues = np.concatenate(pvalues)
    rate = (pvalues < 0.05).mean()
    assert rate < 0.05 + 3 * np.sqrt(0.05 * 0.95 / len(pvalues)), rate
    assert caught >= 28, caught  # measured 86 % over 100 repetitions
    assert np.isnan(_relative_excess(np.array([3, 4, 5]), np.array([100, 100, 100]))).all()


def test_clean_regions_are_not_flagged_against_each_other_and_a_region_with_misreadings_is():
    election = make_election(plan={}, ocr_rate=0, scale=0.02, seed=5).election
    regions = local_outliers(election, region_level="province").regions
    assert {"pvalue_vs_others", "qvalue_vs_others"} <= set(regions.columns)
    assert (regions["qvalue_vs_others"] > 0.05).all()
    table = election.table.copy()
    rng = np.random.default_rng(2)
    units = table.index[(table["province"].astype(str) == "33").to_numpy() & table["voters"].notna().to_numpy()]
    for unit in rng.choice(units, 12, replace=False):  # "78 became 7": dropped digits
        table.loc[unit, "voters"] = table.loc[unit, "voters"] // 10
    regions = local_outliers(dataclasses.replace(election, table=table), region_level="province").regions
    flagged = regions.loc[regions["qvalue_vs_others"] <= 0.05, "region"].tolist()
    assert flagged == ["33"], regions.sort_values("pvalue_vs_others").head()
    result = local_outliers(dataclasses.replace(election, table=table), region_level="province")
    assert result.flags()["region"].tolist() == ["33"]
    assert set(result.flags(against="nominal")["region"]) >= {"33"}
    with pytest.raises(ValueError, match="against must be"):
        result.flags(against="chance")


def test_planted_misreadings_are_found_and_linked(clean):
    table = clean.table.copy()
    rng = np.random.default_rng(1)
    usable = table[table[["voters", "valid", "02", "01"]].notna().all(axis=1)]
    victims = list(rng.choice(usable.index, 3, replace=False))
    victims += list(rng.choice(usable.index[(usable["01"] >= 40).to_numpy()].difference(victims), 3, replace=False))
    for unit in victims[:3]:  # "78 became 7": a dropped digit in voters
        table.loc[unit, "voters"] = table.loc[unit, "voters"] // 10
    for unit in victims[3:]:  # all valid votes read as 02's
        table.loc[unit, "02"] += table.loc[unit, "01"]
        table.loc[unit, "01"] = 0
    result = local_outliers(dataclasses.replace(clean, table=table))
    flagged = set(result.flagged()["unit_id"])
    assert set(victims) <= flagged
    top = result.top(10)
    assert top["url"].str.startswith("https://pemilu2024.kpu.go.id/pilpres/hitung-suara/").all()
    # The published table shows the calibrated q, not the heavy-tailed z's q_z (in the full table).
    assert "q" in top.columns and "q_z" not in top.columns and "q_z" in result.table.columns


def test_html_escapes_outside_strings(clean):
    table = clean.table.copy()
    table["province_name"] = "<script>alert(1)</script>"
    result = local_outliers(dataclasses.replace(clean, table=table))
    html = result._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert '<a href="https://pemilu2024.kpu.go.id/' in html
    plots.outlier_map(result, "02")
    # candidate names come from the data too, and become column headings
    renamed = clean.table.rename(columns={"02": "<img src=x onerror=alert(1)>"})
    hostile = dataclasses.replace(clean, table=renamed, candidates=tuple(
        "<img src=x onerror=alert(1)>" if c == "02" else c for c in clean.candidates))
    html = local_outliers(hostile).top_html(20)
    assert "<img" not in html and "&lt;img src=x" in html


def test_unknown_level_is_a_clear_error(clean):
    with pytest.raises(KeyError, match="not a level"):
        local_outliers(clean, fine="tps")


def test_clean_poland_2020_stands_out_against_chance_but_not_against_its_own_voivodeships():
    # Real elections have special stations (hospitals, prisons, abroad) in every region: the nominal
    # null rejects everywhere, the comparison with the other regions does not.
    from pathlib import Path

    from analysis.sources.tabular import read_table

    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "reference" / "poland_2020_president_round1.csv.gz"
    if not path.exists():
        pytest.skip(f"reference data not found: {path} (../shared is absent)")
    election, _ = read_table(path, "poland_2020")
    result = local_outliers(election)
    assert len(result.regions) == 16
    assert len(result.flags(against="nominal")) > 8  # most regions (16 of 16 when measured)
    assert len(result.flags()) == 0


def test_one_outlier_where_no_other_region_has_any_is_not_significant():
    # All other regions at 0: the fitted rate sits at its bound (expit(-20)); a single outlying TPS
    # must not come out at p ~ 1e-7 (it did: q ~ 1e-7 for a clean kabupaten of a synthetic province).
    p = _relative_excess(np.r_[1, np.zeros(9)], np.full(10, 200.0))
    assert p[0] > 0.01 and (p[1:] == 1).all(), p


def test_excess_against_few_other_regions_holds_its_level():
    # A province report compares its kabupaten: 8 regions (the fewest compared) is common. Plug-in
    # maximum likelihood flagged some region of 6 at q <= 0.05 in 37 % of these null draws.
    from statsmodels.stats.multitest import multipletests

    from analysis.turnout.outliers import MIN_REGIONS

    rng = np.random.default_rng(3)
    flagged = 0
    for _ in range(100):
        units = rng.integers(300, 6000, MIN_REGIONS)
        p = _relative_excess(rng.binomial(units, rng.beta(2, 198, MIN_REGIONS)), units)
        flagged += (multipletests(p, method="fdr_bh")[1] <= 0.05).any()
    assert flagged <= 12, flagged  # nominal 5 (complete null: FDR = family-wise rate); measured 6 on another seed
    assert np.isnan(_relative_excess(np.array([1, 2, 3, 4, 5, 6, 7]), np.full(7, 500.0))).all()


def test_clean_kabupaten_are_not_flagged_against_each_other():
    # The province report's setting (region_level="regency"): a handful of outliers in all.
    flagged = 0
    for seed in range(100, 112):
        election = make_election(scale=0.05, seed=seed, plan={}, ocr_rate=0, provinces_only=["31", "36"]).election
        for province in ("31", "36"):
            regions = local_outliers(election.select(province=province), region_level="regency", seed=seed).regions
            flagged += (regions["qvalue_vs_others"] <= 0.05).any()
    assert flagged <= 1, flagged  # measured 0; 7 of 24 with the plug-in maximum likelihood


def test_flags_against_others_warns_when_there_are_too_few_regions():
    election = make_election(plan={}, ocr_rate=0, scale=0.02, seed=5, provinces_only=["33"]).election
    result = local_outliers(election)
    assert result.regions["qvalue_vs_others"].isna().all()
    with pytest.warns(UserWarning, match="too few to compare"):
        assert result.flags().empty


def test_many_regions_share_one_fit_close_to_leave_one_out():
    # 514 kabupaten took 26 s leave-one-out; above 60 regions one fit to all serves every region.
    rng = np.random.default_rng(6)
    units = rng.integers(300, 30000, 100)
    hits = rng.binomial(units, rng.beta(2, 198, 100))
    hits[0] = rng.binomial(units[0], 0.03)
    shared = _relative_excess(hits, units)
    loo = _relative_excess(hits, units, leave_one_out_up_to=10**6)
    # The same decisions; a region's own count in the shared fit makes its p larger, never much smaller
    # (measured: at most 2x larger, for a region at p 0.0007).
    assert ((shared < 0.05) == (loo < 0.05)).all() and shared[0] < 0.05
    assert np.all(shared >= 0.8 * loo) and np.all(shared <= 2.5 * loo), (shared / loo).min()


def test_fits_are_checked_for_convergence_and_a_failure_is_a_region_note(clean):
    converged = local_outliers(clean, seed=1)
    assert converged.models["converged"].all() and (converged.regions["note"] == "").all()
    forced = local_outliers(clean, seed=1, maxiter=1)  # one BFGS iteration cannot converge
    assert not forced.models["converged"].any()
    assert forced.models["message"].str.contains("warnflag").all()
    assert forced.regions["note"].str.contains("did not converge").all()


def test_relative_excess_reports_fits_that_did_not_converge():
    rng = np.random.default_rng(5)
    units = np.full(12, 400.0)
    hits = rng.binomial(units.astype(int), 0.01)
    failures: list = []
    _relative_excess(hits, units, failures=failures, maxiter=1)
    assert len(failures) == 12 and all(isinstance(m, str) and m for _, m in failures)
    failures = []
    _relative_excess(hits, units, failures=failures)
    assert failures == []

"""Tests of the digit tests: constants, formulas, exclusions, calibration of the simulated null on
clean synthetic data, power against invented last digits, and the per-region wrapper."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from analysis.digits import (
    BENFORD_FIRST,
    BENFORD_FIRST_TWO,
    benford_tests,
    first_two_digits_test,
    last_pair_test,
    BENFORD_SECOND,
    DigitTable,
    digit_tests,
    digit_z,
    extract_digit,
    first_digit_test,
    group_shares,
    last_digit_test,
    nigrini_conformity,
    overdispersion_moments,
    second_digit_test,
)
from analysis.election import Election

# methods.md, section 1 (five decimals as published there).
METHODS_SECOND = [.11968, .11389, .10882, .10433, .10031, .09668, .09337, .09035, .08757, .08500]


# ------------------------------------------------------------------------------------ helpers
def clean_stations(rng: np.random.Generator, n: int = 3000, n_areas: int = 30):
    """TPS-sized clean data: totals 150-300, area shares from a beta, station shares around them."""
    totals = rng.integers(150, 301, n)
    area = rng.integers(0, n_areas, n)
    area_mean = rng.beta(8, 10, n_areas)
    share = rng.beta(area_mean[area] * 60, (1 - area_mean[area]) * 60)
    return rng.binomial(totals, share), totals, area


def invent_last_digits(rng: np.random.Generator, votes, totals, fraction: float):
    """Replace the last digit of ``fraction`` of stations the way people invent numbers:
    0 and 5 favoured, and the tens digit not repeated (Beber & Scacco 2012)."""
    votes = votes.copy()
    rows = rng.choice(len(votes), size=int(round(fraction * len(votes))), replace=False)
    weights = np.full(10, 0.075)
    weights[[0, 5]] = 0.2
    for row in rows:
        w = weights.copy()
        w[(votes[row] // 10) % 10] = 0  # avoid a repeated final pair
        digit = rng.choice(10, p=w / w.sum())
        invented = votes[row] - votes[row] % 10 + digit
        if invented <= totals[row]:
            votes[row] = invented
    return votes


# ------------------------------------------------------------------------------------ constants
def test_benford_constants_match_methods():
    np.testing.assert_allclose(BENFORD_SECOND, METHODS_SECOND, atol=5e-6)
    assert round(float(BENFORD_SECOND @ np.arange(10)), 5) == 4.18739
    assert round(float(BENFORD_FIRST @ np.arange(1, 10)), 4) == 3.4402
    assert BENFORD_SECOND.sum() == pytest.approx(1) and BENFORD_FIRST.sum() == pytest.approx(1)


@pytest.mark.parametrize("digit, limits", [("first", (0.006, 0.012, 0.015)), ("second", (0.008, 0.010, 0.012)),
                                           ("first two", (0.0012, 0.0018, 0.0022))])
def test_nigrini_classes_at_thresholds(digit, limits):
    close, acceptable, marginal = limits
    eps = 1e-9
    assert nigrini_conformity(close, digit) == "close conformity"
    assert nigrini_conformity(close + eps, digit) == "acceptable conformity"
    assert nigrini_conformity(acceptable, digit) == "acceptable conformity"
    assert nigrini_conformity(acceptable + eps, digit) == "marginal conformity"
    assert nigrini_conformity(marginal, digit) == "marginal conformity"
    assert nigrini_conformity(marginal + eps, digit) == "nonconformity"


def test_z_formula_with_continuity_correction():
    p, n = 0.11968, 1000
    # |0.15 - p| > 1/(2N): corrected, as in methods.md
    expected = (abs(0.15 - p) - 1 / (2 * n)) / np.sqrt(p * (1 - p) / n)
    assert digit_z([0.15], [p], n)[0] == pytest.approx(expected)
    # Nigrini: the correction is dropped when it exceeds the difference (Z never negative)
    small = p + 0.0001
    assert digit_z([small], [p], n)[0] == pytest.approx(0.0001 / np.sqrt(p * (1 - p) / n))
    # the result's table uses the same formula against its null
    rng = np.random.default_rng(3)
    result = second_digit_test(rng.integers(10, 100_000, 500))
    table = result.digits
    np.testing.assert_allclose(table["z"], digit_z(table["observed_share"], BENFORD_SECOND, result.n))


def test_textbook_statistic_is_pearson_chi_square():
    rng = np.random.default_rng(5)
    counts = rng.integers(10, 10_000, 2000)
    result = second_digit_test(counts)
    observed = result.digits["observed"].to_numpy()
    reference = stats.chisquare(observed, BENFORD_SECOND * observed.sum())
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.pvalue == pytest.approx(reference.pvalue)
    assert result.dof == 9 and result.null == "Benford 2BL (textbook)"
    assert result.mean_digit == pytest.approx(np.mean([int(str(c)[1]) for c in counts]))


# ------------------------------------------------------------------------------------ exclusions
def test_exclusions_are_counted_per_reason():
    counts = pd.array([None, -3, 7, 0, 12, 345, 9, 10, None], dtype="Int64")
    second = second_digit_test(counts)
    assert second.excluded == {"missing": 2, "negative or fractional": 1, "zero": 1, "one digit (< 10)": 2}
    assert second.n == 3
    last = last_digit_test([np.nan, 2.5, 3, 10, 11, 250, 0], min_count=10)
    assert last.excluded == {"missing": 1, "negative or fractional": 1, "below min_count (10)": 2}
    assert last.n == 3
    first = first_digit_test([0, 0, 1, 2, np.nan])
    assert first.excluded["zero"] == 2 and first.n == 2
    simulated = second_digit_test([50, 60, None, 70, 20, 5], null="simulated",
                                  totals=[100, 40, 100, None, 0, 100], n_sim=19)
    assert simulated.excluded == {"missing": 1, "negative or fractional": 0,
                                  "total missing, negative or fractional": 1, "total is zero": 1,
                                  "count > total": 1, "zero": 0, "one digit (< 10)": 1}
    assert simulated.n == 1


def test_empty_and_bad_input():
    empty = second_digit_test([None, 3, 0])
    assert empty.n == 0 and np.isnan(empty.pvalue) and empty.note
    assert "<p>" in empty._repr_html_()
    with pytest.raises(ValueError, match="totals"):
        second_digit_test([10, 20], null="simulated")
    with pytest.raises(ValueError, match="null"):
        second_digit_test([10, 20], null="poisson")
    with pytest.raises(ValueError, match="length"):
        last_digit_test([10, 20], null="simulated", totals=[100])
    with pytest.raises(ValueError, match="numeric"):
        last_digit_test(["ten", "20"])


# ------------------------------------------------------------------------------------ properties
@given(st.lists(st.integers(min_value=1, max_value=2**63 - 1), min_size=1, max_size=50))
def test_digit_extraction_agrees_with_str(values):
    array = np.array(values, dtype=np.int64)
    text = [str(v) for v in values]
    assert extract_digit(array, "first").tolist() == [int(t[0]) for t in text]
    assert extract_digit(array, "second").tolist() == [int(t[1]) if len(t) > 1 else -1 for t in text]
    assert extract_digit(array, "last").tolist() == [int(t[-1]) for t in text]


count_values = st.one_of(st.none(), st.integers(-5, 400), st.floats(-10, 400), st.just(float("nan")),
                         st.sampled_from([0, 9, 10, 99, 100]))


@settings(max_examples=60, deadline=None)
@given(st.lists(count_values, max_size=40), st.lists(st.one_of(st.none(), st.integers(0, 500)), max_size=40))
def test_every_count_is_tested_or_excluded(counts, totals):
    totals = (totals + [300] * len(counts))[:len(counts)]
    for result in (first_digit_test(counts), second_digit_test(counts), last_digit_test(counts, min_count=10),
                   second_digit_test(counts, null="simulated", totals=totals, n_sim=9),
                   last_digit_test(counts, null="simulated", totals=totals, n_sim=9)):
        assert result.n + sum(result.excluded.values()) == len(counts)
        assert result.digits["observed"].sum() == result.n


def test_overdispersion_estimate_recovers_rho():
    rng = np.random.default_rng(11)
    totals = rng.integers(150, 301, 20_000)
    rho, p = 0.05, 0.4
    share = rng.beta(p * (1 / rho - 1), (1 - p) * (1 / rho - 1), len(totals))
    votes = rng.binomial(totals, share)
    estimate = overdispersion_moments(votes, totals, np.full(len(totals), votes.sum() / totals.sum()))
    assert abs(estimate - rho) < 0.006
    binomial = rng.binomial(totals, p)
    assert overdispersion_moments(binomial, totals, np.full(len(totals), p)) < 0.003


# ------------------------------------------------------------------------------------ calibration
def test_simulated_null_is_deterministic_and_keeps_its_band():
    rng = np.random.default_rng(2)
    votes, totals, _ = clean_stations(rng, n=1500)
    one = second_digit_test(votes, null="simulated", totals=totals, n_sim=199, seed=4)
    two = second_digit_test(votes, null="simulated", totals=totals, n_sim=199, seed=4)
    other = second_digit_test(votes, null="simulated", totals=totals, n_sim=199, seed=5)
    pd.testing.assert_frame_equal(one.digits, two.digits)
    assert one.pvalue == two.pvalue and one.statistic == two.statistic
    assert not one.digits["band_low"].equals(other.digits["band_low"])
    assert "199 draws, seed 4" in one.null and one.null.startswith("simulated: beta-binomial")
    assert one.textbook_pvalue < 0.01  # bounded counts are far from Benford
    table = one.digits
    assert (table["band_low"] <= table["expected_share"]).all() and (table["expected_share"] <= table["band_high"]).all()
    assert table["expected_share"].sum() == pytest.approx(1)


def test_clean_tps_data_textbook_rejects_simulated_null_keeps_its_level():
    """On clean TPS-sized data the textbook 2BL test rejects almost always, while the simulated
    null rejects at its nominal 5 % (within 3 binomial standard errors of the Monte Carlo)."""
    n_datasets, n_sim, alpha = 300, 99, 0.05

    def replicate(seed_sequence) -> tuple[bool, bool, bool]:
        rng = np.random.default_rng(seed_sequence)
        votes, totals, area = clean_stations(rng)
        shares = group_shares(votes, totals, area)
        seed = int(seed_sequence.generate_state(1)[0])
        return (second_digit_test(votes).pvalue <= alpha,
                second_digit_test(votes, null="simulated", totals=totals, shares=shares, n_sim=n_sim,
                                  seed=seed).pvalue <= alpha,
                last_digit_test(votes, null="simulated", totals=totals, shares=shares, n_sim=n_sim,
                                seed=seed).pvalue <= alpha)

    # numpy releases the GIL while drawing, so two threads halve the wall time; each replicate has
    # its own seed, so the outcome does not depend on the scheduling.
    with ThreadPoolExecutor(2) as pool:
        outcomes = np.array(list(pool.map(replicate, np.random.SeedSequence(2024).spawn(n_datasets))))
    rates = dict(zip(["textbook 2BL", "simulated 2BL", "simulated last"], outcomes.mean(axis=0)))
    se = np.sqrt(alpha * (1 - alpha) / n_datasets)
    assert rates["textbook 2BL"] > 0.5, rates
    assert abs(rates["simulated 2BL"] - alpha) <= 3 * se, rates
    assert abs(rates["simulated last"] - alpha) <= 3 * se, rates


def test_last_digit_test_detects_invented_digits():
    rng = np.random.default_rng(77)
    n_datasets, rejected = 30, 0
    for replicate in range(n_datasets):
        votes, totals, area = clean_stations(rng)
        votes = invent_last_digits(rng, votes, totals, fraction=0.20)
        result = last_digit_test(votes, null="simulated", totals=totals, n_sim=99, seed=replicate)
        rejected += result.pvalue <= 0.05
        # the invented digits show where they should: too many zeros and fives
        table = result.digits.set_index("digit")
    assert rejected / n_datasets >= 0.8, rejected
    assert (table.loc[[0, 5], "observed_share"] > table.loc[[0, 5], "expected_share"]).all()


# ------------------------------------------------------------------------------------ wrapper
@pytest.fixture(scope="module")
def small_election() -> Election:
    rng = np.random.default_rng(9)
    rows = []
    layout = {("11", "1101"): 120, ("11", "1102"): 90, ("12", "1201"): 150, ("12", "<script>"): 20}
    for (province, regency), size in layout.items():
        mean = rng.beta(8, 10)
        for i in range(size):
            valid = int(rng.integers(150, 301))
            a = int(rng.binomial(valid, rng.beta(mean * 60, (1 - mean) * 60)))
            rows.append({"unit_id": f"{province}{regency}{i:04d}", "province": province, "regency": regency,
                         "regency_name": "<script>alert(1)</script>" if regency == "<script>" else f"Kab {regency}",
                         "registered": valid + 40, "voters": valid + 3, "valid": valid, "invalid": 3,
                         "01": a, "02": valid - a})
    table = pd.DataFrame(rows)
    table.loc[0, "valid"] = None  # falls back to the sum of the candidates
    return Election.from_frame(table, levels=["province", "regency"], candidates=["01", "02"], name="small")


def test_digit_tests_per_region(small_election):
    table = digit_tests(small_election, level="regency", n_sim=99, seed=1)
    assert isinstance(table, DigitTable)
    results = table.results
    assert len(results) == 4 * 2 * 2  # regencies x candidates x tests
    too_few = results[results["region"] == "<script>"]
    assert too_few["pvalue"].isna().all() and too_few["note"].str.startswith("too few").all()
    tested = results[results["region"] != "<script>"]
    assert tested["qvalue"].notna().all() and (tested["qvalue"] >= tested["pvalue"] - 1e-12).all()
    assert tested["null"].str.startswith("simulated").all()
    flags = table.flags(alpha=0.5)
    assert len(flags) == int((results["qvalue"] < 0.5).sum()) and (flags["qvalue"] < 0.5).all()
    assert table.summary()["tested"].sum() == len(tested)


def test_digit_tests_are_reproducible_and_rows_match_the_kernel(small_election):
    one = digit_tests(small_election, level="regency", n_sim=99, seed=1)
    two = digit_tests(small_election, level="regency", n_sim=99, seed=1)
    other = digit_tests(small_election, level="regency", n_sim=99, seed=2)
    pd.testing.assert_frame_equal(one.results, two.results)
    assert not one.results["pvalue"].equals(other.results["pvalue"])
    # a row is reproduced by the kernel with the seed it reports
    detail = one.result("1101", "01", "last digit")
    mask = (small_election.table["regency"] == "1101").to_numpy()
    valid = small_election.column("valid")[mask]
    fallback = (small_election.column("01") + small_election.column("02"))[mask]
    again = last_digit_test(small_election.column("01")[mask], null="simulated",
                            totals=np.where(np.isnan(valid), fallback, valid), n_sim=99, seed=detail.seed)
    assert again.pvalue == detail.pvalue and again.statistic == detail.statistic


def test_digit_tests_html_escapes_region_names(small_election):
    table = digit_tests(small_election, level="regency", n_sim=19, seed=0, min_stations=10)
    page = table._repr_html_()
    assert "<script>" not in page and "&lt;script&gt;" in page
    detail = table.result("<script>", "01", "second digit")
    assert "<script>" not in detail._repr_html_()


def test_digit_tests_textbook_and_bad_arguments(small_election):
    table = digit_tests(small_election, level="province", null="textbook", tests=("second",))
    assert (table.results["null"] == "Benford 2BL (textbook)").all()
    with pytest.raises(KeyError):
        digit_tests(small_election, level="village")
    with pytest.raises(ValueError):
        digit_tests(small_election, level="province", tests=("first",))


def test_digit_bars_draws_a_figure():
    from matplotlib.figure import Figure

    from analysis.plots import digit_bars

    rng = np.random.default_rng(6)
    votes, totals, _ = clean_stations(rng, n=800)
    result = second_digit_test(votes, null="simulated", totals=totals, n_sim=99)
    fig = digit_bars(result, title="<b>$region$</b>")
    assert isinstance(fig, Figure)
    labels = [text.get_text() for text in fig.axes[0].get_legend().get_texts()]
    assert "Benford (textbook reference)" in labels and "null 2.5-97.5 %" in labels


def test_digit_tests_share_level_and_other_columns(small_election):
    table = digit_tests(small_election, level="province", columns=["01", "voters"], share_level="regency",
                        n_sim=19, seed=3, tests=("last",))
    results = table.results
    assert list(results["column"]) == ["01", "voters", "01", "voters"]
    assert results["null"].str.contains("pooled per regency").all()
    # voters are drawn out of registered voters (all stations usable), candidates out of valid votes
    voters = table.result("11", "voters", "last digit")
    assert voters.excluded.get("count > total", 0) == 0 and voters.n == 210
    with pytest.raises(KeyError):
        digit_tests(small_election, level="province", share_level="village")


# ------------------------------------------------------------------------------------ issue 4 kernels
def _spread_counts(n: int = 50_000, seed: int = 0) -> np.ndarray:
    """Counts over several orders of magnitude (where Benford's law can apply)."""
    return np.random.default_rng(seed).lognormal(5, 2, n).astype(np.int64)


def test_first_digit_chi_square_and_mad_equal_benford_py():
    bf = pytest.importorskip("benford", reason="benford-py (a dev dependency) is not installed")
    counts = _spread_counts()
    counts[:50] = 0  # zeros are excluded by both
    base = bf.Base(pd.Series(counts), decimals=0, sign="pos")
    theirs = bf.Test(base, 1, confidence=None)
    ours = first_digit_test(counts)
    assert ours.n == len(base)
    assert ours.statistic == pytest.approx(theirs.chi_square, rel=1e-12)
    assert ours.mad == pytest.approx(theirs.MAD, rel=1e-12)
    np.testing.assert_array_equal(ours.digits["observed"].to_numpy(), theirs["Counts"].to_numpy())


def test_second_and_first_two_digits_equal_benford_py():
    """Chi-square always; MAD only where every count has two digits: benford_py divides the
    second- and first-two-digit shares by all nonzero counts, one-digit counts included, so its
    MAD differs from Nigrini's whenever counts below 10 are present (a quirk of benford_py 0.5)."""
    bf = pytest.importorskip("benford", reason="benford-py (a dev dependency) is not installed")
    counts = _spread_counts(seed=1)
    for data, compare_mad in ((counts, False), (counts[counts >= 10], True)):
        base = bf.Base(pd.Series(data), decimals=0, sign="pos")
        for digs, ours in ((22, second_digit_test(data)), (2, first_two_digits_test(data))):
            theirs = bf.Test(base, digs, confidence=None)
            assert ours.statistic == pytest.approx(theirs.chi_square, rel=1e-10)
            if compare_mad:
                assert ours.mad == pytest.approx(theirs.MAD, rel=1e-10)


def test_first_two_digits_constants_and_nigrini_class():
    assert BENFORD_FIRST_TWO.sum() == pytest.approx(1)
    assert BENFORD_FIRST_TWO[0] == pytest.approx(np.log10(1 + 1 / 10))
    result = first_two_digits_test(_spread_counts(200_000, seed=3))
    assert result.dof == 89 and len(result.digits) == 90
    assert result.conformity == "close conformity" and result.note == ""
    tps = first_two_digits_test(np.random.default_rng(0).integers(100, 300, 5000))
    assert "does not apply" in tps.note


@given(st.lists(st.one_of(st.none(), st.integers(-5, 10**7)), max_size=60),
       st.integers(0, 40))
@settings(max_examples=80, deadline=None)
def test_single_pass_equals_the_per_test_kernels(values, min_count):
    """benford_tests (one pass) gives the digit counts and exclusions of the per-test extraction."""
    from analysis.digits import _prepare, _textbook_result

    series = pd.array(values, dtype="Int64")
    fast = benford_tests(series, min_count=min_count)
    for kind in ("first", "second", "first two"):
        slow = _textbook_result(kind, _prepare(series, position=kind, min_count=0))
        np.testing.assert_array_equal(fast[kind].digits["observed"], slow.digits["observed"])
        assert fast[kind].excluded == slow.excluded
        assert fast[kind].n + sum(fast[kind].excluded.values()) == len(values)
    slow_last = last_digit_test(series, min_count=min_count)
    np.testing.assert_array_equal(fast["last"].digits["observed"], slow_last.digits["observed"])
    assert fast["last"].n == slow_last.n


def test_g_statistic_is_the_likelihood_ratio():
    counts = _spread_counts(20_000, seed=4)
    result = first_digit_test(counts)
    observed = result.digits["observed"].to_numpy(float)
    expected = result.n * BENFORD_FIRST
    g = 2 * np.sum(observed * np.log(observed / expected))
    assert result.g_statistic == pytest.approx(g)
    assert result.g_pvalue == pytest.approx(stats.chi2.sf(g, 8))
    assert set(result.to_frame().columns) >= {"g_statistic", "g_pvalue", "mad", "conformity", "statistic", "pvalue"}
    simulated = second_digit_test(np.random.default_rng(1).integers(50, 250, 2000), null="simulated",
                                  totals=np.full(2000, 300), n_sim=99, seed=0)
    assert 0 < simulated.g_pvalue <= 1 and np.isfinite(simulated.g_statistic)


def test_pair_tests_on_uniform_and_invented_numbers():
    rng = np.random.default_rng(8)
    uniform = rng.integers(100, 1000, 20_000)
    fair = last_pair_test(uniform)
    assert fair.repeated_share == pytest.approx(0.1, abs=0.01)
    assert fair.adjacent_share == pytest.approx(0.2, abs=0.012)
    assert fair.repeated_pvalue > 1e-3 and fair.adjacent_pvalue > 1e-3
    # invented: the units digit never repeats the tens digit, and often sits next to it
    tens = (uniform // 10) % 10
    units = np.where(rng.random(len(uniform)) < 0.5, (tens + 1) % 10, (tens + 3) % 10)
    invented = last_pair_test(uniform - uniform % 10 + units)
    assert invented.repeated == 0 and invented.repeated_pvalue < 1e-10
    assert invented.adjacent_share > 0.45 and invented.adjacent_pvalue < 1e-10
    assert list(invented.to_frame()["test"]) == ["repeated final pair", "adjacent final pair"]
    small = last_pair_test([1, 5, None, 12, 99, 90, 45])
    assert small.n == 4 and small.repeated == 1 and small.adjacent == 3  # 99 repeated; 12, 90 and 45 adjacent
    assert small.excluded["missing"] == 1 and small.excluded["below min_count (10)"] == 2
    with pytest.raises(ValueError, match="at least 10"):
        last_pair_test([10, 20], min_count=5)


# ------------------------------------------------------------------------------------ exact null
def test_weighted_chi_square_tail_matches_scipy_where_known():
    from analysis.digits import weighted_chi2_sf

    for q in (0.5, 4.0, 16.9, 35.0):
        assert weighted_chi2_sf(q, np.ones(9)) == pytest.approx(stats.chi2.sf(q, 9), abs=1e-7)
        assert weighted_chi2_sf(q, np.full(4, 2.0)) == pytest.approx(stats.chi2.sf(q / 2, 4), abs=1e-7)
    # an unequal mix against a large Monte Carlo
    weights = np.array([3.0, 1.0, 0.5, 0.2])
    draws = (np.random.default_rng(0).standard_normal((400_000, 4)) ** 2) @ weights
    for q in (2.0, 6.0, 12.0):
        assert weighted_chi2_sf(q, weights) == pytest.approx(np.mean(draws > q), abs=3e-3)
    assert weighted_chi2_sf(0.0, weights) == 1.0


def test_exact_null_agrees_with_its_simulation():
    """The exact expected frequencies and p-values match the simulated null they replace."""
    from analysis.digits import station_digit_probabilities

    rng = np.random.default_rng(21)
    votes, totals, area = clean_stations(rng, n=2000)
    shares = group_shares(votes, totals, area)
    for test in (second_digit_test, last_digit_test):
        exact = test(votes, null="exact", totals=totals, shares=shares)
        simulated = test(votes, null="simulated", totals=totals, shares=shares, n_sim=2000, seed=3)
        assert exact.null.startswith("model-based (beta-binomial, normal approximation): beta-binomial")
        assert "exact" not in exact.null  # a plug-in, normal-approximation null is not called exact
        np.testing.assert_allclose(exact.digits["expected_share"], simulated.digits["expected_share"], atol=1.5e-3)
        assert exact.statistic == pytest.approx(simulated.statistic, rel=0.1)
        assert exact.pvalue == pytest.approx(simulated.pvalue, abs=0.05)
        np.testing.assert_allclose(exact.digits["band_low"], simulated.digits["band_low"], atol=4e-3)
    probabilities = station_digit_probabilities(totals[:50], shares[:50], 0.02, "second")
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    binomial = station_digit_probabilities(np.array([12]), np.array([0.5]), 0.0, "last", min_count=10)
    # P(X = 10) + P(X = 11) + P(X = 12) split over last digits 0, 1, 2; the rest is excluded
    expected = stats.binom.pmf([10, 11, 12], 12, 0.5)
    np.testing.assert_allclose(binomial[0, :3], expected)
    assert binomial[0, 10] == pytest.approx(1 - expected.sum())


def test_exact_pair_null_is_centred_on_tps_data():
    rng = np.random.default_rng(4)
    votes, totals, area = clean_stations(rng, n=3000)
    shares = group_shares(votes, totals, area)
    exact = last_pair_test(votes, null="exact", totals=totals, shares=shares)
    assert 0.05 < exact.expected_repeated < 0.15 and 0.1 < exact.expected_adjacent < 0.3
    assert exact.null.startswith("model-based") and "normal approximation" in exact.null
    assert "exact" not in exact.null
    model = last_pair_test(votes, null="model", totals=totals, shares=shares)  # the honest alias
    assert (model.repeated_pvalue, model.adjacent_pvalue) == (exact.repeated_pvalue, exact.adjacent_pvalue)
    with pytest.raises(ValueError, match="needs totals"):
        last_pair_test(votes, null="exact")
    with pytest.raises(ValueError, match="null must be"):
        last_pair_test(votes, null="poisson")


def test_digit_tests_accept_the_exact_null(small_election):
    table = digit_tests(small_election, level="regency", null="exact")
    tested = table.results.dropna(subset=["pvalue"])
    assert table.null == "model-based (beta-binomial, normal approximation)" and len(tested) >= 6
    assert tested["null"].str.startswith("model-based").all()
    assert ((tested["pvalue"] >= 0) & (tested["pvalue"] <= 1)).all()
    assert "exact" not in table._repr_html_()
    alias = digit_tests(small_election, level="regency", null="model")  # the honest name, same numbers
    pd.testing.assert_frame_equal(alias.results, table.results)


def test_a_callers_error_is_not_turned_into_a_nan_row(small_election, monkeypatch):
    import analysis.digits as digits_module
    from analysis.errors import InsufficientData

    def broken(*args, **kwargs):
        raise TypeError("a bug in a kernel")

    monkeypatch.setattr(digits_module, "_run", broken)
    with pytest.raises(TypeError, match="a bug in a kernel"):
        digit_tests(small_election, level="regency", null="exact")

    def too_few(*args, **kwargs):
        raise InsufficientData("only 3 usable stations")

    monkeypatch.setattr(digits_module, "_run", too_few)
    table = digit_tests(small_election, level="regency", null="exact").results
    ran = ~table["note"].str.startswith("too few usable stations")  # regions the kernel was called for
    assert ran.sum() >= 6 and table["pvalue"].isna().all()
    assert table.loc[ran, "note"].str.fullmatch("not tested: only 3 usable stations").all()


def test_pair_tests_per_region_flag_invented_pairs_only_where_planted():
    from analysis.digits import pair_tests

    rng = np.random.default_rng(8)
    n = 6000
    regions = np.repeat(["A", "B", "C"], n // 3)
    totals = rng.integers(150, 301, n)
    votes = rng.binomial(totals, rng.beta(20, 20, n)).astype(float)
    # In region C every count gets an adjacent final pair (tens digit + 1), as an inventor might write.
    in_c = regions == "C"
    tens = (votes[in_c] // 10) % 10
    votes[in_c] = votes[in_c] - votes[in_c] % 10 + (tens + 1) % 10
    table = pd.DataFrame({"unit_id": [f"u{i}" for i in range(n)], "province": regions, "registered": totals + 20,
                          "voters": totals, "valid": totals, "invalid": 0, "01": votes.astype(int)})
    election = Election.from_frame(table, levels=["province"], candidates=["01"])
    result = pair_tests(election, level="province", share_level=None)
    adjacent = result[result["test"] == "adjacent final pair"].set_index("region")
    assert adjacent.loc["C", "qvalue"] < 1e-6 and adjacent.loc["C", "share"] > 0.9
    assert (adjacent.loc[["A", "B"], "qvalue"] > 0.05).all()
    assert result["null"].str.startswith("model-based").all()
    with pytest.raises(KeyError):
        pair_tests(election, level="regency")
    with pytest.raises(ValueError, match="null must be"):  # a caller's error, not a note per region
        pair_tests(election, level="province", null="poisson")


def test_region_total_tests_warn_where_benford_cannot_apply():
    from analysis.digits import region_total_tests

    rng = np.random.default_rng(2)
    # Area totals spanning four orders of magnitude follow Benford's law closely (log-uniform sizes) ...
    sizes = np.round(10 ** rng.uniform(1, 5, 4000)).astype(int)
    table = pd.DataFrame({"unit_id": [f"u{i}" for i in range(4000)], "province": "11",
                          "district": [f"11010{i:04d}" for i in range(4000)], "registered": sizes * 2,
                          "voters": sizes, "valid": sizes, "invalid": 0, "01": sizes,
                          "02": rng.integers(100, 300, 4000)})
    election = Election.from_frame(table, levels=["province", "district"], candidates=["01", "02"])
    result = region_total_tests(election, level="district").set_index(["column", "test"])
    assert result.loc[("01", "first digit"), "pvalue"] > 0.001 and result.loc[("01", "first digit"), "note"] == ""
    assert result.loc[("01", "first digit"), "regions"] == 4000
    # ... totals within one order of magnitude are flagged as outside the law's reach, whatever their p-value
    assert "does not apply" in result.loc[("02", "first digit"), "note"]
    with pytest.raises(KeyError):
        region_total_tests(election, level="village")


def test_exact_pair_null_keeps_its_level_on_its_own_model():
    """Counts drawn from the exact null's own model: the pair tests reject about 5 % of the time
    (a continuity correction would make them conservative: 3.4 % here)."""
    rng = np.random.default_rng(11)
    totals = rng.integers(120, 300, 200).astype(float)
    shares = rng.uniform(0.2, 0.7, 200)
    pvalues = []
    for _ in range(2000):
        votes = rng.binomial(totals.astype(int), shares).astype(float)
        pair = last_pair_test(votes, null="exact", totals=totals, shares=shares)
        pvalues += [pair.repeated_pvalue, pair.adjacent_pvalue]
    rate = np.mean(np.array(pvalues) < 0.05)
    assert abs(rate - 0.05) < 3 * np.sqrt(0.05 * 0.95 / len(pvalues)), rate


# ------------------------------------------------------------------------------------ sizes that contradict the counts
def _misread_totals_election(misread_share: float, seed: int = 5, first_unpublished: bool = False) -> Election:
    """Clean beta-binomial stations whose published valid votes were misread (a digit inserted) on a share of them."""
    rng = np.random.default_rng(seed)
    n = 20_000
    valid = rng.integers(150, 301, n)
    a = rng.binomial(valid, rng.beta(0.45 * 40, 0.55 * 40, n))
    published = valid.copy()
    misread = rng.random(n) < misread_share
    published[misread] = valid[misread] * 10 + rng.integers(0, 10, misread.sum())
    table = pd.DataFrame({"unit_id": [f"u{i}" for i in range(n)], "province": "11",
                          "district": [f"d{i % 200}" for i in range(n)], "registered": valid + 40,
                          "voters": valid, "valid": published, "invalid": 0, "01": a, "02": valid - a})
    if first_unpublished:
        table["02"] = table["02"].astype("Int64")
        table.loc[0, "02"] = pd.NA
    return Election.from_frame(table, levels=["province", "district"], candidates=["01", "02"], name="misread")


def test_digit_tests_size_stations_by_their_candidates_not_by_a_misread_total():
    """A misread total distorts the model-based null in proportion to the region's size: misread valid votes
    on 5 % of 20,000 clean stations gave a second-digit chi-square of 1,206 (p = 6e-254) when stations were
    sized by their published valid votes. Sized by the sum of their candidates, the null holds again; the
    misread stations stay in the test (their counts are as written)."""
    from analysis.digits import candidate_votes

    election = _misread_totals_election(0.05)
    sums = election.column("01") + election.column("02")
    assert 900 < int((election.column("valid") != sums).sum()) < 1100
    np.testing.assert_array_equal(candidate_votes(election), sums)
    table = digit_tests(election, level="province", null="model", share_level="district", tests=("second", "last"))
    for column in ("01", "02"):
        for test in ("second digit", "last digit"):
            result = table.result("11", column, test)
            assert result.n == 20_000 and result.pvalue > 0.01
    # the published valid votes still size a station where a candidate is missing
    partial = _misread_totals_election(0.05, first_unpublished=True)
    sizes = candidate_votes(partial)
    assert sizes[0] == partial.column("valid")[0] and sizes[1] == sums[1]
    # candidates that do not make up the valid votes (one contestant's column) leave the published valid votes
    alone = Election.from_frame(election.table.reset_index().drop(columns="02"), levels=["province", "district"],
                                candidates=["01"], name="one contestant")
    np.testing.assert_array_equal(candidate_votes(alone), alone.column("valid"))
    # a named size column is taken as given
    named = digit_tests(election, level="province", null="model", tests=("second",), totals="valid")
    assert named.result("11", "01", "second digit").pvalue < 1e-10


def test_digit_result_reports_its_null_mean_and_effect_per_count():
    rng = np.random.default_rng(6)
    votes, totals, _ = clean_stations(rng, n=3000)
    model = second_digit_test(votes, null="model", totals=totals)
    assert 7.5 < model.null_mean <= 9.0 + 1e-9 and 3.5 < model.null_sd < 4.3
    assert model.effect == pytest.approx((model.statistic - model.null_mean) / model.n)
    assert model.se == pytest.approx(model.null_sd / model.n)
    simulated = second_digit_test(votes, null="simulated", totals=totals, n_sim=199)
    assert simulated.null_mean == pytest.approx(model.null_mean, rel=0.2)
    textbook = second_digit_test(votes)
    assert textbook.null_mean == 9 and textbook.null_sd == pytest.approx(np.sqrt(18))

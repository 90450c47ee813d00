"""Klimek et al.'s fraud model: recovery of planted parameters, reproduction on Russia, Poland near zero.

The reproductions run on ../shared/data/reference and skip when it is absent. They use fewer
repeated fits than the benchmark (benchmarks/bench_turnout.py prints the full-setting figures).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analysis.turnout import klimek_fit, klimek_test
from analysis.turnout.klimek import fair_parameters, klimek_simulate

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference"
needs_reference = pytest.mark.skipif(not REFERENCE.is_dir(), reason="../shared/data/reference is absent")


def simulate_units(rng, n, *, tau=0.55, nu=0.4, sigma_t=0.07, sigma_v=0.06, theta=0.3, f_i=0.0, f_e=0.0, alpha=2.0):
    """Counts drawn from Klimek's model itself (binomial around the latent proportions)."""
    from scipy import stats

    size = rng.integers(600, 2500, n)
    t = stats.truncnorm.rvs(-tau / sigma_t, (1 - tau) / sigma_t, loc=tau, scale=sigma_t, size=n, random_state=rng)
    v = stats.truncnorm.rvs(-nu / sigma_v, (1 - nu) / sigma_v, loc=nu, scale=sigma_v, size=n, random_state=rng)
    u = rng.random(n)
    x = np.where(u < f_i, np.minimum(np.abs(rng.normal(0, theta, n)), 1),
                 np.where(u < f_i + f_e, 1 - np.abs(rng.normal(0, 0.075, n)), 0.0))
    voters = rng.binomial(size, np.clip(t + x * (1 - t), 0, 1))
    winner_p = np.clip((t * v + x * (1 - t) + x**alpha * (1 - v) * t) / np.maximum(t + x * (1 - t), 1e-9), 0, 1)
    winner = rng.binomial(voters, winner_p)
    return size, voters, winner


COARSE = {"f_i_grid": np.arange(0, 1.0001, 0.1), "f_e_grid": np.arange(0, 0.1001, 0.01), "alpha_grid": (1.0, 2.0, 3.0)}


def test_fit_recovers_planted_fraud_and_finds_none_in_a_fair_election():
    rng = np.random.default_rng(3)
    fair = klimek_fit(*simulate_units(rng, 20_000), seed=1, n_repeats=2, **COARSE)
    stuffed = klimek_fit(*simulate_units(rng, 20_000, f_i=0.4, f_e=0.03), seed=1, n_repeats=2, **COARSE)
    assert fair.f_i <= 0.1 and fair.f_e <= 0.01, (fair.f_i, fair.f_e)
    assert abs(stuffed.f_e - 0.03) <= 0.015, stuffed.f_e
    # The (H_obs + 1) loss punishes simulated units in sparsely observed cells, so it prefers a
    # tighter cloud than the truth: f_i comes out low (measured 0.145 for a true 0.4 here; with
    # the true fair parameters the loss is lower at f_i 0.15 than at 0.4). It still separates.
    assert 0.1 <= stuffed.f_i <= 0.45 and stuffed.f_i >= fair.f_i + 0.08, (fair.f_i, stuffed.f_i)
    assert stuffed.loss_fitted < stuffed.loss_fair
    # fair parameters: the peak and its left half-widths (binomial noise widens them a little)
    assert fair.fair["tau"] == pytest.approx(0.55, abs=0.02) and fair.fair["nu"] == pytest.approx(0.4, abs=0.02)
    assert fair.fair["sigma_t"] == pytest.approx(0.07, rel=0.25)
    frame = fair.to_frame()
    assert set(frame["parameter"]) == {"tau", "nu", "sigma_t", "sigma_v", "theta", "f_i", "f_e", "alpha"}
    assert fair.observed.sum() == fair.n == fair.fitted.sum() == fair.fair_model.sum()


def test_same_seed_same_fit_and_repeats_give_a_spread():
    rng = np.random.default_rng(4)
    data = simulate_units(rng, 5_000, f_i=0.3)
    a = klimek_fit(*data, seed=7, n_repeats=3, **COARSE)
    b = klimek_fit(*data, seed=7, n_repeats=3, **COARSE)
    assert (a.f_i, a.f_e, a.alpha) == (b.f_i, b.f_e, b.alpha)
    assert len(a.repeats) == 3 and np.isfinite(a.f_i_sd)


def test_bootstrap_test_rejects_stuffing_not_a_fair_election():
    rng = np.random.default_rng(5)
    fair = klimek_test(*simulate_units(rng, 3_000), seed=2, n_boot=19)
    stuffed = klimek_test(*simulate_units(rng, 3_000, f_i=0.3, f_e=0.03), seed=2, n_boot=19)
    assert fair.pvalue > 0.1, fair.pvalue
    assert stuffed.pvalue == pytest.approx(1 / 20), stuffed.pvalue  # beyond every resample


def test_too_few_units_give_nan_and_exclusions_are_counted():
    fit = klimek_fit([50, 200, np.nan], [40, 150, 10], [20, 80, 5], seed=0, n_repeats=1)
    assert np.isnan(fit.f_i) and fit.n == 1
    assert fit.excluded["registered < 100"] == 1 and fit.excluded["missing count"] == 1
    assert np.isnan(klimek_test([200] * 5, [150] * 5, [80] * 5, seed=0, n_boot=5).pvalue)


def test_fair_peak_is_the_global_mode_not_a_side_bump():
    """A side population of small special stations (as in Poland) must not become the fair peak."""
    rng = np.random.default_rng(6)
    turnout = np.r_[rng.normal(0.65, 0.08, 20_000), rng.normal(0.35, 0.03, 3_000)].clip(0, 1)
    share = np.r_[rng.normal(0.45, 0.08, 20_000), rng.normal(0.5, 0.05, 3_000)].clip(0, 1)
    fair = fair_parameters(turnout, share)
    assert fair["tau"] == pytest.approx(0.65, abs=0.02) and fair["nu"] == pytest.approx(0.45, abs=0.02)


def test_simulation_is_a_histogram_of_every_unit():
    fair = {"tau": 0.6, "nu": 0.5, "sigma_t": 0.05, "sigma_v": 0.05, "theta": 0.3}
    h = klimek_simulate(fair, 0.0, 0.1, 2.0, np.full(1_000, 500), seed=1)
    assert h.shape == (100, 100) and h.sum() == 1_000
    assert h[95:, 90:].sum() >= 70  # ~10 % extreme units sit near 100 % / 100 %


# ------------------------------------------------------------------------------------ reproductions
@pytest.fixture(scope="module")
def reference():
    from analysis.sources.tabular import read_table

    cache = {}

    def load(file, mapping):
        if file not in cache:
            cache[file] = read_table(REFERENCE / file, mapping)[0]
        return cache[file]

    return load


@pytest.fixture(scope="module")
def russia_2011_fit(reference):
    return fit_reference(reference("russia_2011_duma.csv.gz", "russia_2011"), "UR")


def fit_reference(election, winner, n_repeats=2):
    return klimek_fit(election.column("registered"), election.column("voters"), election.column(winner),
                      election.column("valid"), seed=2012, n_repeats=n_repeats)


@needs_reference
@pytest.mark.xfail(strict=True, reason="measured f_i 0.76 (sd 0.02), f_e 0.018, alpha 2.3 with this procedure (10 "
                                       "repeats, benchmark): f_i is 0.12 above the published 0.64 (tolerance 0.1); "
                                       "not tuned to the number")
def test_klimek_russia_2011_reproduces_published_fractions(russia_2011_fit):
    fit = russia_2011_fit
    assert abs(fit.f_i - 0.64) <= 0.1      # Klimek et al. 2012, Table 1 (as transcribed by Kobak)
    assert abs(fit.f_e - 0.033) <= 0.015
    assert abs(fit.alpha - 2.3) <= 0.5


@needs_reference
def test_klimek_russia_2011_close_to_published_and_far_from_fair(russia_2011_fit):
    """What does hold: f_e and alpha within the published tolerance, f_i large (measured 0.76)."""
    fit = russia_2011_fit
    assert abs(fit.f_e - 0.033) <= 0.015 and abs(fit.alpha - 2.3) <= 0.5, (fit.f_e, fit.alpha)
    assert 0.5 <= fit.f_i <= 0.85, fit.f_i
    assert fit.loss_fitted < 0.5 * fit.loss_fair


@needs_reference
def test_klimek_poland_2020_stays_far_below_russia(reference):
    """Clean Poland: no extreme fraud, and f_i a fraction of Russia's (measured 0.12 with alpha at the
    grid's floor 0.5: the fair model's Gaussian share cannot follow Duda's rural right tail, and
    vote "stealing" without stuffing absorbs it; not near zero, see the report)."""
    fit = fit_reference(reference("poland_2020_president_round1.csv.gz", "poland_2020"), "DUDA")
    assert fit.f_e <= 0.005, fit.f_e
    assert fit.f_i <= 0.2, fit.f_i


def test_figures_draw_the_fit_and_the_integer_null():
    from matplotlib.figure import Figure

    from analysis.plots import integer_percent_plot, klimek_fit_plot
    from analysis.turnout import kobak_integer_test

    rng = np.random.default_rng(11)
    size, voters, winner = simulate_units(rng, 2_000, f_i=0.3)
    fit = klimek_fit(size, voters, winner, seed=1, n_repeats=2, **COARSE)
    fig = klimek_fit_plot(fit, title="<b>Provinsi $x$</b>")
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # three panels and a colour bar
    assert "$x$" in fig._suptitle.get_text() and "fair model" in fig.axes[2].get_title()
    integer = kobak_integer_test(size, voters, winner, voters, n_rep=50)
    fig = integer_percent_plot(integer)
    assert [ax.get_title().split(":")[0] for ax in fig.axes] == ["turnout or leader", "turnout", "leader's share"]


@needs_reference
@pytest.mark.parametrize("file, mapping, winner, flagged", [
    ("poland_2020_president_round1.csv.gz", "poland_2020", "DUDA", False),
    ("russia_2011_duma.csv.gz", "russia_2011", "UR", True),
    ("uganda_2011_president.csv.gz", "uganda_2011", "MUSEVENI", True),
])
def test_bootstrap_test_flags_russia_and_uganda_not_poland(reference, file, mapping, winner, flagged):
    election = reference(file, mapping)
    test = klimek_test(election.column("registered"), election.column("voters"), election.column(winner),
                       election.column("valid"), seed=5, n_boot=19)
    if flagged:
        assert test.pvalue == pytest.approx(1 / 20), test.pvalue  # beyond all 19 fair resamples
    else:
        assert test.pvalue > 0.2, test.pvalue


@pytest.mark.parametrize("mean, sd", [(0.7, 0.1), (0.55, 0.04), (0.98, 0.02), (0.5, 0.4), (1.3, 0.1)])
def test_truncated_normal_draws_equal_scipys(mean, sd):
    # The fast inversion must be scipy's truncnorm draw for draw (same uniforms, same stream after).
    from scipy import stats

    from analysis.turnout.klimek import _truncated_normal

    a, b = (0 - mean) / sd, (1 - mean) / sd
    mine, theirs = np.random.default_rng(4), np.random.default_rng(4)
    ours = _truncated_normal(mine, mean, sd, 20000)
    reference = stats.truncnorm.rvs(a, b, loc=mean, scale=sd, size=20000, random_state=theirs)
    np.testing.assert_allclose(ours, reference, rtol=0, atol=1e-11)
    assert ours.min() >= 0 and ours.max() <= 1 and mine.random() == theirs.random()

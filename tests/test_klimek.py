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
    x_inc = stats.truncnorm.rvs(0, 1 / theta, scale=theta, size=n, random_state=rng)  # |N(0, theta)| on [0, 1]
    x = np.where(u < f_i, x_inc, np.where(u < f_i + f_e, 1 - np.abs(rng.normal(0, 0.075, n)), 0.0))
    voters = rng.binomial(size, np.clip(t + x * (1 - t), 0, 1))
    winner_p = np.clip((t * v + x * (1 - t) + x**alpha * (1 - v) * t) / np.maximum(t + x * (1 - t), 1e-9), 0, 1)
    winner = rng.binomial(voters, winner_p)
    return size, voters, winner


COARSE = {"f_i_grid": np.arange(0, 1.0001, 0.1), "f_e_grid": np.arange(0, 0.1001, 0.01), "alpha_grid": (1.0, 2.0, 3.0)}


def test_fit_recovers_planted_fraud_and_finds_none_in_a_fair_election():
    rng = np.random.default_rng(3)
    fair = klimek_fit(*simulate_units(rng, 20_000), seed=1, n_repeats=2, **COARSE)
    stuffed = klimek_fit(*simulate_units(rng, 20_000, f_i=0.4, f_e=0.03), seed=1, n_repeats=2, **COARSE)
    assert fair.f_i <= 0.05 and fair.f_e <= 0.005, (fair.f_i, fair.f_e)
    # Measured 0.32 / 0.0265 (the previous variant: 0.145 / 0.03). What is left of the bias comes
    # from the fair peak: units stuffed a little move the fingerprint's mode up-right, so tau is
    # estimated high (0.561 here for a true 0.55) and f_i low.
    assert abs(stuffed.f_i - 0.4) <= 0.1 and abs(stuffed.f_e - 0.03) <= 0.01, (stuffed.f_i, stuffed.f_e)
    assert stuffed.loss_fitted < 0.5 * stuffed.loss_fair
    # fair parameters: the peak, the left half-width of turnout, the share of units below the peak
    assert fair.fair["tau"] == pytest.approx(0.55, abs=0.02) and fair.fair["nu"] == pytest.approx(0.4, abs=0.01)
    assert fair.fair["sigma_t"] == pytest.approx(0.07, rel=0.15) and fair.fair["sigma_v"] == pytest.approx(0.06, rel=0.15)
    assert stuffed.fair["nu"] == pytest.approx(0.4, abs=0.01) and stuffed.fair["sigma_v"] == pytest.approx(0.06, rel=0.15)
    frame = fair.to_frame()
    assert set(frame["parameter"]) == {"tau", "nu", "sigma_t", "sigma_v", "theta", "f_i", "f_e", "alpha"}
    assert fair.observed.sum() == fair.n == fair.fitted.sum() == fair.fair_model.sum()


@pytest.mark.parametrize("seed", [11, 12])
def test_chi_square_loss_finds_the_true_parameters_where_the_relative_loss_does_not(seed):
    """With the true fair parameters, the fit's loss is smallest at the true (f_i, f_e, alpha); the
    relative loss sum ((S - O) / (O + 1))^2 prefers a tighter cloud (measured f_i 0.15 and 0.25)."""
    from analysis.turnout.klimek import _cells, _draw, _Fitter

    size, voters, winner = simulate_units(np.random.default_rng(seed), 20_000, f_i=0.4, f_e=0.03)
    truth = {"tau": 0.55, "nu": 0.4, "sigma_t": 0.07, "sigma_v": 0.06, "theta": 0.3}
    observed = np.bincount(_cells(voters / size, winner / voters, 100), minlength=100 * 100).reshape(100, 100)
    grids = (np.arange(0, 1.0001, 0.05), np.arange(0, 0.1001, 0.01), (1.0, 2.0, 3.0))
    found = {}
    for loss in ("chi-square", "relative"):
        fitter = _Fitter(_draw(np.random.default_rng(1), truth, len(size)), size, observed, 100, loss=loss)
        found[loss] = fitter.search(*grids)[1:]
    f_i, f_e, _ = found["chi-square"]
    assert f_i == pytest.approx(0.4, abs=0.05) and f_e == pytest.approx(0.03, abs=0.01), found
    assert found["relative"][0] <= 0.3, found


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


def test_fair_peak_is_not_the_extreme_fraud_corner():
    """8 % of units at 100 % / 100 % outweigh a wide fair blob in the KDE; the peak stays with the blob."""
    rng = np.random.default_rng(7)
    turnout = np.r_[rng.normal(0.5, 0.12, 20_000).clip(0, 1), np.ones(1_700)]
    share = np.r_[rng.normal(0.35, 0.12, 20_000).clip(0, 1), np.ones(1_700)]
    fair = fair_parameters(turnout, share)
    assert fair["tau"] == pytest.approx(0.5, abs=0.03) and fair["nu"] == pytest.approx(0.35, abs=0.02)


def test_fair_share_is_read_below_the_turnout_peak_on_both_sides():
    """A share skewed to the right at ordinary turnout (Poland's rural stations) widens sigma_v; the
    left half of the share around the fingerprint's mode would not see it."""
    rng = np.random.default_rng(8)
    turnout = rng.normal(0.6, 0.07, 30_000)
    share = np.where(rng.random(30_000) < 0.6, rng.normal(0.35, 0.05, 30_000), rng.normal(0.6, 0.1, 30_000))
    from analysis.turnout.klimek import _binned_kde_mode, _left_half_sd

    fair = fair_parameters(turnout, share)
    below = share[turnout < fair["tau"]]
    assert fair["nu"] == pytest.approx(np.median(below))
    assert fair["sigma_v"] >= 0.1, fair  # the MAD of the two-bump share, both sides
    assert _left_half_sd(share, _binned_kde_mode(turnout, share)[1]) <= 0.06  # the left half: the first bump only


def test_simulation_is_a_histogram_of_every_unit():
    fair = {"tau": 0.6, "nu": 0.5, "sigma_t": 0.05, "sigma_v": 0.05, "theta": 0.3}
    h = klimek_simulate(fair, 0.0, 0.1, 2.0, np.full(1_000, 500), seed=1)
    assert h.shape == (100, 100) and h.sum() == 1_000
    assert h[95:, 90:].sum() >= 70  # ~10 % extreme units sit near 100 % / 100 %


def test_incremental_stuffing_share_is_truncated_not_capped():
    """x ~ |N(0, theta)| on [0, 1]: capping would put 2 (1 - Phi(1 / theta)) = 5 % of the stuffed units
    at theta 0.52 exactly at 100 % / 100 %, where they would pass for extreme fraud."""
    from analysis.turnout.klimek import _draw

    fair = {"tau": 0.5, "nu": 0.3, "sigma_t": 0.07, "sigma_v": 0.05, "theta": 0.52}
    x = _draw(np.random.default_rng(2), fair, 200_000).x_inc
    assert x.min() >= 0 and x.max() < 1 and np.mean(x > 0.99) < 0.004  # capped: 0.057
    # the half-normal's shape below 1: P(x < 0.52) = (2 Phi(1) - 1) / (2 Phi(1 / 0.52) - 1)
    from scipy import stats

    expected = (2 * stats.norm.cdf(1) - 1) / (2 * stats.norm.cdf(1 / 0.52) - 1)
    assert np.mean(x < 0.52) == pytest.approx(expected, abs=0.005)
    h = klimek_simulate(fair, 1.0, 0.0, 2.0, np.full(20_000, 1_000), seed=3)
    assert h[99, 99] <= 0.005 * 20_000


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
def test_klimek_russia_2011_reproduces_published_fractions(russia_2011_fit):
    """Measured with 10 repeats (benchmark): f_i 0.560 +- 0.012, f_e 0.031 +- 0.003; here 2 repeats."""
    fit = russia_2011_fit
    assert abs(fit.f_i - 0.64) <= 0.1, fit.f_i      # Klimek et al. 2012, Table 1 (as transcribed by Kobak)
    assert abs(fit.f_e - 0.033) <= 0.015, fit.f_e
    assert fit.loss_fitted < 0.5 * fit.loss_fair


@needs_reference
@pytest.mark.xfail(strict=True, reason="measured alpha 3.1 (sd 0.1, 10 repeats) for the published 2.3: the fair share "
                                       "read below the turnout peak is wider (sd 0.097) than the left half around the "
                                       "mode (0.054), so less stealing per stuffed unit fits; not tuned to the number")
def test_klimek_russia_2011_reproduces_published_alpha(russia_2011_fit):
    assert abs(russia_2011_fit.alpha - 2.3) <= 0.5


@needs_reference
def test_klimek_poland_2020_near_zero(reference):
    """Clean Poland: measured f_i = f_e = 0 in every repeat (the previous variant, which read the fair
    share off the left half around the fingerprint's mode: f_i 0.12 with alpha at the grid floor)."""
    fit = fit_reference(reference("poland_2020_president_round1.csv.gz", "poland_2020"), "DUDA")
    assert fit.f_e <= 0.005, fit.f_e
    assert fit.f_i <= 0.05, fit.f_i


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


def test_a_fit_on_the_edge_of_its_grid_says_so():
    # The fit is a grid search: its convergence check is whether the optimum sits on an edge of the
    # grid that is not an edge of the model. Stuffing with alpha 1 against an alpha grid from 2.5 up
    # forces the optimum onto the grid's lower edge.
    rng = np.random.default_rng(4)
    units = simulate_units(rng, 8_000, f_i=0.4, alpha=1.0)
    grids = {"f_i_grid": COARSE["f_i_grid"], "f_e_grid": COARSE["f_e_grid"]}
    edge = klimek_fit(*units, seed=1, n_repeats=2, alpha_grid=(2.5, 3.0, 3.5), refine=False, **grids)
    assert "alpha at the grid minimum 2.5" in edge.note and "outside the grid" in edge.summary().to_string()
    inside = klimek_fit(*units, seed=1, n_repeats=2, alpha_grid=(0.5, 1.0, 1.5, 2.0), refine=False, **grids)
    assert "alpha" not in inside.note, inside.note
    fair = klimek_fit(*simulate_units(rng, 8_000), seed=1, n_repeats=2, refine=False, **COARSE)
    assert fair.note == "", fair.note  # no fraud: alpha does not enter, its grid edge is no finding

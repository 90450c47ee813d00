"""Tests of Rozenas' resampled kernel density test (analysis/turnout/spikes.py).

Nulls: simulated elections drawn from a beta-binomial mixture have no spikes, so the test's
p-value should be roughly uniform on them; planted whole-percentage shares must be found.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import plots
from analysis.turnout.spikes import (BetaBinomialMixture, fit_betabinomial_mixture, r_density, rozenas_spikes,
                                     spikes_table)

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference"


def _reference(name: str) -> Path:
    path = REFERENCE / name
    if not path.exists():
        pytest.skip(f"reference data not found: {path} (../shared is absent)")
    return path


def _simulate(rng, n=3000, *, rounded: float = 0.0):
    """Turnout and votes from a two-component beta-binomial mixture; optionally a share of
    stations whose vote share is written as a whole 10 % (50 %, 60 %, ...)."""
    N = rng.integers(150, 900, n)
    t = rng.binomial(N, rng.beta(30, 12, n))
    component = rng.random(n) < 0.6
    p = np.where(component, rng.beta(20, 25, n), rng.beta(12, 6, n))
    v = rng.binomial(t, p)
    fake = rng.random(n) < rounded
    target = np.round(p[fake], 1)
    v[fake] = np.round(target * t[fake]).astype(int)
    # keep only fakes whose written share is exactly the round value
    exact = np.isclose(v[fake] / t[fake], target)
    v[np.flatnonzero(fake)[~exact]] = rng.binomial(t[fake][~exact], p[fake][~exact])
    return N, t, v


def test_r_density_has_mass_where_the_data_are():
    x, y = r_density(np.array([0.25, 0.25, 0.5, 0.7501]), bw=1e-4, grid=1001)
    assert len(x) == 1001 and x[0] == 0 and x[-1] == 1
    # As in R: with bw below the 2^10-point binning step, each binned mass meets only the kernel's
    # peak, so the curve integrates to dnorm(0, sd = bw) x step = 3989.4 x 1.0008 / 1023, not 1.
    assert np.trapezoid(y, x) == pytest.approx(1 / (1e-4 * np.sqrt(2 * np.pi)) * 1.0008 / 1023, rel=0.01)
    wide_x, wide_y = r_density(np.random.default_rng(1).uniform(0.2, 0.8, 5000), bw=0.02, grid=1001)
    assert np.trapezoid(wide_y, wide_x) == pytest.approx(1.0, abs=0.01)
    assert set(np.round(x[y > 0.1 * y.max()], 3)) <= {0.249, 0.25, 0.251, 0.499, 0.5, 0.501, 0.749, 0.75, 0.751}
    assert y[250] > y[500]  # two stations at 25 %, one at 50 %


def test_mixture_fit_recovers_a_known_mixture():
    rng = np.random.default_rng(5)
    n = 6000
    size = rng.integers(100, 600, n)
    first = rng.random(n) < 0.7
    p = np.where(first, rng.beta(40, 40, n), rng.beta(30, 10, n))
    count = rng.binomial(size, p)
    fit = fit_betabinomial_mixture(count, size, components=2, seed=1)
    frame = fit.to_frame().sort_values("mean").reset_index(drop=True)
    assert frame["weight"].tolist() == pytest.approx([0.7, 0.3], abs=0.04)
    assert frame["mean"].tolist() == pytest.approx([0.5, 0.75], abs=0.02)
    chosen = fit_betabinomial_mixture(count, size, seed=1)  # BIC picks the number of components
    assert chosen.components >= 2


def test_clean_mixture_elections_are_not_flagged_and_planted_round_shares_are():
    rng = np.random.default_rng(11)
    clean_p = [rozenas_spikes(*_simulate(rng), resamples=60, seed=s).pvalue for s in range(5)]
    # Null: P(p < 0.05) = 0.05 per election; three or more of five happens with probability 0.001.
    assert sum(p < 0.05 for p in clean_p) <= 2, clean_p
    # 200 resamples, as the reports run: with 60, some 16 of the 1,001 bins of a null draw top the
    # envelope by chance, and the null figure (~2 %) nearly reaches the planted one (~3 %).
    planted = rozenas_spikes(*_simulate(rng, rounded=0.1), resamples=200, seed=9)
    assert planted.pvalue <= 2 / 201
    # ~10 % of stations are given a round share, but only those whose t makes it exact keep it.
    assert planted.excess_over_null > 0.5
    top = planted.spikes(3)["share"].round(2)  # the largest excesses sit on the planted values
    assert top.isin([0.3, 0.4, 0.5, 0.6, 0.7, 0.8]).all()
    assert planted.ci_low <= planted.fraud_percent <= planted.ci_high


def test_bad_input_is_counted_not_dropped_silently():
    rng = np.random.default_rng(2)
    N, t, v = (a.astype(float) for a in _simulate(rng, n=400))
    t[0], v[1], N[2] = 0, t[1] + 1, np.nan
    result = rozenas_spikes(N, t, v, resamples=5, seed=1)
    assert result.n + sum(result.excluded.values()) == 400
    assert result.excluded["t = 0 (no share)"] == 1 and result.excluded["v > t"] == 1
    assert result.excluded["missing count"] == 1
    with pytest.raises(ValueError, match="differ in length"):
        rozenas_spikes(N[:10], t, v)


def test_region_table_html_and_figure(tmp_path):
    from analysis.synth import make_election

    election = make_election(scale=0.02, seed=2024, provinces_only=["61", "31"]).election
    table = spikes_table(election, resamples=100, seed=3)
    assert set(table.results["region"]) == {"31", "61"}
    assert table.results["qvalue"].notna().all()
    # Province 61 carries fabricated whole-number percentages for 02 (analysis.synth DEFAULT_PLAN);
    # at this scale (~370 TPS) the test's power is partial (p 0.01-0.1 across seeds), so only the
    # ordering against the clean province and a positive excess are asserted.
    by_region = table.results.set_index("region")
    assert by_region.at["61", "pvalue"] < by_region.at["31", "pvalue"]
    assert by_region.at["61", "excess_over_null"] > 0
    html = table._repr_html_()
    assert "<script" not in html
    fig = plots.spikes_envelope(table.details["61"], title="<b>61</b> $x$", zoom=(0.4, 0.6))
    fig.savefig(tmp_path / "spikes.png")


def test_canada_reference_file_holds_canada_2011_polls():
    """The corrected file is Canada 2011: its polls are Elections Canada's, not Russia's stations.

    Each (N, t, v) triple is looked up among Elections Canada's polls (N electors, t the parties'
    valid votes, v CPC) and among Russia 2011's stations (registered, valid, United Russia).
    """
    from analysis.sources.tabular import load_mapping

    canada = pd.read_csv(_reference("canada_2011_conservative.csv.gz"))
    assert len(canada) == 66111
    assert canada["v"].sum() / canada["t"].sum() == pytest.approx(0.395, abs=0.001)  # the issue: CPC 39.5 %
    assert ((canada["v"] <= canada["t"]) & (canada["t"] <= canada["N"])).all()
    polls = pd.read_csv(_reference("canada_2011_polls.csv.gz"))
    valid = polls[["CPC", "LPC", "NDP", "BQ", "GPC", "OTHER"]].fillna(0).sum(axis=1)
    elections_canada = set(zip(polls["electors"].astype(int), valid.astype(int), polls["CPC"].fillna(0).astype(int)))
    mapping = load_mapping("russia_2011")
    columns = [mapping["counts"]["registered"], mapping["counts"]["valid"], mapping["candidates"]["UR"]]
    russia = pd.read_csv(_reference("russia_2011_duma.csv.gz"), usecols=columns)[columns].dropna().astype(np.int64)
    russian = set(map(tuple, russia.to_numpy()))
    triples = list(zip(canada["N"], canada["t"], canada["v"]))
    assert np.mean([x in elections_canada for x in triples]) > 0.98  # 98.97 % measured
    assert np.mean([x in russian for x in triples]) < 0.01


def test_reference_rows_keep_the_r_scripts_stations():
    """The N, t, v tables of methods.md's rows have the station counts the appendix states."""
    from analysis.turnout.spikes_r import reference_ntv

    _reference("russia_2011_duma.csv.gz")
    assert len(reference_ntv("russia_2011")) == 95224
    assert len(reference_ntv("uganda_2011")) == 23827
    assert len(reference_ntv("spikes_example_data")) == 95045
    polls = reference_ntv("canada_2011_polls")
    assert ((polls["t"] > 0) & (polls["t"] <= polls["N"])).all() and len(polls) == 66310


def test_canada_2011_with_the_packages_stored_mixtures_reproduces_its_figure():
    """With the mixtures stored in the package's example output, the resampling step alone is
    compared: the package's stored figure is 0.0389 %, and R reusing those mixtures (seed 1,
    1,000 resamples) gives 0.0405 % (methods.md)."""
    summary = json.loads(_reference("canada_2011_spikes_output_summary.json").read_text())
    data = pd.read_csv(_reference("canada_2011_conservative.csv.gz"))
    mixtures = (BetaBinomialMixture.from_r(summary["turnout_mixture"]), BetaBinomialMixture.from_r(summary["vote_mixture"]))
    result = rozenas_spikes(data["N"], data["t"], data["v"], resamples=1000, seed=1, mixtures=mixtures,
                            max_null_draws=0)
    # Both runs carry the same resampling error (ours: result.se); 3 SE of the difference.
    assert abs(result.fraud_percent - 0.0405) <= 3 * np.sqrt(2) * result.se + 1e-3
    assert abs(result.fraud_percent - summary["fraud_percent"]) <= 3 * np.sqrt(2) * result.se + 1e-3


def test_component_rule_is_the_packages():
    """On Canada 2011 the package's rule (stop when successive fits correlate at 0.99) keeps 2
    turnout and 4 vote components, as the package's stored output has; BIC keeps more turnout
    components (very concentrated ones) than the package does."""
    summary = json.loads(_reference("canada_2011_spikes_output_summary.json").read_text())
    data = pd.read_csv(_reference("canada_2011_conservative.csv.gz"))
    turnout = fit_betabinomial_mixture(data["t"], data["N"], seed=1)
    vote = fit_betabinomial_mixture(data["v"], data["t"], seed=1)
    assert turnout.converged and vote.converged, (turnout.message, vote.message)
    assert turnout.components == len(summary["turnout_mixture"]["w"]) == 2
    assert vote.components == len(summary["vote_mixture"]["w"]) == 4
    bic = fit_betabinomial_mixture(data["t"], data["N"], seed=1, rule="bic")
    assert bic.components > 2


def test_sequential_pvalue_has_no_floor_at_the_resamples_and_stops_early_on_clean_data():
    rng = np.random.default_rng(11)
    clean = rozenas_spikes(*_simulate(rng), resamples=200, seed=3, max_null_draws=2000)
    # Besag & Clifford: a clean election stops at 10 exceedances, far before the maximum.
    assert clean.null_draws < 1000 and clean.pvalue > 0.01
    planted = rozenas_spikes(*_simulate(rng, rounded=0.1), resamples=200, seed=9, max_null_draws=2000)
    assert planted.pvalue_min == pytest.approx(1 / 2001)
    assert planted.pvalue < 1 / 201  # below the floor of the 200 resamples (the old leave-one-out p-value)


def test_resampling_error_is_of_the_order_of_the_spread_over_seeds():
    """``se`` against the SD of ``fraud_percent`` over 12 seeds with the mixtures fixed (so only the
    resampling varies). Measured: clean 0.21 against 0.10, planted 0.28 against 0.37; the normal
    tail it reads is an approximation, good to a factor of about two, and is asserted as such."""
    rng = np.random.default_rng(21)
    for rounded in (0.0, 0.03):
        N, t, v = _simulate(rng, n=3000, rounded=rounded)
        mix = (fit_betabinomial_mixture(t, N, seed=1), fit_betabinomial_mixture(v, t, seed=1))
        runs = [rozenas_spikes(N, t, v, resamples=100, seed=s, mixtures=mix, max_null_draws=0) for s in range(12)]
        spread = np.std([r.fraud_percent for r in runs], ddof=1)
        se = np.sqrt(np.mean([r.se ** 2 for r in runs]))
        assert 1 / 3 < se / spread < 3, (rounded, se, spread)


@pytest.mark.skipif(__import__("shutil").which("Rscript") is None, reason="R (Rscript) is not installed")
def test_r_density_is_rs_density():
    """``r_density`` against R's own ``density(x, bw = 1e-4, from = 0, to = 1, n = 1001)``."""
    import subprocess

    x = np.random.default_rng(4).integers(0, 50, 400) / 50
    code = ("x <- scan(file('stdin'), quiet = TRUE); d <- density(x, from = 0, to = 1, cut = TRUE, n = 1001, "
            "bw = 1e-4, kernel = 'gaussian'); cat(sprintf('%.17g', d$y), sep = '\\n')")
    done = subprocess.run(["Rscript", "-e", code], input="\n".join(f"{value:.17g}" for value in x), capture_output=True, text=True,
                          timeout=120, check=True)
    r_y = np.array(done.stdout.split(), dtype=float)
    _, ours = r_density(x, bw=1e-4, grid=1001)
    assert np.allclose(ours, r_y, rtol=1e-6, atol=1e-9 * r_y.max())


def test_poland_2020_is_not_flagged():
    from analysis.sources.tabular import read_table

    election, _ = read_table(_reference("poland_2020_president_round1.csv.gz"), "poland_2020")
    result = rozenas_spikes(election.column("registered"), election.column("valid"), election.column("DUDA"),
                            resamples=100, seed=4)
    assert result.pvalue > 0.01
    assert result.excess_over_null < 0.5


def test_the_compiled_resampling_stage_draws_numpys_numbers():
    """The compiled stage calls numpy's beta and binomial in numpy's order: the same draws, one row or many."""
    from analysis.turnout import spikes as spikes_module

    if spikes_module._posterior_binomial_compiled is None:
        import os

        assert not os.environ.get("FORENSIK_REQUIRE_COMPILED"), "the compiled resampling stage was not built (see pip's output)"
        pytest.skip("the compiled resampling stage was not built (no C compiler or numpy at install)")
    rng = np.random.default_rng(11)
    N, t, v = _simulate(rng, 800)
    N, t, v = (np.asarray(x, dtype=float) for x in (N, t, v))
    mixtures = (fit_betabinomial_mixture(t, N, components=3, seed=1), fit_betabinomial_mixture(v, t, components=2, seed=1))
    sampler = spikes_module._Resampler(N, t, v, *mixtures, spikes_module._RDensity(1e-4, 1001), 1001)
    for reps in (1, 4):
        compiled = sampler.draw_many(np.random.default_rng(reps), reps)
        array_calls = sampler.draw_many(np.random.default_rng(reps), reps, compiled=False)
        assert all(np.array_equal(a, b) for a, b in zip(compiled, array_calls))
    with pytest.raises(ValueError, match="one row or 4 rows"):
        spikes_module._posterior_binomial_compiled(rng, sampler.cum_t, sampler.t, sampler.N, mixtures[0].a,
                                                   mixtures[0].b, np.zeros((2, len(N)), dtype=np.int64), 4)


def test_the_likelihood_by_running_sums_is_the_special_functions_one():
    """The fit's running sums (rising factorials) give log BB and its derivatives as betaln and digamma do."""
    from scipy import special

    from analysis.turnout import spikes as spikes_module

    rng = np.random.default_rng(8)
    n = rng.integers(1, 3000, 4000).astype(float)
    y = np.minimum(np.floor(rng.random(4000) * (n + 1)), n)
    log_comb = special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)
    a, b = np.exp([-4.0, 0.3, 5.0, 10.0]), np.exp([-3.9, 2.0, 7.0, 9.5])  # the fit's bounds: e^-4 .. e^10
    log_bb, da, db = spikes_module._rising_log_bb(y, n, log_comb, a, b)
    assert np.allclose(log_bb, spikes_module._log_bb(y, n, log_comb, a, b), rtol=1e-12, atol=1e-8)
    common = special.digamma(a + b) - special.digamma(n[:, None] + a + b)
    assert np.allclose(da, special.digamma(y[:, None] + a) - special.digamma(a) + common, rtol=1e-10, atol=1e-10)
    assert np.allclose(db, special.digamma((n - y)[:, None] + b) - special.digamma(b) + common, rtol=1e-10, atol=1e-10)
    assert spikes_module._rising_pays(y, n) and not spikes_module._rising_pays(y[:100], n[:100])


def test_a_large_region_gives_the_same_figures_on_one_thread_or_two():
    """Above 20,000 units the resamples come from two streams of the seed, drawn on two threads where
    there are two cores: the figures, the envelope and the sequential p-value must not depend on it."""
    from analysis.turnout import spikes as spikes_module

    rng = np.random.default_rng(12)
    N, t, v = _simulate(rng, n=21000)
    mixtures = (fit_betabinomial_mixture(t, N, components=2, seed=1), fit_betabinomial_mixture(v, t, components=2, seed=1))
    one, two = (rozenas_spikes(N, t, v, resamples=12, seed=5, mixtures=mixtures, max_null_draws=7, threads=k)
                for k in (1, 2))
    assert one.fraud_percent == two.fraud_percent and one.se == two.se and one.pvalue == two.pvalue
    assert np.array_equal(one.envelope, two.envelope) and np.array_equal(one.null_fraud, two.null_fraud)
    # Four distinct streams (two for the resamples, two for the null draws), none of them the seed's own.
    sampler = spikes_module._Resampler(N, t, v, *mixtures, spikes_module._RDensity(1e-4, 1001), 1001)
    first = [g.random() for g in (*sampler.streams(5), *sampler.streams(5, null=True), np.random.default_rng(5))]
    assert len(set(first)) == 5
    assert spikes_module._Resampler(N[:20000], t[:20000], v[:20000], *mixtures, sampler.density, 1001).streams(5) is None

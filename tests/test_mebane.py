"""Tests of Mebane's positive empirical model (analysis/turnout/mebane.py).

Null / truth: data simulated from the eforensics ``bl`` model itself (binomial counts, known
class fractions) must give back its fractions; DC 2010 is the package's smoke data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.turnout.mebane import mebane_fraud

DC = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "reference" / "dc_2010_mayor.csv"


def _simulate_bl(rng, n, pi, tau=0.6, nu=0.45, iota=(0.3, 0.2), chi=(0.85, 0.8)):
    N = rng.integers(500, 1000, n)
    z = rng.choice(3, n, p=pi)
    m = np.select([z == 1, z == 2], [iota[0], chi[0]], 0.0)
    s = np.select([z == 1, z == 2], [iota[1], chi[1]], 0.0)
    a = rng.binomial(N, (1 - tau) * (1 - m))
    share_a = a / N
    p_w = nu * (1 - s) / (1 - m) * (1 - m - share_a) + share_a * (m - s) / (1 - m) + s
    w = rng.binomial(N, np.clip(p_w, 0, 1))
    return N, a, w


def test_recovers_the_fractions_of_data_from_its_own_model():
    rng = np.random.default_rng(8)
    N, a, w = _simulate_bl(rng, 600, [0.75, 0.18, 0.07])
    fit = mebane_fraud(N, a, w, seed=1, starts=4)
    est = fit.to_frame().set_index("parameter")
    assert est.at["pi_incremental", "estimate"] == pytest.approx(0.18, abs=0.05)
    assert est.at["pi_extreme", "estimate"] == pytest.approx(0.07, abs=0.03)
    assert est.at["iota_m", "estimate"] == pytest.approx(0.3, abs=0.05)
    assert (est["se"] >= 0).all()
    assert fit.pvalue_chi2 < 1e-6  # fraud is really there (the chi-square reference: not a valid p-value)
    assert np.isnan(fit.pvalue) and fit.n_null == 0  # no bootstrap draws asked for: no p-value claimed
    assert fit.converged and fit.note == ""
    assert fit.posterior.sum(axis=1) == pytest.approx(1.0)


def test_no_fraud_data_give_small_fractions():
    rng = np.random.default_rng(9)
    N, a, w = _simulate_bl(rng, 400, [1.0, 0.0, 0.0])
    fit = mebane_fraud(N, a, w, seed=2, starts=3)
    assert fit.pi_incremental + fit.pi_extreme < 0.05


def test_dc_2010_smoke():
    if not DC.exists():
        pytest.skip(f"reference data not found: {DC} (../shared is absent)")
    data = pd.read_csv(DC)
    fit = mebane_fraud(data["NVoters"], data["a"], data["Votes"], seed=1, starts=3)
    est = fit.to_frame().set_index("parameter")
    assert fit.n == 143
    assert est.loc[["pi_none", "pi_incremental", "pi_extreme"], "estimate"].sum() == pytest.approx(1.0)
    assert 0 <= est.at["iota_m", "estimate"] <= 0.7 <= est.at["chi_m", "estimate"] <= 1
    assert "<script" not in fit._repr_html_()


def test_bad_input_is_counted():
    rng = np.random.default_rng(3)
    N, a, w = (x.astype(float) for x in _simulate_bl(rng, 60, [1.0, 0.0, 0.0]))
    a[0] = np.nan
    w[1] = N[1] + 1
    fit = mebane_fraud(N, a, w, seed=0, starts=2)
    assert fit.n == 58 and fit.excluded["missing count"] == 1 and fit.excluded["a + w > N"] == 1
    with pytest.raises(ValueError, match="differ in length"):
        mebane_fraud(N[:5], a, w)


def test_beta_binomial_counts_absorb_overdispersion_that_the_binomial_model_calls_fraud():
    # No fraud, but turnout and support vary between units beyond binomial noise (precision 60).
    rng = np.random.default_rng(12)
    n = 500
    N = rng.integers(200, 300, n)
    a = rng.binomial(N, rng.beta(0.25 * 60, 0.75 * 60, n))
    w = rng.binomial(N, np.clip(rng.beta(0.55 * 60, 0.45 * 60, n) * (1 - a / N), 0, 1))
    binomial = mebane_fraud(N, a, w, seed=3, starts=3)
    beta_binomial = mebane_fraud(N, a, w, seed=3, starts=3, model="bbl")
    assert binomial.pvalue_chi2 < 1e-6  # the package's caveat: bl reads overdispersion as fraud
    assert beta_binomial.pvalue_chi2 > 0.01
    assert beta_binomial.pi_incremental + beta_binomial.pi_extreme < binomial.pi_incremental + binomial.pi_extreme
    est = beta_binomial.to_frame().set_index("parameter")
    assert list(est.index[-2:]) == ["phi_a", "phi_w"]
    with pytest.raises(ValueError, match="model must be"):
        mebane_fraud(N, a, w, model="qbl")


def test_beta_binomial_model_still_finds_fraud_from_its_own_model():
    rng = np.random.default_rng(8)
    N, a, w = _simulate_bl(rng, 600, [0.75, 0.18, 0.07])
    fit = mebane_fraud(N, a, w, seed=1, starts=4, model="bbl")
    assert fit.pi_incremental == pytest.approx(0.18, abs=0.06)
    assert fit.pi_extreme == pytest.approx(0.07, abs=0.03)
    assert fit.pvalue_chi2 < 1e-6


def test_mebane_table_refuses_an_unknown_model_instead_of_a_note_per_region():
    from analysis.synth import make_election
    from analysis.turnout.mebane import mebane_table

    election = make_election(plan={}, ocr_rate=0, scale=0.02, seed=5, provinces_only=["11", "73"]).election
    with pytest.raises(ValueError, match="model must be"):
        mebane_table(election, model="qbl")


def test_parametric_bootstrap_pvalue_rejects_planted_fraud_and_not_its_own_null():
    # The LR's null distribution is not chi-square(6) (boundary, unidentified magnitudes): the
    # p-value is a parametric bootstrap from the fitted no-fraud model (McLachlan 1987).
    rng = np.random.default_rng(8)
    N, a, w = _simulate_bl(rng, 300, [0.75, 0.18, 0.07])
    fraud = mebane_fraud(N, a, w, seed=1, starts=3, n_null=9, null_starts=2)
    assert fraud.min_pvalue == pytest.approx(0.1) and fraud.n_null == 9 and len(fraud.null_lr) == 9
    assert fraud.pvalue == pytest.approx(fraud.min_pvalue)  # every null LR below the observed one
    assert fraud.lr > fraud.null_lr.max()
    clean = mebane_fraud(*_simulate_bl(np.random.default_rng(21), 300, [1.0, 0.0, 0.0]), seed=1, starts=3, n_null=9,
                         null_starts=2)
    assert clean.pvalue > 0.1  # data from the null model: the observed LR is not beyond every draw
    assert "parametric bootstrap" in clean.null and "smallest attainable" in clean._repr_html_()
    again = mebane_fraud(*_simulate_bl(np.random.default_rng(21), 300, [1.0, 0.0, 0.0]), seed=1, starts=3, n_null=9,
                         null_starts=2)
    assert np.array_equal(again.null_lr, clean.null_lr)  # seeded


def test_a_fit_that_did_not_converge_says_so():
    rng = np.random.default_rng(8)
    N, a, w = _simulate_bl(rng, 200, [0.75, 0.18, 0.07])
    fit = mebane_fraud(N, a, w, seed=1, starts=2, maxiter=1)
    assert not fit.converged
    assert "ITERATIONS" in fit.message.upper() and "did not converge" in fit.note
    assert "did not converge" in fit._repr_html_()
    assert mebane_fraud(N, a, w, seed=1, starts=2).converged


def test_mebane_table_notes_unconverged_and_too_small_regions():
    from analysis.synth import make_election
    from analysis.turnout.mebane import mebane_table

    election = make_election(plan={}, ocr_rate=0, scale=0.02, seed=5, provinces_only=["11", "73"]).election
    table = mebane_table(election, starts=2, maxiter=1)
    assert len(table) == 2 and (table["converged"] == False).all()  # noqa: E712
    assert table["note"].str.contains("did not converge").all()
    assert table["qvalue"].isna().all()  # an unconverged fit does not enter the q-values
    assert table["pvalue"].isna().all() and table["pvalue_chi2"].notna().all()


def test_too_few_units_is_insufficient_data_and_still_a_value_error():
    from analysis.errors import InsufficientData

    rng = np.random.default_rng(3)
    N, a, w = _simulate_bl(rng, 8, [1.0, 0.0, 0.0])
    with pytest.raises(InsufficientData, match="too few usable units"):
        mebane_fraud(N, a, w)
    assert issubclass(InsufficientData, ValueError)

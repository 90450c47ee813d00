"""Tests of the calibration study: invented digits look invented, and on clean synthetic elections the
calibrated digit nulls reject at their nominal rate while the textbook 2BL null does not."""

from __future__ import annotations

import numpy as np
import pytest

from analysis.calibration import INVENTED_LAST_DIGIT, digit_calibration, invent_last_digits


def test_invented_last_digits_favour_0_and_5_and_avoid_repeats():
    rng = np.random.default_rng(3)
    totals = rng.integers(150, 300, 50_000).astype(float)
    counts = rng.binomial(totals.astype(int), 0.4).astype(float)
    counts[:10] = np.nan
    invented, rows = invent_last_digits(counts, totals, 0.2, rng)
    assert abs(len(rows) - 10_000) < 50                      # only counts above their total are kept as they were
    changed = invented[rows].astype(int)
    last = np.bincount(changed % 10, minlength=10) / len(changed)
    assert last[[0, 5]].min() > 0.15 and np.delete(last, [0, 5]).max() < 0.12
    assert not np.any((changed // 10) % 10 == changed % 10)  # no repeated final pair
    assert np.all(invented[rows] <= totals[rows]) and np.isnan(invented[:10]).all()
    untouched = np.setdiff1d(np.arange(10, len(counts)), rows)
    np.testing.assert_array_equal(invented[untouched], counts[untouched])
    assert INVENTED_LAST_DIGIT.sum() == pytest.approx(1)
    with pytest.raises(ValueError):
        invent_last_digits(counts, totals, 1.5, rng)


@pytest.fixture(scope="module")
def calibration():
    # Four clean elections at the demo's scale: 38 provinces x 3 candidates = 456 trials per test.
    return digit_calibration(n_elections=4, seed=500, fractions=(0.2,), nulls=("textbook", "exact"))


def test_calibrated_nulls_keep_their_level_on_clean_elections(calibration):
    clean = calibration.false_positive_rates().set_index(["test", "null"])
    trials = clean["trials"]
    assert (trials >= 400).all(), trials
    se = np.sqrt(0.05 * 0.95 / trials)
    for test in ("second digit", "last digit", "repeated final pair", "adjacent final pair"):
        rate = clean.loc[(test, "exact"), "rate"]
        assert abs(rate - 0.05) <= 3 * se[(test, "exact")], (test, rate)
    # bounded TPS counts are not Benford: the textbook 2BL null flags a large share of clean provinces
    assert clean.loc[("second digit", "textbook"), "rate"] > 0.25


def test_invented_digits_on_a_fifth_of_tps_are_detected(calibration):
    table = calibration.to_frame().set_index(["condition", "test", "null"])
    invented = "invented last digits on 20 % of TPS"
    assert table.loc[(invented, "last digit", "exact"), "rate"] > 0.3
    assert table.loc[(invented, "repeated final pair", "exact"), "rate"] > 0.2

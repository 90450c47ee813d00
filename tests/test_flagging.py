"""analysis/flagging.py: one meaning for "flagged" across every test of a page."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from analysis.flagging import MIN_REGIONS_EMPIRICAL, empirical_pvalues, page_flags, simes


def _page(rng, regions=40, tests=12, planted=(), strength=1e-8, spread=1.0):
    """p-values of a page: one-sided z ~ N(0, spread) per test and region; planted regions get one tiny p."""
    rows = []
    for r in range(regions):
        z = rng.normal(0, spread, tests)
        p = 1 - pd.Series(z).map(lambda v: __import__("scipy").stats.norm.cdf(v)).to_numpy()
        if r in planted:
            p[0] = strength
        rows += [{"test": f"t{t}", "region": f"{r:02d}", "statistic": 0.0, "pvalue": p[t], "qvalue": np.nan}
                 for t in range(tests)]
    return pd.DataFrame(rows)


def test_simes_is_the_smallest_scaled_order_statistic():
    assert simes([0.01, 0.04, 0.5]) == pytest.approx(min(3 * 0.01, 3 * 0.04 / 2, 0.5))
    assert simes([np.nan, 0.2]) == pytest.approx(0.2)
    assert np.isnan(simes([]))


def test_clean_pages_flag_few_regions_however_many_families():
    """Under the null the share of pages with any flagged region stays near alpha (BH over Simes p-values).

    Per-family BH merged without control would flag about 1 - 0.95**12 = 46 % of regions' pages."""
    rng = np.random.default_rng(1)
    pages = [page_flags(_page(rng), 0.05) for _ in range(60)]
    any_flag = np.mean([len(p.flagged_regions) > 0 for p in pages])
    assert any_flag <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 60)


def test_an_overdispersed_null_is_widened_by_the_other_regions():
    """A theoretical null twice too narrow (real demography) flags many clean regions; the empirical one does not."""
    rng = np.random.default_rng(2)
    rows = _page(rng, spread=2.0)
    from statsmodels.stats.multitest import multipletests

    naive = multipletests(rows["pvalue"], method="fdr_bh")[0].sum()
    decided = page_flags(rows, 0.05)
    assert naive > 20
    assert len(decided.flagged_regions) <= 1
    assert all(v["scale"] > 1.5 for v in decided.nulls.values())


def test_planted_regions_are_flagged_and_named_by_their_test():
    rng = np.random.default_rng(3)
    decided = page_flags(_page(rng, planted=(3, 17)), 0.05)
    assert set(decided.flagged_regions) == {"03", "17"}
    carried = decided.tests[decided.tests["flagged"]]
    assert set(zip(carried["region"], carried["test"])) == {("03", "t0"), ("17", "t0")}


def test_too_few_regions_use_the_theoretical_null():
    p = np.linspace(0.01, 0.9, MIN_REGIONS_EMPIRICAL - 1)
    out, centre, scale = empirical_pvalues(p)
    assert np.allclose(out, p) and (centre, scale) == (0.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("nan"))), min_size=0, max_size=40))
def test_empirical_pvalues_are_never_smaller_than_the_theoretical(p):
    out, centre, scale = empirical_pvalues(p)
    p = np.asarray(p, dtype=float)
    finite = np.isfinite(p)
    assert np.all(np.isnan(out[~finite]))
    assert np.all(out[finite] >= p[finite] - 1e-12) and np.all(out[finite] <= 1)
    assert centre >= 0 and scale >= 1


def test_rows_without_pvalues_take_no_part_and_alpha_is_checked():
    rows = [{"test": "a", "region": "x", "pvalue": np.nan}, {"test": "a", "region": "y", "pvalue": 0.5}]
    decided = page_flags(rows, 0.05)
    assert decided.flagged_regions == []
    with pytest.raises(ValueError, match="alpha"):
        page_flags(rows, 0)

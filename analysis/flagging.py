"""One meaning for "flagged" on a page: every test of every region under one error control.

A page runs a battery of region-level tests (forms, digits, turnout, spikes, TSM ...). Each test's
p-value is first judged against the other regions of the same election (an empirical null in the
spirit of Efron 2004, JASA 99:96), then the p-values of each region are combined by Simes (1986,
Biometrika 73:751), the regions are selected by Benjamini & Hochberg (1995) across the page, and
inside each selected region the tests that carry the selection are named by BH at the level
alpha x R / m (Benjamini & Bogomolov 2014, JRSS B 76:297: selective inference on families). The
result: the expected share of falsely flagged regions among the flagged ones is at most alpha
(under the positive dependence Simes and BH assume), whatever the number of test families.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import stats

from .display import frame_html

#: Fewer regions than this: no empirical null can be estimated; the theoretical p-values are used.
MIN_REGIONS_EMPIRICAL = 8
#: z-scores are clipped to this range (p-values of 0 or 1 would give infinities).
Z_RANGE = (-8.0, 37.0)

PROCEDURE = (
    "Each test's p-value is judged against the other regions of the page (empirical null: the "
    "test's z-scores across regions are centred on their median and scaled by their median "
    "absolute deviation widened by its standard error, never narrower or lower than the theoretical null; Efron 2004; "
    "a test whose statistic grows with a region's size, the turnout-share association, is compared by its effect "
    "and standard error instead, the regions' spread of effects fitted robustly as in a random-effects model), with at least "
    f"{MIN_REGIONS_EMPIRICAL} regions, else against its theoretical null alone. A region's tests are "
    "combined by Simes' test; regions are flagged by Benjamini-Hochberg across the page at the false "
    "discovery rate alpha; inside a flagged region, the tests that carry the flag are those BH selects at "
    "alpha x R / m (R flagged of m regions; Benjamini & Bogomolov 2014)."
)


#: Tests that stay described on the page but take no part in its flags, and why.
OUTSIDE_FLAGS = {
    "Klimek model": "its parametric bootstrap runs 49 draws, so its p-value cannot go below 0.02, and on "
                    "clean synthetic provinces its power at f_i = 20 % equals its false-positive rate",
}


def outside_flags(test: str) -> bool:
    """Whether a test (by its table name) is described on the page but takes no part in its flags."""
    return any(test == name or test.startswith(name + " ") for name in OUTSIDE_FLAGS)


#: Relative standard error of the MAD scale estimate times sqrt(n) for normal data (asymptotic 1.166; 1.10-1.17
#: simulated for n = 16-500): the empirical null's scale is widened by one such error, so that a scale
#: estimated from a few dozen regions errs towards fewer flags.
MAD_RELATIVE_SE = 1.17


def empirical_pvalues(pvalues: Iterable[float], *, min_regions: int = MIN_REGIONS_EMPIRICAL) -> tuple[np.ndarray, float, float]:
    """One-sided p-values of one test across regions against an empirical null (Efron 2004, central matching).

    z = Phi^-1(1 - p); the null is N(mu0, sigma0) with mu0 = max(0, median z) and sigma0 = max(1,
    MAD(z) x 1.4826 x (1 + 1.17 / sqrt(n))), the MAD widened by one standard error of its own. A
    theoretical null that is too narrow for real data (overdispersion between regions, real
    demography) is widened; one that is right is kept. p-values of exactly 1 (a statistic at its
    floor, e.g. no extreme unit at all) say nothing about the scale and are left out of it.
    Returns (p, mu0, sigma0); with fewer than ``min_regions`` usable p-values the theoretical
    p-values are returned with mu0 = 0, sigma0 = 1.
    """
    p = np.asarray(list(pvalues), dtype=float)
    finite = np.isfinite(p)
    z = np.clip(stats.norm.isf(np.clip(p, 0.0, 1.0)), *Z_RANGE)
    informative = finite & (p < 1.0 - 1e-9)
    n = int(informative.sum())
    if n < min_regions:
        return p.copy(), 0.0, 1.0
    centre = float(np.median(z[informative]))
    mad = float(np.median(np.abs(z[informative] - centre))) * 1.4826
    mu0 = max(0.0, centre)
    sigma0 = max(1.0, mad * (1 + MAD_RELATIVE_SE / np.sqrt(n)))
    out = np.full_like(p, np.nan)
    out[finite] = stats.norm.sf((z[finite] - mu0) / sigma0)
    # Never call a region more extreme than its own theoretical null does.
    out[finite] = np.maximum(out[finite], p[finite])
    return out, mu0, sigma0


def random_effects_pvalues(effects: Iterable[float], ses: Iterable[float], pvalues: Iterable[float], *,
                           min_regions: int = MIN_REGIONS_EMPIRICAL) -> tuple[np.ndarray, float, float] | None:
    """One-sided p-values of an effect per region against the other regions' effects (random-effects null).

    For a statistic whose theoretical z grows with a region's size while the real effect it measures
    does not (a demographic association of turnout and share is there in every region; a big region
    only measures it more precisely), regions are compared by effect: theta_r ~ N(mu0, tau^2 + se_r^2),
    mu0 = max(0, median theta), tau^2 = max(0, (1.4826 MAD theta)^2 - median se^2): the regions'
    robust spread of effects less what their own standard errors explain (DerSimonian & Laird
    1986's random-effects model, fitted by medians; Efron 2004's empirical null, for effects).
    A moment estimator weighted by 1 / se^2 would let the largest region set the centre, and a
    median-residual one finds no spread among a few noisy small regions. None when fewer than
    ``min_regions`` regions have an effect and an SE.
    """
    effect = np.asarray(list(effects), dtype=float)
    se = np.asarray(list(ses), dtype=float)
    p = np.asarray(list(pvalues), dtype=float)
    usable = np.isfinite(effect) & np.isfinite(se) & (se > 0) & np.isfinite(p)
    n = int(usable.sum())
    if n < min_regions:
        return None
    centre = float(np.median(effect[usable]))
    # The regions' spread of effects (robust), less the part their own standard errors explain.
    spread = 1.4826 * float(np.median(np.abs(effect[usable] - centre)))
    tau2 = max(0.0, spread ** 2 - float(np.median(se[usable] ** 2)))
    mu0 = max(0.0, centre)
    out = np.full_like(p, np.nan)
    out[usable] = stats.norm.sf((effect[usable] - mu0) / np.sqrt(tau2 + se[usable] ** 2))
    out[usable] = np.maximum(out[usable], p[usable])
    # Rows without an effect keep their theoretical p-value.
    rest = ~usable & np.isfinite(p)
    out[rest] = p[rest]
    return out, mu0, float(np.sqrt(tau2))


def simes(pvalues: Iterable[float]) -> float:
    """Simes' combined p-value of one region's tests: min over i of k p_(i) / i (Simes 1986)."""
    p = np.sort(np.asarray([v for v in pvalues if np.isfinite(v)], dtype=float))
    if not len(p):
        return np.nan
    return float(min(1.0, np.min(len(p) * p / np.arange(1, len(p) + 1))))


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg q-values (NaN kept)."""
    from statsmodels.stats.multitest import multipletests

    q = np.full(len(p), np.nan)
    where = np.isfinite(p)
    if where.any():
        q[where] = multipletests(p[where], method="fdr_bh")[1]
    return q


@dataclass(frozen=True, eq=False)
class PageFlags:
    """The page's decisions: per test and region, and per region (Simes + BH + Benjamini-Bogomolov)."""

    tests: pd.DataFrame    # test, region, statistic, pvalue, qvalue, pvalue_empirical, null_centre, null_scale, flagged
    regions: pd.DataFrame  # region, tests, pvalue (Simes), qvalue (BH across regions), flagged, flagged_tests
    alpha: float
    procedure: str = PROCEDURE
    nulls: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def flagged_regions(self) -> list[str]:
        return self.regions.loc[self.regions["flagged"], "region"].astype(str).tolist()

    def to_frame(self) -> pd.DataFrame:
        return self.tests.copy()

    def _repr_html_(self) -> str:
        head = (f"<p>{html.escape(str(len(self.flagged_regions)))} of {len(self.regions)} regions flagged at a false "
                f"discovery rate of {self.alpha:g} across every test of the page.</p>")
        return head + frame_html(self.regions)


def page_flags(rows: pd.DataFrame | Iterable[Mapping[str, Any]], alpha: float = 0.05, *,
               min_regions: int = MIN_REGIONS_EMPIRICAL) -> PageFlags:
    """Flag regions with the error rate controlled across every test of a page (see the module docstring).

    ``rows``: one row per test and region with ``test``, ``region``, ``pvalue`` (``statistic`` and
    the test's own ``qvalue`` are kept for the tables). Rows without a p-value take no part. A test
    whose rows also carry ``effect`` and ``se`` (its estimate above the null and its standard error)
    is judged by effect against the other regions (``random_effects_pvalues``), else by z-score
    (``empirical_pvalues``).
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    tests = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows).copy()
    for column in ("test", "region", "statistic", "pvalue", "qvalue"):
        if column not in tests:
            tests[column] = np.nan if column not in ("test", "region") else ""
    tests["region"] = tests["region"].astype(str)
    tests["test"] = tests["test"].astype(str)
    tests["pvalue"] = pd.to_numeric(tests["pvalue"], errors="coerce").astype(float)
    tests["pvalue_empirical"] = np.nan
    tests["null_centre"] = np.nan
    tests["null_scale"] = np.nan
    nulls: dict[str, dict[str, Any]] = {}
    for column in ("effect", "se"):
        tests[column] = pd.to_numeric(tests[column], errors="coerce").astype(float) if column in tests else np.nan
    for test, where in tests.groupby("test", sort=False).groups.items():
        by_effect = random_effects_pvalues(tests.loc[where, "effect"], tests.loc[where, "se"], tests.loc[where, "pvalue"],
                                           min_regions=min_regions)
        if by_effect is not None:
            p_emp, mu0, sigma0 = by_effect
            kind = "empirical, by effect (random effects across regions)"
        else:
            p_emp, mu0, sigma0 = empirical_pvalues(tests.loc[where, "pvalue"], min_regions=min_regions)
            enough = int(np.isfinite(tests.loc[where, "pvalue"]).sum()) >= min_regions
            kind = "empirical, by z-score" if enough else "theoretical (too few regions)"
        tests.loc[where, "pvalue_empirical"] = p_emp
        tests.loc[where, "null_centre"], tests.loc[where, "null_scale"] = mu0, sigma0
        nulls[str(test)] = {"null": kind, "centre": mu0, "scale": sigma0}
    regions = []
    for region, group in tests.groupby("region", sort=True):
        regions.append({"region": str(region), "tests": int(group["pvalue_empirical"].notna().sum()),
                        "pvalue": simes(group["pvalue_empirical"])})
    regions = pd.DataFrame(regions, columns=["region", "tests", "pvalue"])
    regions["qvalue"] = _bh(regions["pvalue"].to_numpy(dtype=float))
    regions["flagged"] = (regions["qvalue"] <= alpha).fillna(False).astype(bool)
    m = int(regions["pvalue"].notna().sum())
    selected = set(regions.loc[regions["flagged"], "region"])
    level = alpha * len(selected) / m if m else 0.0
    tests["flagged"] = False
    for region in selected:
        where = (tests["region"] == region) & tests["pvalue_empirical"].notna()
        q = _bh(tests.loc[where, "pvalue_empirical"].to_numpy(dtype=float))
        tests.loc[where, "flagged"] = q <= level
    regions["flagged_tests"] = [
        ", ".join(tests.loc[(tests["region"] == r) & tests["flagged"], "test"]) for r in regions["region"]]
    return PageFlags(tests=tests.reset_index(drop=True), regions=regions, alpha=alpha, nulls=nulls)

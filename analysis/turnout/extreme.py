"""The extreme cluster test: more units at >= 95 % turnout and winner share than a logit-normal null predicts.

Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469 (extreme fraud): the expected count comes
from a robust logit-normal fit of each unit's turnout and share (with group centres), integrated by
Gauss-Hermite quadrature; the p-value is Poisson.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ._units import _GH_NODES, _GH_WEIGHTS, _MAD, _MIN_GROUP, _excluded_frame, _html, _prepare, _threshold_count


@dataclass(frozen=True)
class _LatentFit:
    centre: np.ndarray  # per unit, logit scale
    sd: np.ndarray  # per unit, logit scale (small groups also carry the between-group spread)
    within_sd: float
    between_sd: float


def _latent_fit(count: np.ndarray, size: np.ndarray, group_index: np.ndarray | None, clip_sd: float) -> tuple[_LatentFit, np.ndarray]:
    """Robust logit-normal fit of the unit proportions, with group centres when groups are given.

    Group centres are group medians of the empirical logits, clipped to the median of centres
    +- ``clip_sd`` robust SDs: a whole district stuffed to 100 % cannot make itself the norm.
    The within-group (latent) spread is the one that gives the residuals, each standardised by
    its latent-plus-binomial SD, a unit MAD; so it describes places, not sampling noise. Each
    unit's SD adds the error of its group centre; units of small groups get the region-wide
    centre and the between-group spread.
    """
    count = np.clip(count, 0, size)
    z = np.log((count + 0.5) / (size - count + 0.5))
    overall = float(np.median(z))
    centre = np.full(len(z), overall)
    between = 0.0
    big = np.zeros(len(z), dtype=bool)
    shrink = np.ones(len(z))
    if group_index is not None and len(z):
        n_group = np.bincount(group_index)
        medians = pd.Series(z).groupby(group_index).median().reindex(range(len(n_group))).to_numpy()
        usable = n_group >= _MIN_GROUP
        if usable.sum() >= 3:
            m = medians[usable]
            overall = float(np.median(m))
            between = _MAD * float(np.median(np.abs(m - overall)))
            clipped = np.clip(medians, overall - clip_sd * between, overall + clip_sd * between)
            big = usable[group_index]
            centre = np.where(big, clipped[group_index], overall)
            # A unit's residual from its own group's median is shorter than from the true centre.
            shrink = np.where(big, np.sqrt(1 - 1 / n_group[group_index]), 1.0)
    residual = (z - centre) / shrink
    fit_units = big if big.any() else np.ones(len(z), dtype=bool)
    r = residual[fit_units]
    # Each residual is latent spread plus its own binomial noise, so residuals are a scale
    # mixture; the latent variance is the one that makes the noise-standardised residuals have a
    # unit MAD (a plain MAD minus the median noise under-states the tails).
    p = special.expit(centre[fit_units])
    noise = 1.0 / (size[fit_units] * p * (1 - p) + 1e-12)
    deviation = np.abs(r - np.median(r)) if len(r) else r
    floor = 0.05**2

    def excess_mad(latent_var):
        return _MAD * float(np.median(deviation / np.sqrt(latent_var + noise))) - 1.0

    if len(r) == 0 or excess_mad(floor) <= 0:
        within = float(np.sqrt(floor))
    else:
        upper = floor + 4 * float(np.max(deviation)) ** 2 + 1.0
        within = float(np.sqrt(optimize.brentq(excess_mad, floor, upper, xtol=1e-8)))
    # Plug-in predictive spread: a unit's tail is judged from an estimated group centre, whose
    # own error (a median: variance ~ pi/2 x unit variance / n) widens the tail (it is convex).
    sd = np.sqrt(within**2 + between**2) * np.ones(len(z))
    if big.any():
        unit_noise = 1.0 / (size * special.expit(centre) * (1 - special.expit(centre)) + 1e-12)
        centre_var = np.pi / 2 * (within**2 + unit_noise) / np.maximum(n_group[group_index], 1)
        sd = np.where(big, np.sqrt(within**2 + centre_var), sd)
    return _LatentFit(centre=centre, sd=sd, within_sd=within, between_sd=between), residual


class _TailTable:
    """log P(Binomial(size, expit(z)) >= k(size)) on a fine grid of z, one row per distinct size.

    The corner count k depends only on the size, so a few hundred distinct sizes cover a whole
    province; quadrature then interpolates instead of calling the incomplete beta n x nodes^2 times.
    """

    def __init__(self, size: np.ndarray, k: np.ndarray, low: float, high: float, step: float = 0.025):
        # The grid spans only the latent values the quadrature will ask for; the log tail is
        # smooth in z, so linear interpolation on a 0.025 step is accurate to well under 1 %.
        low, high = max(low, -40.0), min(high, 40.0)
        self.grid = np.linspace(low, high, max(2, int(np.ceil((high - low) / step)) + 1))
        self.sizes, self.index, inverse = np.unique(size, return_index=True, return_inverse=True)
        self.row = inverse.reshape(-1)
        k_rows = k[self.index].astype(np.int64)
        sizes = self.sizes.astype(np.int64)  # a float n is deprecated in scipy's bdtrc (warns per element)
        with np.errstate(divide="ignore"):
            log_tail = np.log(special.bdtrc(k_rows[:, None] - 1, sizes[:, None], special.expit(self.grid)[None, :]))
        self.log_tail = np.maximum(log_tail, -745.0)  # exp underflows to 0 below this anyway

    def __call__(self, units: np.ndarray, z: np.ndarray) -> np.ndarray:
        """The tail for ``units`` (indices, broadcast against z) at latent logits ``z``."""
        step = self.grid[1] - self.grid[0]
        position = np.clip((z - self.grid[0]) / step, 0, len(self.grid) - 1 - 1e-9)
        left = position.astype(np.int64)
        frac = position - left
        rows = self.row[units]
        value = (1 - frac) * self.log_tail[rows, left] + frac * self.log_tail[rows, left + 1]
        return np.exp(value)


@dataclass(frozen=True, eq=False)
class ExtremeClusterTest:
    """Units in the top-right corner of the fingerprint, observed against a fitted null."""

    statistic: int  # observed corner units
    expected: float
    pvalue: float
    n: int
    threshold: float
    null: str
    excluded: Mapping[str, int]
    turnout_above_1: int
    latent: Mapping[str, float]
    unit_probability: np.ndarray = field(repr=False)  # aligned with the input, NaN if excluded
    in_corner: np.ndarray = field(repr=False)  # aligned with the input, False if excluded

    @property
    def observed(self) -> int:
        return self.statistic

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "test": "extreme cluster", "threshold": self.threshold, "observed": self.statistic,
            "expected": self.expected, "pvalue": self.pvalue, "n": self.n,
            "excluded": sum(self.excluded.values()), "null": self.null,
        }])

    def _repr_html_(self) -> str:
        return _html("Extreme cluster test", self.to_frame(), _excluded_frame(self.excluded))


def extreme_cluster_test(
    registered, voters, winner_votes, valid, *, threshold: float = 0.95, groups=None,
    min_registered: int = 100, clip_sd: float = 3.0,
) -> ExtremeClusterTest:
    """Count units with turnout >= threshold AND winner share >= threshold, against a fitted null.

    Klimek et al. (2012, PNAS 109:16469) read extreme fraud off the fingerprint as a cluster at
    100 % turnout and 100 % for the winner. Null (stated in ``.null``): each unit's turnout and
    winner share are binomial draws (voters ~ Bin(registered, t), winner ~ Bin(valid, v)) around
    latent proportions that are logit-normal around the unit's group centre (``groups``, e.g.
    district codes; region-wide when None), with a latent turnout-share correlation; centres,
    spreads and the correlation are fitted robustly (medians, MADs, clipped group centres,
    Spearman, floored at 0 so noise cannot shrink the corner; each unit's latent SD includes the
    error of its group centre), so a planted cluster does not fit itself into the null. The
    expectation is
    the sum of per-unit corner probabilities (Gauss-Hermite quadrature over the latent normal,
    conditioning the share on the observed valid count). The p-value is P(Poisson(expected) >=
    observed): by Hoeffding (1956) the Poisson tail bounds the Poisson-binomial tail from above
    at and beyond expected + 1, so it is conservative.

    The logit-normal mixture replaces a beta-binomial because a beta's tails near 0 and 1 are
    thinner than those of a sum of regional logit-normal effects, which under-states the corner.
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold!r}")
    group_array = None if groups is None else np.asarray(pd.Series(groups, dtype="object").astype(str))
    units = _prepare(registered, voters, winner_votes, valid, min_registered=min_registered, extra=group_array)
    n = units.n
    prob_full = np.full(len(units.used), np.nan)
    corner_full = np.zeros(len(units.used), dtype=bool)
    null = (
        f"binomial counts around logit-normal latent turnout and share ({'group centres' if groups is not None else 'one region-wide centre'}, "
        "robust fit, latent correlation), Poisson bound on the Poisson-binomial tail"
    )
    if n == 0:
        return ExtremeClusterTest(0, 0.0, float("nan"), 0, threshold, null, units.excluded, 0, {}, prob_full, corner_full)
    group_index = None
    if group_array is not None:
        _, group_index = np.unique(group_array[units.used], return_inverse=True)
    reg, vot, win, val = units.registered, units.voters, units.winner, units.valid
    k_turnout = _threshold_count(reg, threshold)
    k_share = _threshold_count(val, threshold)
    in_corner = (vot >= k_turnout) & (win >= k_share)

    fit_t, resid_t = _latent_fit(vot, reg, group_index, clip_sd)
    fit_s, resid_s = _latent_fit(win, val, group_index, clip_sd)
    # Latent correlation from ranks (robust to the corner units), corrected for the binomial
    # noise in the empirical logits, which attenuates it.
    rho = 0.0
    if n >= 10 and np.std(resid_t) > 0 and np.std(resid_s) > 0:
        spearman = stats.spearmanr(resid_t, resid_s).statistic
        observed_sd_t = _MAD * np.median(np.abs(resid_t - np.median(resid_t)))
        observed_sd_s = _MAD * np.median(np.abs(resid_s - np.median(resid_s)))
        rho = 2 * np.sin(np.pi * spearman / 6) * observed_sd_t * observed_sd_s / (fit_t.within_sd * fit_s.within_sd)
        # A negative estimate is not allowed to shrink the corner (it is noise in clean data
        # and would make the test anticonservative).
        rho = float(np.clip(np.nan_to_num(rho), 0.0, 0.9))

    # P(turnout corner | latent node a) for every unit and node, then the share given the same
    # node (the share's latent normal conditioned on the turnout's), in chunks to bound memory.
    u, w = _GH_NODES, _GH_WEIGHTS
    reach = 1.5 * np.abs(u).max()  # |rho u_a + sqrt(1 - rho^2) u_b| <= sqrt(2) max |u|
    table_t = _TailTable(reg, k_turnout, np.min(fit_t.centre - reach * fit_t.sd), np.max(fit_t.centre + reach * fit_t.sd))
    table_s = _TailTable(val, k_share, np.min(fit_s.centre - reach * fit_s.sd), np.max(fit_s.centre + reach * fit_s.sd))
    prob = np.empty(n)
    shift = rho * u[:, None] + np.sqrt(1 - rho**2) * u[None, :]  # nodes_t x nodes_s
    for start in range(0, n, 20_000):
        idx = np.arange(start, min(n, start + 20_000))
        tail_t = table_t(idx[:, None], fit_t.centre[idx, None] + fit_t.sd[idx, None] * u[None, :])
        z_s = fit_s.centre[idx, None, None] + fit_s.sd[idx, None, None] * shift[None]
        inner = (table_s(idx[:, None, None], z_s) * w[None, None, :]).sum(axis=2)
        prob[idx] = (tail_t * inner * w[None, :]).sum(axis=1)
    expected = float(prob.sum())
    observed = int(in_corner.sum())
    pvalue = 1.0 if observed == 0 else float(stats.poisson.sf(observed - 1, expected))
    prob_full[units.used] = prob
    corner_full[units.used] = in_corner
    latent = {
        "turnout_within_sd": fit_t.within_sd, "turnout_between_sd": fit_t.between_sd,
        "share_within_sd": fit_s.within_sd, "share_between_sd": fit_s.between_sd, "rho": rho,
    }
    return ExtremeClusterTest(
        statistic=observed, expected=expected, pvalue=pvalue, n=n, threshold=threshold, null=null,
        excluded=units.excluded, turnout_above_1=units.turnout_above_1, latent=latent,
        unit_probability=prob_full, in_corner=corner_full,
    )

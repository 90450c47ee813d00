"""Turnout and vote-share tests: election fingerprints, extreme clusters, turnout-share association,
integer percentages; numeric kernels over arrays and a per-region wrapper with BH q-values.

References: Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469 (fingerprints, incremental and
extreme fraud); Kobak, Shpilkin & Pshenichnikov (2016), Ann. Appl. Stat. 10:54 (integer
percentages); Benjamini & Hochberg (1995), JRSS B 57:289 (false discovery rate).

A flag from any of these is a statistical irregularity, not evidence of fraud: real local
homogeneity (a village voting as a bloc), re-votes, OCR misreadings and data entry also move a
polling station into the corners these tests look at.

Kernels take array-likes (int or float, NaN or pandas <NA> for missing). Units with a missing count,
a negative or fractional count, zero (or too few) registered voters, zero valid votes, or more
winner votes than valid votes are excluded from every kernel and counted, per reason, in the
result's ``excluded`` mapping; nothing is dropped silently. Turnout above 100 % (Indonesian TPS
admit DPK voters who are not on the roll) is kept and counted in ``turnout_above_1``.
"""

from __future__ import annotations

import html
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..cache import cached
from ..errors import InsufficientData

__all__ = [
    "Fingerprint",
    "ExtremeClusterTest",
    "AssociationTest",
    "IntegerPercentTest",
    "KobakIntegerTest",
    "TurnoutTable",
    "fingerprint",
    "extreme_cluster_test",
    "turnout_share_association",
    "integer_percent_test",
    "kobak_integer_test",
    "poisson_binomial_sf",
    "turnout_tests",
]

# Latent-scale quadrature: probabilists' Gauss-Hermite nodes, weights normalised to a N(0, 1)
# expectation. 20 nodes integrate the smooth binomial tail curves to well below the Monte Carlo
# error of any check we run (see tests).
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(20)
_GH_WEIGHTS = _GH_WEIGHTS / np.sqrt(2 * np.pi)
#: A normal-consistent MAD.
_MAD = 1.4826
#: Groups smaller than this get the region-wide centre (their own median is too noisy).
_MIN_GROUP = 5


# ------------------------------------------------------------------------------------ input
def _as_float(values: Any, name: str) -> np.ndarray:
    """An array-like of counts as float64 with NaN for missing; a clear error if it is not one."""
    try:
        if hasattr(values, "to_numpy"):
            try:
                out = values.to_numpy(dtype=float, na_value=np.nan)
            except TypeError:  # numpy arrays and some extension arrays take no na_value
                out = np.asarray(values.to_numpy(), dtype=float)
        else:
            out = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name}: expected numeric counts ({err})") from None
    if out.ndim != 1:
        raise ValueError(f"{name}: expected a one-dimensional array, got shape {out.shape}")
    return out


@dataclass(frozen=True, eq=False)
class _Units:
    """The usable units of a kernel's input, and why the others were left out."""

    registered: np.ndarray
    voters: np.ndarray
    winner: np.ndarray
    valid: np.ndarray
    used: np.ndarray  # boolean mask over the input
    excluded: dict[str, int]
    turnout_above_1: int

    @property
    def n(self) -> int:
        return int(self.used.sum())


def _prepare(registered, voters, winner_votes, valid, *, min_registered: int, extra=None) -> _Units:
    arrays = {
        "registered": _as_float(registered, "registered"),
        "voters": _as_float(voters, "voters"),
        "winner_votes": _as_float(winner_votes, "winner_votes"),
        "valid": _as_float(valid, "valid"),
    }
    lengths = {k: len(v) for k, v in arrays.items()}
    if extra is not None:
        lengths["groups"] = len(extra)
    if len(set(lengths.values())) > 1:
        raise ValueError("arrays differ in length: " + ", ".join(f"{k}={v}" for k, v in lengths.items()))
    reg, vot, win, val = arrays.values()
    stacked = np.vstack([reg, vot, win, val])
    # Each unit is excluded for the first reason that applies, so the counts add up to the total.
    reasons = [
        ("missing count", np.isnan(stacked).any(axis=0)),
        ("negative or fractional count", ((stacked < 0) | (stacked != np.round(stacked))).any(axis=0)),
        ("no registered voters", reg == 0),
        (f"registered < {min_registered}", reg < min_registered),
        ("no valid votes", val == 0),
        ("winner votes > valid", win > val),
    ]
    used = np.ones(len(reg), dtype=bool)
    excluded: dict[str, int] = {}
    for reason, mask in reasons:
        hit = used & mask
        excluded[reason] = int(hit.sum())
        used &= ~hit
    return _Units(
        registered=reg[used], voters=vot[used], winner=win[used], valid=val[used], used=used,
        excluded=excluded, turnout_above_1=int((vot[used] > reg[used]).sum()),
    )


def _excluded_frame(excluded: Mapping[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"reason": list(excluded), "units": list(excluded.values())})


def _html(title: str, *tables: pd.DataFrame) -> str:
    parts = [f"<p><b>{html.escape(title)}</b></p>"]
    parts += [t.to_html(escape=True, index=False) for t in tables]
    return "\n".join(parts)


def _threshold_count(size: np.ndarray, threshold: float) -> np.ndarray:
    """The smallest count k with k / size >= threshold (exact, not fooled by 0.95 * 100 = 95.0000001)."""
    return np.ceil(np.round(threshold * size, 9)).astype(np.int64)


# ------------------------------------------------------------------------------------ fingerprint
@dataclass(frozen=True, eq=False)
class Fingerprint:
    """Klimek's election fingerprint: a 2-D histogram of turnout against the winner's share.

    ``counts[i, j]`` is the number of units with turnout in ``turnout_edges[i:i+2]`` and winner
    share in ``share_edges[j:j+2]``; the last bin of each axis is closed. Units with turnout above
    100 % are kept in the last turnout bin and counted in ``turnout_above_1``.
    """

    counts: np.ndarray
    turnout_edges: np.ndarray
    share_edges: np.ndarray
    n: int
    excluded: Mapping[str, int]
    turnout_above_1: int
    min_registered: int
    null: str = "none (descriptive); a fair election gives one roughly Gaussian blob"

    def to_frame(self) -> pd.DataFrame:
        """The non-empty cells, one row each."""
        i, j = np.nonzero(self.counts)
        return pd.DataFrame({
            "turnout_low": self.turnout_edges[i], "turnout_high": self.turnout_edges[i + 1],
            "share_low": self.share_edges[j], "share_high": self.share_edges[j + 1],
            "units": self.counts[i, j].astype(np.int64),
        })

    def summary(self) -> pd.DataFrame:
        rows = {"units in histogram": self.n, "turnout > 100 % (in last bin)": self.turnout_above_1}
        rows.update({f"excluded: {k}": v for k, v in self.excluded.items()})
        return pd.DataFrame({"item": list(rows), "value": list(rows.values())})

    def _repr_html_(self) -> str:
        bins = f"{len(self.turnout_edges) - 1} x {len(self.share_edges) - 1} bins"
        return _html(f"Election fingerprint ({bins}, registered >= {self.min_registered})", self.summary())


def fingerprint(registered, voters, winner_votes, valid, *, min_registered: int = 100, bins: int = 100) -> Fingerprint:
    """Turnout (voters / registered) against winner share (winner / valid) as a 2-D histogram.

    Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469, Fig. 1: units with fewer than
    ``min_registered`` registered voters are left out (the paper cuts on voters; we cut on the
    roll so the cut does not depend on turnout). Turnout above 1 is put in the last bin, counted.
    """
    if int(bins) < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    units = _prepare(registered, voters, winner_votes, valid, min_registered=min_registered)
    turnout = np.minimum(units.voters / units.registered, 1.0)
    share = units.winner / units.valid
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    counts, _, _ = np.histogram2d(turnout, share, bins=[edges, edges])
    return Fingerprint(
        counts=counts.astype(np.int64), turnout_edges=edges, share_edges=edges.copy(), n=units.n,
        excluded=units.excluded, turnout_above_1=units.turnout_above_1, min_registered=min_registered,
    )


# ------------------------------------------------------------------------------------ extreme cluster
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


# ------------------------------------------------------------------------------------ association
@dataclass(frozen=True)
class AssociationTest:
    """Within-group association of turnout and winner share, against within-group permutations."""

    statistic: float  # upper-tail co-movement: mean of (z_turnout - hinge)+ * z_share
    pvalue: float  # of ``statistic``, one-sided, normal approximation to the permutation null
    pvalue_perm: float  # of ``statistic``, one-sided, permutation count (floor 1 / (n_perm + 1))
    z: float  # (statistic - null_mean) / permutation sd
    null_mean: float  # mean of the statistic over the permutations
    correlation: float  # weighted within-group Pearson correlation (descriptive)
    slope: float  # weighted within-group slope of share on turnout (descriptive)
    pvalue_correlation: float  # of ``correlation``, one-sided, same permutations
    n: int
    n_groups: int
    hinge: float
    n_perm: int
    seed: int
    null: str
    excluded: Mapping[str, int]
    turnout_above_1: int

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "test": "turnout-share association", "statistic": self.statistic, "null_mean": self.null_mean, "z": self.z,
            "pvalue": self.pvalue, "pvalue_perm": self.pvalue_perm,
            "correlation": self.correlation, "slope": self.slope, "pvalue_correlation": self.pvalue_correlation,
            "n": self.n, "groups": self.n_groups, "hinge": self.hinge, "permutations": self.n_perm,
            "seed": self.seed, "excluded": sum(self.excluded.values()), "null": self.null,
        }])

    def _repr_html_(self) -> str:
        return _html("Turnout-share association", self.to_frame(), _excluded_frame(self.excluded))


def _group_centred(values, group_index, n_groups, weights=None):
    weights = np.ones(len(values)) if weights is None else weights
    w_sum = np.bincount(group_index, weights=weights, minlength=n_groups)
    means = np.bincount(group_index, weights=weights * values, minlength=n_groups) / np.where(w_sum > 0, w_sum, 1)
    return values - means[group_index]


def _robust_z(values):
    scale = _MAD * float(np.median(np.abs(values - np.median(values))))
    if not scale > 0:
        scale = float(np.std(values))
    return values / scale if scale > 0 else np.zeros_like(values)


def _correlation(turnout, share_c, weights, group_index, n_groups, share_ss):
    turnout_c = _group_centred(turnout, group_index, n_groups, weights)
    cross = float(np.sum(weights * turnout_c * share_c))
    turnout_ss = float(np.sum(weights * turnout_c**2))
    if turnout_ss <= 0 or share_ss <= 0:
        return float("nan"), float("nan")
    return cross / np.sqrt(turnout_ss * share_ss), cross / turnout_ss


def turnout_share_association(
    registered, voters, winner_votes, valid, *, groups, n_perm: int = 999, seed: int = 0,
    hinge: float = 1.5, min_registered: int = 100,
) -> AssociationTest:
    """Do turnout and winner share rise together within groups? One-sided permutation test.

    Klimek et al. (2012, PNAS 109:16469): incremental ballot stuffing adds the winner's votes and
    turnout at once, so within a homogeneous area (``groups``, e.g. district codes) the units
    with unusually high turnout also have an unusually high winner share. Turnout and share are
    centred on their group means and scaled by their MAD (z); the statistic is the mean of
    (z_turnout - ``hinge``)+ x z_share, which looks where stuffing puts its units (the upper
    turnout tail) and, on synthetic provinces with stuffing in 5 % of units, has about twice the
    z-score of the plain correlation (tests/test_turnout.py). The weighted (by registered)
    within-group correlation and slope are reported too, with their own permutation p-value.
    Null: turnout is exchangeable within groups (permuted ``n_perm`` times, seeded).
    ``pvalue_perm`` = (1 + #{null >= observed}) / (n_perm + 1) cannot go below 1 / (n_perm + 1),
    too coarse for BH across hundreds of regions, so ``pvalue`` is the normal tail of the
    statistic standardised by the permutation mean and sd (its permutation distribution is a
    mean over thousands of units, close to normal; the false-positive rate of both is measured
    in the tests).
    This is a screening statistic: real electorates can show a positive within-area association
    for demographic reasons (a candidate's base turning out more), so a flag asks for a look.
    """
    if groups is None:
        raise ValueError("groups is required (e.g. district codes): the association is within groups")
    if int(n_perm) < 1:
        raise ValueError(f"n_perm must be a positive integer, got {n_perm!r}")
    group_array = np.asarray(pd.Series(groups, dtype="object").astype(str))
    units = _prepare(registered, voters, winner_votes, valid, min_registered=min_registered, extra=group_array)
    null = f"turnout permuted within groups, {n_perm} permutations, seed {seed}"
    _, group_index = np.unique(group_array[units.used], return_inverse=True)
    n_group = np.bincount(group_index) if units.n else np.zeros(0, dtype=int)
    n_groups = int((n_group >= 2).sum())
    nan = float("nan")
    empty = AssociationTest(nan, nan, nan, nan, nan, nan, nan, nan, units.n, n_groups, hinge, int(n_perm), seed, null,
                            units.excluded, units.turnout_above_1)
    if n_groups == 0:
        return empty
    k = len(n_group)
    turnout = units.voters / units.registered
    share = units.winner / units.valid
    weights = units.registered
    share_c = _group_centred(share, group_index, k, weights)
    share_ss = float(np.sum(weights * share_c**2))
    correlation, slope = _correlation(turnout, share_c, weights, group_index, k, share_ss)
    # The tail statistic centres on unweighted group means, so permuting turnout within groups
    # permutes its z-scores: they are computed once.
    z_turnout = _robust_z(_group_centred(turnout, group_index, k))
    z_share = _robust_z(_group_centred(share, group_index, k))
    if not (np.isfinite(correlation) and z_turnout.any() and z_share.any()):
        return empty
    statistic = float(np.mean(np.maximum(z_turnout - hinge, 0) * z_share))
    rng = np.random.default_rng(seed)
    # Sorting by group code plus a uniform key shuffles within groups in one argsort.
    base = np.argsort(group_index, kind="stable")
    exceed = exceed_corr = 0
    null_values = np.empty(int(n_perm))
    for r in range(int(n_perm)):
        # The keys are distinct, so any sort gives the same order; introsort is 2.7x faster than stable.
        order = np.argsort(group_index + rng.random(len(group_index)))
        perm = np.empty(len(order), dtype=np.int64)
        perm[base] = order
        value = float(np.mean(np.maximum(z_turnout[perm] - hinge, 0) * z_share))
        null_values[r] = value
        value_corr, _ = _correlation(turnout[perm], share_c, weights, group_index, k, share_ss)
        exceed += value >= statistic - 1e-12
        exceed_corr += value_corr >= correlation - 1e-12
    spread = float(np.std(null_values, ddof=1)) if n_perm > 1 else 0.0
    z = (statistic - float(null_values.mean())) / spread if spread > 0 else nan
    pvalue = float(stats.norm.sf(z)) if np.isfinite(z) else (1 + exceed) / (int(n_perm) + 1)
    return AssociationTest(
        statistic=statistic, pvalue=pvalue, pvalue_perm=(1 + exceed) / (int(n_perm) + 1), z=float(z),
        null_mean=float(null_values.mean()),
        correlation=float(correlation),
        slope=float(slope), pvalue_correlation=(1 + exceed_corr) / (int(n_perm) + 1), n=units.n,
        n_groups=n_groups, hinge=hinge, n_perm=int(n_perm), seed=seed, null=null, excluded=units.excluded,
        turnout_above_1=units.turnout_above_1,
    )


def poisson_binomial_sf(k: int, p: np.ndarray) -> float:
    """P(K >= k) for K a sum of independent Bernoulli(p_i), by the saddlepoint approximation.

    Lugannani & Rice (1980) with Daniels' (1987, Int. Stat. Rev. 55:37) correction for lattice
    variables; accurate far into the tail, where Monte Carlo p-values cannot reach (they stop at
    1 / (draws + 1), too coarse for BH across hundreds of regions). Near the mean (k < mean + 1)
    it falls back to the normal approximation with continuity correction.
    """
    p = np.asarray(p, dtype=float)
    p = p[p > 0]
    certain = int(np.sum(p >= 1))
    p = p[p < 1]
    k = int(k) - certain  # units that always count shift the threshold
    mean, var = float(p.sum()), float(np.sum(p * (1 - p)))
    if k <= 0:
        return 1.0
    if k > len(p):
        return 0.0
    if k == len(p):
        return float(np.exp(np.sum(np.log(p))))
    if k < mean + 1 or var <= 0:
        return float(stats.norm.sf((k - 0.5 - mean) / np.sqrt(var))) if var > 0 else float(k <= mean)
    logit_p = np.log(p) - np.log1p(-p)

    def slope(t):  # K'(t) - k
        return float(np.sum(special.expit(logit_p + t))) - k

    hi = 1.0
    while slope(hi) < 0:
        hi *= 2
    t = optimize.brentq(slope, 0.0, hi, xtol=1e-12)
    q = special.expit(logit_p + t)
    cumulant = float(np.sum(np.log1p(p * np.expm1(t))))
    w = np.sqrt(max(2 * (t * k - cumulant), 0.0))
    u = (1 - np.exp(-t)) * np.sqrt(float(np.sum(q * (1 - q))))
    if w < 1e-8 or u < 1e-12:
        return float(stats.norm.sf((k - 0.5 - mean) / np.sqrt(var)))
    return float(np.clip(stats.norm.sf(w) + stats.norm.pdf(w) * (1 / u - 1 / w), 0.0, 1.0))


# ------------------------------------------------------------------------------------ integer percentages
#: Binomial mass outside the window each exact sum looks at is below exp(-_TAIL_LOG) (Bernstein).
_TAIL_LOG = np.log(1e13)


def _is_integer_percent(count: np.ndarray, size: np.ndarray) -> np.ndarray:
    """100 count / size lies strictly within 0.05 pp of a whole number, in exact integer arithmetic."""
    count = np.asarray(count).astype(np.int64, copy=False)
    size = np.asarray(size).astype(np.int64, copy=False)
    rest = (100 * count) % size
    return 20 * np.minimum(rest, size - rest) < size


def _integer_probability(size: np.ndarray, count: np.ndarray) -> np.ndarray:
    """P(100 X / size is a whole percent, +-0.05 pp) for X ~ Bin(size, count / size), exactly, per unit.

    A sum of binomial probabilities over the counts that land on a whole percent. Units sharing
    (size, count) share the answer (at TPS scale a few ten thousand pairs cover a country), and
    each sum runs over the counts within a Bernstein window of the mean outside which the
    binomial mass is below 1e-13.
    """
    size = np.asarray(size).astype(np.int64)
    count = np.asarray(count).astype(np.int64)
    out = np.zeros(len(size))
    if len(size) == 0:
        return out
    pairs, inverse = np.unique(np.column_stack([size, count]), axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    pair_prob = np.zeros(len(pairs))
    order = np.argsort(pairs[:, 0], kind="stable")
    sizes, starts = np.unique(pairs[order, 0], return_index=True)
    bounds = np.r_[starts, len(order)]
    for value, lo_i, hi_i in zip(sizes, bounds[:-1], bounds[1:]):
        rows = order[lo_i:hi_i]
        whole = np.flatnonzero(_is_integer_percent(np.arange(value + 1), np.full(value + 1, value)))
        p = pairs[rows, 1] / value
        var = value * p * (1 - p)
        reach = _TAIL_LOG / 3 + np.sqrt((_TAIL_LOG / 3) ** 2 + 2 * _TAIL_LOG * var) + 1
        first = np.searchsorted(whole, value * p - reach, side="left")
        last = np.searchsorted(whole, value * p + reach, side="right")
        width = int((last - first).max(initial=0))
        if width == 0:
            continue
        index = first[:, None] + np.arange(width)[None, :]
        inside = index < last[:, None]
        k = whole[np.minimum(index, len(whole) - 1)].astype(float)
        log_pmf = (special.gammaln(value + 1.0) - special.gammaln(k + 1) - special.gammaln(value - k + 1)
                   + special.xlogy(k, p[:, None]) + special.xlog1py(value - k, -p[:, None]))
        pair_prob[rows] = np.where(inside, np.exp(log_pmf), 0.0).sum(axis=1)
    out[:] = np.minimum(pair_prob[inverse], 1.0)
    return out


#: The three counts of Kobak's test: a unit is integer by turnout, by the leader's share, or either.
_KINDS = ("either", "turnout", "share")


@dataclass(frozen=True, eq=False)
class _IntegerNull:
    """Observed integer units and their null, for each kind, over already-selected units."""

    observed: dict[str, int]
    probability: dict[str, np.ndarray]  # exact per-unit probability of being integer
    draws: dict[str, np.ndarray]  # Monte Carlo null counts, one per draw


def _integer_null(reg, vot, win, val, *, n_rep: int, seed: int, kinds=_KINDS, resample: str = "binomial") -> _IntegerNull:
    """The kernel behind both integer tests: exact per-unit probabilities and a seeded Monte Carlo.

    ``resample="binomial"`` is Kobak's procedure: every unit's voters and winner votes redrawn as
    Bin(registered, voters / registered) and Bin(valid, winner / valid), ``n_rep`` times; it checks
    the exact probabilities. ``"indicator"`` draws each unit's two integer indicators from those
    exact probabilities: the same null distribution (units and axes are independent under it) at a
    fraction of the cost, for national tables.
    """
    if resample not in ("binomial", "indicator"):
        raise ValueError(f"resample must be 'binomial' or 'indicator', got {resample!r}")
    need_t = any(k in ("either", "turnout") for k in kinds)
    need_s = any(k in ("either", "share") for k in kinds)
    n = len(reg)
    zeros = np.zeros(n)
    prob_t = _integer_probability(reg, vot) if need_t else zeros
    prob_s = _integer_probability(val, win) if need_s else zeros
    probability = {"turnout": prob_t, "share": prob_s, "either": 1 - (1 - prob_t) * (1 - prob_s)}
    hit_t = _is_integer_percent(vot, reg) if need_t else np.zeros(n, dtype=bool)
    hit_s = _is_integer_percent(win, val) if need_s else np.zeros(n, dtype=bool)
    observed = {"turnout": int(hit_t.sum()), "share": int(hit_s.sum()), "either": int((hit_t | hit_s).sum())}
    draws = {kind: np.empty(int(n_rep)) for kind in kinds}
    rng = np.random.default_rng(seed)
    reg_i, val_i = reg.astype(np.int64), val.astype(np.int64)
    p_turnout, p_share = vot / reg, win / val
    for r in range(int(n_rep)):
        # Both axes are always drawn so that one seed gives one stream whatever the kind.
        if resample == "binomial":
            vot_r, win_r = rng.binomial(reg_i, p_turnout), rng.binomial(val_i, p_share)
            t = _is_integer_percent(vot_r, reg_i) if need_t else np.zeros(n, dtype=bool)
            s = _is_integer_percent(win_r, val_i) if need_s else np.zeros(n, dtype=bool)
        else:
            # float32 uniforms: twice as fast, and 2^-24 is far below any probability that matters here
            t = rng.random(n, dtype=np.float32) < prob_t
            s = rng.random(n, dtype=np.float32) < prob_s
        for kind in kinds:
            draws[kind][r] = {"turnout": t, "share": s}[kind].sum() if kind != "either" else (t | s).sum()
    return _IntegerNull(observed={k: observed[k] for k in kinds}, probability={k: probability[k] for k in kinds},
                        draws=draws)


def _select_integer_units(registered, voters, winner_votes, valid, *, min_registered: int, max_percent: float):
    """Kobak's units: usable counts, registered >= min_registered, turnout and share <= max_percent."""
    units = _prepare(registered, voters, winner_votes, valid, min_registered=min_registered)
    excluded = dict(units.excluded)
    reg, vot, win, val = units.registered, units.voters, units.winner, units.valid
    # Kobak's cut: near-100 % units are left out (100 % is an integer by construction).
    over_t = 100 * vot > max_percent * reg
    over_s = ~over_t & (100 * win > max_percent * val)
    excluded[f"turnout > {max_percent:g} %"] = int(over_t.sum())
    excluded[f"share > {max_percent:g} %"] = int(over_s.sum())
    keep = ~(over_t | over_s)
    return (reg[keep], vot[keep], win[keep], val[keep]), excluded, units.turnout_above_1


@dataclass(frozen=True)
class IntegerPercentTest:
    """Kobak-Shpilkin-Pshenichnikov integer-percentage test: observed against a binomial null."""

    statistic: int  # observed integer units (same as ``observed``)
    null_mean: float  # exact, sum of per-unit probabilities
    null_sd: float  # Monte Carlo
    null_q999: float  # Monte Carlo 99.9th percentile
    mc_mean: float  # Monte Carlo mean, a check on null_mean
    exact_sd: float  # sqrt(sum p (1 - p)), a check on null_sd
    pvalue: float  # one-sided, saddlepoint tail of the exact Poisson-binomial null
    pvalue_mc: float  # one-sided, Monte Carlo (a check; floor 1 / (n_rep + 1))
    n: int
    kind: str
    n_rep: int
    seed: int
    null: str
    excluded: Mapping[str, int]
    turnout_above_1: int

    @property
    def observed(self) -> int:
        return self.statistic

    @property
    def excess(self) -> float:
        return self.statistic - self.null_mean

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "test": f"integer percentages ({self.kind})", "observed": self.statistic,
            "null_mean": self.null_mean, "null_sd": self.null_sd, "null_q999": self.null_q999,
            "excess": self.excess, "pvalue": self.pvalue, "pvalue_mc": self.pvalue_mc,
            "n": self.n, "excluded": sum(self.excluded.values()), "null": self.null,
        }])

    def _repr_html_(self) -> str:
        return _html("Integer-percentage test", self.to_frame(), _excluded_frame(self.excluded))


def integer_percent_test(
    registered, voters, winner_votes, valid, *, n_rep: int = 1000, seed: int = 42,
    min_registered: int = 100, max_percent: float = 99.0, kind: str = "either", resample: str = "binomial",
) -> IntegerPercentTest:
    """Excess of units whose turnout or winner share is a whole percent, against a binomial null.

    Kobak, Shpilkin & Pshenichnikov (2016), Ann. Appl. Stat. 10:54. Units: registered >=
    ``min_registered`` (TPS hold at most ~300, where integer percentages are common by
    construction: the null knows each unit's size), turnout and share <= ``max_percent``. A unit
    is integer when 100 voters / registered or 100 winner / valid lies strictly within 0.05 pp of
    a whole number (``kind``: "either", "turnout" or "share"). Kobak's share uses all received
    ballots as denominator: pass valid + invalid as ``valid`` to reproduce it (or use
    ``kobak_integer_test``, which reports all three kinds at once).
    Null: winner* ~ Bin(valid, winner / valid), voters* ~ Bin(registered, voters / registered),
    independently per unit. Its mean is exact (sum of binomial probabilities of landing on an
    integer percent), and so is its distribution: the count is Poisson-binomial in those
    probabilities, and ``pvalue`` is its upper tail at the observed count (saddlepoint, see
    ``poisson_binomial_sf``). The sd, the 99.9th percentile and ``pvalue_mc`` = (1 + #{draws >=
    observed}) / (n_rep + 1) come from ``n_rep`` binomial draws (seed), Kobak's procedure, kept
    as a check on the exact null. The 99 % cut selects units on their observed values only; a
    resampled 100 % still counts as integer (it is rare, and the same in the exact mean and MC).
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be 'either', 'turnout' or 'share', got {kind!r}")
    if int(n_rep) < 1:
        raise ValueError(f"n_rep must be a positive integer, got {n_rep!r}")
    (reg, vot, win, val), excluded, above = _select_integer_units(
        registered, voters, winner_votes, valid, min_registered=min_registered, max_percent=max_percent)
    null = (f"binomial null per unit (voters ~ Bin(registered, t), winner ~ Bin(valid, v)); exact mean and "
            f"Poisson-binomial tail; {n_rep} Monte Carlo draws ({resample}), seed {seed}, for the sd and the check")
    n = len(reg)
    if n == 0:
        return IntegerPercentTest(0, 0.0, 0.0, 0.0, 0.0, 0.0, float("nan"), float("nan"), 0, kind, n_rep, seed, null,
                                  excluded, above)
    result = _integer_null(reg, vot, win, val, n_rep=n_rep, seed=seed, kinds=(kind,), resample=resample)
    observed, prob, draws = result.observed[kind], result.probability[kind], result.draws[kind]
    return IntegerPercentTest(
        statistic=observed, null_mean=float(prob.sum()),
        null_sd=float(np.std(draws, ddof=1)) if n_rep > 1 else float("nan"),
        null_q999=float(np.quantile(draws, 0.999)), mc_mean=float(draws.mean()),
        exact_sd=float(np.sqrt(np.sum(prob * (1 - prob)))),
        pvalue=poisson_binomial_sf(observed, prob), pvalue_mc=float((1 + np.sum(draws >= observed)) / (int(n_rep) + 1)),
        n=n, kind=kind, n_rep=int(n_rep), seed=seed, null=null, excluded=excluded, turnout_above_1=above,
    )


@dataclass(frozen=True, eq=False)
class KobakIntegerTest:
    """Kobak et al.'s integer-percentage test, all three counts (turnout or leader, turnout, leader).

    Attributes follow the paper: ``excess`` = observed - null mean for turnout-or-leader,
    ``excess_turnout``, ``excess_leader``; ``null_sd`` and ``null_q999`` of the turnout-or-leader
    count; ``table`` has every kind with its exact and Monte Carlo null.
    """

    table: pd.DataFrame  # one row per kind: observed, null_mean, null_sd, mc_mean, mc_sd, null_q999, excess, pvalue, pvalue_mc
    n: int
    n_rep: int
    seed: int
    resample: str
    null: str
    excluded: Mapping[str, int]
    turnout_above_1: int
    draws: Mapping[str, np.ndarray] = field(repr=False)  # Monte Carlo null counts per kind
    probability: Mapping[str, np.ndarray] = field(repr=False)  # exact per-unit probabilities per kind

    def _get(self, kind: str, column: str) -> float:
        return float(self.table.loc[self.table["kind"] == kind, column].iloc[0])

    @property
    def observed(self) -> int:
        return int(self._get("either", "observed"))

    @property
    def excess(self) -> float:
        return self._get("either", "excess")

    @property
    def excess_turnout(self) -> float:
        return self._get("turnout", "excess")

    @property
    def excess_leader(self) -> float:
        return self._get("share", "excess")

    @property
    def null_mean(self) -> float:
        return self._get("either", "null_mean")

    @property
    def null_sd(self) -> float:
        return self._get("either", "null_sd")

    @property
    def null_q999(self) -> float:
        return self._get("either", "null_q999")

    @property
    def pvalue(self) -> float:
        return self._get("either", "pvalue")

    @property
    def statistic(self) -> int:
        return self.observed

    def to_frame(self) -> pd.DataFrame:
        return self.table.assign(kind=self.table["kind"].map({"either": "turnout or leader", "turnout": "turnout",
                                                              "share": "leader"}))

    def _repr_html_(self) -> str:
        return _html(f"Integer percentages (Kobak et al. 2016), {self.n:,} units", self.to_frame(),
                     _excluded_frame(self.excluded))


def kobak_integer_test(
    registered, issued, leader, received, *, n_rep: int = 1000, seed: int = 42, min_registered: int = 100,
    max_percent: float = 99.0, resample: str = "binomial",
) -> KobakIntegerTest:
    """Excess of polling stations with a whole-number turnout or leader's share (Kobak et al. 2016).

    Kobak, Shpilkin & Pshenichnikov (2016), Ann. Appl. Stat. 10:54, section 3: turnout = 100
    issued / registered (issued: every ballot handed out), leader's share = 100 leader / received
    (received = valid + invalid). Stations with received > 0, registered >= 100, turnout <= 99 %
    and share <= 99 % are kept (the others are counted in ``excluded``); a station is integer when
    a percentage lies within 0.05 pp of a whole number. Null: issued* ~ Bin(registered, issued /
    registered), leader* ~ Bin(received, leader / received), per station. Its mean and variance
    are sums of exact binomial probabilities (the count is Poisson-binomial); ``pvalue`` is the
    saddlepoint tail of that exact null. ``n_rep`` seeded Monte Carlo draws give the 99.9th
    percentile and check the exact mean and sd: ``resample="binomial"`` redraws every count
    (Kobak's procedure), ``"indicator"`` draws each station's indicators from their exact
    probabilities (same null, much faster for national tables).
    """
    if int(n_rep) < 2:
        raise ValueError(f"n_rep must be an integer >= 2, got {n_rep!r}")
    (reg, vot, win, val), excluded, above = _select_integer_units(
        registered, issued, leader, received, min_registered=min_registered, max_percent=max_percent)
    null = (f"binomial null per station (issued ~ Bin(registered, t), leader ~ Bin(received, v)); exact mean and "
            f"variance; {n_rep} Monte Carlo draws ({resample}), seed {seed}, for the 99.9th percentile and the check")
    result = _integer_null(reg, vot, win, val, n_rep=n_rep, seed=seed, resample=resample)
    rows = []
    for kind in _KINDS:
        prob, draws, observed = result.probability[kind], result.draws[kind], result.observed[kind]
        mean = float(prob.sum())
        rows.append({
            "kind": kind, "observed": observed, "null_mean": mean, "null_sd": float(np.sqrt(np.sum(prob * (1 - prob)))),
            "mc_mean": float(draws.mean()), "mc_sd": float(np.std(draws, ddof=1)),
            "null_q999": float(np.quantile(draws, 0.999)), "excess": observed - mean,
            "pvalue": poisson_binomial_sf(observed, prob) if len(prob) else float("nan"),
            "pvalue_mc": float((1 + np.sum(draws >= observed)) / (int(n_rep) + 1)),
        })
    return KobakIntegerTest(
        table=pd.DataFrame(rows), n=len(reg), n_rep=int(n_rep), seed=seed, resample=resample, null=null,
        excluded=excluded, turnout_above_1=above, draws=result.draws, probability=result.probability,
    )


# ------------------------------------------------------------------------------------ election wrapper
TESTS = ("extreme cluster", "turnout-share association", "integer percentages")


@dataclass(frozen=True, eq=False)
class TurnoutTable:
    """The three turnout tests per region, with BH q-values per test across regions."""

    results: pd.DataFrame  # region, region_name, test, statistic, null_expected, pvalue, qvalue, n, excluded, note
    level: str
    winner: str
    group_level: str
    seed: int
    details: Mapping[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def flags(self, alpha: float = 0.05) -> pd.DataFrame:
        """Rows whose q-value is at most ``alpha``: statistical irregularities, not findings of fraud."""
        return self.results[self.results["qvalue"] <= alpha].reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        return self.results.copy()

    def _repr_html_(self) -> str:
        title = (f"Turnout tests per {self.level} (winner {self.winner}, groups: {self.group_level}, seed {self.seed}); "
                 "q-values: Benjamini-Hochberg per test across regions")
        return _html(title, self.results)


def _region_seed(seed: int, region: str, test: str) -> int:
    """A seed per region and test that does not change when other regions are added or removed."""
    return int(np.random.SeedSequence([seed, zlib.crc32(region.encode()), zlib.crc32(test.encode())]).generate_state(1)[0])


def turnout_tests(
    election, *, level: str = "province", winner: str | None = None, group_level: str = "district",
    seed: int = 0, n_perm: int = 999, n_rep: int = 1000, threshold: float = 0.95, min_registered: int = 100,
    integer_resample: str = "indicator",
) -> TurnoutTable:
    """Per region at ``level``: extreme cluster, turnout-share association and integer-percentage tests.

    Kernels as in ``extreme_cluster_test`` (Klimek et al. 2012), ``turnout_share_association`` and
    ``integer_percent_test`` (Kobak et al. 2016), with groups from ``group_level``; q-values by
    Benjamini & Hochberg (1995) per test across regions (statsmodels ``multipletests``, fdr_bh).
    ``winner`` defaults to the candidate with the most votes in the whole election. A region
    whose test cannot run (no usable units) gets a NaN p-value and a note, not an exception.
    The integer test's null mean is exact and its p-value a saddlepoint approximation to the exact
    Poisson-binomial tail; its ``n_rep`` Monte Carlo draws (only a check
    here) are drawn as indicators from the exact probabilities (``integer_resample``; pass
    "binomial" for Kobak's redrawing of every count, the same null at ~20 times the cost).
    """
    from statsmodels.stats.multitest import multipletests

    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    if group_level not in election.levels:
        raise KeyError(f"{group_level!r} is not a level of this election ({', '.join(election.levels)})")
    if not election.candidates:
        raise ValueError("the election has no candidate columns")
    if winner is None:
        totals = {c: np.nansum(election.column(c)) for c in election.candidates}
        winner = max(totals, key=totals.get)
    elif winner not in election.candidates:
        raise KeyError(f"{winner!r} is not a candidate ({', '.join(election.candidates)})")

    table = election.table
    columns = {name: election.column(name) for name in ("registered", "voters", "valid", winner)}
    regions = table[level].astype(str).to_numpy()
    groups = table[group_level].astype(str).to_numpy()
    name_col = f"{level}_name"
    names = table[name_col].astype(str).to_numpy() if name_col in table.columns else None
    rows, details = [], {}
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        args = [columns[c][mask] for c in ("registered", "voters")] + [columns[winner][mask], columns["valid"][mask]]
        region_name = str(names[mask][0]) if names is not None else ""
        runs = {
            "extreme cluster": lambda: cached(extreme_cluster_test)(
                args[0], args[1], args[2], args[3], threshold=threshold, groups=groups[mask], min_registered=min_registered),
            "turnout-share association": lambda: cached(turnout_share_association)(
                *args, groups=groups[mask], n_perm=n_perm, seed=_region_seed(seed, region, "association"),
                min_registered=min_registered),
            "integer percentages": lambda: cached(integer_percent_test)(
                *args, n_rep=n_rep, seed=_region_seed(seed, region, "integer"), min_registered=min_registered,
                resample=integer_resample),
        }
        for test, run in runs.items():
            row = {"region": region, "region_name": region_name, "test": test}
            try:
                result = run()
            except InsufficientData as err:
                # Only the data errors the kernels raise on purpose: the region stays as a row with
                # the reason. A caller's error (a wrong column, a parameter, a bug) propagates.
                rows.append({**row, "statistic": np.nan, "null_expected": np.nan, "pvalue": np.nan, "n": 0,
                             "excluded": 0, "note": f"not tested: {err}"})
                continue
            details[(region, test)] = result
            expected = {"extreme cluster": getattr(result, "expected", np.nan),
                        "turnout-share association": getattr(result, "null_mean", np.nan),
                        "integer percentages": getattr(result, "null_mean", np.nan)}[test]
            note = "" if np.isfinite(result.pvalue) else "not enough usable units"
            rows.append({**row, "statistic": float(result.statistic), "null_expected": float(expected),
                         "pvalue": float(result.pvalue), "n": int(result.n),
                         "excluded": int(sum(result.excluded.values())), "note": note})
    results = pd.DataFrame(rows, columns=["region", "region_name", "test", "statistic", "null_expected",
                                          "pvalue", "n", "excluded", "note"])
    results["qvalue"] = np.nan
    for test in TESTS:
        where = (results["test"] == test) & results["pvalue"].notna()
        if where.any():
            results.loc[where, "qvalue"] = multipletests(results.loc[where, "pvalue"].to_numpy(), method="fdr_bh")[1]
    results = results[["region", "region_name", "test", "statistic", "null_expected", "pvalue", "qvalue", "n",
                       "excluded", "note"]]
    return TurnoutTable(results=results, level=level, winner=winner, group_level=group_level, seed=seed,
                        details=details)


# ------------------------------------------------------------------------------------ Sirekap adaptation
#: Turnout definitions for Sirekap: the API's (DPT + DPTb on the roll) and the DPT-only variant.
TURNOUT_DEFINITIONS = {"registered": "voters / (DPT + DPTb)", "dpt": "voters / DPT"}


def administration_missing(election) -> np.ndarray:
    """TPS whose administration page (the C.Hasil page with the roll and voter counts) is not published.

    Sirekap bodies parsed by ``analysis.sources.sirekap`` carry ``has_administrasi``; other tables
    (the synthetic election, a country's CSV) count a station as missing it when both its roll and
    its voters are missing.
    """
    table = election.table
    if "has_administrasi" in table.columns:
        return ~table["has_administrasi"].fillna(False).to_numpy(dtype=bool)
    return np.isnan(election.column("registered")) & np.isnan(election.column("voters"))


def region_winners(election, level: str) -> pd.Series:
    """The candidate with the most votes in each region at ``level`` (a Series: region code -> candidate).

    Regions can have different winners; reports that follow "the winner" of a region use this rather
    than the national winner. Ties go to the candidate listed first; a region without votes gets the
    first candidate (its totals are all missing). Computed from the data, never assumed.
    """
    if not election.candidates:
        raise ValueError("the election has no candidate columns")
    totals = election.table.groupby(election.table[level].astype(str))[list(election.candidates)].sum(min_count=1)
    return totals.astype(float).fillna(-1).idxmax(axis=1)


@dataclass(frozen=True, eq=False)
class TurnoutModels:
    """Klimek's model and Kobak's integer test per region, each region against its own winner."""

    results: pd.DataFrame
    level: str
    definition: str
    seed: int
    settings: Mapping[str, Any]
    details: Mapping[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def flags(self, alpha: float = 0.05) -> pd.DataFrame:
        """Regions with a q-value at most ``alpha`` in either test: statistical irregularities, not fraud findings."""
        hit = (self.results["klimek_qvalue"] <= alpha) | (self.results["integer_qvalue"] <= alpha)
        return self.results[hit].reset_index(drop=True)

    def flag_rows(self) -> pd.DataFrame:
        """Both tests per region in the report's flag shape (``test``, ``region``, ``statistic``, ``pvalue``, ``qvalue``)."""
        parts = []
        for test, prefix, statistic in (("Klimek model", "klimek", "f_i"), ("Kobak integer", "integer", "integer_excess")):
            parts.append(pd.DataFrame({
                "test": f"{test} ({self.definition})", "region": self.results["region"].astype(str),
                "statistic": self.results[statistic] if statistic in self.results else np.nan,
                "pvalue": self.results[f"{prefix}_pvalue"], "qvalue": self.results[f"{prefix}_qvalue"]}))
        return pd.concat(parts, ignore_index=True)

    def to_frame(self) -> pd.DataFrame:
        return self.results.copy()

    def _repr_html_(self) -> str:
        title = (f"Turnout models per {self.level} (turnout = {TURNOUT_DEFINITIONS.get(self.definition, self.definition)}, "
                 f"seed {self.seed}); q-values: Benjamini-Hochberg per test across regions")
        return _html(title, self.results)


def turnout_models(
    election, *, level: str = "province", definition: str = "registered", winner: str | None = None, seed: int = 0,
    n_boot: int = 49, n_repeats: int = 2, n_rep: int = 1000, min_registered: int = 100,
    regions: Sequence[str] | None = None,
) -> TurnoutModels:
    """Per region: Klimek's fraud-model fit and bootstrap test, Kobak's integer test; winner per region.

    Klimek et al. (2012), PNAS 109:16469 (``klimek.klimek_fit``, ``klimek.klimek_test``) and Kobak
    et al. (2016), Ann. Appl. Stat. 10:54 (``kobak_integer_test``), adapted to Sirekap: turnout is
    voters / registered, registered = DPT + DPTb as the API defines it (``definition="registered"``),
    or voters / DPT (``"dpt"``, where DPTb and DPK voters push turnout above 100 %, capped in the
    fingerprint and counted); each region is tested against the candidate that won it (or against
    ``winner`` everywhere, e.g. to follow one candidate's planted cluster where it lost); TPS
    without an administration page are left out of the models and counted in
    ``no_administration``; other exclusions (missing counts, registered < ``min_registered``, ...)
    are counted in ``excluded``. Kobak's leader share uses valid + invalid ballots. q-values:
    Benjamini-Hochberg per test across regions (statsmodels ``multipletests``).
    """
    from statsmodels.stats.multitest import multipletests

    from .klimek import klimek_fit, klimek_test

    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    if definition not in TURNOUT_DEFINITIONS:
        raise ValueError(f"definition must be one of {', '.join(TURNOUT_DEFINITIONS)}, got {definition!r}")
    if definition == "dpt" and "dpt" not in election.table.columns:
        raise KeyError("definition 'dpt' needs a 'dpt' column (Sirekap pemilih_dpt_j)")
    table = election.table
    no_adm = administration_missing(election)
    roll = election.column("registered" if definition == "registered" else "dpt")
    voters, valid = election.column("voters"), election.column("valid")
    received = valid + election.column("invalid")
    codes = table[level].astype(str).to_numpy()
    winners = region_winners(election, level)
    name_col = f"{level}_name"
    names = table[name_col].astype(str).to_numpy() if name_col in table.columns else None
    wanted = sorted(pd.unique(codes)) if regions is None else [str(r) for r in regions]
    rows, details = [], {}
    for region in wanted:
        mask = codes == region
        keep = mask & ~no_adm
        winner_here = str(winners.get(region, "")) if winner is None else str(winner)
        row = {"region": region, "region_name": str(names[mask][0]) if names is not None and mask.any() else "",
               "winner": winner_here, "tps": int(mask.sum()), "no_administration": int((mask & no_adm).sum())}
        if winner_here not in election.candidates:
            rows.append({**row, "note": "no votes" if winner is None else f"{winner!r} is not a candidate"})
            continue
        votes = election.column(winner_here)
        args = (roll[keep], voters[keep], votes[keep], valid[keep])
        turnout = args[1] / args[0]
        finite = np.isfinite(turnout)
        row.update({"turnout_median": float(np.median(turnout[finite])) if finite.any() else np.nan,
                    "turnout_above_100": int((turnout[finite] > 1).sum())})
        note = []
        try:
            fit = cached(klimek_fit)(*args, seed=_region_seed(seed, region, "klimek fit"), n_repeats=n_repeats,
                             min_registered=min_registered)
            test = cached(klimek_test)(*args, seed=_region_seed(seed, region, "klimek test"), n_boot=n_boot,
                               min_registered=min_registered)
            details[(region, "klimek fit")], details[(region, "klimek test")] = fit, test
            row.update({"n": fit.n, "excluded": int(sum(fit.excluded.values())), "f_i": fit.f_i, "f_i_sd": fit.f_i_sd,
                        "f_e": fit.f_e, "f_e_sd": fit.f_e_sd, "alpha": fit.alpha, "klimek_pvalue": test.pvalue})
            if not np.isfinite(test.pvalue):
                note.append(f"Klimek not tested: too few usable units ({test.n})")
            if getattr(fit, "note", ""):
                note.append(f"Klimek fit: {fit.note}")
        except InsufficientData as err:  # data errors raised on purpose only; a caller's error propagates
            note.append(f"Klimek not fitted: {err}")
        try:
            integer = cached(kobak_integer_test)(args[0], args[1], votes[keep], received[keep], n_rep=n_rep,
                                         seed=_region_seed(seed, region, "kobak"), min_registered=min_registered,
                                         resample="indicator")
            details[(region, "integer")] = integer
            row.update({"integer_excess": integer.excess, "integer_null_sd": integer.null_sd,
                        "integer_pvalue": integer.pvalue})
            if not np.isfinite(integer.pvalue):
                note.append(f"integer test: no usable units ({integer.n})")
        except InsufficientData as err:
            note.append(f"integer test not run: {err}")
        rows.append({**row, "note": "; ".join(note)})
    columns = ["region", "region_name", "winner", "tps", "no_administration", "n", "excluded", "turnout_median",
               "turnout_above_100", "f_i", "f_i_sd", "f_e", "f_e_sd", "alpha", "klimek_pvalue", "klimek_qvalue",
               "integer_excess", "integer_null_sd", "integer_pvalue", "integer_qvalue", "note"]
    results = pd.DataFrame(rows).reindex(columns=columns)
    for test in ("klimek", "integer"):
        p = results[f"{test}_pvalue"]
        where = p.notna()
        if where.any():
            results.loc[where, f"{test}_qvalue"] = multipletests(p[where].to_numpy(dtype=float), method="fdr_bh")[1]
    settings = {"n_boot": n_boot, "n_repeats": n_repeats, "n_rep": n_rep, "min_registered": min_registered,
                "winner": winner or "per region"}
    return TurnoutModels(results=results, level=level, definition=definition, seed=seed, settings=settings,
                         details=details)


# Klimek's model lives in its own module; it imports this package's input helpers, so it comes last.
from .klimek import KlimekFit, KlimekTest, klimek_fit, klimek_test  # noqa: E402

__all__ += ["TurnoutModels", "TURNOUT_DEFINITIONS", "administration_missing", "region_winners",
            "turnout_models", "KlimekFit", "KlimekTest", "klimek_fit", "klimek_test"]

# Rozenas' spikes, local outliers and Mebane's mixture live in their own modules.
from .mebane import MebaneFit, mebane_fraud, mebane_pvalues, mebane_table  # noqa: E402
from .outliers import LocalOutliers, local_outliers, outlier_pvalues, sirekap_url  # noqa: E402
from .spikes import SpikesResult, SpikesTable, rozenas_spikes, spikes_pvalues, spikes_table  # noqa: E402

__all__ += ["MebaneFit", "mebane_fraud", "mebane_pvalues", "mebane_table", "LocalOutliers", "local_outliers",
            "outlier_pvalues", "sirekap_url", "SpikesResult", "SpikesTable", "rozenas_spikes", "spikes_pvalues",
            "spikes_table"]

"""The turnout-share association: within groups, does the winner's share rise with turnout?

Klimek et al. (2012) read incremental fraud off a positive within-region association of turnout and
the winner's share; the null is within-group permutation of turnout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import stats

from ._units import _MAD, _excluded_frame, _html, _prepare


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

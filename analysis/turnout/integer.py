"""Integer percentages: more units at whole-number turnout or winner share than chance gives.

Kobak, Shpilkin & Pshenichnikov (2016), Ann. Appl. Stat. 10:54. The null mean is exact (each unit's
probability of an integer percentage under a binomial around its own rate) and the p-value a
saddlepoint approximation to the exact Poisson-binomial tail (``poisson_binomial_sf``); Monte Carlo
draws are a check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from .._common import in_threads, usable_threads
from ._units import _excluded_frame, _html, _prepare


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
#: Streams of the seed that ``resample="binomial"`` draws from (one per thread at most).
_BINOMIAL_STREAMS = 2


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


def _integer_null(reg, vot, win, val, *, n_rep: int, seed: int, kinds=_KINDS, resample: str = "binomial",
                  threads: int | None = None) -> _IntegerNull:
    """The kernel behind both integer tests: exact per-unit probabilities and a seeded Monte Carlo.

    ``resample="binomial"`` is Kobak's procedure: every unit's voters and winner votes redrawn as
    Bin(registered, voters / registered) and Bin(valid, winner / valid), ``n_rep`` times; it checks
    the exact probabilities; its draws come from two streams of the seed, on ``threads`` threads (default:
    the usable cores, at most two). ``"indicator"`` draws each unit's two integer indicators from those
    exact probabilities, from one stream of the seed: the same null distribution (units and axes are
    independent under it) at a fraction of the cost, for national tables.
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
    reg_i, val_i = reg.astype(np.int64), val.astype(np.int64)
    p_turnout, p_share = vot / reg, win / val

    def fill(rng, reps) -> None:
        for r in reps:
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

    if resample == "binomial":
        # Kobak's redraws cost two binomial draws per unit and draw (~14 s for Russia's 95,000 stations on one
        # core): two streams of the seed (Generator.spawn), the first half of the draws from one and the
        # rest from the other, on up to two threads (numpy's samplers release the GIL). The same draws on one
        # thread or two.
        middle = int(n_rep) // 2
        halves = list(zip(np.random.default_rng(seed).spawn(_BINOMIAL_STREAMS), (range(middle), range(middle, int(n_rep)))))
        in_threads(lambda half: fill(*half), halves,
                   usable_threads(_BINOMIAL_STREAMS) if threads is None else threads)
    else:
        fill(np.random.default_rng(seed), range(int(n_rep)))
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
    threads: int | None = None,
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
    observed}) / (n_rep + 1) come from ``n_rep`` binomial draws (seed; two streams, on ``threads``
    threads, with the same draws on any number), Kobak's procedure, kept as a check on the exact
    null. The 99 % cut selects units on their observed values only; a resampled 100 % still counts
    as integer (it is rare, and the same in the exact mean and MC).
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
    result = _integer_null(reg, vot, win, val, n_rep=n_rep, seed=seed, kinds=(kind,), resample=resample, threads=threads)
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
    max_percent: float = 99.0, resample: str = "binomial", threads: int | None = None,
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
    (Kobak's procedure; two streams of the seed, on ``threads`` threads, the same draws on any number),
    ``"indicator"`` draws each station's indicators from their exact probabilities (same null, much
    faster for national tables).
    """
    if int(n_rep) < 2:
        raise ValueError(f"n_rep must be an integer >= 2, got {n_rep!r}")
    (reg, vot, win, val), excluded, above = _select_integer_units(
        registered, issued, leader, received, min_registered=min_registered, max_percent=max_percent)
    null = (f"binomial null per station (issued ~ Bin(registered, t), leader ~ Bin(received, v)); exact mean and "
            f"variance; {n_rep} Monte Carlo draws ({resample}), seed {seed}, for the 99.9th percentile and the check")
    result = _integer_null(reg, vot, win, val, n_rep=n_rep, seed=seed, resample=resample, threads=threads)
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

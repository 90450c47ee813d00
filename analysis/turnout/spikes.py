"""Rozenas' resampled kernel density test for spikes in the distribution of vote shares.

Rozenas (2017), "Detecting Election Fraud from Irregularities in Vote-Share Distributions",
Political Analysis 25:41-56; R package ``spikes`` (``spikes()``, ``fraud()``, ``resample()``).

Fabricated results tend to be written as simple fractions (1/2, 2/3, 3/4, 70 %), so their vote
shares pile up on a few points. The test asks whether the observed density of shares has spikes
that a smooth model of turnout and support, resampled station by station, does not produce:

1. Beta-binomial mixtures are fitted by maximum likelihood to turnout (``t`` of ``N``) and to
   votes (``v`` of ``t``).
2. Each station is resampled from its posterior: a mixture component drawn from its posterior
   membership, ``p ~ Beta(count + a_k, size - count + b_k)``, then ``t* ~ Bin(N, p_t)`` and
   ``v* ~ Bin(t*, p_v)``.
3. The kernel density of ``v / t`` (Gaussian, bandwidth 1e-4, 1001 grid points on [0, 1]) is
   computed as R's ``density()`` computes it (linear binning on a 2^k grid, FFT convolution,
   linear interpolation), for the data and for each of ``resamples`` resampled elections.
4. ``fraud_percent`` = 100 x the sum, over grid points where the observed density lies above the
   maximum of the resampled densities, of the observed share of stations in that grid bin minus
   its mean share under resampling (positive parts only).

Differences from the R package, all deliberate:
- the number of mixture components is chosen by BIC (1 to ``max_components``), not by the
  package's rule (add components until successive fitted densities correlate above 0.99);
  a fixed mixture (e.g. the package's stored one) can be passed with ``mixtures=``;
- the mixtures are fitted by direct maximisation of the mixture likelihood (L-BFGS-B with the
  analytic gradient), not by EM started from a least-squares fit to a kernel density;
- the interval is the spread of the statistic under the fitted model (the leave-one-out draws
  below), shifted to the observed value and floored at 0: a basic interval that carries the
  sampling noise of spikes but not the mixture's parameter uncertainty, which the package's
  ``confInt`` redraws (at 100 x the cost). A station bootstrap was tried and rejected: resampling
  stations with replacement duplicates them, which itself makes spikes, so its intervals lay
  entirely above the estimate;
- a p-value is added: each resampled election, compared with the envelope of the others
  (leave one out), gives a draw of ``fraud_percent`` under the fitted smooth model; the p-value
  is the share of those at or above the observed value, (1 + #{null >= observed}) / (R + 1).

A large value is a statistical irregularity: besides fabricated results, shares pile up on
simple fractions in tiny stations (2 of 4 votes is 50 %), where a candidate is unopposed, or where
forms were filled from a template; read it together with the stations' sizes.
"""

from __future__ import annotations

import html
import zlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import optimize, special

from ..blas import one_blas_thread
from ..cache import cached
from . import _as_float  # the package's input check: counts as float, NaN for missing, a clear error otherwise

__all__ = ["BetaBinomialMixture", "SpikesResult", "SpikesTable", "fit_betabinomial_mixture", "rozenas_spikes",
           "spikes_table", "spikes_pvalues", "r_density"]

#: Bounds of log(a), log(b) of a mixture component: a, b in [e^-4, e^10]; the R package uses
#: [e^-3, e^6], too tight for the concentrated turnout of Indonesian TPS.
_LOG_BOUNDS = (-4.0, 10.0)


# ------------------------------------------------------------------------------------ mixture
@dataclass(frozen=True)
class BetaBinomialMixture:
    """A finite mixture of beta-binomials: component k has weight ``w[k]`` and Beta(a[k], b[k])."""

    a: np.ndarray
    b: np.ndarray
    w: np.ndarray
    loglik: float = float("nan")
    bic: float = float("nan")
    n: int = 0

    @property
    def components(self) -> int:
        return len(self.w)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({"component": np.arange(1, len(self.w) + 1), "weight": self.w, "alpha": self.a,
                             "beta": self.b, "mean": self.a / (self.a + self.b)})

    @classmethod
    def from_r(cls, spec: Mapping[str, Any]) -> "BetaBinomialMixture":
        """From the R package's ``out$t`` / ``out$v`` lists (keys alpha, beta, w)."""
        return cls(a=np.asarray(spec["alpha"], float), b=np.asarray(spec["beta"], float),
                   w=np.asarray(spec["w"], float) / np.sum(spec["w"]))


def _logsumexp_rows(x: np.ndarray) -> np.ndarray:
    """log(sum(exp(x), axis=1)) without scipy's per-call overhead (it dominates on small regions)."""
    top = x.max(axis=1)
    return top + np.log(np.exp(x - top[:, None]).sum(axis=1))


def _log_bb(y, n, log_comb, a, b):
    """log BetaBinomial(y; n, a, b) for units (rows) x components (columns)."""
    return log_comb[:, None] + special.betaln(y[:, None] + a, (n - y)[:, None] + b) - special.betaln(a, b)


def _unpack(theta, L):
    a, b = np.exp(theta[:L]), np.exp(theta[L:2 * L])
    eta = np.append(theta[2 * L:], 0.0)
    w = np.exp(eta - eta.max())
    w = w / w.sum()
    return a, b, w


def _start(y, n, L, rng):
    """Moment estimates of Beta(a, b) within L quantile groups of the observed proportions."""
    p = y / n
    order = np.argsort(p + 1e-9 * rng.random(len(p)))
    theta = []
    for part in np.array_split(order, L):
        m = np.clip(np.mean(p[part]), 0.01, 0.99)
        # Latent variance: observed minus the binomial part (floored so a + b stays finite).
        var = max(np.var(p[part]) - np.mean(m * (1 - m) / n[part]), 1e-4 * m * (1 - m))
        s = np.clip(m * (1 - m) / var - 1, 0.5, 5000)
        theta.append((np.log(m * s), np.log((1 - m) * s)))
    theta = np.array(theta)
    return np.concatenate([theta[:, 0], theta[:, 1], np.zeros(L - 1)])


def fit_betabinomial_mixture(count, size, *, components: int | None = None, max_components: int = 5,
                             seed: int = 0, select_units: int = 10000) -> BetaBinomialMixture:
    """Maximum-likelihood beta-binomial mixture of ``count`` out of ``size``; components by BIC.

    Rozenas (2017), section 3.1, and the R package ``spikes`` (``est.density``); here the mixture
    likelihood is maximised directly (L-BFGS-B, analytic gradient) over log a, log b and the
    softmax logits of the weights. Identical (count, size) pairs are pooled with a multiplicity,
    which makes TPS-sized data (size <= 300) cheap. With ``components`` given, that many are fitted;
    otherwise 1, 2, ... up to ``max_components`` are fitted and the first local minimum of BIC is
    kept. Fits use a random subsample of at most ``select_units`` units (seed): the mixture only
    describes the smooth part of the distribution, which 10,000 units pin down well, and a fit on
    95,000 units costs minutes; ``loglik`` and ``bic`` are those of all units.
    """
    y_all = np.asarray(count, dtype=float)
    n_all = np.asarray(size, dtype=float)
    if len(y_all) == 0:
        raise ValueError("no units to fit")
    rng = np.random.default_rng(seed)

    def pooled(y, n):
        key = y * (n_all.max() + 1) + n
        _, first, mult = np.unique(key, return_index=True, return_counts=True)
        y, n = y[first], n[first]
        return y, n, mult.astype(float), special.gammaln(n + 1) - special.gammaln(y + 1) - special.gammaln(n - y + 1)

    def negloglik(theta, L, y, n, mult, log_comb):
        a, b, w = _unpack(theta, L)
        comp = _log_bb(y, n, log_comb, a, b) + np.log(w)
        ll = _logsumexp_rows(comp)
        resp = np.exp(comp - ll[:, None]) * mult[:, None]
        # d log BB / d log a = a [psi(y + a) - psi(n + a + b) - psi(a) + psi(a + b)], same for b.
        common = -special.digamma(n[:, None] + a + b) + special.digamma(a + b)
        ga = a * np.sum(resp * (special.digamma(y[:, None] + a) - special.digamma(a) + common), axis=0)
        gb = b * np.sum(resp * (special.digamma((n - y)[:, None] + b) - special.digamma(b) + common), axis=0)
        gw = resp.sum(axis=0) - mult.sum() * w
        return -float(np.sum(mult * ll)), -np.concatenate([ga, gb, gw[:-1]])

    def fit(L, data, theta0=None):
        y, n, mult, log_comb = data
        if theta0 is None:
            theta0 = _start(np.repeat(y, mult.astype(int)), np.repeat(n, mult.astype(int)), L, rng)
        bounds = [_LOG_BOUNDS] * (2 * L) + [(-30, 30)] * (L - 1)
        with one_blas_thread():  # L-BFGS-B's BLAS calls on a few parameters: threads only cost hand-offs
            res = optimize.minimize(negloglik, theta0, args=(L, *data), jac=True, method="L-BFGS-B", bounds=bounds,
                                    options={"maxiter": 1000})
        total = float(mult.sum())
        ll = -float(res.fun)
        return res.x, ll, -2 * ll + (3 * L - 1) * np.log(total)

    full = pooled(y_all, n_all)
    if components is not None:
        L = int(components)
        theta, _, _ = fit(L, full) if len(y_all) <= select_units else fit(L, _subsample(y_all, n_all, select_units, rng, pooled))
    else:
        data = full if len(y_all) <= select_units else _subsample(y_all, n_all, select_units, rng, pooled)
        theta, _, bic = fit(1, data)
        L = 1
        for candidate in range(2, int(max_components) + 1):
            theta_c, _, bic_c = fit(candidate, data)
            if not bic_c < bic:
                break
            theta, bic, L = theta_c, bic_c, candidate
    ll = -negloglik(theta, L, *full)[0]
    bic = -2 * ll + (3 * L - 1) * np.log(len(y_all))
    a, b, w = _unpack(theta, L)
    order = np.argsort(-w)
    return BetaBinomialMixture(a=a[order], b=b[order], w=w[order], loglik=ll, bic=bic, n=len(y_all))


def _subsample(y, n, size, rng, pooled):
    pick = rng.choice(len(y), size=size, replace=False)
    return pooled(y[pick], n[pick])


def _membership(mixture: BetaBinomialMixture, count, size) -> np.ndarray:
    """Cumulative posterior membership probabilities of each unit (rows) over components."""
    log_comb = special.gammaln(size + 1) - special.gammaln(count + 1) - special.gammaln(size - count + 1)
    comp = _log_bb(count, size, log_comb, mixture.a, mixture.b) + np.log(mixture.w)
    post = np.exp(comp - _logsumexp_rows(comp)[:, None])
    cumulative = np.cumsum(post, axis=1)
    cumulative[:, -1] = 1.0
    return cumulative


def _posterior_p(rng, cumulative, mixture, count, size):
    k = (rng.random(len(count))[:, None] > cumulative).sum(axis=1)
    return rng.beta(count + mixture.a[k], size - count + mixture.b[k])


# ------------------------------------------------------------------------------------ density
class _RDensity:
    """R's ``density(x, bw, from, to, n = grid, kernel = "gaussian")`` for many x on one grid.

    R bins x linearly onto 2^ceiling(log2(max(grid, 512))) points spanning [from - 4 bw, to + 4 bw],
    convolves with the Gaussian kernel by FFT (its kernel ordinates are spaced 2 (up - lo) /
    (2 n - 1), a quirk kept here) and interpolates linearly onto the ``grid`` output points.
    With bw = 1e-4 the kernel is narrower than the binning step, so the estimate is a finely
    binned histogram: exactly what makes spikes at simple fractions visible.
    """

    def __init__(self, bw: float, grid: int, lo: float = 0.0, hi: float = 1.0):
        n = max(int(grid), 512)
        if n > 512:
            n = int(2 ** np.ceil(np.log2(n)))
        self.n, self.bw = n, float(bw)
        self.lo, self.up = lo - 4 * bw, hi + 4 * bw
        self.delta = (self.up - self.lo) / (n - 1)
        kords = np.linspace(0, 2 * (self.up - self.lo), 2 * n)
        kords[n + 1:] = -kords[n - 1:0:-1]
        kernel = np.exp(-0.5 * (kords / bw) ** 2) / (bw * np.sqrt(2 * np.pi))
        self.kernel_fft = np.conj(np.fft.rfft(kernel))
        self.xords = np.linspace(self.lo, self.up, n)
        self.x = np.linspace(lo, hi, int(grid))

    def __call__(self, values: np.ndarray) -> np.ndarray:
        weight = 1.0 / len(values)
        pos = (values - self.lo) / self.delta
        ix = np.floor(pos).astype(np.int64)
        fx = pos - ix
        inside = (ix >= 0) & (ix <= self.n - 2)
        y = np.bincount(ix[inside], weights=(1 - fx[inside]) * weight, minlength=2 * self.n)
        y += np.bincount(ix[inside] + 1, weights=fx[inside] * weight, minlength=2 * self.n)
        left, right = ix == -1, ix == self.n - 1
        y[0] += np.sum(fx[left]) * weight
        y[self.n - 1] += np.sum(1 - fx[right]) * weight
        conv = np.fft.irfft(np.fft.rfft(y) * self.kernel_fft, n=2 * self.n)[: self.n]
        return np.interp(self.x, self.xords, np.maximum(conv, 0.0))


def r_density(values, *, bw: float = 1e-4, grid: int = 1001) -> tuple[np.ndarray, np.ndarray]:
    """(x, density) of ``values`` on [0, 1] as R's ``density(..., from = 0, to = 1)`` gives them."""
    dens = _RDensity(bw, grid)
    return dens.x.copy(), dens(np.asarray(values, dtype=float))


def _bin_index(values: np.ndarray, step: float, bins: int) -> np.ndarray:
    """Bin of each value in right-closed bins ((k - 1/2) step, (k + 1/2) step], the first one closed
    (R's ``cut(..., include.lowest = TRUE)`` on the package's bins); arithmetic, not a search."""
    return np.clip(np.ceil(values / step - 0.5).astype(np.int64), 0, bins - 1)


# ------------------------------------------------------------------------------------ result
@dataclass(frozen=True, eq=False)
class SpikesResult:
    """Rozenas' resampled-density test: estimated share of stations in spikes, interval, p-value."""

    fraud_percent: float
    ci_low: float
    ci_high: float
    pvalue: float
    n: int
    resamples: int
    seed: int
    bw: float
    x: np.ndarray = field(repr=False)  # grid
    observed: np.ndarray = field(repr=False)  # observed density on the grid
    envelope: np.ndarray = field(repr=False)  # maximum of the resampled densities
    excess: np.ndarray = field(repr=False)  # observed minus mean resampled bin share, positive part
    flagged: np.ndarray = field(repr=False)  # grid points where observed > envelope
    null_fraud: np.ndarray = field(repr=False)  # leave-one-out fraud_percent of each resample
    turnout_mixture: BetaBinomialMixture = field(repr=False)
    vote_mixture: BetaBinomialMixture = field(repr=False)
    excluded: Mapping[str, int] = field(default_factory=dict)
    null: str = ""

    @property
    def statistic(self) -> float:
        return self.fraud_percent

    @property
    def excess_over_null(self) -> float:
        """``fraud_percent`` minus the median of its null draws."""
        return self.fraud_percent - float(np.median(self.null_fraud))

    def spikes(self, top: int = 10) -> pd.DataFrame:
        """The flagged grid points with the largest excess share of stations."""
        where = np.flatnonzero(self.flagged & (self.excess > 0))
        frame = pd.DataFrame({"share": self.x[where], "excess_percent": 100 * self.excess[where],
                              "observed_density": self.observed[where], "envelope": self.envelope[where]})
        return frame.sort_values("excess_percent", ascending=False).head(top).reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "test": "resampled kernel density (spikes)", "fraud_percent": self.fraud_percent,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "pvalue": self.pvalue,
            "null_median": float(np.median(self.null_fraud)), "excess_over_null": self.excess_over_null,
            "n": self.n, "resamples": self.resamples, "components_turnout": self.turnout_mixture.components,
            "components_vote": self.vote_mixture.components, "excluded": sum(self.excluded.values()),
            "null": self.null,
        }])

    def _repr_html_(self) -> str:
        excluded = pd.DataFrame({"reason": list(self.excluded), "units": list(self.excluded.values())})
        title = "Resampled kernel density test (Rozenas 2017): share of stations in spikes above the envelope"
        return "\n".join([f"<p><b>{html.escape(title)}</b></p>", self.to_frame().to_html(escape=True, index=False),
                          self.spikes().to_html(escape=True, index=False), excluded.to_html(escape=True, index=False)])


def _prepare(N, t, v):
    N, t, v = _as_float(N, "N"), _as_float(t, "t"), _as_float(v, "v")
    if not len(N) == len(t) == len(v):
        raise ValueError(f"arrays differ in length: N={len(N)}, t={len(t)}, v={len(v)}")
    stacked = np.vstack([N, t, v])
    reasons = [
        ("missing count", np.isnan(stacked).any(axis=0)),
        ("negative or fractional count", ((stacked < 0) | (stacked != np.round(stacked))).any(axis=0)),
        ("t = 0 (no share)", t == 0),
        ("t > N (above the roll)", t > N),
        ("v > t", v > t),
    ]
    used = np.ones(len(N), dtype=bool)
    excluded = {}
    for reason, mask in reasons:
        hit = used & mask
        excluded[reason] = int(hit.sum())
        used &= ~hit
    return N[used], t[used], v[used], excluded


def rozenas_spikes(N, t, v, *, resamples: int = 1000, seed: int = 0, bw: float = 1e-4, grid: int = 1001,
                   level: float = 0.95, max_components: int = 5,
                   mixtures: tuple[BetaBinomialMixture, BetaBinomialMixture] | None = None) -> SpikesResult:
    """Share of stations whose vote shares form spikes the smooth resampled model does not produce.

    Rozenas (2017), Political Analysis 25:41, section 3; R package ``spikes`` (``fraud()``).
    ``N`` registered, ``t`` turnout count (the vote share's denominator), ``v`` votes of the party
    or candidate; units with a missing or bad count, t = 0, t > N or v > t are excluded and counted.
    ``mixtures`` = (turnout, vote) fixes the beta-binomial mixtures instead of fitting them.
    Returns ``fraud_percent`` with a ``level`` interval and the leave-one-out resampling p-value
    (module docstring); ``excess_over_null`` is ``fraud_percent`` minus the median of its null
    draws, the part of it that resampling noise alone does not give (the raw figure is never 0:
    some bins always top the envelope by chance). Null: the fitted beta-binomial mixtures, each station resampled from its
    posterior, ``resamples`` times (seed).
    """
    if int(resamples) < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples!r}")
    N, t, v, excluded = _prepare(N, t, v)
    n = len(N)
    if n < 10:
        raise ValueError(f"too few usable units for the spikes test: {n} (excluded: {excluded})")
    rng = np.random.default_rng(seed)
    if mixtures is None:
        turnout_mix = fit_betabinomial_mixture(t, N, max_components=max_components, seed=seed)
        vote_mix = fit_betabinomial_mixture(v, t, max_components=max_components, seed=seed)
    else:
        turnout_mix, vote_mix = mixtures
    cum_t = _membership(turnout_mix, t, N)
    cum_v = _membership(vote_mix, v, t)
    density = _RDensity(bw, grid)
    step = density.x[1] - density.x[0]
    share = v / t
    observed = density(share)
    observed_bins = np.bincount(_bin_index(share, step, int(grid)), minlength=int(grid)) / n

    R = int(resamples)
    dens = np.empty((R, int(grid)))
    bins = np.empty((R, int(grid)))
    N_int = N.astype(np.int64)
    for r in range(R):
        t_star = rng.binomial(N_int, _posterior_p(rng, cum_t, turnout_mix, t, N))
        v_star = rng.binomial(t_star, _posterior_p(rng, cum_v, vote_mix, v, t))
        y = np.where(t_star > 0, v_star / np.maximum(t_star, 1), 0.0)
        dens[r] = density(y)
        bins[r] = np.bincount(_bin_index(y, step, int(grid)), minlength=int(grid)) / n
    envelope = dens.max(axis=0)
    mean_bins = bins.mean(axis=0)
    excess = np.maximum(observed_bins - mean_bins, 0.0)
    flagged = observed > envelope
    fraud = 100 * float(np.sum(excess[flagged]))

    # Null draws: each resample against the envelope and mean of the other R - 1.
    top = np.argmax(dens, axis=0)
    second = np.partition(dens, R - 2, axis=0)[R - 2]
    others_max = np.where(np.arange(R)[:, None] == top[None, :], second[None, :], envelope[None, :])
    others_mean = (R * mean_bins[None, :] - bins) / (R - 1)
    null_fraud = 100 * np.sum(np.maximum(bins - others_mean, 0.0) * (dens > others_max), axis=1)
    pvalue = float((1 + np.sum(null_fraud >= fraud - 1e-12)) / (R + 1))

    # Interval: the statistic's spread under the fitted model (the leave-one-out draws), shifted
    # to the observed value (a basic interval; it does not carry the mixture's own uncertainty).
    tail = (1 - level) / 2
    q_low, q_mid, q_high = np.quantile(null_fraud, [tail, 0.5, 1 - tail])
    ci = np.maximum([fraud - (q_high - q_mid), fraud - (q_low - q_mid)], 0.0)
    null = (f"beta-binomial mixtures (turnout {turnout_mix.components}, vote {vote_mix.components} components), "
            f"stations resampled from their posteriors, {R} resamples, seed {seed}; KDE bw {bw:g}, {grid} points")
    return SpikesResult(
        fraud_percent=fraud, ci_low=float(ci[0]), ci_high=float(ci[1]), pvalue=pvalue, n=n, resamples=R,
        seed=seed, bw=bw, x=density.x.copy(), observed=observed, envelope=envelope,
        excess=excess, flagged=flagged, null_fraud=null_fraud, turnout_mixture=turnout_mix,
        vote_mixture=vote_mix, excluded=excluded, null=null,
    )


# ------------------------------------------------------------------------------------ per region
@dataclass(frozen=True, eq=False)
class SpikesTable:
    """The spikes test per region, with Benjamini-Hochberg q-values across regions."""

    results: pd.DataFrame  # region, region_name, fraud_percent, ci_low, ci_high, pvalue, qvalue, n, excluded, note
    level: str
    candidate: str
    resamples: int
    seed: int
    details: Mapping[str, SpikesResult] = field(default_factory=dict, repr=False)

    def flags(self, alpha: float = 0.05) -> pd.DataFrame:
        """Regions whose q-value is at most ``alpha``: statistical irregularities, not findings of fraud."""
        return self.results[self.results["qvalue"] <= alpha].reset_index(drop=True)

    def flag_rows(self) -> pd.DataFrame:
        """Per region in the report's flag shape (``test``, ``region``, ``statistic`` = fraud %, ``pvalue``, ``qvalue``)."""
        return pd.DataFrame({"test": "spikes (Rozenas)", "region": self.results["region"].astype(str),
                             "statistic": self.results["fraud_percent"], "pvalue": self.results["pvalue"],
                             "qvalue": self.results["qvalue"]})

    def to_frame(self) -> pd.DataFrame:
        return self.results.copy()

    def _repr_html_(self) -> str:
        title = (f"Spikes test (Rozenas 2017) per {self.level}, candidate {self.candidate}, {self.resamples} resamples, "
                 f"seed {self.seed}; q-values: Benjamini-Hochberg across regions")
        return f"<p><b>{html.escape(title)}</b></p>\n" + self.results.to_html(escape=True, index=False)


def _region_seed(seed: int, region: str) -> int:
    """A seed per region that does not change when other regions are added or removed."""
    return int(np.random.SeedSequence([int(seed), zlib.crc32(region.encode())]).generate_state(1)[0])


def _winner(election) -> str:
    totals = {c: np.nansum(election.column(c)) for c in election.candidates}
    return max(totals, key=totals.get)


def spikes_table(election, *, level: str | None = None, candidate: str | None = None, resamples: int = 1000,
                 seed: int = 0, min_units: int = 100, max_components: int = 5) -> SpikesTable:
    """``rozenas_spikes`` per region of ``level`` (default: the coarsest), with BH q-values.

    Rozenas (2017); q-values by Benjamini & Hochberg (1995) (statsmodels ``multipletests``).
    N = ``registered``, t = ``valid`` (so the share is the candidate's share of valid votes, as
    everywhere in forensik), v = the ``candidate`` (default: the one with most votes overall).
    Regions with fewer than ``min_units`` usable units, or whose fit fails, get a NaN p-value and
    a note. Each region has its own seed derived from ``seed`` and its code.
    """
    from statsmodels.stats.multitest import multipletests

    level = level or election.levels[0]
    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    candidate = candidate or _winner(election)
    if candidate not in election.candidates:
        raise KeyError(f"{candidate!r} is not a candidate ({', '.join(election.candidates)})")
    table = election.table
    regions = table[level].astype(str).to_numpy()
    name_col = f"{level}_name"
    names = table[name_col].astype(str).to_numpy() if name_col in table.columns else None
    N, t, v = election.column("registered"), election.column("valid"), election.column(candidate)
    rows, details = [], {}
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        row = {"region": region, "region_name": str(names[mask][0]) if names is not None else ""}
        try:
            result = cached(rozenas_spikes)(N[mask], t[mask], v[mask], resamples=resamples, seed=_region_seed(seed, region),
                                    max_components=max_components) if mask.sum() >= min_units else None
        except ValueError as err:  # too few usable units after exclusions
            result, row["note"] = None, str(err)
        if result is None or result.n < min_units:
            rows.append({**row, "fraud_percent": np.nan, "excess_over_null": np.nan, "ci_low": np.nan, "ci_high": np.nan, "pvalue": np.nan,
                         "n": 0 if result is None else result.n, "excluded": 0,
                         "note": row.get("note", f"fewer than {min_units} usable units")})
            continue
        details[region] = result
        rows.append({**row, "fraud_percent": result.fraud_percent, "excess_over_null": result.excess_over_null,
                     "ci_low": result.ci_low,
                     "ci_high": result.ci_high, "pvalue": result.pvalue, "n": result.n,
                     "excluded": int(sum(result.excluded.values())), "note": ""})
    results = pd.DataFrame(rows, columns=["region", "region_name", "fraud_percent", "excess_over_null", "ci_low",
                                          "ci_high", "pvalue",
                                          "n", "excluded", "note"])
    results.insert(7, "qvalue", np.nan)
    ok = results["pvalue"].notna()
    if ok.any():
        results.loc[ok, "qvalue"] = multipletests(results.loc[ok, "pvalue"].to_numpy(), method="fdr_bh")[1]
    return SpikesTable(results=results, level=level, candidate=candidate, resamples=int(resamples), seed=seed,
                       details=details)


def spikes_pvalues(election, seed: int, *, level: str = "province", resamples: int = 200) -> pd.Series:
    """Per-region p-values of the spikes test, for ``analysis.calibration`` (name -> callable(election, seed))."""
    table = spikes_table(election, level=level, resamples=resamples, seed=seed).results
    return pd.Series(table["pvalue"].to_numpy(), index=table["region"].to_numpy(), name="spikes")

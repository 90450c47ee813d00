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
   its mean share under resampling (positive parts only; the bin of a share of exactly 0 is left
   out, as the package's ``fraud()`` leaves it out).

Differences from the R package, all deliberate:
- the mixtures are fitted by direct maximisation of the mixture likelihood (L-BFGS-B with the
  analytic gradient, a second start where a larger fit ends below a smaller one, convergence
  reported), not by EM started from a least-squares fit
  to a kernel density and stopped when successive iterates' densities correlate at 0.99; the
  number of components follows the package's rule (add components until successive fits'
  latent densities correlate at 0.99), BIC (``rule="bic"``, the rule of this module before) keeps
  too many on large data; a fixed mixture (e.g. the package's stored one) can be passed with
  ``mixtures=``; the likelihood is summed by running sums of logs (rising factorials) where the
  sizes are small against the number of units, else with ``betaln`` (equal to 1e-10; the fit may
  stop elsewhere on a flat ridge, which moves the figure as another seed would);
- a region of more than 20,000 units draws its resamples from two streams of the seed, on two
  threads where two cores are free (``threads=``); the figures do not depend on the threads;
- ``se``: the resampling error of the figure, given the mixtures (``_resampling_error``);
- the interval is the spread of the statistic under the fitted model (each resample scored
  against the others), shifted to the observed value and floored at 0: a basic interval that
  carries the sampling noise of spikes but not the mixture's parameter uncertainty, which the
  package's ``confInt`` redraws (at 100 x the cost). A station bootstrap was tried and rejected:
  resampling stations with replacement duplicates them, which itself makes spikes;
- a p-value is added, by sequential Monte Carlo (Besag & Clifford 1991): fresh resampled
  elections are scored against the same envelope and mean as the data until 10 of them reach
  the observed value, or ``max_null_draws`` have been drawn; the result carries the smallest
  p-value the run could reach (``pvalue_min``); ``spikes_table`` allows 2,000 draws, a floor of
  1/2,001 that lies below what a flag needs among up to 50 regions.

Agreement with the package, measured on the rows of the methods appendix: README, "Reproduced,
and not", and ``benchmarks/bench_spikes_r.py`` (both implementations on the same data in one run).

A large value is a statistical irregularity: besides fabricated results, shares pile up on
simple fractions in tiny stations (2 of 4 votes is 50 %), where a candidate is unopposed, or where
forms were filled from a template; read it together with the stations' sizes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..blas import one_blas_thread
from ..cache import cached
from .._common import in_threads, prepare_counts, region_seed, usable_threads
from ..display import frame_html

try:  # numpy's own beta and binomial draws in one pass (setup.py builds it; optional, same numbers)
    from ._sampler import posterior_binomial as _posterior_binomial_compiled
except ImportError:  # no C compiler at install: the same draws with numpy's array calls
    _posterior_binomial_compiled = None

__all__ = ["BetaBinomialMixture", "SpikesResult", "SpikesTable", "default_threads", "fit_betabinomial_mixture", "null_draws_for",
           "rozenas_spikes", "spikes_table", "spikes_pvalues", "r_density"]

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
    converged: bool = True  # the optimiser reported success for the kept fit
    message: str = ""  # the optimiser's message, and how the number of components was chosen

    @property
    def components(self) -> int:
        return len(self.w)

    def density(self, x: np.ndarray) -> np.ndarray:
        """The latent mixture density sum_k w_k Beta(x; a_k, b_k) at ``x``."""
        x = np.asarray(x, dtype=float)
        return np.sum(self.w * stats.beta.pdf(x[:, None], self.a, self.b), axis=1)

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


def _rising_pays(y: np.ndarray, n: np.ndarray) -> bool:
    """Whether ``_rising_log_bb`` is the cheaper way for these units: its tables grow with the largest
    size, the special functions with the number of (pooled) units. A function of the data alone."""
    return len(n) > 0 and float(n.max()) + 1 <= 4 * len(n)


def _rising_log_bb(y, n, log_comb, a, b):
    """``_log_bb`` and its derivatives by running sums: lgamma(m + a) - lgamma(a) = sum_{i<m} log(a + i)
    and psi(m + a) - psi(a) = sum_{i<m} 1 / (a + i), tabulated once per component for m up to the
    largest size, then read at each unit's counts. Returns log BB (units x components) and
    d log BB / d a, d log BB / d b without their factors a, b (the chain rule of log a, log b)."""
    top, L = int(n.max()), len(a)
    terms = np.arange(top, dtype=float)[:, None] + np.concatenate([a, b, a + b])  # top x 3 components
    # One table, rows the counts 0..top: the running sums of log(shape + i), then of 1 / (shape + i).
    table = np.empty((top + 1, 6 * L))
    table[0] = 0.0
    np.cumsum(np.log(terms), axis=0, out=table[1:, :3 * L])
    np.cumsum(1.0 / terms, axis=0, out=table[1:, 3 * L:])
    yi, ni = y.astype(np.intp), n.astype(np.intp)
    at_y, at_rest, at_n = table[yi], table[ni - yi], table[ni]
    common = at_n[:, 5 * L:]
    log_bb = log_comb[:, None] + at_y[:, :L] + at_rest[:, L:2 * L] - at_n[:, 2 * L:3 * L]
    return log_bb, at_y[:, 3 * L:4 * L] - common, at_rest[:, 4 * L:5 * L] - common


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


#: The R package's rule for the number of components (``est.density``): add a component until the
#: latent densities of two successive fits correlate at ``_CORRELATION_STOP`` or more on 1,001
#: points of [0.01, 0.99]; the last fit is kept.
_CORRELATION_GRID = np.linspace(0.01, 0.99, 1001)
_CORRELATION_STOP = 0.99


def _grow(theta: np.ndarray, L: int) -> np.ndarray:
    """A start for L + 1 components from an L-component fit: its heaviest component is split into
    itself and a twice-as-wide copy, each with half its weight (so the start's likelihood is close
    to the L-component optimum and a larger model does not end below a smaller one)."""
    a, b, w = _unpack(theta, L)
    k = int(np.argmax(w))
    a, b = np.append(a, a[k] / 2), np.append(b, b[k] / 2)
    w = np.append(w, w[k] / 2)
    w[k] /= 2
    log_a = np.clip(np.log(a), *_LOG_BOUNDS)
    log_b = np.clip(np.log(b), *_LOG_BOUNDS)
    return np.concatenate([log_a, log_b, np.log(w[:-1] / w[-1])])


def fit_betabinomial_mixture(count, size, *, components: int | None = None, max_components: int = 5,
                             seed: int = 0, select_units: int = 10000, rule: str = "correlation") -> BetaBinomialMixture:
    """Maximum-likelihood beta-binomial mixture of ``count`` out of ``size``.

    Rozenas (2017), section 3.1, and the R package ``spikes`` (``est.density``). The mixture
    likelihood is maximised directly (L-BFGS-B, analytic gradient) over log a, log b and the softmax
    logits of the weights, started from moments within L quantile groups; when an L-component fit
    ends below the L - 1 fit's likelihood (a local optimum), it is started again from the L - 1 fit
    with its heaviest component split and the better is kept. The package runs EM from a
    least-squares fit to a kernel density instead. Identical (count, size) pairs are pooled with a
    multiplicity, which makes TPS-sized data (size <= 300) cheap.

    The number of components: ``components`` if given; otherwise, with ``rule="correlation"``
    (default), the package's rule: fit 1, 2, ... up to ``max_components`` and stop at the first L
    whose latent density correlates at 0.99 or more with that of L - 1 (on 1,001 points of
    [0.01, 0.99]), keeping L; with ``rule="bic"``, the first local minimum of BIC. BIC keeps adding
    very concentrated components on tens of thousands of units (turnout of Canada 2011: four
    components, one with a + b = 2,578), which reproduce the fine structure the spikes test looks
    for, and it made the test find a third of the package's figure there; the correlation rule
    stops at two, as the package did. On a few hundred units (a kabupaten) successive fits rarely
    correlate at 0.99 and the rule often fits all ``max_components`` (with the null draws, a
    kabupaten table of the demo took 6.6 s CPU before and 10.7 s after); a BIC guard was tried and rejected, as it cut Canada's vote mixture to
    three components where the package has four.

    Fits use a random subsample of at most ``select_units`` units (seed): the mixture only describes
    the smooth part of the distribution, which 10,000 units pin down well, and a fit on 95,000
    units costs minutes; ``loglik`` and ``bic`` are those of all units. ``converged`` says whether
    L-BFGS-B reported success for the kept fit; ``message`` gives its message and how L was chosen.
    """
    if rule not in ("correlation", "bic"):
        raise ValueError(f"rule must be 'correlation' or 'bic', got {rule!r}")
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
        if _rising_pays(y, n):
            log_bb, da, db = _rising_log_bb(y, n, log_comb, a, b)
        else:
            log_bb = _log_bb(y, n, log_comb, a, b)
            # d log BB / d log a = a [psi(y + a) - psi(n + a + b) - psi(a) + psi(a + b)], same for b.
            common = -special.digamma(n[:, None] + a + b) + special.digamma(a + b)
            da = special.digamma(y[:, None] + a) - special.digamma(a) + common
            db = special.digamma((n - y)[:, None] + b) - special.digamma(b) + common
        comp = log_bb + np.log(w)
        ll = _logsumexp_rows(comp)
        resp = np.exp(comp - ll[:, None]) * mult[:, None]
        ga = a * np.sum(resp * da, axis=0)
        gb = b * np.sum(resp * db, axis=0)
        gw = resp.sum(axis=0) - mult.sum() * w
        return -float(np.sum(mult * ll)), -np.concatenate([ga, gb, gw[:-1]])

    def fit(L, data, previous=None):
        y, n, mult, log_comb = data
        bounds = [_LOG_BOUNDS] * (2 * L) + [(-30, 30)] * (L - 1)

        def run(theta0):
            with one_blas_thread():  # L-BFGS-B's BLAS calls on a few parameters: threads only cost hand-offs
                return optimize.minimize(negloglik, theta0, args=(L, *data), jac=True, method="L-BFGS-B",
                                         bounds=bounds, options={"maxiter": 1000})

        best = run(_start(np.repeat(y, mult.astype(int)), np.repeat(n, mult.astype(int)), L, rng))
        if previous is not None and best.fun > previous.fun + 1e-6 * abs(previous.fun):
            # A larger mixture below the smaller one's optimum: a local optimum; start again from
            # the smaller fit with its heaviest component split, and keep the better.
            grown = run(_grow(previous.x, L - 1))
            if grown.fun < best.fun:
                best = grown
        total = float(mult.sum())
        return best, -2 * (-float(best.fun)) + (3 * L - 1) * np.log(total)

    data = pooled(y_all, n_all) if len(y_all) <= select_units else _subsample(y_all, n_all, select_units, rng, pooled)
    if components is not None:
        L = int(components)
        best, _ = fit(L, data)
        choice = f"{L} components as asked"
    else:
        best, bic = fit(1, data)
        L, choice = 1, "1 component"
        density = _mixture_density(best.x, 1)
        for candidate in range(2, int(max_components) + 1):
            res_c, bic_c = fit(candidate, data, previous=best)
            if rule == "bic":
                if not bic_c < bic:
                    choice = f"{L} components: first local minimum of BIC"
                    break
                best, bic, L = res_c, bic_c, candidate
                choice = f"{L} components: BIC fell up to the maximum"
                continue
            density_c = _mixture_density(res_c.x, candidate)
            r = float(np.corrcoef(density_c, density)[0, 1])
            best, L, density = res_c, candidate, density_c
            choice = f"{L} components: correlation with {L - 1} components {r:.4f} (package rule, stop at 0.99)"
            if r >= _CORRELATION_STOP:
                break
        else:
            if rule == "correlation" and L == int(max_components):
                choice += f"; stopped at the maximum, {L}"
    full = pooled(y_all, n_all)
    ll = -negloglik(best.x, L, *full)[0]
    bic = -2 * ll + (3 * L - 1) * np.log(len(y_all))
    a, b, w = _unpack(best.x, L)
    order = np.argsort(-w)
    return BetaBinomialMixture(a=a[order], b=b[order], w=w[order], loglik=ll, bic=bic, n=len(y_all),
                               converged=bool(best.success), message=f"{choice}; L-BFGS-B: {best.message}")


def _mixture_density(theta: np.ndarray, L: int) -> np.ndarray:
    a, b, w = _unpack(theta, L)
    return np.sum(w * stats.beta.pdf(_CORRELATION_GRID[:, None], a, b), axis=1)


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


def _posterior_p(rng, cumulative, mixture, count, size, reps: int = 1):
    """Each unit's probability drawn from its posterior, ``reps`` times (rows): a mixture component
    from its posterior membership, then Beta(count + a_k, size - count + b_k)."""
    u = rng.random((reps, len(count)))
    # The component is the number of cumulative memberships below u (the last is 1, never below):
    # one comparison per component, not a units x components array summed over its short axis.
    k = np.zeros(u.shape, dtype=np.intp)
    for column in range(cumulative.shape[1] - 1):
        k += u > cumulative[:, column]
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
        # np.interp onto x, as one gather for many rows: the output grid lies inside the binning grid.
        self.left = np.clip(np.searchsorted(self.xords, self.x, side="right") - 1, 0, n - 2)
        self.frac = (self.x - self.xords[self.left]) / (self.xords[self.left + 1] - self.xords[self.left])

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return self.many(np.asarray(values, dtype=float)[None, :])[0]

    def many(self, values: np.ndarray) -> np.ndarray:
        """The density of each row of ``values`` (rows of equal length), all rows in one binning, one
        FFT pair and one interpolation (small regions are otherwise dominated by per-call overhead)."""
        rows, length = values.shape
        weight = 1.0 / length
        pos = (values - self.lo) / self.delta
        ix = np.floor(pos).astype(np.int64)
        fx = pos - ix
        width = 2 * self.n
        offset = (np.arange(rows, dtype=np.int64) * width)[:, None]
        inside = (ix >= 0) & (ix <= self.n - 2)
        flat = (ix + offset)[inside]
        y = np.bincount(flat, weights=(1 - fx[inside]) * weight, minlength=rows * width)
        y += np.bincount(flat + 1, weights=fx[inside] * weight, minlength=rows * width)
        y = y.reshape(rows, width)
        y[:, 0] += np.sum(np.where(ix == -1, fx, 0.0), axis=1) * weight
        y[:, self.n - 1] += np.sum(np.where(ix == self.n - 1, 1 - fx, 0.0), axis=1) * weight
        conv = np.maximum(np.fft.irfft(np.fft.rfft(y, axis=1) * self.kernel_fft, n=width, axis=1)[:, : self.n], 0.0)
        return conv[:, self.left] * (1 - self.frac) + conv[:, self.left + 1] * self.frac


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
    """Rozenas' resampled-density test: share of stations in spikes, its resampling error, p-value.

    ``se`` is the resampling (Monte Carlo) error of ``fraud_percent`` for these data and mixtures
    (``_resampling_error``): what another set of ``resamples`` resampled elections would change. ``pvalue`` is a sequential Monte Carlo p-value (Besag
    & Clifford 1991) from ``null_draws`` fresh resampled elections, each scored against the same
    envelope and mean as the data; ``pvalue_min`` = 1 / (``max_null_draws`` + 1) is the smallest
    p-value the run could give.
    """

    fraud_percent: float
    se: float
    ci_low: float
    ci_high: float
    pvalue: float
    pvalue_min: float
    null_draws: int
    max_null_draws: int
    n: int
    resamples: int
    seed: int
    bw: float
    x: np.ndarray = field(repr=False)  # grid
    observed: np.ndarray = field(repr=False)  # observed density on the grid
    envelope: np.ndarray = field(repr=False)  # maximum of the resampled densities
    excess: np.ndarray = field(repr=False)  # observed minus mean resampled bin share, positive part (bin 0 set to 0)
    flagged: np.ndarray = field(repr=False)  # grid points where observed > envelope
    null_fraud: np.ndarray = field(repr=False)  # fraud_percent of each fresh null draw of the sequential test
    loo_fraud: np.ndarray = field(repr=False)  # each resample scored against the other resamples (interval)
    turnout_mixture: BetaBinomialMixture = field(repr=False)
    vote_mixture: BetaBinomialMixture = field(repr=False)
    excluded: Mapping[str, int] = field(default_factory=dict)
    null: str = ""

    @property
    def statistic(self) -> float:
        return self.fraud_percent

    @property
    def converged(self) -> bool:
        """Both mixture fits reported convergence."""
        return bool(self.turnout_mixture.converged and self.vote_mixture.converged)

    @property
    def excess_over_null(self) -> float:
        """``fraud_percent`` minus the median of the resamples scored against the others."""
        return self.fraud_percent - float(np.median(self.loo_fraud))

    def spikes(self, top: int = 10) -> pd.DataFrame:
        """The flagged grid points with the largest excess share of stations."""
        where = np.flatnonzero(self.flagged & (self.excess > 0))
        frame = pd.DataFrame({"share": self.x[where], "excess_percent": 100 * self.excess[where],
                              "observed_density": self.observed[where], "envelope": self.envelope[where]})
        return frame.sort_values("excess_percent", ascending=False).head(top).reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame([{
            "test": "resampled kernel density (spikes)", "fraud_percent": self.fraud_percent, "se": self.se,
            "ci_low": self.ci_low, "ci_high": self.ci_high, "pvalue": self.pvalue, "pvalue_min": self.pvalue_min,
            "null_draws": self.null_draws, "null_median": float(np.median(self.loo_fraud)),
            "excess_over_null": self.excess_over_null, "n": self.n, "resamples": self.resamples,
            "components_turnout": self.turnout_mixture.components, "components_vote": self.vote_mixture.components,
            "converged": self.converged, "excluded": sum(self.excluded.values()), "null": self.null,
        }])

    def _repr_html_(self) -> str:
        excluded = pd.DataFrame({"reason": list(self.excluded), "units": list(self.excluded.values())})
        title = "Resampled kernel density test (Rozenas 2017): share of stations in spikes above the envelope"
        fits = pd.DataFrame({"mixture": ["turnout", "vote"],
                             "components": [self.turnout_mixture.components, self.vote_mixture.components],
                             "converged": [self.turnout_mixture.converged, self.vote_mixture.converged],
                             "fit": [self.turnout_mixture.message, self.vote_mixture.message]})
        return "\n".join([f"<p><b>{html.escape(title)}</b></p>", frame_html(self.to_frame()),
                          frame_html(self.spikes()), frame_html(fits),
                          frame_html(excluded)])


def _prepare(N, t, v):
    def rules(N, t, v):
        return [("t = 0 (no share)", t == 0), ("t > N (above the roll)", t > N), ("v > t", v > t)]

    prepared = prepare_counts({"N": N, "t": t, "v": v}, rules)
    return prepared.kept("N"), prepared.kept("t"), prepared.kept("v"), prepared.excluded


class _Resampler:
    """Draws resampled elections (Rozenas 2017, section 3.2; the package's ``resample()``) and scores them.

    Each station's turnout and support probabilities are drawn from its posterior under the
    fitted mixtures (component from its posterior membership, then Beta(count + a_k, size - count
    + b_k)); t* ~ Bin(N, p_t), v* ~ Bin(t*, p_v); a share with t* = 0 is 0, as in the package.
    """

    def __init__(self, N, t, v, turnout_mix, vote_mix, density, grid):
        N, t, v = (np.ascontiguousarray(x, dtype=float) for x in (N, t, v))
        self.N_int, self.N, self.t, self.v = N.astype(np.int64), N, t, v
        self.turnout_mix, self.vote_mix = turnout_mix, vote_mix
        self.cum_t = _membership(turnout_mix, t, N)
        self.cum_v = _membership(vote_mix, v, t)
        self.density, self.grid = density, grid
        self.step = density.x[1] - density.x[0]

    #: Units x resamples drawn in one batch where a region is small: its resamples cost per call
    #: (Python, two FFTs, an interpolation) more than per unit, so a batch amortises the calls.
    BATCH_ELEMENTS = 2_000_000
    #: Above this many units a resample costs per unit (~0.5 us each) and a batch of arrays larger than
    #: the cache is slower (Canada's 66,310 polls: 35 ms per resample one at a time, 44 ms in batches of 30),
    #: so large regions draw one resample at a time, as before batching (the same random stream).
    BATCH_MAX_UNITS = 20_000

    def bins(self, share: np.ndarray) -> np.ndarray:
        return self.bins_many(share[None, :])[0]

    def bins_many(self, shares: np.ndarray) -> np.ndarray:
        rows = shares.shape[0]
        index = _bin_index(shares, self.step, self.grid) + (np.arange(rows, dtype=np.int64) * self.grid)[:, None]
        return np.bincount(index.ravel(), minlength=rows * self.grid).reshape(rows, self.grid) / shares.shape[1]

    def batch(self, remaining: int) -> int:
        """How many resamples the next batch draws (a function of the data's size alone, so that a
        seed gives the same figures on every machine)."""
        if len(self.N) > self.BATCH_MAX_UNITS:
            return 1
        return max(1, min(int(remaining), self.BATCH_ELEMENTS // max(len(self.N), 1)))

    #: Random streams of a large region's resamples (and of its null draws): a fixed number, so that
    #: the figures depend on the seed and the data alone, whatever the number of threads drawing them.
    STREAMS = 2

    def streams(self, seed: int, *, null: bool = False) -> list | None:
        """The independent streams a large region (one resample per draw) draws from, or None: a small
        region draws its batches from the one stream of the seed."""
        if len(self.N) <= self.BATCH_MAX_UNITS:
            return None
        return [np.random.default_rng([int(seed), 2 + int(null), s]) for s in range(self.STREAMS)]

    def draw_many(self, rng, reps: int, *, compiled: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """``reps`` resampled elections: their densities and bin shares (rows). ``compiled=False``
        draws with numpy's array calls even where the compiled stage is built (the same numbers)."""
        if compiled and _posterior_binomial_compiled is not None:
            stage = _posterior_binomial_compiled
            t_star = stage(rng, self.cum_t, self.t, self.N, self.turnout_mix.a, self.turnout_mix.b, self.N_int[None, :], reps)
            v_star = stage(rng, self.cum_v, self.v, self.t, self.vote_mix.a, self.vote_mix.b, t_star, reps)
        else:
            t_star = rng.binomial(self.N_int, _posterior_p(rng, self.cum_t, self.turnout_mix, self.t, self.N, reps))
            v_star = rng.binomial(t_star, _posterior_p(rng, self.cum_v, self.vote_mix, self.v, self.t, reps))
        y = np.where(t_star > 0, v_star / np.maximum(t_star, 1), 0.0)
        return self.density.many(y), self.bins_many(y)


def default_threads() -> int:
    """Threads for a large region's resampling: the cores this process may use, at most
    ``_Resampler.STREAMS``, and at most ``OMP_NUM_THREADS`` where it is set (the batch runner gives each
    kernel cores / jobs; ``make test`` one per worker)."""
    return usable_threads(_Resampler.STREAMS)


def _score(dens: np.ndarray, bins: np.ndarray, envelope: np.ndarray, mean_bins: np.ndarray) -> np.ndarray:
    """The package's fraud % of (rows of) densities and bin shares against an envelope and a mean:
    100 x the positive excess of the bin shares over the mean, summed over the grid points where the
    density tops the envelope, bin 0 (a share of exactly 0) left out as the package leaves it out."""
    excess = np.maximum(bins - mean_bins, 0.0)
    excess[..., 0] = 0.0
    return 100 * np.sum(excess * (dens > envelope), axis=-1)


def _resampling_error(dens: np.ndarray, observed: np.ndarray, excess: np.ndarray) -> float:
    """Standard error of the fraud % over new sets of resampled elections, given the mixtures.

    The estimate is sum_k excess_k 1[observed_k > max of R resampled densities at k]. The mean of
    R resamples is stable (its error is of order 1/sqrt(R) of a bin's share), the envelope is not:
    whether a bin near the envelope is counted decides the figure, so each bin is a Bernoulli
    with pi_k = (1 - q_k)^R, where q_k = P(resampled density at k >= observed_k) is read from a
    normal fitted to the R resampled densities at k (their mean and SD; the empirical share of
    draws at or above the observed value is 0 for every counted bin, whatever its margin). The
    variance is sum_k excess_k^2 pi_k (1 - pi_k), bins taken as independent. Checked against the
    spread over seeds in ``tests/test_spikes.py`` and in the README.
    """
    R = dens.shape[0]
    mean, sd = dens.mean(axis=0), dens.std(axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (observed - mean) / sd
        z = np.where(sd > 0, z, np.where(observed > mean, np.inf, -np.inf))
        pi = np.exp(R * np.log1p(-stats.norm.sf(z)))
    return float(100 * np.sqrt(np.sum(excess ** 2 * pi * (1 - pi))))


def rozenas_spikes(N, t, v, *, resamples: int = 1000, seed: int = 0, bw: float = 1e-4, grid: int = 1001,
                   level: float = 0.95, max_components: int = 5,
                   mixtures: tuple[BetaBinomialMixture, BetaBinomialMixture] | None = None,
                   max_null_draws: int | None = None, exceedances: int = 10, threads: int | None = None) -> SpikesResult:
    """Share of stations whose vote shares form spikes the smooth resampled model does not produce.

    Rozenas (2017), Political Analysis 25:41, section 3; R package ``spikes`` (``fraud()``).
    ``N`` registered, ``t`` turnout count (the vote share's denominator), ``v`` votes of the party
    or candidate; units with a missing or bad count, t = 0, t > N or v > t are excluded and counted.
    ``mixtures`` = (turnout, vote) fixes the beta-binomial mixtures instead of fitting them.

    Returns ``fraud_percent`` as the package computes it from ``resamples`` resampled elections,
    with ``se``, its resampling error given the mixtures (``_resampling_error``), a
    ``level`` interval (the statistic's spread under the fitted model, shifted to the observed
    value: each resample scored against the others), and a p-value by sequential Monte Carlo
    (Besag & Clifford 1991): fresh resampled elections are scored against the same envelope and
    mean as the data until ``exceedances`` of them reach the observed value (p = exceedances /
    draws) or ``max_null_draws`` have been drawn (p = (1 + reached) / (draws + 1)). Conditional on
    the envelope the data and the fresh draws are exchangeable under the fitted model, so the
    p-value is valid at every stopping point; its floor is ``pvalue_min`` = 1 / (max_null_draws + 1),
    which the caller sets for the decision it feeds (default: ``resamples``; 0 skips the p-value).
    The null draws use their own random stream, so ``fraud_percent`` does not depend on them.
    A region of more than ``_Resampler.BATCH_MAX_UNITS`` units draws its resamples from two streams of
    the seed (the first half from one, the second from the other; the null draws alternate between
    two more), on ``threads`` threads (default ``default_threads()``): the same figures on one thread
    or two, in about half the wall time on two cores.
    ``excess_over_null`` is ``fraud_percent`` minus the median of the resamples scored against the
    others (the raw figure is rarely 0: some bins top the envelope by chance).
    """
    if int(resamples) < 2:
        raise ValueError(f"resamples must be at least 2, got {resamples!r}")
    max_null_draws = int(resamples) if max_null_draws is None else int(max_null_draws)
    if max_null_draws < 0 or int(exceedances) < 1:
        raise ValueError(f"max_null_draws must be >= 0 and exceedances >= 1, got {max_null_draws}, {exceedances}")
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
    grid = int(grid)
    density = _RDensity(bw, grid)
    sampler = _Resampler(N, t, v, turnout_mix, vote_mix, density, grid)
    share = v / t
    observed = density(share)
    observed_bins = sampler.bins(share)

    R = int(resamples)
    threads = default_threads() if threads is None else threads  # numpy's and the compiled samplers release the GIL
    dens = np.empty((R, grid))
    bins = np.empty((R, grid))
    streams = sampler.streams(seed)
    if streams is None:
        done = 0
        while done < R:
            reps = sampler.batch(R - done)
            dens[done:done + reps], bins[done:done + reps] = sampler.draw_many(rng, reps)
            done += reps
    else:
        blocks = np.array_split(np.arange(R), len(streams))

        def fill(part):
            block, stream = part
            for i in block:
                dens[i:i + 1], bins[i:i + 1] = sampler.draw_many(stream, 1)

        in_threads(fill, list(zip(blocks, streams)), threads)
    envelope = dens.max(axis=0)
    mean_bins = bins.mean(axis=0)
    excess = np.maximum(observed_bins - mean_bins, 0.0)
    excess[0] = 0.0
    flagged = observed > envelope
    fraud = float(_score(observed, observed_bins, envelope, mean_bins))

    # Leave one resample out: the envelope and mean of the other R - 1.
    top = np.argmax(dens, axis=0)
    second = np.partition(dens, R - 2, axis=0)[R - 2]
    others_max = np.where(np.arange(R)[:, None] == top[None, :], second[None, :], envelope[None, :])
    others_mean = (R * mean_bins[None, :] - bins) / (R - 1)
    loo_fraud = _score(dens, bins, others_max, others_mean)  # each resample against the others
    se = _resampling_error(dens, observed, excess)

    # Sequential Monte Carlo p-value (Besag & Clifford 1991) on fresh draws against the same envelope.
    null_rng = np.random.default_rng([int(seed), 1])
    null_streams = sampler.streams(seed, null=True)
    null_fraud = []
    reached = 0
    while len(null_fraud) < max_null_draws and reached < int(exceedances):
        # Drawn in batches, scored in order: the draws after the stopping one are discarded, so the
        # p-value is the sequential one (the batch size only decides how much is drawn for nothing).
        if null_streams is None:
            batch = sampler.batch(min(max_null_draws - len(null_fraud), max(2 * int(exceedances), 32)))
            drawn_now = sampler.draw_many(null_rng, batch)
        else:  # one draw per stream, at once: draw j is the (j // streams)-th of stream j % streams
            batch = min(max_null_draws - len(null_fraud), len(null_streams))
            pairs = in_threads(lambda stream: sampler.draw_many(stream, 1), null_streams[:batch], threads)
            drawn_now = (np.concatenate([d for d, _ in pairs]), np.concatenate([b for _, b in pairs]))
        for score in _score(*drawn_now, envelope, mean_bins):
            null_fraud.append(float(score))
            reached += score >= fraud - 1e-12
            if reached >= int(exceedances):
                break
    drawn = len(null_fraud)
    if drawn == 0:
        pvalue = float("nan")
    elif reached >= int(exceedances):
        pvalue = reached / drawn
    else:
        pvalue = (reached + 1) / (drawn + 1)

    # Interval: the statistic's spread under the fitted model (each resample against the others),
    # shifted to the observed value (a basic interval; it does not carry the mixture's own uncertainty).
    tail = (1 - level) / 2
    q_low, q_mid, q_high = np.quantile(loo_fraud, [tail, 0.5, 1 - tail])
    ci = np.maximum([fraud - (q_high - q_mid), fraud - (q_low - q_mid)], 0.0)
    null = (f"beta-binomial mixtures (turnout {turnout_mix.components}, vote {vote_mix.components} components), "
            f"stations resampled from their posteriors, {R} resamples, seed {seed}; KDE bw {bw:g}, {grid} points; "
            f"p-value: sequential Monte Carlo, {drawn} of at most {max_null_draws} draws, stop at {int(exceedances)} "
            f"exceedances")
    return SpikesResult(
        fraud_percent=fraud, se=se, ci_low=float(ci[0]), ci_high=float(ci[1]), pvalue=float(pvalue),
        pvalue_min=1.0 / (max_null_draws + 1), null_draws=drawn, max_null_draws=max_null_draws, n=n, resamples=R,
        seed=seed, bw=bw, x=density.x.copy(), observed=observed, envelope=envelope, excess=excess, flagged=flagged,
        null_fraud=np.asarray(null_fraud, dtype=float), loo_fraud=loo_fraud,
        turnout_mixture=turnout_mix, vote_mixture=vote_mix, excluded=excluded, null=null,
    )


# ------------------------------------------------------------------------------------ per region
@dataclass(frozen=True, eq=False)
class SpikesTable:
    """The spikes test per region, with Benjamini-Hochberg q-values across regions."""

    results: pd.DataFrame  # region, region_name, fraud_percent, se, ..., pvalue, qvalue, pvalue_min, n, excluded, note
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
        return f"<p><b>{html.escape(title)}</b></p>\n" + frame_html(self.results)


def _winner(election) -> str:
    totals = {c: np.nansum(election.column(c)) for c in election.candidates}
    return max(totals, key=totals.get)


def null_draws_for(regions: int, alpha: float = 0.05) -> int:
    """Null draws a region needs so that the p-value floor never decides a BH flag at ``alpha``.

    With m regions, the smallest region alone is flagged when p <= alpha / m; the floor 1 / (M + 1)
    is kept at half of that: M = ceil(2 m / alpha). The sequential test only runs that many draws
    where the data are that extreme (Besag & Clifford 1991); elsewhere it stops after a few dozen.
    """
    return int(np.ceil(2 * max(int(regions), 1) / float(alpha)))


def spikes_table(election, *, level: str | None = None, candidate: str | None = None, resamples: int = 1000,
                 seed: int = 0, min_units: int = 100, max_components: int = 5,
                 max_null_draws: int | None = None) -> SpikesTable:
    """``rozenas_spikes`` per region of ``level`` (default: the coarsest), with BH q-values.

    Rozenas (2017); q-values by Benjamini & Hochberg (1995) (statsmodels ``multipletests``).
    N = ``registered``, t = ``valid`` (so the share is the candidate's share of valid votes, as
    everywhere in forensik), v = the ``candidate`` (default: the one with most votes overall).
    Regions with fewer than ``min_units`` usable units get a NaN p-value and a note; a region whose
    mixture fit did not converge keeps its result with a note. Each region has its own seed derived
    from ``seed`` and its code. Each region's sequential p-value may run up to ``max_null_draws``
    null draws (default: ``null_draws_for(50)`` = 2,000, or ``resamples`` if more), so that its floor
    (column ``pvalue_min``, 1/2,001) lies below what a BH flag at 0.05 needs among up to 50 regions
    (the 38 provinces, the kabupaten of a province); pass ``null_draws_for(m, alpha)`` for more. The
    default does not depend on how many regions this table has, so that a region's row is the same
    in the national table and in its own province's report (the batch cache shares it).
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
    max_null = max(int(resamples), null_draws_for(50) if max_null_draws is None else int(max_null_draws))
    rows, details = [], {}
    empty = {"fraud_percent": np.nan, "se": np.nan, "excess_over_null": np.nan, "ci_low": np.nan, "ci_high": np.nan,
             "pvalue": np.nan, "pvalue_min": np.nan, "null_draws": 0, "converged": None}
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        row = {"region": region, "region_name": str(names[mask][0]) if names is not None else ""}
        try:
            result = cached(rozenas_spikes)(N[mask], t[mask], v[mask], resamples=resamples,
                                            seed=region_seed(seed, region), max_components=max_components,
                                            max_null_draws=max_null) if mask.sum() >= min_units else None
        except ValueError as err:  # too few usable units after exclusions
            result, row["note"] = None, str(err)
        if result is None or result.n < min_units:
            rows.append({**row, **empty, "n": 0 if result is None else result.n, "excluded": 0,
                         "note": row.get("note", f"fewer than {min_units} usable units")})
            continue
        details[region] = result
        note = "" if result.converged else "a mixture fit did not converge: " + "; ".join(
            m.message for m in (result.turnout_mixture, result.vote_mixture) if not m.converged)
        rows.append({**row, "fraud_percent": result.fraud_percent, "se": result.se,
                     "excess_over_null": result.excess_over_null, "ci_low": result.ci_low, "ci_high": result.ci_high,
                     "pvalue": result.pvalue, "pvalue_min": result.pvalue_min, "null_draws": result.null_draws,
                     "converged": result.converged, "n": result.n, "excluded": int(sum(result.excluded.values())),
                     "note": note})
    results = pd.DataFrame(rows, columns=["region", "region_name", "fraud_percent", "se", "excess_over_null", "ci_low",
                                          "ci_high", "pvalue", "pvalue_min", "null_draws", "converged", "n",
                                          "excluded", "note"])
    results.insert(results.columns.get_loc("pvalue") + 1, "qvalue", np.nan)
    ok = results["pvalue"].notna()
    if ok.any():
        results.loc[ok, "qvalue"] = multipletests(results.loc[ok, "pvalue"].to_numpy(), method="fdr_bh")[1]
    return SpikesTable(results=results, level=level, candidate=candidate, resamples=int(resamples), seed=seed,
                       details=details)


def spikes_pvalues(election, seed: int, *, level: str = "province", resamples: int = 200) -> pd.Series:
    """Per-region p-values of the spikes test, for ``analysis.calibration`` (name -> callable(election, seed))."""
    table = spikes_table(election, level=level, resamples=resamples, seed=seed).results
    return pd.Series(table["pvalue"].to_numpy(), index=table["region"].to_numpy(), name="spikes")

"""Mebane's positive empirical model: a finite mixture of no, incremental and extreme fraud.

Ferrari, McAlister & Mebane (2018), "Developments in Positive Empirical Models of Election Frauds:
Dimensions and Decisions" (Mebane's eforensics project); R package ``eforensics``, model ``bl``
(binomial-logistic). Each unit i has N_i eligible voters, a_i abstentions and w_i votes for the
leader, and belongs to one of three classes with probabilities pi = (pi_none, pi_incremental,
pi_extreme). With turnout tau and leader support nu:

- no fraud:     a ~ Bin(N, 1 - tau),                 w ~ Bin(N, nu (1 - a / N));
- incremental:  a share iota_m of would-be abstainers is turned into leader votes ("manufactured")
  and a share iota_s of the opponents' votes is moved to the leader ("stolen"), both in (0, k);
- extreme:      the same with chi_m, chi_s in (k, 1);

so a ~ Bin(N, (1 - tau)(1 - iota_m)) and w ~ Bin(N, p_w) with p_w written in terms of the observed
a / N exactly as the package's JAGS model writes it. The fraud magnitudes are split at k = 0.7.

Simplifications relative to the package, stated plainly:
- maximum likelihood (scipy.optimize, several seeded starts) instead of the package's Bayesian
  MCMC (JAGS) with its priors; standard errors from the observed information (numerical Hessian,
  statsmodels ``approx_hess3``) by the delta method, and optional bootstrap intervals over units;
- no covariates: tau, nu, iota and chi are constants (the package allows logistic regressions);
- the package draws each unit's fraud shares as Binomial(N, mu) / N around their means; here each
  unit uses the means themselves (for units of hundreds of voters the draws differ from their
  means by a few percentage points);
- the binomial ``bl`` model, and in place of the package's ``qbl`` (quasi-binomial) a ``bbl``
  model with beta-binomial counts (one precision for abstentions, one for leader votes, shared by
  the classes); no ``rn``. The package itself warns that ``bl`` over-states fraud when counts are
  overdispersed; real precinct counts always are, so with ``bl`` the fractions are upper-biased and
  the likelihood-ratio p-value against "no fraud" is small for clean elections too: p < 0.05 in
  76 of 76 clean synthetic provinces (2 elections of ``turnout_calibration``'s design). ``bbl``
  absorbs overdispersion (tested) but not the differences between a province's kabupaten, which
  the mixture's classes take up without covariates: 30 of 76 clean provinces (39 %), and 53 / 58 /
  72 % with incremental stuffing at f_i = 0.05 / 0.1 / 0.2 (those rates are of the chi-square
  p-value, which is not valid, see below; ``calibration.load_calibration("mebane")`` holds the
  measured table). Neither is a test to report; read the fractions as a description of how the
  data would have to be explained by this model, not as the share of stolen precincts.

The p-value. Under "no fraud" pi_incremental = pi_extreme = 0 lies on the boundary of the
parameter space and the magnitudes iota, chi are then unidentified, so the likelihood ratio does
not follow chi-square(6) (Self & Liang 1987, JASA 82:605; Andrews 2001, Econometrica 69:683).
``pvalue`` is therefore a parametric-bootstrap p-value (McLachlan 1987, Applied Statistics 36:318,
for the number of components of a mixture): ``n_null`` data sets drawn from the fitted no-fraud
model (each unit keeps its N), each refitted by the same procedure, p = (1 + #{LR* >= LR}) /
(n_null + 1), whose smallest attainable value ``min_pvalue`` = 1 / (n_null + 1) is carried. With
``n_null = 0`` (the default: each draw costs a full refit) ``pvalue`` is NaN; the chi-square(6)
value is kept as ``pvalue_chi2`` only for comparison, marked not valid.

Convergence. Every L-BFGS-B fit (the mixture's best start, the no-fraud fit, each bootstrap refit)
is checked (``OptimizeResult.success``); ``converged`` and ``message`` say whether the reported
fit converged, and a fit that did not carries a ``note`` (and its table row a note) instead of
passing silently.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..blas import one_blas_thread
from .._common import prepare_counts, region_seed
from ..errors import InsufficientData, convergence_note
from ..display import frame_html

__all__ = ["MebaneFit", "mebane_fraud", "mebane_table", "mebane_pvalues"]

K_SPLIT = 0.7
_NAMES = ("pi_none", "pi_incremental", "pi_extreme", "tau", "nu", "iota_m", "iota_s", "chi_m", "chi_s")


def _natural(theta: np.ndarray, k: float) -> np.ndarray:
    """Unconstrained theta (8) -> pi (3), tau, nu, iota_m, iota_s (in (0, k)), chi_m, chi_s (in (k, 1))."""
    eta = np.array([0.0, theta[0], theta[1]])
    pi = np.exp(eta - eta.max())
    pi = pi / pi.sum()
    tau, nu = special.expit(theta[2]), special.expit(theta[3])
    iota = k * special.expit(theta[4:6])
    chi = k + (1 - k) * special.expit(theta[6:8])
    return np.concatenate([pi, [tau, nu], iota, chi])


def _log_count(k, n, p, log_comb, phi):
    """log Bin(k; n, p), or log BetaBin(k; n, p phi, (1 - p) phi) when a precision ``phi`` is given."""
    if phi is None:
        return log_comb + k * np.log(p) + (n - k) * np.log1p(-p)
    alpha, beta = p * phi, (1 - p) * phi
    return log_comb + special.betaln(k + alpha, n - k + beta) - special.betaln(alpha, beta)


def _class_loglik(values: np.ndarray, N, a, w, log_comb_a, log_comb_w, dispersion=None) -> np.ndarray:
    """log P(a, w | class) for each unit (rows) and class (columns: none, incremental, extreme).

    ``dispersion`` (phi_a, phi_w): beta-binomial counts with these precisions (model ``bbl``);
    None: binomial counts (``bl``).
    """
    _, _, _, tau, nu, iota_m, iota_s, chi_m, chi_s = values
    phi_a, phi_w = (None, None) if dispersion is None else dispersion
    share_a = a / N
    out = []
    for m, s in ((0.0, 0.0), (iota_m, iota_s), (chi_m, chi_s)):
        p_a = (1 - tau) * (1 - m)
        p_w = nu * (1 - s) / (1 - m) * (1 - m - share_a) + share_a * (m - s) / (1 - m) + s
        p_a = np.clip(p_a, 1e-12, 1 - 1e-12)
        p_w = np.clip(p_w, 1e-12, 1 - 1e-12)
        out.append(_log_count(a, N, p_a, log_comb_a, phi_a) + _log_count(w, N, p_w, log_comb_w, phi_w))
    return np.column_stack(out)


@dataclass(frozen=True, eq=False)
class MebaneFit:
    """Maximum-likelihood fit of the eforensics ``bl`` mixture: fractions, magnitudes, uncertainty."""

    estimates: pd.DataFrame  # parameter, estimate, se, ci_low, ci_high (bootstrap when n_boot > 0)
    loglik: float
    loglik_no_fraud: float
    lr: float
    pvalue: float  # parametric-bootstrap p-value of the LR against no fraud; NaN when n_null = 0
    n: int
    k: float
    n_boot: int
    seed: int
    posterior: np.ndarray = field(repr=False)  # units x classes membership probabilities
    excluded: Mapping[str, int] = field(default_factory=dict)
    null: str = ""
    model: str = "bl"
    pvalue_chi2: float = np.nan  # LR referred to chi-square(6): NOT VALID (null on the boundary), for comparison
    n_null: int = 0  # parametric-bootstrap draws behind ``pvalue``
    min_pvalue: float = np.nan  # 1 / (n_null + 1): the smallest p-value the bootstrap can give
    null_lr: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)  # LR of each bootstrap draw
    null_not_converged: int = 0  # bootstrap refits whose optimiser did not report success
    converged: bool = True  # the mixture's and the no-fraud model's fits both reported success
    message: str = ""  # the optimisers' messages where a fit did not converge
    note: str = ""

    @property
    def pi_incremental(self) -> float:
        return float(self.estimates.set_index("parameter").at["pi_incremental", "estimate"])

    @property
    def pi_extreme(self) -> float:
        return float(self.estimates.set_index("parameter").at["pi_extreme", "estimate"])

    @property
    def statistic(self) -> float:
        return self.lr

    def to_frame(self) -> pd.DataFrame:
        return self.estimates.copy()

    def _repr_html_(self) -> str:
        if self.n_null:
            p = (f"parametric-bootstrap p = {self.pvalue:.3g} ({self.n_null} draws, smallest attainable "
                 f"{self.min_pvalue:.3g})")
        else:
            p = "no valid p-value (no parametric-bootstrap draws; the chi-square(6) value is not valid)"
        title = (f"Positive empirical model (eforensics mixture, {self.model} counts, k = {self.k:g}), maximum likelihood, n = {self.n}: "
                 f"LR against no fraud {self.lr:.1f}, {p}")
        notes = "".join(f"<p>{html.escape(text)}</p>\n" for text in (self.note,) if text)
        return f"<p><b>{html.escape(title)}</b></p>\n" + notes + frame_html(self.estimates)


def _prepare(N, a, w):
    def rules(N, a, w):
        return [("N = 0", N == 0), ("a + w > N", a + w > N)]

    prepared = prepare_counts({"N": N, "a": a, "w": w}, rules)
    return prepared.kept("N"), prepared.kept("a"), prepared.kept("w"), prepared.excluded


MODELS = ("bl", "bbl")


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be 'bl' or 'bbl', not {model!r}")


def _log_combs(N, a, w) -> tuple[np.ndarray, np.ndarray]:
    """log C(N, a) and log C(N, w): the binomial coefficients every likelihood here shares."""
    log_n = special.gammaln(N + 1)
    return (log_n - special.gammaln(a + 1) - special.gammaln(N - a + 1),
            log_n - special.gammaln(w + 1) - special.gammaln(N - w + 1))


def _fit(N, a, w, k, rng, starts: int, theta0=None, model: str = "bl", maxiter: int = 15000):
    """Best of ``starts`` L-BFGS-B fits; theta is the 8 mixture parameters, then (bbl) log phi_a, log phi_w.

    Returns theta, the log-likelihood, the negative log-likelihood function, the class posteriors
    and the best start's ``OptimizeResult`` (its ``success`` and ``message`` are the convergence check).
    """
    log_comb_a, log_comb_w = _log_combs(N, a, w)
    extra = 2 if model == "bbl" else 0

    def classes(theta):
        dispersion = None if not extra else tuple(np.exp(theta[8:10]))
        values = _natural(theta[:8], k)
        return _class_loglik(values, N, a, w, log_comb_a, log_comb_w, dispersion) + np.log(values[:3])

    def negloglik(theta):
        comp = classes(theta)
        top = comp.max(axis=1)
        return -float(np.sum(top + np.log(np.exp(comp - top[:, None]).sum(axis=1))))

    tau0 = special.logit(np.clip(1 - a.sum() / N.sum(), 0.01, 0.99))
    nu0 = special.logit(np.clip(w.sum() / max((N - a).sum(), 1), 0.01, 0.99))
    phi0 = [np.log(100.0)] * extra
    inits = [] if theta0 is None else [np.asarray(theta0, float)]
    inits.append(np.array([-2.0, -4.0, tau0, nu0, 0.0, 0.0, 0.0, 0.0, *phi0]))
    while len(inits) < starts:
        inits.append(np.concatenate([rng.normal(-2, 1.5, 2), [tau0 + rng.normal(0, 0.3), nu0 + rng.normal(0, 0.3)],
                                     rng.normal(0, 1.5, 4), np.log(100.0) + rng.normal(0, 1, extra)]))
    # Precisions from 1 (counts nearly uniform) to 1e7 (binomial for any TPS).
    bounds = [(-15, 15)] * 8 + [(0.0, np.log(1e7))] * extra
    best = None
    with one_blas_thread():  # L-BFGS-B's BLAS calls on 8 parameters: threads only cost hand-offs
        for theta in inits:
            res = optimize.minimize(negloglik, theta, method="L-BFGS-B", bounds=bounds,
                                    options={"maxiter": int(maxiter)})
            if best is None or res.fun < best.fun:
                best = res
    comp = classes(best.x)
    post = np.exp(comp - comp.max(axis=1)[:, None])
    post /= post.sum(axis=1, keepdims=True)
    return best.x, -float(best.fun), negloglik, post, best


@dataclass(frozen=True)
class _NoFraud:
    """The no-fraud model's fit: maximum log-likelihood, parameters, convergence."""

    loglik: float
    tau: float
    nu: float
    dispersion: tuple[float, float] | None  # (phi_a, phi_w) for bbl
    converged: bool
    message: str


def _no_fraud_fit(N, a, w, k: float, model: str, maxiter: int = 15000) -> _NoFraud:
    """Maximum log-likelihood of the no-fraud model (pi_none = 1): the mixture's first class alone.

    With ``bl`` tau and nu are in closed form (always converged); with ``bbl`` the best of two
    L-BFGS-B starts (and the binomial limit), converged when the start that gave the maximum did.
    """
    tau0 = 1 - a.sum() / N.sum()
    nu0 = w.sum() / (N - a).sum()
    log_combs = _log_combs(N, a, w)

    def loglik(tau, nu, dispersion=None):
        values = np.array([1.0, 0.0, 0.0, tau, nu, 0.0, 0.0, k, k])  # magnitudes unused by the first class
        return float(_class_loglik(values, N, a, w, *log_combs, dispersion)[:, 0].sum())

    if model == "bl":  # tau and nu in closed form
        return _NoFraud(loglik(tau0, nu0), float(tau0), float(nu0), None, True, "closed form")
    centre = [special.logit(np.clip(tau0, 1e-6, 1 - 1e-6)), special.logit(np.clip(nu0, 1e-6, 1 - 1e-6))]
    limit = loglik(tau0, nu0, (1e7, 1e7))
    best = _NoFraud(limit, float(tau0), float(nu0), (1e7, 1e7), True, "binomial limit")
    # From overdispersed counts and from near the binomial limit: the likelihood is flat in a large
    # precision, and one start stopped short of the binomial model's own maximum, which this nests.
    with one_blas_thread():
        for log_phi in (np.log(100.0), np.log(1e6)):
            res = optimize.minimize(lambda t: -loglik(*special.expit(t[:2]), tuple(np.exp(t[2:]))),
                                    np.array([*centre, log_phi, log_phi]), method="L-BFGS-B",
                                    bounds=[(-15, 15), (-15, 15), (0.0, np.log(1e7)), (0.0, np.log(1e7))],
                                    options={"maxiter": int(maxiter)})
            if -float(res.fun) > best.loglik:
                tau, nu = special.expit(res.x[:2])
                best = _NoFraud(-float(res.fun), float(tau), float(nu), tuple(np.exp(res.x[2:])), bool(res.success),
                                str(res.message))
    return best


def _draw_no_fraud(rng: np.random.Generator, N: np.ndarray, fit: _NoFraud) -> tuple[np.ndarray, np.ndarray]:
    """Abstentions and leader votes drawn from the fitted no-fraud model, each unit keeping its N.

    a ~ Bin(N, 1 - tau), w ~ Bin(N, nu (1 - a / N)) (the first class of ``_class_loglik``); with
    ``bbl`` the same means with beta-binomial counts of precisions (phi_a, phi_w).
    """
    sizes = N.astype(np.int64)
    p_a = np.full(len(N), 1 - fit.tau)
    if fit.dispersion is not None:
        phi_a, phi_w = fit.dispersion
        p_a = rng.beta(p_a * phi_a, (1 - p_a) * phi_a)
    a = rng.binomial(sizes, np.clip(p_a, 0, 1))
    p_w = fit.nu * (1 - a / N)
    if fit.dispersion is not None:
        p_w = rng.beta(np.maximum(p_w * phi_w, 1e-12), np.maximum((1 - p_w) * phi_w, 1e-12))
    w = rng.binomial(sizes, np.clip(p_w, 0, 1))
    return a.astype(float), w.astype(float)


def mebane_fraud(N, a, w, *, k: float = K_SPLIT, seed: int = 0, starts: int = 10, n_boot: int = 0,
                 level: float = 0.95, model: str = "bl", n_null: int = 0, null_seed: int | None = None,
                 null_starts: int | None = None, maxiter: int = 15000) -> MebaneFit:
    """Fractions of units with no / incremental / extreme fraud under the eforensics mixture model.

    Ferrari, McAlister & Mebane (2018); R package ``eforensics`` (k = 0.7). ``model="bl"``: the
    package's binomial-logistic counts; ``"bbl"``: beta-binomial counts with one precision for
    abstentions and one for leader votes, shared by the classes (the overdispersion the package's
    ``qbl`` model is for; see the module docstring). ``N`` eligible voters, ``a`` abstentions
    (N - voters), ``w`` votes for the leader, per unit. Fitted by
    maximum likelihood from ``starts`` seeded starting points; ``se`` by the delta method on the
    observed information; with ``n_boot`` > 0, percentile intervals from refits on units resampled
    with replacement (else Wald intervals, clipped to the parameter's range).

    The likelihood ratio against the no-fraud model (pi_none = 1) gets a parametric-bootstrap
    p-value (module docstring; McLachlan 1987): ``n_null`` data sets from the fitted no-fraud
    model, seeded by ``null_seed`` (default: derived from ``seed``), each refitted with
    ``null_starts`` starts (default ``starts``); ``pvalue`` is NaN when ``n_null`` is 0.
    ``pvalue_chi2`` refers the LR to chi-square(6) and is NOT a valid p-value (the null lies on the
    boundary and iota, chi are unidentified under it). ``maxiter`` bounds each L-BFGS-B fit;
    ``converged`` / ``message`` / ``note`` report a fit that did not converge. Raises
    ``InsufficientData`` (a ``ValueError``) with fewer than 10 usable units.
    """
    from statsmodels.tools.numdiff import approx_fprime, approx_hess3

    _check_model(model)
    N, a, w, excluded = _prepare(N, a, w)
    n = len(N)
    if n < 10:
        raise InsufficientData(f"too few usable units for the mixture: {n} (excluded: {excluded})")
    if int(n_null) < 0:
        raise ValueError(f"n_null must be >= 0, got {n_null!r}")
    rng = np.random.default_rng(seed)
    theta, ll, negloglik, post, result = _fit(N, a, w, k, rng, starts, model=model, maxiter=maxiter)
    names = _NAMES + (("phi_a", "phi_w") if model == "bbl" else ())

    def natural(t):
        return np.concatenate([_natural(t[:8], k), np.exp(t[8:])])

    values = natural(theta)
    try:
        cov_theta = np.linalg.pinv(approx_hess3(theta, negloglik))
        jac = approx_fprime(theta, natural, centered=True)
        se = np.sqrt(np.clip(np.diag(jac @ cov_theta @ jac.T), 0, None))
    except (np.linalg.LinAlgError, ValueError):
        se = np.full(len(values), np.nan)
    tail = (1 - level) / 2
    if n_boot > 0:
        draws = np.empty((int(n_boot), len(values)))
        for b in range(int(n_boot)):
            pick = rng.integers(0, n, n)
            theta_b, *_ = _fit(N[pick], a[pick], w[pick], k, rng, starts=3, theta0=theta, model=model,
                               maxiter=maxiter)
            draws[b] = natural(theta_b)
        low, high = np.quantile(draws, [tail, 1 - tail], axis=0)
        interval = "bootstrap percentile"
    else:
        zq = stats.norm.ppf(1 - tail)
        extra = len(values) - 9
        lower_bound = np.array([0, 0, 0, 0, 0, 0, 0, k, k] + [1.0] * extra)
        upper_bound = np.array([1, 1, 1, 1, 1, k, k, 1, 1] + [1e7] * extra)
        low, high = np.clip(values - zq * se, lower_bound, upper_bound), np.clip(values + zq * se, lower_bound, upper_bound)
        interval = "Wald (delta method)"
    no_fraud = _no_fraud_fit(N, a, w, k, model, maxiter=maxiter)
    ll0 = no_fraud.loglik
    lr = max(2 * (ll - ll0), 0.0)
    estimates = pd.DataFrame({"parameter": names, "estimate": values, "se": se, "ci_low": low, "ci_high": high,
                              "interval": interval})
    converged = bool(result.success) and no_fraud.converged
    failed = [f"mixture: {result.message}"] * (not result.success) + [f"no-fraud model: {no_fraud.message}"] * (
        not no_fraud.converged)
    message = "; ".join(str(m) for m in failed)
    notes = [convergence_note("the maximum-likelihood fit", message)] if not converged else []
    n_null = int(n_null)
    null_lr = np.zeros(0)
    null_not_converged = 0
    if n_null:
        null_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 1]) if null_seed is None else null_seed)
        null_lr = np.empty(n_null)
        for b in range(n_null):
            a_b, w_b = _draw_no_fraud(null_rng, N, no_fraud)
            _, ll_b, _, _, res_b = _fit(N, a_b, w_b, k, null_rng, int(null_starts or starts), model=model,
                                        maxiter=maxiter)
            fit0_b = _no_fraud_fit(N, a_b, w_b, k, model, maxiter=maxiter)
            null_lr[b] = max(2 * (ll_b - fit0_b.loglik), 0.0)
            null_not_converged += int(not (res_b.success and fit0_b.converged))
        pvalue = float((1 + np.sum(null_lr >= lr - 1e-9)) / (n_null + 1))
        if null_not_converged:
            notes.append(f"{null_not_converged} of {n_null} bootstrap refits did not converge (their LR kept)")
    else:
        pvalue = np.nan
    counts = "binomial" if model == "bl" else "beta-binomial"
    tested = (f"parametric bootstrap of the LR, {n_null} draws from the fitted no-fraud model "
              f"(smallest attainable p {1 / (n_null + 1):.3g})" if n_null else
              "no valid p-value (n_null = 0; the chi-square(6) reference is not valid: null on the boundary)")
    null = (f"no fraud (pi_none = 1), {counts} likelihoods (model {model}); {tested}; "
            f"{starts} starts, seed {seed}")
    return MebaneFit(estimates=estimates, loglik=ll, loglik_no_fraud=ll0, lr=lr, pvalue=pvalue,
                     n=n, k=k, n_boot=int(n_boot), seed=seed, posterior=post, excluded=excluded, null=null, model=model,
                     pvalue_chi2=float(stats.chi2.sf(lr, 6)), n_null=n_null,
                     min_pvalue=1 / (n_null + 1) if n_null else np.nan, null_lr=null_lr,
                     null_not_converged=null_not_converged, converged=converged, message=message,
                     note="; ".join(notes))


def _election_counts(election, mask, leader):
    registered = election.column("registered")[mask]
    voters = election.column("voters")[mask]
    return registered, registered - voters, election.column(leader)[mask]


def mebane_table(election, *, level: str | None = None, leader: str | None = None, seed: int = 0,
                 starts: int = 5, min_units: int = 50, model: str = "bl", n_null: int = 0,
                 null_starts: int | None = None, maxiter: int = 15000) -> pd.DataFrame:
    """``mebane_fraud`` per region of ``level`` (N = registered, a = registered - voters, w = leader), BH q-values.

    ``pvalue`` is the parametric-bootstrap p-value (``n_null`` draws per region; NaN when 0) with
    ``min_pvalue`` beside it; ``pvalue_chi2`` is the chi-square(6) reference, not a valid p-value.
    A region whose fit did not converge keeps its numbers with ``converged`` False and a note, and
    is left out of the q-values. Only ``InsufficientData`` (too few usable units) becomes a note;
    any other error propagates.
    """
    from statsmodels.stats.multitest import multipletests

    from .spikes import _winner

    _check_model(model)  # before the loop: a wrong model is the caller's error, not a region's note
    level = level or election.levels[0]
    leader = leader or _winner(election)
    regions = election.table[level].astype(str).to_numpy()
    empty = {"pi_incremental": np.nan, "pi_extreme": np.nan, "lr": np.nan, "pvalue": np.nan, "pvalue_chi2": np.nan,
             "min_pvalue": np.nan, "converged": pd.NA}
    rows = []
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        row = {"region": region}
        try:
            fit = mebane_fraud(*_election_counts(election, mask, leader), seed=region_seed(seed, region), starts=starts,
                               model=model, n_null=n_null, null_starts=null_starts, maxiter=maxiter)
        except InsufficientData as err:
            rows.append({**row, **empty, "n": 0, "note": str(err)})
            continue
        if fit.n < min_units:
            rows.append({**row, **empty, "n": fit.n, "note": f"fewer than {min_units} usable units"})
            continue
        rows.append({**row, "pi_incremental": fit.pi_incremental, "pi_extreme": fit.pi_extreme, "lr": fit.lr,
                     "pvalue": fit.pvalue, "pvalue_chi2": fit.pvalue_chi2, "min_pvalue": fit.min_pvalue,
                     "converged": fit.converged, "n": fit.n, "note": fit.note})
    table = pd.DataFrame(rows, columns=["region", "pi_incremental", "pi_extreme", "lr", "pvalue", "pvalue_chi2",
                                        "min_pvalue", "converged", "n", "note"])
    table["pvalue"] = table["pvalue"].astype(float)
    table["qvalue"] = np.nan
    ok = table["pvalue"].notna() & (table["converged"] == True)  # noqa: E712 (pd.NA-safe)
    if ok.any():
        table.loc[ok, "qvalue"] = multipletests(table.loc[ok, "pvalue"].to_numpy(), method="fdr_bh")[1]
    return table


def mebane_pvalues(election, seed: int, *, level: str = "province", model: str = "bl", n_null: int = 0,
                   which: str = "bootstrap", starts: int = 3, null_starts: int | None = None) -> pd.Series:
    """Per-region p-values, for ``analysis.calibration`` (name -> callable(election, seed)).

    ``which="bootstrap"``: the parametric-bootstrap p-value (needs ``n_null`` > 0); ``"chi2"``: the
    chi-square(6) reference, which is not a valid p-value (measured to show how far off it is).
    """
    if which not in ("bootstrap", "chi2"):
        raise ValueError(f"which must be 'bootstrap' or 'chi2', not {which!r}")
    if which == "bootstrap" and int(n_null) < 1:
        raise ValueError("which='bootstrap' needs n_null >= 1 parametric-bootstrap draws")
    table = mebane_table(election, level=level, seed=seed, starts=starts, model=model,
                         n_null=n_null if which == "bootstrap" else 0, null_starts=null_starts)
    column = "pvalue" if which == "bootstrap" else "pvalue_chi2"
    return pd.Series(table[column].to_numpy(dtype=float), index=table["region"].to_numpy(), name="mebane")

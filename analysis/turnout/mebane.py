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
  72 % with incremental stuffing at f_i = 0.05 / 0.1 / 0.2. Neither is a test to report; read the
  fractions as a description of how the data would have to be explained by this model, not as the
  share of stolen precincts.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..blas import one_blas_thread

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
    pvalue: float  # likelihood ratio against no fraud, chi-square with 6 df (see docstring caveats)
    n: int
    k: float
    n_boot: int
    seed: int
    posterior: np.ndarray = field(repr=False)  # units x classes membership probabilities
    excluded: Mapping[str, int] = field(default_factory=dict)
    null: str = ""
    model: str = "bl"

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
        title = (f"Positive empirical model (eforensics mixture, {self.model} counts, k = {self.k:g}), maximum likelihood, n = {self.n}: "
                 f"LR against no fraud {self.lr:.1f}, p = {self.pvalue:.3g}")
        return f"<p><b>{html.escape(title)}</b></p>\n" + self.estimates.to_html(escape=True, index=False)


def _prepare(N, a, w):
    from .spikes import _as_float

    N, a, w = _as_float(N, "N"), _as_float(a, "a"), _as_float(w, "w")
    if not len(N) == len(a) == len(w):
        raise ValueError(f"arrays differ in length: N={len(N)}, a={len(a)}, w={len(w)}")
    stacked = np.vstack([N, a, w])
    reasons = [
        ("missing count", np.isnan(stacked).any(axis=0)),
        ("negative or fractional count", ((stacked < 0) | (stacked != np.round(stacked))).any(axis=0)),
        ("N = 0", N == 0),
        ("a + w > N", a + w > N),
    ]
    used = np.ones(len(N), dtype=bool)
    excluded = {}
    for reason, mask in reasons:
        hit = used & mask
        excluded[reason] = int(hit.sum())
        used &= ~hit
    return N[used], a[used], w[used], excluded


MODELS = ("bl", "bbl")


def _check_model(model: str) -> None:
    if model not in MODELS:
        raise ValueError(f"model must be 'bl' or 'bbl', not {model!r}")


def _log_combs(N, a, w) -> tuple[np.ndarray, np.ndarray]:
    """log C(N, a) and log C(N, w): the binomial coefficients every likelihood here shares."""
    log_n = special.gammaln(N + 1)
    return (log_n - special.gammaln(a + 1) - special.gammaln(N - a + 1),
            log_n - special.gammaln(w + 1) - special.gammaln(N - w + 1))


def _fit(N, a, w, k, rng, starts: int, theta0=None, model: str = "bl"):
    """Best of ``starts`` L-BFGS-B fits; theta is the 8 mixture parameters, then (bbl) log phi_a, log phi_w."""
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
            res = optimize.minimize(negloglik, theta, method="L-BFGS-B", bounds=bounds)
            if best is None or res.fun < best.fun:
                best = res
    comp = classes(best.x)
    post = np.exp(comp - comp.max(axis=1)[:, None])
    post /= post.sum(axis=1, keepdims=True)
    return best.x, -float(best.fun), negloglik, post


def _no_fraud_loglik(N, a, w, k: float, model: str) -> float:
    """Maximum log-likelihood of the no-fraud model (pi_none = 1): the mixture's first class alone."""
    tau0 = 1 - a.sum() / N.sum()
    nu0 = w.sum() / (N - a).sum()
    log_combs = _log_combs(N, a, w)

    def loglik(tau, nu, dispersion=None):
        values = np.array([1.0, 0.0, 0.0, tau, nu, 0.0, 0.0, k, k])  # magnitudes unused by the first class
        return float(_class_loglik(values, N, a, w, *log_combs, dispersion)[:, 0].sum())

    if model == "bl":  # tau and nu in closed form
        return loglik(tau0, nu0)
    centre = [special.logit(np.clip(tau0, 1e-6, 1 - 1e-6)), special.logit(np.clip(nu0, 1e-6, 1 - 1e-6))]
    best = -np.inf
    # From overdispersed counts and from near the binomial limit: the likelihood is flat in a large
    # precision, and one start stopped short of the binomial model's own maximum, which this nests.
    with one_blas_thread():
        for log_phi in (np.log(100.0), np.log(1e6)):
            res = optimize.minimize(lambda t: -loglik(*special.expit(t[:2]), tuple(np.exp(t[2:]))),
                                    np.array([*centre, log_phi, log_phi]), method="L-BFGS-B",
                                    bounds=[(-15, 15), (-15, 15), (0.0, np.log(1e7)), (0.0, np.log(1e7))])
            best = max(best, -float(res.fun))
    return max(best, loglik(tau0, nu0, (1e7, 1e7)))


def mebane_fraud(N, a, w, *, k: float = K_SPLIT, seed: int = 0, starts: int = 10, n_boot: int = 0,
                 level: float = 0.95, model: str = "bl") -> MebaneFit:
    """Fractions of units with no / incremental / extreme fraud under the eforensics mixture model.

    Ferrari, McAlister & Mebane (2018); R package ``eforensics`` (k = 0.7). ``model="bl"``: the
    package's binomial-logistic counts; ``"bbl"``: beta-binomial counts with one precision for
    abstentions and one for leader votes, shared by the classes (the overdispersion the package's
    ``qbl`` model is for; see the module docstring). ``N`` eligible voters, ``a`` abstentions
    (N - voters), ``w`` votes for the leader, per unit. Fitted by
    maximum likelihood from ``starts`` seeded starting points; ``se`` by the delta method on the
    observed information; with ``n_boot`` > 0, percentile intervals from refits on units resampled
    with replacement (else Wald intervals, clipped to the parameter's range). The likelihood ratio
    against the no-fraud model (pi_none = 1) is referred to chi-square(6): only indicative, since
    iota and chi are unidentified under that null (with ``bl`` also since it ignores overdispersion).
    """
    from statsmodels.tools.numdiff import approx_fprime, approx_hess3

    _check_model(model)
    N, a, w, excluded = _prepare(N, a, w)
    n = len(N)
    if n < 10:
        raise ValueError(f"too few usable units for the mixture: {n} (excluded: {excluded})")
    rng = np.random.default_rng(seed)
    theta, ll, negloglik, post = _fit(N, a, w, k, rng, starts, model=model)
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
            theta_b, *_ = _fit(N[pick], a[pick], w[pick], k, rng, starts=3, theta0=theta, model=model)
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
    ll0 = _no_fraud_loglik(N, a, w, k, model)
    lr = max(2 * (ll - ll0), 0.0)
    estimates = pd.DataFrame({"parameter": names, "estimate": values, "se": se, "ci_low": low, "ci_high": high,
                              "interval": interval})
    counts = "binomial" if model == "bl" else "beta-binomial"
    null = (f"no fraud (pi_none = 1), {counts} likelihoods (model {model}); LR referred to chi-square(6); "
            f"{starts} starts, seed {seed}")
    return MebaneFit(estimates=estimates, loglik=ll, loglik_no_fraud=ll0, lr=lr, pvalue=float(stats.chi2.sf(lr, 6)),
                     n=n, k=k, n_boot=int(n_boot), seed=seed, posterior=post, excluded=excluded, null=null, model=model)


def _election_counts(election, mask, leader):
    registered = election.column("registered")[mask]
    voters = election.column("voters")[mask]
    return registered, registered - voters, election.column(leader)[mask]


def mebane_table(election, *, level: str | None = None, leader: str | None = None, seed: int = 0,
                 starts: int = 5, min_units: int = 50, model: str = "bl") -> pd.DataFrame:
    """``mebane_fraud`` per region of ``level`` (N = registered, a = registered - voters, w = leader), BH q-values."""
    from statsmodels.stats.multitest import multipletests

    from .spikes import _region_seed, _winner

    _check_model(model)  # before the loop, whose ValueError is a region's note
    level = level or election.levels[0]
    leader = leader or _winner(election)
    regions = election.table[level].astype(str).to_numpy()
    rows = []
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        row = {"region": region}
        try:
            fit = mebane_fraud(*_election_counts(election, mask, leader), seed=_region_seed(seed, region), starts=starts,
                               model=model)
        except ValueError as err:
            rows.append({**row, "pi_incremental": np.nan, "pi_extreme": np.nan, "lr": np.nan, "pvalue": np.nan,
                         "n": 0, "note": str(err)})
            continue
        if fit.n < min_units:
            rows.append({**row, "pi_incremental": np.nan, "pi_extreme": np.nan, "lr": np.nan, "pvalue": np.nan,
                         "n": fit.n, "note": f"fewer than {min_units} usable units"})
            continue
        rows.append({**row, "pi_incremental": fit.pi_incremental, "pi_extreme": fit.pi_extreme, "lr": fit.lr,
                     "pvalue": fit.pvalue, "n": fit.n, "note": ""})
    table = pd.DataFrame(rows)
    table["qvalue"] = np.nan
    ok = table["pvalue"].notna()
    if ok.any():
        table.loc[ok, "qvalue"] = multipletests(table.loc[ok, "pvalue"].to_numpy(), method="fdr_bh")[1]
    return table


def mebane_pvalues(election, seed: int, *, level: str = "province", model: str = "bl") -> pd.Series:
    """Per-region likelihood-ratio p-values, for ``analysis.calibration`` (name -> callable(election, seed))."""
    table = mebane_table(election, level=level, seed=seed, starts=3, model=model)
    return pd.Series(table["pvalue"].to_numpy(), index=table["region"].to_numpy(), name="mebane")

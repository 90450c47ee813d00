"""Local outliers: each polling station against its neighbours in the same desa and kecamatan.

Neighbouring TPS share demography, so a TPS whose turnout or candidate share sits far from its
neighbours' is worth a look (methods.md, section 2, "Local outliers"). Two scores per TPS and
variable (turnout, and each candidate's share of valid votes):

- a robust z on the logit scale: the TPS's empirical logit minus the leave-one-out median of its
  neighbours' logits, over sqrt((tau^2 + binomial noise) x (1 + pi / (2 m))); tau^2 is the latent
  spread between neighbouring TPS, set per scaling region and neighbourhood level (desa,
  kecamatan, ...; groups under 50 TPS share their level's value) so that the median |z| is that
  of a standard normal (0.6745); pi / (2 m) is the variance of a median of m neighbours.
  p = 2 Phi(-|z|). Its tails are heavier than normal's (small counts make the empirical logit's
  noise non-normal): on clean synthetic elections P(|z| > 2.58) is up to 2 times 0.01 and
  P(|z| > 3.29) up to 10 times 0.001, depending on the variable and the election (measured on
  seeds 7, 11 and 12; the tests check the first), so z ranks and describes, and flags
  (``q``, the region summary) use the beta-binomial p; ``q_z`` is in the table, not in ``top()``
  (224 of 205,039 TPS of a clean synthetic election reach q_z <= 0.05).
- a beta-binomial model: count ~ BetaBinomial(size, mu, phi), logit mu = b0 + logit(pooled
  neighbour proportion, leave-one-out), fitted per scaling region by maximum likelihood with
  statsmodels ``GenericLikelihoodModel`` (statsmodels has no beta-binomial family in GLM or in
  ``discrete``; GenericLikelihoodModel is its tool for a custom likelihood, and gives standard
  errors). p = 2 x the smaller exact tail of the fitted beta-binomial at the observed count.

Neighbours: the TPS's own ``fine`` group (desa / village) when it has at least ``min_neighbours``
other usable TPS, else its ``coarse`` group (kecamatan / district), else the levels between that
and the scaling region (kabupaten); when none has enough, the finest with at least one other TPS;
a TPS alone in all of them is not tested (counted in ``excluded``). The level used is in the
table. The scaling region itself is never the neighbourhood: a whole kabupaten that votes unlike
its province is not a local outlier. Per TPS, the p-values of the V variables are combined by Bonferroni
(V x the smallest), and Benjamini-Hochberg q-values are taken across all TPS.

A flag is a statistical irregularity worth a look at the form, not a finding: an OCR misreading,
a data-entry slip, a re-vote (PSU), a TPS serving a special population (a hospital, a prison, a
campus, a boarding school), or a real bloc vote all put a TPS far from its neighbours.
"""

from __future__ import annotations

import html
import re
import warnings
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from ..blas import one_blas_thread
from ..errors import convergence_note
from ..display import frame_html

__all__ = ["LocalOutliers", "local_outliers", "outlier_pvalues", "sirekap_url", "betabinom_two_sided"]

#: Sirekap's human page of a TPS (presidential count), from its 13-digit code.
SIREKAP_PAGE = "https://pemilu2024.kpu.go.id/pilpres/hitung-suara/{p}/{k}/{c}/{d}/{tps}"
_TPS_CODE = re.compile(r"^[0-9]{13}$")
_MAD_Z = 0.6744897501960817  # median |Z| of a standard normal


def sirekap_url(unit_id: str) -> str | None:
    """The Sirekap page of a TPS from its 13-digit code; None for any other unit id."""
    unit_id = str(unit_id)
    if not _TPS_CODE.match(unit_id):
        return None
    return SIREKAP_PAGE.format(p=unit_id[:2], k=unit_id[:4], c=unit_id[:6], d=unit_id[:10], tps=unit_id)


# ------------------------------------------------------------------------------------ kernels
def _loo_median(x: np.ndarray, group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median of the other members of each unit's group (NaN when alone), and their number."""
    order = np.lexsort((x, group))
    g_sorted, s = group[order], x[order]
    size = np.bincount(group)
    start = np.concatenate([[0], np.cumsum(size)[:-1]])
    pos = np.empty(len(x), dtype=np.int64)
    pos[order] = np.arange(len(x))
    g = group
    rank = pos - start[g]
    m = size[g] - 1  # neighbours
    lo = np.maximum((m - 1) // 2, 0)
    hi = np.maximum(m // 2, 0)
    # j-th value of the others: skip the unit itself.
    j1 = start[g] + lo + (lo >= rank)
    j2 = start[g] + hi + (hi >= rank)
    j1 = np.minimum(j1, len(x) - 1)
    j2 = np.minimum(j2, len(x) - 1)
    med = np.where(m > 0, 0.5 * (s[j1] + s[j2]), np.nan)
    return med, m


def betabinom_two_sided(count, size, a, b, *, exact_beyond: float = 2.0) -> np.ndarray:
    """Two-sided p-value 2 x min(P(X <= count), P(X >= count)), capped at 1, X ~ BetaBinomial(size, a, b).

    Exact for every unit more than ``exact_beyond`` standard deviations from its mean: the tail
    on the count's side is summed term by term with the pmf ratio recursion, vectorised over
    units, until the next term is negligible (scipy's ``betabinom.cdf`` takes ~0.5 ms per unit,
    minutes on 800,000 TPS). Units closer to their mean (p-values above ~0.03, never near a
    flag) get the normal approximation with continuity correction (measured against scipy: never
    below the exact value where that is under 0.02; down to 0.7 x it between 0.02 and 0.1); ``exact_beyond=0`` makes
    every p-value exact, at several times the cost.
    """
    count = np.asarray(count, dtype=float)
    size = np.asarray(size, dtype=float)
    a = np.broadcast_to(np.asarray(a, dtype=float), count.shape)
    b = np.broadcast_to(np.asarray(b, dtype=float), count.shape)
    mu = a / (a + b)
    sd = np.sqrt(size * mu * (1 - mu) * (a + b + size) / (a + b + 1))
    z = (np.abs(count - size * mu) - 0.5) / np.where(sd > 0, sd, np.inf)
    out = np.minimum(1.0, 2 * stats.norm.sf(np.maximum(z, 0.0)))
    far = np.flatnonzero(z >= exact_beyond) if exact_beyond > 0 else np.arange(len(count))
    c, n, aa, bb = count[far], size[far], a[far], b[far]
    log_pmf = (special.gammaln(n + 1) - special.gammaln(c + 1) - special.gammaln(n - c + 1)
               + special.betaln(c + aa, n - c + bb) - special.betaln(aa, bb))
    term = np.exp(log_pmf)
    at_count = term.copy()
    tail = term.copy()
    down = c <= n * aa / (aa + bb)  # the count's side of the mean
    k = c.copy()
    active = np.flatnonzero(np.where(down, k > 0, k < n) & (term > 0))
    while active.size:
        kk, nn, a_, b_, dd = k[active], n[active], aa[active], bb[active], down[active]
        # pmf(k - 1) / pmf(k) = k (n - k + b) / ((n - k + 1) (k - 1 + a)); the upward ratio likewise.
        ratio = np.where(dd, kk * (nn - kk + b_) / ((nn - kk + 1) * (kk - 1 + a_)),
                         (nn - kk) * (kk + a_) / ((kk + 1) * (nn - kk - 1 + b_)))
        term[active] *= ratio
        tail[active] += term[active]
        k[active] = kk + np.where(dd, -1, 1)
        more = np.where(dd, k[active] > 0, k[active] < n[active]) & (term[active] > 1e-17 * tail[active])
        active = active[more]
    # Near the centre of a skewed law the side of the mean is not always the smaller tail.
    other = np.maximum(1.0 - tail + at_count, 0.0)
    out[far] = np.minimum(1.0, 2 * np.minimum(tail, other))
    return out


def _robust_scale(residual, noise, shrink, region) -> np.ndarray:
    """Latent variance tau^2 per scaling region such that median |z| = 0.6745 (0 if noise already explains it)."""
    tau2 = np.zeros(region.max() + 1 if len(region) else 0)
    for r in np.unique(region):
        idx = region == r
        res, nz, sh = np.abs(residual[idx]), noise[idx], shrink[idx]
        ok = np.isfinite(res)
        res, nz, sh = res[ok], nz[ok], sh[ok]
        if len(res) < 5:
            continue

        def excess(t2):
            return float(np.median(res / np.sqrt((t2 + nz) * sh))) - _MAD_Z

        if excess(0.0) <= 0:
            continue
        upper = 1.0
        while excess(upper) > 0 and upper < 1e6:
            upper *= 4
        tau2[r] = optimize.brentq(excess, 0.0, upper, xtol=1e-10)
    return tau2


def _bb_fit(count, size, offset, seed: int, max_units: int = 3000, maxiter: int = 200):
    """(b0, log phi) of BetaBinomial(size, expit(b0 + offset), phi) by statsmodels' GenericLikelihoodModel.

    Returns params, their standard errors, whether BFGS converged (statsmodels' ``mle_retvals``)
    and, where it did not, why.
    """
    from statsmodels.base.model import GenericLikelihoodModel
    from statsmodels.tools.sm_exceptions import ConvergenceWarning

    if len(count) > max_units:  # two parameters: a few thousand units pin them down
        pick = np.random.default_rng(seed).choice(len(count), max_units, replace=False)
        count, size, offset = count[pick], size[pick], offset[pick]
    log_comb = special.gammaln(size + 1) - special.gammaln(count + 1) - special.gammaln(size - count + 1)

    def parts(params):
        mu = special.expit(params[0] + offset)
        phi = np.exp(params[1])
        return mu, phi, mu * phi, (1 - mu) * phi

    class _BetaBinomial(GenericLikelihoodModel):
        def loglikeobs(self, params):
            _, _, a, b = parts(params)
            return log_comb + special.betaln(count + a, size - count + b) - special.betaln(a, b)

        def score_obs(self, params):
            mu, phi, a, b = parts(params)
            common = special.digamma(a + b) - special.digamma(size + a + b)
            da = special.digamma(count + a) - special.digamma(a) + common
            db = special.digamma(size - count + b) - special.digamma(b) + common
            return np.column_stack([phi * mu * (1 - mu) * (da - db), phi * (mu * da + (1 - mu) * db)])

        def score(self, params):
            return self.score_obs(params).sum(axis=0)

    model = _BetaBinomial(count, np.ones((len(count), 1)), extra_params_names=["log_phi"])
    start = np.array([0.0, np.log(100.0)])
    with warnings.catch_warnings():  # non-convergence is reported in the result, not as a warning
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        fit = model.fit(start_params=start, method="bfgs", disp=False, maxiter=int(maxiter))
    params = np.asarray(fit.params, dtype=float)
    try:
        bse = np.asarray(fit.bse, dtype=float)
    except (np.linalg.LinAlgError, ValueError):  # a singular Hessian (e.g. no overdispersion at all)
        bse = np.array([np.nan, np.nan])
    retvals = getattr(fit, "mle_retvals", None) or {}
    converged = bool(retvals.get("converged", False)) and bool(np.all(np.isfinite(params)))
    message = "" if converged else (
        f"BFGS warnflag {retvals.get('warnflag')}" + (f" after {retvals.get('iterations')} iterations (maxiter "
                                                       f"{int(maxiter)})" if retvals.get("iterations") is not None else ""))
    return params, bse, converged, message


#: Fewest regions with units for the comparison with the other regions: with 6 it flagged some region
#: of a clean set at q <= 0.05 in 11 % of simulated draws, with 8-16 in 3-9 % (tests).
MIN_REGIONS = 8


def _relative_excess(hits: np.ndarray, units: np.ndarray, min_regions: int = MIN_REGIONS,
                     level: float = 0.8, leave_one_out_up_to: int = 60, failures: list | None = None,
                     maxiter: int = 15000) -> np.ndarray:
    """Per region, P(at least its outlying TPS) if it had the other regions' rate and spread of rates.

    The other regions' counts are fitted (maximum likelihood) as BetaBinomial(units, a, b), so a
    region is judged against how much the outlier rate varies between regions anyway; leave-one-out,
    so that a region does not set its own yardstick. The fit's own uncertainty is not ignored:

    - a >= 1 (the rates' density is finite at 0): with few outliers in all, the likelihood
      otherwise prefers a U-shaped law with almost every region at a rate of 0, under which a
      single outlying TPS had p ~ 1e-7;
    - the mean gets half a pseudo-outlier and its sampling variance is added to the spread;
    - the precision is the lower end of its one-sided ``(1 + level) / 2`` profile-likelihood
      interval (with a handful of regions the maximum-likelihood one is often the binomial limit).

    NaN with fewer than ``min_regions`` regions with units. Above ``leave_one_out_up_to`` regions, one fit to
    all of them serves every region. Each maximum-likelihood fit is checked: where L-BFGS-B did not
    report success, ``(region index, message)`` is appended to ``failures`` (when given) and the
    caller notes it.
    """
    hits, units = np.asarray(hits, dtype=float), np.asarray(units, dtype=float)
    out = np.full(len(hits), np.nan)
    usable = (units > 0) & np.isfinite(units) & np.isfinite(hits)
    if usable.sum() < min_regions:
        return out
    crit = stats.chi2.ppf(level, 1) / 2
    lower, upper = 0.0, np.log(1e8)  # log a: from a flat density at 0 to binomial counts

    def negloglik(theta, h, n, combiln):
        # scipy.stats.betabinom.logpmf's own formula, without its per-call overhead (most of the
        # time of a leave-one-out over many regions went to argument checking).
        mean, a = special.expit(theta[0]), np.exp(theta[1])
        b = a * (1 - mean) / mean
        return -(combiln + special.betaln(h + a, n - h + b) - special.betaln(a, b)).sum()

    def law(others):
        """(mean, precision) of the beta-binomial the regions in ``others`` give, with the fit's uncertainty."""
        h, n = hits[others], units[others]
        combiln = -np.log(n + 1) - special.betaln(n - np.floor(h) + 1, np.floor(h) + 1)
        total = n.sum()
        rate = (h.sum() + 0.5) / (total + 1.0)
        with one_blas_thread():  # L-BFGS-B's BLAS calls on 2 parameters: threads only cost hand-offs
            fit = optimize.minimize(negloglik, x0=[special.logit(rate), np.log(10.0)], args=(h, n, combiln),
                                    method="L-BFGS-B", bounds=[(-20, 20), (lower, upper)], options={"maxiter": int(maxiter)})

        def profile(log_a):
            return optimize.minimize_scalar(lambda t: negloglik([t, log_a], h, n, combiln), bounds=(-20, 20),
                                            method="bounded").fun - fit.fun - crit

        log_a = lower
        if fit.x[1] > lower and profile(lower) > 0:
            log_a = optimize.brentq(profile, lower, fit.x[1], xtol=1e-3)
        fitted = special.expit(fit.x[0])
        mean = (fitted * total + 0.5) / (total + 1.0)
        phi = np.exp(log_a) / fitted  # a + b
        between = 1.0 / (phi + 1.0)  # var(rate) / (mean (1 - mean)) between regions
        of_mean = float(np.sum(n * (1 + (n - 1) * between))) / total ** 2  # and of the pooled mean
        return mean, max(1.0 / (between + of_mean) - 1.0, 1.0 / mean), bool(fit.success), str(fit.message)

    # Leave-one-out costs a fit per region over all the others (26 s for 514 regions); beyond
    # ``leave_one_out_up_to`` regions one region weighs little in a fit to all, which is done once.
    shared = law(usable) if usable.sum() > leave_one_out_up_to else None
    for r in np.flatnonzero(usable):
        if shared is None:
            others = usable.copy()
            others[r] = False
            mean, precision, success, message = law(others)
        else:
            mean, precision, success, message = shared
        if not success and failures is not None:
            failures.append((int(r), message))
        out[r] = float(stats.betabinom.sf(hits[r] - 1, units[r], mean * precision, (1 - mean) * precision))
    return out


# ------------------------------------------------------------------------------------ result
@dataclass(frozen=True, eq=False)
class LocalOutliers:
    """Per-TPS local outlier scores (robust z and beta-binomial p), q-values and a region summary."""

    table: pd.DataFrame = field(repr=False)  # one row per unit: ids, values, z, p per variable, p, q
    regions: pd.DataFrame  # per region: units, outliers, expected, flagged_q, pvalue, qvalue, pvalue_vs_others, qvalue_vs_others
    variables: tuple[str, ...]
    fine: str
    coarse: str
    region_level: str
    min_neighbours: int
    alpha: float
    models: pd.DataFrame  # per region and variable: tau (latent sd, median over its TPS), b0, phi, their se, converged
    excluded: Mapping[str, int] = field(default_factory=dict)
    null: str = ""

    def top(self, n: int = 20) -> pd.DataFrame:
        """The ``n`` units with the smallest combined p-value, with the columns a reader needs."""
        cols = ["unit_id", *[c for c in self.table.columns if c.endswith("_name") or c in (self.region_level,
                self.coarse, self.fine)], "reference"]
        for v in self.variables:
            cols += [f"{v}_value", f"{v}_neighbours", f"{v}_z", f"{v}_p"]
        # q_z stays in the table, not here: z's tails are heavier than normal, so on a clean
        # synthetic election of 205,039 TPS 224 reach q_z <= 0.05 (none reach q <= 0.05).
        cols += ["p", "q", "url"]
        cols = list(dict.fromkeys(c for c in cols if c in self.table.columns))
        return self.table.sort_values(["p", "p_z"]).head(int(n))[cols].reset_index(drop=True)

    def flagged(self) -> pd.DataFrame:
        """Units with q <= alpha (beta-binomial model, BH across units)."""
        return self.table[self.table["q"] <= self.alpha].sort_values("p").reset_index(drop=True)

    def flags(self, alpha: float | None = None, *, against: str = "others") -> pd.DataFrame:
        """Regions whose excess of outlying units has q <= alpha, against the other regions or the nominal rate.

        ``against="others"`` (``qvalue_vs_others``) allows for regions differing anyway (no region of
        the clean Poland 2020 flagged; needs ``MIN_REGIONS`` regions); ``"nominal"`` (``qvalue``)
        assumes the per-TPS model is right everywhere (see ``local_outliers``).
        """
        alpha = self.alpha if alpha is None else alpha
        columns = {"others": "qvalue_vs_others", "nominal": "qvalue"}
        if against not in columns:
            raise ValueError(f"against must be 'others' or 'nominal', not {against!r}")
        if against == "others" and len(self.regions) and self.regions["qvalue_vs_others"].isna().all():
            warnings.warn(f"local outliers: {len(self.regions)} {self.region_level} region(s), too few to compare each "
                          f"with the others (at least {MIN_REGIONS} with units); nothing is flagged against the others, see "
                          "flags(against='nominal')", stacklevel=2)
        return self.regions[self.regions[columns[against]] <= alpha].reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def top_html(self, n: int = 20) -> str:
        """The top table as HTML: every string escaped, Sirekap ids linked to their page."""
        frame = self.top(n)
        urls = [u if isinstance(u, str) else None for u in frame.pop("url")]
        return frame_html(frame, links={"unit_id": urls})

    def _repr_html_(self) -> str:
        title = (f"Local outliers (neighbours: {self.fine}, else {self.coarse}, else {self.region_level}; "
                 f"min {self.min_neighbours} neighbours): {int((self.table['q'] <= self.alpha).sum()):,} of "
                 f"{len(self.table):,} units with q <= {self.alpha:g}")
        return "\n".join([f"<p><b>{html.escape(title)}</b></p>", self.top_html(),
                          frame_html(self.regions)])


# ------------------------------------------------------------------------------------ election
def _default_levels(election, fine, coarse):
    levels = list(election.levels)
    if fine is None:
        fine = "village" if "village" in levels else levels[-1]
    if coarse is None:
        coarse = "district" if "district" in levels and fine != "district" else levels[max(levels.index(fine) - 1, 0)]
    for name in (fine, coarse):
        if name not in levels:
            raise KeyError(f"{name!r} is not a level of this election ({', '.join(levels)})")
    return fine, coarse


def _codes(values: np.ndarray) -> np.ndarray:
    return pd.factorize(values)[0].astype(np.int64)


def local_outliers(election, *, fine: str | None = None, coarse: str | None = None, region_level: str | None = None,
                   candidates: Sequence[str] | None = None, min_neighbours: int = 4, alpha: float = 0.05,
                   region_threshold: float = 1e-3, seed: int = 0, maxiter: int = 200) -> LocalOutliers:
    """Robust z and beta-binomial p-values of every unit against its neighbours, with BH q-values.

    Neighbourhoods after the module docstring; ``fine`` / ``coarse`` default to village /
    district (else the two finest levels), ``region_level`` (the scaling region, also the level
    of the region summary) to the coarsest level. Turnout is voters / registered with voters
    capped at registered (DPK voters can lift a TPS above 100 %; those are counted in
    ``excluded`` as "turnout above 100 % (capped)", not dropped). Region summary, two nulls, each
    with BH q-values across regions:

    - ``pvalue``: units with a combined p below ``region_threshold`` against Binomial(units,
      region_threshold); valid when the per-unit p-values are, which holds on clean synthetic
      elections (measured in the calibration table) but not on real ones, where special stations
      (hospitals, prisons, abroad) and misreadings stand out everywhere: it rejects in 16 of 16
      voivodeships of the clean Poland 2020;
    - ``pvalue_vs_others``: the same count against the other regions' (``_relative_excess``:
      a beta-binomial fitted to the other regions' counts, leave-one-out, allowing for the fit's
      uncertainty), so a region is flagged only if it has more outlying TPS than regions do anyway
      (Poland 2020: none at q <= 0.05); NaN with fewer than ``MIN_REGIONS`` regions.

    Every fit is checked for convergence: ``models`` has ``converged`` and ``message`` per region
    and variable (BFGS, at most ``maxiter`` iterations), and a region whose beta-binomial fit (or
    the fit of the other regions' counts) did not converge says so in the ``note`` of its row.
    """
    from statsmodels.stats.multitest import multipletests

    fine, coarse = _default_levels(election, fine, coarse)
    region_level = region_level or election.levels[0]
    if region_level not in election.levels:
        raise KeyError(f"{region_level!r} is not a level of this election ({', '.join(election.levels)})")
    candidates = list(candidates or election.candidates)
    unknown = [c for c in candidates if c not in election.candidates]
    if unknown:
        raise KeyError(f"not candidates: {', '.join(unknown)}")
    table = election.table
    n_units = len(table)
    variables, above = _outlier_variables(election, candidates)
    levels = list(election.levels)
    between = [lv for lv in levels[levels.index(region_level) + 1:levels.index(coarse)]][::-1]
    chain = list(dict.fromkeys([fine, coarse, *between]))

    # Group codes as integers (order of appearance, as _codes gives them) and the table's own string
    # arrays in the output: Python string objects for every TPS and level took 0.7 GB at national scale.
    group_codes = {lv: pd.factorize(table[lv].astype(str)) for lv in dict.fromkeys([region_level, *chain])}
    out = pd.DataFrame({"unit_id": table.index.astype(str).array})
    for lv in dict.fromkeys([region_level, coarse, fine]):
        out[lv] = table[lv].astype(str).array
        if f"{lv}_name" in table.columns:
            out[f"{lv}_name"] = table[f"{lv}_name"].astype(str).array
    excluded = {"turnout above 100 % (capped)": int(above.sum())}
    model_rows: list[dict] = []
    p_bb = np.full((n_units, len(variables)), np.nan)
    p_z = np.full((n_units, len(variables)), np.nan)
    reference = np.full(n_units, "", dtype=object)
    for v_index, (name, (count, size)) in enumerate(variables.items()):
        ok = np.isfinite(count) & np.isfinite(size) & (size > 0) & (count >= 0) & (count <= size)
        excluded[f"{name}: missing or inconsistent counts"] = int((~ok).sum())
        idx = np.flatnonzero(ok)
        c, n = count[idx], size[idx]
        x = np.log((c + 0.5) / (n - c + 0.5))
        med, m, pooled, which, todo = _neighbourhoods(x, c, n, [(lv, group_codes[lv][0][idx]) for lv in chain],
                                                      min_neighbours)
        excluded[f"{name}: no neighbour in any {'/'.join(chain)}"] = int(todo.sum())
        region_codes, region_labels = group_codes[region_level]
        region = _codes(region_codes[idx])
        z, tau2 = _neighbour_z(x, med, m, n, region, which)
        labels = [(str(region_labels[region_codes[idx][region == r][0]]), region == r) for r in np.unique(region)]
        pb = _betabinomial_pvalues(c, n, pooled, m, tau2, labels, name=name, min_neighbours=min_neighbours,
                                   model_rows=model_rows, seed=seed, maxiter=maxiter)
        for column, values in (("value", c / n), ("neighbours", special.expit(med)), ("z", z), ("p", pb)):
            out[f"{name}_{column}"] = np.nan
            out.loc[idx, f"{name}_{column}"] = values
        p_bb[idx, v_index] = pb
        p_z[idx, v_index] = 2 * stats.norm.sf(np.abs(z))
        reference[idx] = np.where(reference[idx] == "", which, reference[idx])
    _combine_variables(out, p_bb, p_z)
    out["reference"] = reference
    for col, src in (("q", "p"), ("q_z", "p_z")):
        out[col] = np.nan
        has = out[src].notna().to_numpy()
        if has.any():
            out.loc[has, col] = multipletests(out.loc[has, src].to_numpy(), method="fdr_bh")[1]
    out["url"] = [sirekap_url(u) for u in out["unit_id"]]
    regions = _outlier_regions(out, region_level, region_threshold=region_threshold, alpha=alpha,
                               model_rows=model_rows, maxiter=maxiter)
    V = len(variables)
    null = (f"robust z: leave-one-out neighbour median, latent spread set per {region_level} (median |z| = 0.6745); "
            f"beta-binomial around the pooled neighbour proportion, fitted per {region_level} (statsmodels "
            f"GenericLikelihoodModel); per unit Bonferroni over {V} variables, BH across units; regions: units with "
            f"p < {region_threshold:g} against Binomial(units, {region_threshold:g}) (pvalue) and against a beta-binomial "
            f"fitted to the other regions' counts (pvalue_vs_others), BH across regions")
    return LocalOutliers(table=out, regions=regions, variables=tuple(variables), fine=fine, coarse=coarse,
                         region_level=region_level, min_neighbours=int(min_neighbours), alpha=alpha,
                         models=pd.DataFrame(model_rows), excluded=excluded, null=null)


# ---- the steps of local_outliers, in order
def _outlier_variables(election, candidates) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], np.ndarray]:
    """(variable -> (count, size)): turnout with voters capped at registered, each candidate's share of valid; the capped units."""
    registered, voters, valid = (election.column(c) for c in ("registered", "voters", "valid"))
    above = np.isfinite(voters) & np.isfinite(registered) & (voters > registered)
    variables = {"turnout": (np.where(above, registered, voters), registered)}
    for c in candidates:
        variables[c] = (election.column(c), valid)
    return variables, above


def _neighbourhoods(x, c, n, chain_codes, min_neighbours: int):
    """Each unit's neighbourhood: the fine group if big enough, else coarse, else the scaling region.

    Returns the leave-one-out median logit of the neighbours, their number, their pooled
    proportion, the level used, and the units with no neighbour at any level.
    """
    med, m, pooled, which = (np.full(len(x), np.nan), np.zeros(len(x)), np.full(len(x), np.nan),
                             np.full(len(x), "", dtype=object))
    todo = np.ones(len(x), dtype=bool)
    per_level = []
    for lv, codes in chain_codes:
        g = _codes(codes)
        med_l, m_l = _loo_median(x, g)
        sum_c, sum_n = np.bincount(g, weights=c)[g] - c, np.bincount(g, weights=n)[g] - n
        per_level.append((lv, med_l, m_l, (sum_c + 0.5) / (sum_n + 1.0)))
    # First the finest level with enough neighbours, else the finest with any.
    for enough in (min_neighbours, 1):
        for lv, med_l, m_l, pooled_l in per_level:
            use = todo & (m_l >= enough)
            med[use], m[use], which[use], pooled[use] = med_l[use], m_l[use], lv, pooled_l[use]
            todo &= ~use
    return med, m, pooled, which, todo


def _neighbour_z(x, med, m, n, region, which) -> tuple[np.ndarray, np.ndarray]:
    """Robust z of each unit's logit against its neighbours' median, and the latent spread tau^2 used.

    The latent spread is set per region and neighbourhood level: against its kecamatan a TPS also
    differs by its desa's effect, so one spread per region left the TPS compared with a kecamatan or
    kabupaten with |z| tails 5-15 times too heavy on clean synthetic elections. Groups under 50 TPS
    share their level's spread across regions.
    """
    p_centre = np.clip(special.expit(med), 0.5 / n, 1 - 0.5 / n)
    noise = 1.0 / (n * p_centre * (1 - p_centre))
    shrink = 1 + np.pi / (2 * np.maximum(m, 1))
    residual = x - med
    level_index = pd.factorize(which)[0]
    n_levels = int(level_index.max()) + 1 if len(level_index) else 1
    n_regions = int(region.max()) + 1 if len(region) else 0
    scale_group = region * n_levels + level_index
    small = np.bincount(scale_group)[scale_group] < 50
    scale_group[small] = n_regions * n_levels + level_index[small]
    tau2 = _robust_scale(residual, noise, shrink, scale_group)[scale_group]
    return residual / np.sqrt((tau2 + noise) * shrink), tau2


def _betabinomial_pvalues(c, n, pooled, m, tau2, regions, *, name: str, min_neighbours: int, model_rows: list,
                          seed: int, maxiter: int) -> np.ndarray:
    """Two-sided beta-binomial p-values against the pooled neighbour proportion, one fit per scaling region.

    Precision per region for units with enough neighbours; units with few neighbours (their centre
    is less certain, so their spread is wider) share one fit per variable. Each fit is appended to
    ``model_rows`` (its seed is ``seed`` plus the number of fits before it).
    """
    offset = special.logit(pooled)
    a = np.full(len(c), np.nan)
    b = np.full(len(c), np.nan)
    many = m >= min_neighbours
    groups = [(label, in_region & many) for label, in_region in regions]
    groups.append(("all (fewer than %d neighbours)" % min_neighbours, ~many))
    for label, sel in groups:
        sel = sel & np.isfinite(offset)
        if sel.sum() < 20:
            continue
        params, bse, converged, message = _bb_fit(c[sel], n[sel], offset[sel], seed=seed + len(model_rows),
                                                  maxiter=maxiter)
        mu = special.expit(params[0] + offset[sel])
        phi = np.exp(params[1])
        a[sel], b[sel] = mu * phi, (1 - mu) * phi
        tau = float(np.sqrt(np.median(tau2[sel]))) if label[:3] != "all" else np.nan
        model_rows.append({"region": label, "variable": name, "tau": tau, "b0": params[0], "b0_se": bse[0],
                           "phi": phi, "log_phi_se": bse[1], "units": int(sel.sum()), "converged": converged,
                           "message": message})
    fitted = np.isfinite(a)
    pb = np.full(len(c), np.nan)
    pb[fitted] = betabinom_two_sided(c[fitted], n[fitted], a[fitted], b[fitted])
    return pb


def _combine_variables(out: pd.DataFrame, p_bb: np.ndarray, p_z: np.ndarray) -> None:
    """Per unit, Bonferroni over its variables: ``p`` (beta-binomial) and ``p_z`` (robust z), in ``out``."""
    V = p_bb.shape[1]
    with np.errstate(invalid="ignore"):
        out["p"] = np.minimum(1.0, V * np.nanmin(np.where(np.isnan(p_bb), np.inf, p_bb), axis=1))
        out["p_z"] = np.minimum(1.0, V * np.nanmin(np.where(np.isnan(p_z), np.inf, p_z), axis=1))
    out.loc[~np.isfinite(out["p"]), "p"] = np.nan
    out.loc[~np.isfinite(out["p_z"]), "p_z"] = np.nan


def _outlier_regions(out: pd.DataFrame, region_level: str, *, region_threshold: float, alpha: float,
                     model_rows: list, maxiter: int) -> pd.DataFrame:
    """Per region: outlying units against Binomial and against the other regions, notes on failed fits, BH q-values."""
    from statsmodels.stats.multitest import multipletests

    rows = []
    for region, group in out.groupby(region_level, sort=True):
        p = group["p"].dropna()
        hits = int((p < region_threshold).sum())
        pval = float(stats.binom.sf(hits - 1, len(p), region_threshold)) if len(p) else np.nan
        rows.append({"region": region, "region_name": group[f"{region_level}_name"].iloc[0]
                     if f"{region_level}_name" in group else "", "units": len(p),
                     "outliers": hits, "expected": len(p) * region_threshold,
                     "flagged_q": int((group["q"] <= alpha).sum()), "pvalue": pval})
    regions = pd.DataFrame(rows, columns=["region", "region_name", "units", "outliers", "expected", "flagged_q", "pvalue"])
    failures: list = []
    regions["pvalue_vs_others"] = _relative_excess(regions["outliers"].to_numpy(), regions["units"].to_numpy(),
                                                   failures=failures, maxiter=maxiter)
    # A fit that did not converge is said on its region's row, never passed over silently.
    notes: dict[str, list[str]] = {str(r): [] for r in regions["region"]}
    for index, message in failures:
        notes[str(regions["region"].iloc[index])].append(
            convergence_note("the beta-binomial fit to the other regions' counts", message))
    for row in model_rows:
        if not row["converged"]:
            text = convergence_note(f"the beta-binomial fit of {row['variable']}", row["message"])
            # A region's own fit, or the shared fit of units with few neighbours, which serves every region.
            targets = [str(row["region"])] if str(row["region"]) in notes else list(notes)
            for key in targets:
                notes[key].append(text)
    regions["note"] = ["; ".join(notes[str(r)]) for r in regions["region"]]
    for p_col, q_col in (("pvalue", "qvalue"), ("pvalue_vs_others", "qvalue_vs_others")):
        regions[q_col] = np.nan
        has = regions[p_col].notna()
        if has.any():
            regions.loc[has, q_col] = multipletests(regions.loc[has, p_col].to_numpy(), method="fdr_bh")[1]
    regions = regions[["region", "region_name", "units", "outliers", "expected", "flagged_q", "pvalue", "qvalue",
                       "pvalue_vs_others", "qvalue_vs_others", "note"]]
    return regions


def outlier_pvalues(election, seed: int, *, level: str = "province") -> pd.Series:
    """Per-region p-values (excess of outlying TPS), for ``analysis.calibration`` (name -> callable(election, seed))."""
    result = local_outliers(election, region_level=level, seed=seed)
    return pd.Series(result.regions["pvalue"].to_numpy(), index=result.regions["region"].to_numpy(), name="outliers")

"""Digit tests of vote counts: first digit (1BL), second digit (2BL), last digit; numeric kernels over
arrays with a textbook or a simulated null, and a per-region wrapper with BH q-values.

References: Mebane (2006), "Election forensics: vote counts and Benford's law", Political Methodology
Society summer meeting; Mebane (2007), "Statistics for digits" (2BL, Pearson chi-square with 9 df);
Beber & Scacco (2012), Political Analysis 20:211 (last digits uniform); Nigrini (2012), "Benford's
Law", Wiley, ch. 7 (MAD conformity classes, per-digit Z with continuity correction); Benjamini &
Hochberg (1995), JRSS B 57:289 (false discovery rate).

What a digit deviation can and cannot mean: Deckert, Myagkov & Ordeshook (2011), Political Analysis
19:245, found Benford conformity no better than a coin toss at detecting fraud. At polling-station
level (counts bounded by a few hundred voters) the textbook 2BL frequencies are themselves wrong, so
the default null is simulated from each station's own size (beta-binomial resampling); the textbook
p-value is kept beside it only as a reference.

The *model-based* null (``null="model"``; ``"exact"`` is kept as its old name) is not an exact
test: its digit frequencies are computed from each station's beta-binomial model with plug-in
parameters (pooled shares, method-of-moments overdispersion), and the chi-square's tail is a
normal approximation (a weighted sum of chi-squares, Imhof 1961). The model-based final-pair test
is a normal approximation to a sum of Bernoullis. Results say so in their ``null``. A flag is a statistical irregularity: OCR misreading,
data entry, re-votes and real local homogeneity also move digits.

Input counts may hold NaN or pandas <NA>. Counts that are missing, negative or fractional, zero, or
too small to have the digit tested are excluded and counted per reason in the result's
``excluded`` mapping (each count under the first reason that applies, so ``n + sum(excluded)``
equals the input length); nothing is dropped silently.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ._common import as_counts, in_threads, region_seed, usable_threads
from .cache import cached
from .errors import InsufficientData
from .display import frame_html


#: The model-based null's name as a reader sees it (``null="model"``, or its old name ``"exact"``).
MODEL_NULL_LABEL = "model-based (beta-binomial, normal approximation)"
#: The values of ``null`` that select the model-based null; "exact" is the old name, still accepted
#: (the notebooks and the shipped ``digits.csv`` calibration use it), and results carry the key "exact".
MODEL_NULL_NAMES = ("model", "exact")

__all__ = [
    "BENFORD_FIRST",
    "BENFORD_SECOND",
    "BENFORD_FIRST_TWO",
    "UNIFORM_LAST",
    "DigitTest",
    "DigitTable",
    "extract_digit",
    "nigrini_conformity",
    "digit_z",
    "group_shares",
    "overdispersion_moments",
    "benford_tests",
    "first_digit_test",
    "first_two_digits_test",
    "PairTest",
    "last_pair_test",
    "second_digit_test",
    "last_digit_test",
    "candidate_votes",
    "digit_tests",
]

#: Benford's first-digit law, P(d) = log10(1 + 1/d), d = 1..9.
BENFORD_FIRST: np.ndarray = np.log10(1 + 1 / np.arange(1, 10))
#: Benford's second-digit law, P(d) = sum_k log10(1 + 1/(10k + d)), d = 0..9.
BENFORD_SECOND: np.ndarray = np.log10(1 + 1 / (10 * np.arange(1, 10)[:, None] + np.arange(10)[None, :])).sum(axis=0)
#: Benford's law for the first two digits, P(d) = log10(1 + 1/d), d = 10..99.
BENFORD_FIRST_TWO: np.ndarray = np.log10(1 + 1 / np.arange(10, 100))
#: Last digits of fair counts spread over many values (Beber & Scacco 2012).
UNIFORM_LAST: np.ndarray = np.full(10, 0.1)

#: Nigrini's (2012, Table 7.1) MAD thresholds: close, acceptable, marginal; above is nonconforming.
NIGRINI_MAD: dict[str, tuple[float, float, float]] = {
    "first": (0.006, 0.012, 0.015),
    "second": (0.008, 0.010, 0.012),
    "first two": (0.0012, 0.0018, 0.0022),
}
NIGRINI_CLASSES = ("close conformity", "acceptable conformity", "marginal conformity", "nonconformity")
#: The conformity label of a last-digit test: Nigrini defines no classes for last digits.
NO_CLASS = "no class (Nigrini defines none for this digit)"

_POW10 = 10 ** np.arange(19, dtype=np.int64)  # 1 .. 1e18: every int64 has at most 19 digits
# Digit tables for simulated counts are used up to this size (int8, so at most 4 MB); above it the
# digits are computed arithmetically, which is slower but has no memory cost.
_LUT_MAX = 1 << 22
# Elements per simulation chunk: large enough to amortise numpy's call overhead, small enough that
# a chunk's arrays (int64 counts, float64 shares) stay in the tens of megabytes.
_CHUNK_ELEMENTS = 2_000_000

_TESTS = {
    "first": {"name": "first digit", "digits": np.arange(1, 10), "textbook": BENFORD_FIRST,
              "textbook_null": "Benford 1BL (textbook)", "family": "first"},
    "second": {"name": "second digit", "digits": np.arange(10), "textbook": BENFORD_SECOND,
               "textbook_null": "Benford 2BL (textbook)", "family": "second"},
    "first two": {"name": "first two digits", "digits": np.arange(10, 100), "textbook": BENFORD_FIRST_TWO,
                  "textbook_null": "Benford first two digits (textbook)", "family": "first two"},
    "last": {"name": "last digit", "digits": np.arange(10), "textbook": UNIFORM_LAST,
             "textbook_null": "uniform last digit (textbook)", "family": None},
}


# ------------------------------------------------------------------------------------ digits
def extract_digit(values: Any, position: str) -> np.ndarray:
    """The ``position`` ("first", "second", "first two" or "last") decimal digit(s) of non-negative integers.

    Returns int8 with -1 where the digit does not exist (zero has no first or second digit, a
    one-digit number no second and no first two; "first two" gives 10..99). Exact for every int64, unlike a log10-based extraction.
    """
    x = np.asarray(values)
    if x.dtype.kind not in "iu":
        raise TypeError(f"extract_digit takes integers, got dtype {x.dtype}")
    x = x.astype(np.int64, copy=False)
    if (x < 0).any():
        raise ValueError("extract_digit takes non-negative integers")
    if position == "last":
        return (x % 10).astype(np.int8)
    n_digits = np.searchsorted(_POW10, x, side="right")  # 0 for 0, 1 for 1..9, 2 for 10..99, ...
    if position == "first":
        out = x // _POW10[np.maximum(n_digits - 1, 0)]
        return np.where(n_digits >= 1, out, -1).astype(np.int8)
    if position == "second":
        out = (x // _POW10[np.maximum(n_digits - 2, 0)]) % 10
        return np.where(n_digits >= 2, out, -1).astype(np.int8)
    if position == "first two":
        out = x // _POW10[np.maximum(n_digits - 2, 0)]
        return np.where(n_digits >= 2, out, -1).astype(np.int8)
    raise ValueError(f"position must be 'first', 'second', 'first two' or 'last', not {position!r}")


def nigrini_conformity(mad: float, digit: str) -> str:
    """Nigrini's (2012, Table 7.1) conformity class of a MAD for the "first", "second" or "first two" digits."""
    if digit not in NIGRINI_MAD:
        return NO_CLASS
    if not np.isfinite(mad):
        return "not computed"
    for limit, label in zip(NIGRINI_MAD[digit], NIGRINI_CLASSES):
        if mad <= limit:
            return label
    return NIGRINI_CLASSES[-1]


def digit_z(observed_share: Any, expected_share: Any, n: int) -> np.ndarray:
    """Per-digit Z with continuity correction, Z = (|p_obs - p| - 1/(2N)) / sqrt(p(1-p)/N).

    Nigrini (2012, eq. 7.1): the 1/(2N) term is applied only when it is smaller than |p_obs - p|.
    """
    observed_share = np.asarray(observed_share, dtype=float)
    p = np.asarray(expected_share, dtype=float)
    if n <= 0:
        return np.full(p.shape, np.nan)
    diff = np.abs(observed_share - p)
    correction = 1 / (2 * n)
    numerator = np.where(correction < diff, diff - correction, diff)
    with np.errstate(divide="ignore", invalid="ignore"):
        return numerator / np.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------------------ input
@dataclass(frozen=True, eq=False)
class _Prepared:
    counts: np.ndarray        # the whole input, int64, 0 where unusable
    base: np.ndarray          # stations that enter the simulation (usable count and total)
    used: np.ndarray          # counts whose digit is tested
    excluded: dict[str, int]
    totals: np.ndarray | None


def _prepare(counts, *, position: str, min_count: int, totals=None) -> _Prepared:
    ints, missing, bad = as_counts(counts, "counts")
    reasons: list[tuple[str, np.ndarray]] = [("missing", missing), ("negative or fractional", bad)]
    total_ints = None
    if totals is not None:
        total_ints, total_missing, total_bad = as_counts(totals, "totals")
        if len(total_ints) != len(ints):
            raise ValueError(f"counts and totals differ in length: {len(ints)} and {len(total_ints)}")
        reasons += [
            ("total missing, negative or fractional", total_missing | total_bad),
            ("total is zero", total_ints == 0),
            ("count > total", ints > total_ints),
        ]
    used = np.ones(len(ints), dtype=bool)
    excluded: dict[str, int] = {}

    def take(reason, mask):
        hit = used & mask
        excluded[reason] = int(hit.sum())
        used[hit] = False

    for reason, mask in reasons:
        take(reason, mask)
    base = used.copy()
    if position in ("first", "second", "first two"):
        take("zero", ints == 0)
    if position in ("second", "first two"):
        take("one digit (< 10)", ints < 10)
    if position == "last" and min_count > 0:
        take(f"below min_count ({min_count})", ints < min_count)
    return _Prepared(counts=ints, base=base, used=used, excluded=excluded, totals=total_ints)


# ------------------------------------------------------------------------------------ result
@dataclass(frozen=True, eq=False)
class DigitTest:
    """Pearson chi-square of observed digit frequencies against a null (Mebane 2006; Beber & Scacco 2012).

    ``mad`` is Nigrini's MAD against the textbook law (Benford, or uniform for last digits) and
    ``conformity`` its Nigrini class; ``mad_null`` is the MAD against the null actually tested
    (equal to ``mad`` for a textbook null). For last digits Nigrini defines no classes.
    ``g_statistic`` is the likelihood-ratio G = 2 sum O ln(O / E) against the same null, with its
    p-value from the same reference distribution (chi-square, or the simulated draws).
    ``digits`` has one row per digit: observed count and share, the null's expected share, the
    textbook share, Z with continuity correction against the null, and the null's 2.5-97.5 %
    band of shares (``band_low``, ``band_high``).
    """

    name: str
    statistic: float
    pvalue: float
    dof: int
    mad: float
    conformity: str
    n: int
    excluded: Mapping[str, int]
    null: str
    digits: pd.DataFrame
    textbook_statistic: float
    textbook_pvalue: float
    mean_digit: float
    expected_mean: float
    mad_null: float
    overdispersion: float = np.nan
    g_statistic: float = np.nan
    g_pvalue: float = np.nan
    n_sim: int = 0
    seed: int | None = None
    note: str = ""
    null_mean: float = np.nan
    null_sd: float = np.nan

    @property
    def effect(self) -> float:
        """The chi-square's excess over its null mean per tested count, (statistic - null_mean) / n.

        A misfit of the null (or an irregularity) on a fixed share of stations moves the chi-square
        in proportion to n; the excess per count does not grow with n, so regions of different
        sizes can be compared by it (``se`` is its null standard error, null_sd / n)."""
        return (self.statistic - self.null_mean) / self.n if self.n else np.nan

    @property
    def se(self) -> float:
        return self.null_sd / self.n if self.n else np.nan

    def to_frame(self) -> pd.DataFrame:
        """One row: the test, its statistic and p-values, MAD, sample size, exclusions and null."""
        return pd.DataFrame([{
            "test": self.name, "statistic": self.statistic, "pvalue": self.pvalue, "dof": self.dof,
            "textbook_statistic": self.textbook_statistic, "textbook_pvalue": self.textbook_pvalue,
            "g_statistic": self.g_statistic, "g_pvalue": self.g_pvalue, "mad": self.mad, "conformity": self.conformity, "mad_null": self.mad_null,
            "mean_digit": self.mean_digit, "expected_mean": self.expected_mean,
            "overdispersion": self.overdispersion, "n": self.n, "null_mean": self.null_mean, "null_sd": self.null_sd,
            "excluded": int(sum(self.excluded.values())), "null": self.null, "note": self.note,
        }])

    def _repr_html_(self) -> str:
        excluded = ", ".join(f"{k}: {v:,}" for k, v in self.excluded.items() if v) or "none"
        title = f"{self.name} test; null: {self.null}; n = {self.n:,}; excluded: {excluded}"
        parts = [f"<p><b>{html.escape(title)}</b></p>", frame_html(self.to_frame()),
                 frame_html(self.digits)]
        if self.note:
            parts.insert(1, f"<p>{html.escape(self.note)}</p>")
        return "\n".join(parts)


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return counts / total if total > 0 else np.full(counts.shape, np.nan)


def _chi_square(observed: np.ndarray, n: np.ndarray | int, expected: np.ndarray) -> np.ndarray:
    """Pearson chi-square of digit counts (last axis) against expected shares; inf if a digit the null
    never produces is observed."""
    n = np.asarray(n, dtype=float)[..., None]
    expect = n * expected
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expect > 0, (observed - expect) ** 2 / expect, np.where(observed > 0, np.inf, 0.0))
    return terms.sum(axis=-1)


def _g_statistic(observed: np.ndarray, n: np.ndarray | int, expected: np.ndarray) -> np.ndarray:
    """Likelihood-ratio G = 2 sum O ln(O / E) of digit counts (last axis); empty digits add nothing."""
    n = np.asarray(n, dtype=float)[..., None]
    expect = n * expected
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(observed > 0, observed * np.log(observed / expect), 0.0)
    return 2 * terms.sum(axis=-1)


def _finish(*, kind: str, observed: np.ndarray, n: int, expected: np.ndarray, band: np.ndarray,
            statistic: float, pvalue: float, excluded: dict, null: str, overdispersion=np.nan,
            n_sim: int = 0, seed=None, note: str = "", g_null: np.ndarray | None = None,
            null_mean: float | None = None, null_sd: float | None = None) -> DigitTest:
    spec = _TESTS[kind]
    digits, textbook = spec["digits"], spec["textbook"]
    observed_share = _shares(observed.astype(float))
    textbook_statistic = float(_chi_square(observed.astype(float), n, textbook)) if n else np.nan
    dof = len(digits) - 1
    mad = float(np.mean(np.abs(observed_share - textbook))) if n else np.nan
    table = pd.DataFrame({
        "digit": digits, "observed": observed.astype(np.int64), "observed_share": observed_share,
        "expected_share": expected, "textbook_share": textbook, "z": digit_z(observed_share, expected, n),
        "band_low": band[0], "band_high": band[1],
    })
    if n == 0 and not note:
        note = "no usable counts"
    g_statistic = float(_g_statistic(observed.astype(float), n, expected)) if n else np.nan
    if not n:
        g_pvalue = np.nan
    elif g_null is None:
        g_pvalue = float(stats.chi2.sf(g_statistic, dof))
    else:
        g_pvalue = (1 + int(np.sum(g_null >= g_statistic * (1 - 1e-12)))) / (1 + len(g_null))
    return DigitTest(
        name=spec["name"], statistic=float(statistic), pvalue=float(pvalue), dof=dof, mad=mad,
        conformity=nigrini_conformity(mad, spec["family"]) if spec["family"] else NO_CLASS,
        n=int(n), excluded=dict(excluded), null=null, digits=table,
        textbook_statistic=textbook_statistic,
        textbook_pvalue=float(stats.chi2.sf(textbook_statistic, dof)) if n else np.nan,
        mean_digit=float(observed @ digits / n) if n else np.nan,
        expected_mean=float(expected @ digits),
        mad_null=float(np.mean(np.abs(observed_share - expected))) if n else np.nan,
        overdispersion=float(overdispersion), g_statistic=g_statistic, g_pvalue=float(g_pvalue),
        n_sim=int(n_sim), seed=seed, note=note,
        # The chi-square's null mean and sd: given by the null, else those of the textbook chi-square (dof, sqrt(2 dof)).
        null_mean=float(dof if null_mean is None else null_mean),
        null_sd=float(np.sqrt(2 * dof) if null_sd is None else null_sd),
    )


def _textbook_result(kind: str, prepared: _Prepared, note: str = "") -> DigitTest:
    spec = _TESTS[kind]
    digits = extract_digit(prepared.counts[prepared.used], kind)
    offset = spec["digits"][0]
    observed = np.bincount(digits - offset, minlength=len(spec["digits"])).astype(float)
    return _textbook_from_counts(kind, observed, prepared.excluded, note)


def _textbook_from_counts(kind: str, observed: np.ndarray, excluded: Mapping[str, int], note: str = "") -> DigitTest:
    spec = _TESTS[kind]
    n = int(observed.sum())
    expected = spec["textbook"]
    statistic = float(_chi_square(observed, n, expected)) if n else np.nan
    pvalue = float(stats.chi2.sf(statistic, len(expected) - 1)) if n else np.nan
    # The band a textbook null allows: 2.5-97.5 % quantiles of Binomial(n, p) / n per digit.
    band = (np.vstack([stats.binom.ppf(0.025, n, expected), stats.binom.ppf(0.975, n, expected)]) / n
            if n else np.full((2, len(expected)), np.nan))
    return _finish(kind=kind, observed=observed, n=n, expected=expected, band=band, statistic=statistic,
                   pvalue=pvalue, excluded=dict(excluded), null=spec["textbook_null"], note=note)


# ------------------------------------------------------------------------------------ simulation
def overdispersion_moments(counts: np.ndarray, totals: np.ndarray, shares: np.ndarray) -> float:
    """Method-of-moments intra-class correlation rho of a beta-binomial, clamped to [0, 0.999].

    Under X_i ~ BetaBin(N_i, p_i, rho), E[(X_i - N_i p_i)^2] = N_i p_i (1 - p_i) (1 + (N_i - 1) rho),
    so rho = sum[(X_i - N_i p_i)^2 - N_i p_i (1 - p_i)] / sum[N_i (N_i - 1) p_i (1 - p_i)]
    (the pooled moment estimator; cf. Kleinman 1973, JASA 68:46). A negative estimate
    (underdispersion) is clamped to 0, i.e. binomial.
    """
    counts, totals, shares = (np.asarray(a, dtype=float) for a in (counts, totals, shares))
    variance = totals * shares * (1 - shares)
    denominator = float(np.sum((totals - 1) * variance))
    if denominator <= 0:
        return 0.0
    rho = float(np.sum((counts - totals * shares) ** 2 - variance)) / denominator
    return float(np.clip(rho, 0.0, 0.999))


def group_shares(counts, totals, groups) -> np.ndarray:
    """Each station's mean share for the simulated null: its group's pooled share, sum(counts) / sum(totals).

    Stations with a missing or unusable count or total do not enter their group's sums; a group
    with no usable total gets NaN. Use a fine level (e.g. district) when the region tested mixes
    areas with different support: one pooled share for a heterogeneous region is a poor null.
    """
    count_ints, count_missing, count_bad = as_counts(counts, "counts")
    total_ints, total_missing, total_bad = as_counts(totals, "totals")
    groups = np.asarray(groups)
    if not (len(count_ints) == len(total_ints) == len(groups)):
        raise ValueError(f"counts, totals and groups differ in length: {len(count_ints)}, {len(total_ints)}, {len(groups)}")
    ok = ~(count_missing | count_bad | total_missing | total_bad) & (count_ints <= total_ints)
    codes, index = np.unique(groups.astype(str), return_inverse=True)
    count_sum = np.bincount(index, weights=np.where(ok, count_ints, 0).astype(float), minlength=len(codes))
    total_sum = np.bincount(index, weights=np.where(ok, total_ints, 0).astype(float), minlength=len(codes))
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total_sum > 0, count_sum / total_sum, np.nan)
    return share[index]


def _digit_lut(kind: str, max_value: int, min_count: int) -> np.ndarray | None:
    """Digit (0..9) of every value up to max_value, 10 where the value is excluded; None if too large."""
    if max_value > _LUT_MAX:
        return None
    values = np.arange(max_value + 1, dtype=np.int64)
    return _digits_or_ten(values, kind, min_count)


def _digits_or_ten(values: np.ndarray, kind: str, min_count: int) -> np.ndarray:
    digit = extract_digit(values, kind).astype(np.int16)
    if kind == "first":
        digit = digit - 1  # 1..9 -> 0..8; zero (-1) -> -2, caught below
    if kind == "last":
        digit = np.where(values >= min_count, digit, -1)
    return np.where(digit >= 0, digit, 10).astype(np.int8)


def _simulate_digit_counts(
    totals: np.ndarray, shares: np.ndarray, rho: float, kinds: Sequence[tuple[str, int]],
    n_sim: int, seed: int,
) -> list[np.ndarray]:
    """Per kind, an (n_sim, 11) array of simulated digit counts (column 10: excluded draws).

    Draw b of station i is X ~ Binomial(N_i, q) with q ~ Beta(p_i (1/rho - 1), (1 - p_i)(1/rho - 1))
    (q = p_i when rho = 0). Draws are made in chunks, each from its own child of
    SeedSequence(seed), so the result does not depend on how many threads run the chunks.
    """
    n_stations = len(totals)
    chunk = max(1, _CHUNK_ELEMENTS // max(n_stations, 1))
    starts = list(range(0, n_sim, chunk))
    children = np.random.SeedSequence(seed).spawn(len(starts))
    luts = [_digit_lut(kind, int(totals.max(initial=0)), min_count) for kind, min_count in kinds]
    degenerate = (shares <= 0) | (shares >= 1)
    if rho > 0:
        scale = 1 / rho - 1
        clipped = np.clip(shares, 1e-12, 1 - 1e-12)
        a, b = clipped * scale, (1 - clipped) * scale
    out = [np.zeros((n_sim, 11), dtype=np.int64) for _ in kinds]

    def run(job: int) -> None:
        start = starts[job]
        size = min(chunk, n_sim - start)
        rng = np.random.Generator(np.random.PCG64(children[job]))
        if rho > 0:
            q = rng.beta(a, b, size=(size, n_stations))
            if degenerate.any():
                q[:, degenerate] = shares[degenerate]
        else:
            q = np.broadcast_to(shares, (size, n_stations))
        draws = rng.binomial(totals, q)
        rows = np.repeat(np.arange(size, dtype=np.int64) * 11, n_stations)
        for (kind, min_count), lut, target in zip(kinds, luts, out):
            digit = lut[draws] if lut is not None else _digits_or_ten(draws.ravel(), kind, min_count)
            codes = rows + digit.ravel()
            target[start:start + size] = np.bincount(codes, minlength=size * 11).reshape(size, 11)

    # numpy's generators release the GIL, so threads (one generator per chunk) use every core this process
    # may use (at most 4, and at most OMP_NUM_THREADS: the batch runner gives each kernel cores / jobs).
    large = n_sim * n_stations >= 4 * _CHUNK_ELEMENTS
    in_threads(run, range(len(starts)), usable_threads(4) if large else 1)
    return out


def _simulated_result(kind: str, prepared: _Prepared, simulated: np.ndarray, *, rho: float, n_sim: int,
                      seed: int, share_source: str, note: str = "") -> DigitTest:
    spec = _TESTS[kind]
    n_digits = len(spec["digits"])
    digits = extract_digit(prepared.counts[prepared.used], kind) - spec["digits"][0]
    observed = np.bincount(digits, minlength=n_digits).astype(float)
    n = int(prepared.used.sum())
    sim_counts = simulated[:, :n_digits].astype(float)
    sim_n = sim_counts.sum(axis=1)
    # The null's expected frequencies are the simulated ones (bounded counts do not follow Benford).
    expected = sim_counts.sum(axis=0) / sim_n.sum() if sim_n.sum() > 0 else np.full(n_digits, np.nan)
    null_stats = np.where(sim_n > 0, _chi_square(sim_counts, sim_n, expected), 0.0)
    null_g = np.where(sim_n > 0, _g_statistic(sim_counts, sim_n, expected), 0.0)
    model = (f"beta-binomial per station (rho = {rho:.4g}, method of moments)" if rho > 0
             else "binomial per station (moment estimate of overdispersion <= 0)")
    null = f"simulated: {model}, mean share {share_source}, {n_sim} draws, seed {seed}"
    if n == 0:
        statistic, pvalue = np.nan, np.nan
    else:
        statistic = float(_chi_square(observed, n, expected))
        # Compare with a relative tolerance: equal statistics must not be split by rounding.
        pvalue = (1 + int(np.sum(null_stats >= statistic * (1 - 1e-12)))) / (1 + n_sim)
    with np.errstate(invalid="ignore", divide="ignore"):
        sim_shares = sim_counts / sim_n[:, None]
    sim_shares = sim_shares[sim_n > 0]
    band = (np.quantile(sim_shares, [0.025, 0.975], axis=0) if len(sim_shares)
            else np.full((2, n_digits), np.nan))
    return _finish(kind=kind, observed=observed, n=n, expected=expected, band=band, statistic=statistic,
                   pvalue=pvalue, excluded=prepared.excluded, null=null, overdispersion=rho, n_sim=n_sim,
                   seed=seed, note=note, g_null=null_g, null_mean=float(np.mean(null_stats)),
                   null_sd=float(np.std(null_stats, ddof=1)) if n_sim > 1 else np.nan)


def _null_kind(null: str, textbook: str) -> str:
    key = str(null).strip().lower()
    if key in (textbook, "textbook"):
        return "textbook"
    if key == "simulated":
        return key
    if key in MODEL_NULL_NAMES:
        return "exact"
    raise ValueError(f"null must be {textbook!r} (or 'textbook'), 'simulated' or 'model' (old name 'exact'), "
                     f"not {null!r}")


def _model(prepared: _Prepared, shares, share_label: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, str]:
    """The simulation base: totals, mean shares, counts, overdispersion, and how the shares were set."""
    base = prepared.base
    totals = prepared.totals[base]
    counts = prepared.counts[base]
    if shares is None:
        pooled = counts.sum() / totals.sum() if totals.sum() > 0 else 0.0
        share_array = np.full(len(totals), float(pooled))
        source = f"pooled {pooled:.4f}"
    else:
        share_array = np.asarray(shares, dtype=float)
        if share_array.shape != prepared.counts.shape:
            raise ValueError(f"shares has shape {share_array.shape}, counts {prepared.counts.shape}")
        share_array = share_array[base]
        if not np.all((share_array >= 0) & (share_array <= 1)):
            raise ValueError("shares must lie in [0, 1] (and not be missing) for every station with a usable count")
        source = share_label or "given per station"
    rho = overdispersion_moments(counts, totals, share_array)
    return totals, share_array, counts, rho, source


# ------------------------------------------------------------------------------------ model-based null
# Stations per block when digit probabilities are computed from pmfs (block x (max total + 1) floats).
_EXACT_BLOCK_ELEMENTS = 4_000_000


def station_digit_probabilities(totals: np.ndarray, shares: np.ndarray, rho: float, kind: str,
                                min_count: int = 10) -> np.ndarray:
    """Per station, the probability of each digit (columns 0..k-1) and of an excluded draw (last column)
    when its count is Binomial(N_i, p_i) or, with rho > 0, beta-binomial with intra-class correlation rho.

    Exact sums of the (beta-)binomial pmf over the values with each digit (scipy.stats.binom /
    betabinom), the same model the simulated null draws from.
    """
    return station_digit_probabilities_for(totals, shares, rho, [(kind, min_count)])[0]


def station_digit_probabilities_for(totals: np.ndarray, shares: np.ndarray, rho: float,
                                    kinds: Sequence[tuple[str, int]]) -> list[np.ndarray]:
    """``station_digit_probabilities`` for several (kind, min_count) at once: each station's pmf is
    computed once and summed over every kind's digit classes (most of the model null's time)."""
    totals = np.asarray(totals, dtype=np.int64)
    shares = np.asarray(shares, dtype=float)
    top = int(totals.max(initial=0))
    values = np.arange(top + 1, dtype=np.int64)
    blocks = []
    for kind, min_count in kinds:
        n_digits = len(_TESTS[kind]["digits"])
        codes = _digits_or_ten(values, kind, min_count).astype(np.int64) if kind != "first two" else np.where(
            values >= 10, extract_digit(values, "first two").astype(np.int64) - 10, 90)
        codes = np.where(codes >= n_digits, n_digits, codes)
        onehot = np.zeros((top + 1, n_digits + 1))
        onehot[values, codes] = 1.0
        blocks.append(onehot)
    sums = _station_pmf_sums(totals, shares, rho, np.hstack(blocks))
    edges = np.cumsum([0] + [b.shape[1] for b in blocks])
    return [sums[:, lo:hi] for lo, hi in zip(edges[:-1], edges[1:])]


def _station_pmf_sums(totals: np.ndarray, shares: np.ndarray, rho: float, onehot: np.ndarray) -> np.ndarray:
    """Per station, sum over x of pmf_i(x) * onehot[x]: the probability of each class of values."""
    totals = np.asarray(totals, dtype=np.int64)
    shares = np.asarray(shares, dtype=float)
    out = np.empty((len(totals), onehot.shape[1]))
    clipped = np.clip(shares, 0.0, 1.0)
    # Stations in order of size, each block over 0..its own largest size: one misread total of
    # 9,000 must not make every 300-voter station's pmf 9,000 values long.
    order = np.argsort(totals, kind="stable")
    sizes = totals[order]
    start = 0
    while start < len(order):
        # a block holds stations up to twice the size of its smallest, within the element budget
        limit = 2 * max(int(sizes[start]), 1) + 1
        stop = min(int(np.searchsorted(sizes, limit, side="right")),
                   start + max(1, _EXACT_BLOCK_ELEMENTS // (limit + 1)))
        stop = max(stop, start + 1)
        rows = order[start:stop]
        top = int(totals[rows[-1]])
        n = totals[rows, None]
        p = clipped[rows, None]
        inner = (p > 0) & (p < 1)
        pmf = _pmf_by_ratios(n, np.where(inner, p, 0.5), rho, top)
        if not inner.all():  # a share of exactly 0 or 1 is a point mass (at 0 or at n) whatever the overdispersion
            edge = np.flatnonzero(~inner[:, 0])
            pmf[edge] = 0.0
            pmf[edge, np.where(p[edge, 0] >= 1, n[edge, 0], 0)] = 1.0
        out[rows] = pmf @ onehot[:top + 1]
        start = stop
    return out


def _pmf_by_ratios(n: np.ndarray, p: np.ndarray, rho: float, top: int) -> np.ndarray:
    """Binomial (rho = 0) or beta-binomial pmf at 0..top for each row's (n, p), 0 < p < 1.

    Built from pmf(0) and the ratios pmf(x+1) / pmf(x) = (n - x) / (x + 1) * (x + a) / (n - x - 1 + b)
    (a = p s, b = (1 - p) s, s = 1 / rho - 1; binomial: the last factor is p / (1 - p)), summed
    on the log scale: a few logarithms per value instead of log-beta functions, same numbers as
    scipy.stats to ~1e-12.
    """
    from scipy.special import betaln

    j = np.arange(top, dtype=float)[None, :]
    alive = j < n
    # One logarithm per value, of the whole ratio (each factor is below ~1e4, so the product is exact
    # to a few ulp): four logarithms per value were most of the exact null's time.
    with np.errstate(divide="ignore", invalid="ignore"):
        if rho > 0:
            scale = 1 / rho - 1
            a, b = p * scale, (1 - p) * scale
            log0 = betaln(a, n + b) - betaln(a, b)
            steps = np.log(((n - j) * (j + a)) / ((j + 1) * (n - j - 1 + b)))
        else:
            log0 = n * np.log1p(-p)
            steps = np.log((n - j) / (j + 1)) + (np.log(p) - np.log1p(-p))
    steps[~np.broadcast_to(alive, steps.shape)] = -np.inf
    # In place: these arrays are the size of a block of stations times their largest size.
    logpmf = np.empty((len(n), top + 1))
    logpmf[:, :1] = log0
    np.cumsum(steps, axis=1, out=logpmf[:, 1:])
    logpmf[:, 1:] += log0
    return np.exp(logpmf, out=logpmf)


def weighted_chi2_sf(q: float, weights: np.ndarray) -> float:
    """P(sum_j w_j Z_j^2 > q) for independent standard normal Z_j and w_j >= 0, by Imhof's (1961,
    Biometrika 48:419) inversion integral (scipy.integrate.quad); a Satterthwaite scaled chi-square
    where the integral cannot resolve a very small tail."""
    from scipy.integrate import simpson

    w = np.asarray(weights, dtype=float)
    w = w[w > 1e-12 * max(w.max(initial=0), 1e-300)]
    if len(w) == 0 or not np.isfinite(q):
        return np.nan if not np.isfinite(q) else float(q <= 0)
    if q <= 0:
        return 1.0

    # Imhof's truncation bound: beyond U the integral's tail is below 1e-11.
    k = len(w)
    upper = (1e-11 * np.pi * (k / 2) * np.exp(0.5 * np.sum(np.log(w)))) ** (-2 / k)
    def integrand(u: np.ndarray) -> np.ndarray:
        scaled = np.outer(u, w)
        theta = 0.5 * np.arctan(scaled).sum(axis=1) - 0.5 * q * u
        rho = np.exp(0.25 * np.log1p(scaled ** 2).sum(axis=1))
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.sin(theta) / (u * rho)
        return np.where(u > 0, out, 0.5 * (w.sum() - q))  # the limit at u = 0

    # Geometric pieces (the integrand changes on the scale 1 / w near 0 and decays slowly far
    # out), each with enough points for the oscillation, of period about 4 pi / q.
    edges = np.concatenate([[0.0], np.geomspace(0.05 / w.max(), upper, 30)])
    value = 0.0
    for a, b in zip(edges[:-1], edges[1:]):
        points = int(min(200_001, max(65, 40 * (b - a) * (q + w.sum()) / (4 * np.pi)))) | 1
        u = np.linspace(a, b, points)
        value += simpson(integrand(u), x=u)
    p = 0.5 + value / np.pi
    if p < 1e-6:  # quadrature error dominates here; the moment-matched tail is accurate enough
        scale = np.sum(w ** 2) / np.sum(w)
        dof = np.sum(w) ** 2 / np.sum(w ** 2)
        p = float(stats.chi2.sf(q / scale, dof))
    return float(np.clip(p, 0.0, 1.0))


def _exact_result(kind: str, prepared: _Prepared, station_probabilities: np.ndarray, rho: float, *,
                  share_source: str, note: str = "") -> DigitTest:
    """The chi-square against model-based null frequencies, its tail by a normal approximation.

    Not an exact test: the station model's parameters are plug-in estimates (shares pooled per
    area, overdispersion by moments) and the tail is that of the first-order (normal) quadratic form.

    Under the per-station model the digit counts O are a sum of independent categorical draws, with
    mean mu = sum_i P_i and covariance S = diag(mu) - sum_i P_i P_i^T (excluded draws fall outside
    the digits). The Pearson statistic against e = mu / sum(mu) is, to first order, a quadratic form
    z^T z with z ~ N(0, D^-1/2 A S A^T D^-1/2), A = I - e 1^T, D = diag(mu): a weighted sum of chi-squares
    whose weights are the eigenvalues of that matrix (Imhof 1961 gives its tail).
    """
    spec = _TESTS[kind]
    n_digits = len(spec["digits"])
    digits = extract_digit(prepared.counts[prepared.used], kind) - spec["digits"][0]
    observed = np.bincount(digits, minlength=n_digits).astype(float)
    n = int(prepared.used.sum())
    probabilities = station_probabilities[:, :n_digits]
    mu = probabilities.sum(axis=0)
    model = (f"beta-binomial per station (rho = {rho:.4g}, method of moments)" if rho > 0
             else "binomial per station (moment estimate of overdispersion <= 0)")
    null = (f"{MODEL_NULL_LABEL}: {model}, mean share {share_source} (plug-in); chi-square tail by the normal "
            "approximation, a weighted sum of chi-squares (Imhof)")
    if mu.sum() <= 0 or n == 0:
        return _finish(kind=kind, observed=observed, n=n, expected=np.full(n_digits, np.nan),
                       band=np.full((2, n_digits), np.nan), statistic=np.nan, pvalue=np.nan,
                       excluded=prepared.excluded, null=null, overdispersion=rho, note=note or "no usable counts")
    expected = mu / mu.sum()
    covariance = np.diag(mu) - probabilities.T @ probabilities
    centring = np.eye(n_digits) - np.outer(expected, np.ones(n_digits))
    centred = centring @ covariance @ centring.T
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.where(mu > 0, 1 / np.sqrt(mu), 0.0)
    weights = np.linalg.eigvalsh(scale[:, None] * centred * scale[None, :])
    statistic = float(_chi_square(observed, n, expected))
    pvalue = weighted_chi2_sf(statistic, np.clip(weights, 0, None))
    sd = np.sqrt(np.clip(np.diag(centred), 0, None)) / mu.sum()
    band = np.vstack([expected - 1.96 * sd, expected + 1.96 * sd])
    # The quadratic form's mean and sd: sum of the weights, sqrt(2 sum of their squares).
    weights = np.clip(weights, 0, None)
    return _finish(kind=kind, observed=observed, n=n, expected=expected, band=band, statistic=statistic,
                   pvalue=pvalue, excluded=prepared.excluded, null=null, overdispersion=rho, note=note,
                   null_mean=float(weights.sum()), null_sd=float(np.sqrt(2 * np.sum(weights ** 2))))


def _run(kinds: Sequence[tuple[str, int]], counts, *, null: str, totals, shares, n_sim: int, seed: int,
         notes: Mapping[str, str] | None = None, share_label: str | None = None) -> dict[str, DigitTest]:
    """Run several digit tests on one count array, sharing one set of simulated draws."""
    notes = notes or {}
    textbook = {"second": "benford", "last": "uniform", "first": "benford"}
    out = {}
    mode = _null_kind(null, textbook[kinds[0][0]])
    if mode == "textbook":
        for kind, min_count in kinds:
            prepared = _prepare(counts, position=kind, min_count=min_count)
            out[kind] = _textbook_result(kind, prepared, note=notes.get(kind, ""))
        return out
    if totals is None:
        raise ValueError(f"null={mode!r} needs totals (each station's size, e.g. its valid votes)")
    if int(n_sim) < 1:
        raise ValueError(f"n_sim must be at least 1, got {n_sim}")
    seed = int(seed)
    prepared = {kind: _prepare(counts, position=kind, min_count=m, totals=totals) for kind, m in kinds}
    first = prepared[kinds[0][0]]
    sim_totals, sim_shares, _, rho, source = _model(first, shares, share_label)
    if mode == "exact":
        probabilities = station_digit_probabilities_for(sim_totals, sim_shares, rho, kinds)
        for (kind, _), station_probabilities in zip(kinds, probabilities):
            out[kind] = _exact_result(kind, prepared[kind], station_probabilities, rho, share_source=source,
                                      note=notes.get(kind, ""))
        return out
    if len(sim_totals) == 0:
        simulated = [np.zeros((int(n_sim), 11), dtype=np.int64) for _ in kinds]
    else:
        simulated = _simulate_digit_counts(sim_totals, sim_shares, rho, kinds, int(n_sim), seed)
    for (kind, _), sim in zip(kinds, simulated):
        out[kind] = _simulated_result(kind, prepared[kind], sim, rho=rho, n_sim=int(n_sim), seed=seed,
                                      share_source=source, note=notes.get(kind, ""))
    return out


# ------------------------------------------------------------------------------------ kernels
_SPAN_NOTE = ("counts span less than two orders of magnitude: Benford's law does not apply, "
              "a deviation is not evidence of anything")


def benford_tests(counts, *, tests: Sequence[str] = ("first", "second", "first two", "last"),
                  min_count: int = 10) -> dict[str, DigitTest]:
    """Textbook digit tests on one array of counts in a single pass: Benford first, second and first
    two digits (Nigrini 2012, ch. 5; Mebane 2006) and uniform last digits (Beber & Scacco 2012).

    Each count's decimal length is found once and every digit follows from its leading two digits,
    so the four tests cost about as much as one. Exclusions are counted per test as in the single
    kernels (``first_digit_test`` and friends call this). ``note`` warns when the middle 98 % of the
    usable counts spans less than two orders of magnitude (then Benford's law does not apply).
    """
    tests = tuple(tests)
    unknown = [t for t in tests if t not in ("first", "second", "first two", "last")]
    if unknown:
        raise ValueError(f"unknown digit tests {unknown!r}: choose among 'first', 'second', 'first two', 'last'")
    min_count = int(min_count)
    if min_count < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count}")
    ints, missing, bad = as_counts(counts, "counts")   # unusable counts are 0 here
    base = {"missing": int(missing.sum()), "negative or fractional": int(bad.sum())}
    n_unusable = base["missing"] + base["negative or fractional"]
    n_digits = np.searchsorted(_POW10, ints, side="right")
    # The leading two digits (10..99), or the number itself when it has one digit (0..9).
    lead = ints // _POW10[np.maximum(n_digits - 2, 0)]
    lead_counts = np.bincount(lead, minlength=100)
    zeros = int(lead_counts[0]) - n_unusable
    one_digit = int(lead_counts[1:10].sum())
    length_counts = np.bincount(n_digits, minlength=2)[1:]   # how many usable counts have 1, 2, ... digits
    note = ""
    if length_counts.sum():
        cumulative = np.cumsum(length_counts) / length_counts.sum()
        low, high = np.searchsorted(cumulative, 0.01), np.searchsorted(cumulative, 0.99)
        if high - low < 2:
            note = _SPAN_NOTE
    out: dict[str, DigitTest] = {}
    two = lead_counts[10:100].astype(float)
    for kind in tests:
        if kind == "first":
            observed = two.reshape(9, 10).sum(axis=1) + lead_counts[1:10]
            out[kind] = _textbook_from_counts(kind, observed, {**base, "zero": zeros}, note)
        elif kind == "second":
            observed = two.reshape(9, 10).sum(axis=0)
            out[kind] = _textbook_from_counts(kind, observed, {**base, "zero": zeros, "one digit (< 10)": one_digit})
        elif kind == "first two":
            out[kind] = _textbook_from_counts(kind, two, {**base, "zero": zeros, "one digit (< 10)": one_digit}, note)
        else:
            small = np.bincount(ints[ints < min_count], minlength=max(min_count, 1)) if min_count else np.zeros(1, int)
            below = int(small.sum()) - n_unusable if min_count else 0
            last = np.bincount(ints % 10, minlength=10).astype(float)
            if min_count:
                last -= np.bincount(np.arange(len(small)) % 10, weights=small, minlength=10)
            else:
                last[0] -= n_unusable  # unusable counts were set to 0
            excluded = {**base, f"below min_count ({min_count})": below} if min_count else dict(base)
            out[kind] = _textbook_from_counts(kind, last, excluded)
    return out


def first_digit_test(counts) -> DigitTest:
    """First-digit (1BL) Pearson chi-square against Benford, 8 df; textbook null only (Nigrini 2012, ch. 5).

    Meaningful only for counts spanning several orders of magnitude (kecamatan and above); when
    the middle 98 % of the counts spans less than two orders of magnitude the result says so in
    ``note``: at TPS level a 1BL deviation is never evidence.
    """
    return benford_tests(counts, tests=("first",))["first"]


def first_two_digits_test(counts) -> DigitTest:
    """First-two-digits Pearson chi-square against Benford, P(d) = log10(1 + 1/d), d = 10..99, 89 df (Nigrini 2012, ch. 5).

    Counts below 10 have no first two digits and are excluded (counted). Like the first-digit test
    it needs counts spanning several orders of magnitude; ``note`` says when they do not.
    """
    return benford_tests(counts, tests=("first two",))["first two"]


@dataclass(frozen=True, eq=False)
class PairTest:
    """Beber & Scacco's (2012, Political Analysis 20:211) tests on the last two digits of counts.

    People who invent numbers repeat a digit too rarely and put neighbouring digits side by side too
    often. Null: the last two digits of counts of at least ``min_count`` (>= 10) are uniform over
    00..99, so a repeated pair (11, 22, ...) has probability 0.1 and an adjacent pair (|tens - units|
    = 1 mod 10, e.g. 12, 21, 90) 0.2; each share has an exact two-sided binomial test (scipy).
    """

    n: int
    excluded: Mapping[str, int]
    repeated: int
    adjacent: int
    repeated_pvalue: float
    adjacent_pvalue: float
    min_count: int
    null: str = "uniform last two digits: repeated 0.1, adjacent 0.2 (binomial)"
    expected_repeated: float = 0.1
    expected_adjacent: float = 0.2

    @property
    def repeated_share(self) -> float:
        return self.repeated / self.n if self.n else np.nan

    @property
    def adjacent_share(self) -> float:
        return self.adjacent / self.n if self.n else np.nan

    def to_frame(self) -> pd.DataFrame:
        """Two rows (repeated, adjacent pairs): count, share, expected share, binomial p-value, n."""
        return pd.DataFrame({
            "test": ["repeated final pair", "adjacent final pair"],
            "count": [self.repeated, self.adjacent],
            "share": [self.repeated_share, self.adjacent_share],
            "expected_share": [self.expected_repeated, self.expected_adjacent],
            "pvalue": [self.repeated_pvalue, self.adjacent_pvalue],
            "n": [self.n, self.n],
            "excluded": [int(sum(self.excluded.values()))] * 2,
            "null": [self.null] * 2,
        })

    def _repr_html_(self) -> str:
        excluded = ", ".join(f"{k}: {v:,}" for k, v in self.excluded.items() if v) or "none"
        title = f"Last-two-digit pair tests (Beber & Scacco 2012); n = {self.n:,}; excluded: {excluded}"
        return (f"<p><b>{html.escape(title)}</b></p>\n"
                + frame_html(self.to_frame()))


def _pair_codes(values: np.ndarray, min_count: int) -> np.ndarray:
    """0 for a repeated final pair, 1 for an adjacent one, 2 for neither, 3 for a count below min_count."""
    tens, units = (values // 10) % 10, values % 10
    code = np.where(tens == units, 0, np.where(((tens - units) % 10 == 1) | ((units - tens) % 10 == 1), 1, 2))
    return np.where(values >= min_count, code, 3)


def last_pair_test(counts, *, min_count: int = 10, null: str = "binomial", totals=None, shares=None) -> PairTest:
    """Repeated and adjacent final digit pairs against 10 % and 20 % (Beber & Scacco 2012, section 3).

    Counts below ``min_count`` (at least 10: a pair needs two digits) are excluded and counted.
    ``null="binomial"``: the textbook shares and exact binomial tests. ``null="model"`` (old name
    ``"exact"``; a model-based normal approximation, not an exact test): each
    station's probability of a repeated or adjacent pair under its own (beta-)binomial model (size
    ``totals``, mean share pooled or ``shares``, overdispersion by moments, as the calibrated digit
    nulls); the number of pairs is then a sum of independent Bernoullis with exact mean and
    variance, tested two-sided on the normal approximation without continuity correction (an
    approximation to the mid-p test). TPS-sized counts are not uniform over 00..99, so the
    binomial null is off at that scale.
    """
    min_count = int(min_count)
    if min_count < 10:
        raise ValueError(f"min_count must be at least 10 (a pair needs two digits), got {min_count}")
    mode = str(null).lower()
    if mode not in ("binomial", "textbook", *MODEL_NULL_NAMES):
        raise ValueError(f"null must be 'binomial' (or 'textbook') or 'model' (old name 'exact'), not {null!r}")
    mode = "exact" if mode in MODEL_NULL_NAMES else mode
    if mode == "exact" and totals is None:
        raise ValueError(f"null={null!r} needs totals (each station's size, e.g. its valid votes)")
    prepared = _prepare(counts, position="last", min_count=min_count,
                        totals=totals if mode == "exact" else None)
    used = prepared.counts[prepared.used]
    code = _pair_codes(used, min_count)
    repeated, adjacent = int(np.sum(code == 0)), int(np.sum(code == 1))
    n = len(used)
    if mode != "exact":
        pvalue = (lambda k, p: float(stats.binomtest(k, n, p).pvalue) if n else np.nan)
        return PairTest(n=n, excluded=dict(prepared.excluded), repeated=repeated, adjacent=adjacent,
                        repeated_pvalue=pvalue(repeated, 0.1), adjacent_pvalue=pvalue(adjacent, 0.2),
                        min_count=min_count)
    sim_totals, sim_shares, _, rho, source = _model(prepared, shares)
    top = int(sim_totals.max(initial=0))
    onehot = np.eye(4)[_pair_codes(np.arange(top + 1), min_count)]
    probabilities = _station_pmf_sums(sim_totals, sim_shares, rho, onehot)
    tested = probabilities[:, :3].sum(axis=1)  # P(the count has a pair at all)
    pvalues, expected_shares = [], []
    for column, k in ((0, repeated), (1, adjacent)):
        # Conditional on which stations have a pair would be exact; the unconditional count given
        # n is close when almost every station has one (TPS counts are mostly >= 10).
        with np.errstate(invalid="ignore", divide="ignore"):
            p_given = np.where(tested > 0, probabilities[:, column] / tested, 0.0)
        mean = float(np.sum(tested * p_given))
        variance = float(np.sum(probabilities[:, column] * (1 - probabilities[:, column])))
        expected_shares.append(mean / tested.sum() if tested.sum() > 0 else np.nan)
        if n == 0 or variance <= 0:
            pvalues.append(np.nan)
            continue
        expected_k = n * expected_shares[-1]
        # No continuity correction: with it the two-sided test's size is ~4.2 % at alpha 0.05 for
        # ~500 TPS (measured 3.9-4.2 % on clean synthetic elections); without it the normal tail
        # approximates the mid-p value (Lancaster 1961), whose size is close to nominal on average
        # (it may be slightly liberal; measured 4.9-5.3 %).
        z = abs(k - expected_k) / np.sqrt(variance)
        pvalues.append(float(min(1.0, 2 * stats.norm.sf(z))))
    model = f"beta-binomial per station (rho = {rho:.4g})" if rho > 0 else "binomial per station"
    return PairTest(n=n, excluded=dict(prepared.excluded), repeated=repeated, adjacent=adjacent,
                    repeated_pvalue=pvalues[0], adjacent_pvalue=pvalues[1], min_count=min_count,
                    null=f"{MODEL_NULL_LABEL}: {model}, mean share {source} (plug-in); normal approximation to "
                         "the sum of Bernoullis, no continuity correction",
                    expected_repeated=float(expected_shares[0]), expected_adjacent=float(expected_shares[1]))


def second_digit_test(counts, *, null: str = "benford", totals=None, shares=None, n_sim: int = 1000,
                      seed: int = 0) -> DigitTest:
    """Second-digit (2BL) Pearson chi-square (Mebane 2006, 2007), against Benford or a simulated null.

    ``null="benford"``: textbook 2BL frequencies, chi-square with 9 df. ``null="simulated"``: each
    station's count is redrawn ``n_sim`` times from a beta-binomial with size ``totals[i]``, mean
    share the pooled share (or ``shares[i]``) and the method-of-moments overdispersion
    (``overdispersion_moments``); the statistic is the chi-square against the mean simulated digit
    frequencies and the p-value (1 + #{draws with statistic >= observed}) / (1 + n_sim).
    Counts below 10 have no second digit and are excluded (counted), in the data and in every draw.
    """
    return _run([("second", 0)], counts, null=null, totals=totals, shares=shares, n_sim=n_sim,
                seed=seed)["second"]


def last_digit_test(counts, *, min_count: int = 10, null: str = "uniform", totals=None, shares=None,
                    n_sim: int = 1000, seed: int = 0) -> DigitTest:
    """Last-digit Pearson chi-square (Beber & Scacco 2012), against uniform or a simulated null.

    Counts below ``min_count`` are excluded (counted): uniformity needs counts spread over many
    values. The simulated null is as in ``second_digit_test`` and applies the same ``min_count``
    to every draw. Nigrini defines no MAD classes for last digits: ``mad`` is reported, ``conformity``
    says there is no class.
    """
    if int(min_count) < 0:
        raise ValueError(f"min_count must be >= 0, got {min_count}")
    return _run([("last", int(min_count))], counts, null=null, totals=totals, shares=shares, n_sim=n_sim,
                seed=seed)["last"]


# ------------------------------------------------------------------------------------ election wrapper
RESULT_COLUMNS = ["region", "region_name", "column", "test", "statistic", "pvalue", "textbook_pvalue", "qvalue",
                  "n", "excluded", "mad", "mad_null", "mean_digit", "expected_mean", "null", "note"]


@dataclass(frozen=True, eq=False)
class DigitTable:
    """Digit tests per region and column, with Benjamini-Hochberg q-values per test across regions and columns."""

    results: pd.DataFrame
    level: str
    null: str
    n_sim: int
    seed: int
    details: Mapping[tuple[str, str, str], DigitTest] = field(default_factory=dict, repr=False)

    def flags(self, alpha: float = 0.05) -> pd.DataFrame:
        """Rows with q < ``alpha``: statistical irregularities, not findings of fraud."""
        return self.results[self.results["qvalue"] < alpha].reset_index(drop=True)

    def summary(self, alpha: float = 0.05) -> pd.DataFrame:
        """Per test and column: regions tested, regions with too few stations, regions flagged at q < alpha."""
        grouped = self.results.groupby(["test", "column"], sort=False)
        return pd.DataFrame({
            "regions": grouped.size(),
            "tested": grouped["pvalue"].count(),
            "flagged": grouped["qvalue"].apply(lambda q: int((q < alpha).sum())),
        }).reset_index()

    def result(self, region: str, column: str, test: str) -> DigitTest:
        """The full result of one test (for ``digit_bars``)."""
        return self.details[(str(region), str(column), str(test))]

    def to_frame(self) -> pd.DataFrame:
        return self.results.copy()

    def display(self) -> pd.DataFrame:
        """The results as a reader sees them: rounded, one null description instead of one per row."""
        shown = self.results.drop(columns=["null", "mad_null"])
        if not shown["note"].astype(bool).any():
            shown = shown.drop(columns="note")
        for column in ("pvalue", "textbook_pvalue", "qvalue"):
            shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3g}")
        for column, decimals in (("statistic", 1), ("mad", 4), ("mean_digit", 2), ("expected_mean", 2)):
            shown[column] = shown[column].map(lambda v, d=decimals: "" if pd.isna(v) else f"{v:.{d}f}")
        return shown.rename(columns={"pvalue": "p", "textbook_pvalue": "textbook p", "qvalue": "q",
                                     "statistic": "chi-square", "mean_digit": "mean digit",
                                     "expected_mean": "expected mean"})

    def _repr_html_(self) -> str:
        kinds = {re.sub(r" \(rho = [^)]*\)", "", str(n).split(";")[0]) for n in self.results["null"] if str(n)}
        title = (f"Digit tests per {self.level}; null: {'; '.join(sorted(kinds)) or self.null}"
                 + (f" ({self.n_sim} draws, seed {self.seed})" if self.null == "simulated" else "")
                 + "; q-values: Benjamini-Hochberg per test across regions and columns"
                 + "; overdispersion per row in to_frame()")
        return (f"<p><b>{html.escape(title)}</b></p>\n"
                + frame_html(self.display()))


def candidate_votes(election) -> np.ndarray:
    """Each station's size for its candidates' counts: the sum of the candidates where every one is
    published, the published valid votes elsewhere; or, when the candidates do not make up the valid
    votes (they add up to them on fewer than half the stations where both are published: a table
    with only some contestants' columns), the published valid votes, their sum where those are missing.

    The model-based and simulated nulls draw each count out of its station's size. A size that
    contradicts the counts (valid votes misread by OCR, e.g. a digit inserted) puts that station's
    null far from its count and moves its area's pooled share; on a fixed share of stations the
    chi-square then grows with the region's number of stations (5 % of 20,000 clean stations with
    a misread total: second digit p = 6e-254 against the published totals, 0.72 against the sums).
    Where valid votes equal the candidates' sum, as on every form that adds up, nothing changes.
    """
    valid = election.column("valid") if "valid" in election.table.columns else np.full(len(election.table), np.nan)
    if not election.candidates:
        return valid
    candidate_sum = election.table[list(election.candidates)].sum(axis=1, skipna=False)
    candidate_sum = candidate_sum.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
    both = np.isfinite(candidate_sum) & np.isfinite(valid)
    if both.any() and np.mean(candidate_sum[both] == valid[both]) < 0.5:
        return np.where(np.isfinite(valid), valid, candidate_sum)
    return np.where(np.isfinite(candidate_sum), candidate_sum, valid)


def digit_tests(election, *, level: str, columns: Sequence[str] | None = None,
                tests: Sequence[str] = ("second", "last"), null: str = "simulated", n_sim: int = 1000,
                seed: int = 0, min_stations: int = 50, min_count: int = 10,
                totals: str | None = None, share_level: str | None = None) -> DigitTable:
    """Second- and/or last-digit tests per region at ``level`` and per column, with BH q-values.

    Kernels: ``second_digit_test`` (Mebane 2006) and ``last_digit_test`` (Beber & Scacco 2012);
    q-values by Benjamini & Hochberg (1995) (statsmodels ``multipletests``, fdr_bh), one family per
    test across all regions and columns. ``columns`` default to the candidates; a station's size
    (``totals``) is, for a candidate, the sum of the candidates (the published ``valid`` votes where a
    candidate is missing; ``candidate_votes``: a misread total must not move the null) and, for any other column, its ``registered`` voters, unless a size
    column is named. ``null`` is "simulated", "model" (old name "exact": each station's
    beta-binomial model with plug-in parameters, the chi-square's tail by a normal approximation;
    not an exact test) or "textbook" (Benford for second digits, uniform for last). Each (region, column) gets its own seed derived from ``seed``, the
    region code and the column, and the second- and last-digit tests of a pair share its draws, so
    a row is reproduced by calling the kernel with that seed. Regions with fewer than
    ``min_stations`` usable counts get a "too few" row, not a test. The simulated null's mean
    share is the region's pooled share, or with ``share_level`` (a finer level, e.g. "district")
    the pooled share of each station's area at that level (``group_shares``): a region that mixes
    areas of different support is otherwise tested against too narrow a null.
    """
    from statsmodels.stats.multitest import multipletests

    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    columns = tuple(election.candidates if columns is None else columns)
    if not columns:
        raise ValueError("no columns to test (the election has no candidates)")
    unknown = [c for c in columns if c not in election.table.columns]
    if unknown:
        raise KeyError(f"not columns of this election: {', '.join(map(str, unknown))}")
    tests = tuple(tests)
    bad = [t for t in tests if t not in ("second", "last")]
    if bad or not tests:
        raise ValueError(f"tests must be among 'second' and 'last', got {tests!r}")
    key = str(null).lower()
    mode = "exact" if key in MODEL_NULL_NAMES else key if key == "simulated" else "textbook"
    if mode == "textbook" and key not in ("textbook", "benford", "uniform"):
        raise ValueError(f"null must be 'simulated', 'model' (old name 'exact') or 'textbook', not {null!r}")

    table = election.table
    if totals is not None and totals not in table.columns:
        raise KeyError(f"totals column {totals!r} is not in the election")
    valid = candidate_votes(election)

    def station_size(column: str) -> np.ndarray:
        # A candidate's votes are out of the valid votes; any other count (valid, voters, ...) out
        # of the registered voters, unless the caller names the size column.
        if totals is not None:
            return election.column(totals)
        return valid if column in election.candidates else election.column("registered")

    sizes = {c: station_size(c) for c in columns}
    if share_level is not None and share_level not in election.levels:
        raise KeyError(f"share_level {share_level!r} is not a level of this election ({', '.join(election.levels)})")
    share_groups = table[share_level].astype(str).to_numpy() if share_level is not None else None
    regions = table[level].astype(str).to_numpy()
    name_col = f"{level}_name"
    names = table[name_col].astype(str).to_numpy() if name_col in table.columns else None
    values = {c: election.column(c) for c in columns}
    kinds = [(t, int(min_count) if t == "last" else 0) for t in tests]

    rows, details = [], {}
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        region_name = str(names[mask][0]) if names is not None else ""
        for column in columns:
            counts = values[column][mask]
            region_totals = sizes[column][mask] if mode != "textbook" else None
            column_seed = region_seed(seed, region, column, wide=True)
            base = {"region": region, "region_name": region_name, "column": column}
            try:
                usable = {kind: int(_prepare(counts, position=kind, min_count=m, totals=region_totals).used.sum())
                          for kind, m in kinds}
                runnable = [(k, m) for k, m in kinds if usable[k] >= min_stations]
                shares = (group_shares(counts, region_totals, share_groups[mask])
                          if runnable and mode != "textbook" and share_groups is not None else None)
                results = (cached(_run)(runnable, counts, null=mode,
                                totals=region_totals, shares=shares, n_sim=n_sim, seed=column_seed,
                                share_label=f"pooled per {share_level}")
                           if runnable else {})
            except InsufficientData as err:
                # Only the data errors the kernels raise on purpose: a region whose data cannot
                # support a test stays as a row with the reason. A caller's error (a wrong column,
                # a wrong parameter, a bug) propagates instead of becoming a NaN row.
                for kind, _ in kinds:
                    rows.append({**base, "test": _TESTS[kind]["name"], "n": 0, "note": f"not tested: {err}"})
                continue
            for kind, _ in kinds:
                name = _TESTS[kind]["name"]
                if kind not in results:
                    rows.append({**base, "test": name, "n": usable[kind],
                                 "note": f"too few usable stations ({usable[kind]} < {min_stations})"})
                    continue
                result = results[kind]
                details[(region, column, name)] = result
                rows.append({**base, "test": name, "statistic": result.statistic, "pvalue": result.pvalue,
                             "textbook_pvalue": result.textbook_pvalue, "n": result.n,
                             "excluded": int(sum(result.excluded.values())), "mad": result.mad,
                             "mad_null": result.mad_null, "mean_digit": result.mean_digit,
                             "expected_mean": result.expected_mean, "null": result.null, "note": result.note})
    results = pd.DataFrame(rows, columns=[c for c in RESULT_COLUMNS if c != "qvalue"])
    for col in ("statistic", "pvalue", "textbook_pvalue", "mad", "mad_null", "mean_digit", "expected_mean"):
        results[col] = results[col].astype(float)
    results["n"] = results["n"].fillna(0).astype(int)
    results["excluded"] = results["excluded"].astype("Int64")
    results["null"] = results["null"].astype(object).fillna("").astype(str)
    results["note"] = results["note"].astype(object).fillna("").astype(str)
    results["qvalue"] = np.nan
    for kind, _ in kinds:
        where = (results["test"] == _TESTS[kind]["name"]) & results["pvalue"].notna()
        if where.any():
            results.loc[where, "qvalue"] = multipletests(results.loc[where, "pvalue"].to_numpy(), method="fdr_bh")[1]
    null_label = MODEL_NULL_LABEL if mode == "exact" else mode
    results = results[RESULT_COLUMNS]
    return DigitTable(results=results, level=level, null=null_label, n_sim=int(n_sim) if mode == "simulated" else 0,
                      seed=int(seed), details=details)


def pair_tests(election, *, level: str, columns: Sequence[str] | None = None, null: str = "exact",
               share_level: str | None = None, min_stations: int = 50, min_count: int = 10) -> pd.DataFrame:
    """Beber & Scacco's repeated and adjacent final-pair tests per region and column, with BH q-values.

    One row per (region, column, test) with the observed and expected shares; ``null="exact"``
    (default; also "model", its honest name: a model-based normal approximation, not an exact
    test) uses each station's own (beta-)binomial model as ``last_pair_test`` does, with mean
    shares pooled per region or per ``share_level`` area; "binomial" uses the textbook 10 % / 20 %.
    q-values: Benjamini-Hochberg per test across regions and columns (statsmodels).
    """
    from statsmodels.stats.multitest import multipletests

    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    if share_level is not None and share_level not in election.levels:
        raise KeyError(f"share_level {share_level!r} is not a level of this election")
    columns = tuple(election.candidates if columns is None else columns)
    table = election.table
    regions = table[level].astype(str).to_numpy()
    groups = table[share_level].astype(str).to_numpy() if share_level else regions
    name_col = f"{level}_name"
    names = table[name_col].astype(str).to_numpy() if name_col in table.columns else None
    valid = candidate_votes(election)
    rows = []
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        for column in columns:
            counts = election.column(column)[mask]
            base = {"region": region, "region_name": str(names[mask][0]) if names is not None else "", "column": column}
            extra = {}
            if str(null).lower() in MODEL_NULL_NAMES:
                extra = {"totals": valid[mask], "shares": group_shares(counts, valid[mask], groups[mask])}
            try:
                result = cached(last_pair_test)(counts, min_count=min_count, null=null, **extra)
            except InsufficientData as err:  # only data errors raised on purpose; a wrong null propagates
                rows.append({**base, "test": "final pairs", "n": 0, "note": f"not tested: {err}"})
                continue
            frame = result.to_frame()
            for _, r in frame.iterrows():
                enough = result.n >= min_stations
                rows.append({**base, "test": r["test"], "count": r["count"], "share": r["share"],
                             "expected_share": r["expected_share"], "pvalue": r["pvalue"] if enough else np.nan,
                             "n": result.n, "null": result.null,
                             "note": "" if enough else f"too few usable stations ({result.n} < {min_stations})"})
    out = pd.DataFrame(rows, columns=["region", "region_name", "column", "test", "count", "share", "expected_share",
                                      "pvalue", "n", "null", "note"])
    out["pvalue"] = out["pvalue"].astype(float)
    out["qvalue"] = np.nan
    for test, group in out.groupby("test"):
        tested = group["pvalue"].notna()
        if tested.any():
            out.loc[group.index[tested], "qvalue"] = multipletests(group.loc[tested, "pvalue"], method="fdr_bh")[1]
    out["note"] = out["note"].fillna("")
    return out


__all__ += ["pair_tests", "weighted_chi2_sf", "station_digit_probabilities", "MODEL_NULL_LABEL", "MODEL_NULL_NAMES"]


def region_total_tests(election, *, level: str, columns: Sequence[str] | None = None,
                       tests: Sequence[str] = ("first", "first two", "second")) -> pd.DataFrame:
    """Benford tests on the totals of the regions at ``level`` (e.g. every kecamatan's votes per candidate).

    First-digit laws are only worth testing on counts that span several orders of magnitude, which
    TPS counts never do and kecamatan or kabupaten totals sometimes do (Nigrini 2012, ch. 5;
    Mebane 2006). One row per column and test with the textbook statistic, p-value, MAD and
    Nigrini's class; ``note`` says when the totals span less than two orders of magnitude, in
    which case the row is a description, not evidence (Deckert, Myagkov & Ordeshook 2011).
    """
    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    columns = tuple(election.candidates if columns is None else columns)
    totals = election.totals(level)
    rows = []
    for column in columns:
        results = benford_tests(totals[column].astype("Float64").to_numpy(dtype=float, na_value=np.nan),
                                tests=tuple(tests))
        for kind, result in results.items():
            rows.append({"column": column, "test": result.name, "regions": len(totals), "n": result.n,
                         "statistic": result.statistic, "dof": result.dof, "pvalue": result.pvalue,
                         "mad": result.mad, "conformity": result.conformity, "note": result.note})
    return pd.DataFrame(rows, columns=["column", "test", "regions", "n", "statistic", "dof", "pvalue", "mad",
                                       "conformity", "note"])


__all__ += ["region_total_tests"]

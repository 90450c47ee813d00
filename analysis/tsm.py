"""The TSM synthesis: are the misread numbers massive, systematic and structured, with intervals?

The Constitutional Court's test of *terstruktur, sistematis, dan masif* (methods.md, section 5)
turned into three measured questions about the numbers Sirekap read wrongly (the output of
``consistency.find_misreadings``: one row per suspected misread number with ``unit_id``, ``field``,
``reported``, ``proposed``, ``edit``, ``confidence``, ``unique``):

- *massive* (masif): how many TPS and votes the misreadings touch, the net votes each candidate
  gains from them (reported minus repaired) with a bootstrap interval over TPS widened by what the
  unrepaired forms allow, against the winning margin and the 50 % threshold;
- *systematic* (sistematis): do the misreadings favour one candidate more often than a random OCR
  error would at those very forms? Exact Poisson-binomial test per region (Hong 2013, Comput. Stat.
  Data Anal. 59:41, for the distribution) against an edit model estimated from the misreadings
  that cannot favour anyone (valid, invalid, ballots, voters, DPT numbers), Benjamini-Hochberg
  q-values across regions and candidates;
- *structured* (terstruktur): are the misread TPS concentrated in provinces, kabupaten,
  kecamatan or upload hours beyond chance? Share of the variance of the misread indicator between
  groups at each level, against a permutation null that shuffles misreadings within the parent
  level (an exact multivariate-hypergeometric shuffle).

A scorecard writes each answer as a sentence with its numbers. What these data cannot show: the
C1 (C.Hasil) photos are not read here, so a repair is a proposal from arithmetic, not the form's
true value; a misreading that keeps every rule of the form true is invisible; and no statistic
tells an OCR fault from intent. Words: "irregularity", never "fraud".
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from .consistency import CONFUSION_WEIGHTS, hard_cap, one_edit_originals
from .display import frame_html

__all__ = [
    "MISREADING_COLUMNS",
    "EditModel",
    "Massive",
    "Systematic",
    "Structured",
    "TSMResult",
    "misreading_table",
    "classify_edit",
    "confusion_up",
    "edit_model",
    "poisson_binomial_pmf",
    "massive",
    "systematic",
    "structured",
    "tsm",
]

#: The columns ``find_misreadings`` promises (extra columns are kept).
MISREADING_COLUMNS = ("unit_id", "field", "reported", "proposed", "edit", "confidence", "unique")
#: Edit kinds an OCR makes to a handwritten digit box.
EDIT_KINDS = ("inserted", "dropped", "substituted", "swapped")
#: What no number here can show (said in every scorecard).
CANNOT_SHOW = (
    "Not shown by these data: the C1 (C.Hasil) photos are not read here, so every repair is a "
    "proposal from the form's arithmetic, not the number on the paper; a misreading that keeps "
    "every rule of the form true cannot be seen; and no statistic tells an OCR fault from intent. "
    "Tidak terlihat dari data ini: foto C1 tidak dibaca di sini."
)
#: How many rows ``_repr_html_`` shows per table.
HTML_ROWS = 40


# ------------------------------------------------------------------------------------ input
def misreading_table(misreadings: Any, election=None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The misreadings as a clean table, and the rows that cannot be used with their reason.

    Accepts the DataFrame of ``find_misreadings`` or a result object with ``.table`` or
    ``to_frame()``. With ``election``: rows of TPS outside it, or of fields it lacks, are rejects.
    """
    if isinstance(misreadings, pd.DataFrame):
        frame = misreadings
    elif hasattr(misreadings, "table") and isinstance(misreadings.table, pd.DataFrame):
        frame = misreadings.table
    elif hasattr(misreadings, "to_frame"):
        frame = misreadings.to_frame()
    else:
        raise TypeError(f"expected a misreadings DataFrame or result object, got {type(misreadings).__name__}")
    frame = frame.reset_index(drop=frame.index.name != "unit_id") if "unit_id" not in frame.columns else frame
    missing = [c for c in ("unit_id", "field", "reported", "proposed") if c not in frame.columns]
    if missing:
        raise ValueError(f"misreadings lack the columns {', '.join(missing)} (expected {', '.join(MISREADING_COLUMNS)})")
    out = frame.reset_index(drop=True).copy()
    out["unit_id"] = out["unit_id"].astype(str)
    out["field"] = out["field"].astype(str)
    out["reported"] = pd.to_numeric(out["reported"], errors="coerce").astype("Int64")
    out["proposed"] = pd.to_numeric(out["proposed"], errors="coerce").astype("Int64")
    out["edit"] = out["edit"].fillna("").astype(str) if "edit" in out else ""
    out["confidence"] = pd.to_numeric(out["confidence"], errors="coerce") if "confidence" in out else np.nan
    out["unique"] = out["unique"].fillna(False).astype(bool) if "unique" in out else False
    reasons = pd.Series("", index=out.index)
    reasons[out["reported"].isna()] = "no reported number"
    if election is not None:
        # Plain sets: Series.isin against a large arrow-string index is slow (one scalar per value).
        units, columns = set(election.table.index), set(election.table.columns)
        reasons[(reasons == "") & ~out["unit_id"].map(units.__contains__).astype(bool)] = "TPS not in this election"
        reasons[(reasons == "") & ~out["field"].map(columns.__contains__).astype(bool)] = "field not a column of this election"
    rejects = out[reasons != ""].assign(reason=reasons[reasons != ""])
    return out[reasons == ""].reset_index(drop=True), rejects.reset_index(drop=True)


def classify_edit(written: int, read: int) -> str:
    """Which single edit turns the written number into the one read: inserted, dropped,
    substituted, swapped (adjacent digits), or "other" (more than one edit, or none)."""
    a, b = str(int(written)), str(int(read))
    if a == b:
        return "other"
    if len(b) == len(a) + 1:
        return "inserted" if any(b[:i] + b[i + 1:] == a for i in range(len(b))) else "other"
    if len(b) == len(a) - 1:
        return "dropped" if any(a[:i] + a[i + 1:] == b for i in range(len(a))) else "other"
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return "substituted"
        if len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]:
            return "swapped"
    # A leading zero lost by an edit ("105" -> "05" = 5) also counts as dropped.
    if len(b) < len(a) and any(str(int(a[:i] + a[i + 1:])) == b for i in range(len(a))):
        return "dropped"
    return "other"


# ------------------------------------------------------------------------------------ edit model
@dataclass(frozen=True)
class EditModel:
    """What a random OCR misreading does to a number: the edit kinds' probabilities, and for a
    confused digit d the chance it is read as a larger one. Estimated from reference misreadings."""

    kinds: Mapping[str, float]  # inserted, dropped, substituted, swapped -> probability
    up_substituted: tuple[float, ...]  # digit 0..9 -> P(read larger | that digit confused)
    n_reference: int
    reference: str  # which misreadings the model was estimated from
    hit: str = "equal"  # how a candidate's number is chosen: "equal" or "digits"

    def p_up(self, values: Any) -> np.ndarray:
        """P(read > written | one random edit of the written number), per value."""
        values = np.asarray(values, dtype=np.int64)
        unique, inverse = np.unique(values, return_inverse=True)
        table = np.array([self._p_up_one(int(v)) for v in unique])
        return table[inverse].reshape(values.shape)

    def _p_up_one(self, value: int) -> float:
        s = str(value)
        k = self.kinds
        weights, ups = [k["inserted"]], [1.0]  # an insertion (never a leading 0) always reads larger
        if len(s) >= 2:
            weights.append(k["dropped"])
            ups.append(0.0)
        weights.append(k["substituted"])
        ups.append(float(np.mean([self.up_substituted[int(d)] for d in s])))
        pairs = [(s[i], s[i + 1]) for i in range(len(s) - 1) if s[i] != s[i + 1]]
        if pairs:
            weights.append(k["swapped"])
            ups.append(float(np.mean([a < b for a, b in pairs])))
        weights = np.array(weights)
        return float(np.dot(weights, ups) / weights.sum()) if weights.sum() > 0 else 0.5

    def hit_probabilities(self, written: np.ndarray) -> np.ndarray:
        """Per row of candidate numbers: the chance a misreading lands on each candidate."""
        written = np.asarray(written, dtype=np.int64)
        if self.hit == "digits":
            size = np.vectorize(lambda v: len(str(int(v))))(written).astype(float)
        else:
            size = np.ones(written.shape)
        return size / size.sum(axis=1, keepdims=True)

    def describe(self) -> str:
        kinds = ", ".join(f"{k} {100 * v:.0f} %" for k, v in self.kinds.items())
        hit = ("each candidate's number equally likely to be the one misread (the form has the same "
               "digit boxes for every candidate)" if self.hit == "equal"
               else "a candidate's number misread with probability proportional to its written digits")
        return (f"random OCR edits: {kinds} (estimated from {self.n_reference:,} {self.reference}); "
                f"{hit}; a confused digit read larger or smaller as those misreadings show, "
                f"shrunk towards the symmetric confusion weights of consistency.CONFUSION_WEIGHTS")

    def to_frame(self) -> pd.DataFrame:
        rows = [("kind", k, v) for k, v in self.kinds.items()]
        rows += [("digit confused read larger", str(d), v) for d, v in enumerate(self.up_substituted)]
        return pd.DataFrame(rows, columns=["part", "value", "probability"])

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.describe())}</p>" + frame_html(self.to_frame())


def confusion_up(weights: Mapping[tuple[str, str], float] = CONFUSION_WEIGHTS) -> np.ndarray:
    """Per written digit d: P(read as a larger digit | d confused), from symmetric pair weights
    (pairs not listed weigh 1), the prior of ``edit_model``."""
    w = np.ones((10, 10))
    for (a, b), value in weights.items():
        w[int(a), int(b)] = w[int(b), int(a)] = float(value)
    np.fill_diagonal(w, 0.0)
    return np.array([w[d, d + 1:].sum() / w[d].sum() for d in range(10)])


def edit_model(misreadings: pd.DataFrame, candidates: Sequence[str], *, min_reference: int = 30,
               hit: str = "equal", prior_weight: float = 2.0) -> EditModel:
    """Estimate the random-OCR edit model from misreadings that cannot favour a candidate.

    Reference: repaired misreadings of non-candidate numbers (valid, invalid, ballots, voters,
    DPT...), when there are at least ``min_reference``; else every repaired misreading (said in
    ``reference``: a directed manipulation then leaks into its own null and makes it conservative).
    Kinds: Dirichlet(1)-smoothed frequencies of ``classify_edit(proposed, reported)``. Confusions:
    for each digit, the share read larger, shrunk towards ``confusion_up()`` (the project's symmetric
    confusion weights, ``consistency.CONFUSION_WEIGHTS``) with ``prior_weight`` pseudo-observations.
    """
    if hit not in ("equal", "digits"):
        raise ValueError(f"hit must be 'equal' or 'digits', not {hit!r}")
    repaired = misreadings[misreadings["proposed"].notna()]
    reference = repaired[~repaired["field"].isin(list(candidates))]
    label = "misreadings of numbers that are not a candidate's"
    if len(reference) < min_reference:
        reference, label = repaired, "repaired misreadings of every field (too few non-candidate ones)"
    written = reference["proposed"].astype(np.int64).to_numpy()
    read = reference["reported"].astype(np.int64).to_numpy()
    kinds = np.array([classify_edit(w, r) for w, r in zip(written, read)], dtype=object)
    counts = np.array([(kinds == k).sum() for k in EDIT_KINDS], dtype=float) + 1.0
    probabilities = dict(zip(EDIT_KINDS, counts / counts.sum()))
    up = np.zeros(10)
    n = np.zeros(10)
    for w, r, k in zip(written, read, kinds):
        if k != "substituted":
            continue
        a, b = str(w), str(r)
        i = next(i for i in range(len(a)) if a[i] != b[i])
        n[int(a[i])] += 1
        up[int(a[i])] += b[i] > a[i]
    up_sub = (up + prior_weight * confusion_up()) / (n + prior_weight)
    return EditModel(kinds=probabilities, up_substituted=tuple(float(x) for x in up_sub),
                     n_reference=int(len(reference)), reference=label, hit=hit)


def poisson_binomial_pmf(p: Any) -> np.ndarray:
    """Exact distribution of a sum of independent Bernoulli(p_i) (recursive convolution; Hong 2013)."""
    pmf = np.zeros(len(p) + 1)
    pmf[0] = 1.0
    for i, pi in enumerate(np.asarray(p, dtype=float)):
        pmf[1:i + 2] = pmf[1:i + 2] * (1 - pi) + pmf[:i + 1] * pi
        pmf[0] *= 1 - pi
    return pmf


# ------------------------------------------------------------------------------------ helpers
def _scope_keys(election, level: str | None) -> pd.Series:
    """Per TPS: the region code at ``level`` (or one national region "all")."""
    if level is None:
        return pd.Series("all", index=election.table.index)
    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    return election.table[level].astype(str)


def _names(election, level: str | None) -> dict[str, str]:
    """Region code -> display name at ``level``, and "all" -> the scope's name (national, or the
    one region at a coarser level that the whole election lies in)."""
    out = {"all": "national"}
    for coarser in election.levels:
        if coarser == level:
            break
        codes = election.table[coarser].dropna().unique()
        if len(codes) == 1:
            column = f"{coarser}_name"
            names = election.table[column].dropna() if column in election.table.columns else pd.Series(dtype=str)
            out["all"] = str(names.iloc[0]) if len(names) else str(codes[0])
    column = f"{level}_name"
    if level is None or column not in election.table.columns:
        return out
    pairs = election.table[[level, column]].dropna().drop_duplicates(level)
    out.update(dict(zip(pairs[level].astype(str), pairs[column].astype(str))))
    return out


def _candidate_rows(election, table: pd.DataFrame) -> pd.DataFrame:
    """Misreadings of candidate numbers with the TPS's written candidate numbers (all repairs applied)."""
    candidates = list(election.candidates)
    rows = table[table["field"].isin(candidates)].copy()
    if rows.empty:
        return rows.assign(**{f"written_{c}": pd.Series(dtype="Int64") for c in candidates})
    written = election.table.loc[rows["unit_id"].unique(), candidates].astype("Float64").copy()
    repaired = rows[rows["proposed"].notna()]
    for unit, fld, value in zip(repaired["unit_id"], repaired["field"], repaired["proposed"]):
        written.at[unit, fld] = float(value)
    for c in candidates:
        rows[f"written_{c}"] = written.loc[rows["unit_id"], c].to_numpy()
    return rows.reset_index(drop=True)


def _fmt(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:,.0f}"


def _signed(x: float) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{x:+,.0f}"


def _html(title: str, *tables: pd.DataFrame, notes: Sequence[str] = ()) -> str:
    parts = [f"<p><b>{html.escape(title)}</b></p>"]
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    for t in tables:
        shown = t.head(HTML_ROWS)
        parts.append(frame_html(shown))
        if len(t) > len(shown):
            parts.append(f"<p>{html.escape(f'First {len(shown)} of {len(t):,} rows.')}</p>")
    return "".join(parts)


# ------------------------------------------------------------------------------------ massive
@dataclass(frozen=True, eq=False)
class Massive:
    """How many TPS and votes the misreadings touch, and what repairing them changes, per region."""

    table: pd.DataFrame  # one row per region (and "all"): TPS, misread TPS, gains per candidate with intervals, margin
    n_boot: int
    seed: int
    null: str  # how the interval was made

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _repr_html_(self) -> str:
        return _html("Massive (masif): what the misreadings touch and change", self.table, notes=[self.null])


def _gain_bounds(rows: pd.DataFrame, cap: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per misreading: votes gained (reported - written) as point, low, high. A repaired number
    is its own bound; an unrepaired one ranges over every number one edit away (within ``cap``)."""
    reported = rows["reported"].astype(np.int64).to_numpy()
    proposed = rows["proposed"]
    point = np.where(proposed.notna(), reported - proposed.fillna(0).astype(np.int64).to_numpy(), 0).astype(float)
    low, high = point.copy(), point.copy()
    for i in np.flatnonzero(proposed.isna().to_numpy()):
        sources = np.array([v for v, _, _ in one_edit_originals(int(reported[i])) if v <= cap], dtype=np.int64)
        if len(sources) == 0:
            sources = np.array([0, int(cap)])
        low[i], high[i] = reported[i] - sources.max(), reported[i] - sources.min()
        point[i] = np.nan
    return point, low, high


def massive(election, misreadings: Any, *, level: str | None = "province", n_boot: int = 1000,
            seed: int = 0, capacity: int | None = 300, confidence: float = 0.95) -> Massive:
    """TPS and votes touched by misreadings, and each candidate's net gain from them, per region.

    Net gain of candidate c = sum over its misread numbers of (reported - repaired). Interval:
    nonparametric bootstrap over the region's TPS (Efron & Tibshirani 1993, ch. 6; each TPS's
    gains resampled with the TPS), percentile; the unrepaired misreadings enter at the ends of what
    one OCR edit allows (low end of the lower quantile, high end of the upper). The margin and the
    winner's share after repair use the same draws. Misread TPS: Clopper-Pearson interval.
    """
    table, _ = misreading_table(misreadings, election)
    candidates = list(election.candidates)
    cap = hard_cap(capacity, 0.02, 100) if capacity is not None else np.inf
    keys = _scope_keys(election, level)
    rows = _candidate_rows(election, table)
    point, low, high = _gain_bounds(rows, cap) if len(rows) else (np.zeros(0),) * 3
    rows = rows.assign(point=point, low=low, high=high, region=keys.reindex(rows["unit_id"]).to_numpy())
    table = table.assign(region=keys.reindex(table["unit_id"]).to_numpy())
    published = election.table[candidates].notna().all(axis=1) | election.table[["valid", "voters"]].notna().any(axis=1)
    rng = np.random.default_rng(seed)
    q = ((1 - confidence) / 2, 1 - (1 - confidence) / 2)
    names = _names(election, level)
    votes = election.table[candidates].astype("Float64").fillna(0).astype(float)
    region_votes = votes.groupby(keys, sort=True).sum()
    region_tps = keys.groupby(keys, sort=True).size()
    region_published = published.groupby(keys, sort=True).sum()
    # Per TPS gain vectors (point with unrepaired at 0, low, high), candidates in columns.
    gains = {}
    for name in ("point", "low", "high"):
        frame = pd.DataFrame({"unit_id": rows["unit_id"], "field": rows["field"],
                              "v": np.nan_to_num(rows[name].to_numpy(dtype=float)) if len(rows) else np.zeros(0)})
        gains[name] = (frame.pivot_table(index="unit_id", columns="field", values="v", aggfunc="sum")
                       .reindex(columns=candidates).fillna(0.0)) if len(rows) else pd.DataFrame(columns=candidates, dtype=float)
    gain_region = keys.reindex(gains["point"].index).to_numpy()
    scopes = [("all", len(keys), int(published.sum()), votes.sum())]
    if level is not None:
        scopes += [(r, int(region_tps[r]), int(region_published[r]), region_votes.loc[r]) for r in region_tps.index]
    out = []
    for region, n_tps, n_checked, totals in scopes:
        in_scope = rows if region == "all" else rows[rows["region"] == region]
        misread_tps = table["unit_id"] if region == "all" else table.loc[table["region"] == region, "unit_id"]
        k_tps = int(misread_tps.nunique())
        lo_ci, hi_ci = proportion_confint(k_tps, max(n_checked, 1), alpha=1 - confidence, method="beta")
        row: dict[str, Any] = {
            "region": region, "name": names.get(region, region),
            "tps": n_tps, "tps_published": n_checked, "tps_misread": k_tps,
            "share_misread": k_tps / n_checked if n_checked else np.nan,
            "share_low": lo_ci if n_checked else np.nan, "share_high": hi_ci if n_checked else np.nan,
            "misreadings": int(len(misread_tps)),
            "candidate_misreadings": int(len(in_scope)),
            "unrepaired": int(in_scope["proposed"].isna().sum()) if len(in_scope) else 0,
            "votes_touched": float(np.nansum(np.abs(in_scope["point"]))) if len(in_scope) else 0.0,
        }
        select = np.ones(len(gain_region), bool) if region == "all" else gain_region == region
        g = {name: frame.to_numpy(dtype=float)[select] for name, frame in gains.items()}
        k = int(select.sum())
        if k and n_tps:
            # Only TPS with a misreading carry gains: their resampled multiplicities are the first
            # k cells of a multinomial over the region's n TPS (exact, without drawing n cells).
            weights = rng.multinomial(n_tps, np.r_[np.full(k, 1 / n_tps), max(0.0, 1 - k / n_tps)], size=n_boot)[:, :k]
        else:
            weights = np.zeros((n_boot, 0))
        boot = {name: weights @ g[name] for name in g}  # n_boot x candidates
        exact = g["low"].sum(axis=0), g["high"].sum(axis=0)
        repaired_point = totals.to_numpy() - np.nansum(g["point"], axis=0)
        for j, c in enumerate(candidates):
            row[f"reported_{c}"] = float(totals.iloc[j])
            row[f"gain_{c}"] = float(g["point"][:, j].sum()) if k else 0.0
            row[f"gain_{c}_min"], row[f"gain_{c}_max"] = float(exact[0][j]), float(exact[1][j])
            row[f"gain_{c}_low"] = float(np.quantile(boot["low"][:, j], q[0])) if k else 0.0
            row[f"gain_{c}_high"] = float(np.quantile(boot["high"][:, j], q[1])) if k else 0.0
        order = np.argsort(-totals.to_numpy(), kind="stable")
        w, r = order[0], order[1] if len(order) > 1 else order[0]
        margin = float(totals.iloc[w] - totals.iloc[r])
        total = float(totals.sum())
        # Worst case for the leader: its gains at their high end, the runner-up's at their low end.
        m_low = margin - (boot["high"][:, w] - boot["low"][:, r])
        m_high = margin - (boot["low"][:, w] - boot["high"][:, r])
        s_low = (totals.iloc[w] - boot["high"][:, w]) / (total - boot["high"][:, w] - (boot["low"].sum(axis=1) - boot["low"][:, w]))
        s_high = (totals.iloc[w] - boot["low"][:, w]) / (total - boot["low"][:, w] - (boot["high"].sum(axis=1) - boot["high"][:, w]))
        repaired_total = float(repaired_point.sum())
        row.update({
            "leader": candidates[w], "runner_up": candidates[r], "margin": margin,
            "margin_repaired": float(repaired_point[w] - repaired_point[r]),
            "margin_repaired_low": float(np.quantile(m_low, q[0])) if k else margin,
            "margin_repaired_high": float(np.quantile(m_high, q[1])) if k else margin,
            "leader_share": float(totals.iloc[w] / total) if total else np.nan,
            "leader_share_repaired": float(repaired_point[w] / repaired_total) if repaired_total else np.nan,
            "leader_share_repaired_low": float(np.quantile(s_low, q[0])) if k and total else (float(totals.iloc[w] / total) if total else np.nan),
            "leader_share_repaired_high": float(np.quantile(s_high, q[1])) if k and total else (float(totals.iloc[w] / total) if total else np.nan),
        })
        row["order_can_change"] = bool(row["margin_repaired_low"] <= 0)
        row["order_changes"] = bool(row["margin_repaired_high"] < 0)
        out.append(row)
    frame = pd.DataFrame(out)
    if level == "province" and len(frame) > 1:
        # Indonesia's first-round rule: over 50 % of the votes and at least 20 % in over half the provinces.
        regional = frame.iloc[1:]
        leader = frame.iloc[0]["leader"]
        repaired_share = ((regional[f"reported_{leader}"] - regional[f"gain_{leader}"])
                          / sum(regional[f"reported_{c}"] - regional[f"gain_{c}"] for c in candidates))
        frame.loc[0, "regions_leader_20pct"] = int((repaired_share >= 0.2).sum())
        frame.loc[0, "regions"] = len(regional)
    null = (f"{100 * confidence:.0f} % intervals: bootstrap over TPS ({n_boot:,} resamples, seed {seed}), "
            "percentile; unrepaired misreadings at the ends of what one OCR edit allows "
            f"(written numbers 0 to {_fmt(cap)})")
    return Massive(table=frame, n_boot=n_boot, seed=seed, null=null)


# ------------------------------------------------------------------------------------ systematic
@dataclass(frozen=True, eq=False)
class Systematic:
    """Per region and candidate: misreadings in the candidate's favour, observed against the
    number a random OCR error would give at the same forms, exact p-value and BH q-value."""

    table: pd.DataFrame  # region, name, candidate, misreadings, favour, expected, ratio, pvalue, qvalue, flagged
    model: EditModel
    alpha: float
    null: str

    def flagged(self) -> pd.DataFrame:
        return self.table[self.table["flagged"]]

    def flag_rows(self) -> pd.DataFrame:
        """Per region and candidate, in the shape the report's flag tables take (``test``,
        ``region``, ``statistic`` = favouring misreadings / expected, ``pvalue``, ``qvalue``)."""
        rows = self.table[self.table["region"] != "all"]
        return pd.DataFrame({"test": "misreadings favour " + rows["candidate"].astype(str),
                             "region": rows["region"].astype(str), "statistic": rows["ratio"],
                             "pvalue": rows["pvalue"], "qvalue": rows["qvalue"]}).reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _repr_html_(self) -> str:
        return _html("Systematic (sistematis): do misreadings favour one candidate?", self.table,
                     notes=[f"Null: {self.null}"])


def _favour_probabilities(rows: pd.DataFrame, candidates: Sequence[str], model: EditModel,
                          conditional: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per misreading and candidate: did it favour the candidate (observed), and the null chance.

    ``conditional``: given whether the misreading read its number larger or smaller, only which
    candidate it landed on is random: P(c | up) = h_c u_c / sum_j h_j u_j (and likewise for down).
    """
    written = rows[[f"written_{c}" for c in candidates]].to_numpy(dtype=float)
    written = np.nan_to_num(written).astype(np.int64)
    hit = model.hit_probabilities(written)
    up = model.p_up(written)
    field_index = rows["field"].map({c: i for i, c in enumerate(candidates)}).to_numpy()
    inflated = (rows["reported"].astype(np.int64) > rows["proposed"].astype(np.int64)).to_numpy()
    # Favouring c: c's number read larger, or a rival's read smaller (either raises c's share).
    null = np.empty_like(up)
    if conditional:
        up_mass, down_mass = hit * up, hit * (1 - up)
        up_mass = up_mass / np.maximum(up_mass.sum(axis=1, keepdims=True), 1e-300)
        down_mass = down_mass / np.maximum(down_mass.sum(axis=1, keepdims=True), 1e-300)
        for j in range(len(candidates)):
            null[:, j] = np.where(inflated, up_mass[:, j], 1 - down_mass[:, j])
    else:
        for j in range(len(candidates)):
            rivals = [i for i in range(len(candidates)) if i != j]
            null[:, j] = hit[:, j] * up[:, j] + (hit[:, rivals] * (1 - up[:, rivals])).sum(axis=1)
    observed = np.zeros_like(null, dtype=bool)
    for j in range(len(candidates)):
        observed[:, j] = np.where(field_index == j, inflated, ~inflated)
    return observed, null


def systematic(election, misreadings: Any, *, level: str | None = "province", alpha: float = 0.05,
               model: EditModel | None = None, hit: str = "equal", min_reference: int = 30,
               conditional: bool = False) -> Systematic:
    """Do repaired misreadings favour one candidate more than random OCR errors at the same forms?

    A misreading favours candidate c when c's number was read larger than written or a rival's
    smaller. Null: each misreading is a random OCR edit of the written form, independent of the
    candidate (``edit_model``): it lands on a candidate's number with equal chance (or in
    proportion to its digits), and reads it larger with the chance that edit kinds and confusions
    give for those digits. The count of favouring misreadings is then Poisson-binomial; the
    one-sided exact p-value is P(K >= observed). BH q-values across every region x candidate tested
    (Benjamini & Hochberg 1995); the "all" row is tested on its own. Unrepaired misreadings have no
    direction and are left out (counted in ``unrepaired``).

    ``conditional=True`` is the robustness variant: each misreading's direction (read larger or
    smaller) is taken as observed and only the candidate it landed on is random, with chance
    proportional to h_c x P(that direction | c's digits). It no longer depends on how often OCR
    reads numbers larger overall (the edit-kind mix), only on how that chance differs between the
    candidates' numbers at the same form.
    """
    table, _ = misreading_table(misreadings, election)
    candidates = list(election.candidates)
    model = model or edit_model(table, candidates, min_reference=min_reference, hit=hit)
    keys = _scope_keys(election, level)
    rows = _candidate_rows(election, table)
    unrepaired = rows[rows["proposed"].isna()]
    rows = rows[rows["proposed"].notna()].reset_index(drop=True)
    observed, null = _favour_probabilities(rows, candidates, model, conditional) if len(rows) else (np.zeros((0, len(candidates)), bool), np.zeros((0, len(candidates))))
    region_of = keys.reindex(rows["unit_id"]).to_numpy() if len(rows) else np.array([], dtype=object)
    region_unrepaired = keys.reindex(unrepaired["unit_id"]).to_numpy() if len(unrepaired) else np.array([], dtype=object)
    names = _names(election, level)
    regions = ["all"] + ([] if level is None else sorted(keys.unique()))
    out = []
    for region in regions:
        mask = np.ones(len(rows), bool) if region == "all" else region_of == region
        for j, c in enumerate(candidates):
            k, p = int(observed[mask, j].sum()), null[mask, j]
            expected = float(p.sum())
            pvalue = float(poisson_binomial_pmf(p)[k:].sum()) if mask.any() else np.nan
            field_rows = rows[mask & (rows["field"] == c).to_numpy()]
            out.append({
                "region": region, "name": names.get(region, region),
                "candidate": c, "misreadings": int(mask.sum()),
                "unrepaired": int((region_unrepaired == region).sum()) if region != "all" else len(unrepaired),
                "favour": k, "expected": expected, "sd": float(np.sqrt(np.sum(p * (1 - p)))),
                "ratio": k / expected if expected > 0 else np.nan,
                "net_votes": float((field_rows["reported"].astype(float) - field_rows["proposed"].astype(float)).sum()),
                "pvalue": min(1.0, pvalue) if np.isfinite(pvalue) else np.nan,
            })
    frame = pd.DataFrame(out)
    frame["qvalue"] = np.nan
    tested = (frame["region"] != "all") & frame["pvalue"].notna()
    if tested.any():
        frame.loc[tested, "qvalue"] = multipletests(frame.loc[tested, "pvalue"], method="fdr_bh")[1]
    national = frame["region"] == "all"
    frame.loc[national, "qvalue"] = frame.loc[national, "pvalue"]
    frame["flagged"] = (frame["qvalue"] < alpha).to_numpy(dtype=bool)
    null_text = (f"{model.describe()}; "
                 + ("each misreading's direction taken as observed, only the candidate it landed on random; "
                    if conditional else "")
                 + "one-sided exact Poisson-binomial test of the number of misreadings favouring each "
                 "candidate; BH q-values across regions x candidates")
    return Systematic(table=frame, model=model, alpha=alpha, null=null_text)


# ------------------------------------------------------------------------------------ structured
@dataclass(frozen=True, eq=False)
class Structured:
    """Concentration of misread TPS in the hierarchy and in upload time, against a permutation null."""

    table: pd.DataFrame  # region, component, parent, groups, misread, statistic (share of variance), null_mean, null_q95, ratio, pvalue
    n_perm: int
    seed: int
    null: str

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _repr_html_(self) -> str:
        return _html("Structured (terstruktur): are misreadings concentrated?", self.table, notes=[f"Null: {self.null}"])


def _concentration(y: np.ndarray, groups: np.ndarray, parents: np.ndarray, n_perm: int,
                   rng: np.random.Generator) -> tuple[float, np.ndarray, int]:
    """Between-group sum of squares of indicator y at ``groups`` beyond ``parents``, as a share of
    the total, and its null from shuffling y within each parent (multivariate hypergeometric)."""
    n, k = len(y), int(y.sum())
    total_ss = k - k * k / n if n else 0.0
    p_code, _ = pd.factorize(pd.Series(parents, dtype=object))
    g_code, _ = pd.factorize(pd.Series(groups, dtype=object))
    gid, _ = pd.factorize(p_code.astype(np.int64) * (int(g_code.max(initial=0)) + 1) + g_code)
    sizes = np.bincount(gid).astype(float)
    ones = np.bincount(gid, weights=y).astype(float)
    parent_of = np.zeros(len(sizes), dtype=np.int64)
    parent_of[gid] = p_code
    p_sizes = np.bincount(p_code).astype(float)
    p_ones = np.bincount(p_code, weights=y).astype(float)
    observed = float((ones ** 2 / sizes).sum() - (p_ones ** 2 / p_sizes).sum())
    null = np.zeros(n_perm)
    # Parents without a misreading, or with one group only, add 0 to both sides: skip them.
    order = np.argsort(parent_of, kind="stable")
    bounds = np.searchsorted(parent_of[order], np.arange(len(p_sizes) + 1))
    n_groups = np.diff(bounds)
    single = np.flatnonzero((p_ones == 1) & (n_groups >= 2))
    if len(single):
        # One misreading in a parent lands in group g with chance n_g / N: its term is
        # 1 / n_g - 1 / N. All such parents at once, by inverse CDF over the groups in parent order.
        cumulative = np.cumsum(sizes[order])
        start = np.where(bounds[single] > 0, cumulative[np.maximum(bounds[single] - 1, 0)], 0.0)
        start[bounds[single] == 0] = 0.0
        for chunk in np.array_split(np.arange(len(single)), max(1, len(single) * n_perm // 5_000_000 + 1)):
            u = start[chunk] + rng.random((n_perm, len(chunk))) * p_sizes[single[chunk]]
            landed = order[np.searchsorted(cumulative, u, side="right")]
            null += (1.0 / sizes[landed] - 1.0 / p_sizes[single[chunk]]).sum(axis=1)
    for parent in np.flatnonzero(p_ones > 1):
        members = order[bounds[parent]:bounds[parent + 1]]
        if len(members) < 2:
            continue
        draws = rng.multivariate_hypergeometric(sizes[members].astype(np.int64), int(p_ones[parent]), size=n_perm)
        null += (draws.astype(float) ** 2 / sizes[members]).sum(axis=1) - p_ones[parent] ** 2 / p_sizes[parent]
    if total_ss <= 0:
        return 0.0, np.zeros(n_perm), len(sizes)
    return observed / total_ss, null / total_ss, len(sizes)


def _time_bins(values: pd.Series, bins: int) -> pd.Series:
    times = pd.to_datetime(values, errors="coerce", utc=True) if not isinstance(values.dtype, pd.DatetimeTZDtype) else values
    codes = pd.qcut(times.rank(method="first"), q=min(bins, max(1, times.notna().sum())), labels=False)
    return codes


def structured(election, misreadings: Any, *, level: str | None = "province", n_perm: int = 999,
               seed: int = 0, time_column: str | None = "ts", time_bins: int = 24) -> Structured:
    """Are TPS with a misreading concentrated in the hierarchy or in upload time beyond chance?

    Per scope (the whole election, and each region at ``level``) and each finer level L with
    parent P: the share of the variance of the misread indicator that lies between L's groups
    within P (eta squared beyond the parent), against its permutation null that shuffles the
    indicator among the TPS of each parent (Fisher-Pitman; exact multivariate-hypergeometric
    draws). Upload time: ``time_bins`` equal-count bins of ``time_column`` within the scope's
    regions. p = (1 + #null >= observed) / (1 + n_perm). TPS without a published number are left
    out (a misreading cannot be seen there).
    """
    table, _ = misreading_table(misreadings, election)
    data = election.table
    published = data[list(election.candidates)].notna().all(axis=1) | data[["valid", "voters"]].notna().any(axis=1)
    y_all = data.index.isin(table["unit_id"]).astype(np.int64)
    rng = np.random.default_rng(seed)
    levels = list(election.levels)
    keys = _scope_keys(election, level)
    names = _names(election, level)
    scopes = [("all", np.ones(len(data), bool))]
    if level is not None:
        scopes += [(r, (keys == r).to_numpy()) for r in sorted(keys.unique())]
    start = 0 if level is None else levels.index(level) + 1
    out = []
    for region, mask in scopes:
        mask = mask & published.to_numpy()
        y = y_all[mask]
        first = 0 if region == "all" else start
        components = []
        for i in range(first, min(len(levels), first + 3)):
            lv = levels[i]
            parent = np.full(mask.sum(), "") if i == 0 else data.loc[mask, levels[i - 1]].astype(str).to_numpy()
            components.append((lv, levels[i - 1] if i > 0 else "", data.loc[mask, lv].astype(str).to_numpy(), parent))
        if time_column and time_column in data.columns:
            binned = _time_bins(data.loc[mask, time_column], time_bins)
            ok = binned.notna().to_numpy()
            parent_level = levels[first] if region == "all" and level is not None else (level or "")
            parent = data.loc[mask, parent_level].astype(str).to_numpy() if parent_level else np.full(mask.sum(), "")
            bins = binned.fillna(-1).astype(int).astype(str).to_numpy()
            groups = pd.Series(parent.astype(str)).str.cat(pd.Series(bins), sep="|").to_numpy()
            components.append(("upload time", parent_level, groups, parent))
        else:
            ok = None
        for name, parent_level, groups, parent in components:
            use = ok if (name == "upload time" and ok is not None) else np.ones(len(y), bool)
            if pd.unique(groups[use]).size < 2:
                continue  # one group only (a province's own province level): nothing to locate
            stat, null, n_groups = _concentration(y[use], groups[use], parent[use], n_perm, rng) if use.sum() else (np.nan, np.zeros(n_perm), 0)
            out.append({
                "region": region, "name": names.get(region, region),
                "component": name, "within": parent_level or "-", "groups": n_groups,
                "tps": int(use.sum()), "misread_tps": int(y[use].sum()),
                "statistic": stat, "null_mean": float(null.mean()), "null_q95": float(np.quantile(null, 0.95)),
                "ratio": stat / null.mean() if null.mean() > 0 else np.nan,
                "pvalue": float((1 + np.sum(null >= stat - 1e-12)) / (1 + n_perm)) if np.isfinite(stat) else np.nan,
            })
    frame = pd.DataFrame(out, columns=["region", "name", "component", "within", "groups", "tps", "misread_tps",
                                       "statistic", "null_mean", "null_q95", "ratio", "pvalue"])
    # BH q-values: across the overall components, and across every region x component.
    frame["qvalue"] = np.nan
    for mask in (frame["region"] == "all", frame["region"] != "all"):
        tested = mask & frame["pvalue"].notna()
        if tested.any():
            frame.loc[tested, "qvalue"] = multipletests(frame.loc[tested, "pvalue"], method="fdr_bh")[1]
    null_text = ("misread TPS are spread at random among the TPS of each parent region (or upload-time "
                 f"bin within region): {n_perm:,} exact within-parent shuffles, seed {seed}; statistic = "
                 "share of the misread indicator's variance between groups beyond the parent (eta squared); "
                 "BH q-values across the overall components and across regions x components")
    return Structured(table=frame, n_perm=n_perm, seed=seed, null=null_text)


# ------------------------------------------------------------------------------------ synthesis
@dataclass(frozen=True, eq=False)
class TSMResult:
    """The three measured answers and a plain-language scorecard per region and overall."""

    massive: Massive
    systematic: Systematic
    structured: Structured
    scorecard: pd.DataFrame  # region, name, massive, systematic, structured, cannot_show
    systematic_conditional: Systematic | None  # the robustness variant (directions taken as observed)
    rejects: pd.DataFrame
    flags: pd.DataFrame | None
    parameters: Mapping[str, Any] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        return self.scorecard.copy()

    def sentences(self, region: str = "all") -> str:
        """The scorecard of one region as one paragraph of text."""
        row = self.scorecard[self.scorecard["region"] == str(region)]
        if row.empty:
            raise KeyError(f"no scorecard for region {region!r}")
        row = row.iloc[0]
        return " ".join([row["massive"], row["systematic"], row["structured"], row["cannot_show"]])

    def _repr_html_(self) -> str:
        head = (f"TSM scorecard ({len(self.scorecard) - 1} regions and overall; "
                f"{len(self.rejects)} misreading rows not usable)")
        parts = [f"<p><b>{html.escape(head)}</b></p>"]
        overall = self.scorecard.iloc[0]
        for key, label in (("massive", "Masif / massive"), ("systematic", "Sistematis / systematic"),
                           ("structured", "Terstruktur / structured")):
            parts.append(f"<p><b>{html.escape(label)}:</b> {html.escape(str(overall[key]))}</p>")
        parts.append(f"<p><i>{html.escape(CANNOT_SHOW)}</i></p>")
        parts.append(frame_html(self.scorecard.head(HTML_ROWS)))
        return "".join(parts)


def _massive_sentence(row: pd.Series, candidates: Sequence[str], flags_note: str) -> str:
    share = f"{100 * row['share_misread']:.2f} % (95 % interval {100 * row['share_low']:.2f}-{100 * row['share_high']:.2f} %)" \
        if np.isfinite(row["share_misread"]) else "n/a"
    gains = "; ".join(
        f"{c} {_signed(row[f'gain_{c}'])} (interval {_signed(row[f'gain_{c}_low'])} to {_signed(row[f'gain_{c}_high'])})"
        for c in candidates)
    leader, runner = row["leader"], row["runner_up"]
    margin = row["margin"]
    moved = row[f"gain_{leader}"] - row[f"gain_{runner}"]
    part = f" ({100 * abs(moved) / margin:.2f} % of it)" if margin > 0 else ""
    if row["order_changes"]:
        order = "repairing them would reverse the order"
    elif row["order_can_change"]:
        order = "within the interval, repairing them could change the order"
    else:
        order = "the order does not change"
    text = (f"{row['tps_misread']:,} of {row['tps_published']:,} TPS with published numbers ({share}) have a "
            f"number that looks misread ({row['unrepaired']:,} candidate numbers without a repair). "
            f"Net votes each candidate gains from them (reported minus repaired): {gains}. "
            f"The margin of {leader} over {runner} is {_fmt(margin)} votes; the misreadings move it by "
            f"{_signed(moved)}{part}: {order}. {leader}'s share is {100 * row['leader_share']:.2f} % as reported, "
            f"{100 * row['leader_share_repaired']:.2f} % after repair (interval "
            f"{100 * row['leader_share_repaired_low']:.2f}-{100 * row['leader_share_repaired_high']:.2f} %)")
    if row["region"] == "all":
        crosses = (row["leader_share_repaired_low"] <= 0.5) != (row["leader_share"] <= 0.5)
        text += ("; the 50 % threshold " + ("lies inside that interval" if crosses or
                 (row["leader_share_repaired_low"] <= 0.5 < row["leader_share_repaired_high"]) else "is not crossed"))
        if "regions_leader_20pct" in row and np.isfinite(row.get("regions_leader_20pct", np.nan)):
            text += (f"; after repair {leader} has at least 20 % in {int(row['regions_leader_20pct'])} of "
                     f"{int(row['regions'])} regions")
    return text + "." + flags_note


def _systematic_sentence(rows: pd.DataFrame, alpha: float, conditional: pd.DataFrame | None = None) -> str:
    if rows.empty or rows["misreadings"].iloc[0] == 0:
        return "No repaired misreading of a candidate's number: nothing to test for a direction."
    n = int(rows["misreadings"].iloc[0])
    best = rows.sort_values(["pvalue", "ratio"], ascending=[True, False]).iloc[0]
    parts = ", ".join(f"{r.candidate} {r.favour} (expected {r.expected:.1f})" for r in rows.itertuples())
    head = f"Of {n:,} repaired misreadings of candidate numbers, the number favouring each candidate: {parts}."
    if best["flagged"]:
        text = (f"{head} Misreadings favour {best['candidate']} more than random OCR errors would "
                f"({best['favour']} against {best['expected']:.1f} expected, p = {best['pvalue']:.2g}, "
                f"q = {best['qvalue']:.2g} < {alpha:g}), net {_signed(best['net_votes'])} votes on its own numbers.")
    else:
        text = (f"{head} No candidate is favoured beyond what random OCR errors give at these forms "
                f"(smallest q = {best['qvalue']:.2g}, for {best['candidate']}).")
    if conditional is not None and len(conditional):
        other = conditional.set_index("candidate")
        flagged = other.index[other["flagged"]].tolist()
        verdict = (f"favours {', '.join(flagged)}" if flagged else "favours no candidate")
        text += (f" Taking each misreading's direction as given (robustness variant), the test {verdict} "
                 f"(q for {best['candidate']} = {other.loc[best['candidate'], 'qvalue']:.2g}).")
    return text


def _structured_sentence(rows: pd.DataFrame, alpha: float) -> str:
    if rows.empty or rows["misread_tps"].max() == 0:
        return "No misread TPS: nothing to locate."
    bits = []
    for r in rows.itertuples():
        within = f" within {r.within}" if r.within != "-" else ""
        verdict = "concentrated" if r.qvalue < alpha else "not concentrated"
        bits.append(f"{r.component}{within}: {verdict} (variance share {100 * r.statistic:.2f} % against "
                    f"{100 * r.null_mean:.2f} % by chance, p = {r.pvalue:.3f}, q = {r.qvalue:.3f})")
    return "Where the misread TPS are: " + "; ".join(bits) + "."


def tsm(election, misreadings: Any, *, level: str | None = "province", flags: pd.DataFrame | None = None,
        alpha: float = 0.05, n_boot: int = 1000, n_perm: int = 999, seed: int = 0, hit: str = "equal",
        capacity: int | None = 300, time_column: str | None = "ts", min_reference: int = 30,
        model: EditModel | None = None) -> TSMResult:
    """Massive, systematic and structured, each measured with an interval, per region at ``level``
    and overall, with a scorecard of plain sentences (see the module docstring for the nulls).

    ``model``: the random-OCR edit model of the null (default: estimated from these misreadings;
    a province report passes the one estimated nationally, which has more reference misreadings).
    ``flags``: optionally the per-region flag table of the other tests (columns ``test``,
    ``region``, ``flagged``; e.g. the report's national flags): the scorecard counts the regions,
    TPS and votes they cover (an upper bound on what those irregularities touch).
    """
    table, rejects = misreading_table(misreadings, election)
    candidates = list(election.candidates)
    m = massive(election, table, level=level, n_boot=n_boot, seed=seed, capacity=capacity)
    s = systematic(election, table, level=level, alpha=alpha, model=model, hit=hit, min_reference=min_reference)
    sc = systematic(election, table, level=level, alpha=alpha, model=s.model, conditional=True)
    st = structured(election, table, level=level, n_perm=n_perm, seed=seed, time_column=time_column)
    flags_note = ""
    if flags is not None and len(flags) and level is not None:
        hit_regions = flags[flags["flagged"].astype(bool)]
        keys = _scope_keys(election, level)
        for test, group in hit_regions.groupby("test"):
            regions = set(group["region"].astype(str))
            inside = keys.isin(regions)
            votes = election.table.loc[inside, candidates].sum().sum()
            flags_note += (f" Flagged by {test}: {len(regions)} region(s), {int(inside.sum()):,} TPS, "
                           f"{_fmt(float(votes))} votes (an upper bound on what it touches).")
    rows = []
    for region in m.table["region"]:
        mrow = m.table[m.table["region"] == region].iloc[0]
        rows.append({
            "region": region, "name": mrow["name"],
            "massive": _massive_sentence(mrow, candidates, flags_note if region == "all" else ""),
            "systematic": _systematic_sentence(s.table[s.table["region"] == region], alpha,
                                               sc.table[sc.table["region"] == region]),
            "structured": _structured_sentence(st.table[st.table["region"] == region], alpha),
            "cannot_show": CANNOT_SHOW,
        })
    scorecard = pd.DataFrame(rows)
    return TSMResult(massive=m, systematic=s, structured=st, scorecard=scorecard, systematic_conditional=sc, rejects=rejects,
                     flags=flags, parameters={"level": level, "alpha": alpha, "n_boot": n_boot, "n_perm": n_perm,
                                              "seed": seed, "hit": hit, "capacity": capacity,
                                              "time_column": time_column, "min_reference": min_reference})

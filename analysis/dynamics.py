"""What changed between snapshots, and in whose favour.

Two families of questions:

* Two snapshots of the same ballot at TPS level (two Elections): which TPS changed, with old and
  new numbers, which were newly published or withdrawn, and the net change per candidate per
  region (``diff_elections``).
* A series of aggregate snapshots (``analysis.sources.sirekap.aggregates.AggregateSeries``): per
  interval, the votes added per contestant, TPS newly reported and the votes they could hold
  (``increments``), where totals went down (``decreases``), and whether an increment's
  composition departs from what newly reported TPS make plausible (``composition_test``).

A flag is a statistical irregularity, not a finding of fraud: OCR corrections, batch uploads and
late TPS from regions that vote differently all move aggregate series.

The series and the Elections come in as arguments: this module reads no source (the caller reads a
series with ``analysis.sources.sirekap.aggregates``; a synthetic one is ``synth.synthetic_series``).
"""

from __future__ import annotations

import html
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .consistency import hard_cap
from .errors import convergence_note
from .election import Election
from .display import frame_html

#: How many rows ``_repr_html_`` shows.
HTML_ROWS = 20
#: Status of a TPS between two snapshots.
STATUSES = ("published", "withdrawn", "revised", "unchanged", "dropped", "added")


def _html(head: str, *frames: pd.DataFrame) -> str:
    body = "".join(frame_html(f.head(HTML_ROWS)) for f in frames)
    return f"<p><b>{html.escape(head)}</b></p>" + body


# ==================================================================================== two snapshots
@dataclass(frozen=True, repr=False)
class ElectionDiff:
    """Cell-level changes between two snapshots A and B of one ballot, with net change per region.

    ``changes``: unit_id, column, old, new (``<NA>`` = not published), one row per changed cell,
    including every cell of a TPS present in only one snapshot. ``units``: unit_id, in_a, in_b and
    status (published: no votes in A, votes in B; withdrawn: the reverse; revised: some number
    changed; unchanged; dropped: only in A; added: only in B, without votes). ``net``: level, region, contestant, before, after, change, and the change split
    into newly published, withdrawn, revised and dropped TPS (they add up to the change; missing
    counts as 0 in the sums, as in the published aggregates).
    """

    changes: pd.DataFrame
    units: pd.DataFrame
    net: pd.DataFrame
    columns: tuple[str, ...]
    candidates: tuple[str, ...]
    levels: tuple[str, ...]
    names: tuple[str, str] = ("A", "B")
    n: Mapping[str, int] = field(default_factory=dict)
    before: pd.DataFrame = field(default_factory=pd.DataFrame)   # A's numbers of the TPS that changed
    after: pd.DataFrame = field(default_factory=pd.DataFrame)    # B's numbers of the TPS that changed

    def counts(self) -> pd.Series:
        """TPS per status."""
        return self.units["status"].value_counts().reindex(list(STATUSES), fill_value=0)

    def changed_tps(self) -> pd.DataFrame:
        """One row per TPS that is not unchanged: status and, per column, old and new (blank: not published)."""
        moved = self.units[self.units["status"] != "unchanged"].set_index("unit_id")
        old = self.before.reindex(moved.index).add_suffix("_old")
        new = self.after.reindex(moved.index).add_suffix("_new")
        order = [f"{c}_{w}" for c in self.columns for w in ("old", "new")]
        return moved.join(old).join(new)[["in_a", "in_b", "status", *order]].reset_index()

    def apply(self, table: pd.DataFrame) -> pd.DataFrame:
        """Snapshot A's table with every reported change applied (what B should be, on ``columns``)."""
        out = table[list(self.columns)].copy()
        out = out.drop(index=self.units.loc[~self.units["in_b"], "unit_id"].to_numpy())
        new_ids = pd.Index(self.units.loc[~self.units["in_a"], "unit_id"].to_numpy())
        if len(new_ids):
            out = pd.concat([out, pd.DataFrame(index=pd.Index(new_ids, name=out.index.name), columns=out.columns)
                             .astype(out.dtypes.to_dict())])
        kept = self.changes[self.changes["unit_id"].isin(out.index)]
        for column, part in kept.groupby("column", sort=False):
            out.loc[part["unit_id"].to_numpy(), column] = part["new"].astype(out[column].dtype).to_numpy()
        return out

    def to_frame(self) -> pd.DataFrame:
        """The net change per contestant per region."""
        return self.net

    def __repr__(self) -> str:
        counts = ", ".join(f"{k} {v:,}" for k, v in self.counts().items())
        return f"ElectionDiff({self.names[0]!r} -> {self.names[1]!r}: {counts}; {len(self.changes):,} numbers changed)"

    def _repr_html_(self) -> str:
        c = self.counts()
        head = (f"{self.names[0]} -> {self.names[1]}: {c['revised']:,} TPS revised, {c['published']:,} newly "
                f"published, {c['withdrawn']:,} withdrawn, {c['dropped']:,} only in A, {c['added']:,} only in B without votes, "
                f"{c['unchanged']:,} unchanged; {len(self.changes):,} numbers changed.")
        return _html(head, self.net, self.changed_tps())


def diff_elections(a: Election, b: Election, *, columns: Sequence[str] | None = None,
                   levels: Sequence[str] | None = None) -> ElectionDiff:
    """Which TPS changed between snapshots A and B, and the net change per candidate per region.

    Compares ``columns`` (default: every count column both have); a TPS is matched by its
    unit_id. A TPS only in A is "dropped" with its cells going to ``<NA>``; one only in B is
    "published" (or "added" when it has no votes either). ``levels`` (default: all of A's) are
    where ``net`` sums the candidates.
    """
    if tuple(a.candidates) != tuple(b.candidates):
        raise ValueError(f"the snapshots have different candidates ({list(a.candidates)} vs {list(b.candidates)}): "
                         "not the same ballot")
    if columns is None:
        columns = [c for c in a.counts if c in b.table.columns]
    columns = tuple(columns)
    missing = [c for c in columns if c not in a.table.columns or c not in b.table.columns]
    if missing:
        raise KeyError(f"columns not in both snapshots: {', '.join(missing)}")
    levels = tuple(levels or a.levels)
    ids = a.table.index.union(b.table.index)
    ta = a.table[list(columns)].reindex(ids).astype("Int64")
    tb = b.table[list(columns)].reindex(ids).astype("Int64")
    old_na, new_na = ta.isna().to_numpy(), tb.isna().to_numpy()
    differ = (old_na != new_na) | (~old_na & ~new_na & (ta.fillna(0).to_numpy() != tb.fillna(0).to_numpy()))
    rows, cols = np.nonzero(differ)
    changes = pd.DataFrame({
        "unit_id": ids[rows].astype(str),
        "column": np.asarray(columns, dtype=object)[cols],
        "old": pd.array(ta.to_numpy(dtype=object)[rows, cols], dtype="Int64"),
        "new": pd.array(tb.to_numpy(dtype=object)[rows, cols], dtype="Int64"),
    })
    cand = list(a.candidates)
    votes_a = a.table[cand].reindex(ids).notna().any(axis=1).to_numpy()
    votes_b = b.table[cand].reindex(ids).notna().any(axis=1).to_numpy()
    in_a, in_b = ids.isin(a.table.index), ids.isin(b.table.index)
    status = np.where(differ.any(axis=1), "revised", "unchanged").astype(object)
    status[~votes_a & votes_b] = "published"
    status[votes_a & ~votes_b] = "withdrawn"
    status[in_a & ~in_b] = "dropped"
    status[~in_a & in_b & ~votes_b] = "added"
    units = pd.DataFrame({"unit_id": ids.astype(str), "in_a": in_a, "in_b": in_b, "status": status})

    # Region codes come from whichever snapshot has the TPS.
    region = a.table[list(levels)].reindex(ids).fillna(b.table[list(levels)].reindex(ids))
    va, vb = a.table[cand].reindex(ids).fillna(0).astype("int64"), b.table[cand].reindex(ids).fillna(0).astype("int64")
    parts = []
    for level in levels:
        frame = pd.DataFrame({"region": region[level].to_numpy(), "status": status})
        for c in cand:
            frame[f"before_{c}"], frame[f"after_{c}"] = va[c].to_numpy(), vb[c].to_numpy()
        grouped = frame.groupby("region", sort=True)
        for c in cand:
            before = grouped[f"before_{c}"].sum()
            after = grouped[f"after_{c}"].sum()
            change = after - before
            piece = pd.DataFrame({"level": level, "region": before.index.astype(str), "contestant": c,
                                  "before": before.to_numpy(), "after": after.to_numpy(), "change": change.to_numpy()})
            for kind in ("published", "withdrawn", "revised", "dropped"):
                sub = frame[frame["status"] == kind]
                by = (sub[f"after_{c}"] - sub[f"before_{c}"]).groupby(sub["region"]).sum()
                piece[f"from_{kind}"] = by.reindex(before.index, fill_value=0).to_numpy()
            parts.append(piece)
    net = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    n = {"tps_a": len(a.table), "tps_b": len(b.table), "tps_compared": len(ids)}
    moved = ids[differ.any(axis=1) | (in_a != in_b)]
    return ElectionDiff(changes=changes, units=units, net=net, columns=columns, candidates=tuple(cand),
                        levels=levels, names=(a.name or "A", b.name or "B"), n=n,
                        before=ta.loc[moved], after=tb.loc[moved])


# ==================================================================================== aggregate series
def _series_intervals(series, region: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Votes (time x contestant) and progress (time-indexed) of one region."""
    votes = series.wide(region)
    prog = series.progress[series.progress["region"] == region].set_index("time").sort_index()
    prog = prog[~prog.index.duplicated()].reindex(votes.index)
    return votes, prog


@dataclass(frozen=True, repr=False)
class Increments:
    """Per interval between consecutive snapshots: votes added per contestant and TPS newly reported.

    ``table``: region, level, start, end, hours, one ``added_<contestant>`` column each, added
    (sum), removed (sum of the negative parts), tps_new (newly reported TPS; exact nationally,
    estimated from the rounded ``persen`` per province), tps_slack (the rounding uncertainty of
    tps_new), capacity (the most votes ``tps_new + tps_slack`` TPS could hold: ``per_tps`` each),
    votes_per_new_tps, over_capacity (added > capacity: the excess cannot come from newly
    reported TPS and must come from numbers changed at TPS already counted).
    """

    table: pd.DataFrame
    contestants: tuple[str, ...]
    labels: Mapping[str, str]
    per_tps: float
    parameters: Mapping[str, Any]

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def __repr__(self) -> str:
        return f"Increments({len(self.table):,} intervals, {self.table['region'].nunique() if len(self.table) else 0} regions)"

    def summary(self) -> pd.DataFrame:
        """Per region: intervals, with a decrease, over capacity, votes added and removed."""
        t = self.table
        return t.groupby("region", sort=False).agg(
            intervals=("added", "size"), with_decrease=("removed", lambda s: int((s < 0).sum())),
            over_capacity=("over_capacity", lambda s: int(s.fillna(False).sum())),
            added=("added", "sum"), removed=("removed", "sum"))

    def _repr_html_(self) -> str:
        t = self.table
        head = (f"{len(t):,} intervals in {t['region'].nunique()} regions; {int((t['removed'] < 0).sum()):,} with a "
                f"decrease; {int(t['over_capacity'].fillna(False).sum()):,} adding more votes than the newly reported "
                f"TPS could hold ({self.per_tps:.0f} votes per TPS).")
        return _html(head, self.summary().reset_index())


def increments(series, *, regions: Iterable[str] | None = None, capacity: int = 300, reserve: float = 0.02,
               headroom: int = 100) -> Increments:
    """Votes added per contestant per interval, TPS newly reported, and the capacity bound.

    A TPS holds at most ``hard_cap(capacity, reserve, headroom)`` votes (300 DPT + 2 % reserve
    ballots + DPTb/DPK voters, bounded as in ``analysis.consistency.hard_cap``), so an interval
    whose added votes exceed (newly reported TPS + rounding slack) x that bound cannot be
    explained by new TPS alone (sirekap-api.md, arithmetic of a correct form).
    """
    per_tps = hard_cap(capacity, reserve, headroom)
    regions = list(regions) if regions is not None else series.regions
    parts = []
    for region in regions:
        votes, prog = _series_intervals(series, str(region))
        if len(votes) < 2:
            continue
        values = votes.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        delta = np.diff(values, axis=0)
        frame = pd.DataFrame({"region": str(region), "level": series.votes.loc[series.votes["region"] == str(region), "level"].iat[0],
                              "start": votes.index[:-1], "end": votes.index[1:]})
        frame["hours"] = (frame["end"] - frame["start"]).dt.total_seconds() / 3600
        for j, c in enumerate(votes.columns):
            frame[f"added_{c}"] = delta[:, j]
        frame["added"] = np.nansum(delta, axis=1)
        frame["removed"] = np.nansum(np.where(delta < 0, delta, 0), axis=1)
        if prog["tps_reported"].notna().any():
            reported = prog["tps_reported"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            total = prog["tps_total"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
            exact = prog["tps_exact"].fillna(False).to_numpy(dtype=bool)
            frame["tps_new"] = np.diff(reported)
            # persen has two decimals: each end is known to +-0.005 % of the TPS total.
            slack = np.where(exact, 0, np.ceil(0.0001 * total))
            frame["tps_slack"] = slack[1:]
        else:
            frame["tps_new"], frame["tps_slack"] = np.nan, np.nan
        frame["capacity"] = np.clip(frame["tps_new"] + frame["tps_slack"], 0, None) * per_tps
        with np.errstate(divide="ignore", invalid="ignore"):
            frame["votes_per_new_tps"] = np.where(frame["tps_new"] > 0, frame["added"] / frame["tps_new"], np.nan)
        over = frame["added"] > frame["capacity"]
        frame["over_capacity"] = pd.array(np.where(frame["capacity"].isna(), None, over), dtype="boolean")
        parts.append(frame)
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return Increments(table=table, contestants=tuple(series.contestants), labels=dict(series.labels),
                      per_tps=per_tps, parameters={"capacity": capacity, "reserve": reserve, "headroom": headroom})


@dataclass(frozen=True, repr=False)
class Decreases:
    """Where totals went down: one row per (region, interval, contestant) with a fall."""

    table: pd.DataFrame            # region, level, start, end, contestant, before, after, change, tps_new
    intervals: int                 # intervals examined per region, summed
    contestants: tuple[str, ...]
    labels: Mapping[str, str]

    def __repr__(self) -> str:
        return f"Decreases({len(self.table):,} falls in {self.intervals:,} region-intervals)"

    def summary(self) -> pd.DataFrame:
        """Per region and contestant: intervals with a fall, votes lost, the largest fall and when."""
        if self.table.empty:
            return pd.DataFrame(columns=["region", "contestant", "falls", "votes_lost", "largest", "when"])
        t = self.table
        worst = t.loc[t.groupby(["region", "contestant"])["change"].idxmin(), ["region", "contestant", "change", "end"]]
        out = t.groupby(["region", "contestant"], as_index=False).agg(falls=("change", "size"), votes_lost=("change", "sum"))
        return out.merge(worst.rename(columns={"change": "largest", "end": "when"}), on=["region", "contestant"])

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def _repr_html_(self) -> str:
        t = self.table
        n_int = t[["region", "end"]].drop_duplicates().shape[0] if len(t) else 0
        head = (f"{n_int:,} of {self.intervals:,} region-intervals had a total going down; "
                f"{-int(t['change'].sum()) if len(t) else 0:,} votes removed in all.")
        return _html(head, self.summary())


def decreases(series, *, regions: Iterable[str] | None = None) -> Decreases:
    """Every fall of a contestant's total between consecutive snapshots (a published total went down)."""
    inc = increments(series, regions=regions)
    t = inc.table
    rows = []
    for c in inc.contestants:
        col = f"added_{c}"
        if col not in t:
            continue
        fell = t[t[col] < 0]
        if fell.empty:
            continue
        rows.append(pd.DataFrame({"region": fell["region"], "level": fell["level"], "start": fell["start"],
                                  "end": fell["end"], "contestant": c, "change": fell[col].astype("int64"),
                                  "tps_new": fell["tps_new"]}))
    table = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["region", "level", "start", "end", "contestant", "change", "tps_new"])
    if len(table):
        wide = {r: series.wide(r) for r in table["region"].unique()}
        table["before"] = [int(wide[r].at[s, c]) for r, s, c in zip(table["region"], table["start"], table["contestant"])]
        table["after"] = table["before"] + table["change"]
        table = table[["region", "level", "start", "end", "contestant", "before", "after", "change", "tps_new"]]
        table = table.sort_values(["region", "end", "contestant"], key=None).reset_index(drop=True)
    return Decreases(table=table, intervals=len(t), contestants=inc.contestants, labels=inc.labels)


# ---------------------------------------------------------------------------------- composition test
@dataclass(frozen=True, repr=False)
class CompositionTest:
    """Does an increment's split between contestants depart from what newly reported TPS make plausible?

    Null (per region, per interval t with every contestant's increment >= 0 and n_t >= min_votes
    votes added): the increment x_t is an overdispersed multinomial draw,
    E x_t = n_t p_t with p_t the baseline shares, and Pearson's
    X2_t = sum_k (x_tk - n_t p_tk)^2 / (n_t p_tk) distributed as phi(n_t) chi2(K-1)
    (Dirichlet-multinomial / quasi-multinomial; McCullagh & Nelder 1989, sec. 4.5 and 6.2;
    Mosimann 1962). Increments are batches of whole TPS, whose shares vary, so the dispersion
    phi grows with the batch size; log phi(n) = a + b log n is estimated from the same series by
    median regression (statsmodels QuantReg) of log(X2 / median chi2(K-1)) on log n, robust to
    the irregular increments themselves. p-value: chi2(K-1) tail of X2 / phi(n_t); q-values:
    Benjamini-Hochberg across every tested interval of every region. ``z`` per contestant:
    (x_k - n p_k) / sqrt(phi n p_k (1 - p_k)); ``driver`` is the contestant with the largest |z|.
    """

    table: pd.DataFrame            # region, start, end, n, statistic, phi, pvalue, qvalue, driver, share/expected/z per focus
    dispersion: pd.DataFrame       # region, a, b, intervals used, converged, note (why not)
    contestants: tuple[str, ...]
    labels: Mapping[str, str]
    null: str
    n: int
    parameters: Mapping[str, Any]

    def __repr__(self) -> str:
        return (f"CompositionTest({self.n:,} intervals, {len(self.flagged()) if self.n else 0:,} flagged at "
                f"q < {self.parameters['alpha']}, baseline {self.parameters['baseline']})")

    def flagged(self, alpha: float | None = None) -> pd.DataFrame:
        alpha = self.parameters["alpha"] if alpha is None else alpha
        if self.table.empty:
            return self.table
        return self.table[self.table["qvalue"] < alpha]

    def false_positive_share(self, alpha: float | None = None) -> float:
        """Share of tested intervals with p < alpha (on a clean series, this estimates the FPR)."""
        alpha = self.parameters["alpha"] if alpha is None else alpha
        return float((self.table["pvalue"] < alpha).mean()) if len(self.table) else float("nan")

    def to_frame(self) -> pd.DataFrame:
        return self.table

    def _repr_html_(self) -> str:
        alpha = self.parameters["alpha"]
        flagged = self.flagged()
        head = (f"Composition of increments: {self.n:,} intervals tested in {self.table['region'].nunique()} regions; "
                f"{len(flagged):,} depart from the null at q < {alpha}. Null: {self.null}")
        cols = [c for c in ("region", "start", "end", "n", "driver", "driver_share", "driver_expected", "z_driver",
                            "pvalue", "qvalue") if c in flagged.columns]
        return _html(head, flagged.sort_values("pvalue")[cols])


def _baseline(history: list[np.ndarray], window: int, cumulative: np.ndarray, kind: str,
              min_baseline: float) -> np.ndarray:
    """Expected shares: summed earlier accepted increments (trailing) or the totals so far."""
    if kind == "trailing" and history:
        base = np.sum(history[-window:], axis=0)
        if base.sum() >= min_baseline:
            return base
    return cumulative


def _pearson(x: np.ndarray, base: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    # Half a vote added to each baseline count keeps a contestant with no earlier votes testable.
    p = (base + 0.5) / (base + 0.5).sum()
    n = x.sum()
    expected = n * p
    stat = float(((x - expected) ** 2 / expected).sum())
    return stat, p, expected


def _fit_dispersion(n: np.ndarray, stat: np.ndarray, dof: int, max_iter: int = 5000) -> tuple[float, float, bool, str]:
    """log phi = a + b log n by median regression; falls back to a constant phi if n barely varies.

    Returns a, b, whether QuantReg's iteratively reweighted least squares converged, and why not.
    An unconverged fit is still the best found (a slightly unconverged slope moves phi by far less
    than the spread of the statistics), but it is reported, not passed over: the caller notes it.
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import ConvergenceWarning, IterationLimitWarning

    y = np.log(np.maximum(stat, 1e-12) / stats.chi2.median(dof))
    x = np.log(n)
    if len(n) < 10 or np.ptp(x) < 0.5:
        return float(np.median(y)), 0.0, True, "constant (median)"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = sm.QuantReg(y, sm.add_constant(x)).fit(q=0.5, max_iter=int(max_iter))
    failed = [str(w.message) for w in caught if issubclass(w.category, (IterationLimitWarning, ConvergenceWarning))]
    a, b = (float(v) for v in fit.params)
    return a, b, not failed, "; ".join(failed)


def _tests_for_region(values: np.ndarray, *, window: int, baseline: str, min_votes: int, min_baseline: float,
                      dof: int, screen: float, dispersion: tuple[float, float] | None) -> list[dict]:
    """Pearson statistics of one region's eligible increments against their baselines.

    With ``dispersion`` (a, b), an increment whose p-value is below ``screen`` does not enter
    later baselines, decided as the series runs, so a run of skewed increments cannot become
    its own expectation.
    """
    delta = np.diff(values, axis=0)
    out, history = [], []
    for t in range(len(delta)):
        x = delta[t]
        if np.isnan(x).any() or (x < 0).any() or x.sum() < min_votes:
            continue
        base = _baseline(history, window, values[t], baseline, min_baseline)
        if np.isnan(base).any() or base.sum() < min_baseline:
            history.append(x)
            continue
        stat, p, _ = _pearson(x, base)
        n = float(x.sum())
        out.append({"t": t, "n": n, "statistic": stat, "x": x, "p": p})
        if dispersion is not None:
            phi = max(math.exp(dispersion[0] + dispersion[1] * math.log(n)), 1.0)
            if stats.chi2.sf(stat / phi, dof) < screen:
                continue
        history.append(x)
    return out


def composition_test(series, *, regions: Iterable[str] | None = None, contestants: Sequence[str] | None = None,
                     baseline: str = "cumulative", window: int = 24, min_votes: int = 1000,
                     min_baseline: float = 1000, screen: float = 1e-3, alpha: float = 0.05,
                     focus: Sequence[str] = ()) -> CompositionTest:
    """Test every increment's composition against the region's earlier increments (see ``CompositionTest``).

    ``baseline="cumulative"`` (default): expected shares are the region's totals before the
    interval (the new votes split like all votes counted so far there); ``"trailing"``: those of
    the sum of the region's last ``window`` accepted increments (the same province's earlier
    increments; adapts to a changing mix of late TPS, but on the real DPR series a long run of
    skewed increments leaked into it and then froze it, see the notebook). Increments under ``min_votes`` votes are not tested: they hold a
    handful of TPS, whose statistic has a heavier tail than the chi-square (with 100 votes the
    false-positive rate on clean synthetic series was 6-7 % at alpha 5 %; with 1,000, 4-6 %). Two passes: increments with p < ``screen`` in the first pass are
    left out of later baselines, so that a run of skewed increments does not become its own
    expectation. ``focus`` contestants get observed share, expected share and z columns.
    """
    if baseline not in ("trailing", "cumulative"):
        raise ValueError(f"baseline must be 'trailing' or 'cumulative', got {baseline!r}")
    from statsmodels.stats.multitest import multipletests

    names = tuple(contestants or series.contestants)
    dof = len(names) - 1
    if dof < 1:
        raise ValueError("a composition needs at least two contestants")
    regions = [str(r) for r in (regions if regions is not None else series.regions)]
    rows, dispersion = [], []
    for region in regions:
        votes = series.wide(region)
        missing = [c for c in names if c not in votes.columns]
        if missing:
            raise KeyError(f"region {region}: no series for {', '.join(missing)}")
        values = votes[list(names)].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        if len(values) < 3:
            continue
        # Pass 1: every increment enters the baselines; its dispersion fit screens pass 2, whose
        # statistics give the final fit (a third pass repeats the screening with that fit).
        fitted, tests = None, []
        for _ in range(3):
            tests = _tests_for_region(values, window=window, baseline=baseline, min_votes=min_votes,
                                      min_baseline=min_baseline, dof=dof, screen=screen, dispersion=fitted)
            if not tests:
                break
            n = np.array([r["n"] for r in tests])
            stat = np.array([r["statistic"] for r in tests])
            a, b, converged, message = _fit_dispersion(n, stat, dof)
            fitted = (a, b)
            phi = np.maximum(np.exp(a + b * np.log(n)), 1.0)
            pvalue = stats.chi2.sf(stat / phi, dof)
        if not tests:
            continue
        dispersion.append({"region": region, "a": a, "b": b, "intervals": len(tests), "converged": converged,
                           "note": "" if converged else convergence_note("the dispersion fit (QuantReg)", message)})
        index = votes.index
        for r, ph, pv in zip(tests, phi, pvalue):
            x, p, nn = r["x"], r["p"], r["n"]
            z = (x - nn * p) / np.sqrt(ph * nn * p * (1 - p))
            k = int(np.argmax(np.abs(z)))
            row = {"region": region, "start": index[r["t"]], "end": index[r["t"] + 1], "n": int(nn),
                   "statistic": r["statistic"], "phi": float(ph), "pvalue": float(pv),
                   "driver": names[k], "driver_share": x[k] / nn, "driver_expected": p[k], "z_driver": float(z[k])}
            for c in focus:
                j = names.index(c)
                row[f"added_{c}"] = int(x[j])
                row[f"share_{c}"], row[f"expected_{c}"], row[f"z_{c}"] = x[j] / nn, p[j], float(z[j])
            rows.append(row)
    table = pd.DataFrame(rows)
    if len(table):
        table["qvalue"] = multipletests(table["pvalue"].to_numpy(), method="fdr_bh")[1]
        table["flagged"] = table["qvalue"] < alpha
    null = (f"increment ~ overdispersed multinomial around the {'last ' + str(window) + ' accepted increments' if baseline == 'trailing' else 'cumulative totals'} "
            f"of the same region; Pearson X2 / phi(n) ~ chi2({dof}), log phi = a + b log n by median regression "
            f"on the series; increments with a fall or fewer than {min_votes} votes not tested; BH q-values")
    params = {"baseline": baseline, "window": window, "min_votes": min_votes, "min_baseline": min_baseline,
              "screen": screen, "alpha": alpha, "focus": tuple(focus)}
    return CompositionTest(table=table, dispersion=pd.DataFrame(dispersion), contestants=names,
                           labels=dict(series.labels), null=null, n=len(table), parameters=params)


# ---------------------------------------------------------------------------------- share windows
def share_of_added(series, contestant: str, *, periods: Mapping[str, tuple[str, str]],
                   regions: Iterable[str] = ("0",)) -> pd.DataFrame:
    """A contestant's share of the votes added in named periods (WIB times), per region.

    For each period ``(start, end)`` the increment runs from the last snapshot at or before
    ``start`` to the last at or before ``end`` (falls included, as the totals moved); ``share``
    is the contestant's added votes over all contestants' added votes, ``share_at_end`` its
    share of the region's total at the end.
    """
    rows = []
    for region in regions:
        votes = series.wide(str(region)).astype("Float64")
        if contestant not in votes.columns:
            raise ValueError(f"no contestant {contestant!r} in the series of region {region}; "
                             f"it has {', '.join(map(str, votes.columns))}")
        for name, (start, end) in periods.items():
            s, e = pd.Timestamp(start, tz=votes.index.tz), pd.Timestamp(end, tz=votes.index.tz)
            before, upto = votes[votes.index <= s], votes[votes.index <= e]
            if before.empty or upto.empty:
                raise ValueError(f"period {name!r}: region {region} has no snapshot at or before {start} / {end}")
            first, last = before.iloc[-1], upto.iloc[-1]
            added = (last - first).astype(float)
            total = float(added.sum())
            rows.append({"region": str(region), "period": name, "from": before.index[-1], "to": upto.index[-1],
                         "added": total, f"added_{contestant}": float(added[contestant]),
                         "share": float(added[contestant]) / total if total > 0 else float("nan"),
                         "share_at_end": float(last[contestant] / last.sum())})
    return pd.DataFrame(rows)

"""Two sources of the same election side by side: do they agree, and where they differ, in whose favour?

E.g. Sirekap's OCR readings against KawalPemilu's crowd-verified C1 numbers, or against the
official recapitulation. Both are ``Election`` objects; they are summed to a common level and
joined on its codes. Per region and candidate the difference a - b (votes, or percentage points
of the candidate's share); agreement when every candidate's difference is within ``tolerance``.
Null of the direction tests: the differences are symmetric about zero (neither source
systematically higher for a candidate): the exact sign test (binomial, ties dropped) and the
Wilcoxon signed-rank test (Wilcoxon 1945; scipy), per candidate overall and, per region of a
coarser level ``by``, the sign test with Benjamini-Hochberg q-values across those regions.
A difference is an irregularity between sources (a misread form, a late correction, different
coverage), not a finding about who caused it.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.multitest import multipletests

from .election import Election
from .display import frame_html

__all__ = ["SourceComparison", "compare_sources", "region_totals_election", "aggregate_totals",
           "SIREKAP_LEVELS"]

#: Sirekap's levels and the length of their codes.
SIREKAP_LEVELS: Mapping[str, int] = {"province": 2, "regency": 4, "district": 6, "village": 10}
NULL = ("differences between the sources are symmetric about zero for each candidate (neither source "
        "systematically higher): exact two-sided sign test (ties dropped) and Wilcoxon signed-rank test; "
        "per region of the coarser level, sign test with Benjamini-Hochberg q-values")
HTML_ROWS = 30


def region_totals_election(frame: pd.DataFrame, *, code: str = "region", candidates: Sequence[str] = ("01", "02", "03"),
                           name: str = "", provenance: Mapping[str, Any] | None = None,
                           extras: Sequence[str] = ()) -> Election:
    """A table of region totals (one row per Sirekap region code) as an Election of regions.

    Every code must have the same length (one level); its parents come from the code's prefixes
    (Sirekap codes nest: 2 / 4 / 6 / 10 digits). registered / voters / valid / invalid are <NA>
    unless present. Used to compare aggregate bodies with another source.
    """
    codes = frame[code].astype(str)
    lengths = codes.str.len().unique()
    by_length = {v: k for k, v in SIREKAP_LEVELS.items()}
    if len(lengths) != 1 or int(lengths[0]) not in by_length or not codes.str.fullmatch(r"[0-9]+").all():
        raise ValueError(f"region codes must be digit strings of one length among {sorted(by_length)}; "
                         f"got lengths {sorted(int(x) for x in lengths)}")
    if codes.duplicated().any():
        raise ValueError(f"duplicate region codes: {', '.join(codes[codes.duplicated()].unique()[:10])}")
    level = by_length[int(lengths[0])]
    levels = [lv for lv, n in SIREKAP_LEVELS.items() if n <= SIREKAP_LEVELS[level]]
    table = pd.DataFrame({"unit_id": codes.to_numpy()})
    for lv in levels:
        table[lv] = codes.str[: SIREKAP_LEVELS[lv]].to_numpy()
    for column in ("registered", "voters", "valid", "invalid", *candidates):
        table[column] = frame[column].to_numpy() if column in frame.columns else pd.array([pd.NA] * len(frame), dtype="Int64")
    for column in extras:
        table[column] = frame[column].to_numpy()
    return Election.from_frame(table, levels=levels, candidates=candidates, name=name, provenance=provenance)


def aggregate_totals(series, level: str, *, name: str = "") -> Election:
    """The last totals of every region at ``level`` in a series of Sirekap aggregate bodies
    (``sources.sirekap.aggregates.AggregateSeries``) as an Election of regions, with the
    reporting progress ``tps_total`` / ``tps_reported`` (<NA> where the body has none)."""
    if level not in SIREKAP_LEVELS:
        raise KeyError(f"{level!r} is not one of {', '.join(SIREKAP_LEVELS)}")
    last = series.to_frame().reset_index().rename(columns={"index": "region"})
    last = last[last["region"].astype(str).str.len() == SIREKAP_LEVELS[level]]
    if last.empty:
        raise ValueError(f"the series has no region at level {level!r}")
    progress = series.progress.sort_values("time").groupby("region")[["tps_total", "tps_reported"]].last()
    last = last.join(progress, on="region")
    for column in ("tps_total", "tps_reported"):
        last[column] = pd.to_numeric(last.get(column), errors="coerce").astype("Int64")
    candidates = [c for c in series.contestants if c in last.columns]
    for c in candidates:
        last[c] = pd.to_numeric(last[c], errors="coerce").astype("Int64")
    provenance = {"source": f"Sirekap aggregate bodies ({getattr(series, 'source', '')})", "level": level}
    return region_totals_election(last, code="region", candidates=candidates, name=name or f"Sirekap {level} totals",
                                  provenance=provenance, extras=("tps_total", "tps_reported"))


@dataclass(frozen=True, eq=False)
class SourceComparison:
    """Agreement and per-candidate differences of two sources at one level, with direction tests."""

    regions: pd.DataFrame  # one row per matched region: a_<c>, b_<c>, diff_<c>, agree
    summary: pd.DataFrame  # per candidate: regions, higher_in_a, higher_in_b, equal, total / median diff, tests
    by_region: pd.DataFrame  # per coarser region and candidate: sign test, q-value
    counts: Mapping[str, int]  # matched, only_a, only_b, incomplete, compared, agree
    on: str
    measure: str
    tolerance: float
    names: tuple[str, str]
    alpha: float
    null: str = NULL
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def agreement_rate(self) -> float:
        compared = self.counts["compared"]
        return self.counts["agree"] / compared if compared else float("nan")

    def to_frame(self) -> pd.DataFrame:
        return self.summary.copy()

    def sentences(self) -> str:
        """The comparison in plain sentences with its numbers."""
        a, b = self.names
        c = self.counts
        unit = "votes" if self.measure == "votes" else "percentage points of the share"
        text = (f"{c['matched']:,} {self.on} regions are in both {a} and {b} ({c['only_a']:,} only in {a}, "
                f"{c['only_b']:,} only in {b}); {c['compared']:,} have every candidate in both. "
                f"They agree (every difference within {self.tolerance:g} {unit}) in {c['agree']:,} "
                f"({100 * self.agreement_rate:.1f} %).")
        for row in self.summary.itertuples():
            if not row.higher_in_a and not row.higher_in_b:
                text += f" {row.candidate}: no difference in any region."
                continue
            verdict = ("differences lean one way" if row.sign_pvalue < self.alpha else "no direction beyond chance")
            size = (f"total {row.total_difference:+,.0f} votes" if self.measure == "votes"
                    else f"mean {row.total_difference / row.regions:+.2f} points")
            text += (f" {row.candidate}: higher in {a} in {row.higher_in_a:,}, in {b} in {row.higher_in_b:,} regions, "
                     f"median difference {row.median_difference:+.3g}, {size}; "
                     f"{verdict} (sign test p = {row.sign_pvalue:.2g}).")
        return text

    def _repr_html_(self) -> str:
        parts = [f"<p><b>{html.escape(self.sentences())}</b></p>", f"<p>Null: {html.escape(self.null)}</p>",
                 frame_html(self.summary)]
        if len(self.by_region):
            flagged = self.by_region[self.by_region["flagged"]]
            parts.append(f"<p>{html.escape(f'{len(flagged)} of {len(self.by_region)} region x candidate sign tests flagged (q < {self.alpha:g}).')}</p>")
            parts.append(frame_html(self.by_region.sort_values("pvalue").head(HTML_ROWS)))
        differing = self.regions[~self.regions["agree"]]
        parts.append(f"<p>{html.escape(f'Regions that differ: first {min(len(differing), HTML_ROWS)} of {len(differing):,}.')}</p>")
        parts.append(frame_html(differing.head(HTML_ROWS)))
        return "".join(parts)


def _totals(election: Election, on: str) -> pd.DataFrame:
    if on not in election.levels:
        raise KeyError(f"{on!r} is not a level of {election.name or 'this election'} ({', '.join(election.levels)})")
    candidates = list(election.candidates)
    table = election.table
    # A region is complete for a candidate only when every station in it has the number: a sum
    # over half the stations is not comparable with the other source's total.
    complete = table[candidates].notna().groupby(table[on], observed=True).all()
    sums = table[candidates].astype("Float64").groupby(table[on], observed=True).sum(min_count=1)
    return sums.where(complete)


def _sign_test(diff: np.ndarray) -> float:
    pos, neg = int((diff > 0).sum()), int((diff < 0).sum())
    return float(stats.binomtest(pos, pos + neg, 0.5).pvalue) if pos + neg else np.nan


def compare_sources(a: Election, b: Election, on: str, *, by: str | None = None, measure: str = "votes",
                    tolerance: float = 0.0, alpha: float = 0.05, names: tuple[str, str] = ("a", "b")) -> SourceComparison:
    """Compare two sources of the same election at level ``on`` (see the module docstring).

    ``measure="votes"``: differences in votes; ``"shares"``: in percentage points of each
    candidate's share of the candidates' votes (for sources with different coverage of the same
    region). ``by``: a coarser level shared by both, for the per-region sign tests with q-values.
    Candidates compared: those both sources have.
    """
    if measure not in ("votes", "shares"):
        raise ValueError(f"measure must be 'votes' or 'shares', not {measure!r}")
    candidates = [c for c in a.candidates if c in b.candidates]
    if not candidates:
        raise ValueError("the two sources have no candidate column in common")
    ta, tb = _totals(a, on)[candidates], _totals(b, on)[candidates]
    ta.index, tb.index = ta.index.astype(str), tb.index.astype(str)
    common = ta.index.intersection(tb.index)
    counts = {"regions_a": len(ta), "regions_b": len(tb), "matched": len(common),
              "only_a": len(ta.index.difference(tb.index)), "only_b": len(tb.index.difference(ta.index))}
    va = ta.loc[common].astype(float)
    vb = tb.loc[common].astype(float)
    full = va.notna().all(axis=1) & vb.notna().all(axis=1)
    if measure == "shares":
        va = 100 * va.div(va.sum(axis=1), axis=0)
        vb = 100 * vb.div(vb.sum(axis=1), axis=0)
        full &= va.notna().all(axis=1) & vb.notna().all(axis=1)
    counts["incomplete"] = int((~full).sum())
    va, vb = va[full], vb[full]
    diff = va - vb
    agree = (diff.abs() <= tolerance + 1e-9).all(axis=1)
    counts["compared"], counts["agree"] = int(len(diff)), int(agree.sum())
    regions = pd.DataFrame({on: diff.index})
    for c in candidates:
        regions[f"{names[0]}_{c}"] = va[c].to_numpy()
        regions[f"{names[1]}_{c}"] = vb[c].to_numpy()
        regions[f"diff_{c}"] = diff[c].to_numpy()
    regions["agree"] = agree.to_numpy()
    if by is not None:
        if by not in a.levels or by not in b.levels:
            raise KeyError(f"{by!r} is not a level of both sources")
        parent = a.table.drop_duplicates(on).set_index(on)[by]
        parent.index = parent.index.astype(str)
        regions.insert(0, by, parent.reindex(regions[on]).astype(str).to_numpy())
    summary = []
    for c in candidates:
        d = diff[c].to_numpy()
        nonzero = d[d != 0]
        wilcoxon = float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) >= 1 and np.any(nonzero) else np.nan
        summary.append({
            "candidate": c, "regions": len(d), "higher_in_a": int((d > 0).sum()), "higher_in_b": int((d < 0).sum()),
            "equal": int((d == 0).sum()), "total_difference": float(d.sum()),
            "median_difference": float(np.median(d)) if len(d) else np.nan,
            "mean_abs_difference": float(np.abs(d).mean()) if len(d) else np.nan,
            "sign_pvalue": _sign_test(d), "wilcoxon_pvalue": wilcoxon,
        })
    summary = pd.DataFrame(summary)
    by_region = []
    if by is not None and len(regions):
        for region, group in regions.groupby(by, sort=True):
            for c in candidates:
                d = group[f"diff_{c}"].to_numpy()
                by_region.append({by: region, "candidate": c, "regions": len(d), "higher_in_a": int((d > 0).sum()),
                                  "higher_in_b": int((d < 0).sum()), "total_difference": float(d.sum()),
                                  "pvalue": _sign_test(d)})
    by_region = pd.DataFrame(by_region, columns=[by or "region", "candidate", "regions", "higher_in_a", "higher_in_b",
                                                 "total_difference", "pvalue"])
    by_region["qvalue"] = np.nan
    tested = by_region["pvalue"].notna()
    if tested.any():
        by_region.loc[tested, "qvalue"] = multipletests(by_region.loc[tested, "pvalue"], method="fdr_bh")[1]
    by_region["flagged"] = (by_region["qvalue"] < alpha).to_numpy(dtype=bool)
    summary = summary.rename(columns={"higher_in_a": "higher_in_a", "higher_in_b": "higher_in_b"})
    return SourceComparison(regions=regions, summary=summary, by_region=by_region, counts=counts, on=on,
                            measure=measure, tolerance=tolerance, names=tuple(names), alpha=alpha,
                            parameters={"by": by, "a": a.name, "b": b.name, "candidates": tuple(candidates)})

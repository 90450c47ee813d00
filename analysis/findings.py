"""What a journalist can quote: the Findings page's figures, each computed from the data with its uncertainty.

Pure functions over an Election (and optionally KawalPemilu's desa totals), one per part, each
returning a frozen result with ``to_frame()`` and an escaped ``_repr_html_``; ``findings`` runs
them all and ``Findings.headline()`` writes the sentences from the numbers. Nothing here is typed
by hand: a figure in a sentence is a figure of a table.

Parts and their nulls:

- coverage: which provinces are in the table, and per province how many TPS carry numbers (exact
  counts of this table, no sampling; the missing provinces named from the region tree);
- forms that do not add up: ``consistency.check_consistency`` with the Election's profile; shares
  with Wilson 95 % intervals (the rate of the reading process, the TPS taken as its draws);
- misreadings found and repaired (``consistency.find_misreadings``) and their net effect per
  candidate with a bootstrap interval over TPS (``tsm.massive``) against the margin and 50 %;
- do the repairs favour one candidate? Null: given each repaired misreading and the direction it
  moved its number (read larger or smaller), the candidate whose box it landed on is exchangeable:
  each candidate's box equally likely, weighted by how likely that direction is for the digits
  written there (``tsm.systematic(conditional=True)``); exact Poisson-binomial p-value per
  province and candidate, decided with the page-level error control of ``flagging.page_flags``;
- the national page's flags (digits, turnout, forms, ...) under that same control, from a
  rendered ``summary.json`` or recomputed with ``report.battery.run_battery``;
- noken provinces (``data/noken.csv``): shown apart; a flag there is expected under noken;
- two sources: Sirekap summed to desa against KawalPemilu's crowd-verified desa totals where both
  cover every TPS of the desa; sign test per candidate and a bootstrap interval over desa.

Words: "irregularity", never "fraud". A repair is a proposal from the form's arithmetic, not the
number on the C1 photo, which is not read here.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

__all__ = [
    "Coverage", "Forms", "MisreadingEffect", "Favouring", "PageFlagsFound", "Noken", "TwoSources", "Limits",
    "Findings", "coverage", "forms", "misreading_effect", "favouring", "page_flags_found", "noken",
    "two_sources", "limits", "findings", "read_noken", "read_inputs", "to_summary", "write_summary", "FindingsError",
]

DATA = Path(__file__).parent / "data"
HTML_ROWS = 40
LEVEL = "province"
NOKEN_NOTE = "expected under noken (bloc voting by community agreement, legal there), not an irregularity"
FAVOUR_NULL = (
    "given each repaired misreading of a candidate's number and the direction it moved that number (read "
    "larger or smaller), the candidate whose box it landed on is exchangeable: every candidate's box equally "
    "likely, weighted by the chance of that direction for the digits written there (random OCR edits, "
    "tsm.systematic with conditional=True). Per province and candidate the number of misreadings favouring the "
    "candidate (their own number read larger, or a rival's read smaller) gets an exact one-sided "
    "Poisson-binomial p-value; the provinces' p-values are decided together by the page-level error control "
    "(flagging.page_flags: empirical null across provinces, Simes per province, Benjamini-Hochberg across provinces)"
)
SOURCES_NULL = (
    "the Sirekap and KawalPemilu totals of a desa differ symmetrically about zero for each candidate (neither "
    "source systematically higher): exact two-sided sign test (ties dropped); 95 % interval of the net "
    "difference by bootstrap over the desa compared"
)


class FindingsError(ValueError):
    """Input the Findings page cannot use (a missing file, a table without the needed columns)."""


# ------------------------------------------------------------------------------------ helpers
def _wilson(k: int, n: int) -> tuple[float, float]:
    return proportion_confint(k, n, alpha=0.05, method="wilson") if n else (np.nan, np.nan)


def _table_html(title: str, frame: pd.DataFrame, notes: Sequence[str] = (), rows: int = HTML_ROWS) -> str:
    shown = frame.head(rows)
    more = f"<p>{html.escape(f'First {len(shown)} of {len(frame):,} rows.')}</p>" if len(frame) > len(shown) else ""
    from .display import frame_html

    body = frame_html(shown, max_rows=0)  # the page's one formatter: no row index, readable p-values, separators
    notes_html = "".join(f"<p><small>{html.escape(n)}</small></p>" for n in notes)
    return f"<h4>{html.escape(title)}</h4>" + body + more + notes_html


def _pct(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or not np.isfinite(x) else f"{100 * x:.{digits}f} %"


def _province_names(election, names: pd.DataFrame | None) -> dict[str, str]:
    """Province code -> name: the region tree first, then the Election's own ``province_name``."""
    out: dict[str, str] = {}
    table = election.table
    if f"{LEVEL}_name" in table.columns:
        pairs = table[[LEVEL, f"{LEVEL}_name"]].dropna().drop_duplicates(LEVEL)
        out.update(dict(zip(pairs[LEVEL].astype(str), pairs[f"{LEVEL}_name"].astype(str))))
    if names is not None and len(names):
        level1 = names[names["code"].astype(str).str.len() == 2]
        out.update(dict(zip(level1["code"].astype(str), level1["name"].astype(str))))
    return out


def _name_of(names: Mapping[str, str], code: str) -> str:
    return names.get(str(code), "")


def _label(names: Mapping[str, str], code: str) -> str:
    name = _name_of(names, code)
    return f"{name} ({code})" if name else str(code)


def read_noken(path: str | Path | None = None) -> pd.DataFrame:
    """The noken provinces with the kabupaten and the source (``analysis/data/noken.csv``)."""
    path = Path(path) if path is not None else DATA / "noken.csv"
    if not path.is_file():
        raise FindingsError(f"no noken list at {path}")
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [c for c in ("province", "name", "regencies", "source") if c not in table.columns]
    if missing:
        raise FindingsError(f"{path.name}: missing columns {', '.join(missing)}")
    return table


def _needs_province(election) -> None:
    if LEVEL not in election.levels:
        raise FindingsError(f"the Findings page needs a {LEVEL!r} level; this election has {', '.join(election.levels)}")


# ------------------------------------------------------------------------------------ coverage
@dataclass(frozen=True, eq=False)
class Coverage:
    """Per province: TPS rows, TPS with every candidate's number, with the administration block; the
    provinces of the region tree absent from the table."""

    table: pd.DataFrame    # province, name, tps, with_votes, share_votes, with_administration, share_administration, noken
    missing: pd.DataFrame  # province, name (level-1 regions of the tree with no row in the table)
    total: Mapping[str, Any]
    names_given: bool
    note: str

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _repr_html_(self) -> str:
        missing = (", ".join(f"{r.name} ({r.province})" for r in self.missing.itertuples()) if len(self.missing)
                   else ("none" if self.names_given else "unknown (no region tree given)"))
        return (_table_html("Coverage per province", self.table, rows=60)
                + f"<p>{html.escape('Provinces of the region tree with no TPS in this table: ' + missing)}</p>"
                + f"<p>{html.escape(self.note)}</p>")


def coverage(election, names: pd.DataFrame | None = None, *, noken_list: pd.DataFrame | None = None) -> Coverage:
    """Which provinces the table covers, and per province the TPS that carry numbers (exact counts).

    ``names``: the region tree (``sources.kawalpemilu.names_from_wilayah``): names the provinces and
    lists the level-1 regions with no TPS in the table (the overseas region 99 included when the
    tree has it). A TPS "with votes" has at least one candidate's number (as Sirekap counts its
    progress), ``with_every_candidate`` all of them; "with the administration block" has the roll
    (``dpt``, else ``registered``) and ``voters`` published.
    """
    _needs_province(election)
    table = election.table
    noken_codes = set((noken_list if noken_list is not None else read_noken())["province"].astype(str))
    prov = table[LEVEL].astype(str)
    votes = table[list(election.candidates)].notna().any(axis=1)
    every = table[list(election.candidates)].notna().all(axis=1)
    roll = "dpt" if "dpt" in table.columns else "registered"
    admin_cols = [c for c in (roll, "voters") if c in table.columns]
    admin = table[admin_cols].notna().all(axis=1) if admin_cols else pd.Series(False, index=table.index)
    frame = pd.DataFrame({"tps": prov.groupby(prov).size(), "with_votes": votes.groupby(prov).sum(),
                          "with_every_candidate": every.groupby(prov).sum(), "with_administration": admin.groupby(prov).sum()})
    frame.index.name = LEVEL
    frame = frame.reset_index()
    province_names = _province_names(election, names)
    frame.insert(1, "name", [_name_of(province_names, c) for c in frame[LEVEL]])
    frame["share_votes"] = frame["with_votes"] / frame["tps"]
    frame["share_administration"] = frame["with_administration"] / frame["tps"]
    frame["noken"] = frame[LEVEL].isin(noken_codes)
    frame = frame[[LEVEL, "name", "tps", "with_votes", "share_votes", "with_every_candidate", "with_administration",
                   "share_administration", "noken"]]
    frame = frame.astype({"tps": "int64", "with_votes": "int64", "with_every_candidate": "int64", "with_administration": "int64"})
    present = set(frame[LEVEL])
    if names is not None and len(names):
        level1 = names[names["code"].astype(str).str.len() == 2]
        missing = level1[~level1["code"].astype(str).isin(present)]
        missing = pd.DataFrame({LEVEL: missing["code"].astype(str).to_numpy(), "name": missing["name"].astype(str).to_numpy()})
        tree = int(len(level1))
    else:
        missing = pd.DataFrame({LEVEL: pd.Series(dtype=str), "name": pd.Series(dtype=str)})
        tree = None
    total = {"provinces": int(len(frame)), "tree_provinces": tree, "tps": int(frame["tps"].sum()),
             "with_votes": int(frame["with_votes"].sum()), "with_every_candidate": int(frame["with_every_candidate"].sum()),
             "with_administration": int(frame["with_administration"].sum())}
    total["share_votes"] = total["with_votes"] / total["tps"] if total["tps"] else np.nan
    if len(missing):
        note = (f"The table has no TPS of {len(missing)} of the {tree} regions of the region tree "
                f"({', '.join(f'{n} ({c})' if n else c for c, n in zip(missing[LEVEL], missing['name']))}), and "
                f"{total['tps'] - total['with_votes']:,} of its {total['tps']:,} TPS carry no numbers. "
                "Every later figure is a figure of this table, not a national estimate: totals leave out the "
                "missing provinces and the TPS without numbers, and shares lean towards the regions that are in "
                "(candidates strong in the missing provinces are under-represented).")
    else:
        note = (f"{total['tps'] - total['with_votes']:,} of the {total['tps']:,} TPS carry no numbers: every later "
                "figure is a figure of the TPS that do, not of every TPS.")
    return Coverage(table=frame, missing=missing, total=total, names_given=names is not None, note=note)


# ------------------------------------------------------------------------------------ forms
@dataclass(frozen=True, eq=False)
class Forms:
    """Forms that do not add up: per rule overall, per province (any rule), with Wilson intervals."""

    rules: pd.DataFrame      # rule, description, evaluable, failed, share, low, high
    provinces: pd.DataFrame  # province, name, evaluable, failed, share, low, high, noken
    overall: Mapping[str, Any]
    not_checked: Mapping[str, tuple[str, ...]]
    checks: Any = field(repr=False, default=None)

    def to_frame(self) -> pd.DataFrame:
        return self.provinces.copy()

    def _repr_html_(self) -> str:
        o = self.overall
        head = (f"{o['failed']:,} of {o['evaluable']:,} TPS where a rule could be checked break at least one "
                f"({_pct(o['share'], 2)}, 95 % interval {_pct(o['low'], 2)} to {_pct(o['high'], 2)}).")
        notes = [f"Rules not checked (columns missing): {', '.join(self.not_checked)}."] if self.not_checked else []
        return (f"<p><b>{html.escape(head)}</b></p>" + _table_html("By rule", self.rules, notes=notes)
                + _table_html("By province (any rule)", self.provinces, rows=60))


def _with_wilson(frame: pd.DataFrame, k: str, n: str) -> pd.DataFrame:
    frame = frame.copy()
    frame["share"] = frame[k] / frame[n].where(frame[n] > 0)
    bounds = [_wilson(int(a), int(b)) for a, b in zip(frame[k], frame[n])]
    frame["low"] = [b[0] for b in bounds]
    frame["high"] = [b[1] for b in bounds]
    return frame


def forms(election, *, names: pd.DataFrame | None = None, checks: Any = None,
          noken_list: pd.DataFrame | None = None) -> Forms:
    """Forms that break an arithmetic or capacity rule of the Election's profile, by rule and by province."""
    from .consistency import ANY_RULE, check_consistency

    _needs_province(election)
    checks = checks if checks is not None else check_consistency(election)
    noken_codes = set((noken_list if noken_list is not None else read_noken())["province"].astype(str))
    rules = checks.coverage.reset_index()[["rule", "description", "evaluable", "failed"]]
    rules = _with_wilson(rules, "failed", "evaluable").sort_values("failed", ascending=False, kind="stable")
    by = checks.by_region(LEVEL, rule=ANY_RULE)[[LEVEL, "evaluable", "failed"]]
    by[LEVEL] = by[LEVEL].astype(str)
    province_names = _province_names(election, names)
    by.insert(1, "name", [_name_of(province_names, c) for c in by[LEVEL]])
    by = _with_wilson(by, "failed", "evaluable")
    by["noken"] = by[LEVEL].isin(noken_codes)
    evaluable, failed = checks.masks(None)
    k, n = int(failed.sum()), int(evaluable.sum())
    low, high = _wilson(k, n)
    overall = {"evaluable": n, "failed": k, "share": k / n if n else np.nan, "low": low, "high": high, "tps": checks.n}
    return Forms(rules=rules.reset_index(drop=True), provinces=by.reset_index(drop=True), overall=overall,
                 not_checked=dict(checks.not_checked), checks=checks)


# ------------------------------------------------------------------------------------ misreadings
@dataclass(frozen=True, eq=False)
class MisreadingEffect:
    """Misreadings found and repaired, and what repairing them changes, against the margin and 50 %."""

    counts: Mapping[str, int]
    by_candidate: pd.DataFrame  # candidate, misreadings, net_votes (reported - repaired), low, high, min, max
    overall: Mapping[str, Any]  # margin, margin_repaired (+ interval), leader share (+ interval), crosses_50
    by_province: pd.DataFrame
    model: str                  # which edit model the search used
    interval: str               # how the intervals were made
    found: Any = field(repr=False, default=None)
    massive: Any = field(repr=False, default=None)

    def to_frame(self) -> pd.DataFrame:
        return self.by_candidate.copy()

    def _repr_html_(self) -> str:
        o = self.overall
        head = (f"{self.counts.get('explained', 0):,} forms repaired by one OCR edit of "
                f"{self.counts.get('searched', 0):,} searched; margin {o['leader']} over {o['runner_up']} "
                f"{o['margin']:,.0f} votes, after repair {o['margin_repaired']:,.0f} "
                f"({o['margin_repaired_low']:,.0f} to {o['margin_repaired_high']:,.0f}).")
        return (f"<p><b>{html.escape(head)}</b></p>"
                + _table_html("Net effect of the misreadings per candidate (reported minus repaired)", self.by_candidate,
                              notes=[self.interval, f"Edit model: {self.model}"])
                + _table_html("By province", self.by_province, rows=60))


def misreading_effect(election, *, found: Any = None, learned: bool = False, n_boot: int = 1000, seed: int = 2024,
                      names: pd.DataFrame | None = None) -> MisreadingEffect:
    """Run (or take) ``find_misreadings`` and measure the repairs' net effect per candidate.

    ``learned``: search with the edit model learned from KPU's corrections
    (``corrections.load_learned_model``) instead of the default priors; the result says which.
    Net effect of candidate c = sum over its repaired numbers of (reported - repaired): positive
    means the misreadings added votes to c, so repairing them takes votes away. Intervals:
    ``tsm.massive`` (bootstrap over TPS, unrepaired forms at the ends of what one edit allows).
    """
    from . import tsm
    from .consistency import MISREADING_MODEL, find_misreadings

    _needs_province(election)
    if found is None:
        if learned:
            from .corrections import load_learned_model

            model = load_learned_model()
            found = find_misreadings(election, model=model)
            model_text = f"learned from KPU's corrections ({getattr(model, 'description', 'corrections.load_learned_model')})"
        else:
            found = find_misreadings(election)
            model_text = f"default priors ({MISREADING_MODEL})"
    else:
        model_text = str(found.parameters.get("model") or f"default priors ({found.model})")
    m = tsm.massive(election, found.table, level=LEVEL, n_boot=n_boot, seed=seed)
    top = m.table.iloc[0]
    rows = []
    for c in election.candidates:
        rows.append({"candidate": c, "reported_votes": float(top[f"reported_{c}"]), "net_votes": float(top[f"gain_{c}"]),
                     "low": float(top[f"gain_{c}_low"]), "high": float(top[f"gain_{c}_high"]),
                     "min_one_edit": float(top[f"gain_{c}_min"]), "max_one_edit": float(top[f"gain_{c}_max"])})
    by_candidate = pd.DataFrame(rows)
    counts_by_field = found.table.loc[found.table["explained"], "field"].value_counts()
    by_candidate.insert(1, "repaired", [int(counts_by_field.get(c, 0)) for c in election.candidates])
    leader = str(top["leader"])
    overall = {k: (top[k].item() if hasattr(top[k], "item") else top[k]) for k in
               ("leader", "runner_up", "margin", "margin_repaired", "margin_repaired_low", "margin_repaired_high",
                "leader_share", "leader_share_repaired", "leader_share_repaired_low", "leader_share_repaired_high",
                "order_can_change", "tps_misread", "tps_published", "share_misread", "share_low", "share_high",
                "unrepaired", "candidate_misreadings")}
    above = overall["leader_share"] > 0.5
    overall["crosses_50"] = bool(overall["leader_share_repaired_low"] <= 0.5) if above else bool(
        overall["leader_share_repaired_high"] > 0.5)
    overall["leader_above_50"] = bool(above)
    overall["leader"] = leader
    province_names = _province_names(election, names)
    by_province = m.table.iloc[1:].copy()
    by_province["name"] = [_name_of(province_names, r) for r in by_province["region"]]
    keep = ["region", "name", "tps_published", "tps_misread", "share_misread", "unrepaired",
            *[f"gain_{c}" for c in election.candidates], "margin", "margin_repaired", "margin_repaired_low",
            "margin_repaired_high", "order_can_change"]
    by_province = by_province[keep].rename(columns={"region": LEVEL}).reset_index(drop=True)
    return MisreadingEffect(counts=dict(found.counts), by_candidate=by_candidate, overall=overall,
                            by_province=by_province, model=model_text, interval=m.null, found=found, massive=m)


# ------------------------------------------------------------------------------------ favouring
@dataclass(frozen=True, eq=False)
class Favouring:
    """Do the repairs favour one candidate beyond random OCR errors? Per province and candidate, and
    the provinces the page-level error control flags."""

    tests: pd.DataFrame      # province, name, candidate, misreadings, favour, expected, ratio, pvalue, min_pvalue, pvalue_empirical, flagged
    provinces: pd.DataFrame  # province, name, misreadings, pvalue (Simes), qvalue, flagged, flagged_tests, noken
    national: pd.DataFrame   # the "all" rows: candidate, misreadings, favour, expected, ratio, pvalue
    alpha: float
    null: str = FAVOUR_NULL
    procedure: str = ""

    @property
    def flagged(self) -> list[str]:
        return self.provinces.loc[self.provinces["flagged"] & ~self.provinces["noken"], LEVEL].tolist()

    @property
    def flagged_noken(self) -> list[str]:
        return self.provinces.loc[self.provinces["flagged"] & self.provinces["noken"], LEVEL].tolist()

    def to_frame(self) -> pd.DataFrame:
        return self.tests.copy()

    def _repr_html_(self) -> str:
        return (_table_html("Per province (page-level error control)", self.provinces, rows=60,
                            notes=[f"Null: {self.null}.", self.procedure])
                + _table_html("Per province and candidate", self.tests, rows=120)
                + _table_html("All provinces together (not part of the page control)", self.national))


def favouring(election, found: Any, *, alpha: float = 0.05, names: pd.DataFrame | None = None,
              noken_list: pd.DataFrame | None = None) -> Favouring:
    """Test per province whether the repaired misreadings favour a candidate (see ``FAVOUR_NULL``).

    ``found``: ``find_misreadings``' result (or its table). ``min_pvalue``: the smallest p-value the
    test can reach with that province's misreadings (every one favouring the candidate): a province
    with few misreadings cannot be flagged whatever they do.
    """
    from . import tsm
    from .flagging import PROCEDURE, page_flags

    _needs_province(election)
    table = found.table if hasattr(found, "table") else found
    noken_codes = set((noken_list if noken_list is not None else read_noken())["province"].astype(str))
    s = tsm.systematic(election, table, level=LEVEL, alpha=alpha, conditional=True)
    frame = s.table.rename(columns={"region": LEVEL})
    # The smallest attainable p-value: P(K = n) = product of the null chances of favouring.
    rows = tsm._candidate_rows(election, tsm.misreading_table(table, election)[0])
    rows = rows[rows["proposed"].notna()].reset_index(drop=True)
    candidates = list(election.candidates)
    min_p = {}
    if len(rows):
        _, null = tsm._favour_probabilities(rows, candidates, s.model, conditional=True)
        region = election.table[LEVEL].astype(str).reindex(rows["unit_id"]).to_numpy()
        # A misreading that cannot favour the candidate under the null (chance 0) cannot count towards
        # the largest attainable number; the smallest p-value is P(K = that number).
        with np.errstate(divide="ignore"):
            logp = np.where(null > 0, np.log(np.clip(null, 1e-300, 1)), 0.0)
        for r in np.unique(region):
            mask = region == r
            for j, c in enumerate(candidates):
                min_p[(str(r), c)] = float(np.exp(logp[mask, j].sum()))
        for j, c in enumerate(candidates):
            min_p[("all", c)] = float(np.exp(logp[:, j].sum()))
    frame["min_pvalue"] = [min_p.get((str(r), c), 1.0) for r, c in zip(frame[LEVEL], frame["candidate"])]
    national = frame[frame[LEVEL] == "all"].drop(columns=[LEVEL, "name", "qvalue", "flagged"]).reset_index(drop=True)
    per = frame[frame[LEVEL] != "all"].copy()
    province_names = _province_names(election, names)
    per["name"] = [_name_of(province_names, r) for r in per[LEVEL]]
    flags = page_flags(pd.DataFrame({"test": "misreadings favour " + per["candidate"].astype(str),
                                     "region": per[LEVEL].astype(str), "statistic": per["ratio"],
                                     "pvalue": per["pvalue"]}), alpha=alpha)
    decided = flags.tests.set_index(["region", "test"])
    keys = list(zip(per[LEVEL].astype(str), "misreadings favour " + per["candidate"].astype(str)))
    per["pvalue_empirical"] = decided.reindex(keys)["pvalue_empirical"].to_numpy()
    per["flagged"] = decided.reindex(keys)["flagged"].fillna(False).to_numpy(dtype=bool)
    tests = per[[LEVEL, "name", "candidate", "misreadings", "favour", "expected", "ratio", "net_votes", "pvalue",
                 "min_pvalue", "pvalue_empirical", "flagged"]].reset_index(drop=True)
    provinces = flags.regions.rename(columns={"region": LEVEL}).copy()
    provinces.insert(1, "name", [_name_of(province_names, r) for r in provinces[LEVEL]])
    counts = per.drop_duplicates(LEVEL).set_index(LEVEL)["misreadings"]
    provinces.insert(2, "misreadings", counts.reindex(provinces[LEVEL]).fillna(0).astype(int).to_numpy())
    smallest = tests.groupby(LEVEL)["min_pvalue"].min()
    provinces.insert(3, "min_pvalue", smallest.reindex(provinces[LEVEL]).to_numpy())
    provinces["noken"] = provinces[LEVEL].isin(noken_codes)
    provinces = provinces.drop(columns=["tests"])
    return Favouring(tests=tests, provinces=provinces.reset_index(drop=True), national=national, alpha=alpha,
                     procedure=PROCEDURE)


# ------------------------------------------------------------------------------------ page flags
#: A flagged test is said to grow with size when Spearman's rho of its statistic with the provinces'
#: TPS counts is at least this, at p below SIZE_PVALUE (a caution on the page; it changes no flag).
SIZE_RHO, SIZE_PVALUE = 0.5, 0.01


@dataclass(frozen=True, eq=False)
class PageFlagsFound:
    """The national page's flags (every test family under one error control), by province."""

    flagged: pd.DataFrame   # province, name, tests (that carry the flag), families, noken
    tests: pd.DataFrame     # province, test, family, pvalue, flagged (every flagged test)
    regions: int            # provinces on the page
    source: str             # "summary.json at ..." or "recomputed (run_battery ...)"
    noken_note: str = NOKEN_NOTE
    every_test: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # every test of every province
    #: Per flagged test: Spearman's rho of its statistic with the provinces' TPS counts, and its p-value.
    size_dependence: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)

    def size_cautions(self, rho: float = SIZE_RHO, pvalue: float = SIZE_PVALUE) -> pd.DataFrame:
        """Flagged tests whose statistic rises with province size across every province (a null that
        does not fit at large n flags the largest regions first)."""
        table = self.size_dependence
        if table.empty:
            return table
        return table[(table["rho"] >= rho) & (table["pvalue"] < pvalue)].reset_index(drop=True)

    @property
    def irregular(self) -> pd.DataFrame:
        return self.flagged[~self.flagged["noken"]]

    def to_frame(self) -> pd.DataFrame:
        return self.flagged.copy()

    def _repr_html_(self) -> str:
        if not len(self.flagged):
            return f"<p>{html.escape(f'No province stands out (of {self.regions}); source: {self.source}.')}</p>"
        noken = self.flagged[self.flagged["noken"]]
        note = (f"Flags in noken provinces ({', '.join(noken[LEVEL])}): {self.noken_note}." if len(noken) else "")
        size = "" if self.size_dependence.empty else _table_html(
            "Does a flagged test's statistic grow with the province's size?", self.size_dependence, notes=[
                "Spearman's rank correlation across every province of the test's statistic with its number of TPS with "
                f"numbers. Under a null that fits, it does not; rho >= {SIZE_RHO} at p < {SIZE_PVALUE} is shown as a "
                "caution in the headline (it changes no flag)."])
        return (_table_html(f"Provinces flagged ({len(self.irregular)} of {self.regions}, noken provinces apart)",
                            self.irregular, rows=60, notes=[f"Source: {self.source}."])
                + (f"<p>{html.escape(note)}</p>" + _table_html("Noken provinces", noken) if note else "") + size)


FAMILY_OF = (("misreadings favour", "misreadings"), ("broken forms", "forms"), ("digit", "digits"),
             ("turnout", "turnout"), ("extreme", "turnout"), ("integer", "turnout"), ("spike", "spikes"),
             ("pair", "digits"), ("last", "digits"))


def _family(test: str) -> str:
    low = test.lower()
    for key, family in FAMILY_OF:
        if key in low:
            return family
    return "other"


def size_dependence(tests: pd.DataFrame, sizes: pd.Series) -> pd.DataFrame:
    """For each flagged test, Spearman's rho (scipy.stats.spearmanr) of its statistic across every
    province with the province's TPS with numbers. Under a null that fits, a test's statistic does not
    grow with n; a misfit of the station model grows like n and flags the largest provinces."""
    from scipy.stats import spearmanr

    rows = []
    flagged = tests.loc[tests["flagged"].astype(bool), "test"].astype(str).unique()
    for test in flagged:
        part = tests[(tests["test"].astype(str) == test)].copy()
        part["statistic"] = pd.to_numeric(part.get("statistic"), errors="coerce")
        part["n"] = part["region"].astype(str).map(sizes)
        part = part.dropna(subset=["statistic", "n"])
        if len(part) < 8 or part["statistic"].nunique() < 3:
            continue
        result = spearmanr(part["n"], part["statistic"])
        rows.append({"test": test, "provinces": len(part), "rho": float(result.statistic), "pvalue": float(result.pvalue)})
    return pd.DataFrame(rows, columns=["test", "provinces", "rho", "pvalue"])


def _flag_frame(tests: pd.DataFrame, regions: int, source: str, election, names, noken_codes) -> PageFlagsFound:
    tests = tests.copy()
    tests["region"] = tests["region"].astype(str)
    tests["family"] = [_family(t) for t in tests["test"]]
    hit = tests[tests["flagged"].astype(bool)].rename(columns={"region": LEVEL})
    province_names = _province_names(election, names)
    rows = []
    for region, group in hit.groupby(LEVEL, sort=True):
        rows.append({LEVEL: region, "name": _name_of(province_names, region),
                     "tests": "; ".join(group["test"].astype(str)),
                     "families": ", ".join(sorted(set(group["family"]))), "noken": region in noken_codes})
    flagged = pd.DataFrame(rows, columns=[LEVEL, "name", "tests", "families", "noken"])
    keep = [c for c in (LEVEL, "test", "family", "statistic", "pvalue", "pvalue_empirical", "region_qvalue") if c in hit]
    with_numbers = election.table[list(election.candidates)].notna().any(axis=1).to_numpy()
    sizes = election.table.loc[with_numbers, LEVEL].astype(str).value_counts()
    return PageFlagsFound(flagged=flagged, tests=hit[keep].reset_index(drop=True), regions=regions, source=source,
                          every_test=tests.reset_index(drop=True),
                          size_dependence=size_dependence(tests, sizes) if len(tests) else pd.DataFrame())


def page_flags_found(election, *, national_summary: str | Path | None = None, names: pd.DataFrame | None = None,
                     checks: Any = None, found: Any = None, seed: int = 2024, n_sim: int = 1000,
                     alpha: float = 0.05, noken_list: pd.DataFrame | None = None) -> PageFlagsFound:
    """The national report's flags: read from its ``summary.json`` when given, else recomputed exactly
    as the national page does (``run_battery`` at province level, the misreadings' systematic rows,
    ``sections.national_flags``)."""
    noken_codes = set((noken_list if noken_list is not None else read_noken())["province"].astype(str))
    if national_summary:
        from .report.summary import SummaryError, read_summary

        try:
            body = read_summary(national_summary)
        except (SummaryError, OSError) as err:
            raise FindingsError(f"cannot read the national summary {national_summary}: {err}") from None
        tests = pd.DataFrame(body["flags"])
        if tests.empty:
            tests = pd.DataFrame(columns=["test", "region", "pvalue", "flagged"])
        regions = int(tests["region"].nunique()) if len(tests) else 0
        return _flag_frame(tests, regions, f"the national report's summary ({Path(national_summary).name})",
                           election, names, noken_codes)
    from . import tsm
    from .report import battery, sections

    _needs_province(election)
    winner = sections.leading_candidate(election)
    page = sections.plan(election, LEVEL)
    b = battery.run_battery(election, LEVEL, winner=winner, group=page.group, seed=seed, n_sim=n_sim, alpha=alpha,
                            checks=checks, with_tsm=False)
    systematic_rows = None
    if found is not None:
        systematic_rows = tsm.systematic(election, found.table, level=LEVEL, alpha=alpha).flag_rows()
    flags = sections.national_flags(b.forms, *b.tables(), systematic_rows, alpha=alpha)
    tests = pd.DataFrame([f.__dict__ for f in flags])
    regions = int(election.table[LEVEL].nunique())
    return _flag_frame(tests, regions, f"recomputed as the national page does (run_battery at {LEVEL}, seed {seed}, "
                       f"{n_sim} draws per simulated null)", election, names, noken_codes)


# ------------------------------------------------------------------------------------ noken
@dataclass(frozen=True, eq=False)
class Noken:
    """The noken provinces of the table: their coverage, and what the page says of their flags."""

    table: pd.DataFrame  # province, name, regencies, source, tps, with_votes, share_votes, in_table
    note: str

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _repr_html_(self) -> str:
        return f"<p>{html.escape(self.note)}</p>" + _table_html("Noken provinces", self.table)


def noken(cov: Coverage, noken_list: pd.DataFrame | None = None) -> Noken:
    """The noken provinces (``data/noken.csv``) beside their coverage in this table."""
    listing = noken_list if noken_list is not None else read_noken()
    table = listing.rename(columns={"name": "listed_name"}).merge(
        cov.table[[LEVEL, "tps", "with_votes", "share_votes"]], on=LEVEL, how="left")
    table["in_table"] = table["tps"].notna()
    note = ("In the Papua highlands, bloc voting by community agreement (sistem noken / ikat: a community "
            "leader or the community together casts the TPS's votes, often all for one candidate) is legal in "
            "the kabupaten listed by KPU; the Constitutional Court has recognised it since 2009. Uniform votes, "
            "turnout at the roll and round numbers are what it produces: such TPS are shown apart here and any "
            f"flag in these provinces is {NOKEN_NOTE}. Sources: {'; '.join(dict.fromkeys(listing['source']))}.")
    return Noken(table=table, note=note)


# ------------------------------------------------------------------------------------ two sources
@dataclass(frozen=True, eq=False)
class TwoSources:
    """Sirekap summed to desa against KawalPemilu's desa totals, where both cover every TPS of the desa."""

    counts: Mapping[str, int]
    summary: pd.DataFrame      # candidate, desa, higher_in_sirekap, higher_in_kawalpemilu, equal, net, low, high, sign_pvalue
    by_province: pd.DataFrame  # province, name, desa, disagree, net per candidate, sign-test q-values
    largest: pd.DataFrame      # the desa with the largest disagreements, with names
    rule: str
    null: str = SOURCES_NULL
    comparison: Any = field(repr=False, default=None)

    def to_frame(self) -> pd.DataFrame:
        return self.summary.copy()

    def _repr_html_(self) -> str:
        return (f"<p>{html.escape(self.rule)}</p>" + _table_html("Per candidate (Sirekap minus KawalPemilu)", self.summary,
                                                                  notes=[f"Null: {self.null}."])
                + _table_html("By province", self.by_province, rows=60)
                + _table_html("Largest disagreements", self.largest, rows=25))


def _desa_names(names: pd.DataFrame | None, kp) -> dict[str, str]:
    out: dict[str, str] = {}
    t = kp.election.table
    for level in ("province", "regency", "district", "village"):
        column = f"{level}_name"
        if column in t.columns:
            out.update(dict(zip(t[level].astype(str), t[column].astype(str))))
    if names is not None and len(names):
        out.update(dict(zip(names["code"].astype(str), names["name"].astype(str))))
    return out


def two_sources(election, kawalpemilu: Any, *, names: pd.DataFrame | None = None, n_boot: int = 1000,
                seed: int = 2024, largest: int = 25) -> TwoSources:
    """Compare Sirekap (``election``, TPS rows) and KawalPemilu (``read_desa``'s result) per desa.

    Matching rule: a desa is compared when KawalPemilu approved the photo of every one of its TPS
    (``tps_approved == tps_total``), Sirekap has as many TPS rows for it as KawalPemilu counts, and
    every Sirekap TPS of the desa has every candidate's number. Differences are Sirekap minus
    KawalPemilu, in votes.
    """
    from .compare import compare_sources

    _needs_province(election)
    if "village" not in election.levels:
        raise FindingsError("the two-source comparison needs a 'village' (desa) level")
    kp_table = kawalpemilu.election.table
    sirekap_tps = election.table["village"].astype(str).value_counts()
    approved = kp_table["tps_approved"].astype("Float64")
    total = kp_table["tps_total"].astype("Float64")
    full = (approved == total) & (total > 0)
    same_count = kp_table["village"].astype(str).map(sirekap_tps).astype("Float64") == total
    keep = (full & same_count).fillna(False).to_numpy(dtype=bool)
    from dataclasses import replace

    kp = replace(kawalpemilu.election, table=kp_table[keep])
    comp = compare_sources(election, kp, "village", by=LEVEL, names=("sirekap", "kawalpemilu"))
    counts = {"kawalpemilu_desa": int(len(kp_table)), "kawalpemilu_complete": int(full.fillna(False).sum()),
              "same_tps_count": int(keep.sum()), **{k: int(v) for k, v in comp.counts.items()}}
    counts["disagree"] = counts["compared"] - counts["agree"]
    regions = comp.regions
    candidates = [c for c in election.candidates if f"diff_{c}" in regions.columns]
    rng = np.random.default_rng(seed)
    d = regions[[f"diff_{c}" for c in candidates]].to_numpy(dtype=float)
    if len(d):
        draws = rng.integers(0, len(d), size=(n_boot, len(d)))
        boot = np.stack([d[i].sum(axis=0) for i in draws])
        low, high = np.quantile(boot, 0.025, axis=0), np.quantile(boot, 0.975, axis=0)
    else:
        low = high = np.full(len(candidates), np.nan)
    summary = comp.summary.rename(columns={"regions": "desa", "higher_in_a": "higher_in_sirekap",
                                           "higher_in_b": "higher_in_kawalpemilu", "total_difference": "net"})
    summary["low"], summary["high"] = low, high
    summary = summary[["candidate", "desa", "higher_in_sirekap", "higher_in_kawalpemilu", "equal", "net", "low", "high",
                       "mean_abs_difference", "sign_pvalue"]]
    labels = _desa_names(names, kawalpemilu)
    by = regions.assign(disagree=~regions["agree"]).groupby(LEVEL).agg(
        desa=("agree", "size"), disagree=("disagree", "sum"), **{f"net_{c}": (f"diff_{c}", "sum") for c in candidates})
    by = by.reset_index()
    by.insert(1, "name", [labels.get(str(r), "") for r in by[LEVEL]])
    q = comp.by_region.pivot_table(index=LEVEL, columns="candidate", values="qvalue")
    for c in candidates:
        by[f"q_{c}"] = q.reindex(by[LEVEL])[c].to_numpy() if c in q.columns else np.nan
    size = np.abs(d).sum(axis=1) if len(d) else np.zeros(0)
    order = np.argsort(-size, kind="stable")[:largest]
    top = regions.iloc[order].copy()
    top.insert(1, "desa", [labels.get(str(v), "") for v in top["village"]])
    top.insert(2, "kecamatan", [labels.get(str(v)[:6], "") for v in top["village"]])
    top.insert(3, "kabupaten", [labels.get(str(v)[:4], "") for v in top["village"]])
    top["votes_apart"] = size[order]
    top = top.drop(columns=["agree"])
    rule = (f"Matching rule: of KawalPemilu's {counts['kawalpemilu_desa']:,} desa matched to a KPU code, "
            f"{counts['kawalpemilu_complete']:,} have an approved photo for every TPS, and {counts['same_tps_count']:,} of "
            f"those have as many TPS in the Sirekap table; {counts['compared']:,} of them have every Sirekap TPS's "
            f"numbers and are compared (Sirekap minus KawalPemilu). They agree exactly in {counts['agree']:,} "
            f"and disagree in {counts['disagree']:,}.")
    return TwoSources(counts=counts, summary=summary, by_province=by, largest=top.reset_index(drop=True), rule=rule,
                      comparison=comp)


# ------------------------------------------------------------------------------------ limits
@dataclass(frozen=True, eq=False)
class Limits:
    """What the data cannot show, with the counts that bound it."""

    items: pd.DataFrame  # limit, count, what it means

    def to_frame(self) -> pd.DataFrame:
        return self.items.copy()

    def _repr_html_(self) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(t)}</li>" for t in self.items["sentence"]) + "</ul>"


def limits(cov: Coverage, effect: MisreadingEffect | None, sources: TwoSources | None) -> Limits:
    """The page's limits, each with the count from the data that bounds it."""
    rows = []
    t = cov.total
    rows.append({"limit": "C1 photos not read", "count": t["with_votes"],
                 "sentence": (f"The C1 (C.Hasil) photos are not read here: the {t['with_votes']:,} TPS with numbers "
                              "are Sirekap's OCR readings as displayed, and every repair below is a proposal from "
                              "the form's arithmetic, to be checked against its photo.")})
    if len(cov.missing):
        rows.append({"limit": "provinces missing", "count": int(len(cov.missing)),
                     "sentence": (f"{len(cov.missing)} regions of the region tree have no TPS in this table "
                                  f"({', '.join(cov.missing['name'])}): nothing here speaks for them.")})
    rows.append({"limit": "TPS without numbers", "count": t["tps"] - t["with_votes"],
                 "sentence": (f"{t['tps'] - t['with_votes']:,} TPS of the table ({_pct(1 - t['share_votes'])}) carry "
                              "no numbers; what their forms say is unknown.")})
    if effect is not None:
        c = effect.counts
        rows.append({"limit": "forms no single edit explains", "count": int(c.get("unexplained", 0)),
                     "sentence": (f"{c.get('unexplained', 0):,} forms that break a rule are not explained by one OCR "
                                  "edit (two misread boxes, a slip in the officials' tally, a DPTb/DPK entry error): "
                                  "their direction is unknown and they enter the intervals only at their extremes.")})
        rows.append({"limit": "invisible misreadings", "count": None,
                     "sentence": ("A misreading that keeps every rule of the form true cannot be seen from the numbers; "
                                  "and the March reading is itself sometimes the wrong one (KPU corrected readings "
                                  "between February and March, and not every correction was right).")})
    if sources is not None:
        rows.append({"limit": "two sources", "count": sources.counts["disagree"],
                     "sentence": (f"Where KawalPemilu and Sirekap disagree ({sources.counts['disagree']:,} of "
                                  f"{sources.counts['compared']:,} desa compared), these numbers alone cannot say which "
                                  "source read the form right.")})
    rows.append({"limit": "intent", "count": None,
                 "sentence": "No statistic here tells an OCR fault, a clerical slip or a local custom from intent: "
                             "a flag is an irregularity to look at, not a finding about intent."})
    return Limits(items=pd.DataFrame(rows))


# ------------------------------------------------------------------------------------ all of it
@dataclass(frozen=True, eq=False)
class Findings:
    """Every part of the Findings page, and the headline sentences built from their numbers."""

    name: str
    coverage: Coverage
    forms: Forms
    misreadings: MisreadingEffect
    favouring: Favouring
    flags: PageFlagsFound | None
    noken: Noken
    sources: TwoSources | None
    limits: Limits
    parameters: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, float] = field(default_factory=dict)

    def to_frame(self, part: str = "coverage") -> pd.DataFrame:
        value = getattr(self, part, None)
        if value is None or not hasattr(value, "to_frame"):
            raise KeyError(f"no part {part!r}; parts: coverage, forms, misreadings, favouring, flags, noken, sources, limits")
        return value.to_frame()

    def headline(self) -> list[str]:
        """The page's headline sentences, every number from the parts."""
        out = []
        cov, t = self.coverage, self.coverage.total
        low = cov.table.sort_values("share_votes").iloc[0] if len(cov.table) else None
        s = (f"This table holds {t['tps']:,} TPS of {t['provinces']} regions (provinces, and overseas as 99 where present); {t['with_votes']:,} "
             f"({_pct(t['share_votes'])}) carry numbers")
        if low is not None:
            s += f", from {_pct(low['share_votes'], 2)} in {_label({low[LEVEL]: low['name']}, low[LEVEL])}"
        s += "."
        if len(cov.missing):
            s += (f" {', '.join(f'{n} ({c})' for c, n in zip(cov.missing[LEVEL], cov.missing['name']))} are missing: no figure here is a national "
                  "estimate, and shares lean towards the provinces that are in.")
        out.append(s)
        f = self.forms.overall
        out.append(f"{f['failed']:,} of {f['evaluable']:,} checkable forms ({_pct(f['share'], 1)}, 95 % interval "
                   f"{_pct(f['low'], 1)} to {_pct(f['high'], 1)}) break at least one arithmetic or capacity rule.")
        m, o = self.misreadings, self.misreadings.overall
        parts = []
        for r in m.by_candidate.itertuples():
            parts.append(f"{r.candidate} {r.net_votes:+,.0f} (95 % interval {r.low:+,.0f} to {r.high:+,.0f})")
        out.append(f"{m.counts.get('explained', 0):,} forms are repaired by one OCR edit ({m.counts.get('unexplained', 0):,} "
                   f"inconsistent forms are not). Net votes the misreadings added (reported minus repaired): "
                   f"{'; '.join(parts)}.")
        out.append(f"Against the margin of {o['leader']} over {o['runner_up']} in this table, {o['margin']:,.0f} votes, "
                   f"the repairs move it to {o['margin_repaired']:,.0f} ({o['margin_repaired_low']:,.0f} to "
                   f"{o['margin_repaired_high']:,.0f}); {o['leader']}'s share goes from {_pct(o['leader_share'], 2)} to "
                   f"{_pct(o['leader_share_repaired'], 2)} ({_pct(o['leader_share_repaired_low'], 2)} to "
                   f"{_pct(o['leader_share_repaired_high'], 2)}): the repairs "
                   + ("could move it across 50 %." if o["crosses_50"] else "do not move it across 50 %."))
        fav = self.favouring
        n_prov = len(fav.provinces)
        if fav.flagged:
            out.append(f"Misreadings favour a candidate beyond random OCR errors in {len(fav.flagged)} of {n_prov} "
                       f"provinces under the page-level error control: "
                       + "; ".join(f"{_label({r.province: r.name}, r.province)}: {r.flagged_tests}"
                                   for r in fav.provinces[fav.provinces[LEVEL].isin(fav.flagged)].itertuples()) + ".")
        else:
            out.append(f"In none of the {n_prov} provinces do the misreadings favour a candidate beyond what random OCR "
                       "errors at the same forms would, under the page-level error control.")
        nat = fav.national
        if len(nat):
            parts = [f"{r.candidate} {r.favour:,} against {r.expected:,.0f} expected (p = {r.pvalue:.2g})" for r in nat.itertuples()]
            beyond = nat[nat["pvalue"] < fav.alpha / len(nat)]
            out.append(f"All {int(nat['misreadings'].iloc[0]):,} repaired misreadings of a candidate's number taken together "
                       f"(not part of the page control), misreadings favouring each candidate: {'; '.join(parts)}. "
                       + (f"For {', '.join(beyond['candidate'])} that is more than random OCR errors at the same forms would "
                          f"give (Bonferroni over the {len(nat)} candidates at {fav.alpha:g}): an irregularity of the reading "
                          "process, which the null's edit model (estimated from the misreadings of non-candidate boxes) may "
                          "also fail to describe; no province stands out from the others in it."
                          if len(beyond) else "None is beyond what random OCR errors at the same forms would give."))
        weak = fav.provinces[fav.provinces["min_pvalue"] > fav.alpha]
        if len(weak):
            out.append(f"In {len(weak)} provinces the repaired misreadings are too few for the test to reach p < {fav.alpha:g} "
                       f"whatever they do (smallest attainable p-value above it): "
                       f"{', '.join(_label({r.province: r.name}, r.province) for r in weak.itertuples())}.")
        if fav.flagged_noken:
            out.append(f"Noken provinces flagged by that test ({', '.join(fav.flagged_noken)}): {NOKEN_NOTE}.")
        nk = self.noken.table[self.noken.table["in_table"]]
        if len(nk):
            out.append(f"Noken provinces ({', '.join(_label({r.province: r.listed_name}, r.province) for r in nk.itertuples())}): "
                       f"{int(nk['with_votes'].sum()):,} of their {int(nk['tps'].sum()):,} TPS carry numbers; any flag there is "
                       f"{NOKEN_NOTE}.")
        if self.flags is not None:
            irregular = self.flags.irregular
            if len(irregular):
                out.append(f"The national page's tests flag {len(irregular)} of {self.flags.regions} provinces outside "
                           "the noken provinces: " + "; ".join(
                               f"{_label({r.province: r.name}, r.province)}: {r.tests}" for r in irregular.itertuples()) + ".")
            else:
                out.append(f"No province stands out among the {self.flags.regions} on the national page's tests.")
            cautions = self.flags.size_cautions()
            if len(cautions):
                out.append("Caution: across the provinces the statistic of " + "; ".join(
                    f"{r.test} rises with the number of TPS (Spearman rho {r.rho:.2f}, p = {r.pvalue:.2g})"
                    for r in cautions.itertuples()) + ": a station model that does not fit counts of this kind grows "
                    "like the number of stations, and flags the largest provinces first. Read these flags as questions "
                    "for the method as much as for the data.")
            noken_flagged = self.flags.flagged[self.flags.flagged["noken"]]
            if len(noken_flagged):
                out.append(f"Flags in the noken provinces ({', '.join(noken_flagged['name'])}) are {NOKEN_NOTE}.")
        if self.sources is not None:
            c = self.sources.counts
            parts = [f"{r.candidate} {r.net:+,.0f} (95 % interval {r.low:+,.0f} to {r.high:+,.0f}; sign test p = {r.sign_pvalue:.2g})"
                     for r in self.sources.summary.itertuples()]
            out.append(f"Sirekap and KawalPemilu's crowd-verified totals cover {c['compared']:,} desa completely; they "
                       f"disagree in {c['disagree']:,}. Net Sirekap minus KawalPemilu: {'; '.join(parts)}.")
        return out

    def _repr_html_(self) -> str:
        return "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in self.headline()) + "</ul>"


def findings(election, *, kawalpemilu: Any = None, names: pd.DataFrame | None = None,
             national_summary: str | Path | None = None, seed: int = 2024, alpha: float = 0.05,
             learned: bool = False, n_boot: int = 1000, n_sim: int = 1000, run_flags: bool = True) -> Findings:
    """Every part of the Findings page over ``election`` (TPS rows, province level).

    ``kawalpemilu``: ``sources.kawalpemilu.read_desa``'s result (or None: no two-source part).
    ``names``: the region tree (``names_from_wilayah``). ``national_summary``: a rendered national
    ``summary.json`` to read the page flags from (else recomputed when ``run_flags``).
    """
    import time

    from .consistency import check_consistency

    _needs_province(election)
    timings: dict[str, float] = {}
    listing = read_noken()

    def timed(label: str, fn, *args, **kwargs):
        start = time.perf_counter()
        value = fn(*args, **kwargs)
        timings[label] = round(time.perf_counter() - start, 2)
        return value

    cov = timed("coverage", coverage, election, names, noken_list=listing)
    checks = timed("form checks", check_consistency, election)
    frm = timed("forms", forms, election, names=names, checks=checks, noken_list=listing)
    eff = timed("misreadings", misreading_effect, election, learned=learned, n_boot=n_boot, seed=seed, names=names)
    fav = timed("favouring", favouring, election, eff.found, alpha=alpha, names=names, noken_list=listing)
    flags = None
    if national_summary or run_flags:
        flags = timed("page flags", page_flags_found, election, national_summary=national_summary or None, names=names,
                      checks=checks, found=eff.found, seed=seed, n_sim=n_sim, alpha=alpha, noken_list=listing)
    nk = noken(cov, listing)
    src = timed("two sources", two_sources, election, kawalpemilu, names=names, seed=seed) if kawalpemilu is not None else None
    lim = limits(cov, eff, src)
    return Findings(name=str(election.name), coverage=cov, forms=frm, misreadings=eff, favouring=fav, flags=flags,
                    noken=nk, sources=src, limits=lim, timings=timings,
                    parameters={"seed": seed, "alpha": alpha, "learned": learned, "n_boot": n_boot, "n_sim": n_sim,
                                "national_summary": str(national_summary or "")})


def read_inputs(kawalpemilu: str | Path | None = None, names: str | Path | None = None) -> tuple[Any, pd.DataFrame | None]:
    """The optional inputs of the page: KawalPemilu's desa totals (names from ``tps_hierarchy.json.gz``
    beside the CSV when it is there, else from the region tree) and the region tree. Empty or None:
    not used. A path that does not exist is a ``FindingsError`` with the path, not a traceback."""
    from .sources.kawalpemilu import KawalPemiluFileError, names_from_wilayah, read_desa

    tree = None
    if names:
        if not Path(names).is_file():
            raise FindingsError(f"no region tree at {names} (Sirekap's wilayah_ppwp_all_levels.csv.gz)")
        try:
            tree = names_from_wilayah(names)
        except (KawalPemiluFileError, ValueError, OSError) as err:
            raise FindingsError(f"cannot read the region tree {names}: {err}") from None
    desa = None
    if kawalpemilu:
        path = Path(kawalpemilu)
        if not path.is_file():
            raise FindingsError(f"no KawalPemilu desa file at {path} (desa_ppwp_2024.csv.gz)")
        hierarchy = path.parent / "tps_hierarchy.json.gz"
        try:
            if hierarchy.is_file():
                desa = read_desa(path, hierarchy=hierarchy)
            elif names:
                desa = read_desa(path, wilayah=names)
            else:
                raise FindingsError(f"KawalPemilu's desa names need {hierarchy.name} beside {path.name} or a region tree (names)")
        except (KawalPemiluFileError, ValueError, OSError) as err:
            raise FindingsError(f"cannot read KawalPemilu's desa file {path}: {err}") from None
    return desa, tree


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    return value


def to_summary(result: Findings) -> dict[str, Any]:
    """The page's machine-readable summary: headline sentences and the figures they quote."""
    cov = result.coverage
    body: dict[str, Any] = {
        "scope": "findings", "name": result.name, "headline": result.headline(),
        "coverage": {**cov.total, "missing": dict(zip(cov.missing[LEVEL], cov.missing["name"]))},
        "forms": dict(result.forms.overall),
        "misreadings": {"counts": dict(result.misreadings.counts), "model": result.misreadings.model,
                        "net_votes": result.misreadings.by_candidate.to_dict(orient="records"),
                        **dict(result.misreadings.overall)},
        "favouring": {"flagged": result.favouring.flagged, "flagged_noken": result.favouring.flagged_noken,
                      "national": result.favouring.national.to_dict(orient="records"), "null": result.favouring.null},
        "flags": None if result.flags is None else {
            "source": result.flags.source, "regions": result.flags.regions,
            "flagged": result.flags.flagged.to_dict(orient="records")},
        "noken": result.noken.table[[LEVEL, "listed_name", "source"]].to_dict(orient="records"),
        "sources": None if result.sources is None else {
            "counts": dict(result.sources.counts), "summary": result.sources.summary.to_dict(orient="records")},
        "parameters": dict(result.parameters), "timings": dict(result.timings),
    }
    return _plain(body)


def write_summary(result: Findings, path: str | Path | None) -> Path | None:
    """Write ``to_summary`` as JSON (atomically); nothing when ``path`` is empty."""
    import os
    import tempfile

    if not path:
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(to_summary(result), indent=1, ensure_ascii=False, allow_nan=False, default=str)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path

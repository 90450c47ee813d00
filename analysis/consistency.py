"""Arithmetic and capacity checks of every C.Hasil form, per TPS, and which regions stand out.

The rules are those a correct Sirekap form satisfies (sirekap-api.md, "Arithmetic that a correct
form satisfies"); an OCR misreading of one digit usually breaks at least one of them. A rule is
evaluated only on the TPS where all its inputs are published: a missing number is "not
evaluable", never a pass or a failure. A rule whose columns the Election lacks altogether (another
country's results, a synthetic table without the male/female boxes) is listed as not checked.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

#: Name of the pseudo-rule "at least one rule broken" in ``by_region`` and the region test.
ANY_RULE = "any rule"
#: Sirekap's administrasi triples (total ``_j``, male ``_l``, female ``_p``).
SIREKAP_TRIPLES = ("pemilih_dpt", "pengguna_dpt", "pengguna_dptb", "pengguna_non_dpt", "pengguna_total")
#: How many violations ``_repr_html_`` shows.
HTML_ROWS = 20

Columns = Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Rule:
    """One rule of a correct form: ``reported == expected`` or ``reported <= expected``.

    ``inputs`` are the columns the rule needs; a TPS with any of them missing is not evaluable,
    and so is one where ``expected`` or ``reported`` comes out NaN. The two functions take a
    mapping column name -> float array (NaN for missing) and return one float array each.
    """

    id: str
    description: str
    inputs: tuple[str, ...]
    expected: Callable[[Columns], np.ndarray]
    reported: Callable[[Columns], np.ndarray]
    relation: str = "=="  # "==" or "<="

    def __post_init__(self) -> None:
        if self.relation not in ("==", "<="):
            raise ValueError(f"rule {self.id!r}: relation must be '==' or '<=', not {self.relation!r}")


class _Columns(Mapping[str, np.ndarray]):
    """Count columns of a table as float arrays with NaN, converted once and only when asked."""

    def __init__(self, table: pd.DataFrame):
        self._table, self._cache = table, {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._cache:
            column = pd.to_numeric(self._table[name], errors="coerce")
            self._cache[name] = column.astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._table.columns

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.columns)

    def __len__(self) -> int:
        return len(self._table.columns)


def _col(name: str) -> Callable[[Columns], np.ndarray]:
    return lambda c: c[name]


def _sum(*names: str) -> Callable[[Columns], np.ndarray]:
    # NaN propagates: a sum with a missing term is missing, not a smaller number.
    return lambda c: np.sum([c[n] for n in names], axis=0)


def _constant(value: float, like: str) -> Callable[[Columns], np.ndarray]:
    return lambda c: np.full(len(c[like]), float(value))


def _ceil(values: np.ndarray) -> np.ndarray:
    # 250 * 1.02 is 255.00000000000003 in floating point; round first so the ceiling is 255.
    return np.ceil(np.round(values, 6))


def hard_cap(capacity: int | None, reserve: float, headroom: int) -> float:
    """The most votes any number on one TPS form can be: ceil(capacity x (1 + reserve)) + headroom."""
    if capacity is None:
        return np.inf
    return float(_ceil(np.array(capacity * (1 + reserve)))) + headroom


def tps_capacity(columns: Columns, *, capacity: int | None = 300, reserve: float = 0.02,
                 headroom: int = 100) -> np.ndarray:
    """Ballots a TPS can have had: its roll + the reserve + DPTb/DPK voters, never above the hard cap.

    Per TPS (Sirekap): ceil(min(DPT, capacity) x (1 + reserve)) + DPTb voters + DPK voters; the
    DPT is clipped at ``capacity`` because a misread DPT (778 for 278) must not raise the limit.
    Without a ``dpt`` column: ceil(registered x (1 + reserve)) + DPK voters (when that column
    exists). The law gives 2 % of the DPT as reserve ballots plus ballots for the DPTb; DPK voters
    use left-over ballots, so adding them too makes the limit generous, never strict. Because DPTb
    and DPK numbers are OCR readings too (the Jakarta sample has a DPTb of 555), every limit is
    capped at ``hard_cap`` = ceil(capacity x (1 + reserve)) + ``headroom``; where the per-TPS
    inputs are missing the hard cap alone applies. NaN where no limit is known (capacity None and
    inputs missing).
    """
    if "dpt" in columns:
        roll = columns["dpt"] if capacity is None else np.fmin(columns["dpt"], capacity)
        extra = columns["dptb_voters"] if "dptb_voters" in columns else np.nan
        per_tps = _ceil(roll * (1 + reserve)) + extra
    elif "registered" in columns:
        # registered = DPT + DPTb already, so only DPK voters come on top.
        per_tps = _ceil(columns["registered"] * (1 + reserve))
    else:
        raise KeyError("a TPS capacity needs a dpt or a registered column")
    if "dpk_voters" in columns:
        per_tps = per_tps + columns["dpk_voters"]
    cap = hard_cap(capacity, reserve, headroom)
    limit = np.where(np.isnan(per_tps), cap, np.fmin(per_tps, cap))
    return np.where(np.isinf(limit), np.nan, limit)


def default_rules(candidates: Sequence[str], columns: Sequence[str], *, capacity: int | None = 300,
                  reserve: float = 0.02, headroom: int = 100) -> list[Rule]:
    """Every rule for an election with these candidates and columns (absent columns: not checked)."""
    candidates = tuple(candidates)
    has_dpk = "dpk_voters" in columns
    rules = [
        Rule("candidates_sum_to_valid", "the candidates' votes add up to the valid ballots",
             ("valid", *candidates), _col("valid"), _sum(*candidates)),
        Rule("valid_plus_invalid_is_ballots", "valid + invalid ballots = all ballots counted",
             ("ballots", "valid", "invalid"), _col("ballots"), _sum("valid", "invalid")),
        Rule("voter_kinds_sum_to_total", "DPT + DPTb + DPK voters = all voters",
             ("voters", "dpt_voters", "dptb_voters", "dpk_voters"), _col("voters"),
             _sum("dpt_voters", "dptb_voters", "dpk_voters")),
    ]
    for kind in SIREKAP_TRIPLES:
        total, male, female = f"{kind}_j", f"{kind}_l", f"{kind}_p"
        rules.append(Rule(f"male_plus_female_is_total:{kind}", f"{kind}: male + female = total",
                          (total, male, female), _col(total), _sum(male, female)))
    rules += [
        Rule("ballots_within_voters", "ballots counted <= voters", ("ballots", "voters"),
             _col("voters"), _col("ballots"), "<="),
        Rule("valid_within_voters", "valid ballots <= voters", ("valid", "voters"),
             _col("voters"), _col("valid"), "<="),
        Rule("voters_within_registered_plus_dpk",
             "voters <= registered (DPT + DPTb) + DPK voters" if has_dpk else "voters <= registered",
             ("voters", "registered", "dpk_voters") if has_dpk else ("voters", "registered"),
             _sum("registered", "dpk_voters") if has_dpk else _col("registered"), _col("voters"), "<="),
    ]
    if capacity is not None:
        rules.append(Rule("dpt_within_capacity", f"DPT of a TPS <= {capacity}", ("dpt",),
                          _constant(capacity, "dpt"), _col("dpt"), "<="))
    cap = hard_cap(capacity, reserve, headroom)
    limit_text = (f"ceil(min(DPT, {capacity}) x {1 + reserve:g}) + DPTb + DPK voters" if "dpt" in columns
                  else f"ceil(registered x {1 + reserve:g})" + (" + DPK voters" if has_dpk else ""))
    if np.isfinite(cap):
        limit_text += f", at most {cap:g}"

    def capacity_of(c: Columns) -> np.ndarray:
        return tps_capacity(c, capacity=capacity, reserve=reserve, headroom=headroom)

    # Only the candidate is a required input: where the roll is missing the hard cap still applies
    # (a 780 read at a TPS without an administrasi page is impossible all the same).
    needs = () if ("dpt" in columns or "registered" in columns) else ("registered",)
    for candidate in candidates:
        rules.append(Rule(f"candidate_within_capacity:{candidate}",
                          f"votes for {candidate} <= ballots the TPS can have had ({limit_text})",
                          (candidate, *needs), capacity_of, _col(candidate), "<="))
    return rules


@dataclass(frozen=True, eq=False)
class ConsistencyResult:
    """Which TPS break which rule and by how much; how many could be checked; what could not."""

    violations: pd.DataFrame  # unit_id, levels..., rule, expected, reported, difference (= reported - expected)
    coverage: pd.DataFrame  # index rule: description, relation, evaluable, passed, failed, not_evaluable, share_failed
    not_checked: Mapping[str, tuple[str, ...]]  # rule -> missing columns
    n: int  # TPS in the election
    parameters: Mapping[str, Any] = field(default_factory=dict)
    evaluable: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # unit_id x rule, bool
    failed: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # unit_id x rule, bool
    regions: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # unit_id x level codes

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(self.coverage.index)

    def masks(self, rule: str | None = None) -> tuple[pd.Series, pd.Series]:
        """Per TPS: could ``rule`` be checked, did it fail. ``None`` = any rule (checked by one, broken by one)."""
        if rule is None or rule == ANY_RULE:
            return self.evaluable.any(axis=1).rename(ANY_RULE), self.failed.any(axis=1).rename(ANY_RULE)
        if rule not in self.evaluable.columns:
            known = ", ".join(self.coverage.index)
            reason = f" (not checked: missing {', '.join(self.not_checked[rule])})" if rule in self.not_checked else ""
            raise KeyError(f"no rule {rule!r} was checked{reason}; checked: {known}")
        return self.evaluable[rule], self.failed[rule]

    def by_region(self, level: str, *, rule: str | None = None) -> pd.DataFrame:
        """Per region and rule (plus ``ANY_RULE``): TPS where it could be checked, TPS that broke it, rate.

        Columns ``<level>, rule, evaluable, failed, rate``; ``rule=`` keeps one rule (or ANY_RULE).
        """
        if level not in self.regions.columns:
            raise KeyError(f"{level!r} is not a level of this election ({', '.join(self.regions.columns)})")
        if rule is None:
            evaluable = self.evaluable.assign(**{ANY_RULE: self.evaluable.any(axis=1)})
            failed = self.failed.assign(**{ANY_RULE: self.failed.any(axis=1)})
        else:
            ev, fa = self.masks(rule)
            evaluable, failed = ev.to_frame(rule), fa.to_frame(rule)
        keys = self.regions[level]
        counts = {name: frame.groupby(keys, sort=True, observed=True).sum()
                  for name, frame in (("evaluable", evaluable), ("failed", failed))}
        out = pd.concat({name: c.stack() for name, c in counts.items()}, axis=1)
        out.index = out.index.set_names([level, "rule"])
        out = out.reset_index().astype({"evaluable": "int64", "failed": "int64"})
        out["rate"] = out["failed"] / out["evaluable"].where(out["evaluable"] > 0)
        return out

    def to_frame(self) -> pd.DataFrame:
        """Coverage of every rule, with the rules not checked (and their missing columns) below."""
        checked = self.coverage.assign(status="checked", missing_columns="")
        skipped = pd.DataFrame(
            {"status": "not checked", "missing_columns": [", ".join(c) for c in self.not_checked.values()]},
            index=pd.Index(list(self.not_checked), name="rule"),
        )
        return pd.concat([checked, skipped]) if len(skipped) else checked

    def _repr_html_(self) -> str:
        broken = int(self.failed.any(axis=1).sum()) if len(self.failed.columns) else 0
        head = (f"Form checks on {self.n:,} TPS: {len(self.coverage)} rules checked, "
                f"{len(self.not_checked)} not checked (columns missing); {broken:,} TPS break at least one rule.")
        shown = self.violations.head(HTML_ROWS)
        more = len(self.violations) - len(shown)
        note = f"First {len(shown)} of {len(self.violations):,} violations." if more > 0 else "Violations."
        return (f"<p><b>{html.escape(head)}</b></p>" + self.to_frame().to_html(escape=True, na_rep="")
                + f"<p>{html.escape(note)}</p>" + shown.to_html(escape=True, index=False))


def check_consistency(election, *, rules: Sequence[Rule] | None = None, capacity: int | None = 300,
                      reserve: float = 0.02, headroom: int = 100) -> ConsistencyResult:
    """Check every rule on every TPS; a rule is evaluated only where all its inputs are published.

    ``capacity``: the most DPT voters a TPS serves (300 in Indonesia 2024; ``None`` for another
    country's stations, which turns off ``dpt_within_capacity`` and the hard cap). ``reserve``:
    reserve ballots as a share of the DPT (2 %). ``headroom``: DPTb + DPK voters allowed on top of
    a full TPS before any number is impossible (default 100; in the Jakarta sample of 465
    administrasi pages the 99th percentile of DPTb + DPK is 24, the largest 29 apart from one misread 560).
    See ``tps_capacity``.
    """
    table = election.table
    if rules is None:
        rules = default_rules(election.candidates, table.columns, capacity=capacity, reserve=reserve,
                              headroom=headroom)
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise ValueError(f"rule ids must be unique: {', '.join(sorted({i for i in ids if ids.count(i) > 1}))}")
    columns = _Columns(table)
    evaluable, failed, violations, coverage, not_checked = {}, {}, [], [], {}
    for rule in rules:
        missing = tuple(c for c in rule.inputs if c not in table.columns)
        if missing:
            not_checked[rule.id] = missing
            continue
        expected = np.asarray(rule.expected(columns), dtype=float)
        reported = np.asarray(rule.reported(columns), dtype=float)
        present = ~np.isnan(expected) & ~np.isnan(reported)
        for name in rule.inputs:
            present &= ~np.isnan(columns[name])
        with np.errstate(invalid="ignore"):
            broken = (reported != expected) if rule.relation == "==" else (reported > expected)
        broken &= present
        evaluable[rule.id], failed[rule.id] = present, broken
        coverage.append({"rule": rule.id, "description": rule.description, "relation": rule.relation,
                         "evaluable": int(present.sum()), "passed": int((present & ~broken).sum()),
                         "failed": int(broken.sum()), "not_evaluable": int((~present).sum())})
        if broken.any():
            violations.append(pd.DataFrame({"unit_id": table.index[broken], "rule": rule.id,
                                            "expected": expected[broken], "reported": reported[broken]}))
    levels = table[list(election.levels)]
    frame = (pd.concat(violations, ignore_index=True) if violations
             else pd.DataFrame({"unit_id": pd.Series(dtype="str"), "rule": pd.Series(dtype="str"),
                                "expected": pd.Series(dtype=float), "reported": pd.Series(dtype=float)}))
    frame["difference"] = frame["reported"] - frame["expected"]
    frame = frame.join(levels, on="unit_id")[["unit_id", *election.levels, "rule", "expected", "reported", "difference"]]
    coverage = pd.DataFrame(coverage, columns=["rule", "description", "relation", "evaluable", "passed",
                                               "failed", "not_evaluable"]).set_index("rule")
    coverage["share_failed"] = coverage["failed"] / coverage["evaluable"].where(coverage["evaluable"] > 0)
    return ConsistencyResult(
        violations=frame, coverage=coverage, not_checked=not_checked, n=len(table),
        parameters={"capacity": capacity, "reserve": reserve, "headroom": headroom,
                    "hard_cap": hard_cap(capacity, reserve, headroom), "rules": tuple(ids)},
        evaluable=pd.DataFrame(evaluable, index=table.index, columns=list(evaluable)),
        failed=pd.DataFrame(failed, index=table.index, columns=list(failed)),
        regions=levels,
    )


REGION_NULL = ("failures occur at the same rate in every region (random OCR noise spread evenly); "
               "two-sided Fisher exact test of each region against all other regions, "
               "Benjamini-Hochberg q-values across regions")


def region_inconsistency_test(result: ConsistencyResult, level: str, *, rule: str | None = None,
                              alpha: float = 0.05) -> pd.DataFrame:
    """Does a region break forms more (or less) often than all other regions together?

    Null hypothesis: a TPS fails the rule (``rule=None``: at least one rule) with the same
    probability in every region, as random OCR noise spread evenly would. Per region, the 2x2 table
    (failed, passed) x (this region, all others) gets a two-sided Fisher exact test (Fisher 1935;
    scipy.stats.fisher_exact); q-values by Benjamini & Hochberg (1995) across the regions tested
    (statsmodels ``multipletests``, ``fdr_bh``); flagged at q < ``alpha``. ``direction`` says
    whether the region fails more or less often than elsewhere. Regions where nothing could be
    checked are listed with NaN p-values and never flagged. A flag is an irregularity in the data
    (a worse camera, a hand, a batch of re-scans), not a finding of intent.
    """
    from scipy.stats import fisher_exact
    from statsmodels.stats.multitest import multipletests

    name = rule if rule is not None else ANY_RULE
    counts = result.by_region(level, rule=name)
    evaluable = counts["evaluable"].to_numpy(dtype=np.int64)
    failed = counts["failed"].to_numpy(dtype=np.int64)
    other_evaluable, other_failed = evaluable.sum() - evaluable, failed.sum() - failed
    pvalues, odds = np.full(len(counts), np.nan), np.full(len(counts), np.nan)
    for i in range(len(counts)):
        if evaluable[i] == 0 or other_evaluable[i] == 0:
            continue
        test = fisher_exact([[failed[i], evaluable[i] - failed[i]],
                             [other_failed[i], other_evaluable[i] - other_failed[i]]])
        odds[i], pvalues[i] = test.statistic, test.pvalue
    with np.errstate(invalid="ignore", divide="ignore"):
        rate_elsewhere = np.where(other_evaluable > 0, other_failed / np.maximum(other_evaluable, 1), np.nan)
    out = pd.DataFrame({
        "region": counts[level].astype(str).to_numpy(), "rule": name,
        "evaluable": evaluable, "failed": failed, "rate": counts["rate"].to_numpy(dtype=float),
        "rate_elsewhere": rate_elsewhere, "odds_ratio": odds, "pvalue": pvalues,
    })
    out["qvalue"] = np.nan
    tested = out["pvalue"].notna().to_numpy()
    if tested.any():
        out.loc[tested, "qvalue"] = multipletests(out.loc[tested, "pvalue"], method="fdr_bh")[1]
    out["flagged"] = (out["qvalue"] < alpha).to_numpy(dtype=bool)
    out["direction"] = np.select([out["rate"] > out["rate_elsewhere"], out["rate"] < out["rate_elsewhere"]],
                                 ["more", "fewer"], "same")
    out.loc[~tested, "direction"] = "not tested"
    out.attrs.update({"null": REGION_NULL, "level": level, "rule": name, "alpha": alpha})
    return out


MONITOR_RULE = "valid = 0 and sum of candidates > 300, or 0 < valid < sum of candidates"


@dataclass(frozen=True, eq=False)
class MonitorFlags:
    """The #JagaPemilu2024 rule (methods.md section 5) and the candidate shares before and after removing its TPS."""

    unit_ids: tuple[str, ...]  # flagged TPS
    n: int  # TPS where the rule could be checked (valid and every candidate published)
    stations: int  # TPS in the "before" shares (every candidate published)
    shares: pd.DataFrame  # index candidate; columns "before, %", "after, %", "change, pp"
    rule: str = MONITOR_RULE

    @property
    def flagged(self) -> int:
        return len(self.unit_ids)

    def to_frame(self) -> pd.DataFrame:
        return self.shares.copy()

    def _repr_html_(self) -> str:
        head = (f"{self.flagged:,} of {self.n:,} TPS flagged by the monitors' rule ({self.rule}); "
                f"shares over {self.stations:,} TPS with every candidate published.")
        return f"<p><b>{html.escape(head)}</b></p>" + self.shares.to_html(escape=True)


def monitor_flags(election) -> MonitorFlags:
    """Flag a TPS when valid == 0 and the candidates sum to > 300, or 0 < valid < sum of candidates.

    The rule public monitors (#JagaPemilu2024) applied to Sirekap on 15 Feb 2024 (methods.md
    section 5). A TPS without a published ``valid`` cannot be flagged (missing is not 0) but its
    votes count in the shares; "after" removes the flagged TPS only.
    """
    table = election.table
    candidates = list(election.candidates)
    columns = _Columns(table)
    votes = _sum(*candidates)(columns) if candidates else np.full(len(table), np.nan)
    valid = columns["valid"]
    published = ~np.isnan(votes)
    checked = published & ~np.isnan(valid)
    with np.errstate(invalid="ignore"):
        flagged = checked & (((valid == 0) & (votes > 300)) | ((valid > 0) & (valid < votes)))
    before = table.loc[published, candidates].sum().astype(float)
    after = table.loc[published & ~flagged, candidates].sum().astype(float)
    shares = pd.DataFrame({"before, %": 100 * before / before.sum(), "after, %": 100 * after / after.sum()})
    shares["change, pp"] = shares["after, %"] - shares["before, %"]
    shares.index.name = "candidate"
    return MonitorFlags(unit_ids=tuple(table.index[flagged]), n=int(checked.sum()), stations=int(published.sum()),
                        shares=shares)

"""Arithmetic and capacity checks of every C.Hasil form, per TPS, and which regions stand out.

The rules are those a correct Sirekap form satisfies (sirekap-api.md, "Arithmetic that a correct
form satisfies"); an OCR misreading of one digit usually breaks at least one of them.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Rule:
    """One rule: expected vs reported, and whether 'reported' may be at most (<=) or equal (==)."""

    id: str
    description: str
    inputs: tuple[str, ...]
    expected: Callable[[pd.DataFrame], pd.Series]
    reported: Callable[[pd.DataFrame], pd.Series]
    relation: str  # "==" or "<="


def _col(name: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda t: t[name]


def _sum(*names: str) -> Callable[[pd.DataFrame], pd.Series]:
    return lambda t: t[list(names)].sum(axis=1, skipna=False)


def _capacity(reserve: float, cap: int) -> Callable[[pd.DataFrame], pd.Series]:
    # A TPS has ballots for its DPT plus a 2 % reserve; DPTb and DPK voters use those ballots too,
    # so no single number on the form can exceed DPT (at most `cap`) + reserve + DPTb + DPK.
    def expected(t: pd.DataFrame) -> pd.Series:
        roll = t["dpt"].clip(upper=cap) if "dpt" in t else t["registered"].clip(upper=cap)
        extra = t["dptb_voters"].fillna(0) + t["dpk_voters"].fillna(0) if "dpk_voters" in t else 0
        return np.ceil(roll * (1 + reserve)).astype("Int64") + extra
    return expected


def default_rules(candidates: Sequence[str], columns: Sequence[str], *, capacity: int = 300,
                  reserve: float = 0.02) -> list[Rule]:
    """Every rule that applies to an election with these candidates (inputs may be missing)."""
    rules = [
        Rule("candidates_sum_to_valid", "the candidates' votes add up to the valid ballots",
             ("valid", *candidates), _col("valid"), _sum(*candidates), "=="),
        Rule("valid_plus_invalid_is_ballots", "valid + invalid ballots = all ballots counted",
             ("ballots", "valid", "invalid"), _col("ballots"), _sum("valid", "invalid"), "=="),
        Rule("voter_kinds_sum_to_total", "DPT + DPTb + DPK voters = all voters",
             ("voters", "dpt_voters", "dptb_voters", "dpk_voters"), _col("voters"),
             _sum("dpt_voters", "dptb_voters", "dpk_voters"), "=="),
        Rule("ballots_within_voters", "ballots counted <= voters", ("ballots", "voters"),
             _col("voters"), _col("ballots"), "<="),
        Rule("valid_within_voters", "valid ballots <= voters", ("valid", "voters"),
             _col("voters"), _col("valid"), "<="),
        Rule("voters_within_registered_plus_dpk", "voters <= registered (DPT + DPTb) + DPK voters",
             ("voters", "registered", "dpk_voters"), _sum("registered", "dpk_voters"), _col("voters"), "<="),
        Rule("dpt_within_capacity", f"DPT of a TPS <= {capacity}", ("dpt",),
             lambda t: pd.Series(capacity, index=t.index, dtype="Int64"), _col("dpt"), "<="),
    ]
    for kind in ("pemilih_dpt", "pengguna_dpt", "pengguna_dptb", "pengguna_non_dpt", "pengguna_total"):
        j, male, female = f"{kind}_j", f"{kind}_l", f"{kind}_p"
        rules.append(Rule(f"male_plus_female_is_total:{kind}", f"{kind}: male + female = total",
                          (j, male, female), _col(j), _sum(male, female), "=="))
    capacity_inputs = ("dpt", "dptb_voters", "dpk_voters") if "dpt" in columns else ("registered",)
    for candidate in candidates:
        rules.append(Rule(f"candidate_within_capacity:{candidate}",
                          f"votes for {candidate} <= the TPS's ballots (DPT + {reserve:.0%} reserve + DPTb + DPK)",
                          (candidate, *capacity_inputs), _capacity(reserve, capacity), _col(candidate), "<="))
    return rules


@dataclass(frozen=True, eq=False)
class ConsistencyResult:
    """Which TPS break which rule and by how much; what could not be checked."""

    violations: pd.DataFrame  # unit_id, levels..., rule, expected, reported, difference
    coverage: pd.DataFrame  # per rule: evaluable, passed, failed, not_evaluable, share_failed
    not_checked: Mapping[str, tuple[str, ...]]  # rule -> missing columns
    evaluable: pd.DataFrame = field(repr=False)  # unit_id x rule: True where the rule could be checked
    failed: pd.DataFrame = field(repr=False)  # unit_id x rule: True where it failed
    regions: pd.DataFrame = field(repr=False)  # the level columns, per unit_id

    def by_region(self, level: str, *, rule: str | None = None) -> pd.DataFrame:
        """Per region: TPS where the rule(s) could be checked, TPS that broke one, the rate."""
        evaluable, failed = self._any(rule)
        keys = self.regions[level]
        out = pd.DataFrame({"evaluable": evaluable.groupby(keys).sum(), "failed": failed.groupby(keys).sum()})
        out["rate"] = out["failed"] / out["evaluable"].where(out["evaluable"] > 0)
        return out

    def _any(self, rule: str | None) -> tuple[pd.Series, pd.Series]:
        if rule is not None:
            return self.evaluable[rule], self.failed[rule]
        return self.evaluable.any(axis=1), self.failed.any(axis=1)

    def to_frame(self) -> pd.DataFrame:
        return self.coverage.copy()

    def _repr_html_(self) -> str:
        skipped = "; ".join(f"{r} (missing {', '.join(c)})" for r, c in self.not_checked.items()) or "none"
        return (f"<p><b>Form checks: {len(self.coverage)} rules checked, "
                f"{int(self.failed.any(axis=1).sum()):,} TPS break at least one.</b> "
                f"Not checked: {html.escape(skipped)}</p>" + self.coverage.to_html(escape=True))


def check_consistency(election, *, rules: Sequence[Rule] | None = None, capacity: int = 300,
                      reserve: float = 0.02) -> ConsistencyResult:
    """Check every rule on every TPS; a rule is evaluated only where all its inputs are published."""
    table = election.table
    rules = list(rules) if rules is not None else default_rules(election.candidates, table.columns,
                                                                capacity=capacity, reserve=reserve)
    evaluable, failed, violations, coverage, not_checked = {}, {}, [], [], {}
    for rule in rules:
        missing = tuple(c for c in rule.inputs if c not in table.columns)
        if missing:
            not_checked[rule.id] = missing
            continue
        present = table[list(rule.inputs)].notna().all(axis=1).to_numpy()
        expected = rule.expected(table).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        reported = rule.reported(table).astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            broken = reported != expected if rule.relation == "==" else reported > expected
        broken = broken & present
        evaluable[rule.id], failed[rule.id] = present, broken
        coverage.append({"rule": rule.id, "description": rule.description, "evaluable": int(present.sum()),
                         "passed": int((present & ~broken).sum()), "failed": int(broken.sum()),
                         "not_evaluable": int((~present).sum())})
        if broken.any():
            rows = pd.DataFrame({"unit_id": table.index[broken], "rule": rule.id,
                                 "expected": expected[broken], "reported": reported[broken]})
            rows["difference"] = rows["reported"] - rows["expected"]
            violations.append(rows)
    levels = table[list(election.levels)]
    frame = (pd.concat(violations, ignore_index=True) if violations
             else pd.DataFrame(columns=["unit_id", "rule", "expected", "reported", "difference"]))
    frame = frame.join(levels, on="unit_id")[["unit_id", *election.levels, "rule", "expected", "reported", "difference"]]
    coverage = pd.DataFrame(coverage, columns=["rule", "description", "evaluable", "passed", "failed", "not_evaluable"])
    coverage["share_failed"] = coverage["failed"] / coverage["evaluable"].where(coverage["evaluable"] > 0)
    return ConsistencyResult(
        violations=frame, coverage=coverage.set_index("rule"), not_checked=not_checked,
        evaluable=pd.DataFrame(evaluable, index=table.index), failed=pd.DataFrame(failed, index=table.index),
        regions=levels,
    )


def region_inconsistency_test(result: ConsistencyResult, level: str, *, rule: str | None = None) -> pd.DataFrame:
    """Does a region break forms more or less often than all other regions? Fisher's exact test per region.

    Null: a TPS breaks at least one rule (or ``rule``) with the same probability in every region,
    as random OCR noise spread evenly would. Two-sided p-values; Benjamini-Hochberg q-values across
    regions (statsmodels ``multipletests``). Flagged at q < 0.05.
    """
    from scipy.stats import fisher_exact
    from statsmodels.stats.multitest import multipletests

    counts = result.by_region(level, rule=rule)
    total_evaluable, total_failed = counts["evaluable"].sum(), counts["failed"].sum()
    rows = []
    for region, row in counts.iterrows():
        elsewhere_evaluable = total_evaluable - row["evaluable"]
        elsewhere_failed = total_failed - row["failed"]
        if row["evaluable"] == 0 or elsewhere_evaluable == 0:
            pvalue = np.nan
        else:
            pvalue = fisher_exact([[row["failed"], row["evaluable"] - row["failed"]],
                                   [elsewhere_failed, elsewhere_evaluable - elsewhere_failed]])[1]
        rows.append({"region": str(region), "evaluable": int(row["evaluable"]), "failed": int(row["failed"]),
                     "rate": row["rate"], "rate_elsewhere": elsewhere_failed / elsewhere_evaluable if elsewhere_evaluable else np.nan,
                     "statistic": row["rate"], "pvalue": pvalue})
    out = pd.DataFrame(rows, columns=["region", "evaluable", "failed", "rate", "rate_elsewhere", "statistic", "pvalue"])
    out["qvalue"] = np.nan
    tested = out["pvalue"].notna()
    if tested.any():
        out.loc[tested, "qvalue"] = multipletests(out.loc[tested, "pvalue"], method="fdr_bh")[1]
    out["flagged"] = out["qvalue"] < 0.05
    return out


@dataclass(frozen=True, eq=False)
class MonitorFlags:
    """The #JagaPemilu2024 rule (methods.md section 5) and the shares before and after removing its TPS."""

    unit_ids: tuple[str, ...]
    checked: int
    shares: pd.DataFrame  # candidate x (before, after), percent

    def to_frame(self) -> pd.DataFrame:
        return self.shares.copy()

    def _repr_html_(self) -> str:
        return (f"<p><b>{len(self.unit_ids):,} of {self.checked:,} TPS flagged by the monitors' rule</b> "
                "(valid = 0 and candidates &gt; 300, or 0 &lt; valid &lt; candidates)</p>" + self.shares.to_html(escape=True))


def monitor_flags(election) -> MonitorFlags:
    """Flag TPS where valid == 0 and the candidates sum to > 300, or 0 < valid < sum of candidates."""
    table = election.table
    votes = table[list(election.candidates)].sum(axis=1, skipna=False)
    valid = table["valid"]
    usable = votes.notna() & valid.notna()
    flagged = usable & (((valid == 0) & (votes > 300)) | ((valid > 0) & (valid < votes)))
    flagged = flagged.fillna(False).astype(bool)
    before = table.loc[usable, list(election.candidates)].sum()
    after = table.loc[usable & ~flagged, list(election.candidates)].sum()
    shares = pd.DataFrame({"before, %": 100 * before / before.sum(), "after, %": 100 * after / after.sum()}).astype(float).round(2)
    return MonitorFlags(unit_ids=tuple(table.index[flagged]), checked=int(usable.sum()), shares=shares)

"""Arithmetic and capacity checks of every C.Hasil form, per TPS, and which regions stand out.

The rules are those a correct Sirekap form satisfies (sirekap-api.md, "Arithmetic that a correct
form satisfies"); an OCR misreading of one digit usually breaks at least one of them. A rule is
evaluated only on the TPS where all its inputs are published: a missing number is "not
evaluable", never a pass or a failure. A rule whose columns the Election lacks altogether (another
country's results, a synthetic table without the male/female boxes) is listed as not checked.

``find_misreadings`` then asks, of every form that breaks a rule, which one published number an
OCR edit of one handwritten digit box (a digit substituted, inserted, dropped, two swapped) could
have changed so that every rule holds again, with a confidence from a stated prior
(``EDIT_PRIORS``, ``CONFUSION_WEIGHTS``, ``MISREADING_MODEL``); re-votes and sections published as
all zeros are set aside. ``chance_explained`` measures how often a form broken by something else
(a tally slip) would be "explained" all the same.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from .display import frame_html

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
    #: Columns the rule also reads when they exist but does not require (a capacity reads the roll).
    uses: tuple[str, ...] = ()

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
    # NaN propagates: a sum with a missing term is missing, not a smaller number. Added pairwise
    # (not np.sum of a list) so that columns of different shapes broadcast in the repair search.
    def total(c: Columns) -> np.ndarray:
        out = c[names[0]]
        for n in names[1:]:
            out = out + c[n]
        return out
    return total


def _constant(value: float, like: str) -> Callable[[Columns], np.ndarray]:
    return lambda c: np.full(np.shape(c[like]), float(value))


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
    """Every rule of a correct C.Hasil form for an election with these candidates and columns.

    Sums (candidates = valid, valid + invalid = ballots, DPT + DPTb + DPK voters = all voters for
    the totals and for men and women separately, male + female = total for each administrasi
    triple), bounds (ballots, valid <= voters; valid <= ballots; voters <= DPT + DPTb + DPK; DPT
    voters <= DPT; not by sex, which the synthetic generator does not keep) and capacities (DPT <= 300; each candidate, valid, ballots and
    voters <= what the TPS can have had, ``tps_capacity``). Rules whose columns are absent are
    returned all the same: ``check_consistency`` lists them as not checked.
    """
    candidates = tuple(candidates)
    columns = tuple(columns)
    has_dpk = "dpk_voters" in columns
    rules = [
        Rule("candidates_sum_to_valid", "the candidates' votes add up to the valid ballots",
             ("valid", *candidates), _col("valid"), _sum(*candidates)),
    ] if candidates else []
    rules += [
        Rule("valid_plus_invalid_is_ballots", "valid + invalid ballots = all ballots counted",
             ("ballots", "valid", "invalid"), _col("ballots"), _sum("valid", "invalid")),
        Rule("voter_kinds_sum_to_total", "DPT + DPTb + DPK voters = all voters",
             ("voters", "dpt_voters", "dptb_voters", "dpk_voters"), _col("voters"),
             _sum("dpt_voters", "dptb_voters", "dpk_voters")),
    ]
    for suffix, sex in (("l", "male"), ("p", "female")):
        parts = tuple(f"{kind}_{suffix}" for kind in ("pengguna_dpt", "pengguna_dptb", "pengguna_non_dpt"))
        rules.append(Rule(f"voter_kinds_sum_to_total:{sex}", f"{sex} DPT + DPTb + DPK voters = all {sex} voters",
                          (f"pengguna_total_{suffix}", *parts), _col(f"pengguna_total_{suffix}"), _sum(*parts)))
    for kind in SIREKAP_TRIPLES:
        total, male, female = f"{kind}_j", f"{kind}_l", f"{kind}_p"
        rules.append(Rule(f"male_plus_female_is_total:{kind}", f"{kind}: male + female = total",
                          (total, male, female), _col(total), _sum(male, female)))
    rules += [
        Rule("ballots_within_voters", "ballots counted <= voters", ("ballots", "voters"),
             _col("voters"), _col("ballots"), "<="),
        Rule("valid_within_voters", "valid ballots <= voters", ("valid", "voters"),
             _col("voters"), _col("valid"), "<="),
        Rule("valid_within_ballots", "valid ballots <= ballots counted", ("valid", "ballots"),
             _col("ballots"), _col("valid"), "<="),
        Rule("voters_within_registered_plus_dpk",
             "voters <= registered (DPT + DPTb) + DPK voters" if has_dpk else "voters <= registered",
             ("voters", "registered", "dpk_voters") if has_dpk else ("voters", "registered"),
             _sum("registered", "dpk_voters") if has_dpk else _col("registered"), _col("voters"), "<="),
        Rule("dpt_voters_within_dpt", "DPT voters who voted <= DPT", ("dpt_voters", "dpt"),
             _col("dpt"), _col("dpt_voters"), "<="),
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

    # Only the number itself is a required input: where the roll is missing the hard cap still
    # applies (a 780 read at a TPS without an administrasi page is impossible all the same).
    needs = () if ("dpt" in columns or "registered" in columns) else ("registered",)
    uses = tuple(c for c in ("dpt", "dptb_voters", "dpk_voters", "registered") if c in columns)
    for candidate in candidates:
        rules.append(Rule(f"candidate_within_capacity:{candidate}",
                          f"votes for {candidate} <= ballots the TPS can have had ({limit_text})",
                          (candidate, *needs), capacity_of, _col(candidate), "<=", uses))
    for total in ("valid", "ballots", "voters"):
        rules.append(Rule(f"total_within_capacity:{total}",
                          f"{total} <= ballots the TPS can have had ({limit_text})",
                          (total, *needs), capacity_of, _col(total), "<=", uses))
    return rules


def generic_rules(candidates: Sequence[str], columns: Sequence[str], *, max_registered: int | None = None,
                  aggregate: bool = False) -> list[Rule]:
    """Rules every polling-station table promises, whatever its country (profile ``polling_station``).

    Candidates sum to the valid votes; valid + invalid = voters (and = ballots where the table
    has them); valid <= voters; voters <= registered (+ DPK voters where given); with
    ``max_registered``, a station's roll is at most that. ``aggregate`` (profile
    ``indonesia_aggregate``): the same sums and bounds over a desa or kecamatan, no per-station limit.
    """
    candidates = tuple(candidates)
    columns = tuple(columns)
    has_dpk = "dpk_voters" in columns
    rules = [Rule("candidates_sum_to_valid", "the candidates' votes add up to the valid votes",
                  ("valid", *candidates), _col("valid"), _sum(*candidates))] if candidates else []
    if "ballots" in columns:
        rules.append(Rule("valid_plus_invalid_is_ballots", "valid + invalid = all ballots counted",
                          ("ballots", "valid", "invalid"), _col("ballots"), _sum("valid", "invalid")))
    else:
        rules.append(Rule("valid_plus_invalid_is_voters", "valid + invalid = voters",
                          ("voters", "valid", "invalid"), _col("voters"), _sum("valid", "invalid")))
    rules += [
        Rule("valid_within_voters", "valid votes <= voters", ("valid", "voters"), _col("voters"), _col("valid"), "<="),
        Rule("voters_within_registered_plus_dpk" if has_dpk else "voters_within_registered",
             "voters <= registered + DPK voters" if has_dpk else "voters <= registered",
             ("voters", "registered", "dpk_voters") if has_dpk else ("voters", "registered"),
             _sum("registered", "dpk_voters") if has_dpk else _col("registered"), _col("voters"), "<="),
    ]
    if max_registered is not None and not aggregate:
        rules.append(Rule("registered_within_limit", f"registered of one station <= {max_registered:,}",
                          ("registered",), _constant(max_registered, "registered"), _col("registered"), "<="))
    return rules


def rules_for(election, *, reserve: float | None = None, headroom: int | None = None) -> list[Rule]:
    """The rules the Election's profile promises (``analysis.profiles``): Sirekap's 22, generic, or aggregate.

    ``reserve`` and ``headroom``: the profile's unless given.
    """
    from .profiles import profile_of

    profile = profile_of(election)
    columns = election.table.columns
    if profile.rules == "sirekap":
        return default_rules(election.candidates, columns, capacity=profile.capacity,
                             reserve=profile.reserve if reserve is None else reserve,
                             headroom=profile.headroom if headroom is None else headroom)
    return generic_rules(election.candidates, columns, max_registered=profile.capacity,
                         aggregate=profile.rules == "aggregate")


_PROFILE = object()  # check_consistency's default: the rules and limits of the Election's profile


def _evaluate(rule: Rule, columns: Columns) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(evaluable, broken, expected, reported) of one rule; evaluable where every input is published."""
    expected = np.asarray(rule.expected(columns), dtype=float)
    reported = np.asarray(rule.reported(columns), dtype=float)
    present = ~np.isnan(expected) & ~np.isnan(reported)
    for name in rule.inputs:
        present = present & ~np.isnan(columns[name])
    with np.errstate(invalid="ignore"):
        broken = (reported != expected) if rule.relation == "==" else (reported > expected)
    return present, broken & present, expected, reported


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
        return (f"<p><b>{html.escape(head)}</b></p>" + frame_html(self.to_frame())
                + f"<p>{html.escape(note)}</p>" + frame_html(shown))


def check_consistency(election, *, rules: Sequence[Rule] | None = None, capacity: Any = _PROFILE,
                      reserve: float | None = None, headroom: int | None = None) -> ConsistencyResult:
    """Check every rule on every TPS; a rule is evaluated only where all its inputs are published.

    ``capacity``: the most DPT voters a TPS serves (300 in Indonesia 2024; ``None`` for another
    country's stations, which turns off ``dpt_within_capacity`` and the hard cap). ``reserve``:
    reserve ballots as a share of the DPT (2 %). ``headroom``: DPTb + DPK voters allowed on top of
    a full TPS before any number is impossible (default 100; in the Jakarta sample of 465
    administrasi pages the 99th percentile of DPTb + DPK is 24, the largest 29 apart from one misread 560).
    See ``tps_capacity``. Without ``rules`` or ``capacity``: the rules of the Election's profile
    (``rules_for``: Sirekap's for a Sirekap TPS table, generic ones for another country's stations).
    """
    table = election.table
    if capacity is _PROFILE:
        from .profiles import profile_of

        profile = profile_of(election)
        capacity = profile.capacity
        reserve = profile.reserve if reserve is None else reserve
        headroom = profile.headroom if headroom is None else headroom
        if rules is None:
            rules = rules_for(election, reserve=reserve, headroom=headroom)
    else:
        reserve = 0.02 if reserve is None else reserve
        headroom = 100 if headroom is None else headroom
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
        present, broken, expected, reported = _evaluate(rule, columns)
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
        return f"<p><b>{html.escape(head)}</b></p>" + frame_html(self.shares)


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


# ==================================================================================== misreadings
#: What OCR did to the written number, from the original to the reported one.
EDITS = ("digit substituted", "digit inserted", "digit dropped", "digits swapped")
#: Further kinds seen in KPU's own corrections (``analysis.corrections``), searched only when
#: ``priors`` gives them weight: two digits inserted ("2" read as "802"), and a box read from another
#: box of the same form (its number then says nothing of what was written: the repair is the number
#: that makes a broken sum hold); "two edits" (two of the one-digit edits, "65" read as "506") and
#: "read as zero" are tried only for the number that makes a broken sum hold, never enumerated;
#: "other" (any reading) only where the reading is impossible by itself (above the hard cap).
EXTRA_EDITS = ("two digits inserted", "two edits", "box from another box", "read as zero", "other")
ALL_EDITS = EDITS + EXTRA_EDITS
#: Prior share of each kind of one-digit OCR edit (an assumption, not estimated from Sirekap:
#: a confused digit is the commonest complaint, "78 became 780" a stray stroke read as a digit).
EDIT_PRIORS: Mapping[str, float] = {"digit substituted": 0.45, "digit inserted": 0.30, "digit dropped": 0.15,
                                    "digits swapped": 0.10}
#: Relative weight of reading one handwritten digit as another (symmetric; pairs not listed
#: weigh 1). 8: the pairs named in Sirekap complaints ("1 became 4", 1/7, 3/8, 0/8); 3: pairs
#: frequent in confusion matrices of handwritten-digit readers (LeCun, Bottou, Bengio & Haffner
#: 1998, Proc. IEEE 86:2278; MNIST errors 4/9, 2/7, 3/5, 7/9, 5/6, 0/6, 8/9, 5/8, 2/3, 6/8).
CONFUSION_WEIGHTS: Mapping[tuple[str, str], float] = {
    **{pair: 8.0 for pair in (("1", "4"), ("1", "7"), ("3", "8"), ("0", "8"))},
    **{pair: 3.0 for pair in (("4", "9"), ("2", "7"), ("3", "5"), ("7", "9"), ("5", "6"), ("0", "6"),
                              ("8", "9"), ("5", "8"), ("2", "3"), ("6", "8"))},
}
#: Sirekap administrasi names that carry the same box as a domain column.
ALIASES: Mapping[str, str] = {
    "pemilih_dpt_j": "dpt", "pengguna_dpt_j": "dpt_voters", "pengguna_dptb_j": "dptb_voters",
    "pengguna_non_dpt_j": "dpk_voters", "pengguna_total_j": "voters", "suara_sah": "valid",
    "suara_tidak_sah": "invalid", "suara_total": "ballots",
}
#: Parts of a C.Hasil form that Sirekap publishes as all zeros when nobody filled them in.
SECTIONS: Mapping[str, tuple[str, ...]] = {
    "chart": (),  # the candidates' boxes, filled in per election
    "votes": ("valid", "invalid", "ballots"),
    "voters": ("voters", "dpt_voters", "dptb_voters", "dpk_voters", "pengguna_dpt_l", "pengguna_dpt_p",
               "pengguna_dptb_l", "pengguna_dptb_p", "pengguna_non_dpt_l", "pengguna_non_dpt_p",
               "pengguna_total_l", "pengguna_total_p"),
    "roll": ("dpt", "pemilih_dpt_l", "pemilih_dpt_p"),
}
MISREADING_MODEL = (
    "one number of the form was misread by one OCR edit (a digit substituted, inserted, dropped, or two "
    "adjacent digits swapped) and the form as written satisfies every rule that can be checked; "
    "prior of a repair = P(edit kind) x P(position) x P(digit | kind) [confusion weights for "
    "substitutions, uniform digit for insertions] x plausibility of the repaired value / plausibility "
    "of the reported value (smoothed histogram of that box over the election; for a candidate's box, "
    "where the whole chart is published, the Dirichlet-multinomial probability of the repaired chart's "
    "split given the shares of the TPS's region without it, against the reported chart's; where no "
    "invalid box is published, ballots - valid is weighed as the invalid count); confidence = the "
    "repair's share of the prior mass of every repair that makes all rules hold"
)


def _confusion_matrix(weights: Mapping[tuple[str, str], float]) -> np.ndarray:
    """P(read b | written a): row a, column b, diagonal 0, rows summing to 1.

    A pair (a, b) sets both directions unless (b, a) is given too (a learned, asymmetric model).
    """
    m = np.ones((10, 10))
    for (a, b), w in weights.items():
        m[int(a), int(b)] = float(w)
        if (b, a) not in weights:
            m[int(b), int(a)] = float(w)
    np.fill_diagonal(m, 0.0)
    return m / m.sum(axis=1, keepdims=True)


def _valid_number(text: str) -> bool:
    return bool(text) and (text == "0" or text[0] != "0")


#: Where in a number a digit is inserted or dropped (``insertions`` / ``drops`` weights of a model).
POSITIONS = ("start", "inside", "end")


def _position(i: int, n: int) -> str:
    """Class of slot ``i`` among ``n`` slots: the first, the last, or between."""
    return "start" if i == 0 else "end" if i == n - 1 else "inside"


def _weights_key(weights: Mapping[tuple[str, str], float] | None) -> tuple | None:
    return None if weights is None else tuple(sorted(weights.items()))


def one_edit_originals(reported: int, *, priors: Mapping[str, float] = EDIT_PRIORS,
                       confusions: Mapping[tuple[str, str], float] = CONFUSION_WEIGHTS,
                       insertions: Mapping[tuple[str, str], float] | None = None,
                       drops: Mapping[tuple[str, str], float] | None = None,
                       substituted_at: Mapping[str, float] | None = None) -> list[tuple[int, str, float]]:
    """Every number one OCR edit away from ``reported``: (original, edit, P(reported | original)).

    ``edit`` says what OCR did to the original: "digit inserted" (78 -> 780), "digit dropped"
    (780 -> 78), "digit substituted" (1 -> 4), "digits swapped" (12 -> 21). Numbers are written
    without leading zeros, so originals such as "05" are not generated. Where two edits lead to
    the same original their probabilities add and the likelier edit names it.
    ``insertions``: weight of inserting digit d at a position class (``POSITIONS``), keyed
    (position, d); ``drops``: weight of dropping written digit d from a position class; both
    None = uniform (every slot and digit alike); ``substituted_at``: weight of a substitution at
    each position class (None = every digit alike). With ``priors["two digits inserted"]`` > 0, numbers
    two inserted digits away are listed too ("2" read as "802").
    """
    return list(_originals(int(reported), tuple(sorted(priors.items())), tuple(sorted(confusions.items())),
                           _weights_key(insertions), _weights_key(drops), _weights_key(substituted_at)))


@lru_cache(maxsize=200_000)
def _originals(reported: int, priors: tuple, confusions: tuple, insertions: tuple | None = None,
               drops: tuple | None = None, substituted_at: tuple | None = None) -> tuple[tuple[int, str, float], ...]:
    p = dict(priors)
    confusion = _confusion_matrix(dict(confusions))
    ins = dict(insertions) if insertions is not None else None
    drp = dict(drops) if drops is not None else None
    sub_at = dict(substituted_at) if substituted_at is not None else None
    text = str(reported)
    found: dict[int, dict[str, float]] = {}

    def add(original: str, edit: str, probability: float) -> None:
        if probability > 0 and _valid_number(original) and original != text:
            kinds = found.setdefault(int(original), {})
            kinds[edit] = kinds.get(edit, 0.0) + probability

    n = len(text)
    for i in range(n):  # OCR inserted text[i]: the original lacks it; n positions, 10 digits
        if ins is None:
            add(text[:i] + text[i + 1:], "digit inserted", p.get("digit inserted", 0) / n / 10)
        else:  # P(slot class, digit) over the n slots of the (n-1)-digit original and 10 digits
            total = sum(ins.get((_position(k, n), d), 0.0) for k in range(n) for d in "0123456789")
            if total > 0:
                add(text[:i] + text[i + 1:], "digit inserted",
                    p.get("digit inserted", 0) * ins.get((_position(i, n), text[i]), 0.0) / total)
    for i in range(n + 1):  # OCR dropped a digit d at i: the original has one more digit
        for d in "0123456789":
            if drp is None:
                add(text[:i] + d + text[i:], "digit dropped", p.get("digit dropped", 0) / (n + 1))
            else:  # which of the original's n + 1 digits was dropped, by position class and digit
                original = text[:i] + d + text[i:]
                total = sum(drp.get((_position(k, n + 1), original[k]), 0.0) for k in range(n + 1))
                if total > 0:
                    add(original, "digit dropped", p.get("digit dropped", 0) * drp.get((_position(i, n + 1), d), 0.0) / total)
    sub_total = sum(sub_at.get(_position(k, n), 0.0) for k in range(n)) if sub_at is not None else 0.0
    for i in range(n):  # OCR read written digit a as text[i]
        b = int(text[i])
        where = 1 / n if sub_at is None else (sub_at.get(_position(i, n), 0.0) / sub_total if sub_total > 0 else 0.0)
        for a in range(10):
            if a != b:
                add(text[:i] + str(a) + text[i + 1:], "digit substituted",
                    p.get("digit substituted", 0) * where * float(confusion[a, b]))
    for i in range(n - 1):  # OCR swapped two adjacent digits
        if text[i] != text[i + 1]:
            add(text[:i] + text[i + 1] + text[i] + text[i + 2:], "digits swapped",
                p.get("digits swapped", 0) / (n - 1))
    if p.get("two digits inserted", 0) > 0 and n >= 2:  # OCR inserted two digits: "2" read as "802"
        slots = n * (n - 1) / 2
        if ins is None:
            for i in range(n):
                for j in range(i + 1, n):
                    add(text[:i] + text[i + 1:j] + text[j + 1:], "two digits inserted",
                        p["two digits inserted"] / slots / 100)
        else:  # two insertions, each weighed as one (position class, digit): "109" for "9" (1 and 0 at the start)
            def q(k: int, d: str) -> float:
                return ins.get((_position(k, n), d), 0.0)

            per_slot = [sum(q(k, d) for d in "0123456789") for k in range(n)]
            norm = sum(per_slot[i] * per_slot[j] for i in range(n) for j in range(i + 1, n))
            if norm > 0:
                for i in range(n):
                    for j in range(i + 1, n):
                        add(text[:i] + text[i + 1:j] + text[j + 1:], "two digits inserted",
                            p["two digits inserted"] * q(i, text[i]) * q(j, text[j]) / norm)
    return tuple((value, max(kinds, key=kinds.get), sum(kinds.values())) for value, kinds in sorted(found.items()))


def describe_edit(original: int, reported: int) -> str:
    """What one OCR edit did, in words: "1 read as 7", "8 inserted before 53", "0 dropped from 780"."""
    a, b = str(int(original)), str(int(reported))
    if len(b) == len(a) + 1:
        for i in range(len(b)):
            if b[:i] + b[i + 1:] == a:
                return f"{b[i]} inserted " + ("at the start" if i == 0 else "at the end" if i == len(a) else "inside")
    if len(b) == len(a) - 1:
        for i in range(len(a)):
            if a[:i] + a[i + 1:] == b:
                return f"{a[i]} dropped " + ("from the start" if i == 0 else "from the end" if i == len(b) else "inside")
    if len(a) == len(b):
        diff = [i for i in range(len(a)) if a[i] != b[i]]
        if len(diff) == 1:
            return f"{a[diff[0]]} read as {b[diff[0]]}"
        if len(diff) == 2 and diff[1] == diff[0] + 1:
            return f"{a[diff[0]]}{a[diff[1]]} read as {b[diff[0]]}{b[diff[1]]}"
    return ""


class _Rows(Mapping[str, np.ndarray]):
    """Columns of the searched TPS gathered at candidate rows, with some columns overridden."""

    def __init__(self, base: Mapping[str, np.ndarray], rows: np.ndarray, overrides: Mapping[str, np.ndarray]):
        self._base, self._rows, self._over, self._cache = base, rows, overrides, {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self._over:
            return self._over[name]
        if name not in self._cache:
            self._cache[name] = self._base[name][self._rows]
        return self._cache[name]

    def __contains__(self, name: object) -> bool:
        return name in self._base

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


@dataclass(frozen=True, eq=False)
class Misreadings:
    """Suspected OCR misreadings: one row per TPS whose form breaks a rule for no other known reason.

    ``table`` columns: ``unit_id``, ``field`` (the box), ``reported``, ``proposed`` (<NA> when no
    one-edit repair makes every rule hold), ``edit``, ``confidence``, ``unique``, then
    ``explained``, ``n_repairs``, ``difference`` (reported - proposed), ``detail`` (the edit in
    words, ``describe_edit``), ``alternatives``,
    ``rules_broken``, ``blanked`` (sections read as all zeros, treated as unpublished) and the levels.
    ``excluded``: inconsistent TPS not called misreadings, with the reason.
    """

    table: pd.DataFrame
    excluded: pd.DataFrame
    counts: Mapping[str, int]
    candidates: tuple[str, ...]
    parameters: Mapping[str, Any] = field(default_factory=dict)
    model: str = MISREADING_MODEL
    not_checked: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # rule -> missing columns

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def __len__(self) -> int:
        return len(self.table)

    def summary(self) -> pd.DataFrame:
        """How many TPS were checked, broke a rule, were excluded, explained (uniquely), not explained."""
        labels = {
            "tps": "TPS in the election", "checked": "TPS where at least one rule could be checked",
            "inconsistent": "TPS that break at least one rule", "excluded_psu": "excluded: re-vote or recount (psu)",
            "excluded_blank": "excluded: a section left at zero, nothing else wrong",
            "searched": "searched for a one-edit repair", "explained": "explained by one OCR edit",
            "unique": "explained by exactly one repair", "confident": "explained with confidence >= 0.9",
            "unexplained": "no one-edit repair makes every rule hold",
        }
        return pd.DataFrame({"what": [labels[k] for k in labels], "TPS": [int(self.counts.get(k, 0)) for k in labels]},
                            index=pd.Index(list(labels), name="count"))

    def by_candidate(self, *, min_confidence: float = 0.0) -> pd.DataFrame:
        """Per candidate: explained misreadings of their number, how many inflated or deflated it, by how many votes.

        Inflated = the reported number is above the repaired one (the misreading added votes).
        """
        t = self.table
        t = t[t["explained"] & (t["confidence"] >= min_confidence)]
        rows = []
        for c in self.candidates:
            part = t[t["field"] == c]
            diff = part["difference"].astype("float64")
            rows.append({"candidate": c, "misreadings": len(part),
                         "inflated": int((diff > 0).sum()), "votes_added": int(diff[diff > 0].sum()),
                         "deflated": int((diff < 0).sum()), "votes_removed": int(-diff[diff < 0].sum()),
                         "net_votes": int(diff.sum())})
        return pd.DataFrame(rows).set_index("candidate")

    def _repr_html_(self) -> str:
        c = self.counts
        head = (f"{c.get('inconsistent', 0):,} of {c.get('tps', 0):,} TPS break a rule; "
                f"{c.get('excluded_psu', 0) + c.get('excluded_blank', 0):,} excluded (re-votes, blank sections); "
                f"{c.get('explained', 0):,} explained by one OCR edit ({c.get('unique', 0):,} uniquely), "
                f"{c.get('unexplained', 0):,} not.")
        if self.not_checked:
            head += f" Rules not checked (columns missing): {', '.join(self.not_checked)}."
        shown = self.table.head(HTML_ROWS)
        return (f"<p><b>{html.escape(head)}</b></p>" + frame_html(self.summary())
                + frame_html(self.by_candidate())
                + f"<p>{html.escape(f'First {len(shown)} of {len(self.table):,} rows.')}</p>"
                + frame_html(shown)
                + f"<p><small>{html.escape('Model: ' + self.model)}</small></p>")


def _boxes(table: pd.DataFrame, candidates: Sequence[str]) -> tuple[dict[str, list[str]], bool]:
    """Box name -> the table columns that carry it; whether ``registered`` is derived (DPT + DPTb)."""
    columns = set(table.columns)
    names = [*candidates, "valid", "invalid", "ballots", "voters", "registered", "dpt", "dpt_voters",
             "dptb_voters", "dpk_voters"]
    for kind in SIREKAP_TRIPLES:
        names += [f"{kind}_l", f"{kind}_p"]
    boxes = {name: [name] for name in names if name in columns}

    def same(a: str, b: str) -> bool:
        x, y = table[a].astype("Float64"), table[b].astype("Float64")
        both = x.notna() & y.notna()
        return bool((x[both] == y[both]).all())

    for alias, box in ALIASES.items():
        if alias not in columns:
            continue
        if box in boxes and same(alias, box):
            boxes[box].append(alias)
        elif box not in boxes:
            boxes[box] = [alias]
        else:
            boxes[alias] = [alias]
    derived = False
    if {"registered", "dpt", "dptb_voters"} <= columns:
        sums = table["dpt"].astype("Float64") + table["dptb_voters"].astype("Float64")
        reg = table["registered"].astype("Float64")
        both = sums.notna() & reg.notna()
        derived = bool((sums[both] == reg[both]).all()) and bool((reg.isna() | sums.notna()).all())
        if derived:
            boxes.pop("registered", None)
    return boxes, derived


def _plausibility(values: np.ndarray, top: int = 2000, window: int = 2, floor: float = 0.5) -> np.ndarray:
    """log P(value) of a box: its histogram over the election, smoothed over +-``window`` and floored."""
    v = values[~np.isnan(values)]
    v = v[(v >= 0) & (v <= top)].astype(np.int64)
    counts = np.bincount(v, minlength=top + 1).astype(float)
    kernel = np.ones(2 * window + 1) / (2 * window + 1)
    smooth = np.convolve(counts, kernel, mode="same") + floor
    return np.log(smooth / (smooth.sum() + floor * 10 * top))


def _log_plausibility(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    top = len(table) - 1
    # Beyond the histogram (numbers above any TPS's) every value gets the smallest plausibility.
    out = np.full(values.shape, table.min())
    inside = (values >= 0) & (values <= top)
    out[inside] = table[values[inside].astype(np.int64)]
    return out


@lru_cache(maxsize=200_000)
def _original_map(reported: int, priors: tuple, confusions: tuple, insertions: tuple | None,
                  drops: tuple | None, substituted_at: tuple | None = None) -> dict[int, float]:
    return {v: q for v, _, q in _originals(reported, priors, confusions, insertions, drops, substituted_at)}


def _two_edit_likelihood(read: int, written: int, prior_key: tuple) -> float:
    """P(read | written, two one-digit edits): sum over the number in between of P(read | mid) P(mid | written),
    each under the one-edit model with its kinds' priors rescaled to sum to one."""
    priors = dict(prior_key[0])
    one = {k: priors.get(k, 0.0) for k in EDITS}
    total = sum(one.values())
    if total <= 0:
        return 0.0
    key = (tuple(sorted((k, v / total) for k, v in one.items())), *prior_key[1:])
    out = 0.0
    for mid, q1 in _original_map(int(read), *key).items():
        q2 = _original_map(int(mid), *key).get(int(written))
        if q2:
            out += q1 * q2
    return out


def _solved_candidates(b, box, rows, reported, sub, boxes, box_names, rules, touches, broken_sub, derived, priors,
                       prior_key, have_rows, have_values, cap=np.inf):
    """Repairs of box ``b`` that no one-edit list holds: the number that makes a broken sum hold, when the
    reading is 0 ("read as zero"), another box's number on the form ("box from another box"), or two
    one-digit edits away ("two edits"). Returns (rows, values, edit index, P(read | value), owner)."""
    x = reported.astype(float)
    solutions: dict[tuple[int, float], int] = {}
    for j in np.flatnonzero(touches[b]):
        if rules[j].relation != "==":
            continue
        hit = np.flatnonzero(broken_sub[rows, j])
        if not len(hit):
            continue
        values = []
        for shift in (0.0, 1.0):
            over = {c: x[hit] + shift for c in boxes[box]}
            if derived and box in ("dpt", "dptb_voters"):
                other = "dptb_voters" if box == "dpt" else "dpt"
                over["registered"] = x[hit] + shift + sub[other][rows[hit]]
            view = _Rows(sub, rows[hit], over)
            values.append(np.asarray(rules[j].reported(view), float) - np.asarray(rules[j].expected(view), float))
        slope = values[1] - values[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            v = x[hit] - values[0] / slope
        for k, value in zip(hit, v):
            if np.isfinite(value) and value >= 0 and value == np.round(value) and value != x[k] and value <= 10**6:
                solutions[(int(k), float(value))] = 1
    if not solutions:
        return None
    have = set(zip(have_rows.tolist(), have_values.tolist()))
    out_rows, out_values, out_edit, out_prob, out_owner = [], [], [], [], []
    published = {name: sub[boxes[name][0]] for name in box_names if name != box}
    for (k, value) in solutions:
        row = int(rows[k])
        if (row, value) in have:
            continue
        read = int(x[k])
        others = [v[row] for v in published.values() if not np.isnan(v[row]) and v[row] != 0]
        if read == 0 and priors.get("read as zero", 0) > 0:
            kind, prob = "read as zero", priors["read as zero"]
        elif read != 0 and read in others and priors.get("box from another box", 0) > 0:
            kind, prob = "box from another box", priors["box from another box"] * others.count(read) / len(others)
        else:
            kind, prob = "two edits", 0.0
            if priors.get("two edits", 0) > 0:
                prob = priors["two edits"] * _two_edit_likelihood(read, int(value), prior_key)
            if prob <= 0 and read > cap and priors.get("other", 0) > 0:
                # An impossible number: what was written cannot be told from it (1 / cap per value).
                kind, prob = "other", priors["other"] / cap
        if prob <= 0:
            continue
        out_rows.append(row)
        out_values.append(value)
        out_edit.append(ALL_EDITS.index(kind))
        out_prob.append(prob)
        out_owner.append(k)
    if not out_rows:
        return None
    return (np.array(out_rows, dtype=np.int64), np.array(out_values, dtype=float), np.array(out_edit, dtype=np.int8),
            np.array(out_prob, dtype=float), np.array(out_owner, dtype=np.int64))


def find_misreadings(election, *, rules: Sequence[Rule] | None = None, capacity: int | None = 300,
                     reserve: float = 0.02, headroom: int = 100,
                     priors: Mapping[str, float] = EDIT_PRIORS,
                     confusions: Mapping[tuple[str, str], float] = CONFUSION_WEIGHTS,
                     plausibility: bool = True, zeros_as_blank: bool = True,
                     alternatives: int = 3, model: Any = None, chart_prior: bool = True,
                     neighbours: pd.DataFrame | None = None,
                     insertions: Mapping[tuple[str, str], float] | None = None,
                     drops: Mapping[tuple[str, str], float] | None = None,
                     substituted_at: Mapping[str, float] | None = None) -> Misreadings:
    """Which published number of an inconsistent form was misread, and what was written: one OCR edit away.

    For every TPS that breaks a rule of ``default_rules``: forms under re-vote or recount (``psu``
    set) are excluded; sections published as all zeros (votes, voters, roll: nobody filled them
    in) are treated as unpublished, and a form that is then consistent is excluded too. For the
    rest, every box that takes part in every broken rule is a suspect, and every number one OCR
    edit away from its reading (``one_edit_originals``) is tried; a repair is kept when every rule
    that can be checked holds with it. This is the Fellegi & Holt (1976, JASA 71:17) edit-and-repair
    idea restricted to Damerau's (1964, CACM 7:171) single edits, as in Scholtus (2009, "Automatic
    correction of simple typing errors in numerical data with balance edits", Statistics
    Netherlands; R ``deducorrect::correctTypos``), with OCR confusions instead of keyboard typos.
    Confidence follows ``MISREADING_MODEL`` (a posterior under the assumption that exactly one box
    was misread by one edit).
    ``unique`` means exactly one repair works. Rows with ``proposed`` <NA> are forms no single
    edit explains (two misreadings, a tally error by the officials, a DPTb/DPK entry error).
    ``rules``: another rule set (default ``default_rules``); rules whose columns the Election
    lacks are listed in ``not_checked`` and play no part.
    ``model``: an edit model learned from real corrections (``analysis.corrections.EditModel``,
    e.g. ``load_learned_model()``); it replaces ``priors``, ``confusions``, ``insertions``,
    ``drops`` and ``substituted_at``, and weighs each box and each written digit. Kinds beyond one edit (``EXTRA_EDITS``) are searched only when ``priors`` weighs them.
    ``chart_prior``: rank a candidate's repairs by how the repaired chart splits the votes against
    the TPS's region (``_ChartPrior``; off: by that box's histogram alone); it reorders repairs,
    never adds or removes one. ``neighbours``: other TPS (levels and candidates; rows of this
    Election in it are ignored) whose charts count among their regions' when only some forms of an
    election are searched.
    """
    if model is not None:
        priors, confusions = model.priors, model.confusions
        insertions, drops = getattr(model, "insertions", None), getattr(model, "drops", None)
        substituted_at = getattr(model, "substituted_at", None)
    table = election.table
    candidates = tuple(election.candidates)
    if rules is None:
        rules = default_rules(candidates, table.columns, capacity=capacity, reserve=reserve, headroom=headroom)
    not_checked = {r.id: tuple(c for c in r.inputs if c not in table.columns) for r in rules
                   if any(c not in table.columns for c in r.inputs)}
    rules = [r for r in rules if r.id not in not_checked]
    columns = _Columns(table)

    counts, idx = _inconsistent_forms(rules, columns, len(table))
    idx, excluded = _without_revotes(table, idx)
    counts["excluded_psu"] = int(sum(len(e) for e in excluded))
    boxes, derived = _boxes(table, candidates)
    used = sorted({c for r in rules for c in (*r.inputs, *r.uses) if c in table.columns}
                  | {c for cols in boxes.values() for c in cols})
    sub = {c: columns[c][idx].copy() for c in used}
    blanked = _blank_zero_sections(sub, boxes, derived, candidates, len(idx)) if zeros_as_blank and len(idx) else \
        np.full(len(idx), "", dtype=object)
    idx, sub, blanked, broken_sub, half_published = _without_half_published(table, idx, sub, blanked, rules)
    excluded += half_published
    counts["excluded_blank"] = int(sum(len(e) for e in half_published))
    counts["searched"] = len(idx)

    search = _Search(rules=rules, sub=sub, boxes=boxes, box_names=list(boxes), derived=derived,
                     touches=_rule_touches(boxes, rules, derived), broken=broken_sub,
                     log_q={box: _plausibility(columns[cols[0]]) for box, cols in boxes.items()} if plausibility else {},
                     plausibility=plausibility,
                     log_gap=(_plausibility(columns["ballots"] - columns["valid"])
                              if plausibility and {"ballots", "valid"} <= set(boxes) else None),
                     chart=_chart_prior(table, columns, candidates, list(election.levels), idx,
                                        hard_cap(capacity, reserve, headroom), neighbours) if chart_prior else None)
    hyp = _repairs(search, priors=priors, confusions=confusions, insertions=insertions, drops=drops,
                   substituted_at=substituted_at, model=model, cap_value=hard_cap(capacity, reserve, headroom))
    out = _misreading_table(search, hyp, table, idx, blanked, list(election.levels), alternatives)
    explained, repairs = out["explained"].to_numpy(), out["n_repairs"].to_numpy()
    counts.update({"explained": int(explained.sum()), "unique": int((explained & (repairs == 1)).sum()),
                   "confident": int((explained & (out["confidence"].to_numpy() >= 0.9)).sum()),
                   "unexplained": int((~explained).sum())})
    excluded_frame = (pd.concat(excluded, ignore_index=True) if excluded
                      else pd.DataFrame({"unit_id": pd.Series(dtype="str"), "reason": pd.Series(dtype="str")}))
    return Misreadings(
        table=out, excluded=excluded_frame, counts=counts, candidates=candidates, not_checked=not_checked,
        parameters={"capacity": capacity, "reserve": reserve, "headroom": headroom, "priors": dict(priors),
                    "confusions": {f"{a}/{b}": w for (a, b), w in confusions.items()},
                    "model": getattr(model, "description", None) if model is not None else None,
                    "plausibility": plausibility, "zeros_as_blank": zeros_as_blank,
                    "chart_prior": (round(search.chart.concentration, 1) if search.chart is not None else None),
                    "rules": tuple(r.id for r in rules)},
    )


# ---- the steps of find_misreadings, in order
def _inconsistent_forms(rules, columns, n: int) -> tuple[dict[str, int], np.ndarray]:
    """Counts of forms checked and inconsistent, and the positions of the inconsistent ones."""
    checked = np.zeros(n, dtype=bool)
    broken_any = np.zeros(n, dtype=bool)
    for rule in rules:
        present, broken, _, _ = _evaluate(rule, columns)
        checked |= present
        broken_any |= broken
    counts = {"tps": n, "checked": int(checked.sum()), "inconsistent": int(broken_any.sum())}
    return counts, np.flatnonzero(broken_any)


def _without_revotes(table: pd.DataFrame, idx: np.ndarray) -> tuple[np.ndarray, list[pd.DataFrame]]:
    """Forms under re-vote or recount (``psu`` set) left out, with their reason."""
    excluded: list[pd.DataFrame] = []
    if "psu" in table.columns and len(idx):
        psu = table["psu"].iloc[idx]
        revote = (psu.notna() & (psu.astype("str").str.strip() != "")).to_numpy()
        if revote.any():
            excluded.append(pd.DataFrame({"unit_id": table.index[idx[revote]],
                                          "reason": "re-vote or recount (psu: " + psu[revote].astype(str).str[:60] + ")"}))
        idx = idx[~revote]
    return idx, excluded


def _blank_zero_sections(sub: dict[str, np.ndarray], boxes, derived: bool, candidates, n: int) -> np.ndarray:
    """Sections published as all zeros read as unpublished (in ``sub``, in place); per form, the sections blanked."""
    blanked = np.full(n, "", dtype=object)
    for section, names in SECTIONS.items():
        names = candidates if section == "chart" else names
        cols = [c for name in names if name in boxes for c in boxes[name]]
        if not cols:
            continue
        block = np.column_stack([sub[c] for c in cols])
        published = ~np.isnan(block)
        zero = published.any(axis=1) & np.all(~published | (block == 0), axis=1)
        if zero.any():
            for c in cols:
                sub[c][zero] = np.nan
            blanked[zero] = np.where(blanked[zero] == "", section, blanked[zero] + ", " + section)
    if derived:
        sub["registered"] = sub["dpt"] + sub["dptb_voters"]
    return blanked


def _without_half_published(table, idx, sub, blanked, rules):
    """Forms that break no rule once their blank sections are unpublished, left out; the broken rules of the rest."""
    broken_sub = np.zeros((len(idx), len(rules)), dtype=bool)
    for j, rule in enumerate(rules):
        broken_sub[:, j] = _evaluate(rule, sub)[1]
    fine = ~broken_sub.any(axis=1)
    excluded = []
    if fine.any():
        excluded.append(pd.DataFrame({"unit_id": table.index[idx[fine]],
                                      "reason": "half-published: the " + blanked[fine].astype(str)
                                      + " section read as all zeros (not filled in); nothing else breaks"}))
    keep = ~fine
    return idx[keep], {c: v[keep] for c, v in sub.items()}, blanked[keep], broken_sub[keep], excluded


def _rule_touches(boxes, rules, derived: bool) -> np.ndarray:
    """Which rules each box takes part in (registered, when derived, moves with DPT and DPTb)."""
    column_box = {c: box for box, cols in boxes.items() for c in cols}
    touches = np.zeros((len(boxes), len(rules)), dtype=bool)
    box_names = list(boxes)
    for j, rule in enumerate(rules):
        for c in (*rule.inputs, *rule.uses):
            hit = {column_box[c]} if c in column_box else set()
            if c == "registered" and derived:
                hit = {b for b in ("dpt", "dptb_voters") if b in boxes}
            for b in hit:
                touches[box_names.index(b), j] = True
    return touches


@dataclass(frozen=True, eq=False)
class _Search:
    """What the repair search works on: the inconsistent forms' boxes, their broken rules, and the rules' reach."""

    rules: list
    sub: dict[str, np.ndarray]    # column -> values of the searched forms
    boxes: dict[str, list[str]]   # box -> the columns it fills
    box_names: list[str]
    derived: bool                 # registered = DPT + DPTb, moved with either
    touches: np.ndarray           # box x rule
    broken: np.ndarray            # form x rule
    log_q: dict[str, np.ndarray]  # box -> plausibility table (empty without plausibility)
    plausibility: bool
    chart: Any = None             # _ChartPrior of the searched forms, or None
    log_gap: Any = None           # plausibility table of ballots - valid (the invalid ballots), or None


def _box_candidates(rows: np.ndarray, reported: np.ndarray, prior_key):
    """Every one-edit original of each suspect reading of box ``b``: (row, value, edit, prior, owner) per candidate."""
    unique_values, inverse = np.unique(reported, return_inverse=True)
    lists = [_originals(int(u), *prior_key) for u in unique_values]
    lengths = np.array([len(l) for l in lists], dtype=np.int64)
    flat_value = np.array([v for l in lists for v, _, _ in l], dtype=float)
    flat_edit = np.array([ALL_EDITS.index(e) for l in lists for _, e, _ in l], dtype=np.int8)
    flat_prob = np.array([p for l in lists for _, _, p in l], dtype=float)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    per_row = lengths[inverse]
    owner = np.repeat(np.arange(len(rows)), per_row)
    offset = np.arange(per_row.sum()) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    flat = starts[inverse][owner] + offset
    return rows[owner], flat_value[flat], flat_edit[flat], flat_prob[flat], owner


def _repairs(search: _Search, *, priors, confusions, insertions, drops, substituted_at, model, cap_value) -> pd.DataFrame:
    """Every repair that makes a form consistent: one row per (form, box, value) with its edit and weight."""
    sub, boxes, box_names, rules, touches = search.sub, search.boxes, search.box_names, search.rules, search.touches
    prior_key = (tuple(sorted(priors.items())), tuple(sorted(confusions.items())), _weights_key(insertions),
                 _weights_key(drops), _weights_key(substituted_at))
    solved_kinds = [k for k in ("two edits", "box from another box", "read as zero", "other") if priors.get(k, 0) > 0]
    box_weight = getattr(model, "box_weights", None) if model is not None else None
    per_digit = bool(getattr(model, "per_digit", False)) if model is not None else False
    found_rows, found_box, found_value, found_edit, found_weight = [], [], [], [], []
    for b, box in enumerate(box_names):
        values = sub[boxes[box][0]]
        # A suspect box takes part in every rule its form breaks.
        suspect = ~np.isnan(values) & search.broken.any(axis=1) & ~(search.broken & ~touches[b]).any(axis=1)
        rows = np.flatnonzero(suspect)
        if not len(rows):
            continue
        reported = values[rows].astype(np.int64)
        cand_rows, cand_value, cand_edit, cand_prob, owner = _box_candidates(rows, reported, prior_key)
        if solved_kinds:
            extra = _solved_candidates(b, box, rows, reported, sub, boxes, box_names, rules, touches, search.broken,
                                       search.derived, priors, prior_key, cand_rows, cand_value, cap_value)
            if extra is not None:
                cand_rows = np.concatenate([cand_rows, extra[0]])
                cand_value = np.concatenate([cand_value, extra[1]])
                cand_edit = np.concatenate([cand_edit, extra[2]])
                cand_prob = np.concatenate([cand_prob, extra[3]])
                owner = np.concatenate([owner, extra[4]])
        overrides = {c: cand_value for c in boxes[box]}
        if search.derived and box in ("dpt", "dptb_voters"):
            other = "dptb_voters" if box == "dpt" else "dpt"
            overrides["registered"] = cand_value + sub[other][cand_rows]
        view = _Rows(sub, cand_rows, overrides)
        ok = np.ones(len(cand_rows), dtype=bool)
        for j in np.flatnonzero(touches[b]):
            ok &= ~_evaluate(rules[j], view)[1]
        weight = cand_prob
        if box_weight is not None:  # which box gets misread (learned), per box
            weight = weight * float(box_weight.get(box, box_weight.get("*", 1.0)))
        if per_digit:  # every written digit is a chance to misread: longer numbers are misread more often
            weight = weight * (np.floor(np.log10(np.maximum(cand_value, 1))) + 1)
        in_chart = search.chart is not None and box in search.chart.candidates
        if in_chart:  # the repaired chart's split against the neighbours', where the whole chart is published
            names = search.chart.candidates
            whole = np.ones(len(cand_rows), dtype=bool)
            for c in names:
                whole &= ~np.isnan(sub[boxes[c][0]][cand_rows])
            log_ratio = np.zeros(len(cand_rows))
            fit = whole & ok  # only repairs that make the form hold need it
            if fit.any():
                rows_ok = cand_rows[fit]
                chart_total = sum(sub[boxes[c][0]][rows_ok] for c in names)
                log_ratio[fit] = search.chart.log_ratio(names.index(box), rows_ok, reported[owner[fit]].astype(float),
                                                        cand_value[fit], chart_total)
            weight = weight * np.exp(log_ratio)
        if search.plausibility:
            log_p = (_log_plausibility(search.log_q[box], cand_value)
                     - _log_plausibility(search.log_q[box], reported[owner].astype(float)))
            if in_chart:
                log_p = np.where(whole, 0.0, log_p)
            if search.log_gap is not None and box in ("valid", "ballots"):
                # Without an invalid box, ballots - valid is the invalid count: P(valid) P(ballots - valid)
                # instead of P(valid) P(ballots) (the ballots' own plausibility is replaced).
                valid0, ballots0 = sub[boxes["valid"][0]][cand_rows], sub[boxes["ballots"][0]][cand_rows]
                gap_rows = ~np.isnan(valid0) & ~np.isnan(ballots0)
                if "invalid" in boxes:
                    gap_rows &= np.isnan(sub[boxes["invalid"][0]][cand_rows])
                new = (ballots0 - cand_value) if box == "valid" else (cand_value - valid0)
                old = ballots0 - valid0
                # Beyond the histogram (a negative count) the smallest plausibility applies.
                log_g = (_log_plausibility(search.log_gap, np.nan_to_num(new, nan=-1.0))
                         - _log_plausibility(search.log_gap, np.nan_to_num(old, nan=-1.0)))
                if box == "ballots":
                    log_p = np.where(gap_rows, 0.0, log_p)
                log_p = log_p + np.where(gap_rows, log_g, 0.0)
            weight = weight * np.exp(log_p)
        found_rows.append(cand_rows[ok])
        found_box.append(np.full(int(ok.sum()), b, dtype=np.int32))
        found_value.append(cand_value[ok])
        found_edit.append(cand_edit[ok])
        found_weight.append(weight[ok])
    hyp = pd.DataFrame({
        "row": np.concatenate(found_rows) if found_rows else np.array([], dtype=np.int64),
        "box": np.concatenate(found_box) if found_box else np.array([], dtype=np.int32),
        "value": np.concatenate(found_value) if found_value else np.array([], dtype=float),
        "edit": np.concatenate(found_edit) if found_edit else np.array([], dtype=np.int8),
        "weight": np.concatenate(found_weight) if found_weight else np.array([], dtype=float),
    })
    # Ranked per form: confidence is each repair's share of the form's total weight.
    hyp = hyp.sort_values(["row", "weight"], ascending=[True, False], kind="stable")
    total = hyp.groupby("row")["weight"].transform("sum")
    hyp["confidence"] = hyp["weight"] / total
    hyp["rank"] = hyp.groupby("row").cumcount()
    return hyp


# ---- the chart's prior: how the candidates split the votes near this TPS
#: Pseudo-votes with which a region's shares are shrunk towards its parent region's (one TPS is ~200 votes).
SHARE_SHRINKAGE = 400.0
#: Forms (a systematic sample) from which the overdispersion of the shares is estimated.
MOMENT_FORMS = 50_000


@dataclass(frozen=True, eq=False)
class _ChartPrior:
    """Dirichlet-multinomial prior of the candidates' split at each searched form.

    ``alpha``: (searched forms x candidates) = concentration x local shares, the shares of the
    form's own smallest region without the form itself, shrunk towards the enclosing regions'.
    ``concentration`` is a moment estimate of the TPS-to-TPS overdispersion of the shares
    (``_chart_prior``). The prior of a written chart x (its total n = sum x) is
    DM(x | n, alpha); a candidate's repair is weighed by DM(repaired chart) / DM(reported chart)
    instead of the one box's plausibility: which candidate was misread is told by how the form's
    split compares with its neighbours' (a 4 read for an 8 in a small candidate's box, rather than
    a 104 for a 108 in the leader's).
    """

    candidates: tuple[str, ...]
    alpha: np.ndarray
    concentration: float

    def log_ratio(self, c: int, rows: np.ndarray, old: np.ndarray, new: np.ndarray, total: np.ndarray) -> np.ndarray:
        """log DM(chart with candidate ``c`` at ``new``) - log DM(chart with it at ``old``); ``total``: the chart's
        sum with ``old`` (only the terms of candidate ``c`` and of the total change)."""
        from scipy.special import gammaln

        a = self.alpha[rows, c]
        big = self.alpha[rows].sum(axis=1)
        new_total = total - old + new
        return (gammaln(new_total + 1) - gammaln(total + 1) - gammaln(new_total + big) + gammaln(total + big)
                + gammaln(new + a) - gammaln(old + a) + gammaln(old + 1) - gammaln(new + 1))

    def log_pmf(self, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """log DM(x | sum x, alpha[rows]) for charts ``x`` (k x candidates) of searched forms ``rows``."""
        from scipy.special import gammaln

        a = self.alpha[rows]
        n = x.sum(axis=1)
        total = a.sum(axis=1)
        return (gammaln(n + 1) + gammaln(total) - gammaln(n + total)
                + (gammaln(x + a) - gammaln(a) - gammaln(x + 1)).sum(axis=1))


def _chart_prior(table: pd.DataFrame, columns, candidates: Sequence[str], levels: Sequence[str], idx: np.ndarray,
                 cap: float, neighbours: pd.DataFrame | None = None) -> _ChartPrior | None:
    """The chart prior of the searched forms ``idx``, from every form of the election whose chart is published
    and possible (each number at most ``cap``, not all zero); None without two candidates or such forms.
    ``neighbours``: more forms (a table with the levels and the candidates' columns, e.g. the rest of the
    election when only some forms are searched) that count among the regions' forms; rows of ``table`` in it
    are ignored."""
    candidates = tuple(candidates)
    if len(candidates) < 2 or not len(idx):
        return None
    xs = [np.asarray(columns[c], dtype=float) for c in candidates]
    levels = [lv for lv in levels if lv in table.columns]
    if neighbours is not None and len(neighbours):
        extra = neighbours[~neighbours.index.isin(table.index)]
        xs = [np.concatenate([v, pd.to_numeric(extra[c], errors="coerce").astype("Float64")
                              .to_numpy(dtype=float, na_value=np.nan)]) for v, c in zip(xs, candidates)]
        levels = [lv for lv in levels if lv in extra.columns]
        table = pd.concat([table[levels], extra[levels]], ignore_index=True)
    # Column by column: reductions along a row of three are slow in numpy.
    usable = np.ones(len(xs[0]), dtype=bool)
    some = np.zeros(len(xs[0]), dtype=bool)
    for v in xs:
        usable &= v <= cap  # False where NaN
        some |= v > 0
    usable &= some
    if usable.sum() < 2:
        return None
    xs = [np.where(usable, v, 0.0) for v in xs]
    n = sum(xs)
    # Shares are needed at the searched forms and at the forms that estimate the overdispersion (a
    # systematic sample of at most MOMENT_FORMS usable forms: one number needs no more).
    pool = np.flatnonzero(usable & (n >= 2))
    sample = pool[np.linspace(0, len(pool) - 1, min(len(pool), MOMENT_FORMS)).astype(np.int64)] if len(pool) else pool
    need = np.concatenate([np.asarray(idx, dtype=np.int64), sample])
    xu = np.column_stack([v[need] for v in xs])
    overall = np.array([v.sum() for v in xs]) + 1.0
    shares = np.broadcast_to(overall / overall.sum(), xu.shape)
    # From the coarsest level to the finest: shares of the region's other forms, shrunk towards the parent's.
    for level in levels:
        codes, uniques = pd.factorize(table[level], sort=False, use_na_sentinel=False)
        at = codes[need]
        own = np.column_stack([np.bincount(codes, weights=v, minlength=len(uniques))[at] for v in xs]) - xu
        shares = (own + SHARE_SHRINKAGE * shares) / (own.sum(axis=1, keepdims=True) + SHARE_SHRINKAGE)
    # Overdispersion by moments: E (x - n p)^2 = n p (1 - p) (1 + (n - 1) rho), rho = 1 / (1 + concentration).
    p, xf, nf = shares[len(idx):], xu[len(idx):], n[sample][:, None]
    num = ((xf - nf * p) ** 2 - nf * p * (1 - p)).sum()
    den = (nf * (nf - 1) * p * (1 - p)).sum()
    rho = float(np.clip(num / den, 1e-3, 0.5)) if den > 0 else 0.5
    concentration = 1.0 / rho - 1.0
    return _ChartPrior(candidates, concentration * shares[:len(idx)], concentration)


def _guessed_boxes(search: _Search, m: int) -> np.ndarray:
    """The box shown for a form no repair explains: a guess.

    The one in most broken rules, and among those the least plausible reading (a 641 among votes
    of ~100), else the largest number.
    """
    implicated = (search.broken.astype(np.int64) @ search.touches.T.astype(np.int64)).astype(float)
    for b, box in enumerate(search.box_names):
        values = search.sub[search.boxes[box][0]]
        surprise = (-_log_plausibility(search.log_q[box], np.nan_to_num(values, nan=0.0)) if search.plausibility
                    else np.log1p(np.nan_to_num(values, nan=0.0)))
        implicated[:, b] += surprise / (1.0 + np.abs(surprise).max(initial=0.0)) / 2  # below one rule
        implicated[np.isnan(values), b] = -1
    return implicated.argmax(axis=1) if m else np.array([], dtype=np.int64)


def _misreading_table(search: _Search, hyp: pd.DataFrame, table: pd.DataFrame, idx: np.ndarray,
                      blanked: np.ndarray, levels: list[str], alternatives: int) -> pd.DataFrame:
    """One row per searched form: the best repair (or the guessed box), its confidence and the alternatives."""
    box_names, sub, boxes = search.box_names, search.sub, search.boxes
    n_repairs = hyp.groupby("row").size()
    best = hyp[hyp["rank"] == 0].set_index("row")
    m = len(idx)
    explained = np.zeros(m, dtype=bool)
    explained[best.index.to_numpy()] = True
    field_index = _guessed_boxes(search, m)
    field_index[best.index.to_numpy()] = best["box"].to_numpy()
    field_names = np.array(box_names, dtype=object)[field_index] if m else np.array([], dtype=object)
    reported_values = np.array([sub[boxes[box_names[b]][0]][r] for r, b in enumerate(field_index)], dtype=float)

    proposed = np.full(m, np.nan)
    proposed[best.index.to_numpy()] = best["value"].to_numpy()
    edit = np.full(m, "", dtype=object)
    edit[best.index.to_numpy()] = np.array(ALL_EDITS, dtype=object)[best["edit"].to_numpy().astype(int)]
    confidence = np.zeros(m)
    confidence[best.index.to_numpy()] = best["confidence"].to_numpy()
    repairs = np.zeros(m, dtype=np.int64)
    repairs[n_repairs.index.to_numpy()] = n_repairs.to_numpy()
    others = hyp[(hyp["rank"] > 0) & (hyp["rank"] <= alternatives)]
    alt_text = np.full(m, "", dtype=object)
    if len(others):
        labels = (np.array(box_names, dtype=object)[others["box"].to_numpy()] + "="
                  + others["value"].astype(np.int64).astype(str).to_numpy()
                  + " (" + others["confidence"].round(2).astype(str).to_numpy() + ")")
        joined = pd.Series(labels, index=others["row"].to_numpy()).groupby(level=0).agg("; ".join)
        alt_text[joined.index.to_numpy()] = joined.to_numpy()
    rule_ids = np.array([r.id for r in search.rules], dtype=object)
    broken_text = np.array(["; ".join(rule_ids[row]) for row in search.broken], dtype=object)

    out = pd.DataFrame({
        "unit_id": pd.array(table.index[idx], dtype="str"),
        "field": pd.array(field_names, dtype="str"),
        "reported": pd.array(reported_values, dtype="Int64") if m else pd.array([], dtype="Int64"),
        "proposed": pd.array(np.where(np.isnan(proposed), None, proposed), dtype="Int64"),
        "edit": pd.array(edit, dtype="str"),
        "confidence": confidence,
        "unique": repairs == 1,
        "explained": explained,
        "n_repairs": repairs,
    })
    out["difference"] = out["reported"] - out["proposed"]
    out["detail"] = pd.array([describe_edit(p, r) if e else "" for p, r, e in
                              zip(np.nan_to_num(proposed), np.nan_to_num(reported_values), explained)], dtype="str")
    out["alternatives"] = pd.array(alt_text, dtype="str")
    out["rules_broken"] = pd.array(broken_text, dtype="str")
    out["blanked"] = pd.array(blanked, dtype="str")
    for level in levels:
        out[level] = table[level].to_numpy()[idx]
    return out


CHANCE_NULL = ("correct forms (every checkable rule holds) given one non-OCR error: the valid total written "
               "off by a difference drawn from the given ones (a tally slip); the share that one OCR edit "
               "would nonetheless 'explain' is the rate of explanations by coincidence")


@dataclass(frozen=True, eq=False)
class ChanceExplained:
    """How often a form broken by a tally slip, not by OCR, would still be 'explained' by one edit."""

    n: int  # forms with a slip planted
    explained: int
    confident: int  # explained with confidence >= min_confidence
    unique: int
    min_confidence: float
    columns: tuple[str, ...]
    null: str = CHANCE_NULL
    seed: int = 0

    def to_frame(self) -> pd.DataFrame:
        from statsmodels.stats.proportion import proportion_confint

        rows = []
        for label, k in (("explained", self.explained), (f"confidence >= {self.min_confidence:g}", self.confident),
                         ("unique repair", self.unique)):
            low, high = proportion_confint(k, self.n, alpha=0.05, method="wilson") if self.n else (np.nan, np.nan)
            rows.append({"by chance": label, "forms": k, "of": self.n, "share": k / self.n if self.n else np.nan,
                         "ci_low": low, "ci_high": high})
        return pd.DataFrame(rows).set_index("by chance")

    def _repr_html_(self) -> str:
        head = f"Explanations by coincidence, {self.n:,} correct forms with a tally slip ({', '.join(self.columns)} published)."
        return (f"<p><b>{html.escape(head)}</b></p>" + frame_html(self.to_frame())
                + f"<p><small>{html.escape('Null: ' + self.null)}</small></p>")


def chance_explained(base, shifts: Sequence[int] | np.ndarray, *, columns: Sequence[str] | None = None,
                     n: int = 2000, seed: int = 0, min_confidence: float = 0.9, **search: Any) -> ChanceExplained:
    """The rate at which ``find_misreadings`` 'explains' a form whose only error is not OCR (simulated).

    ``n`` correct forms of ``base`` (an Election; every rule that can be checked holds, the
    candidates' sum among them) get their valid total moved by a difference drawn from
    ``shifts`` (non-zero integers, e.g. the candidates-minus-valid differences observed in a real
    set). ``columns``: keep only these count columns published (e.g. the flagged files' valid,
    ballots and candidates), so the null sees the same rules the real set does. The result is a
    coincidence rate with Wilson 95 % intervals, to set beside the share explained in real data.
    """
    shifts = np.asarray(shifts, dtype=np.int64)
    shifts = shifts[shifts != 0]
    if not len(shifts):
        raise ValueError("chance_explained needs at least one non-zero shift")
    table = base.table.copy()
    if columns is not None:
        keep = set(columns) | set(base.candidates) | {"valid"}
        for name in base.counts:
            if name not in keep:
                table[name] = pd.array([pd.NA] * len(table), dtype="Int64")
        for name in [c for c in table.columns if c.startswith(("pemilih_", "pengguna_", "suara_"))
                     or c in ("dpt", "dpt_voters", "dptb_voters", "dpk_voters")]:
            if name not in keep:
                table = table.drop(columns=name)
    reduced = replace(base, table=table)
    checks = check_consistency(reduced)
    ok = checks.evaluable["candidates_sum_to_valid"].to_numpy() & ~checks.failed.any(axis=1).to_numpy()
    if "psu" in table.columns:
        ok &= table["psu"].isna().to_numpy()
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(ok)
    if not len(pool):
        raise ValueError("the base election has no correct form with the candidates' sum checkable")
    rows = rng.choice(pool, size=min(n, len(pool)), replace=False)
    sample = table.iloc[rows].copy()
    valid = sample["valid"].astype("Int64").to_numpy(dtype=np.int64) + rng.choice(shifts, len(sample))
    # A slip cannot make a total negative; such draws are moved to the other side.
    valid = np.where(valid < 0, -valid, valid)
    for name in ("valid", "suara_sah"):
        if name in sample.columns:
            sample[name] = pd.array(valid, dtype="Int64")
    found = find_misreadings(replace(base, table=sample), **search)
    t = found.table
    called = t["explained"].to_numpy()
    return ChanceExplained(
        n=len(sample), explained=int(called.sum()),
        confident=int((called & (t["confidence"].to_numpy() >= min_confidence)).sum()),
        unique=int((called & t["unique"].to_numpy()).sum()), min_confidence=min_confidence,
        columns=tuple(c for c in base.counts if c in sample.columns and sample[c].notna().any()), seed=seed,
    )


def _wilson(k: int, n: int) -> tuple[float, float]:
    from statsmodels.stats.proportion import proportion_confint

    return proportion_confint(k, n, alpha=0.05, method="wilson") if n else (np.nan, np.nan)


def misreading_shares(found: Misreadings, *, min_confidence: float = 0.9) -> pd.DataFrame:
    """Among the forms searched and not excluded: the share explained, explained with confidence,
    explained uniquely, with Wilson 95 % intervals (same rows as ``ChanceExplained.to_frame``)."""
    t = found.table
    n = len(t)
    rows = []
    for label, k in (("explained", int(t["explained"].sum())),
                     (f"confidence >= {min_confidence:g}", int((t["explained"] & (t["confidence"] >= min_confidence)).sum())),
                     ("unique repair", int((t["explained"] & t["unique"]).sum()))):
        low, high = _wilson(k, n)
        rows.append({"observed": label, "forms": k, "of": n, "share": k / n if n else np.nan, "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows).set_index("observed")


def misreadings_by_region(found: Misreadings, level: str, *, min_confidence: float = 0.0) -> pd.DataFrame:
    """Per region: forms listed, explained (uniquely, confidently), not explained, excluded elsewhere
    not counted; and per candidate the net votes explained misreadings moved (reported - repaired)."""
    t = found.table
    if level not in t.columns:
        raise KeyError(f"{level!r} is not a level of this result ({', '.join(c for c in t.columns if c not in CONTRACT_COLUMNS)})")
    called = t["explained"] & (t["confidence"] >= min_confidence)
    frame = pd.DataFrame({
        level: t[level].to_numpy(), "listed": 1, "explained": called.to_numpy(dtype=int),
        "unique": (called & t["unique"]).to_numpy(dtype=int), "unexplained": (~t["explained"]).to_numpy(dtype=int),
    })
    for c in found.candidates:
        frame[f"net_{c}"] = np.where(called & (t["field"] == c), t["difference"].astype("float64").fillna(0), 0.0)
    out = frame.groupby(level, sort=True).sum()
    return out.astype({f"net_{c}": "int64" for c in found.candidates})


CONTRACT_COLUMNS = ("unit_id", "field", "reported", "proposed", "edit", "confidence", "unique", "explained",
                    "n_repairs", "difference", "detail", "alternatives", "rules_broken", "blanked")


def misreading_recovery(election, truth: pd.DataFrame, found: Misreadings | None = None, *,
                        kinds: Sequence[str] = ("ocr_misreading",)) -> pd.DataFrame:
    """How many planted misreadings (``SyntheticElection.truth``) the search finds and repairs, with denominators.

    Injected misreadings are detectable when the misread number is still published and the form
    breaks a rule; found = the TPS is listed; precision = explained rows at a misread TPS among
    all explained rows; repaired = the right box and the original number proposed.
    """
    truth = truth[truth["kind"].isin(kinds)]
    found = find_misreadings(election) if found is None else found
    table = election.table
    values = np.array([table.at[u, f] if u in table.index else pd.NA for u, f in zip(truth["unit_id"], truth["field"])],
                      dtype=object)
    still = np.array([pd.notna(v) and int(v) == int(r) for v, r in zip(values, truth["reported"])], dtype=bool)
    broken = check_consistency(election).failed.any(axis=1).reindex(truth["unit_id"]).fillna(False).to_numpy(dtype=bool)
    detectable = truth[still & broken].set_index("unit_id")
    rows = found.table.set_index("unit_id")
    called = rows[rows["explained"]]
    joined = detectable.join(rows[["field", "proposed"]].rename(columns={"field": "found_field"}), how="left")
    right = ((joined["found_field"] == joined["field"]) & (joined["proposed"] == joined["original"])).fillna(False)
    n_found = int(detectable.index.isin(rows.index).sum())
    n_true = int(called.index.isin(truth["unit_id"]).sum())
    n_right = int(right.astype(bool).sum())
    measures = [
        ("injected", len(truth), np.nan), ("on an unpublished page", int((~still).sum()), np.nan),
        ("published but breaking no rule", int((still & ~broken).sum()), np.nan),
        ("detectable", len(detectable), np.nan),
        ("found (TPS listed)", n_found, n_found / len(detectable) if len(detectable) else np.nan),
        ("explained rows at a misread TPS (precision)", n_true, n_true / len(called) if len(called) else np.nan),
        ("original number proposed", n_right, n_right / len(detectable) if len(detectable) else np.nan),
    ]
    return pd.DataFrame(measures, columns=["measure", "count", "rate"]).set_index("measure")


# --------------------------------------------------------------------------- party ballots (DPR RI, DPRD)
# The two rules of a legislative C.Hasil form (sirekap-api.md, "Legislative ballots as served"), kept apart
# from ``default_rules``: they need the per-candidate votes (``votes_long`` of a Sirekap build), which
# ``with_party_sums`` turns into one column per party, ``parts_<party column>``.

#: Rule ids of the party-ballot rules (one of the first per party column: ``PARTY_PARTS_RULE:<column>``).
PARTY_PARTS_RULE = "party_total_is_party_plus_candidates"
PARTY_TOTALS_RULE = "party_totals_sum_to_valid"


def parts_column(party_column: str) -> str:
    """The column ``with_party_sums`` adds for a party: its party-only votes plus its candidates' votes."""
    return f"parts_{party_column}"


def with_party_sums(election, votes_long: pd.DataFrame | None):
    """The election with ``parts_<party>`` per party column: party-only votes + the sum of its candidates' votes.

    ``votes_long`` has one row per TPS, party and candidate (``candidate`` "" is the party-only vote;
    ``party`` the party number as served, "1" for column "01"). A TPS's value is ``<NA>`` where it cannot
    be checked: the party has no party-only row or no candidate row (the early flat chart, a body without
    ``caleg``, a party without candidates there), or one of its numbers is unpublished.
    """
    from dataclasses import replace as _replace

    table = election.table
    columns = [c for c in election.candidates if c in table.columns]
    out = table.copy()
    n, k = len(table), len(columns)
    values = np.full(n * k, np.nan)
    if votes_long is not None and len(votes_long) and k:
        at = {c: i for i, c in enumerate(columns)}
        units = pd.Categorical(votes_long["unit_id"])
        parties = pd.Categorical(votes_long["party"])
        unit_pos = table.index.get_indexer(units.categories)
        party_pos = np.array([at.get(f"{int(p):02d}", at.get(str(p), -1)) if str(p).isascii() and str(p).isdigit() and len(str(p)) < 6
                              else at.get(str(p), -1) for p in parties.categories], dtype=np.int64)
        row = unit_pos[units.codes] if len(unit_pos) else np.zeros(0, dtype=np.int64)
        col = party_pos[parties.codes] if len(party_pos) else np.zeros(0, dtype=np.int64)
        ok = (units.codes >= 0) & (parties.codes >= 0) & (row >= 0) & (col >= 0)
        keys = row[ok] * k + col[ok]
        votes = votes_long["votes"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)[ok]
        only = (votes_long["candidate"].astype(str).to_numpy() == "")[ok]
        missing = np.isnan(votes)
        size = n * k
        sums = np.bincount(keys, weights=np.where(missing, 0.0, votes), minlength=size)
        unread = np.bincount(keys, weights=missing.astype(float), minlength=size)
        has_only = np.bincount(keys, weights=only.astype(float), minlength=size)
        has_candidates = np.bincount(keys, weights=(~only).astype(float), minlength=size)
        good = (unread == 0) & (has_only == 1) & (has_candidates > 0)
        values = np.where(good, sums, np.nan)
    values = values.reshape(n, k) if k else np.zeros((n, 0))
    for i, column in enumerate(columns):
        unknown = np.isnan(values[:, i])
        out[parts_column(column)] = pd.arrays.IntegerArray(np.where(unknown, 0, values[:, i]).astype("int64"), unknown)
    return _replace(election, table=out)


def _party_totals(parties: tuple[str, ...]) -> Callable[[Columns], np.ndarray]:
    """Sum of the party totals where every party of the chart has one (``chart_parties`` of them), else NaN."""

    def total(c: Columns) -> np.ndarray:
        present = [c[p] for p in parties if p in c]
        if not present:
            return np.full(len(c["chart_parties"]), np.nan)
        stack = np.vstack(present)
        published = (~np.isnan(stack)).sum(axis=0)
        expected = c["chart_parties"]
        return np.where((published == expected) & (expected > 0), np.nansum(stack, axis=0), np.nan)

    return total


def party_ballot_rules(parties: Sequence[str]) -> list[Rule]:
    """Rules of a party-ballot form: per party ``jml_suara_total == jml_suara_partai + sum(caleg)``, and over the
    parties of the chart ``sum(jml_suara_total) == suara_sah``.

    ``parties`` are the party vote columns (``Election.candidates`` of a party-ballot build). The first rule
    reads ``parts_<party>`` (:func:`with_party_sums`), the second ``chart_parties`` (how many party entries
    the chart had, from the parser): a TPS where a party of its chart has no published total is not evaluable.
    Use them beside ``default_rules``: ``check_consistency(e, rules=default_rules(...) + party_ballot_rules(...))``.
    """
    parties = tuple(parties)
    rules = [Rule(f"{PARTY_PARTS_RULE}:{p}", f"party {p}: total (jml_suara_total) = party-only votes + its candidates' votes",
                  (p, parts_column(p)), _col(p), _col(parts_column(p))) for p in parties]
    rules.append(Rule(PARTY_TOTALS_RULE, "the parties' totals (jml_suara_total) add up to the valid ballots (suara_sah)",
                      ("valid", "chart_parties"), _col("valid"), _party_totals(parties), uses=parties))
    return rules

"""The battery of region-level tests a page flags with: one list, used by the notebooks and the placebo runs.

A page compares the regions of one level (the national page: provinces; a province page: its
kabupaten/kota). Every test of the battery runs once per region; ``sections.national_flags``
decides the flags over all of them together (``analysis.flagging``). The placebo table of the
methods appendix (``placebo``) runs exactly this battery on real clean elections, so the rates it
reports are the rates of the flags the pages show.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

#: The families of the battery, in the order of the flag rows. Klimek's model and Kobak's test per region
#: (``turnout.turnout_models``) are shown on the pages but are not in the battery: the model test's 49
#: bootstrap draws cannot reach p < 0.02, and Kobak's integer test is the turnout tests' "integer percentages".
FAMILIES = ("forms", "digits", "turnout", "pairs", "spikes", "tsm")


@dataclass(frozen=True, eq=False)
class Battery:
    """The battery's per-region tables (None where a family does not apply, with the reason in ``skipped``)."""

    level: str
    forms: Any = None
    digits: Any = None
    turnout: Any = None
    pairs: Any = None
    spikes: Any = None
    tsm: Any = None
    misreadings: Any = None
    checks: Any = None
    skipped: dict[str, str] = field(default_factory=dict)

    def tables(self) -> tuple:
        """Every family's table in flag order (None for a family that did not run).

        The turnout tests enter with ``extreme_cluster_vs_others`` applied (see there).
        """
        tsm_rows = None if self.tsm is None else self.tsm.systematic.flag_rows()
        turnout = None if self.turnout is None else association_effects(
            extreme_cluster_vs_others(self.turnout.results), self.turnout.details)
        return (self.digits, turnout, self.pairs, self.spikes, tsm_rows)

    def flags(self, alpha: float) -> list:
        """The page's flags over every family (``sections.national_flags``)."""
        from .sections import national_flags

        return national_flags(self.forms, *self.tables(), alpha=alpha)

    def rows(self) -> pd.DataFrame:
        """Every test of every region as one table (``test``, ``region``, ``statistic``, ``pvalue``, ``qvalue``, ``family``)."""
        from .sections import _rows

        parts = []
        named = {"forms": self.forms, **dict(zip(FAMILIES[1:], self.tables()))}
        for family, table in named.items():
            if table is None:
                continue
            if hasattr(table, "flag_rows"):
                table = table.flag_rows()
            rows = _rows(table, "broken forms rate") if family == "forms" else _rows(
                table.results if hasattr(table, "results") else table)
            parts.append(pd.DataFrame(rows).assign(family=family))
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            columns=["test", "region", "statistic", "pvalue", "qvalue", "family"])


def extreme_cluster_vs_others(results: pd.DataFrame) -> pd.DataFrame:
    """Turnout-test rows whose extreme-cluster p-value also asks whether the region's corner units are
    concentrated there rather than in the other regions (Fisher's exact test, one-sided).

    The extreme-cluster null describes each unit by a logit-normal model whose tails are thinner
    than real stations' (hospitals, closed wards, tiny villages): in the clean Poland 2020 first round
    one station in the corner gave p = 5e-15. A cluster of ballot stuffing is many units in one
    region; one odd station anywhere is not. The row's p-value becomes the larger of the two (both
    must reject); the unit model's own p-value stays in ``pvalue_model``.
    """
    from scipy.stats import fisher_exact

    out = results.copy()
    where = (out["test"] == "extreme cluster") & out["pvalue"].notna()
    if not where.any():
        return out
    counts = out.loc[where, "statistic"].astype(float).round().astype(int)
    units = out.loc[where, "n"].astype(int)
    total_counts, total_units = int(counts.sum()), int(units.sum())
    out["pvalue_model"] = out["pvalue"]
    for index in out.index[where]:
        k, n = int(counts[index]), int(units[index])
        table = [[k, n - k], [total_counts - k, total_units - n - (total_counts - k)]]
        p_others = fisher_exact(table, alternative="greater")[1] if n < total_units else 1.0
        out.loc[index, "pvalue"] = max(float(out.loc[index, "pvalue"]), float(p_others))
    return out


def association_effects(results: pd.DataFrame, details) -> pd.DataFrame:
    """Turnout-test rows with the association's effect (statistic above its permutation mean) and standard error.

    The association's theoretical z grows with a region's size while the demographic association of
    turnout and share that real elections have does not: in Canada 2011 (clean) every province shows
    one and Ontario's, measured on 100 ridings, had p = 3e-28. With ``effect`` and ``se`` the page
    compares regions by effect (``flagging.random_effects_pvalues``).
    """
    import numpy as np

    out = results.copy()
    out["effect"], out["se"] = np.nan, np.nan
    for index, row in out[out["test"] == "turnout-share association"].iterrows():
        result = details.get((row["region"], "turnout-share association"))
        z = getattr(result, "z", np.nan)
        if result is None or not np.isfinite(z) or z == 0:
            continue
        effect = float(result.statistic - result.null_mean)
        out.loc[index, ["effect", "se"]] = effect, effect / z
    return out


def run_battery(election, level: str, *, winner: str | None = None, group: str | None = None, seed: int = 0,
                n_sim: int = 1000, n_resamples: int = 200, alpha: float = 0.05, checks=None,
                misreadings=None, with_tsm: bool = True, spikes_winner: str | None = None,
                tsm_flags: pd.DataFrame | None = None) -> Battery:
    """Run every region-level test of a page at ``level`` (regions of that level against each other).

    ``winner``: the candidate of the turnout tests (default: the election's leader); the spikes run
    for ``spikes_winner`` (default: the election's leader too, in every region, so that the regions
    of a page are compared on one candidate; a province's own page tests its own leader, so where
    another candidate leads a province the two pages test different candidates). ``checks`` and
    ``misreadings``: reuse what the page computed already.
    """
    from .. import consistency, digits, tsm, turnout
    from ..profiles import profile_of
    from .sections import leading_candidate, plan

    page = plan(election, level)
    group = group or page.group
    winner = winner or leading_candidate(election)
    profile = profile_of(election)
    skipped: dict[str, str] = {}
    checks = checks if checks is not None else consistency.check_consistency(election)
    out: dict[str, Any] = {"checks": checks}
    out["forms"] = consistency.region_inconsistency_test(checks, level)
    if page.has("valid"):
        out["digits"] = digits.digit_tests(election, level=level, null="exact", share_level=group)
        out["pairs"] = digits.pair_tests(election, level=level, share_level=group)
    else:
        skipped["digits"] = skipped["pairs"] = "no valid votes published"
    if not profile.single_station:
        skipped["turnout"] = skipped["spikes"] = "units are aggregates of stations"
    elif not page.has("registered", "voters", "valid"):
        skipped["turnout"] = skipped["spikes"] = "no registered, voters or valid published"
    else:
        out["turnout"] = turnout.turnout_tests(election, level=level, winner=winner, group_level=group, seed=seed,
                                               n_rep=n_sim)
        out["spikes"] = turnout.spikes_table(election, level=level, candidate=spikes_winner, resamples=n_resamples,
                                             seed=seed)
    if profile.ocr and with_tsm:
        out["misreadings"] = misreadings if misreadings is not None else consistency.find_misreadings(election)
        out["tsm"] = tsm.tsm(election, out["misreadings"], level=level, flags=tsm_flags, alpha=alpha, seed=seed,
                             n_boot=n_sim, n_perm=n_sim - 1)
    else:
        skipped["tsm"] = "numbers not read by OCR" if not profile.ocr else "not asked for"
    known = {f.name for f in fields(Battery)}
    return Battery(level=level, skipped=skipped, **{k: v for k, v in out.items() if k in known})


# ------------------------------------------------------------------------------------ the battery on synthetic elections
def _region_decisions(rows: pd.DataFrame, alpha: float) -> tuple[set[str], set[str]]:
    """(regions flagged by the page rule, regions flagged by the earlier rule: BH within each family, merged)."""
    from ..flagging import outside_flags, page_flags

    rows = rows[~rows["test"].map(outside_flags)]
    page = set(page_flags(rows, alpha).flagged_regions)
    earlier = set(rows.loc[(pd.to_numeric(rows["qvalue"], errors="coerce") <= alpha).to_numpy(), "region"].astype(str))
    return page, earlier


def synthetic_flag_rates(*, n_elections: int = 5, seed: int = 1000, scale: float = 0.02, n_sim: int = 199,
                         n_resamples: int = 50, alpha: float = 0.05) -> pd.DataFrame:
    """The national page's battery on synthetic elections: clean ones and the demo's planted ones.

    Per election and rule (the page rule, and the earlier per-family rule): provinces flagged,
    how many of them clean (false flags) and how many of the planted provinces were found. The
    clean elections keep the demo's OCR noise (``plan={}``); the planted ones are the demo's plan.
    """
    from ..synth import make_election

    records = []
    for index in range(n_elections):
        for kind, plan in (("clean", {}), ("planted", None)):
            synthetic = make_election(scale=scale, seed=seed + index, plan=plan)
            planted = {p for ps in synthetic.planted_provinces().values() for p in ps}
            battery = run_battery(synthetic.election, "province", seed=seed + index, n_sim=n_sim,
                                  n_resamples=n_resamples, alpha=alpha)
            regions = battery.rows()
            page, earlier = _region_decisions(regions, alpha)
            for rule, flagged in (("page", page), ("per-family BH", earlier)):
                records.append({"election": seed + index, "kind": kind, "rule": rule,
                                "regions": regions["region"].nunique(), "planted": len(planted),
                                "flagged": len(flagged), "false_flags": len(flagged - planted),
                                "planted_found": len(flagged & planted)})
    return pd.DataFrame(records)

"""The per-region wrapper: extreme cluster, turnout-share association and integer tests per region with BH q-values.

Benjamini & Hochberg (1995), JRSS B 57:289: q-values per test across the regions of a level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from ..cache import cached
from ..errors import InsufficientData
from .._common import region_seed
from ._units import _html
from .association import turnout_share_association
from .extreme import extreme_cluster_test
from .integer import integer_percent_test


TESTS = ("extreme cluster", "turnout-share association", "integer percentages")


@dataclass(frozen=True, eq=False)
class TurnoutTable:
    """The three turnout tests per region, with BH q-values per test across regions."""

    results: pd.DataFrame  # region, region_name, test, statistic, null_expected, pvalue, qvalue, n, excluded, note
    level: str
    winner: str
    group_level: str
    seed: int
    details: Mapping[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def flags(self, alpha: float = 0.05) -> pd.DataFrame:
        """Rows whose q-value is at most ``alpha``: statistical irregularities, not findings of fraud."""
        return self.results[self.results["qvalue"] <= alpha].reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        return self.results.copy()

    def _repr_html_(self) -> str:
        title = (f"Turnout tests per {self.level} (winner {self.winner}, groups: {self.group_level}, seed {self.seed}); "
                 "q-values: Benjamini-Hochberg per test across regions")
        return _html(title, self.results)


def turnout_tests(
    election, *, level: str = "province", winner: str | None = None, group_level: str = "district",
    seed: int = 0, n_perm: int = 999, n_rep: int = 1000, threshold: float = 0.95, min_registered: int = 100,
    integer_resample: str = "indicator",
) -> TurnoutTable:
    """Per region at ``level``: extreme cluster, turnout-share association and integer-percentage tests.

    Kernels as in ``extreme_cluster_test`` (Klimek et al. 2012), ``turnout_share_association`` and
    ``integer_percent_test`` (Kobak et al. 2016), with groups from ``group_level``; q-values by
    Benjamini & Hochberg (1995) per test across regions (statsmodels ``multipletests``, fdr_bh).
    ``winner`` defaults to the candidate with the most votes in the whole election. A region
    whose test cannot run (no usable units) gets a NaN p-value and a note, not an exception.
    The integer test's null mean is exact and its p-value a saddlepoint approximation to the exact
    Poisson-binomial tail; its ``n_rep`` Monte Carlo draws (only a check
    here) are drawn as indicators from the exact probabilities (``integer_resample``; pass
    "binomial" for Kobak's redrawing of every count, the same null at ~20 times the cost).
    """
    from statsmodels.stats.multitest import multipletests

    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    if group_level not in election.levels:
        raise KeyError(f"{group_level!r} is not a level of this election ({', '.join(election.levels)})")
    if not election.candidates:
        raise ValueError("the election has no candidate columns")
    if winner is None:
        totals = {c: np.nansum(election.column(c)) for c in election.candidates}
        winner = max(totals, key=totals.get)
    elif winner not in election.candidates:
        raise KeyError(f"{winner!r} is not a candidate ({', '.join(election.candidates)})")

    table = election.table
    columns = {name: election.column(name) for name in ("registered", "voters", "valid", winner)}
    regions = table[level].astype(str).to_numpy()
    # Fixed-width strings, not Python objects: the batch cache hashes its keys' arrays, and an object
    # array is hashed string by string (the national page's groups cost 11 s of hashing that way).
    groups = table[group_level].astype(str).to_numpy().astype(str)
    name_col = f"{level}_name"
    names = table[name_col].astype(str).to_numpy() if name_col in table.columns else None
    rows, details = [], {}
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        args = [columns[c][mask] for c in ("registered", "voters")] + [columns[winner][mask], columns["valid"][mask]]
        region_name = str(names[mask][0]) if names is not None else ""
        runs = {
            "extreme cluster": lambda: cached(extreme_cluster_test)(
                args[0], args[1], args[2], args[3], threshold=threshold, groups=groups[mask], min_registered=min_registered),
            "turnout-share association": lambda: cached(turnout_share_association)(
                *args, groups=groups[mask], n_perm=n_perm, seed=region_seed(seed, region, "association"),
                min_registered=min_registered),
            "integer percentages": lambda: cached(integer_percent_test)(
                *args, n_rep=n_rep, seed=region_seed(seed, region, "integer"), min_registered=min_registered,
                resample=integer_resample),
        }
        for test, run in runs.items():
            row = {"region": region, "region_name": region_name, "test": test}
            try:
                result = run()
            except InsufficientData as err:
                # Only the data errors the kernels raise on purpose: the region stays as a row with
                # the reason. A caller's error (a wrong column, a parameter, a bug) propagates.
                rows.append({**row, "statistic": np.nan, "null_expected": np.nan, "pvalue": np.nan, "n": 0,
                             "excluded": 0, "note": f"not tested: {err}"})
                continue
            details[(region, test)] = result
            expected = {"extreme cluster": getattr(result, "expected", np.nan),
                        "turnout-share association": getattr(result, "null_mean", np.nan),
                        "integer percentages": getattr(result, "null_mean", np.nan)}[test]
            note = "" if np.isfinite(result.pvalue) else "not enough usable units"
            rows.append({**row, "statistic": float(result.statistic), "null_expected": float(expected),
                         "pvalue": float(result.pvalue), "n": int(result.n),
                         "excluded": int(sum(result.excluded.values())), "note": note})
    results = pd.DataFrame(rows, columns=["region", "region_name", "test", "statistic", "null_expected",
                                          "pvalue", "n", "excluded", "note"])
    results["qvalue"] = np.nan
    for test in TESTS:
        where = (results["test"] == test) & results["pvalue"].notna()
        if where.any():
            results.loc[where, "qvalue"] = multipletests(results.loc[where, "pvalue"].to_numpy(), method="fdr_bh")[1]
    results = results[["region", "region_name", "test", "statistic", "null_expected", "pvalue", "qvalue", "n",
                       "excluded", "note"]]
    return TurnoutTable(results=results, level=level, winner=winner, group_level=group_level, seed=seed,
                        details=details)

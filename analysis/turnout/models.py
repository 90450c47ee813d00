"""Klimek's fraud model and Kobak's integer test per region, each region against its own winner.

The Sirekap adaptation of Klimek et al. (2012) and Kobak et al. (2016): turnout definitions (DPT +
DPTb, or DPT only), TPS without an administration page left out and counted, winners per region.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ..cache import cached
from ..errors import InsufficientData
from .._common import region_seed
from ._units import _html
from .integer import kobak_integer_test
from .klimek import klimek_fit, klimek_test


#: Turnout definitions for Sirekap: the API's (DPT + DPTb on the roll) and the DPT-only variant.
TURNOUT_DEFINITIONS = {"registered": "voters / (DPT + DPTb)", "dpt": "voters / DPT"}


def administration_missing(election) -> np.ndarray:
    """TPS whose administration page (the C.Hasil page with the roll and voter counts) is not published.

    Sirekap bodies parsed by ``analysis.sources.sirekap`` carry ``has_administrasi``; other tables
    (the synthetic election, a country's CSV) count a station as missing it when both its roll and
    its voters are missing.
    """
    table = election.table
    if "has_administrasi" in table.columns:
        return ~table["has_administrasi"].fillna(False).to_numpy(dtype=bool)
    return np.isnan(election.column("registered")) & np.isnan(election.column("voters"))


def region_winners(election, level: str) -> pd.Series:
    """The candidate with the most votes in each region at ``level`` (a Series: region code -> candidate).

    Regions can have different winners; reports that follow "the winner" of a region use this rather
    than the national winner. Ties go to the candidate listed first; a region without votes gets the
    first candidate (its totals are all missing). Computed from the data, never assumed.
    """
    if not election.candidates:
        raise ValueError("the election has no candidate columns")
    totals = election.table.groupby(election.table[level].astype(str))[list(election.candidates)].sum(min_count=1)
    return totals.astype(float).fillna(-1).idxmax(axis=1)


@dataclass(frozen=True, eq=False)
class TurnoutModels:
    """Klimek's model and Kobak's integer test per region, each region against its own winner."""

    results: pd.DataFrame
    level: str
    definition: str
    seed: int
    settings: Mapping[str, Any]
    details: Mapping[tuple[str, str], Any] = field(default_factory=dict, repr=False)

    def flags(self, alpha: float = 0.05) -> pd.DataFrame:
        """Regions with a q-value at most ``alpha`` in either test: statistical irregularities, not fraud findings."""
        hit = (self.results["klimek_qvalue"] <= alpha) | (self.results["integer_qvalue"] <= alpha)
        return self.results[hit].reset_index(drop=True)

    def flag_rows(self) -> pd.DataFrame:
        """Both tests per region in the report's flag shape (``test``, ``region``, ``statistic``, ``pvalue``, ``qvalue``)."""
        parts = []
        for test, prefix, statistic in (("Klimek model", "klimek", "f_i"), ("Kobak integer", "integer", "integer_excess")):
            parts.append(pd.DataFrame({
                "test": f"{test} ({self.definition})", "region": self.results["region"].astype(str),
                "statistic": self.results[statistic] if statistic in self.results else np.nan,
                "pvalue": self.results[f"{prefix}_pvalue"], "qvalue": self.results[f"{prefix}_qvalue"]}))
        return pd.concat(parts, ignore_index=True)

    def to_frame(self) -> pd.DataFrame:
        return self.results.copy()

    def _repr_html_(self) -> str:
        title = (f"Turnout models per {self.level} (turnout = {TURNOUT_DEFINITIONS.get(self.definition, self.definition)}, "
                 f"seed {self.seed}); q-values: Benjamini-Hochberg per test across regions")
        return _html(title, self.results)


def turnout_models(
    election, *, level: str = "province", definition: str = "registered", winner: str | None = None, seed: int = 0,
    n_boot: int = 49, n_repeats: int = 2, n_rep: int = 1000, min_registered: int = 100,
    regions: Sequence[str] | None = None,
) -> TurnoutModels:
    """Per region: Klimek's fraud-model fit and bootstrap test, Kobak's integer test; winner per region.

    Klimek et al. (2012), PNAS 109:16469 (``klimek.klimek_fit``, ``klimek.klimek_test``) and Kobak
    et al. (2016), Ann. Appl. Stat. 10:54 (``kobak_integer_test``), adapted to Sirekap: turnout is
    voters / registered, registered = DPT + DPTb as the API defines it (``definition="registered"``),
    or voters / DPT (``"dpt"``, where DPTb and DPK voters push turnout above 100 %, capped in the
    fingerprint and counted); each region is tested against the candidate that won it (or against
    ``winner`` everywhere, e.g. to follow one candidate's planted cluster where it lost); TPS
    without an administration page are left out of the models and counted in
    ``no_administration``; other exclusions (missing counts, registered < ``min_registered``, ...)
    are counted in ``excluded``. Kobak's leader share uses valid + invalid ballots. q-values:
    Benjamini-Hochberg per test across regions (statsmodels ``multipletests``).
    """
    from statsmodels.stats.multitest import multipletests


    if level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    if definition not in TURNOUT_DEFINITIONS:
        raise ValueError(f"definition must be one of {', '.join(TURNOUT_DEFINITIONS)}, got {definition!r}")
    if definition == "dpt" and "dpt" not in election.table.columns:
        raise KeyError("definition 'dpt' needs a 'dpt' column (Sirekap pemilih_dpt_j)")
    table = election.table
    no_adm = administration_missing(election)
    roll = election.column("registered" if definition == "registered" else "dpt")
    voters, valid = election.column("voters"), election.column("valid")
    received = valid + election.column("invalid")
    codes = table[level].astype(str).to_numpy()
    winners = region_winners(election, level)
    name_col = f"{level}_name"
    names = table[name_col].astype(str).to_numpy() if name_col in table.columns else None
    wanted = sorted(pd.unique(codes)) if regions is None else [str(r) for r in regions]
    rows, details = [], {}
    for region in wanted:
        mask = codes == region
        keep = mask & ~no_adm
        winner_here = str(winners.get(region, "")) if winner is None else str(winner)
        row = {"region": region, "region_name": str(names[mask][0]) if names is not None and mask.any() else "",
               "winner": winner_here, "tps": int(mask.sum()), "no_administration": int((mask & no_adm).sum())}
        if winner_here not in election.candidates:
            rows.append({**row, "note": "no votes" if winner is None else f"{winner!r} is not a candidate"})
            continue
        votes = election.column(winner_here)
        args = (roll[keep], voters[keep], votes[keep], valid[keep])
        turnout = args[1] / args[0]
        finite = np.isfinite(turnout)
        row.update({"turnout_median": float(np.median(turnout[finite])) if finite.any() else np.nan,
                    "turnout_above_100": int((turnout[finite] > 1).sum())})
        note = []
        try:
            fit = cached(klimek_fit)(*args, seed=region_seed(seed, region, "klimek fit"), n_repeats=n_repeats,
                             min_registered=min_registered)
            test = cached(klimek_test)(*args, seed=region_seed(seed, region, "klimek test"), n_boot=n_boot,
                               min_registered=min_registered)
            details[(region, "klimek fit")], details[(region, "klimek test")] = fit, test
            row.update({"n": fit.n, "excluded": int(sum(fit.excluded.values())), "f_i": fit.f_i, "f_i_sd": fit.f_i_sd,
                        "f_e": fit.f_e, "f_e_sd": fit.f_e_sd, "alpha": fit.alpha, "klimek_pvalue": test.pvalue})
            if not np.isfinite(test.pvalue):
                note.append(f"Klimek not tested: too few usable units ({test.n})")
            if getattr(fit, "note", ""):
                note.append(f"Klimek fit: {fit.note}")
        except InsufficientData as err:  # data errors raised on purpose only; a caller's error propagates
            note.append(f"Klimek not fitted: {err}")
        try:
            integer = cached(kobak_integer_test)(args[0], args[1], votes[keep], received[keep], n_rep=n_rep,
                                         seed=region_seed(seed, region, "kobak"), min_registered=min_registered,
                                         resample="indicator")
            details[(region, "integer")] = integer
            row.update({"integer_excess": integer.excess, "integer_null_sd": integer.null_sd,
                        "integer_pvalue": integer.pvalue})
            if not np.isfinite(integer.pvalue):
                note.append(f"integer test: no usable units ({integer.n})")
        except InsufficientData as err:
            note.append(f"integer test not run: {err}")
        rows.append({**row, "note": "; ".join(note)})
    columns = ["region", "region_name", "winner", "tps", "no_administration", "n", "excluded", "turnout_median",
               "turnout_above_100", "f_i", "f_i_sd", "f_e", "f_e_sd", "alpha", "klimek_pvalue", "klimek_qvalue",
               "integer_excess", "integer_null_sd", "integer_pvalue", "integer_qvalue", "note"]
    results = pd.DataFrame(rows).reindex(columns=columns)
    for test in ("klimek", "integer"):
        p = results[f"{test}_pvalue"]
        where = p.notna()
        if where.any():
            results.loc[where, f"{test}_qvalue"] = multipletests(p[where].to_numpy(dtype=float), method="fdr_bh")[1]
    settings = {"n_boot": n_boot, "n_repeats": n_repeats, "n_rep": n_rep, "min_registered": min_registered,
                "winner": winner or "per region"}
    return TurnoutModels(results=results, level=level, definition=definition, seed=seed, settings=settings,
                         details=details)

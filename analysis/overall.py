"""Election-level tests: does this election as a whole look like clean elections?

The national page asks two questions. Which regions stand out among the others is answered by
``analysis.flagging`` (each region judged against the other regions). Whether the whole election
looks like a clean one cannot be answered that way (if every region were stuffed alike, none would
stand out), so a few tests pool every unit and are judged against their own nulls: Kobak's
integer-percentage test (Kobak, Shpilkin & Pshenichnikov 2016), judged against its own null with
Holm's (1979) adjustment across the flagging tests of the page. Beside it, described but not
flagging, because on real clean elections their nulls do not hold at the scale of a whole
election: the within-neighbourhood association of turnout and winner share (Klimek et al. 2012;
real demography relates the two: Canada 2011 gave p = 4e-23) and the model-based last-digit test
per candidate (Beber & Scacco 2012; pooled over tens of thousands of stations it detects
deviations of the per-station model too small to matter: Canada 2011's OTHER column gave
p = 0.003). Left out: Klimek's model test (its 49 bootstrap draws cannot give a p-value below
0.02) and the extreme-cluster test (its null is too thin in the tail for real stations: on the
clean Poland 2020 first round one station in the corner gave p = 1e-9); both take part in the
region flags' comparisons or are shown on the pages.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from .display import frame_html

#: The pseudo-level that holds every unit (one region: the whole election).
WHOLE = "_election"


@dataclass(frozen=True, eq=False)
class ElectionTests:
    """Election-level tests with Holm-adjusted p-values; ``flagged`` where the adjusted p is at most alpha."""

    table: pd.DataFrame  # test, statistic, pvalue, pvalue_holm, flags (in the flagging family), flagged, null, n
    alpha: float
    procedure: str = "Holm's step-down adjustment across the election-level tests of the page"

    @property
    def flagged(self) -> pd.DataFrame:
        return self.table[self.table["flagged"]].reset_index(drop=True)

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def _repr_html_(self) -> str:
        head = (f"<p>Election-level tests: {int(self.table['flagged'].sum())} of {int(self.table['flags'].sum())} "
                f"flagging tests flagged at "
                f"alpha = {self.alpha:g} ({html.escape(self.procedure)}).</p>")
        return head + frame_html(self.table)


def election_tests(election, *, winner: str | None = None, group_level: str | None = None, seed: int = 0,
                   n_sim: int = 1000, alpha: float = 0.05, min_registered: int = 100) -> ElectionTests:
    """The election-level tests of the module docstring, on every unit of ``election``.

    A test whose inputs the table lacks (no registered or voters column published) is left out
    with a row saying so. ``group_level``: neighbourhoods of the association test and the level
    the digit model pools shares at (default: the finest level).
    """
    from statsmodels.stats.multitest import multipletests

    from . import digits, turnout

    levels = list(election.levels)
    group_level = group_level or levels[-1]
    if winner is None:
        totals = {c: np.nansum(election.column(c)) for c in election.candidates}
        winner = max(totals, key=totals.get)
    registered, voters = election.column("registered"), election.column("voters")
    valid, invalid = election.column("valid"), election.column("invalid")
    votes = election.column(winner)
    groups = election.table[group_level].astype(str).to_numpy()
    rows = []
    has_turnout = bool(np.isfinite(registered).any() and np.isfinite(voters).any())
    if has_turnout:
        received = np.where(np.isfinite(invalid), valid + invalid, valid)
        integer = turnout.kobak_integer_test(registered, voters, votes, received, n_rep=n_sim, seed=seed,
                                             min_registered=min_registered, resample="indicator")
        rows.append({"test": f"integer percentages ({winner})", "statistic": integer.excess, "pvalue": integer.pvalue,
                     "null": "binomial redraw of every unit (Kobak et al. 2016), saddlepoint tail",
                     "n": int(integer.observed), "flags": True})
        association = turnout.turnout_share_association(registered, voters, votes, valid, groups=groups,
                                                        n_perm=max(n_sim - 1, 99), seed=seed,
                                                        min_registered=min_registered)
        rows.append({"test": f"turnout-share association ({winner})", "statistic": association.statistic,
                     "pvalue": association.pvalue,
                     "null": f"permutations of turnout within {group_level}; described, not flagging "
                             "(real demography relates turnout and share)",
                     "n": int(association.n), "flags": False})
    whole = replace(election, table=election.table.assign(**{WHOLE: "all"}), levels=(WHOLE, *levels))
    share_level = group_level if group_level != levels[0] or len(levels) == 1 else levels[-1]
    table = digits.digit_tests(whole, level=WHOLE, tests=("last",), null="exact", share_level=share_level).results
    for record in table.to_dict("records"):
        if not np.isfinite(record["pvalue"]):
            continue
        rows.append({"test": f"last digit ({record['column']})", "statistic": record["statistic"],
                     "pvalue": record["pvalue"], "null": f"{record['null']}; described, not flagging (whole-election "
                     "pooling detects per-station model deviations too small to matter)",
                     "n": int(record["n"]), "flags": False})
    frame = pd.DataFrame(rows, columns=["test", "statistic", "pvalue", "null", "n", "flags"])
    frame["pvalue_holm"] = np.nan
    finite = frame["pvalue"].notna() & np.isfinite(frame["pvalue"].astype(float)) & frame["flags"].astype(bool)
    if finite.any():
        frame.loc[finite, "pvalue_holm"] = multipletests(frame.loc[finite, "pvalue"].astype(float), method="holm")[1]
    frame["flagged"] = (frame["pvalue_holm"] <= alpha).fillna(False).astype(bool)
    return ElectionTests(frame[["test", "statistic", "pvalue", "pvalue_holm", "flags", "flagged", "null", "n"]], alpha)

"""Klimek's election fingerprint: a 2-D histogram of turnout against the winner's share.

Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469, Fig. 1. Descriptive: a fair election gives
one roughly Gaussian blob; smears towards the (100 %, 100 %) corner are what the tests look at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from ._units import _html, _prepare


@dataclass(frozen=True, eq=False)
class Fingerprint:
    """Klimek's election fingerprint: a 2-D histogram of turnout against the winner's share.

    ``counts[i, j]`` is the number of units with turnout in ``turnout_edges[i:i+2]`` and winner
    share in ``share_edges[j:j+2]``; the last bin of each axis is closed. Units with turnout above
    100 % are kept in the last turnout bin and counted in ``turnout_above_1``.
    """

    counts: np.ndarray
    turnout_edges: np.ndarray
    share_edges: np.ndarray
    n: int
    excluded: Mapping[str, int]
    turnout_above_1: int
    min_registered: int
    null: str = "none (descriptive); a fair election gives one roughly Gaussian blob"

    def to_frame(self) -> pd.DataFrame:
        """The non-empty cells, one row each."""
        i, j = np.nonzero(self.counts)
        return pd.DataFrame({
            "turnout_low": self.turnout_edges[i], "turnout_high": self.turnout_edges[i + 1],
            "share_low": self.share_edges[j], "share_high": self.share_edges[j + 1],
            "units": self.counts[i, j].astype(np.int64),
        })

    def summary(self) -> pd.DataFrame:
        rows = {"units in histogram": self.n, "turnout > 100 % (in last bin)": self.turnout_above_1}
        rows.update({f"excluded: {k}": v for k, v in self.excluded.items()})
        return pd.DataFrame({"item": list(rows), "value": list(rows.values())})

    def _repr_html_(self) -> str:
        bins = f"{len(self.turnout_edges) - 1} x {len(self.share_edges) - 1} bins"
        return _html(f"Election fingerprint ({bins}, registered >= {self.min_registered})", self.summary())


def fingerprint(registered, voters, winner_votes, valid, *, min_registered: int = 100, bins: int = 100) -> Fingerprint:
    """Turnout (voters / registered) against winner share (winner / valid) as a 2-D histogram.

    Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469, Fig. 1: units with fewer than
    ``min_registered`` registered voters are left out (the paper cuts on voters; we cut on the
    roll so the cut does not depend on turnout). Turnout above 1 is put in the last bin, counted.
    """
    if int(bins) < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    units = _prepare(registered, voters, winner_votes, valid, min_registered=min_registered)
    turnout = np.minimum(units.voters / units.registered, 1.0)
    share = units.winner / units.valid
    edges = np.linspace(0.0, 1.0, int(bins) + 1)
    counts, _, _ = np.histogram2d(turnout, share, bins=[edges, edges])
    return Fingerprint(
        counts=counts.astype(np.int64), turnout_edges=edges, share_edges=edges.copy(), n=units.n,
        excluded=units.excluded, turnout_above_1=units.turnout_above_1, min_registered=min_registered,
    )

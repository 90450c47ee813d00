"""The turnout kernels' common input: four count arrays per unit, the usable units, and small HTML helpers.

Units with a missing count, a negative or fractional count, zero (or too few) registered voters,
zero valid votes, or more winner votes than valid votes are excluded from every kernel and counted,
per reason, in the result's ``excluded`` mapping (``analysis._common.prepare_counts``); nothing is
dropped silently. Turnout above 100 % is kept and counted in ``turnout_above_1``.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from .._common import prepare_counts
from ..display import frame_html

# Latent-scale quadrature: probabilists' Gauss-Hermite nodes, weights normalised to a N(0, 1)
# expectation. 20 nodes integrate the smooth binomial tail curves to well below the Monte Carlo
# error of any check we run (see tests).
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(20)
_GH_WEIGHTS = _GH_WEIGHTS / np.sqrt(2 * np.pi)
#: A normal-consistent MAD.
_MAD = 1.4826
#: Groups smaller than this get the region-wide centre (their own median is too noisy).
_MIN_GROUP = 5


@dataclass(frozen=True, eq=False)
class _Units:
    """The usable units of a kernel's input, and why the others were left out."""

    registered: np.ndarray
    voters: np.ndarray
    winner: np.ndarray
    valid: np.ndarray
    used: np.ndarray  # boolean mask over the input
    excluded: dict[str, int]
    turnout_above_1: int

    @property
    def n(self) -> int:
        return int(self.used.sum())


def _prepare(registered, voters, winner_votes, valid, *, min_registered: int, extra=None) -> _Units:
    def rules(registered, voters, winner_votes, valid):
        return [
            ("no registered voters", registered == 0),
            (f"registered < {min_registered}", registered < min_registered),
            ("no valid votes", valid == 0),
            ("winner votes > valid", winner_votes > valid),
        ]

    prepared = prepare_counts({"registered": registered, "voters": voters, "winner_votes": winner_votes,
                               "valid": valid}, rules, lengths=None if extra is None else {"groups": len(extra)})
    reg, vot = prepared.kept("registered"), prepared.kept("voters")
    return _Units(
        registered=reg, voters=vot, winner=prepared.kept("winner_votes"), valid=prepared.kept("valid"),
        used=prepared.used, excluded=prepared.excluded, turnout_above_1=int((vot > reg).sum()),
    )


def _excluded_frame(excluded: Mapping[str, int]) -> pd.DataFrame:
    return pd.DataFrame({"reason": list(excluded), "units": list(excluded.values())})


def _html(title: str, *tables: pd.DataFrame) -> str:
    parts = [f"<p><b>{html.escape(title)}</b></p>"]
    parts += [frame_html(t) for t in tables]
    return "\n".join(parts)


def _threshold_count(size: np.ndarray, threshold: float) -> np.ndarray:
    """The smallest count k with k / size >= threshold (exact, not fooled by 0.95 * 100 = 95.0000001)."""
    return np.ceil(np.round(threshold * size, 9)).astype(np.int64)

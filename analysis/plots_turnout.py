"""Figures for the turnout tests (to be merged into plots.py): one function per figure, returns a Figure."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from .turnout import Fingerprint


def fingerprint_plot(fp: Fingerprint, ax=None, title: str = "") -> Figure:
    """Klimek's election fingerprint: units per (turnout, winner share) cell, log colour scale.

    Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469, Fig. 1. Empty cells are left white;
    units above 100 % turnout sit in the last column (their number is in the caption).
    """
    if ax is None:
        fig = Figure(figsize=(5.5, 4.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    counts = np.ma.masked_equal(fp.counts.T.astype(float), 0)  # rows: share, columns: turnout
    if counts.count():
        mesh = ax.pcolormesh(100 * fp.turnout_edges, 100 * fp.share_edges, counts,
                             norm=LogNorm(vmin=1, vmax=max(1.0, float(counts.max()))), cmap="viridis")
        fig.colorbar(mesh, ax=ax, label="polling stations per cell")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("turnout (%)")
    ax.set_ylabel("winner's share of valid votes (%)")
    excluded = sum(fp.excluded.values())
    note = f"n = {fp.n:,}; excluded {excluded:,}; turnout > 100 %: {fp.turnout_above_1:,}"
    # Titles come from outside (region names): plain text, never parsed as mathtext.
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=9, usetex=False, parse_math=False)
    return fig

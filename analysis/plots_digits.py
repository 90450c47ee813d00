"""Figures for the digit tests (to be merged into plots.py): one function per figure, returns a Figure."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from .digits import DigitTest


def digit_bars(result: DigitTest, ax=None, title: str = "") -> Figure:
    """Observed digit shares (bars) against the null's expected shares with its 2.5-97.5 % band.

    Mebane (2006) for second digits, Beber & Scacco (2012) for last digits. The band is the
    central 95 % of each digit's share under the null (simulated draws, or Binomial(n, p) / n for
    a textbook null); the textbook law (Benford, or uniform for last digits) is drawn as a
    labelled reference line, since at polling-station level it is not the right expectation.
    A bar outside its band on one digit is expected now and then (ten digits, 95 % bands).
    """
    if ax is None:
        fig = Figure(figsize=(6, 4), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    table = result.digits
    x = table["digit"].to_numpy()
    observed = table["observed_share"].to_numpy(dtype=float)
    expected = table["expected_share"].to_numpy(dtype=float)
    low = table["band_low"].to_numpy(dtype=float)
    high = table["band_high"].to_numpy(dtype=float)
    textbook = table["textbook_share"].to_numpy(dtype=float)

    ax.bar(x, observed, width=0.6, color="#4c72b0", alpha=0.85, label="observed", zorder=2)
    if np.isfinite(low).any():
        ax.bar(x, high - low, bottom=low, width=0.85, color="#dd8452", alpha=0.3, linewidth=0,
               label="null 2.5-97.5 %", zorder=3)
    simulated = result.null.startswith("simulated")
    ax.plot(x, expected, "o", color="#dd8452", markersize=5, zorder=3,
            label="null expectation (simulated)" if simulated else "null expectation")
    textbook_label = {"last digit": "uniform 10 % (reference)"}.get(result.name, "Benford (textbook reference)")
    ax.plot(x, textbook, "--", color="0.3", linewidth=1, label=textbook_label, zorder=3)
    ax.set_xticks(x)
    ax.set_xlabel(result.name)
    ax.set_ylabel("share of counts")
    ax.set_ylim(0, max(1e-3, np.nanmax(np.r_[observed, high, textbook, expected])) * 1.4)  # headroom for the legend
    ax.legend(fontsize=8, loc="upper right", frameon=False)
    pvalue = "n/a" if not np.isfinite(result.pvalue) else f"{result.pvalue:.3g}"
    note = f"n = {result.n:,}; chi-square {result.statistic:.1f}, p = {pvalue}"
    if simulated:
        note += f" (textbook p = {result.textbook_pvalue:.3g})"
    # Titles come from outside (region names): plain text, never parsed as mathtext.
    ax.set_title(f"{title}\n{note}" if title else note, fontsize=9, usetex=False, parse_math=False)
    return fig

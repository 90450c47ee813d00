"""Figures: one function per figure, each taking a result object and returning a matplotlib Figure.

Figures are built with ``matplotlib.figure.Figure`` (no pyplot state), so they are safe in worker
processes and display in notebooks through the inline backend. Titles that carry outside strings
(region names) are drawn as plain text, never parsed as mathtext.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from .digits import DigitTest
from .turnout import Fingerprint


# ------------------------------------------------------------------------------------ turnout
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

# ------------------------------------------------------------------------------------ digits
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

def digit_panel(table, *, region: str | None = None, title: str = "") -> Figure:
    """Every digit test of one region in one figure: a row per test, a column per counted column.

    ``table`` is a ``DigitTable``; ``region`` defaults to its only (or first) region. Tests that
    could not run (too few stations) are left as an empty panel saying why.
    """
    results = table.results
    region = str(results["region"].iloc[0]) if region is None else str(region)
    rows = results[results["region"] == region]
    tests = list(dict.fromkeys(rows["test"]))
    columns = list(dict.fromkeys(rows["column"]))
    fig = Figure(figsize=(4.2 * max(1, len(columns)), 3.4 * max(1, len(tests))), layout="constrained")
    axes = fig.subplots(max(1, len(tests)), max(1, len(columns)), squeeze=False)
    for i, test in enumerate(tests):
        for j, column in enumerate(columns):
            ax = axes[i][j]
            key = (region, str(column), str(test))
            if key in table.details:
                digit_bars(table.details[key], ax=ax, title=f"{column}: {test}")
            else:
                note = rows[(rows["test"] == test) & (rows["column"] == column)]["note"]
                ax.text(0.5, 0.5, note.iloc[0] if len(note) else "not tested", ha="center", va="center",
                        wrap=True, fontsize=8, parse_math=False)
                ax.set_title(f"{column}: {test}", fontsize=9, parse_math=False)
                ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=11, usetex=False, parse_math=False)
    return fig

# ------------------------------------------------------------------------------------ consistency

_BROKEN, _NEUTRAL, _FEWER = "#c44e52", "#8c8c8c", "#4c72b0"


def _plain(texts) -> None:
    for text in texts:
        text.set_parse_math(False)


def rule_failures(result) -> Figure:
    """Share of TPS breaking each form rule, among the TPS where the rule could be checked.

    Labels carry the number of TPS checked (n) and the bar ends the number that failed; rules not
    checked (columns missing) are named under the axis.
    """
    coverage = result.coverage
    fig = Figure(figsize=(7.5, 0.32 * max(4, len(coverage)) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    shares = 100 * coverage["share_failed"].fillna(0).to_numpy(dtype=float)
    labels = [f"{rule}  (n = {int(n):,})" for rule, n in zip(coverage.index, coverage["evaluable"])]
    y = np.arange(len(coverage))
    ax.barh(y, shares, color=_BROKEN)
    ax.set_yticks(y, labels, fontsize=8)
    _plain(ax.get_yticklabels())
    ax.invert_yaxis()
    for yi, (share, failed, n) in enumerate(zip(shares, coverage["failed"], coverage["evaluable"])):
        ax.text(share, yi, f" {int(failed):,}" if n else " not evaluable", va="center", fontsize=7,
                parse_math=False)
    ax.set_xlim(0, max(1.0, 1.15 * float(shares.max(initial=0))))
    ax.set_xlabel("TPS breaking the rule, % of the TPS where it could be checked")
    ax.set_title(f"Form checks on {result.n:,} TPS", fontsize=10, parse_math=False)
    if result.not_checked:
        fig.text(0.01, 0.005, "not checked (columns missing): " + ", ".join(result.not_checked),
                 fontsize=7, wrap=True, parse_math=False)
    return fig


def region_failure_rates(table: pd.DataFrame, *, labels: bool | None = None) -> Figure:
    """Each region's share of TPS with a broken form (95 % Wilson interval) and the overall rate.

    ``table`` is the output of ``region_inconsistency_test``. Red: more failures than elsewhere at
    q < alpha; blue: fewer; grey: not flagged. Region codes are written under the bars when there
    are at most 80 regions (``labels`` forces either way).
    """
    from statsmodels.stats.proportion import proportion_confint

    table = table.sort_values("region")
    fig = Figure(figsize=(min(14.0, max(6.0, 0.22 * len(table) + 2)), 3.9), layout="constrained")
    ax = fig.add_subplot()
    x = np.arange(len(table))
    evaluable = table["evaluable"].to_numpy(dtype=float)
    failed = table["failed"].to_numpy(dtype=float)
    rate = 100 * table["rate"].to_numpy(dtype=float)
    flagged = table["flagged"].to_numpy(dtype=bool)
    direction = table["direction"].to_numpy(dtype=str) if "direction" in table else np.full(len(table), "more")
    colours = np.where(flagged & (direction == "fewer"), _FEWER, np.where(flagged, _BROKEN, _NEUTRAL))
    ax.bar(x, np.nan_to_num(rate), color=colours)
    checked = evaluable > 0
    if checked.any():
        low, high = proportion_confint(failed[checked], evaluable[checked], alpha=0.05, method="wilson")
        ax.vlines(x[checked], 100 * low, 100 * high, color="0.25", linewidth=0.8)
    overall = failed.sum() / evaluable.sum() if evaluable.sum() else np.nan
    if np.isfinite(overall):
        ax.axhline(100 * overall, color="0.2", linestyle="--", linewidth=1,
                   label=f"all regions {100 * overall:.2f} %")
        ax.legend(fontsize=8, frameon=False)
    show = len(table) <= 80 if labels is None else labels
    if show:
        ax.set_xticks(x, table["region"].astype(str), rotation=90, fontsize=7)
        _plain(ax.get_xticklabels())
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(table):,} regions, sorted by code")
    ax.set_ylabel("TPS with a broken form, %")
    rule = table.attrs.get("rule", table["rule"].iloc[0] if "rule" in table and len(table) else "")
    alpha = table.attrs.get("alpha", 0.05)
    ax.set_title(f"{rule}: red = more failures than elsewhere, blue = fewer (q < {alpha:g}); "
                 "bars: 95 % interval", fontsize=9, parse_math=False)
    return fig


# ------------------------------------------------------------------------------------ dynamics
def increment_shares(test, contestant: str, *, region: str = "0", ax=None, title: str = "") -> Figure:
    """A contestant's share of the votes added in each tested interval, against the null's expectation.

    ``test`` is a ``dynamics.CompositionTest`` run with ``focus`` including ``contestant``. Dots:
    the share of each increment (area ~ votes added); line: the expected share (the region's
    earlier increments); grey band: expected +- 1.96 sd under the overdispersed null; red:
    intervals that depart from the null at q < alpha (whichever contestant drives them).
    """
    if ax is None:
        fig = Figure(figsize=(9, 3.8), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    t = test.table
    if f"share_{contestant}" not in t:
        raise KeyError(f"run composition_test with focus=({contestant!r},) to plot its shares")
    t = t[t["region"] == str(region)].sort_values("end")
    n = t["n"].to_numpy(dtype=float)
    p = t[f"expected_{contestant}"].to_numpy(dtype=float)
    sd = np.sqrt(t["phi"].to_numpy(dtype=float) * p * (1 - p) / n)
    x = t["end"].dt.tz_localize(None) if t["end"].dt.tz is not None else t["end"]
    ax.fill_between(x, 100 * np.clip(p - 1.96 * sd, 0, 1), 100 * np.clip(p + 1.96 * sd, 0, 1),
                    color="0.85", step="mid", label="null: expected +- 1.96 sd")
    ax.step(x, 100 * p, where="mid", color="0.3", linewidth=1, label="expected share (" + ("totals so far" if test.parameters.get("baseline") == "cumulative"
                                             else "earlier increments") + ")")
    flagged = t["flagged"].to_numpy(dtype=bool)
    size = 8 + 60 * np.sqrt(n / max(n.max(), 1.0))
    share = 100 * t[f"share_{contestant}"].to_numpy(dtype=float)
    ax.scatter(x[~flagged], share[~flagged], s=size[~flagged], color=_NEUTRAL, label="increment")
    ax.scatter(x[flagged], share[flagged], s=size[flagged], color=_BROKEN,
               label=f"departs from the null (q < {test.parameters['alpha']:g})")
    ax.set_ylabel("share of votes added, %")
    ax.set_xlabel("end of interval (WIB)")
    _plain(ax.legend(fontsize=8, frameon=False, loc="upper left").get_texts())
    name = test.labels.get(contestant, contestant)
    head = f"{name}: share of each increment, region {region}"
    ax.set_title(f"{title}\n{head}" if title else head, fontsize=9, parse_math=False)
    fig.autofmt_xdate()
    return fig


def series_decreases(decreases, *, region: str = "0", ax=None, title: str = "") -> Figure:
    """Votes removed from each contestant's total, per interval (a published total went down).

    ``decreases`` is a ``dynamics.Decreases``. One stem per fall, coloured by contestant, at the
    end of the interval; the y axis is symmetric-log so falls of 10 and 50,000 votes both show.
    """
    if ax is None:
        fig = Figure(figsize=(9, 3.5), layout="constrained")
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    t = decreases.table
    t = t[t["region"] == str(region)]
    colours = ["#8CB9BD", "#C7B7A3", "#B67352", "#4C72B0", "#DD8452", "#55A868"]
    for i, (c, part) in enumerate(t.groupby("contestant", sort=True)):
        x = part["end"].dt.tz_localize(None)
        ax.vlines(x, 0, part["change"], color=colours[i % len(colours)], linewidth=1.2)
        ax.scatter(x, part["change"], s=10, color=colours[i % len(colours)],
                   label=f"{decreases.labels.get(c, c)}: {len(part):,} falls, {-int(part['change'].sum()):,} votes")
    ax.set_yscale("symlog", linthresh=10)
    ax.axhline(0, color="0.3", linewidth=0.8)
    ax.set_ylabel("change of the total (votes)")
    ax.set_xlabel("end of interval (WIB)")
    if len(t):
        _plain(ax.legend(fontsize=8, frameon=False, loc="lower left").get_texts())
    head = f"falls of published totals, region {region}"
    ax.set_title(f"{title}\n{head}" if title else head, fontsize=9, parse_math=False)
    fig.autofmt_xdate()
    return fig


# ------------------------------------------------------------------------------------ TSM and sources
def tsm_gains(result, *, top: int = 15, title: str = "") -> Figure:
    """Net votes each candidate gains from misreadings (reported minus repaired), per region, with
    the bootstrap interval widened by unrepaired forms (``tsm.Massive``): the regions with the
    largest absolute gain first. A bar far from zero for one candidate only is what "systematic"
    would look like; the systematic test says whether it is beyond random OCR errors."""
    table = result.table if hasattr(result, "table") else result.massive.table
    candidates = [c[len("gain_"):] for c in table.columns if c.startswith("gain_") and c.count("_") == 1]
    regional = table[table["region"] != "all"].copy()
    regional["size"] = regional[[f"gain_{c}" for c in candidates]].abs().max(axis=1)
    regional = regional.sort_values("size", ascending=False).head(top).iloc[::-1]
    fig = Figure(figsize=(7, 0.35 * max(len(regional), 4) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    colours = ["#8CB9BD", "#C7B7A3", "#B67352", "#4C72B0"]
    y = np.arange(len(regional))
    height = 0.8 / max(len(candidates), 1)
    for i, c in enumerate(candidates):
        pos = y + (i - (len(candidates) - 1) / 2) * height
        gain = regional[f"gain_{c}"].to_numpy(dtype=float)
        low, high = regional[f"gain_{c}_low"].to_numpy(dtype=float), regional[f"gain_{c}_high"].to_numpy(dtype=float)
        ax.barh(pos, gain, height=height, color=colours[i % len(colours)], label=c)
        ax.errorbar(gain, pos, xerr=[np.maximum(gain - low, 0), np.maximum(high - gain, 0)], fmt="none",
                    ecolor="0.25", elinewidth=0.8, capsize=2)
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(y, [f"{r} {n}"[:32] for r, n in zip(regional["region"], regional["name"])], fontsize=8)
    _plain(ax.get_yticklabels())
    ax.set_xlabel("net votes gained from misreadings (reported - repaired)")
    _plain(ax.legend(fontsize=8, frameon=False, title="candidate").get_texts())
    head = "misreadings: net votes per candidate, 95 % interval"
    ax.set_title(f"{title}\n{head}" if title else head, fontsize=9, parse_math=False)
    return fig


def source_differences(comparison, *, title: str = "") -> Figure:
    """Two sources compared (``compare.SourceComparison``): per candidate, the difference a - b of
    each region against b's value; points on the zero line agree. Points mostly on one side of
    the line mean one source is systematically higher for that candidate."""
    candidates = list(comparison.parameters.get("candidates", ()))
    a, b = comparison.names
    fig = Figure(figsize=(3.2 * max(len(candidates), 1), 3.2), layout="constrained")
    axes = fig.subplots(1, max(len(candidates), 1), squeeze=False)[0]
    unit = "votes" if comparison.measure == "votes" else "share, %"
    regions = comparison.regions
    for ax, c in zip(axes, candidates):
        x, d = regions[f"{b}_{c}"].to_numpy(dtype=float), regions[f"diff_{c}"].to_numpy(dtype=float)
        ax.scatter(x, d, s=10, alpha=0.7, color="#4C72B0")
        ax.axhline(0, color="0.3", linewidth=0.8)
        ax.set_xlabel(f"{b}: {c} ({unit})")
        ax.set_title(f"{c}: higher in {a} {int((d > 0).sum())}, in {b} {int((d < 0).sum())}, equal {int((d == 0).sum())}",
                     fontsize=8, parse_math=False)
    axes[0].set_ylabel(f"{a} - {b} ({unit})")
    head = f"{a} against {b} by {comparison.on}: {comparison.counts['compared']:,} regions"
    _plain([fig.suptitle(f"{title}\n{head}" if title else head, fontsize=9)])
    return fig


# ------------------------------------------------------------------------------------ misreadings
def misreading_outcomes(result, *, title: str = "") -> Figure:
    """What became of every form that breaks a rule (``consistency.Misreadings``): excluded
    (re-vote, blank section), explained by one OCR edit (unique, or the likeliest of several, by
    confidence), or not explained; and, per box, how many explained misreadings touched it."""
    c = result.counts
    t = result.table
    called = t[t["explained"]]
    outcomes = {
        "re-vote / recount (psu)": c.get("excluded_psu", 0),
        "half-published (section at 0)": c.get("excluded_blank", 0),
        "one edit, unique repair": int(called["unique"].sum()),
        "one edit, several; confidence >= 0.9": int((~called["unique"] & (called["confidence"] >= 0.9)).sum()),
        "one edit, several; confidence < 0.9": int((~called["unique"] & (called["confidence"] < 0.9)).sum()),
        "no one-edit repair": c.get("unexplained", 0),
    }
    fig = Figure(figsize=(9.5, 3.4), layout="constrained")
    left, right = fig.subplots(1, 2, width_ratios=[1.1, 1])
    labels = list(outcomes)[::-1]
    colours = dict(zip(outcomes, ["0.55", "0.75", "#2a7a3b", "#8fbf6f", "#f2c14e", "#c44e52"]))
    left.barh(labels, [outcomes[k] for k in labels], color=[colours[k] for k in labels])
    for y, k in enumerate(labels):
        left.annotate(f"{outcomes[k]:,}", (outcomes[k], y), xytext=(3, 0), textcoords="offset points",
                      va="center", fontsize=8)
    left.set_xlabel("TPS")
    left.set_title(f"{c.get('inconsistent', 0):,} of {c.get('tps', 0):,} TPS break a rule", fontsize=9)
    left.margins(x=0.2)
    if len(called):
        counts = called.groupby(["field", "edit"]).size().unstack(fill_value=0)
        order = counts.sum(axis=1).sort_values().index
        counts = counts.loc[order]
        bottom = np.zeros(len(counts))
        colours = {"digit substituted": "#4c72b0", "digit inserted": "#dd8452", "digit dropped": "#55a868",
                   "digits swapped": "#c44e52"}
        for edit in counts.columns:
            right.barh(counts.index.astype(str), counts[edit], left=bottom, color=colours.get(edit, "0.5"), label=edit)
            bottom += counts[edit].to_numpy()
        _plain(right.get_yticklabels())
        _plain(right.legend(fontsize=7, frameon=False).get_texts())
    right.set_xlabel("explained misreadings")
    right.set_title("which box, which edit", fontsize=9)
    if title:
        _plain([fig.suptitle(title, fontsize=9)])
    return fig


def misreading_votes(result, *, min_confidence: float = 0.0, title: str = "") -> Figure:
    """Per candidate, the votes explained misreadings added (reported above the repair) and
    removed (reported below it), and their net; TPS counts in the labels. Equal bars on both sides
    are what symmetric OCR noise looks like; the TSM synthesis tests whether the net is beyond it."""
    table = result.by_candidate(min_confidence=min_confidence)
    fig = Figure(figsize=(6.5, 0.6 * max(len(table), 2) + 1.8), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(table))
    ax.barh(y, table["votes_added"], color="#c44e52", label="added (reading above the repair)")
    ax.barh(y, -table["votes_removed"], color="#4c72b0", label="removed (reading below the repair)")
    ax.scatter(table["net_votes"], y, color="black", zorder=3, s=18, label="net")
    ax.axvline(0, color="0.3", linewidth=0.8)
    ax.set_yticks(y, [f"{c}: +{a} / -{d} TPS" for c, a, d in zip(table.index, table["inflated"], table["deflated"])],
                  fontsize=8)
    _plain(ax.get_yticklabels())
    ax.set_xlabel("votes (reported - repaired)")
    _plain(fig.legend(fontsize=7, frameon=False, loc="outside lower center", ncols=3).get_texts())
    head = "votes moved by misreadings explained by one edit" + (
        f" (confidence >= {min_confidence:g})" if min_confidence > 0 else "")
    ax.set_title(f"{title}\n{head}" if title else head, fontsize=9, parse_math=False)
    return fig


def misreading_scatter(result, *, title: str = "") -> Figure:
    """Reported against repaired number for every explained misreading (log scales; the diagonal
    is no change); colour = confidence. Points far above the diagonal are "78 became 780"."""
    t = result.table[result.table["explained"]]
    fig = Figure(figsize=(4.8, 4.2), layout="constrained")
    ax = fig.add_subplot()
    if len(t):
        x = t["proposed"].astype("float64").to_numpy() + 1
        y = t["reported"].astype("float64").to_numpy() + 1
        points = ax.scatter(x, y, c=t["confidence"].to_numpy(dtype=float), cmap="viridis", vmin=0, vmax=1, s=9, alpha=0.7)
        fig.colorbar(points, ax=ax, label="confidence")
        top = max(float(np.nanmax(x)), float(np.nanmax(y))) * 1.5
        ax.plot([1, top], [1, top], color="0.4", linewidth=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("repaired number + 1")
    ax.set_ylabel("reported number + 1")
    head = f"{len(t):,} misreadings explained by one edit"
    ax.set_title(f"{title}\n{head}" if title else head, fontsize=9, parse_math=False)
    return fig


# ------------------------------------------------------------------------------------ Klimek model, integer percentages
def klimek_fit_plot(fit, *, title: str = "") -> Figure:
    """Observed, fitted and fair-model fingerprints side by side, on one log colour scale.

    Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469, Fig. 3. ``fit`` is a ``KlimekFit``:
    the middle panel is simulated at the fitted (f_i, f_e, alpha), the right one with f_i = f_e = 0.
    """
    fig = Figure(figsize=(13, 4.2), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True, sharey=True)
    panels = [("observed", fit.observed),
              (f"fitted: f_i = {fit.f_i:.2f} ± {fit.f_i_sd:.3f}, f_e = {fit.f_e:.3f} ± {fit.f_e_sd:.3f}, "
               f"alpha = {fit.alpha:.1f}", fit.fitted),
              ("fair model (f_i = f_e = 0)", fit.fair_model)]
    top = max(1.0, float(max(np.max(h) for _, h in panels)))
    edges = 100 * np.asarray(fit.edges)
    mesh = None
    for ax, (label, counts) in zip(axes, panels):
        masked = np.ma.masked_equal(np.asarray(counts, dtype=float).T, 0)
        if masked.count():
            mesh = ax.pcolormesh(edges, edges, masked, norm=LogNorm(vmin=1, vmax=top), cmap="viridis")
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
        ax.set_xlabel("turnout (%)")
        ax.set_title(label, fontsize=9, parse_math=False)
    axes[0].set_ylabel("winner's share (%)")
    if mesh is not None:
        fig.colorbar(mesh, ax=list(axes), label="units per 1-pp cell", shrink=0.9)
    head = f"Klimek model, {fit.n:,} units (loss fitted {fit.loss_fitted:,.0f}, fair {fit.loss_fair:,.0f})"
    fig.suptitle(f"{title}\n{head}" if title else head, fontsize=10, parse_math=False)
    return fig


def integer_percent_plot(result, *, title: str = "") -> Figure:
    """Observed count of whole-number percentages against its null, per kind (turnout or leader, turnout, leader).

    Kobak, Shpilkin & Pshenichnikov (2016), Ann. Appl. Stat. 10:54, Fig. 4. ``result`` is a
    ``KobakIntegerTest``: for each kind, the Monte Carlo null counts (histogram), the exact null
    mean with its +-2 sd band and the 99.9th percentile, and the observed count (red line).
    """
    kinds = [("either", "turnout or leader"), ("turnout", "turnout"), ("share", "leader's share")]
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    axes = fig.subplots(1, 3)
    table = result.table.set_index("kind")
    for ax, (kind, label) in zip(axes, kinds):
        row = table.loc[kind]
        draws = np.asarray(result.draws[kind], dtype=float)
        mean, sd = float(row["null_mean"]), float(row["null_sd"])
        ax.axvspan(mean - 2 * sd, mean + 2 * sd, color="#dd8452", alpha=0.25, label="null ± 2 sd (exact)")
        if len(draws) > 1:
            ax.hist(draws, bins=min(40, max(5, len(draws) // 10)), color="0.6", label=f"null, {len(draws)} draws")
        ax.axvline(mean, color="#dd8452", linewidth=1)
        ax.axvline(float(row["null_q999"]), color="#dd8452", linestyle="--", linewidth=1, label="null 99.9 %")
        ax.axvline(float(row["observed"]), color="#c44e52", linewidth=2, label="observed")
        ax.set_xlabel("units with a whole-number percentage")
        ax.set_title(f"{label}: excess {row['excess']:+,.1f} (sd {sd:,.1f})", fontsize=9, parse_math=False)
    axes[0].set_ylabel("null draws")
    _plain(axes[0].legend(fontsize=7, frameon=False, loc="upper left").get_texts())
    head = f"Integer percentages, {result.n:,} units"
    fig.suptitle(f"{title}\n{head}" if title else head, fontsize=10, parse_math=False)
    return fig


def spikes_envelope(result, *, title: str = "", zoom: tuple[float, float] | None = None) -> Figure:
    """Observed kernel density of vote shares against the maximum of the resampled densities.

    Rozenas (2017), Political Analysis 25:41, Fig. 3 (and the R package's ``plot.out``):
    ``result`` is a ``SpikesResult``. Grey vertical lines mark the grid points where the observed
    density rises above the envelope, thicker where the excess share of stations is larger;
    ``zoom`` = (low, high) adds a second panel on that range of shares.
    """
    panels = 2 if zoom else 1
    fig = Figure(figsize=(9, 3.6 * panels), layout="constrained")
    axes = np.atleast_1d(fig.subplots(panels, 1))
    flagged = np.flatnonzero(result.flagged & (result.excess > 0))
    widest = float(result.excess[flagged].max()) if len(flagged) else 1.0
    for ax, (low, high) in zip(axes, [(0.0, 1.0), zoom] if zoom else [(0.0, 1.0)]):
        for i in flagged:
            if low <= result.x[i] <= high:
                ax.axvline(result.x[i], color="0.85", linewidth=0.5 + 4 * result.excess[i] / widest, zorder=0)
        ax.plot(result.x, result.envelope, color="black", linewidth=1.2,
                label=f"maximum of {result.resamples} resampled densities")
        ax.plot(result.x, result.observed, color="#c44e52", linewidth=0.8, label="observed")
        ax.set_xlim(low, high)
        ax.set_xlabel("vote share")
        ax.set_ylabel("density (bandwidth %g)" % result.bw)
    _plain(axes[0].legend(fontsize=8, frameon=False, loc="upper left").get_texts())
    head = (f"stations in spikes above the envelope: {result.fraud_percent:.3f} % ± {result.se:.3f} (resampling) "
            f"(95 % CI {result.ci_low:.3f}-{result.ci_high:.3f}), p = {result.pvalue:.3g} "
            f"(smallest possible {result.pvalue_min:.2g}), n = {result.n:,}")
    axes[0].set_title(f"{title}\n{head}" if title else head, fontsize=9, parse_math=False)
    return fig


def outlier_map(result, variable: str = "turnout", *, top: int = 10, title: str = "") -> Figure:
    """Each TPS's value against its neighbours' median for one variable, the top outliers labelled.

    ``result`` is a ``LocalOutliers``; points on the diagonal agree with their neighbours, the
    colour is the beta-binomial -log10 p. Labels are unit ids drawn as plain text.
    """
    table = result.table
    x, y = table[f"{variable}_neighbours"].to_numpy(float), table[f"{variable}_value"].to_numpy(float)
    p = table[f"{variable}_p"].to_numpy(float)
    ok = np.isfinite(x) & np.isfinite(y) & np.isfinite(p)
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot()
    score = -np.log10(np.clip(p[ok], 1e-300, 1))
    points = ax.scatter(100 * x[ok], 100 * y[ok], c=np.minimum(score, 20), s=3, cmap="viridis", vmin=0, vmax=20)
    fig.colorbar(points, ax=ax, label="-log10 p (beta-binomial, capped at 20)")
    ax.plot([0, 100], [0, 100], color="0.5", linewidth=0.8)
    order = np.argsort(p[ok])[:top]
    ids = table["unit_id"].to_numpy()[ok]
    for i in order:
        ax.annotate(str(ids[i]), (100 * x[ok][i], 100 * y[ok][i]), fontsize=6, parse_math=False)
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel(f"neighbours' median {variable} (%)")
    ax.set_ylabel(f"TPS {variable} (%)")
    ax.set_title(title or f"Local outliers: {variable}", fontsize=9, parse_math=False)
    return fig


# ------------------------------------------------------------------------------------ party ballots
def party_line_failures(forms, *, title: str = "") -> Figure:
    """Share of checkable party lines (total = party-only + candidates) that do not add up, per party
    (``legislative.PartyForms``), with the number checkable beside each bar."""
    table = forms.by_party[forms.by_party["evaluable"] > 0]
    fig = Figure(figsize=(6.5, 0.3 * max(len(table), 4) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(table))
    ax.barh(y, 100 * table["share_failed"].to_numpy(dtype=float), color="#b2182b")
    ax.set_yticks(y, [str(p) for p in table.index])
    _plain(ax.get_yticklabels())
    for yi, (share, n) in enumerate(zip(table["share_failed"], table["evaluable"])):
        ax.annotate(f"{n:,} checkable", (100 * float(share), yi), xytext=(4, 0), textcoords="offset points", va="center", fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("party lines that do not add up (%)")
    ax.set_ylabel("party (ballot number)")
    ax.set_title(title or "Party lines: total = party-only votes + candidates' votes", loc="left", fontsize=10)
    _plain([ax.title])
    return fig


# ------------------------------------------------------------------------------------ findings
def coverage_shares(result, *, title: str = "") -> Figure:
    """Per province, the share of TPS rows that carry every candidate's number (``findings.Coverage``),
    with the share that also carry the administration block; noken provinces hatched."""
    table = result.table.sort_values("share_votes")
    fig = Figure(figsize=(7, 0.24 * max(len(table), 4) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    y = np.arange(len(table))
    hatch = ["//" if n else "" for n in table["noken"]]
    ax.barh(y, 100 * table["share_votes"].to_numpy(dtype=float), color="#4C72B0", label="with votes", hatch=None)
    for i, h in enumerate(hatch):
        if h:
            ax.barh(y[i], 100 * float(table["share_votes"].iloc[i]), color="none", edgecolor="0.2", hatch=h)
    ax.scatter(100 * table["share_administration"].to_numpy(dtype=float), y, s=12, color="#B67352", zorder=3,
               label="with the administration block")
    labels = [f"{c} {n}"[:30] for c, n in zip(table["province"], table["name"])]
    ax.set_yticks(y, labels, fontsize=7)
    _plain(ax.get_yticklabels())
    ax.set_xlim(0, 100)
    ax.set_xlabel("TPS of the province in the table (%)")
    _plain(ax.legend(fontsize=8, frameon=False, loc="lower right").get_texts())
    head = "share of TPS with numbers, per province (hatched: noken provinces)"
    ax.set_title(f"{title}\n{head}" if title else head, fontsize=9, parse_math=False)
    return fig

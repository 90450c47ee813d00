"""Mebane's Election Forensics Toolkit statistics per unit set, with bootstrap intervals and flags.

Reference: Kalinin & Mebane, R package EFToolkit, ``BasicElectionForensics`` (Mebane 2006, 2007 for
the digit statistics; Sobyanin & Sukhovolsky 1993 for the slope statistic; Hartigan & Hartigan
1985 for the dip test). The definitions follow methods.md, section 1, and the package:

- a unit has a *count* and a *percentage*: for the "Turnout" row the count is the ballots (here
  ``voters``) and the percentage ballots / registered; for a candidate row the count is the
  candidate's votes and the percentage votes / ballots; percentages are capped at 1 for P05s, Skew
  and Kurt, and used uncapped (missing dropped) for DipT, Sobyanin and Correlation, as in the package;
- ``_2BL`` mean second digit of counts with at least two digits (null 4.187), ``LastC`` mean last
  digit of all counts (4.5), ``C05s`` share of counts ending in 0 or 5 (0.2), ``P05s`` share of
  round(100 x percentage), half to even, ending in 0 or 5 (0.2), ``Skew`` m3 / m2^1.5 (0),
  ``Kurt`` m4 / m2^2 (3), ``DipT`` p-value of Hartigan's dip test (``diptest``, the interpolated
  table as in R's ``dip.test``; flag p < 0.05), ``Sobyanin`` slope of vote share on turnout minus
  the mean vote share (flag |.| > 1.645), ``Correlation`` corr(vote share, turnout) (flag |.| > 0.4),
  ``Obs`` the number of units;
- uncertainty: nonparametric bootstrap over units, basic 95 % intervals (2 t0 - q97.5, 2 t0 - q2.5)
  for _2BL, LastC, C05s, P05s, Skew, Kurt; a statistic is flagged when its interval excludes the
  null value.

At polling-station level the 2BL null of 4.187 is itself off for bounded counts (see
``analysis.digits``); the toolkit's flags are reported as the toolkit defines them, and the
reports say so.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from ._common import as_float, region_seed
from .cache import cached
from .digits import extract_digit
from .display import frame_html

__all__ = ["EFT_COLUMNS", "EFT_NULLS", "EftStatistics", "EftTable", "eft_statistics", "eft_table"]

#: The toolkit's columns, in its order.
EFT_COLUMNS = ("_2BL", "LastC", "C05s", "P05s", "Skew", "Kurt", "DipT", "Sobyanin", "Correlation", "Obs")
#: Null values of the bootstrapped statistics (an interval excluding one is a flag).
EFT_NULLS: dict[str, float] = {"_2BL": 4.187, "LastC": 4.5, "C05s": 0.2, "P05s": 0.2, "Skew": 0.0, "Kurt": 3.0}
BOOTSTRAPPED = tuple(EFT_NULLS)
DIP_ALPHA, SOBYANIN_LIMIT, CORRELATION_LIMIT = 0.05, 1.645, 0.4
# Bootstrap resamples are evaluated in blocks, so memory stays at block x units floats.
_BLOCK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class _Units:
    """Per-unit ingredients of the bootstrapped statistics (NaN where a unit does not enter one)."""

    second: np.ndarray    # second digit of the count, NaN for counts < 10 or missing
    last: np.ndarray      # last digit of the count, NaN if missing
    c05: np.ndarray       # 1.0 if the count ends in 0 or 5
    p05: np.ndarray       # 1.0 if round(100 pct) ends in 0 or 5, NaN if pct missing
    pct: np.ndarray       # percentage capped at 1, NaN if missing


def _units(counts: np.ndarray, pct: np.ndarray) -> _Units:
    ok = np.isfinite(counts) & (counts >= 0) & (counts == np.floor(counts))
    ints = np.where(ok, counts, 0).astype(np.int64)
    second = np.where(ok & (ints >= 10), extract_digit(ints, "second"), np.nan)
    last = np.where(ok, ints % 10, np.nan)
    c05 = np.where(ok, np.isin(ints % 10, (0, 5)), np.nan)
    capped = np.where(np.isfinite(pct) | np.isposinf(pct), np.minimum(pct, 1.0), np.nan)
    rounded = np.round(100 * capped)  # numpy rounds half to even, as R does
    p05 = np.where(np.isnan(capped), np.nan, np.isin(np.nan_to_num(rounded) % 10, (0, 5)))
    return _Units(second=second, last=last, c05=c05, p05=p05, pct=capped)


def _moments(pct: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Population skewness m3 / m2^1.5 and kurtosis m4 / m2^2 along the last axis, NaN ignored."""
    mean = np.nanmean(pct, axis=-1, keepdims=True)
    dev = pct - mean
    m2 = np.nanmean(dev ** 2, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(dev ** 3, axis=-1) / m2 ** 1.5, np.nanmean(dev ** 4, axis=-1) / m2 ** 2


def _point(units: _Units) -> dict[str, np.ndarray]:
    """The bootstrapped statistics of the units as given (``_resampled`` gives them per resample)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all missing gives NaN, on purpose
        skew, kurt = _moments(units.pct)
        return {
            "_2BL": np.nanmean(units.second, axis=-1),
            "LastC": np.nanmean(units.last, axis=-1),
            "C05s": np.nanmean(units.c05, axis=-1),
            "P05s": np.nanmean(units.p05, axis=-1),
            "Skew": skew,
            "Kurt": kurt,
        }


def _resampled(units: _Units, index: np.ndarray) -> dict[str, np.ndarray]:
    """``_point`` for each row of an index matrix, as weighted sums: a resample is the count of each unit in it.

    Every statistic is a ratio of weighted sums (the moments from weighted raw moments of the
    percentages, which lie in [0, 1], so the subtraction loses nothing that matters), so one
    matrix product of the resamples' unit counts with the units' columns replaces a gather and a
    NaN-aware mean per statistic and resample.
    """
    rows, n = index.shape
    weights = np.bincount((index + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n)
    weights = weights.reshape(rows, n).astype(float)
    columns, names = [], ("second", "last", "c05", "p05")
    for name in names:
        values = getattr(units, name)
        ok = np.isfinite(values)
        columns += [np.where(ok, values, 0.0), ok.astype(float)]
    pct = units.pct
    ok = np.isfinite(pct)
    x = np.where(ok, pct, 0.0)
    columns += [ok.astype(float), x, x ** 2, x ** 3, x ** 4]
    sums = weights @ np.column_stack(columns)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {name: sums[:, 2 * i] / sums[:, 2 * i + 1] for i, name in enumerate(names)}
        count = sums[:, 8]
        r1, r2, r3, r4 = (sums[:, 9 + k] / count for k in range(4))
        m2 = r2 - r1 ** 2
        m3 = r3 - 3 * r1 * r2 + 2 * r1 ** 3
        m4 = r4 - 4 * r1 * r3 + 6 * r1 ** 2 * r2 - 3 * r1 ** 4
        skew, kurt = m3 / m2 ** 1.5, m4 / m2 ** 2
    return {"_2BL": means["second"], "LastC": means["last"], "C05s": means["c05"], "P05s": means["p05"],
            "Skew": skew, "Kurt": kurt}


@dataclass(frozen=True, eq=False)
class EftStatistics:
    """The toolkit's statistics for one set of units, with basic bootstrap 95 % intervals and flags."""

    values: Mapping[str, float]
    lower: Mapping[str, float]
    upper: Mapping[str, float]
    flags: Mapping[str, bool]
    n: int
    n_boot: int
    seed: int
    row: str = ""
    nulls: Mapping[str, float] = field(default_factory=lambda: dict(EFT_NULLS))

    def to_frame(self) -> pd.DataFrame:
        """One row with the toolkit's columns (``_2BL`` ... ``Obs``), then ``<stat>_lo``/``<stat>_hi``
        interval bounds and ``<stat>_flag`` for each statistic that has a flag rule."""
        row: dict[str, Any] = {name: self.values.get(name, np.nan) for name in EFT_COLUMNS}
        row["Obs"] = self.n
        for name in BOOTSTRAPPED:
            row[f"{name}_lo"] = self.lower.get(name, np.nan)
            row[f"{name}_hi"] = self.upper.get(name, np.nan)
        for name, flag in self.flags.items():
            row[f"{name}_flag"] = bool(flag)
        return pd.DataFrame([row])

    def _repr_html_(self) -> str:
        title = (f"Election Forensics Toolkit statistics{': ' + self.row if self.row else ''}; "
                 f"{self.n:,} units; basic bootstrap 95 % intervals from {self.n_boot} resamples, seed {self.seed}")
        return (f"<p><b>{html.escape(title)}</b></p>\n"
                + frame_html(self.to_frame()))


def eft_statistics(counts, totals, *, registered=None, n_boot: int = 1000, seed: int = 0,
                   row: str = "") -> EftStatistics:
    """Mebane's toolkit statistics for one set of units (Kalinin & Mebane, EFToolkit ``BasicElectionForensics``).

    ``counts`` and ``totals`` give each unit's count and percentage = counts / totals: for the
    toolkit's "Turnout" row pass ballots and registered voters; for a candidate row pass the
    candidate's votes and the ballots, and ``registered`` to get ``Sobyanin`` and ``Correlation``
    (vote share against turnout = ballots / registered). ``n_boot`` resamples of units (with
    ``seed``) give basic 95 % intervals; ``n_boot=0`` skips the bootstrap.
    """
    counts = as_float(counts, "counts")
    totals = as_float(totals, "totals")
    if len(counts) != len(totals):
        raise ValueError(f"counts and totals differ in length: {len(counts)} and {len(totals)}")
    n_boot, seed = int(n_boot), int(seed)
    if n_boot < 0:
        raise ValueError(f"n_boot must be >= 0, got {n_boot}")
    with np.errstate(invalid="ignore", divide="ignore"):
        pct = counts / totals
    units = _units(counts, pct)
    n = len(counts)
    values = {name: float(v) for name, v in _point(units).items()} if n else {name: np.nan for name in BOOTSTRAPPED}
    lower = dict.fromkeys(BOOTSTRAPPED, np.nan)
    upper = dict.fromkeys(BOOTSTRAPPED, np.nan)
    if n and n_boot:
        rng = np.random.default_rng(seed)
        block = max(1, _BLOCK_ELEMENTS // n)
        draws = {name: [] for name in BOOTSTRAPPED}
        for start in range(0, n_boot, block):
            index = rng.integers(0, n, size=(min(block, n_boot - start), n))
            for name, v in _resampled(units, index).items():
                draws[name].append(v)
        for name in BOOTSTRAPPED:
            sample = np.concatenate(draws[name])
            sample = sample[np.isfinite(sample)]
            if len(sample) and np.isfinite(values[name]):
                q_low, q_high = np.quantile(sample, [0.025, 0.975])
                lower[name], upper[name] = 2 * values[name] - q_high, 2 * values[name] - q_low
    # The dip test, slope and correlation use the uncapped percentages with missing ones dropped.
    finite = np.isfinite(pct)
    values["DipT"] = _dip_pvalue(pct[finite])
    if registered is not None:
        registered = as_float(registered, "registered")
        if len(registered) != n:
            raise ValueError(f"registered has length {len(registered)}, counts {n}")
        with np.errstate(invalid="ignore", divide="ignore"):
            turnout = totals / registered
        values["Sobyanin"], values["Correlation"] = _sobyanin_correlation(turnout, pct)
    else:
        values["Sobyanin"] = values["Correlation"] = np.nan
    flags = {name: bool(np.isfinite(lower[name]) and not (lower[name] <= EFT_NULLS[name] <= upper[name]))
             for name in BOOTSTRAPPED}
    flags["DipT"] = bool(np.isfinite(values["DipT"]) and values["DipT"] < DIP_ALPHA)
    if registered is not None:
        flags["Sobyanin"] = bool(np.isfinite(values["Sobyanin"]) and abs(values["Sobyanin"]) > SOBYANIN_LIMIT)
        flags["Correlation"] = bool(np.isfinite(values["Correlation"]) and abs(values["Correlation"]) > CORRELATION_LIMIT)
    return EftStatistics(values=values, lower=lower, upper=upper, flags=flags, n=n, n_boot=n_boot, seed=seed, row=row)


def _dip_pvalue(values: np.ndarray) -> float:
    """Hartigan's dip test p-value from the package's interpolated table (as R's ``dip.test``).

    The table stops at 72,000 units; above that the p-value is read at the table's largest size
    (``diptest`` warns; the warning is kept out of reports, this docstring says it instead).
    """
    import warnings

    import diptest

    if len(values) < 4 or np.ptp(values) == 0:
        return np.nan
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sample size exceeds the maximum limit")
        return float(diptest.diptest(values)[1])


def _sobyanin_correlation(turnout: np.ndarray, share: np.ndarray) -> tuple[float, float]:
    """Least-squares slope of vote share on turnout minus the mean share, and their correlation."""
    ok = np.isfinite(turnout) & np.isfinite(share)
    if ok.sum() < 3 or np.ptp(turnout[ok]) == 0:
        return np.nan, np.nan
    x, y = turnout[ok], share[ok]
    slope = float(np.polyfit(x, y, 1)[0])
    correlation = float(np.corrcoef(x, y)[0, 1]) if np.ptp(y) > 0 else np.nan
    return slope - float(np.mean(y)), correlation


# ------------------------------------------------------------------------------------ election
@dataclass(frozen=True, eq=False)
class EftTable:
    """The toolkit's table: one row per region and row label (Turnout, each candidate, All leaders)."""

    table: pd.DataFrame
    level: str
    n_boot: int
    seed: int

    def flags(self) -> pd.DataFrame:
        """Long table of the statistics flagged by the toolkit's rules (region, row, statistic, value, interval)."""
        records = []
        for _, r in self.table.iterrows():
            for name in EFT_COLUMNS[:-1]:
                flag = r.get(f"{name}_flag", False)
                if not pd.isna(flag) and bool(flag):
                    records.append({"region": r["region"], "region_name": r["region_name"], "row": r["row"],
                                    "statistic": name, "value": r[name], "lower": r.get(f"{name}_lo", np.nan),
                                    "upper": r.get(f"{name}_hi", np.nan), "null": EFT_NULLS.get(name, np.nan)})
        return pd.DataFrame(records, columns=["region", "region_name", "row", "statistic", "value", "lower",
                                              "upper", "null"])

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def display(self, decimals: int = 3) -> pd.DataFrame:
        """The table as the toolkit prints it: values with their intervals as text, flags marked with *."""
        out = self.table[["region", "region_name", "row"]].copy()
        for name in EFT_COLUMNS[:-1]:
            text = self.table[name].map(lambda v: "" if pd.isna(v) else f"{v:.{decimals}f}")
            if f"{name}_lo" in self.table:
                interval = [("" if pd.isna(lo) else f" ({lo:.{decimals}f}, {hi:.{decimals}f})")
                            for lo, hi in zip(self.table[f"{name}_lo"], self.table[f"{name}_hi"])]
                text = text + pd.Series(interval, index=text.index)
            if f"{name}_flag" in self.table:
                text = text + self.table[f"{name}_flag"].map(lambda f: " *" if f is True else "")
            out[name] = text
        out["Obs"] = self.table["Obs"]
        return out

    def _repr_html_(self) -> str:
        title = (f"Election Forensics Toolkit statistics per {self.level} (basic bootstrap 95 % intervals, "
                 f"{self.n_boot} resamples, seed {self.seed}; * = the toolkit's flag rule holds)")
        return f"<p><b>{html.escape(title)}</b></p>\n" + frame_html(self.display())


def eft_table(election, *, level: str | None = None, columns: Sequence[str] | None = None,
              all_leaders: bool = True, n_boot: int = 1000, seed: int = 0, min_units: int = 10) -> EftTable:
    """The toolkit's table for an Election: rows Turnout, each candidate and All leaders, per region.

    Turnout row: count = ``voters`` (the ballots), percentage = voters / registered. Candidate rows:
    count = votes, percentage = votes / voters, with Sobyanin and Correlation against turnout.
    "All leaders": in each region the votes of the candidate with the most votes there.
    ``level=None`` treats the whole election as one region ("all"). Regions with fewer than
    ``min_units`` units are listed with a note and no statistics. Each (region, row) has its own
    seed derived from ``seed``, so a row does not change when other regions are added.
    """
    if level is not None and level not in election.levels:
        raise KeyError(f"{level!r} is not a level of this election ({', '.join(election.levels)})")
    columns = tuple(election.candidates if columns is None else columns)
    unknown = [c for c in columns if c not in election.table.columns]
    if unknown:
        raise KeyError(f"not columns of this election: {', '.join(map(str, unknown))}")
    table = election.table
    registered = election.column("registered")
    voters = election.column("voters")
    votes = {c: election.column(c) for c in columns}
    regions = table[level].astype(str).to_numpy() if level else np.full(len(table), "all")
    name_col = f"{level}_name" if level else None
    names = table[name_col].astype(str).to_numpy() if name_col and name_col in table.columns else None
    records = []
    for region in sorted(pd.unique(regions)):
        mask = regions == region
        region_name = str(names[mask][0]) if names is not None else ""
        rows: list[tuple[str, np.ndarray, np.ndarray, np.ndarray | None]] = [("Turnout", voters[mask], registered[mask], None)]
        rows += [(c, votes[c][mask], voters[mask], registered[mask]) for c in columns]
        if all_leaders and columns:
            leader = max(columns, key=lambda c: np.nansum(votes[c][mask]))
            rows.append((f"All leaders ({leader})", votes[leader][mask], voters[mask], registered[mask]))
        for label, counts, totals, reg in rows:
            base = {"region": region, "region_name": region_name, "row": label}
            if mask.sum() < min_units:
                records.append({**base, "Obs": int(mask.sum()), "note": f"too few units ({int(mask.sum())} < {min_units})"})
                continue
            result = cached(eft_statistics)(counts, totals, registered=reg, n_boot=n_boot,
                                         seed=region_seed(seed, region, label, wide=True), row=label)
            records.append({**base, **result.to_frame().iloc[0].to_dict(), "note": ""})
    frame = pd.DataFrame.from_records(records)
    ordered = ["region", "region_name", "row", *EFT_COLUMNS]
    rest = [c for c in frame.columns if c not in ordered]
    frame = frame.reindex(columns=ordered + rest)
    for c in frame.columns:
        if c.endswith("_flag"):
            frame[c] = frame[c].astype("boolean")
    return EftTable(table=frame, level=level or "all", n_boot=int(n_boot), seed=int(seed))

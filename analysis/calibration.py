"""How often each digit test flags a clean election, and how often it catches invented numbers.

False-positive rates are measured on clean synthetic elections (``analysis.synth.make_election``
with nothing planted and no OCR noise) and power on the same elections after last digits were
invented on a share of TPS, the way people invent numbers (Beber & Scacco 2012, Political Analysis
20:211: 0 and 5 favoured, a repeated final pair avoided). One trial is one (region, candidate)
test; the rate's Monte Carlo standard error is sqrt(r (1 - r) / trials).
"""

from __future__ import annotations

import dataclasses
import functools
import html
import json
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from .digits import MODEL_NULL_LABEL, digit_tests, group_shares, last_pair_test
from .display import frame_html

#: How a null key of a calibration table reads on a page: the tables keep the key "exact" (the
#: notebooks and ``select_nulls`` use it), a reader sees what it is, a model-based approximation.
NULL_DISPLAY = {"exact": MODEL_NULL_LABEL}

__all__ = ["INVENTED_LAST_DIGIT", "DigitCalibration", "invent_last_digits", "digit_calibration",
           "check_extendable", "extend_calibration", "select_nulls", "save_calibration", "load_calibration",
           "TurnoutCalibration", "inject_incremental", "default_turnout_methods", "turnout_calibration",
           "extend_turnout_calibration", "check_turnout_extendable", "NULL_DISPLAY"]

#: Where measured calibration tables ship with the package (written by ``forensik calibrate``).
CALIBRATION_DIR = Path(__file__).resolve().parent / "data" / "calibration"

#: How people pick a final digit when they make a number up: 0 and 5 twice as often as the others
#: combined would allow (Beber & Scacco 2012, section 2; Mosimann et al. 1995).
INVENTED_LAST_DIGIT = np.array([0.2, 0.075, 0.075, 0.075, 0.075, 0.2, 0.075, 0.075, 0.075, 0.075])


def invent_last_digits(counts, totals, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Replace the last digit of ``fraction`` of the counts with an invented one; returns (counts, rows changed).

    The invented digit follows ``INVENTED_LAST_DIGIT`` with the tens digit excluded (no repeated
    final pair); a count is only changed where the new value stays within its total and >= 10.
    """
    counts = np.asarray(counts, dtype=float).copy()
    totals = np.asarray(totals, dtype=float)
    if not 0 <= fraction <= 1:
        raise ValueError(f"fraction must lie in [0, 1], got {fraction}")
    candidates = np.flatnonzero(np.isfinite(counts) & np.isfinite(totals) & (counts >= 10))
    size = int(round(fraction * len(counts)))
    rows = rng.choice(candidates, size=min(size, len(candidates)), replace=False)
    values = counts[rows].astype(np.int64)
    tens = (values // 10) % 10
    weights = np.tile(INVENTED_LAST_DIGIT, (len(rows), 1))
    weights[np.arange(len(rows)), tens] = 0.0
    cumulative = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    digit = (rng.random((len(rows), 1)) > cumulative).sum(axis=1)
    invented = values - values % 10 + digit
    ok = invented <= totals[rows]
    counts[rows[ok]] = invented[ok]
    return counts, rows[ok]


@dataclass(frozen=True, eq=False)
class DigitCalibration:
    """Rejection rates of each digit test and null on clean and fabricated synthetic elections."""

    table: pd.DataFrame
    alpha: float
    n_elections: int
    level: str
    settings: dict
    #: trials and rejections per election, test, null and condition (None for tables without them)
    elections: pd.DataFrame | None = None

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def false_positive_rates(self) -> pd.DataFrame:
        return self.table[self.table["condition"] == "clean"].reset_index(drop=True)

    def appendix(self) -> pd.DataFrame:
        """One row per test and null: the clean rejection rate with its Monte Carlo SE, then the power per condition."""
        table = self.table.copy()
        table["rate"] = [f"{100 * r:.1f} % ({t:,})" if t else "" for r, t in zip(table["rate"], table["trials"])]
        clean = table["condition"] == "clean"
        between = self.table["mc_se_elections"] if "mc_se_elections" in self.table else pd.Series(np.nan, self.table.index)
        table.loc[clean, "rate"] = [
            f"{100 * r:.1f} % ± {100 * se:.1f}" + (f" (± {100 * b:.1f} between elections)" if np.isfinite(b) else "")
            + f" ({t:,})" for r, se, b, t in zip(self.table.loc[clean, "rate"], self.table.loc[clean, "mc_se"],
                                                 between[clean], self.table.loc[clean, "trials"])]
        wide = table.pivot(index=["test", "null"], columns="condition", values="rate")
        order = list(dict.fromkeys(self.table["condition"]))
        wide = wide[[c for c in order if c in wide.columns]]
        wide = wide.rename(columns={"clean": f"false-positive rate at alpha = {self.alpha:g} (± MC SE, trials)"})
        wide = wide.reset_index()
        wide["null"] = wide["null"].map(lambda key: NULL_DISPLAY.get(key, key))
        return wide

    def _repr_html_(self) -> str:
        title = (f"Digit tests on {self.n_elections} clean synthetic elections and with invented last digits: "
                 f"share of {self.level}-candidate tests with p < {self.alpha:g}")
        runs = self.settings.get("runs") or []
        if len(runs) > 1:  # a table extended by other runs: say which nulls saw which elections
            title += " (" + "; ".join(f"{', '.join(NULL_DISPLAY.get(n, n) for n in run['nulls'])}: elections {run['seed']}-{run['seed'] + run['n_elections'] - 1}"
                                      for run in runs) + ")"
        return f"<p><b>{html.escape(title)}</b></p>\n" + frame_html(self.appendix())


def save_calibration(result: "DigitCalibration | TurnoutCalibration | TSMCalibration", name: str,
                     directory: str | Path = CALIBRATION_DIR) -> Path:
    """Write a calibration table as ``<name>.csv`` with its settings in ``<name>.json`` (atomic renames)."""
    from .election import code_version

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"alpha": result.alpha, "n_elections": result.n_elections, "level": result.level,
            "settings": result.settings, "code_version": code_version(),
            "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    writers = [(".csv", lambda f: result.table.to_csv(f, index=False)),
               (".json", lambda f: json.dump(meta, f, indent=1, default=str))]
    elections = getattr(result, "elections", None)
    if elections is not None:  # per election, so that an extended table keeps its between-election SE
        writers.insert(0, ("_elections.csv", lambda f: elections.to_csv(f, index=False)))
    else:
        (directory / f"{name}_elections.csv").unlink(missing_ok=True)
    for suffix, write in writers:
        temporary = directory / f".{name}{suffix}.tmp"
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            write(handle)
        temporary.replace(directory / f"{name}{suffix}")
    return directory / f"{name}.csv"


def load_calibration(name: str, directory: str | Path = CALIBRATION_DIR
                     ) -> "DigitCalibration | TurnoutCalibration | TSMCalibration":
    """A calibration table written by ``save_calibration``, with its settings.

    ``load_calibration("digits")`` (digit tests), ``"turnout"`` (turnout methods), ``"tsm"`` (the
    TSM systematic test's false-positive rate and power, ``tsm_calibration``), ``"mebane"``
    (Mebane's mixture, ``mebane_methods`` through ``turnout_calibration``). Notebooks read the
    figures they quote from these tables rather than typing them.
    """
    directory = Path(directory)
    path = directory / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no calibration table {path}; make it with `forensik calibrate {name}`")
    meta = json.loads((directory / f"{name}.json").read_text(encoding="utf-8"))
    table = pd.read_csv(path, keep_default_na=False, na_values=[""])
    settings = dict(meta.get("settings", {}), code_version=meta.get("code_version"), written=meta.get("written"))
    per_election = directory / f"{name}_elections.csv"
    if settings.get("kind") == "tsm":
        elections = pd.read_csv(per_election, keep_default_na=False, na_values=[""]) if per_election.is_file() else None
        return TSMCalibration(table=table, alpha=float(meta["alpha"]), n_elections=int(meta["n_elections"]),
                              level=str(meta["level"]), settings=settings, elections=elections)
    if "method" in table.columns:  # a turnout table (turnout_calibration)
        return TurnoutCalibration(table=table, alpha=float(meta["alpha"]), n_elections=int(meta["n_elections"]),
                                  level=str(meta["level"]), settings=settings)
    elections = pd.read_csv(per_election, keep_default_na=False, na_values=[""]) if per_election.is_file() else None
    return DigitCalibration(table=table, alpha=float(meta["alpha"]), n_elections=int(meta["n_elections"]),
                            level=str(meta["level"]), settings=settings, elections=elections)


def _fabricated(election, fraction: float, rng: np.random.Generator):
    """A copy of the election with last digits invented on ``fraction`` of TPS, per candidate."""
    table = election.table.copy()
    valid = election.column("valid")
    for column in election.candidates:
        values, _ = invent_last_digits(election.column(column), valid, fraction, rng)
        table[column] = pd.array(np.where(np.isnan(values), None, values), dtype="Int64")
    return dataclasses.replace(election, table=table)


def _digit_records(index: int, *, seed: int, scale: float, conditions, nulls, level: str,
                   share_level: str | None, alpha: float, provinces_only, n_sim: int) -> list[dict]:
    """One election's trials for ``digit_calibration``: a record per (test, null, condition, column)."""
    from .synth import make_election

    election = make_election(scale=scale, seed=int(seed) + index, plan={}, ocr_rate=0,
                             provinces_only=provinces_only).election
    rng = np.random.default_rng([int(seed), index])
    records = []
    for condition, fraction in conditions:
        tested = election if fraction == 0 else _fabricated(election, fraction, rng)
        for null in nulls:
            table = digit_tests(tested, level=level, null=null, n_sim=n_sim, seed=int(seed) + index,
                                share_level=share_level if null != "textbook" else None).results
            for (test, column), group in table.groupby(["test", "column"]):
                p = group["pvalue"].dropna()
                records.append({"election": int(seed) + index, "test": test, "null": null, "condition": condition,
                                "column": column,
                                "trials": len(p), "rejections": int((p < alpha).sum())})
        regions = tested.table[level].astype(str).to_numpy()
        groups = tested.table[share_level].astype(str).to_numpy() if share_level else regions
        valid = tested.column("valid")
        pair_nulls = [("binomial (textbook)", "binomial")] + [("exact", "exact")] * ("exact" in nulls)
        for column in tested.candidates:
            counts = tested.column(column)
            for region in np.unique(regions):
                mask = regions == region
                for label, pair_null in pair_nulls:
                    extra = {}
                    if pair_null == "exact":
                        extra = {"totals": valid[mask],
                                 "shares": group_shares(counts[mask], valid[mask], groups[mask])}
                    pair = last_pair_test(counts[mask], null=pair_null, **extra)
                    for test, p in (("repeated final pair", pair.repeated_pvalue),
                                    ("adjacent final pair", pair.adjacent_pvalue)):
                        records.append({"election": int(seed) + index, "test": test, "null": label,
                                        "condition": condition, "column": column,
                                        "trials": int(np.isfinite(p)),
                                        "rejections": int(np.isfinite(p) and p < alpha)})
    return records


_KEYS = ["test", "null", "condition"]


def _between_election_se(elections: pd.DataFrame | None, summary: pd.DataFrame) -> np.ndarray:
    """SE of each row's rate with elections as the sampling units (ratio estimator, cluster variance).

    Tests of one election share its draws, so the binomial SE, which treats them as independent,
    can be too small: var(R / T) = E / (E - 1) sum_e (r_e - R / T n_e)^2 / T^2 over the E elections
    (Cochran 1977, Sampling Techniques, 6.9). NaN where a row's trials are not all per election.
    """
    out = np.full(len(summary), np.nan)
    if elections is None or elections.empty:
        return out
    grouped = {key: part for key, part in elections.groupby(_KEYS)}
    for i, row in enumerate(summary.itertuples(index=False)):
        part = grouped.get((row.test, row.null, row.condition))
        if part is None or int(part["trials"].sum()) != int(row.trials) or len(part) < 2:
            continue
        rate = row.rejections / row.trials
        residual = part["rejections"].to_numpy(float) - rate * part["trials"].to_numpy(float)
        out[i] = np.sqrt(len(part) / (len(part) - 1) * np.sum(residual ** 2)) / row.trials
    return out


def _summarise(raw: pd.DataFrame, conditions: Sequence[str], alpha: float,
               elections: pd.DataFrame | None = None) -> pd.DataFrame:
    """Trials and rejections summed per (test, null, condition), with rate, Monte Carlo SEs and the 2-SE check."""
    order = {c: i for i, c in enumerate(conditions)}
    summary = (raw.groupby(_KEYS, sort=False)[["trials", "rejections"]].sum().reset_index())
    summary["rate"] = summary["rejections"] / summary["trials"]
    summary["mc_se"] = np.sqrt(summary["rate"] * (1 - summary["rate"]) / summary["trials"])
    summary["mc_se_elections"] = _between_election_se(elections, summary)
    # Only a clean election has a nominal rate to meet; with invented digits the rate is power.
    summary["within_2se_of_alpha"] = np.where(
        summary["condition"] == "clean",
        (summary["rate"] - alpha).abs() <= 2 * np.sqrt(alpha * (1 - alpha) / summary["trials"]), pd.NA)
    summary["order"] = summary["condition"].map(order)
    return summary.sort_values(["order", "test", "null"]).drop(columns="order").reset_index(drop=True)


def digit_calibration(*, n_elections: int = 20, seed: int = 0, scale: float = 0.02,
                      fractions: Sequence[float] = (0.01, 0.05, 0.2), nulls: Sequence[str] = ("textbook", "exact"),
                      level: str = "province", share_level: str | None = "district", alpha: float = 0.05,
                      provinces_only: Sequence[str] | None = None, n_sim: int = 500, progress: bool = False,
                      jobs: int = 1) -> DigitCalibration:
    """False-positive rate and power of the second-digit, last-digit and final-pair tests at TPS scale.

    Elections ``seed .. seed + n_elections - 1`` are drawn with ``make_election(plan={},
    ocr_rate=0)``; each is tested clean and with last digits invented on each of ``fractions`` of
    TPS (``invent_last_digits``), per ``level`` region and candidate, under each null ("textbook",
    "exact", "simulated"; "exact" is the model-based null, a normal approximation with plug-in
    parameters, also accepted as "model" and stored under the key "exact"). The calibrated nulls take each station's mean share from its
    ``share_level`` area. Pair tests (Beber & Scacco) run against their textbook binomial null
    and, with "exact" among ``nulls``, their exact one. ``jobs`` elections run at once in
    separate processes; every election draws from its own seeded generator, so the table does
    not depend on ``jobs``.

    The table has two Monte Carlo SEs: ``mc_se`` treats every region-candidate test as
    independent, ``mc_se_elections`` takes elections as the units (tests of one election share
    its draws); on the shipped table they agree.
    """
    from tqdm.auto import tqdm

    conditions = [("clean", 0.0)] + [(f"invented last digits on {100 * f:g} % of TPS", float(f)) for f in fractions]
    nulls = tuple(dict.fromkeys("exact" if str(n).lower() == "model" else n for n in nulls))  # one key per null
    one = dict(seed=int(seed), scale=scale, conditions=conditions, nulls=tuple(nulls), level=level,
               share_level=share_level, alpha=alpha, provinces_only=provinces_only, n_sim=int(n_sim))
    indices = range(int(n_elections))
    records: list[dict] = []
    with tqdm(total=len(indices), desc="elections", disable=not progress) as bar:
        if int(jobs) <= 1:
            for index in indices:
                records += _digit_records(index, **one)
                bar.update()
        else:
            records += _map_in_processes(functools.partial(_digit_records, **one), indices, int(jobs), bar)
    raw = pd.DataFrame(records)
    elections = raw.groupby(["election", *_KEYS], sort=False)[["trials", "rejections"]].sum().reset_index()
    summary = _summarise(raw, [c for c, _ in conditions], alpha, elections)
    settings = {"scale": scale, "seed": seed, "fractions": list(fractions), "nulls": list(nulls),
                "share_level": share_level, "n_sim": n_sim,
                "provinces_only": sorted(map(str, provinces_only)) if provinces_only is not None else None,
                "code_revision": _code_revision()}
    return DigitCalibration(table=summary, alpha=alpha, n_elections=int(n_elections), level=level, settings=settings,
                            elections=elections)


def _code_revision() -> str:
    """The git commit of the code that measured a table (or the package version), for its settings."""
    from .report.runner import code_revision

    return code_revision()


def _map_in_processes(function, items, jobs: int, bar, start_method: str | None = None) -> list:
    """``function`` over ``items`` in ``jobs`` processes, results concatenated in order.

    On Ctrl-C (or any error) the queued items are cancelled and the workers stopped before the
    error propagates: an interrupted ``pool.map`` can otherwise hang at exit.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    out: list = []
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context(start_method))
    try:
        for part in pool.map(function, items):
            out += part
            bar.update()
    except BaseException:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.terminate()
        raise
    pool.shutdown()
    return out


def _runs(calibration: DigitCalibration) -> list[dict]:
    """The runs behind a calibration table: seed, elections and the nulls whose rows it holds."""
    return calibration.settings.get("runs") or [{
        "seed": int(calibration.settings["seed"]), "n_elections": int(calibration.n_elections),
        "nulls": sorted(set(calibration.table["null"])), "n_sim": calibration.settings.get("n_sim"),
        "provinces_only": calibration.settings.get("provinces_only"),
        "code_revision": calibration.settings.get("code_revision") or calibration.settings.get("code_version"),
        "seconds": calibration.settings.get("seconds")}]


def select_nulls(calibration: DigitCalibration, nulls: Sequence[str]) -> DigitCalibration:
    """Only the rows of the given nulls (as labelled in the table, e.g. "simulated" or "binomial (textbook)")."""
    nulls = list(nulls)
    missing = sorted(set(nulls) - set(calibration.table["null"]))
    if missing:
        raise ValueError(f"no rows for null(s) {', '.join(missing)} in this calibration")
    table = calibration.table[calibration.table["null"].isin(nulls)].reset_index(drop=True)
    runs = []
    for run in _runs(calibration):
        kept = [n for n in run["nulls"] if n in nulls]
        if kept and kept != list(run["nulls"]) and run.get("seconds") is not None:
            # The time covered all the run's nulls, not only the ones kept: say so.
            run = {**run, "seconds_covered_nulls": list(run["nulls"])}
        if kept:
            runs.append({**run, "nulls": kept})
    settings = {k: v for k, v in calibration.settings.items() if k not in ("seconds", "nulls")}
    settings.update(runs=runs, nulls=sorted(set(table["null"])))
    elections = calibration.elections
    if elections is not None:
        elections = elections[elections["null"].isin(nulls)].reset_index(drop=True)
    return dataclasses.replace(calibration, table=table, settings=settings, elections=elections)


def check_extendable(earlier: DigitCalibration, settings: Mapping, runs: Sequence[Mapping], *,
                     alpha: float, level: str) -> None:
    """Raise ValueError unless runs with these settings can be added to ``earlier`` (before they are run).

    Scale, share level, fractions, provinces, alpha and level must agree; rows of one null must
    come from disjoint elections, and a null's rows from runs with the same ``n_sim`` (it sets the
    simulated null's resolution).
    """
    for key in ("scale", "share_level", "fractions", "provinces_only"):
        if earlier.settings.get(key) != settings.get(key):
            raise ValueError(f"cannot extend: {key} differs ({earlier.settings.get(key)!r} and {settings.get(key)!r})")
    if earlier.alpha != alpha or earlier.level != level:
        raise ValueError("cannot extend: alpha or level differs")
    combined = _runs(earlier) + [dict(run) for run in runs]
    for null in sorted({n for run in runs for n in run["nulls"]}):
        with_null = [run for run in combined if null in run["nulls"]]
        seeds = [s for run in with_null for s in range(run["seed"], run["seed"] + run["n_elections"])]
        if len(seeds) != len(set(seeds)):
            raise ValueError(f"cannot extend: rows of null {null!r} from the same elections twice (overlapping seeds)")
        if null == "simulated" and len({run.get("n_sim") for run in with_null}) > 1:
            raise ValueError("cannot extend: the simulated null's n_sim differs between the runs")


def extend_calibration(earlier: DigitCalibration, later: DigitCalibration) -> DigitCalibration:
    """Two digit calibrations as one table: trials and rejections summed per (test, null, condition).

    Both must share alpha, level, scale, share level and fractions. Rows of the same null must
    come from disjoint elections (the same election counted twice would shrink the Monte Carlo
    error falsely); runs on the same elections may add other nulls (``select_nulls`` picks
    them). ``settings["runs"]`` lists every run with its seeds and nulls.
    """
    check_extendable(earlier, later.settings, _runs(later), alpha=later.alpha, level=later.level)
    combined = _runs(earlier) + _runs(later)
    raw = pd.concat([earlier.table, later.table], ignore_index=True)[["test", "null", "condition", "trials", "rejections"]]
    conditions = list(dict.fromkeys([*earlier.table["condition"], *later.table["condition"]]))
    parts = [c.elections for c in (earlier, later) if c.elections is not None]
    elections = pd.concat(parts, ignore_index=True) if parts else None
    summary = _summarise(raw, conditions, earlier.alpha, elections)
    settings = {key: earlier.settings.get(key) for key in ("scale", "fractions", "share_level", "provinces_only")}
    settings["nulls"] = sorted(set(summary["null"]))
    settings["runs"] = combined
    return DigitCalibration(table=summary, alpha=earlier.alpha, level=earlier.level, settings=settings,
                            n_elections=len({s for run in combined for s in range(run["seed"], run["seed"] + run["n_elections"])}),
                            elections=elections)


# ------------------------------------------------------------------------------------ turnout methods
#: A turnout method for the calibration: (election, seed) -> per-region p-values, a Series indexed by
#: region code (one method) or a DataFrame with one column per method.
TurnoutMethod = Callable[..., "pd.Series | pd.DataFrame"]


def inject_incremental(election, f_i: float, *, seed: int, level: str = "province", theta: float = 0.3,
                       alpha: float = 2.0, winner: str | None = None):
    """A copy of the election with Klimek et al.'s incremental stuffing on a share ``f_i`` of TPS per region.

    Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469: a share x ~ |N(0, theta)| of a TPS's
    DPT non-voters become votes for the region's winner (or ``winner``) and x^alpha of the other
    candidates' votes move to it; the form still balances (``analysis.synth._plant_incremental``).
    TPS with a missing count are left alone. Returns (election, truth) with truth one row per TPS.
    """
    from .synth import _plant_incremental
    from .turnout import region_winners

    table = election.table.copy()
    needed = ["dpt", "dpt_voters", "voters", "valid", *election.candidates]
    complete = table[needed].notna().all(axis=1).to_numpy()
    counts = table.loc[complete, needed].astype(np.int64)
    winners = region_winners(election, level)
    rng = np.random.default_rng(seed)
    records = []
    codes = table.loc[complete, level].astype(str)
    for region in sorted(codes.unique()):
        rows = counts.index[(codes == region).to_numpy()]
        target = winner or str(winners[region])
        records += _plant_incremental(rng, counts, rows, target, f_i, theta, alpha)
    added = counts["voters"] - table.loc[complete, "voters"].astype(np.int64)
    for name in needed:
        table.loc[complete, name] = pd.array(counts[name].to_numpy(), dtype="Int64")
    # Keep the form's other copies of the same numbers in step with the stuffed ones.
    for name, source in (("pengguna_total_j", "voters"), ("pengguna_dpt_j", "dpt_voters"), ("suara_sah", "valid")):
        if name in table.columns:
            table.loc[complete, name] = table.loc[complete, source]
    for name in ("ballots", "suara_total"):
        if name in table.columns:
            table.loc[complete, name] = table.loc[complete, name] + pd.array(added.to_numpy(), dtype="Int64")
    truth = pd.DataFrame(records, columns=["unit_id", "field", "original", "reported", "detail"])
    return dataclasses.replace(election, table=table), truth


def default_turnout_methods(*, n_boot: int = 49, n_perm: int = 199, level: str = "province",
                            spikes_resamples: int = 200, min_units: int = 100) -> dict:
    """The project's turnout methods as calibration callables (per-region p-values, each region's winner).

    "Klimek model": ``klimek_test`` (parametric bootstrap, ``n_boot``; at alpha 0.05 it needs
    n_boot >= 39 to reject at all); "Kobak integer": the
    turnout-or-leader count of ``kobak_integer_test`` (saddlepoint approximation to its exact
    Poisson-binomial tail); "turnout_tests":
    the extreme-cluster, association and integer tests of ``turnout_tests`` (national winner);
    "spikes": ``rozenas_spikes`` on the region winner's share (``spikes_resamples`` resamples;
    regions with fewer than ``min_units`` usable TPS give no trial, as in ``spikes_table``);
    "local outliers": the region row of ``local_outliers`` (an excess of TPS far from their
    desa / kecamatan neighbours, against the nominal rate); "local outliers vs other regions": the
    same count against the other regions' (no power by design when every region is stuffed alike,
    as in this design's stuffed conditions).
    """
    from .turnout import kobak_integer_test, klimek_test, local_outliers, region_winners, rozenas_spikes, turnout_tests

    def per_region(function):
        def run(election, seed):
            winners = region_winners(election, level)
            codes = election.table[level].astype(str).to_numpy()
            registered, voters, valid = (election.column(c) for c in ("registered", "voters", "valid"))
            invalid = election.column("invalid")
            out = {}
            for index, region in enumerate(sorted(winners.index)):
                mask = codes == region
                out[region] = function(registered[mask], voters[mask], election.column(winners[region])[mask],
                                       valid[mask], invalid[mask], seed + index)
            return pd.Series(out, dtype=float)
        return run

    def tests(election, seed):
        table = turnout_tests(election, level=level, seed=seed, n_perm=n_perm, n_rep=50).results
        return table.pivot(index="region", columns="test", values="pvalue")

    def spikes(registered, voters, winner, valid, invalid, seed):
        try:
            result = rozenas_spikes(registered, valid, winner, resamples=spikes_resamples, seed=seed)
        except ValueError:  # too few usable units: no trial, as spikes_table leaves them NaN
            return np.nan
        return result.pvalue if result.n >= min_units else np.nan

    def outliers(column):
        def run(election, seed):
            regions = local_outliers(election, region_level=level, seed=seed).regions
            return pd.Series(regions[column].to_numpy(), index=regions["region"].astype(str).to_numpy(), dtype=float)
        return run

    return {
        "Klimek model": per_region(lambda r, v, w, val, inv, s: klimek_test(r, v, w, val, seed=s, n_boot=n_boot).pvalue),
        "Kobak integer": per_region(lambda r, v, w, val, inv, s: kobak_integer_test(
            r, v, w, val + inv, n_rep=2, seed=s, resample="indicator").pvalue),
        "turnout_tests": tests,
        "spikes": per_region(spikes),
        "local outliers": outliers("pvalue"),
        "local outliers vs other regions": outliers("pvalue_vs_others"),
    }


def check_turnout_extendable(earlier: "TurnoutCalibration", settings: Mapping, *, n_elections: int, level: str,
                             alpha: float) -> None:
    """Raise ValueError unless a run with ``settings`` measures its methods on ``earlier``'s elections."""
    keys = ("scale", "seed", "f_i", "theta", "stuffing_alpha", "provinces_only")
    differ = [k for k in keys if earlier.settings.get(k) != settings.get(k)]
    differ += [name for name, a, b in (("n_elections", earlier.n_elections, n_elections), ("level", earlier.level, level),
                                       ("alpha", earlier.alpha, alpha)) if a != b]
    if differ:
        raise ValueError("cannot extend the turnout calibration: the new run's " + ", ".join(differ) +
                         " differ from the stored table's; run the same design (see its .json) or recompute the table")
    both = sorted(set(earlier.settings.get("methods", [])) & set(settings.get("methods", [])))
    if both:
        raise ValueError(f"cannot extend the turnout calibration: {', '.join(both)} already in the stored table")


def extend_turnout_calibration(earlier: "TurnoutCalibration", later: "TurnoutCalibration") -> "TurnoutCalibration":
    """The rows of ``earlier`` and of ``later``, whose methods ran on the same elections and stuffing.

    The elections, the stuffed copies and the seeds a method receives depend only on the design
    (seed, number of elections, scale, f_i, theta, stuffing exponent, level, alpha), never on the
    other methods, so a method added later is measured on exactly the elections of the others.
    Anything else is an error (``check_turnout_extendable``): rows from other elections would not
    be comparable.
    """
    from .election import code_version

    check_turnout_extendable(earlier, later.settings, n_elections=later.n_elections, level=later.level,
                             alpha=later.alpha)
    both = sorted(set(earlier.table["method"]) & set(later.table["method"]))
    if both:
        raise ValueError(f"cannot extend the turnout calibration: {', '.join(both)} already in the stored table")
    table = pd.concat([earlier.table, later.table], ignore_index=True).sort_values(["f_i", "method"], kind="stable")
    settings = {k: v for k, v in earlier.settings.items() if k not in ("code_version", "written", "seconds")}
    settings["methods"] = list(earlier.settings.get("methods", [])) + list(later.settings.get("methods", []))
    settings["runs"] = (earlier.settings.get("runs") or [{"methods": earlier.settings.get("methods", []),
                                                          "seconds": earlier.settings.get("seconds"),
                                                          "code_version": earlier.settings.get("code_version"),
                                                          "written": earlier.settings.get("written")}]) + [
        {"methods": later.settings.get("methods", []), "seconds": later.settings.get("seconds"),
         "code_version": code_version(), "written": datetime.now(timezone.utc).isoformat(timespec="seconds")}]
    return TurnoutCalibration(table=table.reset_index(drop=True), alpha=earlier.alpha, n_elections=earlier.n_elections,
                              level=earlier.level, settings=settings)


@dataclass(frozen=True, eq=False)
class TurnoutCalibration:
    """Rejection rates of each turnout method on clean synthetic elections and with incremental stuffing."""

    table: pd.DataFrame  # method, condition, f_i, trials, rejections, rate, mc_se
    alpha: float
    n_elections: int
    level: str
    settings: dict

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def false_positive_rates(self) -> pd.DataFrame:
        return self.table[self.table["condition"] == "clean"].reset_index(drop=True)

    def power(self) -> pd.DataFrame:
        """One row per method, one column per f_i: the share of stuffed regions with p < alpha."""
        stuffed = self.table[self.table["condition"] != "clean"]
        return stuffed.pivot(index="method", columns="f_i", values="rate")

    def appendix(self) -> pd.DataFrame:
        """The methods-appendix view: per method, false-positive rate and power at each f_i, as "rate ± se"."""
        cell = self.table.assign(text=[f"{r:.3f} ± {se:.3f}" for r, se in zip(self.table["rate"], self.table["mc_se"])])
        cell["column"] = np.where(cell["condition"] == "clean", "false-positive rate (clean)",
                                  [f"power, f_i = {f:g}" for f in cell["f_i"]])
        wide = cell.pivot(index="method", columns="column", values="text")
        trials = self.table.groupby("method")["trials"].max().rename("regions per condition")
        return wide.join(trials).reset_index()

    def _repr_html_(self) -> str:
        title = (f"Turnout methods on {self.n_elections} clean synthetic elections and with Klimek incremental "
                 f"stuffing: share of {self.level}s with p < {self.alpha:g}")
        return f"<p><b>{html.escape(title)}</b></p>\n" + frame_html(self.table)


#: The methods a forked calibration worker runs (closures cannot be pickled; a forked child inherits them).
_TURNOUT_METHODS: dict = {}


def _set_turnout_methods(methods: dict) -> None:
    global _TURNOUT_METHODS
    _TURNOUT_METHODS = methods


def _turnout_records(index: int, *, seed: int, scale: float, conditions, level: str, theta: float,
                     stuffing_alpha: float, alpha: float, provinces_only, methods: dict | None = None) -> list[dict]:
    """One election's trials for ``turnout_calibration``: a record per (method, condition)."""
    from .synth import make_election

    election = make_election(scale=scale, seed=int(seed) + index, plan={}, ocr_rate=0,
                             provinces_only=provinces_only).election
    records = []
    for c_index, (condition, fraction) in enumerate(conditions):
        tested = election if fraction == 0 else inject_incremental(
            election, fraction, seed=int(seed) * 1000 + index * 10 + c_index, level=level, theta=theta,
            alpha=stuffing_alpha)[0]
        for name, method in (_TURNOUT_METHODS if methods is None else methods).items():
            pvalues = method(tested, int(seed) + index)
            frame = pvalues.to_frame(name) if isinstance(pvalues, pd.Series) else pvalues
            for column in frame.columns:
                p = frame[column].dropna().astype(float)
                records.append({"method": str(column), "condition": condition, "f_i": fraction,
                                "trials": len(p), "rejections": int((p < alpha).sum())})
    return records


def turnout_calibration(*, methods: dict | None = None, n_elections: int = 2, seed: int = 0, scale: float = 0.02,
                        f_i: Sequence[float] = (0.05, 0.1, 0.2), theta: float = 0.3, stuffing_alpha: float = 2.0,
                        level: str = "province", alpha: float = 0.05, provinces_only: Sequence[str] | None = None,
                        progress: bool = False, jobs: int = 1) -> TurnoutCalibration:
    """False-positive rate and power against Klimek incremental stuffing of each turnout method.

    Elections ``seed .. seed + n_elections - 1`` come from ``make_election(plan={}, ocr_rate=0)``
    (clean); each is tested as it is and after ``inject_incremental`` at each ``f_i`` in every
    region (x ~ |N(0, theta)|, stealing exponent ``stuffing_alpha``, for the region's winner). One
    trial is one region; the rate's Monte Carlo standard error is sqrt(r (1 - r) / trials).
    ``methods`` maps a name to a callable (election, seed) -> per-region p-values (a Series by
    region, or a DataFrame with a column per method); default ``default_turnout_methods()``.
    ``jobs`` elections run at once in forked processes (the table does not depend on it; where
    there is no fork, serially).
    """
    import multiprocessing

    from tqdm.auto import tqdm

    methods = default_turnout_methods(level=level) if methods is None else dict(methods)
    conditions = [("clean", 0.0)] + [(f"incremental stuffing f_i = {f:g}", float(f)) for f in f_i]
    one = dict(seed=int(seed), scale=scale, conditions=conditions, level=level, theta=theta,
               stuffing_alpha=stuffing_alpha, alpha=alpha, provinces_only=provinces_only)
    indices = range(int(n_elections))
    records: list[dict] = []
    with tqdm(total=len(indices), desc="elections", disable=not progress) as bar:
        if int(jobs) > 1 and "fork" not in multiprocessing.get_all_start_methods():
            warnings.warn("turnout_calibration: no 'fork' start method here (the methods are closures); running serially")
            jobs = 1
        if int(jobs) <= 1:
            for index in indices:
                records += _turnout_records(index, **one, methods=methods)
                bar.update()
        else:
            # A forked child inherits the methods through this module's global: nothing is pickled.
            _set_turnout_methods(methods)
            try:
                records += _map_in_processes(functools.partial(_turnout_records, **one), indices, int(jobs), bar, "fork")
            finally:
                _set_turnout_methods({})
    raw = pd.DataFrame(records)
    summary = raw.groupby(["method", "condition", "f_i"], sort=False)[["trials", "rejections"]].sum().reset_index()
    summary["rate"] = summary["rejections"] / summary["trials"]
    summary["mc_se"] = np.sqrt(summary["rate"] * (1 - summary["rate"]) / summary["trials"])
    summary = summary.sort_values(["f_i", "method"]).reset_index(drop=True)
    settings = {"scale": scale, "seed": seed, "f_i": list(f_i), "theta": theta, "stuffing_alpha": stuffing_alpha,
                "provinces_only": None if provinces_only is None else sorted(map(str, provinces_only)),
                "methods": list(methods)}
    return TurnoutCalibration(table=summary, alpha=alpha, n_elections=int(n_elections), level=level, settings=settings)


# ------------------------------------------------------------------------------------ TSM systematic test
@dataclass(frozen=True, eq=False)
class TSMCalibration:
    """False-positive rate and power of the TSM systematic test (``tsm.systematic``) on synthetic elections.

    ``table``: one row per (condition, measure): ``trials``, ``rejections``, ``rate``, ``mc_se``
    (binomial, sqrt(r (1 - r) / trials)) and ``mc_se_elections`` (elections as the sampling units,
    as in ``_between_election_se``). ``elections``: ``systematic_calibration``'s row per
    election and condition.
    """

    table: pd.DataFrame
    alpha: float
    n_elections: int
    level: str
    settings: dict
    elections: pd.DataFrame | None = None

    def to_frame(self) -> pd.DataFrame:
        return self.table.copy()

    def false_positive_rates(self) -> pd.DataFrame:
        return self.table[self.table["condition"] == "clean"].reset_index(drop=True)

    def power(self) -> pd.DataFrame:
        """Per directional share: elections in which the planted province reached q < alpha."""
        rows = self.table[self.table["measure"] == TSM_MEASURES["found"]]
        return rows[["condition", "directional_share", "trials", "rejections", "rate"]].reset_index(drop=True)

    def rate(self, measure: str, directional_share: float = 0.0) -> tuple[int, int]:
        """(rejections, trials) of one measure ("false_p", "false_q", "any_false_q", "found") and condition."""
        row = self.table[(self.table["measure"] == TSM_MEASURES[measure])
                         & np.isclose(self.table["directional_share"], float(directional_share))]
        if len(row) != 1:
            raise KeyError(f"no row for measure {measure!r} at directional share {directional_share!r}")
        return int(row["rejections"].iloc[0]), int(row["trials"].iloc[0])

    def appendix(self) -> pd.DataFrame:
        table = self.table.copy()
        table["rate"] = [f"{100 * r:.1f} % ± {100 * se:.1f} ({k:,} of {t:,})"
                         for r, se, k, t in zip(table["rate"], table["mc_se"], table["rejections"], table["trials"])]
        return table[["condition", "measure", "rate"]]

    def _repr_html_(self) -> str:
        s = self.settings
        title = (f"TSM systematic test on {self.n_elections} synthetic elections (seeds {s.get('seed')}-"
                 f"{int(s.get('seed', 0)) + self.n_elections - 1}, scale {s.get('scale')}, random OCR noise on "
                 f"{100 * float(s.get('ocr_rate', 0)):g} % of TPS, misreadings found by {s.get('finder')}); "
                 f"directional misreadings planted in province {s.get('planted')}; alpha = {self.alpha:g}")
        return f"<p><b>{html.escape(title)}</b></p>\n" + frame_html(self.appendix())


#: The measures of a TSM calibration table (keys for ``TSMCalibration.rate``).
TSM_MEASURES = {
    "false_p": "p < alpha in a province without a plant (province x candidate tests)",
    "false_q": "q < alpha in a province without a plant (province x candidate tests)",
    "any_false_q": "any province without a plant at q < alpha (elections)",
    "found": "planted province at q < alpha (elections)",
}


def systematic_calibration(seeds: Sequence[int], *, planted: str | None = None, scale: float = 0.02,
                           ocr_rate: float = 0.004, directional_share: float = 0.015, alpha: float = 0.05,
                           finder: str = "find_misreadings", provinces_only: Sequence[str] | None = None,
                           min_tps: int = 400, structured_perm: int = 0, conditional: bool = False) -> pd.DataFrame:
    """False-positive rate and power of ``tsm.systematic`` on synthetic elections, one row per seed.

    ``planted=None``: clean elections whose only irregularity is symmetric random OCR noise at
    ``ocr_rate`` (the null holds everywhere). ``planted="35"``: the same plus directional
    misreadings in that province (``synth``'s ``directional_misreading``). ``finder``:
    "find_misreadings" (the misreadings the project finds) or "truth" (the planted ones, with
    their true written numbers). Columns: tests, false discoveries at p < alpha and q < alpha in
    regions without a plant, national p-values, and whether the planted province has q < alpha.
    ``conditional``: calibrate the robustness variant of ``systematic`` instead.
    ``structured_perm > 0`` also runs ``structured`` with that many shuffles: per-province
    component tests at p < alpha outside the planted province, and the national components' p.
    """
    from .synth import make_election
    from .tsm import structured, systematic

    rows = []
    for seed in seeds:
        plan = {} if planted is None else {"directional_misreading": planted}
        synthetic = make_election(scale=scale, seed=seed, plan=plan, ocr_rate=ocr_rate, min_tps=min_tps,
                                  directional_share=directional_share, provinces_only=provinces_only)
        election = synthetic.election
        if finder == "truth":
            truth = synthetic.truth
            misread = truth[truth["kind"].str.endswith("misreading")]
            shown = [not pd.isna(election.table.at[u, f]) for u, f in zip(misread["unit_id"], misread["field"])]
            misread = misread[shown]
            table = pd.DataFrame({"unit_id": misread["unit_id"], "field": misread["field"],
                                  "reported": misread["reported"], "proposed": misread["original"],
                                  "edit": misread["detail"], "confidence": 1.0, "unique": True})
        elif finder == "find_misreadings":
            from .consistency import find_misreadings

            table = find_misreadings(election)
        else:
            raise ValueError(f"finder must be 'find_misreadings' or 'truth', not {finder!r}")
        result = systematic(election, table, level="province", alpha=alpha, conditional=conditional).table
        regional = result[result["region"] != "all"]
        clean = regional[regional["region"] != planted]
        national = result[result["region"] == "all"].set_index("candidate")["pvalue"]
        row = {"seed": seed, "tests": int(clean["pvalue"].notna().sum()),
               "false_p": int((clean["pvalue"] < alpha).sum()), "false_q": int((clean["qvalue"] < alpha).sum()),
               "misreadings": int(result.loc[result["region"] == "all", "misreadings"].iloc[0])}
        row.update({f"national_p_{c}": float(p) for c, p in national.items()})
        if structured_perm:
            parts = structured(election, table, level="province", n_perm=structured_perm, seed=seed).table
            provincial = parts[(parts["region"] != "all") & (parts["region"] != planted) & parts["pvalue"].notna()]
            row["structured_tests"] = int(len(provincial))
            row["structured_false_p"] = int((provincial["pvalue"] < alpha).sum())
            row["structured_false_q"] = int((provincial["qvalue"] < alpha).sum())
            national_parts = parts[parts["region"] == "all"].set_index("component")["pvalue"]
            row.update({f"structured_p_{c}": float(p) for c, p in national_parts.items()})
        if planted is not None:
            hit = regional[regional["region"] == planted]
            row["planted_q"] = float(hit["qvalue"].min()) if len(hit) else np.nan
            row["planted_found"] = bool((hit["qvalue"] < alpha).any())
            row["planted_candidate"] = str(hit.sort_values("qvalue")["candidate"].iloc[0]) if len(hit) else ""
        rows.append(row)
    return pd.DataFrame(rows)


def _tsm_rows(index: int, *, seed: int, conditions, scale: float, ocr_rate: float, planted: str, alpha: float,
              provinces_only, min_tps: int, finder: str) -> list[dict]:
    """One election's rows for ``tsm_calibration``: ``systematic_calibration`` under each condition."""
    rows = []
    for condition, share in conditions:
        frame = systematic_calibration([int(seed) + index], planted=None if share == 0 else planted, scale=scale,
                                       ocr_rate=ocr_rate, directional_share=share if share else 0.015, alpha=alpha,
                                       finder=finder, provinces_only=provinces_only, min_tps=min_tps)
        for record in frame.to_dict("records"):
            rows.append({"condition": condition, "directional_share": float(share), **record})
    return rows


def _cluster_se(rejections: np.ndarray, trials: np.ndarray) -> float:
    """SE of sum(rejections) / sum(trials) with elections as the units (Cochran 1977, 6.9)."""
    total = trials.sum()
    if len(trials) < 2 or total == 0:
        return float("nan")
    residual = rejections - rejections.sum() / total * trials
    return float(np.sqrt(len(trials) / (len(trials) - 1) * np.sum(residual ** 2)) / total)


def tsm_calibration(*, n_elections: int = 20, seed: int = 0, scale: float = 0.02, ocr_rate: float = 0.02,
                    directional_shares: Sequence[float] = (0.015, 0.01, 0.005), planted: str = "35",
                    alpha: float = 0.05, provinces_only: Sequence[str] | None = None, min_tps: int = 400,
                    finder: str = "find_misreadings", progress: bool = False, jobs: int = 1) -> TSMCalibration:
    """False-positive rate and power of the TSM systematic test, measured (``systematic_calibration``).

    Elections ``seed .. seed + n_elections - 1`` from ``make_election`` with symmetric random OCR
    misreadings on ``ocr_rate`` of TPS and nothing planted ("clean"), and the same elections with
    directional misreadings (``synth``'s ``directional_misreading``) on each of ``directional_shares``
    of the TPS of province ``planted``. The misreadings tested are those ``finder`` gives
    ("find_misreadings": what the project finds; "truth": the planted ones). Measures
    (``TSM_MEASURES``): p < alpha and q < alpha (BH across provinces x candidates) in provinces
    without a plant, any such q per election, and the planted province at q < alpha. Caveat
    (issue 17): the OCR noise is drawn by the same edit process the test's null assumes, so the
    clean rate checks the test's arithmetic, not its null's realism.
    """
    from tqdm.auto import tqdm

    conditions = [("clean", 0.0)] + [(f"directional misreadings on {100 * s:g} % of TPS in {planted}", float(s))
                                     for s in directional_shares]
    one = dict(seed=int(seed), conditions=conditions, scale=scale, ocr_rate=ocr_rate, planted=str(planted),
               alpha=alpha, provinces_only=provinces_only, min_tps=int(min_tps), finder=finder)
    indices = range(int(n_elections))
    records: list[dict] = []
    started = datetime.now(timezone.utc)
    revision = _code_revision()  # the code that runs, taken before the run (commits may follow during it)
    with tqdm(total=len(indices), desc="elections", disable=not progress) as bar:
        if int(jobs) <= 1:
            for index in indices:
                records += _tsm_rows(index, **one)
                bar.update()
        else:
            records += _map_in_processes(functools.partial(_tsm_rows, **one), indices, int(jobs), bar)
    elections = pd.DataFrame(records)
    rows = []
    for condition, share in conditions:
        part = elections[elections["condition"] == condition]
        tests = part["tests"].to_numpy(float)
        measures = [("false_p", part["false_p"].to_numpy(float), tests),
                    ("false_q", part["false_q"].to_numpy(float), tests),
                    ("any_false_q", (part["false_q"] > 0).to_numpy(float), np.ones(len(part)))]
        if share:
            measures.append(("found", part["planted_found"].astype(bool).to_numpy(float), np.ones(len(part))))
        for key, hits, trials in measures:
            k, t = int(hits.sum()), int(trials.sum())
            r = k / t if t else np.nan
            rows.append({"condition": condition, "directional_share": float(share), "measure": TSM_MEASURES[key],
                         "trials": t, "rejections": k, "rate": r,
                         "mc_se": float(np.sqrt(r * (1 - r) / t)) if t else np.nan,
                         "mc_se_elections": _cluster_se(hits, trials)})
    settings = {"kind": "tsm", "test": "tsm.systematic (unconditional)", "seed": int(seed), "scale": scale,
                "ocr_rate": ocr_rate, "directional_shares": [float(s) for s in directional_shares],
                "planted": str(planted), "min_tps": int(min_tps), "finder": finder,
                "provinces_only": None if provinces_only is None else sorted(map(str, provinces_only)),
                "code_revision": revision,
                "seconds": round((datetime.now(timezone.utc) - started).total_seconds(), 1)}
    return TSMCalibration(table=pd.DataFrame(rows), alpha=alpha, n_elections=int(n_elections), level="province",
                          settings=settings, elections=elections)


__all__ += ["TSMCalibration", "TSM_MEASURES", "tsm_calibration", "mebane_methods"]


def mebane_methods(*, n_null: int = 19, null_starts: int = 1, starts: int = 3, level: str = "province",
                   bootstrap: bool = True) -> dict:
    """Mebane's mixture (``turnout.mebane``) as ``turnout_calibration`` methods (per-region p-values).

    The chi-square(6) p-values of the ``bl`` and ``bbl`` models (not valid: the null lies on the
    boundary; measured to show how they behave) and, with ``bootstrap``, the ``bbl`` model's
    parametric-bootstrap p-value with ``n_null`` draws (smallest attainable 1 / (n_null + 1)).
    """
    from .turnout.mebane import mebane_pvalues

    methods = {
        "Mebane bl, chi-square(6) p (not valid)": lambda e, s: mebane_pvalues(e, s, level=level, model="bl",
                                                                              which="chi2", starts=starts),
        "Mebane bbl, chi-square(6) p (not valid)": lambda e, s: mebane_pvalues(e, s, level=level, model="bbl",
                                                                               which="chi2", starts=starts),
    }
    if bootstrap:
        methods[f"Mebane bbl, parametric bootstrap ({n_null} draws)"] = lambda e, s: mebane_pvalues(
            e, s, level=level, model="bbl", which="bootstrap", n_null=n_null, null_starts=null_starts, starts=starts)
    return methods

"""Benchmarks and calibration of the spikes test, local outliers and Mebane's mixture.

    .venv/bin/python benchmarks/bench_spikes_outliers.py            # timings beside their targets
    .venv/bin/python benchmarks/bench_spikes_outliers.py --calibrate 5  # + false-positive rate and power

Timings: Rozenas' spikes on Canada 2011 (95,045 polls, 1000 resamples; target < 2 min) and local
outliers on the full-scale synthetic election (make_election(scale=1.0), ~820,000 TPS; target: the
whole national table in well under a minute). Calibration: each method's per-province p-values
on clean synthetic elections (make_election(plan={}, ocr_rate=0, scale=0.02)) and after Klimek
incremental fraud (f_i = 0.05, 0.1, 0.2; theta 0.3, alpha 2, winner 02) planted in every province
with ``analysis.synth._plant_incremental``; a trial is one province, the rate is the share with
p < 0.05, with its Monte Carlo standard error.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "reference"

from analysis import synth  # noqa: E402
from analysis.turnout.mebane import mebane_pvalues  # noqa: E402
from analysis.turnout.outliers import local_outliers, outlier_pvalues  # noqa: E402
from analysis.turnout.spikes import rozenas_spikes, spikes_pvalues  # noqa: E402

METHODS = {"spikes": spikes_pvalues, "outliers": outlier_pvalues, "mebane": mebane_pvalues}


def line(name: str, figure: str, target: str, ok: bool) -> None:
    print(f"{name:<58} {figure:<22} target {target:<14} {'ok' if ok else 'MISSED'}", flush=True)


def plant_incremental(election, f_i: float, seed: int, *, theta: float = 0.3, alpha: float = 2.0, winner: str = "02"):
    """A copy of ``election`` with Klimek incremental fraud planted in every province (complete TPS only)."""
    table = election.table.copy()
    needed = ["dpt", "dpt_voters", "voters", "valid", "invalid", *election.candidates]
    complete = table[needed].notna().all(axis=1).to_numpy()
    counts = table.loc[complete, needed].astype("int64")
    rng = np.random.default_rng(seed)
    synth._plant_incremental(rng, counts, counts.index, winner, f_i, theta, alpha)
    for column in needed:
        table.loc[complete, column] = counts[column].to_numpy()
    table.loc[complete, "ballots"] = (counts["valid"] + counts["invalid"]).to_numpy()
    for column in [*needed, "ballots"]:
        table[column] = table[column].astype("Int64")
    return dataclasses.replace(election, table=table)


def calibrate(n_elections: int, methods=METHODS, fractions=(0.05, 0.1, 0.2), seed0: int = 500) -> pd.DataFrame:
    rows = []
    for index in range(n_elections):
        clean = synth.make_election(plan={}, ocr_rate=0, scale=0.02, seed=seed0 + index).election
        conditions = [("clean", clean)] + [(f"incremental f_i = {f:g}", plant_incremental(clean, f, seed0 + index))
                                           for f in fractions]
        for condition, election in conditions:
            for name, method in methods.items():
                start = time.perf_counter()
                p = method(election, seed0 + index).dropna()
                rows.append({"method": name, "condition": condition, "election": index, "trials": len(p),
                             "rejections": int((p < 0.05).sum()), "seconds": time.perf_counter() - start})
                print(rows[-1], flush=True)
    raw = pd.DataFrame(rows)
    summary = raw.groupby(["method", "condition"], sort=False)[["trials", "rejections", "seconds"]].sum().reset_index()
    summary["rate"] = summary["rejections"] / summary["trials"]
    summary["mc_se"] = np.sqrt(summary["rate"] * (1 - summary["rate"]) / summary["trials"])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", type=int, default=0, help="number of synthetic elections for calibration")
    parser.add_argument("--skip-timings", action="store_true")
    parser.add_argument("--methods", default="spikes,outliers,mebane")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if not args.skip_timings:
        canada = SHARED / "canada_2011_conservative.csv.gz"
        if canada.exists():
            data = pd.read_csv(canada)
            start = time.perf_counter()
            result = rozenas_spikes(data["N"], data["t"], data["v"], resamples=1000, seed=2017)
            seconds = time.perf_counter() - start
            line(f"spikes, Canada 2011, {len(data):,} polls x 1000 resamples", f"{seconds:.1f} s", "< 120 s",
                 seconds < 120)
            print(f"    fraud_percent {result.fraud_percent:.3f} % (95 % CI {result.ci_low:.3f}-{result.ci_high:.3f}), "
                  f"p = {result.pvalue:.4f}; R package's stored output: 0.039 %", flush=True)
        else:
            print(f"spikes benchmark skipped: {canada} not found", flush=True)
        start = time.perf_counter()
        election = synth.make_election(scale=1.0, seed=2024).election
        built = time.perf_counter() - start
        start = time.perf_counter()
        outliers = local_outliers(election)
        seconds = time.perf_counter() - start
        line(f"local outliers, full-scale synthetic, {len(election.table):,} TPS", f"{seconds:.1f} s", "< 60 s",
             seconds < 60)
        print(f"    (building the election took {built:.1f} s; {int((outliers.table['q'] <= 0.05).sum()):,} TPS "
              f"with q <= 0.05; {len(outliers.flags())} provinces flagged)", flush=True)
    if args.calibrate:
        methods = {m: METHODS[m] for m in args.methods.split(",")}
        summary = calibrate(args.calibrate, methods)
        print(summary.to_string(index=False), flush=True)


if __name__ == "__main__":
    main()

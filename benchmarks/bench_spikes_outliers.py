"""Benchmarks and calibration of the spikes test, local outliers and Mebane's mixture.

    .venv/bin/python benchmarks/bench_spikes_outliers.py            # timings beside their targets
    .venv/bin/python benchmarks/bench_spikes_outliers.py --calibrate 5  # + false-positive rate and power

Timings: Rozenas' spikes on Canada 2011 (66,111 polls, 1000 resamples and the sequential p-value;
target < 2 min; against the R package: ``bench_spikes_r.py``) and local
outliers on the full-scale synthetic election (make_election(scale=1.0), ~820,000 TPS; target: the
whole national table in well under a minute). Calibration: ``analysis.calibration.turnout_calibration``
(the design of `forensik calibrate turnout`: clean synthetic elections at scale 0.02 and the same
elections after Klimek incremental stuffing at f_i = 0.05, 0.1, 0.2 for each province's winner; a
trial is one province) on spikes and local outliers as the shipped table runs them, plus Mebane's
mixture (``mebane_pvalues``), which the reports leave out. The shipped table itself is written by
`forensik calibrate turnout`; this prints without writing.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "reference"

from analysis import synth  # noqa: E402
from analysis.turnout.mebane import mebane_pvalues  # noqa: E402
from analysis.turnout.outliers import local_outliers  # noqa: E402
from analysis.turnout.spikes import rozenas_spikes  # noqa: E402

def line(name: str, figure: str, target: str, ok: bool) -> None:
    print(f"{name:<58} {figure:<22} target {target:<14} {'ok' if ok else 'MISSED'}", flush=True)


def calibrate(n_elections: int, names, seed0: int = 500, jobs: int = 2) -> pd.DataFrame:
    from analysis.calibration import default_turnout_methods, turnout_calibration

    methods = {**default_turnout_methods(), "mebane": mebane_pvalues,
               "mebane bbl": lambda election, seed: mebane_pvalues(election, seed, model="bbl")}
    result = turnout_calibration(methods={name: methods[name] for name in names}, n_elections=n_elections,
                                 seed=seed0, progress=True, jobs=jobs)
    return result.table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calibrate", type=int, default=0, help="number of synthetic elections for calibration")
    parser.add_argument("--skip-timings", action="store_true")
    parser.add_argument("--methods", default="spikes,local outliers,mebane,mebane bbl")
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
            print(f"    fraud_percent {result.fraud_percent:.3f} % (resampling error {result.se:.3f}; 95 % CI "
                  f"{result.ci_low:.3f}-{result.ci_high:.3f}), p = {result.pvalue:.4f} ({result.null_draws} null draws, "
                  f"floor {result.pvalue_min:.2g}); R package: stored output 0.039 %, seed 1 0.058 %", flush=True)
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
              f"with q <= 0.05; provinces flagged: {len(outliers.flags())} against the others, "
              f"{len(outliers.flags(against='nominal'))} against the nominal rate)", flush=True)
    if args.calibrate:
        summary = calibrate(args.calibrate, [m.strip() for m in args.methods.split(",")])
        print(summary.to_string(index=False), flush=True)


if __name__ == "__main__":
    main()

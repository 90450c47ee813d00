"""Benchmark: digit tests against benford_py on the same counts, and the calibrated nulls at TPS scale.

Prints one line per figure, the figure beside its target (issue 4; docs/design.md, targets):
- first-, second- and last-digit tests on 10 million counts, this suite against benford_py
  (``benford.Base`` once, then its first-digit, second-digit and last-two-digits tests): at least 10
  times faster, identical chi-square statistics for the first and second digits;
- a 1,000-draw simulated null (second + last digit, shared draws) on 100,000 TPS, and the model-based null
  on the same stations.
Run: python benchmarks/bench_digits.py [--counts 10000000] [--stations 100000] [--draws 1000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from analysis.digits import _run, benford_tests

SPEED_RATIO_TARGET = 10.0
SIMULATED_TARGET_SECONDS = 20.0


def spread_counts(n: int, seed: int = 0) -> np.ndarray:
    """Counts over several orders of magnitude (log-normal), with some zeros."""
    return np.random.default_rng(seed).lognormal(5, 2, n).astype(np.int64)


def tps_counts(n_stations: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """TPS-sized clean counts: totals 150-300, shares from a beta, binomial votes."""
    rng = np.random.default_rng(seed)
    totals = rng.integers(150, 301, n_stations)
    return rng.binomial(totals, rng.beta(9, 11, n_stations)), totals


def compare_with_benford_py(n_counts: int) -> None:
    try:
        import benford as bf
    except ImportError:
        print("benford_py comparison   skipped: benford-py is not installed (pip install -e .[dev])")
        return
    counts = spread_counts(n_counts)
    start = time.perf_counter()
    ours = benford_tests(counts, tests=("first", "second", "last"))
    ours_seconds = time.perf_counter() - start
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        base = bf.Base(pd.Series(counts), decimals=0, sign="pos")
        theirs = {name: bf.Test(base, digs, confidence=None) for name, digs in (("first", 1), ("second", 22), ("last two", -2))}
        theirs_seconds = time.perf_counter() - start
    ratio = theirs_seconds / ours_seconds
    status = "ok" if ratio >= SPEED_RATIO_TARGET else "MISSED"
    print(f"first + second + last digit tests, {n_counts:,} counts   forensik {ours_seconds:.2f} s, "
          f"benford_py {theirs_seconds:.2f} s   ratio {ratio:.1f}x   target >= {SPEED_RATIO_TARGET:.0f}x   {status}")
    for name in ("first", "second"):
        same = np.isclose(ours[name].statistic, theirs[name].chi_square, rtol=1e-10)
        print(f"  {name}-digit chi-square   forensik {ours[name].statistic:.6f}   benford_py "
              f"{theirs[name].chi_square:.6f}   target identical   {'ok' if same else 'MISSED'}")
    same_mad = np.isclose(ours["first"].mad, theirs["first"].MAD, rtol=1e-10)
    print(f"  first-digit MAD   forensik {ours['first'].mad:.8f}   benford_py {theirs['first'].MAD:.8f}   "
          f"target identical   {'ok' if same_mad else 'MISSED'}")
    print("  (benford_py has no single last-digit test: its last-two-digits test, on counts >= 1000, is timed instead)")


def time_nulls(n_stations: int, draws: int) -> None:
    votes, totals = tps_counts(n_stations)
    kinds = [("second", 0), ("last", 10)]
    start = time.perf_counter()
    simulated = _run(kinds, votes, null="simulated", totals=totals, shares=None, n_sim=draws, seed=7)
    elapsed = time.perf_counter() - start
    status = "ok" if elapsed < SIMULATED_TARGET_SECONDS else "MISSED"
    print(f"simulated null (second + last digit, shared draws), {n_stations:,} TPS x {draws:,} draws   "
          f"{elapsed:.1f} s   target < {SIMULATED_TARGET_SECONDS:.0f} s   {status}")
    start = time.perf_counter()
    exact = _run(kinds, votes, null="exact", totals=totals, shares=None, n_sim=draws, seed=7)
    elapsed = time.perf_counter() - start
    print(f"model-based null (second + last digit), {n_stations:,} TPS   {elapsed:.1f} s   "
          f"p-values model-based {exact['second'].pvalue:.3f} / {exact['last'].pvalue:.3f}, "
          f"simulated {simulated['second'].pvalue:.3f} / {simulated['last'].pvalue:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", type=int, default=10_000_000)
    parser.add_argument("--stations", type=int, default=100_000)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    compare_with_benford_py(args.counts)
    time_nulls(args.stations, args.draws)


if __name__ == "__main__":
    main()

"""Benchmark: the simulated digit null (beta-binomial redraws per station) against its design target.

Prints one line per figure, the figure beside its target (docs/design.md, performance targets).
Run: python benchmarks/bench_digits.py [--stations 100000] [--draws 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from analysis.digits import _run

TARGET_SECONDS = 20.0


def synthetic_counts(n_stations: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """TPS-sized clean counts: totals 150-300, shares from a beta, binomial votes."""
    rng = np.random.default_rng(seed)
    totals = rng.integers(150, 301, n_stations)
    votes = rng.binomial(totals, rng.beta(9, 11, n_stations))
    return votes, totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=100_000)
    parser.add_argument("--draws", type=int, default=1000)
    args = parser.parse_args()
    votes, totals = synthetic_counts(args.stations)
    # Both tests share one set of draws, as digit_tests runs them; time the second-digit test alone too.
    for label, kinds in (("", [("second", 0)]), (" (second + last digit, shared draws)", [("second", 0), ("last", 10)])):
        start = time.perf_counter()
        result = _run(kinds, votes, null="simulated", totals=totals, shares=None, n_sim=args.draws, seed=7)
        elapsed = time.perf_counter() - start
        assert np.isfinite(result["second"].pvalue)
        status = "ok" if elapsed < TARGET_SECONDS else "MISSED"
        print(f"digits simulated null{label}, {args.stations:,} stations x {args.draws:,} draws   "
              f"{elapsed:.1f} s   target < {TARGET_SECONDS:.0f} s   {status}")


if __name__ == "__main__":
    main()

"""Any country's CSV + mapping -> Election (``forensik import``): rows per CPU second (target >= 100,000).

Measured on Sirekap's real TPS table (441,609 rows, ``../shared/data/sirekap/tps_ppwp_2024``) when
``../shared`` is beside the project, else on a CSV of the same shape made here. Rates are per CPU
second of this process (``time.process_time``), so that other work on a shared machine does not
count against them; the wall time is printed beside. Best of three.
"""

import gzip
import tempfile
import time
from pathlib import Path

import numpy as np

from analysis.sources.tabular import load_mapping, read_table

TARGET = 100_000
REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sirekap" / "tps_ppwp_2024" / \
    "ppwp_tps_36_regions_20240320.csv.gz"


def synthetic_table(path: Path, n: int = 441_609, seed: int = 0) -> Path:
    """A gzipped CSV in the shape of the real TPS table (every fourth row without numbers)."""
    rng = np.random.default_rng(seed)
    header = "tps_code,province,regency,district,village,votes_01,votes_02,votes_03,dpt,dptb,dpk,voters,valid,invalid,ballots,ts"
    lines = [header]
    for i in range(n):
        code = f"{11 + i % 80:02d}{i % 97:02d}{i % 89:02d}{i % 9973:04d}{i % 997:03d}"
        if i % 4 == 3:
            lines.append(f"{code},{code[:2]},{code[:4]},{code[:6]},{code[:10]},,,,,,,,,,,")
            continue
        votes = rng.integers(0, 150, 3)
        valid = int(votes.sum())
        lines.append(f"{code},{code[:2]},{code[:4]},{code[:6]},{code[:10]},{votes[0]},{votes[1]},{votes[2]},"
                     f"280,2,1,{valid + 3},{valid},3,{valid + 3},2024-02-15 23:29:50")
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    return path


def main() -> None:
    mapping = load_mapping("sirekap_tps_2024")
    with tempfile.TemporaryDirectory() as tmp:
        path, label = (REAL, "real Sirekap TPS table") if REAL.is_file() else (
            synthetic_table(Path(tmp) / "tps.csv.gz"), "synthetic table of the same shape (../shared absent)")
        best = None
        for _ in range(3):
            cpu, wall = time.process_time(), time.perf_counter()
            election, rejects = read_table(path, mapping)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best = min(best or (cpu, wall), (cpu, wall))
        rows = len(election) + len(rejects)
        rate = rows / best[0]
        print(f"import, {rows:,} rows ({label})   {rate:,.0f} rows/s per CPU second   "
              f"({best[0]:.2f} s CPU, {best[1]:.2f} s wall)   target >= {TARGET:,}   "
              f"{'ok' if rate >= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()

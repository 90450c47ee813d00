"""The R package ``spikes`` side by side with ``rozenas_spikes``: its reference data and a runner.

Rozenas (2017), Political Analysis 25:41; R package ``spikes`` 1.1 (CRAN). The project does not
ship R code: ``run_r_spikes`` calls ``../shared/tools/spikes_r.R`` (an Rscript that fits the
package's ``spikes()`` on a CSV with columns N, t, v) when R and the package are installed, and
``reference_ntv`` builds the N, t, v tables of the methods appendix's rows from the public files
in ``../shared/data/reference`` (never copied into this repository).

Rows (``REFERENCE_ROWS``), as ``docs/methods.md`` defines them:

- ``canada_2011_conservative``: the package's stored example output's data, 66,111 polls.
- ``spikes_example_data``: the package's example object ``data`` (95,045 Russia 2011 stations).
- ``russia_2011``: N registered, t ballots issued (early + in station + outside), v United Russia.
- ``uganda_2011``: N registered, t valid + invalid, v Museveni.
- ``canada_2011_polls``: every poll of Canada 2011, N electors, t valid votes (sum of the
  parties), v CPC.

Each table keeps the rows the R script keeps (0 < t <= N, 0 <= v <= t, complete counts), so both
implementations see the same stations.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["REFERENCE_ROWS", "RSpikesRun", "r_unavailable", "reference_ntv", "run_r_spikes", "shared_dir"]

#: name -> description of the row (methods.md, section 2).
REFERENCE_ROWS = {
    "canada_2011_conservative": "Canada 2011, Conservative (the package's stored example output's data)",
    "spikes_example_data": "the package's example object (Russia 2011 Duma stations, United Russia)",
    "russia_2011": "Russia 2011 Duma, United Russia (t = ballots issued)",
    "uganda_2011": "Uganda 2011, Museveni (t = valid + invalid)",
    "canada_2011_polls": "Canada 2011, every poll, CPC (t = valid votes)",
}


def shared_dir() -> Path:
    """``../shared`` beside the project's root (``FORENSIK_SHARED`` overrides it)."""
    env = os.environ.get("FORENSIK_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[3] / "shared"


def _clean(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype(float)
    ok = frame.notna().all(axis=1) & (frame["N"] > 0) & (frame["t"] > 0) & (frame["t"] <= frame["N"]) \
        & (frame["v"] >= 0) & (frame["v"] <= frame["t"])
    return frame[ok].astype(np.int64).reset_index(drop=True)


def reference_ntv(name: str, shared: Path | None = None) -> pd.DataFrame:
    """The N, t, v table of a row of ``REFERENCE_ROWS``, with the R script's exclusions applied.

    Raises ``FileNotFoundError`` when the shared file is absent and ``KeyError`` for an unknown name.
    """
    if name not in REFERENCE_ROWS:
        raise KeyError(f"unknown reference row {name!r}; known: {', '.join(REFERENCE_ROWS)}")
    ref = (shared or shared_dir()) / "data" / "reference"
    if name in ("canada_2011_conservative", "spikes_example_data"):
        return _clean(pd.read_csv(ref / f"{name}.csv.gz")[["N", "t", "v"]])
    if name in ("russia_2011", "uganda_2011"):
        from ..sources.tabular import load_mapping

        mapping = load_mapping(name)
        counts = mapping["counts"]
        winner = "UR" if name == "russia_2011" else "MUSEVENI"
        voters = counts["voters"] if isinstance(counts["voters"], list) else [counts["voters"]]
        columns = [counts["registered"], *voters, mapping["candidates"][winner]]
        raw = pd.read_csv(ref / ("russia_2011_duma.csv.gz" if name == "russia_2011" else "uganda_2011_president.csv.gz"),
                          usecols=columns)
        numeric = raw.apply(pd.to_numeric, errors="coerce")
        frame = pd.DataFrame({"N": numeric[counts["registered"]], "t": numeric[voters].sum(axis=1, min_count=len(voters)),
                              "v": numeric[mapping["candidates"][winner]]})
        return _clean(frame)
    polls = pd.read_csv(ref / "canada_2011_polls.csv.gz")
    parties = ["CPC", "LPC", "NDP", "BQ", "GPC", "OTHER"]
    frame = pd.DataFrame({"N": polls["electors"], "t": polls[parties].fillna(0).sum(axis=1), "v": polls["CPC"].fillna(0)})
    return _clean(frame)


def r_unavailable(shared: Path | None = None) -> str | None:
    """Why the R package cannot be run here (None when it can)."""
    script = (shared or shared_dir()) / "tools" / "spikes_r.R"
    if not script.exists():
        return f"{script} not found (../shared is absent)"
    rscript = shutil.which("Rscript")
    if rscript is None:
        return "Rscript not found (install r-base-core and r-cran-emdbook, then R CMD INSTALL the spikes source)"
    check = subprocess.run([rscript, "-e", "cat(requireNamespace('spikes', quietly = TRUE))"], capture_output=True,
                           text=True, timeout=120)
    if check.stdout.strip() != "TRUE":
        return "the R package 'spikes' is not installed (R CMD INSTALL ../shared/tools/spikes_1.1_source.tar.gz)"
    return None


@dataclass(frozen=True)
class RSpikesRun:
    """One run of the R package ``spikes`` through ``spikes_r.R``: its estimate and wall time."""

    fraud_percent: float
    rows: int
    resamples: int
    seed: int
    wall_s: float  # the package's own ``spikes()`` call (fits and resampling)
    total_s: float  # the whole Rscript process, reading the file included
    output: str


def run_r_spikes(data: pd.DataFrame | Path, *, resamples: int = 1000, seed: int = 1, nice: int = 10,
                 shared: Path | None = None, timeout: float | None = None) -> RSpikesRun:
    """Run the R package on ``data`` (a frame with N, t, v, or a CSV path) and parse its RESULT line.

    Raises ``RuntimeError`` when R is unavailable or the script fails.
    """
    reason = r_unavailable(shared)
    if reason:
        raise RuntimeError(reason)
    script = (shared or shared_dir()) / "tools" / "spikes_r.R"
    with tempfile.TemporaryDirectory(prefix="forensik-spikes-r-") as tmp:
        if isinstance(data, pd.DataFrame):
            path = Path(tmp) / "ntv.csv"
            data[["N", "t", "v"]].to_csv(path, index=False)
        else:
            path = Path(data)
        command = ["Rscript", str(script), str(path), str(int(resamples)), str(int(seed))]
        if nice:
            command = ["nice", "-n", str(int(nice)), *command]
        start = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        total = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"spikes_r.R failed ({done.returncode}): {done.stderr[-2000:]}")
    match = re.search(r"RESULT .*rows=(\d+) resamples=(\d+) seed=(\d+) fraud_percent=([0-9.eE+-]+) wall_s=([0-9.]+)",
                      done.stdout)
    if match is None:
        raise RuntimeError(f"no RESULT line in the output of spikes_r.R: {done.stdout[-2000:]}")
    rows, res, sd, fraud, wall = match.groups()
    return RSpikesRun(fraud_percent=float(fraud), rows=int(rows), resamples=int(res), seed=int(sd), wall_s=float(wall),
                      total_s=total, output=done.stdout)

"""Run the benchmark scripts, print their output as they go, and write it to a Markdown file.

``make bench`` calls this: every ``benchmarks/bench_*.py`` (or the scripts given), one after another,
each in its own process. The output file (default ``benchmarks/results.md``, committed) holds what
each script printed, verbatim, with its exit status and wall time, and the conditions of the run: UTC
time, git commit, Python, cores and the load average before and after. The docs' benchmarks page
includes that file as it is; nothing in it is typed by hand.

Run: python benchmarks/run.py [--out benchmarks/results.md] [benchmarks/bench_digits.py ...]
Exits 1 when a script failed (its output and status are still written).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def _commit() -> str:
    commit = _git("rev-parse", "--short=12", "HEAD") or "unknown (not a git checkout)"
    if _git("status", "--porcelain", "--untracked-files=no", "--", "analysis", "benchmarks"):
        commit += " with uncommitted changes in analysis/ or benchmarks/"
    return commit


def _load() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def run_script(script: Path) -> tuple[int, float, str]:
    """Run one script with this interpreter; echo and return (exit status, wall seconds, output)."""
    started = time.perf_counter()
    lines: list[str] = []
    process = subprocess.Popen([sys.executable, str(script)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, bufsize=1)
    assert process.stdout is not None
    for line in process.stdout:
        sys.stdout.write(line)
        sys.stdout.flush()
        lines.append(line.rstrip("\n"))
    status = process.wait()
    return status, time.perf_counter() - started, "\n".join(lines)


def write_results(out: Path, header: list[tuple[str, str]], runs: list[tuple[str, int, float, str]]) -> None:
    """Write the results file atomically (a temp file, then a rename)."""
    text = ["# Latest `make bench` run", "",
            "Written by `benchmarks/run.py` (`make bench`); each script's output is shown as it printed it.", ""]
    text += [f"- {name}: {value}" for name, value in header]
    for script, status, seconds, output in runs:
        verdict = "ok" if status == 0 else f"FAILED (exit status {status})"
        text += ["", f"## `{script}`", "", f"{verdict}, {seconds:,.1f} s wall", "", "```text", output or "(no output)", "```"]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text("\n".join(text) + "\n", encoding="utf-8")
    tmp.replace(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="*", type=Path, help="benchmark scripts (default: benchmarks/bench_*.py)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results.md", help="the Markdown file to write")
    args = parser.parse_args(argv)
    scripts = args.scripts or sorted((ROOT / "benchmarks").glob("bench_*.py"))
    started = dt.datetime.now(dt.timezone.utc)
    load_before = _load()
    runs = []
    for script in scripts:
        print(f"== {script}", flush=True)
        status, seconds, output = run_script(script)
        shown = script.resolve().relative_to(ROOT) if script.resolve().is_relative_to(ROOT) else script
        runs.append((str(shown), status, seconds, output))
    header = [
        ("started", started.strftime("%Y-%m-%d %H:%M UTC")),
        ("code", f"forensik git {_commit()}"),
        ("machine", f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"),
        ("load average (1 / 5 / 15 min)", f"{load_before} before, {_load()} after"),
        ("scripts", f"{len(runs)} run, {sum(r[1] != 0 for r in runs)} failed"),
    ]
    write_results(args.out, header, runs)
    print(f"wrote {args.out}")
    return 1 if any(status != 0 for _, status, _, _ in runs) else 0


if __name__ == "__main__":
    sys.exit(main())

"""The whole report batch at national scale: every province plus the national report, rendered.

Makes (once, cached) the full-scale synthetic election (`forensik demo --scale 1.0`, ~820,000 TPS), runs
`run_reports` on it with the local executor and prints each figure beside its target:

    wall time of the batch          target < 600 s
    peak memory per worker          target < 2,048 MB   (worker process and the kernels it ran)
    largest province page           target < 2 MB
    index page                      target < 200 KB

plus the per-notebook overhead (kernel start, papermill, HTML export of a notebook that only reads
its data), the time to read, hash and split the national file, the slowest reports, and the machine's
load average before and after (other work on the machine slows every figure here).

    .venv/bin/python benchmarks/bench_batch.py [--scale 1.0] [--jobs 2] [--out DIR] [--provinces 31,73]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MB = 1024 * 1024


def line(name: str, figure: str, target: str, ok: bool | None) -> None:
    verdict = "" if ok is None else ("ok" if ok else "MISSED")
    print(f"{name:<44} {figure:>22}   {target:<26} {verdict}", flush=True)


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def demo(scale: float, seed: int, cache: Path) -> Path:
    from analysis.synth import make_election

    path = cache / f"demo-scale{scale:g}-seed{seed}.parquet"
    if not path.exists():
        started = time.perf_counter()
        make_election(scale=scale, seed=seed).write(path)
        print(f"made {path} in {time.perf_counter() - started:.0f} s", flush=True)
    return path


def overhead(data: Path, repeats: int = 3) -> float:
    """Median seconds of one report whose notebook only reads its province: the fixed cost per notebook."""
    import nbformat

    from analysis.report.runner import run_reports

    with tempfile.TemporaryDirectory() as tmp:
        notebooks = Path(tmp) / "notebooks"
        notebooks.mkdir()
        nb = nbformat.v4.new_notebook()
        params = nbformat.v4.new_code_cell('data_path: str = ""\nprovince: str = "31"\nsummary_path: str = ""')
        params.metadata["tags"] = ["parameters"]
        body = ("%matplotlib inline\nfrom analysis import consistency, digits, plots, turnout\n"
                "from analysis.election import Election\nfrom analysis.report import sections\n"
                "election = Election.read_parquet(data_path).select(province=province)\n"
                "sections.save_summary(summary_path, scope='province', code=province, election=election, flags=[], "
                "parameters={})")
        nb.cells = [params, nbformat.v4.new_code_cell(body)]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, notebooks / "province.ipynb")
        result = run_reports(data, provinces=["31"] * 1, out_dir=Path(tmp) / "warm", jobs=1, national=False,
                             notebooks_dir=notebooks, progress=False)  # warm the file cache and imports
        times = []
        for _ in range(repeats):
            result = run_reports(data, provinces=["31"], out_dir=Path(tmp) / "site", jobs=1, national=False,
                                 notebooks_dir=notebooks, progress=False)
            assert result.ok, result.failed
            times.append(result.reports[0].seconds)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--n-sim", type=int, default=1000)
    parser.add_argument("--provinces", default="all", help="comma-separated codes, or all")
    parser.add_argument("--out", default=str(ROOT / "reports" / "bench-batch"), help="where the batch renders")
    parser.add_argument("--notebooks", default=None, help="folder with province.ipynb and national.ipynb "
                        "(default: the project's notebooks/)")
    parser.add_argument("--cache", default=str(Path(tempfile.gettempdir()) / "forensik-bench"),
                        help="where the synthetic election is kept between runs")
    args = parser.parse_args()

    from analysis.report.index import write_index
    from analysis.report.runner import run_reports

    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    data = demo(args.scale, args.seed, cache)
    print(f"data: {data} ({data.stat().st_size / MB:.1f} MB)", flush=True)
    print(f"before: {load()}", flush=True)
    per_notebook = overhead(data)
    provinces = "all" if args.provinces == "all" else args.provinces.split(",")
    started = time.perf_counter()
    batch = run_reports(data, provinces=provinces, out_dir=args.out, jobs=args.jobs, notebooks_dir=args.notebooks,
                        parameters={"seed": args.seed, "n_sim": args.n_sim}, progress=True)
    index = write_index(args.out, batch)
    wall = time.perf_counter() - started
    after = load()

    reports = [r for r in batch.reports if r.html_path]
    provinces_html = [Path(r.html_path).stat().st_size for r in reports if r.code != "national"]
    national = next((r for r in batch.reports if r.code == "national"), None)
    peak = max((r.peak_memory_mb or 0) for r in batch.reports)
    import pyarrow.parquet as pq

    stations = pq.ParquetFile(data).metadata.num_rows
    print()
    line(f"batch, {stations:,} TPS, {len(batch.reports)} reports", f"{wall:.0f} s", "target < 600 s", wall < 600)
    line("  failed reports", f"{len(batch.failed)}", "target 0", not batch.failed)
    line("  read, hash and split the national file", f"{batch.prepare_seconds:.1f} s", "", None)
    line("  per-notebook overhead (kernel, papermill, export)", f"{per_notebook:.1f} s", "", None)
    slow = sorted(batch.reports, key=lambda r: -r.seconds)[:4]
    line("  slowest reports", ", ".join(f"{r.code} {r.seconds:.0f} s" for r in slow), "", None)
    cpu = sum(r.cpu_seconds or 0 for r in batch.reports)
    national_cpu = (national.cpu_seconds or 0) if national else 0
    # On a quiet machine: the national report starts first beside the provinces, so the batch takes
    # the longer of that report and an even share of all the work (the bound of longest-first scheduling).
    quiet = batch.prepare_seconds + max(national_cpu, cpu / args.jobs)
    line("  CPU time of all reports (workers + kernels)", f"{cpu:.0f} s", "", None)
    line("  wall time on a quiet machine (estimate from CPU)", f"{quiet:.0f} s", "target < 600 s", quiet < 600)
    line("  sum of report times / wall (parallelism)", f"{sum(r.seconds for r in batch.reports) / wall:.2f}",
         f"of {args.jobs} workers", None)
    line("peak memory per worker", f"{peak:,.0f} MB", "target < 2,048 MB", peak < 2048)
    if provinces_html:
        line("largest province page", f"{max(provinces_html) / MB:.2f} MB", "target < 2 MB", max(provinces_html) < 2 * MB)
        line("  median province page", f"{statistics.median(provinces_html) / 1024:.0f} KB", "", None)
    if national and national.html_path:
        line("national page", f"{Path(national.html_path).stat().st_size / 1024:.0f} KB", "", None)
    size = Path(index).stat().st_size
    line("index page", f"{size / 1024:.0f} KB", "target < 200 KB", size < 200 * 1024)
    site = sum(p.stat().st_size for p in Path(args.out).rglob("*") if p.is_file() and "_build" not in p.parts)
    line("  published site (without _build/)", f"{site / MB:.1f} MB", "", None)
    print(f"\nbefore the batch: see above; after: {after}")
    (Path(args.out) / "bench.json").write_text(json.dumps({
        "wall_s": round(wall, 1), "prepare_s": batch.prepare_seconds, "overhead_s": per_notebook, "peak_mb": peak,
        "reports": [{"code": r.code, "s": r.seconds, "cpu_s": r.cpu_seconds, "mb": r.peak_memory_mb, "status": r.status,
                     "error": r.error} for r in batch.reports],
        "load_after": after}, indent=1))
    return 0 if batch.ok and wall < 600 and peak < 2048 else 1


if __name__ == "__main__":
    sys.exit(main())

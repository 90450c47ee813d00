"""Run the province and national notebooks with papermill in parallel processes, then export HTML."""

from __future__ import annotations

import multiprocessing
import os
import re
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

CODE = re.compile(r"^[0-9]{2,13}$")
NATIONAL = "national"


@dataclass(frozen=True)
class ReportResult:
    """One rendered (or failed) report."""

    code: str
    status: str  # "ok" or "failed"
    seconds: float
    notebook_path: str
    html_path: str | None
    summary_path: str
    error: str = ""


@dataclass(frozen=True)
class BatchResult:
    """Every report of a batch, in the order provinces were asked for, national last."""

    reports: tuple[ReportResult, ...]
    out_dir: str
    data_path: str
    parameters: Mapping[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> list[ReportResult]:
        return [r for r in self.reports if r.status != "ok"]

    @property
    def ok(self) -> bool:
        return not self.failed


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the source tree this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def _short_error(err: BaseException) -> str:
    ename, evalue = getattr(err, "ename", None), getattr(err, "evalue", None)
    text = f"{ename}: {evalue}" if ename else f"{type(err).__name__}: {err}"
    text = " ".join(str(text).split())
    return text[:500]


def _run_one(job: dict[str, Any]) -> ReportResult:
    """Execute one notebook and export it; never raises (a failure is a result)."""
    import papermill

    from .export import export_html

    started = time.perf_counter()
    out_dir = Path(job["report_dir"])
    out_dir.mkdir(parents=True, exist_ok=True)
    executed = out_dir / job["executed_name"]
    html_path = out_dir / "index.html"
    error = ""
    # The kernel inherits this process's stderr: its chatter goes to a log beside the report,
    # not over the progress bar.
    log = open(out_dir / "kernel.log", "ab")
    saved_stderr = os.dup(2)
    os.dup2(log.fileno(), 2)
    try:
        papermill.execute_notebook(
            job["template"], str(executed), parameters=job["parameters"], kernel_name="python3",
            cwd=job["cwd"], progress_bar=False, log_output=False, execution_timeout=job["timeout"],
        )
    except BaseException as err:  # noqa: BLE001 - one report failing must not stop the batch
        error = _short_error(err)
    finally:
        os.dup2(saved_stderr, 2)
        os.close(saved_stderr)
        log.close()
    html = None
    if executed.exists():
        try:
            html = str(export_html(executed, html_path, title=job["title"], footer=job["footer"]))
        except Exception as err:  # noqa: BLE001
            error = error or f"HTML export failed: {_short_error(err)}"
    if not error and not Path(job["parameters"]["summary_path"]).exists():
        error = "the notebook ran but wrote no summary"
    return ReportResult(
        code=job["code"], status="failed" if error else "ok", seconds=round(time.perf_counter() - started, 2),
        notebook_path=str(executed), html_path=html, summary_path=job["parameters"]["summary_path"], error=error,
    )


def _province_codes(data_path: Path, provinces: Sequence[str] | str) -> tuple[list[str], set[str]]:
    """The province codes asked for, and those of them the data holds."""
    import pyarrow.parquet as pq

    present = {str(c) for c in pq.read_table(data_path, columns=["province"]).column("province").unique().to_pylist()
               if c is not None}
    if provinces == "all" or provinces == ["all"]:
        return sorted(present), present
    codes = [str(c) for c in provinces]
    bad = [c for c in codes if not CODE.fullmatch(c)]
    if bad:
        raise ValueError(f"province codes must match ^[0-9]{{2,13}}$: {', '.join(map(repr, bad))}")
    return codes, present


def _worker_init(mpl_dir: str) -> None:
    # Kernels inherit this environment: a writable matplotlib cache, no GUI backend choice forced.
    os.environ.setdefault("MPLCONFIGDIR", mpl_dir)
    os.environ.pop("MPLBACKEND", None)
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def run_reports(
    data_path: str | Path,
    *,
    provinces: Sequence[str] | str = "all",
    out_dir: str | Path = "reports",
    jobs: int = 2,
    national: bool = True,
    notebooks_dir: str | Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout_per_cell: int = 900,
    progress: bool = True,
) -> BatchResult:
    """Run ``province.ipynb`` per province and ``national.ipynb`` with papermill; export each to HTML.

    Parameters go through papermill's Python API, so codes stay strings. Each report lands in
    ``out_dir/<code>/`` (executed notebook, ``index.html``, ``summary.json``). A report that fails
    is recorded with its error, its partial HTML is still exported, and the others go on.
    """
    from .export import install_stylesheet

    data_path = Path(data_path).resolve()
    if not data_path.is_file():
        raise FileNotFoundError(f"no election file at {data_path}")
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    install_stylesheet(out_dir)
    notebooks_dir = Path(notebooks_dir or default_notebooks_dir()).resolve()
    extra = dict(parameters or {})
    codes, present = _province_codes(data_path, provinces)

    jobs_list: list[dict[str, Any]] = []
    footer = {"data": str(data_path.name), **{k: str(v) for k, v in extra.items()}}
    if national:
        report_dir = out_dir / NATIONAL
        jobs_list.append({
            "code": NATIONAL, "template": str(notebooks_dir / "national.ipynb"), "report_dir": str(report_dir),
            "executed_name": "national.ipynb", "cwd": str(notebooks_dir), "timeout": timeout_per_cell,
            "title": "National report", "footer": footer,
            "parameters": {"data_path": str(data_path), "summary_path": str(report_dir / "summary.json"),
                           "province_summaries_dir": str(out_dir), **extra},
        })
    results: dict[str, ReportResult] = {}
    for code in codes:
        report_dir = out_dir / code
        if code not in present:
            results[code] = ReportResult(code, "failed", 0.0, "", None, str(report_dir / "summary.json"),
                                         f"no TPS of province {code} in {data_path.name}")
            continue
        jobs_list.append({
            "code": code, "template": str(notebooks_dir / "province.ipynb"), "report_dir": str(report_dir),
            "executed_name": f"province-{code}.ipynb", "cwd": str(notebooks_dir), "timeout": timeout_per_cell,
            "title": f"Province {code}", "footer": footer,
            "parameters": {"data_path": str(data_path), "province": code,
                           "summary_path": str(report_dir / "summary.json"), **extra},
        })
    for job in jobs_list:
        if not Path(job["template"]).is_file():
            raise FileNotFoundError(f"notebook template missing: {job['template']}")

    mpl_dir = tempfile.mkdtemp(prefix="forensik-mpl-")
    # The national report is the longest: it is submitted first so it does not finish last alone.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=max(1, int(jobs)), mp_context=context,
                             initializer=_worker_init, initargs=(mpl_dir,)) as pool:
        futures = {pool.submit(_run_one, job): job for job in jobs_list}
        bar = tqdm(total=len(futures), desc="reports", unit="report", disable=not progress)
        failures = 0
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except BaseException as err:  # noqa: BLE001 - a crashed worker is one failed report
                result = ReportResult(job["code"], "failed", 0.0, "", None, job["parameters"]["summary_path"],
                                       _short_error(err))
            results[job["code"]] = result
            failures += result.status != "ok"
            bar.set_postfix(failed=failures, last=job["code"])
            bar.update()
        bar.close()
    ordered = [results[c] for c in codes] + ([results[NATIONAL]] if national else [])
    return BatchResult(reports=tuple(ordered), out_dir=str(out_dir), data_path=str(data_path), parameters=extra)

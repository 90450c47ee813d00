"""Run the province notebooks, then the national one, with papermill in parallel processes; export HTML.

Layout of ``out_dir`` (every report in its own folder, so a report's URL is its folder)::

    index.html, index.json          written by ``index.write_index``
    <code>/index.html               the report, script-free HTML (a failed one too, showing its error)
    <code>/province-<code>.ipynb    the executed notebook
    <code>/summary.json             what the notebook wrote at its end (``summary.write_summary``)
    national/index.html, national/national.ipynb, national/summary.json
    logs/<code>.log                 the kernel's own stderr, for whoever debugs a failure

The kernel is always the interpreter running the batch (``sys.executable``, its ipykernel), whatever
``python3`` kernelspec the user has installed elsewhere: the runner puts a ``python3`` spec naming
``sys.executable`` first on ``JUPYTER_PATH`` in its workers.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

CODE = re.compile(r"[0-9]{2,13}")
NATIONAL = "national"
KERNEL_NAME = "python3"
#: matplotlib's inline backend draws with Agg (no display needed) and puts each figure in the notebook
#: as PNG. Plain ``MPLBACKEND=Agg`` would be inherited by the kernel and leave every figure out of it.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"


@dataclass(frozen=True)
class ReportResult:
    """One report of a batch: rendered ("ok") or "failed" with the reason."""

    code: str
    status: str
    seconds: float
    notebook_path: str | None
    html_path: str | None
    summary_path: str
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class BatchResult:
    """Every report of a batch, provinces in the order asked for, national last."""

    reports: tuple[ReportResult, ...]
    out_dir: str
    data_path: str
    data_sha256: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def failed(self) -> list[ReportResult]:
        return [r for r in self.reports if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_frame(self):
        """One row per report: code, status, seconds, error."""
        import pandas as pd

        return pd.DataFrame([{"code": r.code, "status": r.status, "seconds": r.seconds, "error": r.error}
                             for r in self.reports])

    def _repr_html_(self) -> str:
        return self.to_frame().to_html(index=False, escape=True)


def default_notebooks_dir() -> Path:
    """``notebooks/`` of the source tree this package runs from (the project is installed editable)."""
    return Path(__file__).resolve().parents[2] / "notebooks"


def check_code(code: Any) -> str:
    """A region code as a string of 2 to 13 ASCII digits, or ``ValueError``: codes become folder names."""
    if not isinstance(code, str):
        hint = " (pass codes as strings: 2 would lose the leading zero of '02')" if isinstance(code, int) else ""
        raise ValueError(f"region code must be a string, got {type(code).__name__} {code!r}{hint}")
    if not CODE.fullmatch(code):
        raise ValueError(f"region code must be 2 to 13 digits (^[0-9]{{2,13}}$), got {code!r}")
    return code


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def short_error(err: BaseException, timeout: float | None = None) -> str:
    """One line naming what went wrong: a notebook's ``ename: evalue``, else the exception."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    if isinstance(err, CellTimeoutError):
        text = f"timed out: a cell ran longer than {timeout:g} s" if timeout else "timed out"
    elif isinstance(err, DeadKernelError):
        text = f"the kernel died (out of memory?): {err}"
    elif getattr(err, "ename", None):
        text = f"{err.ename}: {getattr(err, 'evalue', '')}"
    else:
        text = f"{type(err).__name__}: {err}"
    text = " ".join(str(text).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _report_title(code: str, summary_path: Path) -> str:
    """"Province 31: DKI JAKARTA" when the summary names it, else "Province 31"."""
    label = "National report" if code == NATIONAL else f"Province {code}"
    try:
        from .summary import read_summary

        name = read_summary(summary_path)["name"]
    except Exception:  # noqa: BLE001 - no usable summary: the title goes without a name
        name = ""
    return f"{label}: {name}" if name and name != code else label


def _run_one(job: dict[str, Any]) -> ReportResult:
    """Execute one notebook with papermill and export it to HTML; never raises (a failure is a result)."""
    import papermill

    from .export import export_html
    from .summary import SummaryError, read_summary

    started = time.perf_counter()
    report_dir = Path(job["report_dir"])
    report_dir.mkdir(parents=True, exist_ok=True)
    executed = report_dir / job["executed_name"]
    html_path = report_dir / "index.html"
    summary_path = Path(job["parameters"]["summary_path"])
    # A previous run's files must not pass for this run's.
    for stale in (executed, html_path, summary_path):
        stale.unlink(missing_ok=True)
    error = ""
    # The kernel writes to the stderr it inherits from this worker: into a log, not over the progress bar.
    log_path = Path(job["log_path"])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved_stderr = os.dup(2)
    with open(log_path, "wb") as log:
        os.dup2(log.fileno(), 2)
        try:
            papermill.execute_notebook(
                job["template"], str(executed), parameters=job["parameters"], kernel_name=KERNEL_NAME,
                cwd=job["cwd"], progress_bar=False, log_output=False, execution_timeout=job["timeout"],
            )
        except Exception as err:  # noqa: BLE001 - one report failing must not stop the batch (Ctrl-C does)
            error = short_error(err, job["timeout"])
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    if not error:
        try:
            summary = read_summary(summary_path)
            if summary["code"] != job["code"]:
                error = f"the notebook wrote a summary for {summary['code']!r}, not {job['code']!r}"
        except SummaryError as err:
            error = f"no usable summary: {err}" if summary_path.exists() else "the notebook ran but wrote no summary"
    html = None
    if executed.exists():
        try:
            html = str(export_html(executed, html_path, title=_report_title(job["code"], summary_path), error=error,
                                   footer=job["footer"]))
        except Exception as err:  # noqa: BLE001 - the report's failure is the news, not a traceback
            error = error or f"HTML export failed: {short_error(err)}"
    return ReportResult(
        code=job["code"], status="failed" if error else "ok", seconds=round(time.perf_counter() - started, 2),
        notebook_path=str(executed) if executed.exists() else None, html_path=html,
        summary_path=str(summary_path), error=error,
    )


def _worker_init(scratch: str) -> None:
    """Environment every worker (and so every kernel it starts) runs with."""
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    mpl_dir = Path(scratch) / "matplotlib"
    mpl_dir.mkdir(parents=True, exist_ok=True)
    os.environ["MPLCONFIGDIR"] = str(mpl_dir)
    kernels = Path(scratch) / "jupyter"
    os.environ["JUPYTER_PATH"] = os.pathsep.join(filter(None, [str(kernels), os.environ.get("JUPYTER_PATH", "")]))
    # The debugger's warning about frozen modules is noise in a batch run.
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")


def _write_kernelspec(scratch: Path) -> Path:
    """A ``python3`` kernelspec that runs this interpreter's ipykernel, whatever else is installed."""
    spec_dir = scratch / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (forensik batch)", "language": "python", "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec_dir


def _codes(data_path: Path, provinces: Sequence[str] | str) -> tuple[list[str], set[str], list[str]]:
    """The province codes to run, the codes the data holds, and codes in the data that are not valid codes."""
    import pyarrow.parquet as pq

    names = pq.read_schema(data_path).names
    if "province" not in names:
        raise ValueError(f"{data_path.name} has no 'province' column; the province reports need one")
    column = pq.read_table(data_path, columns=["province"]).column("province").unique().to_pylist()
    present = {str(c) for c in column if c is not None}
    invalid = sorted(c for c in present if not CODE.fullmatch(c))
    if isinstance(provinces, str):
        if provinces != "all":
            raise ValueError(f"provinces must be a list of codes or 'all', got {provinces!r}")
        return sorted(present - set(invalid)), present, invalid
    codes = [check_code(c) for c in provinces]
    return list(dict.fromkeys(codes)), present, []


def run_reports(
    data_path: str | Path,
    *,
    provinces: Sequence[str] | str = "all",
    out_dir: str | Path = "reports",
    jobs: int = 2,
    national: bool = True,
    notebooks_dir: str | Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout_per_cell: float = 600,
    progress: bool = True,
) -> BatchResult:
    """Run ``province.ipynb`` for each province, then ``national.ipynb``, with papermill; export each to HTML.

    Parameters go through papermill's Python API, so codes stay strings. Provinces run in
    ``jobs`` separate processes; a report that fails (an exception, a timeout, a dead kernel) is
    recorded with its error, its partial HTML is still exported, and the others go on. The
    national report runs after the provinces, with ``province_summaries_dir`` = ``out_dir``.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    data_path = Path(data_path).resolve()
    if not data_path.is_file():
        raise FileNotFoundError(f"no election file at {data_path}")
    if int(jobs) < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out_dir = Path(out_dir).resolve()
    notebooks_dir = Path(notebooks_dir or default_notebooks_dir()).resolve()
    extra = dict(parameters or {})
    reserved = {"data_path", "province", "summary_path", "province_summaries_dir"} & set(extra)
    if reserved:
        raise ValueError(f"parameters may not set {', '.join(sorted(reserved))}: the runner sets them")
    codes, present, invalid = _codes(data_path, provinces)
    templates = {"province": notebooks_dir / "province.ipynb", "national": notebooks_dir / "national.ipynb"}
    needed = ["province"] * bool(codes) + ["national"] * bool(national)
    missing = [str(templates[k]) for k in needed if not templates[k].is_file()]
    if missing:
        raise FileNotFoundError(f"notebook template missing: {', '.join(missing)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    data_sha256 = file_sha256(data_path)
    footer = {"data": data_path.name, "data SHA-256": data_sha256, **{k: str(v) for k, v in extra.items()}}

    def job(code: str) -> dict[str, Any]:
        report_dir = out_dir / code
        common = {"data_path": str(data_path), "summary_path": str(report_dir / "summary.json")}
        if code == NATIONAL:
            params, template, executed = {**common, "province_summaries_dir": str(out_dir)}, "national", "national.ipynb"
        else:
            params, template, executed = {**common, "province": code}, "province", f"province-{code}.ipynb"
        return {"code": code, "template": str(templates[template]), "report_dir": str(report_dir),
                "executed_name": executed, "cwd": str(notebooks_dir), "timeout": timeout_per_cell,
                "log_path": str(out_dir / "logs" / f"{code}.log"), "footer": footer,
                "parameters": {**extra, **params}}

    results: dict[str, ReportResult] = {}
    for code in invalid:
        # Recorded as failed without touching a path: the code is not a safe folder name.
        results[code] = ReportResult(code, "failed", 0.0, None, None, "",
                                     f"the data holds province code {code!r}, which is not 2 to 13 digits")
    runnable = []
    for code in codes:
        if code in present:
            runnable.append(code)
        else:
            results[code] = ReportResult(code, "failed", 0.0, None, None, str(out_dir / code / "summary.json"),
                                         f"no TPS of province {code} in {data_path.name}")

    scratch = Path(tempfile.mkdtemp(prefix="forensik-batch-"))
    _write_kernelspec(scratch)
    total = len(runnable) + len(results) + bool(national)
    bar = tqdm(total=total, desc="reports", unit="report", disable=not progress, file=sys.stderr)
    bar.update(len(results))
    failures = len(results)
    bar.set_postfix(failed=failures)

    def record(result: ReportResult) -> None:
        nonlocal failures
        results[result.code] = result
        failures += not result.ok
        bar.set_postfix(failed=failures, last=result.code)
        bar.update()

    def crashed(j: dict[str, Any], err: BaseException) -> ReportResult:
        hint = ""
        if isinstance(err, BrokenProcessPool):
            hint = (" (a worker process died; from a script, call run_reports under "
                    "`if __name__ == \"__main__\":`, since workers are spawned and import the script)")
        return ReportResult(j["code"], "failed", 0.0, None, None, j["parameters"]["summary_path"],
                            f"worker crashed: {short_error(err)}{hint}")

    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=context, initializer=_worker_init,
                                 initargs=(str(scratch),)) as pool:
            # Provinces first; the national report after them, so it can read their summaries.
            for stage in ([job(c) for c in runnable], [job(NATIONAL)] if national else []):
                futures = {}
                for j in stage:
                    try:
                        futures[pool.submit(_run_one, j)] = j
                    except BrokenProcessPool as err:
                        record(crashed(j, err))
                try:
                    for future in as_completed(futures):
                        try:
                            result = future.result()
                        except Exception as err:  # noqa: BLE001 - a crashed worker is one failed report
                            result = crashed(futures[future], err)
                        record(result)
                except KeyboardInterrupt:
                    # Stop now: without this the pool would still run every queued report.
                    pool.shutdown(wait=False, cancel_futures=True)
                    raise
    finally:
        bar.close()
        shutil.rmtree(scratch, ignore_errors=True)
    order = invalid + codes + ([NATIONAL] if national else [])
    return BatchResult(reports=tuple(results[c] for c in order), out_dir=str(out_dir), data_path=str(data_path),
                       data_sha256=data_sha256, parameters=extra, seconds=round(time.perf_counter() - started, 2))

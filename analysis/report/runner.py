"""Run the province and national notebooks with papermill in parallel processes; export HTML.

Layout of ``out_dir`` (every report in its own folder, so a report's URL is its folder)::

    index.html, index.json          written by ``index.write_index``
    <code>/index.html               the report: one self-contained HTML file (a failed one too, showing its error)
    <code>/summary.json             what the notebook wrote at its end, plus the batch's ``build`` record
    national/index.html, national/summary.json
    _build/<code>.ipynb             the executed notebooks (audit copies; not needed to read the site)
    _build/logs/<code>.log          the kernel's own stderr, for whoever debugs a failure

The executed notebooks hold every figure a second time, so they stay out of the report folders:
publishing a site means copying everything but ``_build/`` (``index.json`` links them for auditors).

The national file is read once, hashed as read, and split into one small Election file per province
(``data.split_by_province``); each province notebook reads only its own file. The national report
(the longest) and then the provinces run largest first, so that the biggest ones do not start last
and hold up the batch; a national notebook that declares ``province_summaries_dir`` waits for the
provinces instead, to read their summaries.

Executors: ``"local"`` runs ``jobs`` worker processes on this machine; ``"dask"`` submits one task per
notebook to a Dask distributed scheduler (``pip install .[dask]``). A Dask task carries its notebook,
its data file and (for the national report) the province summaries as bytes and returns its output
files as bytes, so the workers need forensik installed but no shared file system.

The kernel is always the interpreter running the worker (``sys.executable``, its ipykernel), whatever
``python3`` kernelspec the user has installed elsewhere: the runner puts a ``python3`` spec naming
``sys.executable`` first on ``JUPYTER_PATH`` in its workers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import multiprocessing
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..cache import CACHE_VARIABLE
from .folders import BUILD_DIR, FOLDER, NATIONAL, RESERVED_FOLDERS, folder_name

CODE = re.compile(r"[0-9]{2,13}")
KERNEL_NAME = "python3"
EXECUTORS = ("local", "dask")
#: matplotlib's inline backend draws with Agg (no display needed) and puts each figure in the notebook
#: as PNG. Plain ``MPLBACKEND=Agg`` would be inherited by the kernel and leave every figure out of it.
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
#: Redirecting fd 2 is process-wide: one notebook at a time per process (Dask workers may have threads).
_STDERR_LOCK = threading.Lock()


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
    #: Peak resident memory of the worker and every kernel it ran so far, in MB (None: not measured).
    peak_memory_mb: float | None = None
    #: Where it ran: "local" or the Dask worker's address.
    worker: str = ""
    #: CPU seconds of the worker and the notebook's kernel for this report (what a busy machine does not inflate).
    cpu_seconds: float | None = None

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
    #: What every page and summary says it was made from (``build_record``).
    build: Mapping[str, Any] = field(default_factory=dict)
    #: Seconds spent before the first notebook started (reading, hashing and splitting the data).
    prepare_seconds: float = 0.0

    @property
    def failed(self) -> list[ReportResult]:
        return [r for r in self.reports if not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_frame(self):
        """One row per report: code, status, seconds, peak memory, error."""
        import pandas as pd

        return pd.DataFrame([{"code": r.code, "status": r.status, "seconds": r.seconds,
                              "peak_memory_mb": r.peak_memory_mb, "error": r.error} for r in self.reports])

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


def code_revision() -> str:
    """The code version: the package version, plus the git commit (and "modified") in a source checkout."""
    from ..election import code_version

    version = f"forensik {code_version()}"
    root = Path(__file__).resolve().parents[2]
    if not (root / ".git").exists() or not shutil.which("git"):
        return version
    try:
        run = lambda *args: subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,  # noqa: E731
                                           timeout=10)
        commit = run("rev-parse", "--short=12", "HEAD").stdout.strip()
        if not commit:
            return version
        dirty = run("status", "--porcelain", "--untracked-files=no", "--", "analysis", "notebooks").stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}, git {commit}" + (" with uncommitted changes in analysis/ or notebooks/" if dirty else "")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def build_record(data_file: str, data_sha256: str, provenance: Mapping[str, Any], parameters: Mapping[str, Any],
                 election_name: str = "") -> dict[str, Any]:
    """What a batch was made from: the data file as read, its provenance times, the code, the parameters."""
    from .data import data_times

    record: dict[str, Any] = {
        "data_file": data_file,
        "data_sha256": data_sha256,
        "election": election_name,
        "source": str(provenance.get("source", "")),
        "table_sha256": str(provenance.get("table_sha256", "")),
        "input_sha256": str(provenance.get("input_sha256", "")),
        **{f"{key}_time": value for key, value in data_times(provenance).items()},
        "code_version": code_revision(),
        "python": sys.version.split()[0],
        "parameters": {str(k): v for k, v in parameters.items()},
        "batch_started": utc_now(),
    }
    return {k: v for k, v in record.items() if v not in ("", None)}


def footer_pairs(build: Mapping[str, Any]) -> dict[str, str]:
    """``build_record`` as the (label, text) pairs a page's footer shows."""
    labels = {"data_file": "data file", "data_sha256": "data file SHA-256 (as read)", "election": "election",
              "source": "source", "table_sha256": "table SHA-256", "input_sha256": "input SHA-256",
              "snapshot_time": "snapshot time", "fetched_time": "fetch time", "created_time": "table created",
              "code_version": "code version", "python": "python", "batch_started": "batch started (UTC)"}
    pairs = {labels[k]: str(v) for k, v in build.items() if k in labels}
    # Parameters verbatim: a seed of 2024 is not "2,024".
    pairs.update({f"parameter {k}": str(v) for k, v in dict(build.get("parameters", {})).items()})
    return pairs


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


#: How jupyter_client says a kernel never answered its first request (no cell has run).
KERNEL_START_FAILURES = ("Kernel died before replying to kernel_info", "Kernel didn't respond in")


def kernel_never_started(err: BaseException) -> bool:
    """Whether a notebook failed because its kernel died or hung before it ran any cell."""
    return isinstance(err, RuntimeError) and str(err).startswith(KERNEL_START_FAILURES)


def _report_title(code: str, summary_path: Path, level: str = "province") -> str:
    """"Province 31: DKI JAKARTA" when the summary names it, else "Province 31"."""
    label = "National report" if code == NATIONAL else f"{level.replace('_', ' ').capitalize()} {code}"
    try:
        from .summary import read_summary

        name = read_summary(summary_path)["name"]
    except Exception:  # noqa: BLE001 - no usable summary: the title goes without a name
        name = ""
    return f"{label}: {name}" if name and name != code else label


def peak_memory_mb() -> float:
    """Peak resident memory of this process or any child it waited for (its kernels), in MB."""
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20  # ru_maxrss: KiB on Linux, bytes on macOS
    return round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                     resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) * scale, 1)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and of every child it waited for (its kernels)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _reads_summaries(template: Path) -> bool:
    """Whether a national notebook declares the ``province_summaries_dir`` parameter (papermill's inspection)."""
    import papermill

    return "province_summaries_dir" in papermill.inspect_notebook(str(template))


def _paths(job: Mapping[str, Any]) -> dict[str, Path]:
    """Where one job reads and writes, all under its ``site`` folder."""
    site = Path(job["site"])
    folder = job.get("folder") or job["code"]
    return {"report_dir": site / folder, "html": site / folder / "index.html", "summary": site / folder / "summary.json",
            "executed": site / BUILD_DIR / f"{folder}.ipynb", "log": site / BUILD_DIR / "logs" / f"{folder}.log"}


def _parameters(job: Mapping[str, Any]) -> dict[str, Any]:
    paths = _paths(job)
    params = {**job["extra"], "data_path": job["data_path"], "summary_path": str(paths["summary"])}
    if job["code"] == NATIONAL:
        if _reads_summaries(Path(job["template"])):
            params["province_summaries_dir"] = job["site"]
    else:
        declared = _declared(Path(job["template"]))
        # The shipped templates take ``level`` and ``region``; an older template takes ``province``.
        params["region" if "region" in declared else "province"] = job["code"]
        if "level" in declared:
            params["level"] = job.get("level", "province")
    if job["code"] == NATIONAL and "level" in _declared(Path(job["template"])):
        params["level"] = job.get("level", "province")
    return params


def _declared(template: Path) -> set[str]:
    """The parameters a notebook template declares (papermill's inspection)."""
    import papermill

    return set(papermill.inspect_notebook(str(template)))


def _add_build(summary_path: Path, build: Mapping[str, Any]) -> None:
    """Put the batch's ``build`` record (data, code, parameters, rendering time) into a report's summary."""
    from .folders import write_atomic

    body = json.loads(summary_path.read_text(encoding="utf-8"))
    body["build"] = dict(build)
    write_atomic(summary_path, json.dumps(body, indent=1, allow_nan=False, ensure_ascii=False, default=str))


def _run_one(job: dict[str, Any]) -> ReportResult:
    """Execute one notebook with papermill and export it to HTML; never raises (a failure is a result)."""
    import papermill

    from .export import export_html
    from .summary import SummaryError, read_summary

    started, cpu_started = time.perf_counter(), cpu_seconds()
    if job.get("started_marker"):  # tells the local runner which reports were running if this worker dies
        Path(job["started_marker"]).touch()
    paths = _paths(job)
    paths["report_dir"].mkdir(parents=True, exist_ok=True)
    paths["executed"].parent.mkdir(parents=True, exist_ok=True)
    # A previous run's files must not pass for this run's.
    for stale in (paths["executed"], paths["html"], paths["summary"]):
        stale.unlink(missing_ok=True)
    error = ""
    # The kernel writes to the stderr it inherits from this worker: into a log, not over the progress bar.
    paths["log"].parent.mkdir(parents=True, exist_ok=True)
    with _STDERR_LOCK, open(paths["log"], "wb") as log:
        saved_stderr = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            for attempt in (1, 2):
                try:
                    papermill.execute_notebook(
                        job["template"], str(paths["executed"]), parameters=_parameters(job), kernel_name=KERNEL_NAME,
                        cwd=job["cwd"], progress_bar=False, log_output=False, execution_timeout=job["timeout"],
                    )
                    error = ""
                    break
                except Exception as err:  # noqa: BLE001 - one report failing must not stop the batch (Ctrl-C does)
                    error = short_error(err, job["timeout"])
                    if attempt == 1 and kernel_never_started(err):
                        # No cell ran: a kernel lost at start on a loaded machine, not the report's fault.
                        os.write(2, f"forensik: {error}; starting the kernel once more\n".encode())
                        continue
                    break
        finally:
            os.dup2(saved_stderr, 2)
            os.close(saved_stderr)
    rendered = utc_now()
    if not error:
        try:
            summary = read_summary(paths["summary"])
            if summary["code"] != job["code"]:
                error = f"the notebook wrote a summary for {summary['code']!r}, not {job['code']!r}"
            else:
                _add_build(paths["summary"], {**job["build"], "scope": job["code"], "rendered": rendered})
        except SummaryError as err:
            error = f"no usable summary: {err}" if paths["summary"].exists() else "the notebook ran but wrote no summary"
    html = None
    if paths["executed"].exists():
        footer = {"report": job["code"], **footer_pairs(job["build"]), "rendered (UTC)": rendered}
        try:
            html = str(export_html(paths["executed"], paths["html"],
                                   title=_report_title(job["code"], paths["summary"], job.get("level", "province")),
                                   error=error, footer=footer))
        except Exception as err:  # noqa: BLE001 - the report's failure is the news, not a traceback
            error = error or f"HTML export failed: {short_error(err)}"
    return ReportResult(
        code=job["code"], status="failed" if error else "ok", seconds=round(time.perf_counter() - started, 2),
        notebook_path=str(paths["executed"]) if paths["executed"].exists() else None, html_path=html,
        summary_path=str(paths["summary"]), error=error, peak_memory_mb=peak_memory_mb(),
        worker=job.get("worker", "local"), cpu_seconds=round(cpu_seconds() - cpu_started, 2),
    )


#: The thread pools of numpy's BLAS and OpenMP, sized per kernel by the runner unless the user set them.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_init(scratch: str, threads: int = 1) -> None:
    """Environment every worker (and so every kernel it starts) runs with.

    The kernels of one local batch share a results cache in the scratch folder (``analysis.cache``):
    the national report and a province report that test the same province with the same kernel,
    inputs and seed compute it once. A folder the user exported in ``FORENSIK_CACHE_DIR`` is kept.
    """
    os.environ.update(_kernel_environment(Path(scratch), threads))
    os.environ.setdefault(CACHE_VARIABLE, str(Path(scratch) / "cache"))


def _kernel_environment(scratch: Path, threads: int = 1) -> dict[str, str]:
    """The variables that make a kernel draw inline figures with Agg, run this interpreter, and keep to its cores.

    Kernels running side by side each get ``threads`` BLAS/OpenMP threads (the machine's cores over
    the workers): with OpenBLAS's default of one thread per core, two kernels on two cores make four
    spinning threads, and the small matrix work of the optimisers (L-BFGS-B in the spikes and Klimek
    fits) ran 2.2 times slower. A value the user exported is kept.
    """
    mpl_dir = scratch / "matplotlib"
    mpl_dir.mkdir(parents=True, exist_ok=True)
    _write_kernelspec(scratch)
    return {
        **{name: os.environ.get(name, str(max(1, int(threads)))) for name in THREAD_VARIABLES},
        "MPLBACKEND": INLINE_BACKEND,
        "MPLCONFIGDIR": str(mpl_dir),
        "JUPYTER_PATH": os.pathsep.join(filter(None, [str(scratch / "jupyter"), os.environ.get("JUPYTER_PATH", "")])),
        # The debugger's warning about frozen modules is noise in a batch run.
        "PYDEVD_DISABLE_FILE_VALIDATION": os.environ.get("PYDEVD_DISABLE_FILE_VALIDATION", "1"),
    }


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    """``os.environ`` with ``values`` set, restored afterwards (a Dask worker runs other tasks too)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _write_kernelspec(scratch: Path) -> Path:
    """A ``python3`` kernelspec that runs this interpreter's ipykernel, whatever else is installed."""
    spec_dir = scratch / "jupyter" / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (forensik batch)", "language": "python", "metadata": {"debugger": False}}
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    return spec_dir


# ---------------------------------------------------------------------------------------------- Dask


def _run_packed(packed: dict[str, Any]) -> tuple[ReportResult, dict[str, bytes]]:
    """One job on a Dask worker: unpack notebook, data and summaries into a temp folder, run, return the files.

    Returned paths in the result are relative to the site folder; the client writes the files.
    """
    import socket

    with tempfile.TemporaryDirectory(prefix="forensik-task-") as tmp:
        tmp = Path(tmp)
        site, notebooks = tmp / "site", tmp / "notebooks"
        notebooks.mkdir()
        template = notebooks / packed["template_name"]
        template.write_bytes(packed["template"])
        data = tmp / packed["data_name"]
        data.write_bytes(packed["data"])
        for code, raw in packed.get("summaries", {}).items():
            if not FOLDER.fullmatch(code) or code in RESERVED_FOLDERS:
                raise ValueError(f"not a report folder name: {code!r}")
            (site / code).mkdir(parents=True, exist_ok=True)
            (site / code / "summary.json").write_bytes(raw)
        job = {**packed["job"], "site": str(site), "data_path": str(data), "template": str(template),
               "cwd": str(notebooks), "worker": f"dask {socket.gethostname()} pid {os.getpid()}"}
        with _environment(_kernel_environment(tmp / "scratch")):
            result = _run_one(job)
        mine = {_paths(job)[k] for k in ("html", "summary", "executed", "log")}
        files = {p.relative_to(site).as_posix(): p.read_bytes() for p in mine if p.is_file()}

        def rel(path: str | None) -> str | None:
            return Path(path).relative_to(site).as_posix() if path else None

        return replace(result, notebook_path=rel(result.notebook_path), html_path=rel(result.html_path),
                       summary_path=rel(result.summary_path)), files


class _DaskExecutor:
    """Submits packed jobs to a Dask scheduler; results come back as files the client writes."""

    def __init__(self, scheduler: Any):
        try:
            from distributed import Client
        except ImportError:
            raise ValueError("the dask executor needs the optional extra: pip install 'forensik[dask]' "
                             "(dask and distributed)") from None
        self._own = not hasattr(scheduler, "submit")
        if self._own and not scheduler:
            raise ValueError("the dask executor needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
        try:
            self.client = Client(scheduler, timeout="30s") if self._own else scheduler
        except (OSError, TimeoutError) as err:
            raise ValueError(f"cannot reach the Dask scheduler at {scheduler}: {err}") from None

    def close(self) -> None:
        if self._own:
            self.client.close()

    def run_stage(self, jobs: list[dict[str, Any]], record: Callable[[ReportResult], None],
                  crashed: Callable[[dict[str, Any], BaseException], ReportResult]) -> None:
        from distributed import as_completed as dask_completed

        futures = {}
        for job in jobs:
            packed = {"job": {k: v for k, v in job.items() if k not in ("site", "data_path", "template", "cwd")},
                      "template_name": Path(job["template"]).name, "template": Path(job["template"]).read_bytes(),
                      "data_name": Path(job["data_path"]).name}
            # Data goes once to the cluster (scatter), not inside every task's graph.
            packed["data"] = self.client.scatter(Path(job["data_path"]).read_bytes(), hash=False)
            if job["code"] == NATIONAL and _reads_summaries(Path(job["template"])):
                packed["summaries"] = {p.parent.name: p.read_bytes() for p in Path(job["site"]).glob("*/summary.json")
                                       if FOLDER.fullmatch(p.parent.name) and p.parent.name not in RESERVED_FOLDERS}
            future = self.client.submit(_run_packed, packed, pure=False, retries=0,
                                        key=f"forensik-{job['code']}-{os.urandom(4).hex()}")
            futures[future] = job
        for future in dask_completed(list(futures)):
            job = futures[future]
            try:
                result, files = future.result()
            except Exception as err:  # noqa: BLE001 - a task that raised or a worker that died: one failed report
                record(crashed(job, err))
                continue
            from .folders import write_bytes_atomic

            site = Path(job["site"])
            for rel, raw in files.items():
                write_bytes_atomic(site / rel, raw)
            absolute = lambda p: str(site / p) if p else None  # noqa: E731
            record(replace(result, notebook_path=absolute(result.notebook_path), html_path=absolute(result.html_path),
                           summary_path=absolute(result.summary_path)))


# ---------------------------------------------------------------------------------------------- batch


def default_level(levels: Sequence[str]) -> str:
    """The level reports split by when none is asked for: ``province`` when the table has it, else the first."""
    if not levels:
        raise ValueError("the election has no levels")
    return "province" if "province" in levels else levels[0]


def _levels(data_path: Path) -> list[str]:
    """The Election's levels from its Parquet footer (no table is read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ..election import METADATA_KEY

    try:
        meta = (pq.read_schema(data_path).metadata or {}).get(METADATA_KEY)
    except (pa.ArrowInvalid, OSError) as err:
        raise ValueError(f"{data_path.name} is not a readable Parquet file: {err}") from None
    if meta is None:
        raise ValueError(f"{data_path.name} is a Parquet file but not an Election (no forensik metadata); "
                         "make one with `forensik import`, `build` or `demo`")
    return [str(level) for level in json.loads(meta).get("levels", [])]


def _codes(data_path: Path, level: str, regions: Sequence[str] | str) -> tuple[list[str], set[str]]:
    """The region codes at ``level`` to run and the codes the data holds; an unknown level or region is a ValueError."""
    import pyarrow.parquet as pq

    levels = _levels(data_path)
    if level not in levels:
        raise ValueError(f"{data_path.name} has no level {level!r}; its levels: {', '.join(levels)}")
    column = pq.read_table(data_path, columns=[level]).column(level).unique().to_pylist()
    present = {str(c) for c in column if c is not None and str(c).strip()}
    if isinstance(regions, str):
        if regions != "all":
            raise ValueError(f"regions must be a list of codes or 'all', got {regions!r}")
        return sorted(present), present
    codes = list(dict.fromkeys(str(c) for c in regions))
    unknown = [c for c in codes if c not in present]
    if unknown:
        shown = ", ".join(sorted(present)[:20]) + (" ..." if len(present) > 20 else "")
        raise ValueError(f"no {level} {', '.join(map(repr, unknown))} in {data_path.name}; it holds: {shown}")
    return codes, present


def run_reports(
    data_path: str | Path,
    *,
    provinces: Sequence[str] | str = "all",
    level: str | None = None,
    out_dir: str | Path = "reports",
    jobs: int = 2,
    national: bool = True,
    notebooks_dir: str | Path | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout_per_cell: float = 600,
    progress: bool = True,
    executor: str = "local",
    scheduler: Any = None,
) -> BatchResult:
    """Run ``province.ipynb`` for each province, then ``national.ipynb``, with papermill; export each to HTML.

    Parameters go through papermill's Python API, so codes stay strings. Provinces run in
    ``jobs`` separate processes (``executor="local"``) or as one Dask task each
    (``executor="dask"``, ``scheduler`` an address such as ``tcp://host:8786`` or a ``distributed.Client``);
    a report that fails (an exception, a timeout, a dead kernel or worker) is recorded with its
    error, its partial HTML is still exported, and the others go on. A national notebook that
    declares a ``province_summaries_dir`` parameter runs after the provinces with it set to
    ``out_dir``; one that does not (the shipped one) starts first, beside the provinces.
    """
    from tqdm import tqdm

    from .data import split_by

    started = time.perf_counter()
    data_path = Path(data_path).resolve()
    if not data_path.is_file():
        raise FileNotFoundError(f"no election file at {data_path}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if int(jobs) < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    out_dir = Path(out_dir).resolve()
    notebooks_dir = Path(notebooks_dir or default_notebooks_dir()).resolve()
    extra = dict(parameters or {})
    reserved = {"data_path", "province", "summary_path", "province_summaries_dir"} & set(extra)
    if reserved:
        raise ValueError(f"parameters may not set {', '.join(sorted(reserved))}: the runner sets them")
    level = level or default_level(_levels(data_path))
    codes, present = _codes(data_path, level, provinces)
    folders = {code: folder_name(code) for code in codes}
    clashes = sorted(f for f in set(folders.values()) if list(folders.values()).count(f) > 1)
    if clashes:
        raise ValueError(f"region codes that differ only in case share a folder: {', '.join(clashes)}")
    templates = {"province": notebooks_dir / "province.ipynb", "national": notebooks_dir / "national.ipynb"}
    needed = ["province"] * bool(codes) + ["national"] * bool(national)
    missing = [str(templates[k]) for k in needed if not templates[k].is_file()]
    if missing:
        raise FileNotFoundError(f"notebook template missing: {', '.join(missing)}")
    runner = _DaskExecutor(scheduler) if executor == "dask" else None
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="forensik-batch-"))
    results: dict[str, ReportResult] = {}
    try:
        runnable = list(codes)
        split = split_by(data_path, scratch / "data", level, runnable)
        build = build_record(split.data_file, split.data_sha256, split.provenance, extra,
                             election_name=split.provenance.get("name", ""))
        prepare_seconds = round(time.perf_counter() - started, 2)

        def job(code: str) -> dict[str, Any]:
            kind = "national" if code == NATIONAL else "province"
            return {"code": code, "folder": NATIONAL if code == NATIONAL else folders[code], "level": level,
                    "template": str(templates[kind]), "site": str(out_dir), "cwd": str(notebooks_dir),
                    "data_path": str(data_path if code == NATIONAL else split.files[code]),
                    "timeout": timeout_per_cell, "build": build, "extra": extra}

        # Largest first: the batch ends soonest when the long reports do not start last.
        ordered = sorted(runnable, key=lambda c: -split.stations.get(c, 0))
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
            return ReportResult(j["code"], "failed", 0.0, None, None, str(_paths(j)["summary"]),
                                f"worker crashed: {short_error(err)}{hint}")

        # A national notebook that declares ``province_summaries_dir`` reads the provinces' summaries,
        # so it runs after them. One that does not (the shipped one) is the longest report of a
        # batch and starts first, beside the provinces: started last, it would run alone on one
        # worker while the others sat idle (at full scale, 12 of 35 minutes).
        if national and _reads_summaries(templates["national"]):
            stages = ([job(c) for c in ordered], [job(NATIONAL)])
        else:
            stages = ([job(NATIONAL)] * bool(national) + [job(c) for c in ordered],)
        try:
            if runner is not None:
                for stage in stages:
                    runner.run_stage(stage, record, crashed)
            else:
                _run_local(stages, int(jobs), scratch, record, crashed)
        finally:
            bar.close()
    finally:
        if runner is not None:
            runner.close()
        shutil.rmtree(scratch, ignore_errors=True)
    order = codes + ([NATIONAL] if national else [])
    return BatchResult(reports=tuple(results[c] for c in order), out_dir=str(out_dir), data_path=str(data_path),
                       data_sha256=split.data_sha256, parameters=extra, seconds=round(time.perf_counter() - started, 2),
                       build=build, prepare_seconds=prepare_seconds)


def _run_local(stages, jobs: int, scratch: Path, record, crashed) -> None:
    """Each stage's jobs on ``jobs`` spawned worker processes of this machine.

    A worker process that dies (killed by the system, or by a kernel that kills its parent) breaks the
    whole process pool, and every report in it with it. The reports that had not started are then
    run again on a new pool; those that were running are run again one at a time, so that only
    a report that kills its worker on its own is recorded as failed.
    """
    context = multiprocessing.get_context("spawn")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    markers = scratch / "started"
    markers.mkdir(parents=True, exist_ok=True)

    def run(batch: list[dict[str, Any]], workers: int):
        """Run a batch on a fresh pool: (jobs running when it broke, jobs not yet started, the error)."""
        for j in batch:
            Path(j["started_marker"]).unlink(missing_ok=True)
        lost: list[dict[str, Any]] = []
        broken: BaseException | None = None
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                                 initargs=(str(scratch), threads)) as pool:
            futures = {}
            for j in batch:
                try:
                    futures[pool.submit(_run_one, j)] = j
                except BrokenProcessPool as err:
                    lost.append(j)
                    broken = err
            try:
                for future in as_completed(futures):
                    try:
                        result = future.result()
                    except BrokenProcessPool as err:
                        lost.append(futures[future])
                        broken = err
                        continue
                    except Exception as err:  # noqa: BLE001 - a crashed worker is one failed report
                        result = crashed(futures[future], err)
                    record(result)
            except KeyboardInterrupt:
                # Stop now: without this the pool would still run every queued report.
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        running = [j for j in lost if Path(j["started_marker"]).exists()]
        return running, [j for j in lost if j not in running], broken

    for stage in stages:
        pending = [{**j, "started_marker": str(markers / j.get("folder", j["code"]))} for j in stage]
        ever_started = False
        idle_breaks = 0
        while pending:
            running, waiting, broken = run(pending, jobs)
            ever_started = ever_started or any(Path(j["started_marker"]).exists() for j in pending)
            if broken is not None and not running:
                idle_breaks += 1
                if not ever_started or idle_breaks > 2:
                    # No report ever started: the workers cannot run at all (e.g. a script without a
                    # main guard). Otherwise an idle worker died; the waiting reports get two more pools.
                    for j in waiting:
                        record(crashed(j, broken))
                    break
            for j in running:
                # Alone on a pool of its own, a report that breaks it again is the one that killed its worker.
                again, not_started, err = run([j], 1)
                if again:
                    record(ReportResult(j["code"], "failed", 0.0, None, None, str(_paths(j)["summary"]),
                                        "its worker process died while running it, twice (killed by the system or "
                                        f"by the notebook: {short_error(err)}); the reports beside it were run again"))
                elif not_started:
                    record(crashed(j, err))
            pending = waiting

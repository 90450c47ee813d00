"""Render the Findings page (``notebooks/findings.ipynb``) to ``OUT/findings.html``, through the same
papermill execution and sanitised nbconvert export as the province and national pages."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from .runner import (KERNEL_NAME, _environment, _kernel_environment, build_record, default_notebooks_dir,
                     file_sha256, footer_pairs, short_error, utc_now)

__all__ = ["render_findings", "FINDINGS_HTML", "FINDINGS_SUMMARY", "ReportError"]


class ReportError(ValueError):
    """The Findings page cannot be made: a missing input, an unreadable table, a notebook that failed."""

FINDINGS_HTML = "findings.html"
FINDINGS_SUMMARY = "findings.json"


def _input(path: Any, what: str) -> str:
    if path is None or str(path) == "":
        return ""
    path = Path(path)
    if not path.is_file():
        raise ReportError(f"{what}: no file at {path}")
    return str(path.resolve())


def render_findings(data, out_dir, *, kawalpemilu=None, names=None, national_summary=None, seed: int = 2024,
                    alpha: float = 0.05, learned: bool = False, timeout: float | None = 1800) -> Path:
    """Execute the Findings notebook on ``data`` (an Election Parquet file) and write ``OUT/findings.html``
    (and ``OUT/findings.json``, its machine-readable summary); return the HTML path.

    ``kawalpemilu``: KawalPemilu's ``desa_ppwp_2024.csv.gz`` (its ``tps_hierarchy.json.gz`` beside it);
    ``names``: Sirekap's region tree; ``national_summary``: a rendered national ``summary.json`` to take
    the page flags from (else they are recomputed, which runs the national battery). A missing input
    file is a ``ReportError`` naming it; a notebook that fails is a ``ReportError`` with its short error
    (the executed notebook is kept in ``OUT/_build/`` for reading).
    """
    import papermill

    from .export import export_html

    data_path = _input(data, "Election data")
    if not data_path:
        raise ReportError("no Election data file given")
    parameters = {"data": data_path, "kawalpemilu": _input(kawalpemilu, "KawalPemilu desa file"),
                  "names": _input(names, "region tree"), "national_summary": _input(national_summary, "national summary"),
                  "seed": int(seed), "alpha": float(alpha), "learned": bool(learned)}
    out = Path(out_dir).resolve()  # the kernel runs in the notebooks folder: a relative path would land there
    out.mkdir(parents=True, exist_ok=True)
    build_dir = out / "_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    executed = build_dir / "findings.ipynb"
    html_path, summary_path = out / FINDINGS_HTML, out / FINDINGS_SUMMARY
    for stale in (executed, html_path, summary_path):
        stale.unlink(missing_ok=True)
    template = default_notebooks_dir() / "findings.ipynb"
    from ..election import Election

    try:
        election = Election.read_parquet(data_path)
    except Exception as err:  # noqa: BLE001 - bad input gets a sentence, not a traceback
        raise ReportError(f"cannot read the Election {data_path}: {short_error(err)}") from None
    build = build_record(data_path, file_sha256(data_path), election.provenance, parameters, election.name)
    started = time.perf_counter()
    error = ""
    with tempfile.TemporaryDirectory(prefix="forensik-findings-") as scratch, \
            _environment(_kernel_environment(Path(scratch))):
        try:
            papermill.execute_notebook(str(template), str(executed), parameters={**parameters,
                                       "summary_path": str(summary_path)}, kernel_name=KERNEL_NAME,
                                       cwd=str(template.parent), progress_bar=False, log_output=False,
                                       execution_timeout=timeout)
        except Exception as err:  # noqa: BLE001 - the page says why it stopped
            error = short_error(err, timeout)
    footer = {"report": "findings", **footer_pairs(build), "rendered (UTC)": utc_now(),
              "render seconds": f"{time.perf_counter() - started:.1f}"}
    if executed.exists():
        export_html(executed, html_path, title="Findings", error=error, footer=footer, index_href="index.html")
    if error:
        raise ReportError(f"the Findings page failed: {error}" + (f" (partial page at {html_path})" if html_path.exists() else ""))
    return html_path

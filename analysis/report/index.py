"""The batch's front page (``index.html``) and its machine-readable twin (``index.json``)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import jinja2

from ..election import code_version
from .export import TEMPLATES, check_inert, page_assets
from .folders import write_atomic
from .runner import NATIONAL, BatchResult, ReportResult, footer_pairs
from .summary import SummaryError, read_summary


def _relative(path: str | None, out_dir: Path) -> str | None:
    """``path`` relative to ``out_dir`` with forward slashes (links and JSON must not leak local paths)."""
    if not path:
        return None
    return Path(os.path.relpath(Path(path).resolve(), out_dir)).as_posix()


def _summary(report: ReportResult) -> tuple[dict[str, Any] | None, str]:
    """The report's summary (None when it has none) and why it has none."""
    if not report.ok or not report.summary_path:
        return None, ""
    try:
        return read_summary(report.summary_path), ""
    except SummaryError as err:
        return None, str(err)


def _shown(value: Any) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    return str(value)


def _flagged_tests(flags: list[dict[str, Any]], region: str | None = None) -> list[str]:
    """Names of the flagged tests (of one region, when given), each once, in order of appearance."""
    tests = [str(f["test"]) for f in flags if f.get("flagged") and (region is None or str(f.get("region")) == region)]
    return list(dict.fromkeys(tests))


def _flagged_regions(flags: list[dict[str, Any]]) -> list[str]:
    """The regions flagged on a page, each once, in order of appearance."""
    return list(dict.fromkeys(str(f.get("region")) for f in flags if f.get("flagged")))


def index_rows(batch: BatchResult, out_dir: str | Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One row per province report (status, headline, flags, link) and the national report's row."""
    out_dir = Path(out_dir).resolve()
    national_report = next((r for r in batch.reports if r.code == NATIONAL), None)
    national_summary, _ = _summary(national_report) if national_report else (None, "")
    national_flags = (national_summary or {}).get("flags", [])
    rows = []
    for report in batch.reports:
        if report.code == NATIONAL:
            continue
        summary, problem = _summary(report)
        headline = (summary or {}).get("headline", {})
        flags = (summary or {}).get("flags", [])
        shares = {key[len("share_"):-len("_percent")]: _shown(value) for key, value in headline.items()
                  if key.startswith("share_") and key.endswith("_percent")}
        rows.append({
            "code": report.code,
            "name": (summary or {}).get("name", ""),
            "status": report.status,
            "error": report.error or problem,
            "href": _relative(report.html_path, out_dir),
            "stations": _shown(headline.get("stations")),
            "turnout": _shown(headline.get("turnout_percent")),
            "shares": shares,
            "national_flags": _flagged_tests(national_flags, report.code),
            "summary_ok": summary is not None,
            # Regions, not tests: a flagged sub-region counts once however many of its tests carry the flag.
            "within_count": len(_flagged_regions(flags)),
            "within_tests": [f"{region} ({', '.join(_flagged_tests(flags, region))})" for region in _flagged_regions(flags)],
        })
    national = None
    if national_report:
        national = {
            "status": national_report.status, "error": national_report.error,
            "href": _relative(national_report.html_path, out_dir),
            "flagged_regions": sorted({str(f["region"]) for f in national_flags if f.get("flagged")}),
        }
    return rows, national


def _provenance(batch: BatchResult, generated: str) -> list[tuple[str, str]]:
    """What the batch was made from, as (label, value) pairs for the page's footer."""
    pairs = list(footer_pairs(batch.build).items()) if batch.build else [
        ("data file", Path(batch.data_path).name), ("data file SHA-256 (as read)", batch.data_sha256),
        ("code version", code_version()), *((f"parameter {k}", str(v)) for k, v in batch.parameters.items())]
    pairs += [("batch time", f"{batch.seconds:.0f} s" if batch.seconds else ""), ("rendered (UTC)", generated)]
    return [(str(k), str(v)) for k, v in pairs if v not in (None, "")]


def write_index(out_dir: str | Path, batch: BatchResult, *, extra_pages: list[dict[str, str]] | None = None) -> Path:
    """Write ``out_dir/index.html`` (every province, its headline and flags, failures with their error)
    and ``out_dir/index.json`` (every report's status and summary); return the HTML path.

    ``extra_pages``: further pages of the set (``title``, ``path``, ``about``), linked above the table
    (the Findings page of ``forensik real``).
    """
    out_dir = Path(out_dir).resolve()
    extra = [{"title": str(p["title"]), "about": str(p.get("about", "")), "href": _relative(str(p["path"]), out_dir)}
             for p in (extra_pages or [])]
    generated = datetime.now(timezone.utc).isoformat(timespec="seconds")
    rows, national = index_rows(batch, out_dir)
    candidates = sorted({c for row in rows for c in row["shares"]})
    environment = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES / "forensik")), autoescape=True,
                                     undefined=jinja2.StrictUndefined)
    html = environment.get_template("batch-index.html.j2").render(
        **page_assets(), code_version=code_version(), rows=rows, national=national,
        candidates=candidates, total=len(batch.reports), failed=len(batch.failed),
        provenance=_provenance(batch, generated), extra_pages=extra,
    )
    path = write_atomic(out_dir / "index.html", check_inert(html, str(out_dir / "index.html")))
    machine = {
        "generated": generated,
        "data_file": Path(batch.data_path).name,
        "data_sha256": batch.data_sha256,
        "code_version": code_version(),
        "parameters": dict(batch.parameters),
        "build": dict(batch.build),
        "ok": batch.ok,
        "pages": [{"title": p["title"], "html": p["href"]} for p in extra],
        "reports": [
            {"code": r.code, "status": r.status, "seconds": r.seconds, "error": r.error,
             "peak_memory_mb": r.peak_memory_mb,
             "html": _relative(r.html_path, out_dir), "notebook": _relative(r.notebook_path, out_dir),
             "summary_path": _relative(r.summary_path, out_dir), "summary": _summary(r)[0]}
            for r in batch.reports
        ],
    }
    write_atomic(out_dir / "index.json", json.dumps(machine, indent=1, default=str, ensure_ascii=False))
    return path

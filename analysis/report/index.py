"""The batch's front page: every province with its headline numbers and flags, failures shown."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..election import code_version
from .export import CONTENT_SECURITY_POLICY, _environment, install_stylesheet
from .runner import NATIONAL, BatchResult
from .summary import SummaryError, read_summary


def _load(path: str) -> dict[str, Any] | None:
    try:
        return read_summary(path)
    except SummaryError:
        return None


def _national_flags(national: dict[str, Any] | None) -> dict[str, list[str]]:
    """Province -> the tests that flag it at the national level (q-values across provinces)."""
    out: dict[str, list[str]] = {}
    for flag in (national or {}).get("flags", []):
        if flag.get("flagged"):
            out.setdefault(str(flag.get("region")), []).append(str(flag.get("test")))
    return out


def index_rows(batch: BatchResult) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """One row per province report (summary, status, flags) and the national summary."""
    national = next((r for r in batch.reports if r.code == NATIONAL), None)
    national_summary = _load(national.summary_path) if national and national.status == "ok" else None
    by_province = _national_flags(national_summary)
    out_dir = Path(batch.out_dir)
    rows = []
    for report in batch.reports:
        if report.code == NATIONAL:
            continue
        summary = _load(report.summary_path) if report.status == "ok" else None
        headline = (summary or {}).get("headline", {})
        within = [f for f in (summary or {}).get("flags", []) if f.get("flagged")]
        rows.append({
            "code": report.code,
            "name": (summary or {}).get("name", ""),
            "status": report.status,
            "error": report.error,
            "href": Path(report.html_path).relative_to(out_dir).as_posix() if report.html_path else None,
            "headline": headline,
            "national_flags": sorted(set(by_province.get(report.code, []))),
            "within_flags": len(within),
            "within_regions": len({f.get("region") for f in within}),
            "seconds": report.seconds,
        })
    return rows, national_summary


def write_index(out_dir: str | Path, batch: BatchResult) -> Path:
    """Write ``out_dir/index.html`` and ``out_dir/index.json`` for a finished batch."""
    out_dir = Path(out_dir).resolve()
    install_stylesheet(out_dir)
    rows, national_summary = index_rows(batch)
    national = next((r for r in batch.reports if r.code == NATIONAL), None)
    provenance = (national_summary or {}).get("provenance", {})
    if not provenance:
        first = next((r for r in rows if r["status"] == "ok"), None)
        summary = _load(next(r.summary_path for r in batch.reports if r.code == first["code"])) if first else None
        provenance = (summary or {}).get("provenance", {})
    candidates = sorted({k[len("share_"):-len("_percent")] for r in rows for k in r["headline"] if k.startswith("share_")})
    context = {
        "rows": rows,
        "candidates": candidates,
        "national": national,
        "national_href": Path(national.html_path).relative_to(out_dir).as_posix() if national and national.html_path else None,
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data_sha256": provenance.get("input_sha256", ""),
        "table_sha256": provenance.get("table_sha256", ""),
        "election": provenance.get("source", ""),
        "code_version": code_version(),
        "parameters": batch.parameters,
        "failed": len(batch.failed),
        "total": len(batch.reports),
    }
    html = _environment().get_template("index.html.j2").render(csp=CONTENT_SECURITY_POLICY, css_href="static/report.css", **context)
    path = out_dir / "index.html"
    path.write_text(html, encoding="utf-8")
    machine = {
        "generated": context["generated"], "data_path": batch.data_path, "code_version": context["code_version"],
        "parameters": dict(batch.parameters),
        "reports": [{"code": r.code, "status": r.status, "seconds": r.seconds, "error": r.error,
                     "html": r.html_path, "summary": r.summary_path} for r in batch.reports],
        "provinces": rows,
    }
    (out_dir / "index.json").write_text(json.dumps(machine, indent=1, default=str), encoding="utf-8")
    return path

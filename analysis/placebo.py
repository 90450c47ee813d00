"""Placebo runs: how often each method flags a region of a real clean election, read off its rendered pages.

Synthetic elections drawn from a null's own model cannot show that null is wrong. A placebo run
renders the full report set of a real election that observers judged clean (Poland 2020, Canada
2011) with the project's own commands, and counts, per method, the regions its tests carry a flag
in, under the page-level rule the pages apply (``analysis.flagging``) and under the rule the pages
used before (Benjamini-Hochberg within each method's family, families merged without control).
Every region flagged in a clean election is a false flag; the table is ``placebo.csv`` in
``analysis/data/calibration/`` with the report sets it was read from in ``placebo.json``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

import pandas as pd

from .calibration import CALIBRATION_DIR

COLUMNS = ["election", "page", "method", "regions", "flagged", "rate", "flagged_per_family_bh", "rate_per_family_bh"]
#: All methods of a page together: a region flagged by any of them.
ANY = "any method (the page's flags)"


def method_of(test: str) -> str:
    """A test's method without its column: "second digit (02)" -> "second digit"."""
    return re.sub(r"\s*\([^()]*\)$", "", str(test)).strip()


def _page_rows(flags: list[Mapping[str, Any]], election: str, page: str, alpha: float) -> list[dict[str, Any]]:
    frame = pd.DataFrame(flags)
    if frame.empty:
        return []
    frame["method"] = frame["test"].map(method_of)
    frame["region"] = frame["region"].astype(str)
    regions = frame["region"].nunique()
    rows = []
    groups = [(ANY, frame)] + list(frame.groupby("method", sort=True))
    for method, part in groups:
        page_flagged = part.loc[part["flagged"].astype(bool), "region"].nunique()
        q = pd.to_numeric(part["qvalue"], errors="coerce")
        family_flagged = part.loc[(q <= alpha).fillna(False).to_numpy(), "region"].nunique()
        rows.append({"election": election, "page": page, "method": method, "regions": regions,
                     "flagged": page_flagged, "rate": page_flagged / regions,
                     "flagged_per_family_bh": family_flagged, "rate_per_family_bh": family_flagged / regions})
    return rows


def placebo_rows(site: str | Path, election: str, *, alpha: float = 0.05) -> pd.DataFrame:
    """The placebo rows of one rendered report set (``forensik report --out SITE``) of a clean election.

    ``page`` is "national" (regions compared with each other) or "within" (the sub-regions of
    every region page, pooled), plus "election" for the election-level tests.
    """
    site = Path(site)
    index = site / "index.json"
    if not index.is_file():
        raise FileNotFoundError(f"no index.json in {site}: render the report set first (forensik report --out {site})")
    body = json.loads(index.read_text(encoding="utf-8"))
    failed = [r["code"] for r in body["reports"] if r["status"] != "ok"]
    if failed:
        raise ValueError(f"{site}: {len(failed)} report(s) failed ({', '.join(failed[:5])}); a placebo needs every page")
    rows: list[dict[str, Any]] = []
    within: list[Mapping[str, Any]] = []
    for report in body["reports"]:
        summary = report.get("summary") or {}
        if report["code"] == "national":
            rows += _page_rows(summary.get("flags", []), election, "national", alpha)
            tests = summary.get("election_tests", [])
            if tests:
                flagged = sum(bool(t["flagged"]) for t in tests)
                rows.append({"election": election, "page": "election", "method": "election-level tests",
                             "regions": len(tests), "flagged": flagged, "rate": flagged / len(tests),
                             "flagged_per_family_bh": None, "rate_per_family_bh": None})
        else:
            # Sub-region codes repeat across region pages only by accident: keep them apart.
            within += [{**f, "region": f"{report['code']}/{f['region']}"} for f in summary.get("flags", [])]
    rows += _page_rows(within, election, "within", alpha)
    return pd.DataFrame(rows, columns=COLUMNS)


def build_placebo(sites: Iterable[tuple[str, str | Path]], *, alpha: float = 0.05,
                  directory: str | Path = CALIBRATION_DIR) -> Path:
    """Write ``placebo.csv`` and ``placebo.json`` from rendered report sets [(election name, site), ...]."""
    sites = list(sites)
    table = pd.concat([placebo_rows(site, name, alpha=alpha) for name, site in sites], ignore_index=True)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    table.to_csv(directory / "placebo.csv", index=False)
    builds = {}
    for name, site in sites:
        body = json.loads((Path(site) / "index.json").read_text(encoding="utf-8"))
        builds[name] = {k: body.get("build", {}).get(k) for k in
                        ("data_file", "data_sha256", "code_version", "parameters", "batch_started")}
    meta = {"alpha": alpha, "written": datetime.now(timezone.utc).isoformat(timespec="seconds"), "sites": builds}
    (directory / "placebo.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False), encoding="utf-8")
    return directory / "placebo.csv"


def load_placebo(directory: str | Path = CALIBRATION_DIR) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The shipped placebo table and what it was read from."""
    directory = Path(directory)
    path = directory / "placebo.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no placebo table {path}; make it with `forensik placebo`")
    return pd.read_csv(path), json.loads((directory / "placebo.json").read_text(encoding="utf-8"))


def summarise_synthetic(table: pd.DataFrame) -> pd.DataFrame:
    """Per kind and rule: clean regions falsely flagged (share of all clean regions) and planted regions found."""
    grouped = table.groupby(["kind", "rule"], sort=False).sum(numeric_only=True)
    out = pd.DataFrame({
        "elections": table.groupby(["kind", "rule"], sort=False)["election"].nunique(),
        "false_flag_rate": grouped["false_flags"] / (grouped["regions"] - grouped["planted"]),
        "pages_with_a_false_flag": table.assign(any=table["false_flags"] > 0).groupby(
            ["kind", "rule"], sort=False)["any"].mean(),
        "power": (grouped["planted_found"] / grouped["planted"]).where(grouped["planted"] > 0),
    })
    return out.reset_index()

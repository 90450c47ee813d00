"""``make real``: the 2024 presidential report set from Sirekap's TPS table as published, in ``../shared``.

Builds the Election from ``tps_ppwp_2024/ppwp_tps_36_regions_20240320.csv.gz`` with the shipped
``sirekap_tps_2024`` mapping (Sirekap TPS profile; registered = DPT + DPTb; each reading's time kept)
and region names from Sirekap's region tree, renders one report per province and the national
report, then the Findings page (``findings.html``), and links it from the set's index.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

#: What the real set reads, relative to the shared data folder.
TABLE = "data/sirekap/tps_ppwp_2024/ppwp_tps_36_regions_20240320.csv.gz"
NAMES = "data/sirekap/wilayah_ppwp_all_levels.csv.gz"
KAWALPEMILU = "data/kawalpemilu/desa_ppwp_2024.csv.gz"
MAPPING = "sirekap_tps_2024"
#: The environment variable that may name the shared data folder (default ``../shared``).
SHARED_VARIABLE = "FORENSIK_SHARED"

WHERE_FROM = f"""\
The real 2024 set needs the shared data folder beside the repository (../shared, or set {SHARED_VARIABLE}):
  {TABLE}
      Sirekap's TPS-level presidential results as displayed on 17-20 March 2024 (441,609 TPS of 36 of
      the 39 regions), crawled from sirekap-obj-data.kpu.go.id by the gigit-pemilu project
      (github.com/gigit-pemilu); its README.txt there gives coverage per province and the checks made.
  {NAMES}
      Sirekap's region tree (codes and names of every province, kabupaten/kota, kecamatan, desa).
  {KAWALPEMILU} (optional)
      KawalPemilu's crowd-verified desa totals (kawalpemilu.org), compared on the Findings page.
None of it is in the repository: the data is KPU's public display and the crawls of others."""


class MissingDataError(FileNotFoundError):
    """The shared data folder or one of the files the real set needs is absent."""


@dataclass(frozen=True)
class RealSources:
    """The files the real set reads (``kawalpemilu`` None when absent: its comparison is then skipped)."""

    shared: Path
    table: Path
    names: Path
    kawalpemilu: Path | None


def default_shared() -> Path:
    """``$FORENSIK_SHARED``, else ``../shared`` beside the working directory."""
    return Path(os.environ.get(SHARED_VARIABLE) or "../shared")


def locate(shared: str | Path | None = None) -> RealSources:
    """The real set's files under ``shared``; ``MissingDataError`` saying what is missing and where it comes from."""
    shared = Path(shared) if shared else default_shared()
    table, names, kawal = shared / TABLE, shared / NAMES, shared / KAWALPEMILU
    missing = [str(p) for p in (table, names) if not p.is_file()]
    if missing:
        raise MissingDataError(f"not found: {', '.join(missing)}\n\n{WHERE_FROM}")
    return RealSources(shared=shared, table=table, names=names, kawalpemilu=kawal if kawal.is_file() else None)


def build(sources: RealSources, out: str | Path):
    """The Election from Sirekap's TPS table (mapping ``sirekap_tps_2024``, names from the region tree), written to ``out``."""
    from ..sources.tabular import load_mapping, read_table

    election, rejects = read_table(sources.table, load_mapping(MAPPING), names=sources.names)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    election.to_parquet(out)
    rejects.to_csv(out.with_name(out.stem + "-rejects.csv"), index=False)
    return election, rejects


def run_real(*, shared: str | Path | None = None, out_dir: str | Path = "reports/real",
             data: str | Path = "data/processed/sirekap_tps_2024.parquet", jobs: int = 2, seed: int = 2024,
             n_sim: int = 1000, provinces: list[str] | str = "all") -> int:
    """Build, render every report and the Findings page; 0 when all rendered, 1 when some failed, 2 without the data."""
    try:
        sources = locate(shared)
    except MissingDataError as err:
        print(f"make real: {err}", file=sys.stderr)
        return 2
    from .findings import render_findings
    from .index import write_index
    from .runner import NATIONAL, run_reports

    start = time.perf_counter()
    election, rejects = build(sources, data)
    print(f"{election!r}\n  built in {time.perf_counter() - start:.0f} s; {len(rejects):,} rejected rows; written to {data}")
    batch = run_reports(data, provinces=provinces, level="province", out_dir=out_dir, jobs=jobs,
                        parameters={"seed": seed, "n_sim": n_sim})
    national = next((r for r in batch.reports if r.code == NATIONAL), None)
    summary = national.summary_path if national is not None and national.ok else None
    findings_start = time.perf_counter()
    findings_ok = True
    try:
        findings = render_findings(data, out_dir, kawalpemilu=sources.kawalpemilu, names=sources.names,
                                   national_summary=summary, seed=seed)
        pages = [{"title": "Findings", "path": str(findings),
                  "about": "what the published 2024 data does and does not show, every figure with its uncertainty"}]
    except Exception as err:  # noqa: BLE001 - the index must still be written and the failure said
        findings_ok, pages = False, []
        print(f"  FAILED findings: {type(err).__name__}: {err}", file=sys.stderr)
    index = write_index(out_dir, batch, extra_pages=pages)
    failed = batch.failed
    print(f"{len(batch.reports) - len(failed)} reports rendered, {len(failed)} failed; findings "
          f"{'rendered' if findings_ok else 'FAILED'} in {time.perf_counter() - findings_start:.0f} s; "
          f"total {time.perf_counter() - start:.0f} s")
    for report in failed:
        print(f"  FAILED {report.code}: {report.error}")
    print(f"index: {Path(index).resolve()}")
    return 0 if batch.ok and findings_ok else 1

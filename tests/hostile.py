"""A small election whose names carry HTML/JS payloads, rendered once per test process through the real
notebooks (province, national, index): shared by test_report (the payloads show only as text) and
test_browser (a real browser runs none of them)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from analysis.election import Election
from analysis.report.index import write_index
from analysis.report.runner import run_reports
from analysis.synth import make_election

PAYLOADS = ("<script>alert('x')</script>", "<img src=x onerror=alert(1)>", "</td><iframe src=//evil.example/>")
# Region names and candidate names (vote columns) both carry a payload; the election's name too.
PROVINCES = {"31": PAYLOADS[0] + " Jakarta", "73": PAYLOADS[1] + " Sulsel"}
CANDIDATES = {"01": PAYLOADS[0], "02": PAYLOADS[1], "03": PAYLOADS[2]}
ELECTION_NAME = "Pemilu " + PAYLOADS[2]

_SITE: dict[str, object] = {}


def hostile_election() -> Election:
    synthetic = make_election(scale=0.001, min_tps=300, seed=7, provinces_only=list(PROVINCES), ocr_rate=0.01)
    table = synthetic.election.table.copy()
    table["province_name"] = table["province"].map(PROVINCES)
    table = table.rename(columns=CANDIDATES)
    base = synthetic.election
    return Election.from_frame(table, levels=base.levels, candidates=[CANDIDATES[c] for c in base.candidates],
                               name=ELECTION_NAME, provenance={"source": "hostile test " + PAYLOADS[1],
                                                               "snapshot": "2024-02-15T10:00:00+07:00"})


def hostile_site():
    """(BatchResult, index path): the hostile election rendered once per process, with small settings."""
    if "site" not in _SITE:
        root = Path(tempfile.mkdtemp(prefix="forensik-hostile-"))
        data = hostile_election().to_parquet(root / "hostile.parquet")
        batch = run_reports(data, provinces=list(PROVINCES), out_dir=root / "site", jobs=2, progress=False,
                            parameters={"seed": 3, "n_sim": 40})
        _SITE["site"] = (batch, write_index(root / "site", batch))
    return _SITE["site"]

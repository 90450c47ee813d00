"""Every shipped mapping's real election, and Indonesia's real tables, render their reports with 0 failures.

Subsets keep the suite short: a few of the smallest regions of the default level, at most a few
hundred stations each, with small simulation counts. What is checked is that the report path
works on real tables of every shape (codes in Cyrillic or with spaces, no DPT, aggregates without
voters), not what the tests find.
"""

from pathlib import Path

import numpy as np
import pytest

from analysis.election import Election
from analysis.report.runner import default_level, folder_name, run_reports
from analysis.report.summary import read_summary
from analysis.sources.tabular import read_table

pytestmark = pytest.mark.slow
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CASES = [
    ("reference/russia_2011_duma.csv.gz", "russia_2011"),
    ("reference/russia_2012_president.csv.gz", "russia_2012"),
    ("reference/albania_2013.csv.gz", "albania_2013"),
    ("reference/poland_2020_president_round1.csv.gz", "poland_2020"),
    ("reference/uganda_2011_president.csv.gz", "uganda_2011"),
    ("reference/canada_2011_polls.csv.gz", "canada_2011"),
]
SMALL = {"seed": 1, "n_sim": 49, "n_boot": 9, "n_resamples": 9}


def _subset(election, regions: int = 2, per_region: int = 150, seed: int = 0):
    """The ``regions`` smallest regions of the default level with at least 60 stations, at most ``per_region`` each."""
    level = default_level(election.levels)
    sizes = election.table.groupby(level, observed=True).size()
    chosen = sizes[sizes >= 60].sort_values(kind="stable").index[:regions].tolist()
    election = election.select(**{level: chosen})
    table = election.table
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(table))
    rank = table.iloc[order].groupby(level, observed=True).cumcount().to_numpy()
    keep = np.sort(order[rank < per_region])
    subset = Election.from_frame(table.iloc[keep], levels=election.levels, candidates=election.candidates,
                                 name=election.name, provenance={"source": election.provenance.get("source", "")},
                                 profile=election.profile)
    return subset, level, chosen


@pytest.mark.parametrize("file, mapping", CASES, ids=[m for _, m in CASES])
def test_real_election_renders_every_report(tmp_path, file, mapping):
    path = DATA / file
    if not path.is_file():
        pytest.skip(f"../shared/data/{file} is absent")
    election, _ = read_table(path, mapping)
    subset, level, chosen = _subset(election, regions=1)  # one region and the national page: every shape, half the renders
    data = subset.to_parquet(tmp_path / "subset.parquet")
    result = run_reports(data, out_dir=tmp_path / "site", jobs=2, parameters=SMALL, progress=False)
    assert result.ok, [(r.code, r.error) for r in result.failed]
    assert [r.code for r in result.reports] == sorted(chosen) + ["national"]
    for code in chosen:
        summary = read_summary(tmp_path / "site" / folder_name(code) / "summary.json")
        assert summary["code"] == code and summary["level"] == level
        page = (tmp_path / "site" / folder_name(code) / "index.html").read_text(encoding="utf-8")
        assert "Profile:" in page and "Traceback" not in page
    national = read_summary(tmp_path / "site" / "national" / "summary.json")
    assert "election_tests" in national and national["profile"]["name"] == (election.profile or {}).get(
        "name", national["profile"]["name"])


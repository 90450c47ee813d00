"""Indonesia's real tables (Sirekap TPS, KawalPemilu desa) and a desa-level Sirekap build through the report path.

Beside ``test_real_reports.py`` (the shipped mappings of other countries), in a file of its own so
that the two halves run on different test workers.
"""

import pytest

from analysis.report.runner import run_reports
from tests.test_real_reports import SMALL, test_real_election_renders_every_report as _renders

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("file, mapping", [
    ("sirekap/tps_ppwp_2024/ppwp_tps_36_regions_20240320.csv.gz", "sirekap_tps_2024"),
    ("kawalpemilu/desa_ppwp_2024.csv.gz", "kawalpemilu_desa_2024"),
], ids=["sirekap_tps_2024", "kawalpemilu_desa_2024"])
def test_indonesian_table_renders_every_report(tmp_path, file, mapping):
    _renders(tmp_path, file, mapping)


def test_a_desa_level_sirekap_build_renders_every_report(tmp_path):
    """The scraper's --level desa snapshot: per-TPS votes from the desa tables, no administration page."""
    import asyncio

    from analysis.sources.sirekap.parse import read_snapshot
    from analysis.sources.sirekap.scrape import ScrapeConfig, scrape_async
    from analysis.sources.sirekap.testserver import TreeServer, tree_from_election
    from analysis.synth import make_election

    truth = make_election(scale=0.0002, min_tps=60, provinces_only=["31", "11"], seed=5).election
    fast = dict(rate=1000.0, concurrency=4, timeout=0.5, backoff=0.002, max_backoff=0.02, progress=False)
    with TreeServer(tree_from_election(truth, seed=3, official=True)) as server:
        summary = asyncio.run(scrape_async(ScrapeConfig(ballot="ppwp", region="0", level="desa", base_url=server.url,
                                                        out=str(tmp_path), snapshot="d", **fast)))
    assert summary.ok, summary.text()
    built = read_snapshot(tmp_path / "d").election
    assert built.table["registered"].isna().all()
    data = built.to_parquet(tmp_path / "desa.parquet")
    result = run_reports(data, out_dir=tmp_path / "site", jobs=2, parameters=SMALL, progress=False)
    assert result.ok, [(r.code, r.error) for r in result.failed]
    page = (tmp_path / "site" / "31" / "index.html").read_text(encoding="utf-8")
    assert "not run." in page  # the sections that need registered or voters say so

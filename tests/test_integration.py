"""End to end: a small demo batch through papermill; the JSON summaries must show what was planted."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from analysis.report.index import write_index
from analysis.report.runner import run_reports
from analysis.synth import DEFAULT_PLAN, make_election

pytestmark = pytest.mark.slow

# Which test is expected to catch which planted irregularity (the report's national flags).
EXPECTED_TEST = {
    "incremental_stuffing": "turnout-share association",
    "extreme_cluster": "extreme cluster",
    "round_percentages": "integer percentages",
    "directional_misreading": "misreadings favour 02",
}
RENDERED = sorted(set(DEFAULT_PLAN.values()) | {"31", "11"})


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    # The demo election exactly as `make report` builds it (same defaults, same seed).
    synthetic = make_election(seed=2024)
    data_path, _ = synthetic.write(out / "demo.parquet")
    result = run_reports(data_path, provinces=RENDERED, out_dir=out / "site", jobs=2,
                         parameters={"seed": 5, "n_sim": 200})
    index = write_index(out / "site", result)
    return synthetic, result, out / "site", index


def national_summary(site: Path) -> dict:
    paths = list(site.glob("national/**/summary.json")) + list(site.glob("national/*.json"))
    assert paths, f"no national summary under {site}"
    return json.loads(paths[0].read_text())


def test_every_report_rendered(batch):
    _, result, site, index = batch
    assert result.ok, [(r.code, r.error) for r in result.failed]
    assert Path(index).is_file()
    html = Path(index).read_text()
    for code in RENDERED:
        assert code in html


def test_planted_irregularities_are_flagged_in_their_provinces(batch):
    synthetic, _, site, _ = batch
    flags = pd.DataFrame(national_summary(site)["flags"])
    for kind, province in synthetic.planted_provinces().items():
        test = EXPECTED_TEST[kind]
        hit = flags[(flags["region"] == province[0]) & flags["test"].str.startswith(test) & flags["flagged"]]
        assert len(hit), f"{kind} in province {province[0]} not flagged by {test}"


def test_clean_provinces_flagged_no_more_than_the_fdr_allows(batch):
    """One meaning for "flagged": regions, decided over every test of the page (analysis.flagging).

    With four planted provinces and the false discovery rate at 5 %, no clean province should be
    flagged nationally on this run (one false flag would be a false discovery share of 20 %)."""
    synthetic, _, site, _ = batch
    summary = national_summary(site)
    planted = {p for provinces in synthetic.planted_provinces().values() for p in provinces}
    assert planted <= set(summary["flagged_regions"])
    assert set(summary["flagged_regions"]) - planted == set()


def test_clean_provinces_have_few_flags_within(batch):
    synthetic, result, _, _ = batch
    planted = {p for provinces in synthetic.planted_provinces().values() for p in provinces}
    clean_with_flags = []
    for report in result.reports:
        if report.code in planted or report.code == "national":
            continue
        summary = json.loads(Path(report.summary_path).read_text())
        if summary["flagged_regions"]:
            clean_with_flags.append(report.code)
    assert len(clean_with_flags) <= 1, clean_with_flags


def test_national_summary_has_election_tests(batch):
    tests = national_summary(batch[2])["election_tests"]
    assert {"test", "statistic", "pvalue", "flagged"} <= set(tests[0])
    assert any(t["test"].startswith("last digit") for t in tests)


def test_province_summaries_carry_headlines(batch):
    _, result, site, _ = batch
    for report in result.reports:
        if report.code == "national":
            continue
        summary = json.loads(Path(report.summary_path).read_text())
        assert summary["code"] == report.code
        assert summary["headline"]["stations"] >= 400


@pytest.mark.parametrize("name, parameters", [
    ("region.ipynb", {"level": "regency", "code": "7301", "n_sim": 100}),
    ("digits.ipynb", {"level": "regency", "code": "7301", "candidate": "02", "n_sim": 100}),
])
def test_explore_notebooks_run_on_the_demo(batch, tmp_path, name, parameters):
    import papermill

    synthetic, _, site, _ = batch
    data = site.parent / "demo.parquet"
    notebooks = Path(__file__).resolve().parents[1] / "notebooks" / "explore"
    papermill.execute_notebook(str(notebooks / name), str(tmp_path / name), kernel_name="python3",
                               parameters={"data_path": str(data), **parameters},
                               cwd=str(notebooks), progress_bar=False)


def test_stored_notebooks_have_no_outputs_and_no_definitions():
    import nbformat

    for path in (Path(__file__).resolve().parents[1] / "notebooks").rglob("*.ipynb"):
        notebook = nbformat.read(path, as_version=4)
        assert notebook.metadata["kernelspec"]["name"] == "python3", path
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, path
                assert not any(line.lstrip().startswith(("def ", "class ")) for line in cell.source.splitlines()), path
                assert len(cell.source.splitlines()) <= 15, path

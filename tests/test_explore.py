"""The explorer (analysis/report/explore.py, notebooks/explore/explorer.ipynb)."""

from pathlib import Path

import nbformat
import pandas as pd
import pytest

from analysis.election import Election
from analysis.report import explore
from analysis.synth import make_election
from tests.test_report import Page

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "explore" / "explorer.ipynb"


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A small province 18 with a planted cluster of ~100 % turnout for 02 (ground truth kept)."""
    synthetic = make_election(scale=0.002, min_tps=300, seed=5, provinces_only=["18", "31"],
                              plan={"extreme_cluster": "18"}, ocr_rate=0.0)
    path, _ = synthetic.write(tmp_path_factory.mktemp("explore") / "e.parquet")
    return synthetic, Path(path)


def test_sirekap_links_only_for_checked_tps_codes():
    assert explore.sirekap_url("7301011001001") == (
        "https://pemilu2024.kpu.go.id/pilpres/hitung-suara/73/7301/730101/7301011001/7301011001001")
    for bad in ("730101100100", "73010110010011", "../../../x", "7301011001001\n", "７３01011001001", ""):
        assert explore.sirekap_url(bad) is None
    assert explore.sirekap_url("7301011001001", ballot="pdpr") is None  # no known page for that ballot


def test_load_reads_only_the_province_and_choices_nest(planted):
    synthetic, path = planted
    part = explore.load(path, "18")
    pd.testing.assert_frame_equal(part.table, synthetic.election.select(province="18").table)
    options = explore.choices(part, province="18")
    assert [code for _, code in options["province"]] == ["18"]
    assert options["regency"] and all(code.startswith("18") for _, code in options["regency"])
    regency = options["regency"][0][1]
    deeper = explore.choices(part, province="18", regency=regency)
    assert all(code.startswith(regency) for _, code in deeper["district"])
    with pytest.raises(ValueError, match="region code"):
        explore.load(path, "../18")
    assert explore.ballot_files(path) == {"ppwp": path}


def test_the_tps_behind_the_flags_include_the_planted_ones(planted):
    synthetic, path = planted
    view = explore.explore(explore.load(path, "18"), province="18", n_sim=100, seed=1)
    truth = set(synthetic.truth.loc[synthetic.truth["kind"] == "extreme_cluster", "unit_id"])
    listed = set(view.tps.index)
    assert len(truth & listed) >= 0.8 * len(truth), (len(truth & listed), len(truth))
    assert view.tps["sirekap"].str.startswith("https://pemilu2024.kpu.go.id/pilpres/hitung-suara/18/").all()
    with pytest.raises(ValueError, match="not inside"):
        explore.explore(explore.load(path, "18"), province="18", regency="3101")


def test_hostile_names_are_escaped_in_the_view():
    from tests.hostile import CANDIDATES, PAYLOADS, hostile_election

    election = hostile_election().select(province="73")
    view = explore.explore(election, province="73", n_sim=40)
    html = view._repr_html_()
    page = Page(html)
    assert not any(p in html for p in PAYLOADS) and "script" not in page.tags and "iframe" not in page.tags
    assert PAYLOADS[1] in page.words  # the province's name, as text
    links = [v for tag, k, v in page.attributes if tag == "a" and k == "href"]
    assert all(v.startswith("https://pemilu2024.kpu.go.id/pilpres/hitung-suara/73/7") for v in links)
    assert view.winner in CANDIDATES.values()


def test_widget_builds_its_dropdowns(planted):
    pytest.importorskip("ipywidgets", reason="ipywidgets not installed (pip install '.[explore]')")
    _, path = planted
    box = explore.widget(explore.ballot_files(path), province="18")
    dropdowns = box.children[0].children
    assert [d.description for d in dropdowns] == ["ballot", "provinsi", "kab/kota", "kecamatan"]
    assert dropdowns[1].value == "18" and len(dropdowns[2].options) > 1
    dropdowns[1].value = "31"  # another province: the kabupaten list follows
    assert all(code == "" or code.startswith("31") for _, code in dropdowns[2].options)


def test_explorer_notebook_runs_on_parameters_and_exports_safely(planted, tmp_path):
    import papermill

    from analysis.report.export import export_html

    _, path = planted
    executed = tmp_path / "explorer.ipynb"
    papermill.execute_notebook(str(NOTEBOOK), str(executed), cwd=str(NOTEBOOK.parent), progress_bar=False,
                               kernel_name="python3", parameters={"data_path": str(path), "province": "18",
                                                                  "n_sim": 60})
    html = export_html(executed, tmp_path / "explorer.html", title="explorer").read_text()
    page = Page(html)
    assert "figcaption" in page.tags and "What to look at: One round blob" in page.words
    assert any(v.startswith("https://pemilu2024.kpu.go.id/") for tag, k, v in page.attributes if k == "href")
    stored = nbformat.read(str(NOTEBOOK), as_version=4)  # stored clean and thin
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in stored.cells if c.cell_type == "code")
    assert stored.cells[1].metadata.get("tags") == ["parameters"]
    assert not any("def " in c.source or "class " in c.source for c in stored.cells if c.cell_type == "code")

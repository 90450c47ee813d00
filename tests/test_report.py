"""The batch runner, the HTML export and the index, on tiny notebooks the tests write themselves."""

import json
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import pytest

from analysis.election import Election
from analysis.report.export import export_html, sanitise
from analysis.report.index import write_index
from analysis.report.runner import run_reports
from analysis.report.summary import Flag, SummaryError, read_summary, write_summary

class _Tags(HTMLParser):
    """Every tag and attribute a browser would see (escaped text is not a tag)."""

    def __init__(self, html):
        super().__init__()
        self.tags, self.attributes = [], []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, k, v or "") for k, v in attrs]


HOSTILE = '<b>Jakarta & "Barat"</b><script>alert(1)</script>'


def _notebook(path: Path, body: str, parameters: str) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


PROVINCE_BODY = '''
import pandas as pd
from IPython.display import HTML, display
from analysis.report.summary import Flag, write_summary
if province == "13":
    raise RuntimeError("planted failure in 13")
display(HTML("<script>alert(1)</script><img src=x onerror=alert(2)><a href='javascript:alert(3)'>x</a>"))
display(pd.DataFrame({"region": [NAME]}).to_html())
display(pd.DataFrame({"region": [NAME]}))
write_summary(summary_path, scope="province", code=province, name=NAME, headline={"stations": 10, "turnout_percent": 80.0},
              flags=[Flag("t", province, 1.0, 0.5, 0.5, province == "02")], provenance={"input_sha256": "ab"},
              parameters={"province": province, "kind": type(province).__name__})
'''.replace("NAME", repr(HOSTILE))

NATIONAL_BODY = '''
from analysis.report.summary import Flag, write_summary
write_summary(summary_path, scope="national", code="national", name="n", headline={"stations": 30},
              flags=[Flag("extreme cluster", "02", 5.0, 1e-6, 1e-5, True)], provenance={"input_sha256": "cd"}, parameters={})
'''


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "province.ipynb", PROVINCE_BODY, 'province: str = "31"\ndata_path: str = ""\nsummary_path: str = ""')
    _notebook(notebooks / "national.ipynb", NATIONAL_BODY, 'data_path: str = ""\nsummary_path: str = ""\nprovince_summaries_dir: str = ""')
    import pandas as pd

    data = root / "e.parquet"
    stations = pd.DataFrame({"unit_id": ["0201", "1301", "3101"], "province": ["02", "13", "31"], "registered": 100,
                             "voters": 80, "valid": 78, "invalid": 2, "01": 78})
    Election.from_frame(stations, levels=["province"], candidates=["01"]).to_parquet(data)
    result = run_reports(data, provinces=["02", "13", "31"], out_dir=root / "site", jobs=2, notebooks_dir=notebooks,
                         progress=False)
    return result, root / "site", write_index(root / "site", result)


def test_failed_province_is_recorded_and_the_others_render(batch):
    result, site, _ = batch
    status = {r.code: r.status for r in result.reports}
    assert status == {"02": "ok", "13": "failed", "31": "ok", "national": "ok"}
    failed = result.failed[0]
    assert "planted failure in 13" in failed.error and not result.ok
    for report in result.reports:
        assert report.html_path and Path(report.html_path).is_file()  # the failed one too, showing its error
    assert "planted failure in 13" in Path(failed.html_path).read_text()


def test_parameters_arrive_as_strings(batch):
    result, _, _ = batch
    summary = read_summary(next(r.summary_path for r in result.reports if r.code == "02"))
    assert summary["parameters"] == {"province": "02", "kind": "str"}


def test_html_is_sanitised_escaped_and_self_contained(batch):
    result, site, index = batch
    for path in [Path(r.html_path) for r in result.reports] + [Path(index)]:
        html = path.read_text()
        seen = _Tags(html)
        assert not {"script", "iframe", "object", "embed"} & set(seen.tags)
        assert not [a for a in seen.attributes if a[1].startswith("on")]
        assert not [a for a in seen.attributes if a[2].strip().lower().startswith("javascript:")]
        assert not [a for a in seen.attributes if a[1] in ("src", "href") and "://" in a[2]]
        csp = [v for tag, k, v in seen.attributes if tag == "meta" and k == "content" and "default-src 'none'" in v]
        assert csp and ("meta", "http-equiv", "Content-Security-Policy") in seen.attributes
    report = Path(next(r.html_path for r in result.reports if r.code == "02")).read_text()
    assert "&lt;b&gt;Jakarta &amp;" in report  # the hostile name shows as text
    assert (site / "static" / "report.css").is_file()


def test_index_lists_every_province_flags_and_failures(batch):
    result, site, index = batch
    html = Path(index).read_text()
    assert "planted failure in 13" in html and "failed" in html
    assert "extreme cluster" in html  # national flag for 02
    assert "&lt;b&gt;Jakarta" in html and "<b>Jakarta" not in html
    machine = json.loads((site / "index.json").read_text())
    assert {r["code"] for r in machine["reports"]} == {"02", "13", "31", "national"}


def test_index_accepts_a_relative_out_dir(batch, monkeypatch):
    result, site, _ = batch
    monkeypatch.chdir(site.parent)
    index = write_index(site.name, result)
    assert 'href="national/index.html"' in Path(index).read_text()


def test_sanitise_keeps_tables_and_inline_images_drops_the_rest():
    html = ('<table><tr><td>1</td></tr></table><img src="data:image/png;base64,AAAA">'
            '<img src="https://evil.example/x.png"><a href="data:text/html,<script>">x</a><iframe src=x></iframe>')
    clean = sanitise(html)
    assert "<table>" in clean and 'src="data:image/png;base64,AAAA"' in clean
    assert "evil.example" not in clean and "data:text/html" not in clean and "iframe" not in clean


def test_summary_round_trip_and_bad_summary(tmp_path):
    import numpy as np

    path = write_summary(tmp_path / "s.json", scope="province", code="31", name="x",
                         headline={"n": np.int64(3), "t": float("nan")}, flags=[Flag("t", "31", np.float64(2.0), None, None, False)],
                         provenance={}, parameters={})
    body = read_summary(path)
    assert body["headline"] == {"n": 3, "t": None} and body["flags"][0]["statistic"] == 2.0
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SummaryError, match="lacks"):
        read_summary(tmp_path / "bad.json")


def test_sections_headline_flags_and_provenance(tmp_path):
    import pandas as pd

    from analysis.report import sections

    table = pd.DataFrame({
        "unit_id": ["3101011001001", "3101011001002", "3201011001001"], "province": ["31", "31", "32"],
        "province_name": ["DKI JAKARTA", "DKI JAKARTA", '<b>"JABAR"</b>'],
        "registered": [200, 100, None], "voters": [150, 50, 80], "valid": [140, 50, 80], "invalid": [10, 0, 0],
        "01": [40, 10, 20], "02": [100, 40, 60],
    })
    election = Election.from_frame(table, levels=["province"], candidates=["01", "02"], name="t")
    head = sections.headline(election)
    assert head["stations"] == 3 and head["stations_with_administration"] == 2
    assert head["turnout_percent"] == round(100 * 200 / 300, 2)  # only TPS with both numbers
    assert head["share_02_percent"] == round(100 * 200 / 270, 2)
    assert sections.leading_candidate(election) == "02"
    flags = [Flag("extreme cluster", "32", 9.0, 1e-6, 1e-5, True), Flag("extreme cluster", "31", 1.0, 0.5, 0.6, False)]
    shown = sections.flag_table(flags, election)
    assert list(shown["region"]) == ["32"] and shown["name"].iloc[0] == '<b>"JABAR"</b>'
    assert "<b>" not in shown.to_html()  # escaped when rendered
    assert sections.flag_table([], election).empty
    assert "not written" in sections.save_summary("", scope="province", code="31", election=election, flags=flags, parameters={})
    path = tmp_path / "s.json"
    sections.save_summary(str(path), scope="province", code="31", election=election, flags=flags, parameters={"seed": 1})
    assert read_summary(path)["name"] == "DKI JAKARTA"
    provenance = sections.provenance_frame(election, {"seed": 1})
    assert provenance.loc["table SHA-256", "value"] == election.provenance["table_sha256"]

"""The batch runner, the HTML export and the index, on tiny notebooks the tests write themselves."""

import base64
import hashlib
import io
import json
import os
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, strategies as st

from analysis.election import Election
from analysis.report.export import ExportError, check_inert, export_html, sanitise
from analysis.report.index import write_index
from analysis.report.runner import FOLDER, check_code, file_sha256, folder_name, run_reports
from analysis.report.summary import Flag, SummaryError, read_summary, write_summary

HOSTILE_NAME = '<b>Jakarta & "Barat"</b>'
HOSTILE_HTML = ("<script>alert(1)</script><img src=x onerror=alert(2)><a href='javascript:alert(3)'>x</a>"
                "<a href=' JaVaScRiPt:alert(4)'>y</a><iframe src='https://evil.example/'></iframe>"
                "<img src='https://evil.example/track.png'><p onclick='alert(5)'>kept text</p>")


SORT_JS = (Path(__file__).resolve().parents[1] / "analysis" / "report" / "static" / "sort.js").read_text()
SORT_JS_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(SORT_JS.encode()).digest()).decode() + "'"


class Page(HTMLParser):
    """What a browser would see: tags, attributes, scripts, and the text a reader reads (independent of export.py)."""

    def __init__(self, html):
        super().__init__(convert_charrefs=True)
        self.tags, self.attributes, self.text, self.scripts = [], [], [], []
        self._in = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += [(tag, k, (v or "").strip()) for k, v in attrs]
        self._in = tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "script":
            self.scripts.append(data)
        elif self._in != "style":
            self.text.append(data)

    @property
    def words(self):
        """The page's text as one string."""
        return "".join(self.text)


SIREKAP_PAGES = "https://pemilu2024.kpu.go.id/pilpres/hitung-suara/"


def assert_safe(html, verbatim=True):
    """One script, the pinned sort.js; no event handler, no javascript: URL, nothing loaded from another host;
    a strict CSP that allows that one script by its hash and nothing else.

    ``verbatim``: no other script even as escaped text (a failed report's traceback may quote code as text).
    """
    lowered = html.lower()
    if verbatim:
        assert lowered.count("<script") == 1 and "onerror" not in lowered and "javascript:" not in lowered
    page = Page(html)
    assert page.tags.count("script") == 1 and page.scripts == [SORT_JS]
    assert not [a for a in page.attributes if a[0] == "script"]  # inline, no src
    assert not {"iframe", "object", "embed", "base", "link", "svg", "form"} & set(page.tags)
    assert not [a for a in page.attributes if a[1].startswith("on")]
    assert not [a for a in page.attributes if a[1] == "src" and ("://" in a[2] or a[2].startswith("//"))]
    # Links (not loads) may lead to one other place: a TPS's public Sirekap page, over https.
    assert not [a for a in page.attributes if a[1] == "href" and ("://" in a[2] or a[2].startswith("//"))
                and not a[2].startswith(SIREKAP_PAGES)]
    csp = [v for tag, k, v in page.attributes if tag == "meta" and k == "content" and "default-src 'none'" in v]
    assert len(csp) == 1 and f"script-src {SORT_JS_HASH};" in csp[0]  # that script and no other
    assert "unsafe" not in csp[0] and "img-src data:;" in csp[0]
    assert ("meta", "http-equiv", "Content-Security-Policy") in page.attributes
    return page


def write_notebook(path, parameters, *bodies):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell] + [nbformat.v4.new_code_cell(body) for body in bodies]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


PROVINCE_FAILURES = '''
import time
if province == "13":
    raise RuntimeError("planted failure in 13 <b>&</b>")
if province == "45":
    time.sleep(60)
'''

PROVINCE_BODY = f'''
import os, sys
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import HTML, display
from analysis.report.summary import Flag, write_summary
display(HTML({HOSTILE_HTML!r}))
display(pd.DataFrame({{"region": [{HOSTILE_NAME!r}]}}).to_html())
display(pd.DataFrame({{"region": [{HOSTILE_NAME!r}]}}))
plt.plot([1, 2, 3]); plt.show()
write_summary(summary_path, scope="province", code=province, name={HOSTILE_NAME!r},
              headline={{"stations": 10, "turnout_percent": 80.0, "share_01_percent": 55.5}},
              flags=[Flag("digit test", "0201", 1.0, 0.01, 0.02, province == "02"), Flag("other", "0202", 1.0, 0.5, 0.6, False)],
              provenance={{"input_sha256": "ab12"}},
              parameters={{"province": province, "kind": type(province).__name__, "python": sys.executable, "seed": seed,
                          "backend": os.environ.get("MPLBACKEND", ""),
                          "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS", "")}})
'''

NATIONAL_BODY = '''
from pathlib import Path
from analysis.report.summary import Flag, write_summary
seen = sorted(p.parent.name for p in Path(province_summaries_dir).glob("*/summary.json"))
write_summary(summary_path, scope="national", code="national", name="Indonesia", headline={"stations": 30},
              flags=[Flag("extreme cluster", "02", 5.0, 1e-6, 1e-5, True)], provenance={"input_sha256": "cd34"},
              parameters={"seen": seen})
'''


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    notebooks = root / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "province.ipynb", 'province: str = "31"\ndata_path: str = ""\nsummary_path: str = ""',
                   PROVINCE_FAILURES, PROVINCE_BODY)
    write_notebook(notebooks / "national.ipynb",
                   'data_path: str = ""\nsummary_path: str = ""\nprovince_summaries_dir: str = ""', NATIONAL_BODY)
    data = root / "e.parquet"
    stations = pd.DataFrame({"unit_id": ["0201", "1301", "3101", "4501"], "province": ["02", "13", "31", "45"],
                             "registered": 100, "voters": 80, "valid": 78, "invalid": 2, "01": 78})
    Election.from_frame(stations, levels=["province"], candidates=["01"]).to_parquet(data)
    site = root / "site"
    # A summary left by an earlier run must not make the failing province look rendered.
    write_summary(site / "13" / "summary.json", scope="province", code="13", name="stale", headline={}, flags=[],
                  provenance={}, parameters={})
    # A user's own "python3" kernelspec for some other interpreter must not be the one the batch runs.
    decoy = root / "jupyter" / "kernels" / "python3"
    decoy.mkdir(parents=True)
    (decoy / "kernel.json").write_text(json.dumps({"argv": [sys.executable, "-c", "raise SystemExit(3)"],
                                                   "display_name": "decoy", "language": "python"}))
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JUPYTER_PATH", str(root / "jupyter"))
        env.setenv("MPLBACKEND", "Agg")  # would keep every figure out of the reports if the kernel inherited it
        result = run_reports(data, provinces=["02", "13", "31", "45"], out_dir=site, jobs=2,
                             notebooks_dir=notebooks, timeout_per_cell=8, parameters={"seed": 2024}, progress=False)
    return result, site, write_index(site, result)


def report(result, code):
    return next(r for r in result.reports if r.code == code)


def test_failed_provinces_are_recorded_and_the_others_render(batch):
    result, _, _ = batch
    status = {r.code: r.status for r in result.reports}
    assert status == {"02": "ok", "13": "failed", "31": "ok", "45": "failed", "national": "ok"}
    assert [r.code for r in result.failed] == ["13", "45"] and not result.ok
    assert report(result, "13").error.startswith("RuntimeError: planted failure in 13")
    assert "timed out" in report(result, "45").error and "8 s" in report(result, "45").error
    for code in ("02", "13", "31", "45", "national"):
        assert Path(report(result, code).html_path).is_file()  # the failed ones too, showing where they stopped
    failed_page = Path(report(result, "13").html_path).read_text()
    assert "planted failure in 13" in Page(failed_page).words
    assert "This report did not finish" in failed_page
    assert not Path(report(result, "13").summary_path).exists()  # the stale summary was removed


def test_parameters_arrive_as_strings_in_this_interpreter(batch):
    result, _, _ = batch
    summary = read_summary(report(result, "02").summary_path)
    assert summary["code"] == "02"
    assert summary["parameters"]["province"] == "02" and summary["parameters"]["kind"] == "str"
    assert summary["parameters"]["seed"] == 2024  # extra parameters reach the notebook too
    assert summary["parameters"]["python"] == sys.executable  # the kernel runs the batch's interpreter
    assert "inline" in summary["parameters"]["backend"]
    # Two kernels side by side share the cores instead of each starting a BLAS thread per core.
    expected = os.environ.get("OPENBLAS_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // 2)))
    assert summary["parameters"]["blas_threads"] == expected


def test_national_report_runs_after_the_provinces(batch):
    result, _, _ = batch
    national = read_summary(report(result, "national").summary_path)
    assert national["parameters"]["seen"] == ["02", "31"]


def test_a_national_report_without_summaries_starts_first(tmp_path):
    # The shipped national notebook reads no province summary: it is the longest report, so it starts
    # first instead of running alone at the end. One worker makes the order observable.
    stamp = '''
import time
from analysis.report.summary import write_summary
write_summary(summary_path, scope={scope}, code={code}, name="x", headline={{}}, flags=[], provenance={{}},
              parameters={{"started": time.time(), "given": sorted(k for k in globals() if k.endswith("_dir"))}})
'''
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "province.ipynb", 'province: str = "31"\ndata_path: str = ""\nsummary_path: str = ""',
                   stamp.format(scope='"province"', code="province"))
    write_notebook(notebooks / "national.ipynb", 'data_path: str = ""\nsummary_path: str = ""',
                   stamp.format(scope='"national"', code='"national"'))
    stations = pd.DataFrame({"unit_id": ["0201", "3101"], "province": ["02", "31"], "registered": 100, "voters": 80,
                             "valid": 78, "invalid": 2, "01": 78})
    data = Election.from_frame(stations, levels=["province"], candidates=["01"]).to_parquet(tmp_path / "e.parquet")
    result = run_reports(data, out_dir=tmp_path / "site", jobs=1, notebooks_dir=notebooks, progress=False)
    assert result.ok and [r.code for r in result.reports] == ["02", "31", "national"]
    started = {r.code: read_summary(r.summary_path)["parameters"]["started"] for r in result.reports}
    assert started["national"] < min(started["02"], started["31"])
    assert read_summary(report(result, "national").summary_path)["parameters"]["given"] == []


def test_a_report_that_kills_its_worker_fails_alone(tmp_path):
    # A worker killed from outside (the OOM killer; here the kernel kills its parent) breaks the whole
    # process pool: the reports beside it must be run again, not recorded as failed with it.
    body = '''
import os, signal, time
from analysis.report.summary import write_summary
with open(STARTS, "a") as starts:
    starts.write(province + "\\n")
time.sleep(1.5)  # so that the neighbours are running when the pool breaks
if province == "13":
    os.kill(os.getppid(), signal.SIGKILL)
write_summary(summary_path, scope="province", code=province, name="x", headline={}, flags=[], provenance={},
              parameters={})
'''.replace("STARTS", repr(str(tmp_path / "starts.txt")))
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "province.ipynb", 'province: str = "31"\ndata_path: str = ""\nsummary_path: str = ""', body)
    codes = ["02", "13", "31", "45"]
    stations = pd.DataFrame({"unit_id": [f"{c}01" for c in codes], "province": codes, "registered": 100,
                             "voters": 80, "valid": 78, "invalid": 2, "01": 78})
    data = Election.from_frame(stations, levels=["province"], candidates=["01"]).to_parquet(tmp_path / "e.parquet")
    result = run_reports(data, out_dir=tmp_path / "site", jobs=2, notebooks_dir=notebooks, national=False,
                         progress=False)
    status = {r.code: r.status for r in result.reports}
    assert status == {"02": "ok", "13": "failed", "31": "ok", "45": "ok"}
    assert "worker process died while running it, twice" in report(result, "13").error
    assert "__main__" not in report(result, "13").error  # not the hint for a script that cannot spawn workers
    starts = (tmp_path / "starts.txt").read_text().split()
    # 13 ran twice (beside another report, then alone); the one beside it ran again; none ran three times
    assert starts.count("13") == 2 and len(starts) >= 6 and max(starts.count(c) for c in codes) == 2


def test_a_kernel_that_dies_at_start_is_started_once_more(tmp_path):
    # A kernel lost before it answers (seen once in 39 reports on a loaded machine) is not the report's
    # failure: the runner starts it again, once. The kernelspec here dies on its first start only.
    from analysis.report import runner

    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    write_notebook(notebooks / "province.ipynb", 'province: str = "31"\ndata_path: str = ""\nsummary_path: str = ""',
                   "from analysis.report.summary import write_summary\n"
                   "write_summary(summary_path, scope='province', code=province, name='x', headline={}, flags=[],"
                   " provenance={}, parameters={})")
    starts = tmp_path / "starts.txt"
    launcher = (f"import pathlib, runpy, sys\nstarts = pathlib.Path({str(starts)!r})\n"
                "starts.write_text(starts.read_text() + 'x' if starts.exists() else 'x')\n"
                "sys.exit(1) if starts.read_text() == 'x' else runpy.run_module('ipykernel_launcher', run_name='__main__')")
    scratch = tmp_path / "scratch"
    job = {"template": str(notebooks / "province.ipynb"), "site": str(tmp_path / "site"), "code": "31", "extra": {},
           "data_path": "", "cwd": str(notebooks), "timeout": 120, "build": {}, "level": "province"}

    def run(dies: str):
        starts.unlink(missing_ok=True)
        with runner._environment(runner._kernel_environment(scratch)):
            spec = scratch / "jupyter" / "kernels" / runner.KERNEL_NAME / "kernel.json"
            body = json.loads(spec.read_text())
            body["argv"] = [sys.executable, "-c", launcher.replace("== 'x'", f"in {dies!r}"), "-f", "{connection_file}"]
            spec.write_text(json.dumps(body))
            return runner._run_one(job)

    once = run(dies="x")  # dies on the first start only
    assert once.status == "ok", once.error
    assert starts.read_text() == "xx"
    assert "starting the kernel once more" in (tmp_path / "site" / runner.BUILD_DIR / "logs" / "31.log").read_text()
    always = run(dies="xxx")  # dies on every start: a failure, after two starts, not more
    assert always.status == "failed" and "Kernel died before replying to kernel_info" in always.error
    assert starts.read_text() == "xx"


def test_reports_are_sanitised_escaped_and_self_contained(batch):
    result, site, _ = batch
    for r in result.reports:
        if r.html_path:
            assert_safe(Path(r.html_path).read_text(), verbatim=r.ok)
    page = assert_safe(Path(report(result, "02").html_path).read_text())
    assert "b" not in page.tags  # the hostile name never became markup
    assert HOSTILE_NAME in page.words  # it shows as text, verbatim
    assert "kept text" in page.words and "table" in page.tags  # sanitising keeps content and tables
    images = [v for tag, k, v in page.attributes if tag == "img" and k == "src"]
    assert any(v.startswith("data:image/png;base64,") for v in images)  # the figure, inline
    assert [tag for tag, k, v in page.attributes if k == "class" and "failed-banner" in v] == []


def test_index_lists_every_province_flags_and_failures(batch):
    result, site, index = batch
    html = Path(index).read_text()
    page = assert_safe(html)
    text = page.words
    assert "planted failure in 13 <b>&</b>" in text and "<b>&</b>" not in html  # error shown, escaped
    assert "timed out" in text
    assert HOSTILE_NAME in text and "b" not in page.tags
    assert "extreme cluster" in text  # the national flag, named beside province 02
    assert "1: 0201 (digit test)" in text  # 02's flagged sub-region, counted once and named with its test
    links = [v for tag, k, v in page.attributes if tag == "a" and k == "href"]
    assert links[0] == "national/index.html"  # the national report first
    assert {"02/index.html", "13/index.html", "31/index.html"} <= set(links)
    assert result.data_sha256 in text and len(result.data_sha256) == 64
    assert "parameter seed2024" in text and "2,024" not in text  # parameters verbatim
    machine = json.loads((site / "index.json").read_text())
    assert [r["code"] for r in machine["reports"]] == ["02", "13", "31", "45", "national"]
    by_code = {r["code"]: r for r in machine["reports"]}
    assert by_code["02"]["summary"]["headline"]["stations"] == 10 and by_code["13"]["summary"] is None
    assert by_code["13"]["status"] == "failed" and "planted failure" in by_code["13"]["error"]
    assert str(site) not in (site / "index.json").read_text()  # no local paths published


def test_index_accepts_a_relative_out_dir(batch, monkeypatch):
    result, site, _ = batch
    monkeypatch.chdir(site.parent)
    index = write_index(site.name, result)
    assert 'href="national/index.html"' in Path(index).read_text()


@pytest.mark.filterwarnings("ignore:Your element with mimetype")  # the widget output, dropped on purpose
def test_export_sanitises_every_kind_of_output(tmp_path):
    """A hand-built executed notebook (no kernel): each output type a notebook can carry."""
    out = nbformat.v4.new_output
    nb = nbformat.v4.new_notebook()
    markdown = nbformat.v4.new_markdown_cell("## Findings <script>alert(1)</script>\n\n<img src=x onerror=alert(2)>")
    code = nbformat.v4.new_code_cell("secret_input = 1")
    code.outputs = [
        out("display_data", data={"text/html": HOSTILE_HTML, "text/plain": "x"}),
        out("display_data", data={"application/javascript": "alert(6)"}),
        out("display_data", data={"image/svg+xml": "<svg xmlns='http://www.w3.org/2000/svg'><script>alert(7)</script></svg>"}),
        out("display_data", data={"text/markdown": "[click](javascript:alert(8)) **bold**"}),
        out("display_data", data={"application/vnd.jupyter.widget-view+json": {"model_id": "abc"}}),
        out("execute_result", data={"text/html": pd.DataFrame({"region": [HOSTILE_NAME]}).to_html()}, execution_count=1),
        out("stream", name="stdout", text="<script>alert(9)</script>"),
    ]
    nb.cells = [markdown, code]
    nbformat.write(nb, tmp_path / "executed.ipynb")
    html = export_html(tmp_path / "executed.ipynb", tmp_path / "out" / "page.html", title='<i>Title</i> "31"',
                       footer={"data": "<e>.parquet"}).read_text()
    page = assert_safe(html)
    assert "secret_input" not in html  # inputs hidden
    assert "Findings" in page.words and "bold" in page.words
    assert HOSTILE_NAME in page.words and "<script>alert(9)</script>" in page.words  # as text
    assert '<i>Title</i> "31"' in page.words and "i" not in page.tags
    svg = [v for tag, k, v in page.attributes if tag == "img" and v.startswith("data:image/svg+xml")]
    assert len(svg) == 1 and "svg" not in page.tags  # SVG only as an image, where scripts never run
    assert "<e>.parquet" in page.words
    assert not list((tmp_path / "out").glob("*.tmp"))


def test_sanitise_keeps_tables_and_inline_images_drops_the_rest():
    html = ('<table><tr><td>1</td></tr></table><img src="data:image/png;base64,AAAA">'
            '<img src="https://evil.example/x.png"><a href="data:text/html,<script>">x</a><iframe src=x></iframe>'
            '<img src="data:image/svg+xml;base64,AAAA"><a href="https://example.org/paper">paper</a>')
    clean = sanitise(html)
    assert "<table>" in clean and 'src="data:image/png;base64,AAAA"' in clean
    assert "evil.example" not in clean and "data:text/html" not in clean and "iframe" not in clean
    assert "svg" not in clean  # an SVG could carry script; in outputs only raster images pass
    assert 'href="https://example.org/paper"' in clean and "noopener" in clean  # a link is not a load


def test_check_inert_refuses_active_pages():
    for bad in ("<script>1</script>", "<p onmouseover=x>", "<a href=' java\tscript:alert(1)'>", '<img src="https://x/y">'):
        with pytest.raises(ExportError, match="active content"):
            check_inert(f"<html><body>{bad}</body></html>", "page.html")
    assert check_inert('<a href="https://example.org">ok</a>', "page.html")


def test_summary_round_trip_converts_numpy_and_missing(tmp_path):
    path = write_summary(tmp_path / "deep" / "s.json", scope="province", code="31", name="x",
                         headline={"n": np.int64(3), "t": float("nan"), "u": np.float32(0.5), "v": pd.NA},
                         flags=[Flag("t", "31", np.float64(2.0), None, np.nan, np.bool_(True))],
                         provenance={"hashes": np.array([1, 2])}, parameters={"province": "02"})
    body = read_summary(path)
    assert body["headline"] == {"n": 3, "t": None, "u": 0.5, "v": None}
    assert body["flags"][0] == {"test": "t", "region": "31", "statistic": 2.0, "pvalue": None, "qvalue": None,
                                "flagged": True, "note": "", "pvalue_empirical": None, "region_qvalue": None}
    assert body["provenance"] == {"hashes": [1, 2]} and body["parameters"] == {"province": "02"}
    assert "NaN" not in path.read_text() and list(path.parent.iterdir()) == [path]  # strict JSON, no temp left


@pytest.mark.parametrize("text, problem", [
    ("{}", "lacks 'scope'"),
    ("[]", "not an object"),
    ("not json", "not a readable summary"),
    ('{"scope": "city", "code": 31, "name": "", "headline": {"a": [1]}, "flags": [{"test": "t"}], '
     '"provenance": {}, "parameters": {}}', "scope is 'city'"),
])
def test_read_summary_names_what_is_wrong(tmp_path, text, problem):
    (tmp_path / "bad.json").write_text(text)
    with pytest.raises(SummaryError, match=problem):
        read_summary(tmp_path / "bad.json")


def test_read_summary_lists_every_problem(tmp_path):
    (tmp_path / "bad.json").write_text('{"scope": "city", "code": 31, "name": "", "headline": {"a": [1]}, '
                                       '"flags": [{"test": "t"}], "provenance": {}, "parameters": []}')
    with pytest.raises(SummaryError) as err:
        read_summary(tmp_path / "bad.json")
    for problem in ("code is int", "headline values", "flag 0 lacks region", "parameters is list"):
        assert problem in str(err.value)


def test_write_summary_rejects_bad_scope_and_flags(tmp_path):
    with pytest.raises(ValueError, match="scope"):
        write_summary(tmp_path / "s.json", scope="city", code="31", name="", headline={}, flags=[], provenance={},
                      parameters={})
    with pytest.raises(TypeError, match="Flag objects"):
        write_summary(tmp_path / "s.json", scope="province", code="31", name="", headline={},
                      flags=[{"test": "t"}], provenance={}, parameters={})
    assert not (tmp_path / "s.json").exists()


@pytest.mark.parametrize("code", [2, "2", "../31", "31/..", "31\n", "٣١", "12345678901234", ""])
def test_bad_region_codes_never_reach_a_path(code):
    with pytest.raises(ValueError, match="region code"):
        check_code(code)


@given(st.text(min_size=1, max_size=60).filter(str.strip))
def test_any_region_code_gets_a_safe_stable_folder(code):
    folder = folder_name(code)
    assert FOLDER.fullmatch(folder) and folder not in ("national", "_build", "..", ".")
    assert folder == folder_name(code)  # stable across runs
    if folder != code:
        assert folder.endswith(hashlib.sha256(code.encode()).hexdigest()[:10])


@pytest.mark.parametrize("code, folder", [("31", "31"), ("Москва", None), ("г. Москва / ТИК №1 (Центр)", None),
                                          ("1", "1"), ("national", None), ("a/b", None)])
def test_folder_names_keep_plain_codes(code, folder):
    assert (folder_name(code) == folder) if folder else (folder_name(code) != code)


def test_run_reports_checks_its_arguments_before_running(tmp_path):
    data = tmp_path / "e.parquet"
    stations = pd.DataFrame({"unit_id": ["0201"], "province": ["02"], "registered": 100, "voters": 80, "valid": 78,
                             "invalid": 2, "01": 78})
    Election.from_frame(stations, levels=["province"], candidates=["01"]).to_parquet(data)
    out = tmp_path / "site"
    started = time.perf_counter()
    with pytest.raises(ValueError, match="no province '2' in e.parquet; it holds: 02"):
        run_reports(data, provinces=[2], out_dir=out, notebooks_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="no province '../../etc'"):
        run_reports(data, provinces=["../../etc"], out_dir=out, notebooks_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="has no level 'kabupaten'; its levels: province"):
        run_reports(data, level="kabupaten", out_dir=out, notebooks_dir=tmp_path, progress=False)
    (tmp_path / "plain.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(ValueError, match="not a readable Parquet file"):
        run_reports(tmp_path / "plain.parquet", out_dir=out, notebooks_dir=tmp_path, progress=False)
    assert time.perf_counter() - started < 10  # failing fast: before any notebook starts
    with pytest.raises(ValueError, match="runner sets them"):
        run_reports(data, provinces=["02"], out_dir=out, parameters={"province": "31"}, progress=False)
    with pytest.raises(FileNotFoundError, match="province.ipynb"):
        run_reports(data, provinces=["02"], out_dir=out, notebooks_dir=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match="no election file"):
        run_reports(tmp_path / "missing.parquet", provinces=["02"], out_dir=out, progress=False)
    assert not out.exists()  # nothing written before the arguments were checked


def test_sections_headline_flags_and_provenance(tmp_path):
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


# ------------------------------------------------------------------ the real notebooks on hostile names


@pytest.fixture(scope="module")
def hostile():
    from tests.hostile import hostile_site

    return hostile_site()


def test_hostile_names_reach_every_page_only_as_text(hostile):
    from tests.hostile import CANDIDATES, PAYLOADS, PROVINCES

    batch, index = hostile
    pages = {r.code: Path(r.html_path) for r in batch.reports if r.html_path}
    assert set(pages) == {"31", "73", "national"}, [(r.code, r.error) for r in batch.reports]
    pages["index"] = Path(index)
    for code, path in pages.items():
        html = path.read_text()
        page = assert_safe(html, verbatim=False)
        for payload in PAYLOADS:
            assert payload not in html, f"{code}: {payload!r} reached the HTML unescaped"
        assert "iframe" not in page.tags and not [a for a in page.attributes if a[0] == "img" and a[1] == "src"
                                                   and not a[2].startswith("data:image/")]
    for code in ("31", "73"):
        words = Page(pages[code].read_text()).words
        assert PROVINCES[code] in words  # the region's name, in the title, as text
        assert all(name in words for name in CANDIDATES.values())  # candidate names in the tables, as text
    index_words = Page(pages["index"].read_text()).words
    assert all(name in index_words for name in PROVINCES.values())
    assert all(name in index_words for name in CANDIDATES.values())  # the shares' column headings


def test_every_page_and_summary_says_what_it_was_made_from(hostile):
    batch, index = hostile
    data = Path(batch.data_path)
    sha = file_sha256(data)
    assert batch.data_sha256 == sha and batch.build["data_sha256"] == sha
    for report in batch.reports:
        words = Page(Path(report.html_path).read_text()).words
        for text in (data.name, sha, "2024-02-15T10:00:00+07:00", "git ", "parameter seed3", "parameter n_sim40",
                     "rendered (UTC)"):
            assert text in words, f"{report.code}: footer lacks {text!r}"
        if not report.ok:
            assert report.code == "national", report.error  # the provinces must render; see the hostile test
            continue
        summary = read_summary(report.summary_path)
        build = summary["build"]
        assert build["data_file"] == data.name and build["data_sha256"] == sha
        assert build["snapshot_time"] == "2024-02-15T10:00:00+07:00" and build["parameters"] == {"seed": 3, "n_sim": 40}
        assert build["code_version"].startswith("forensik ") and build["rendered"] and build["scope"] == report.code
        if report.code != "national":
            # The notebook's own provenance table: the national file's hash, as the split file recorded it.
            assert summary["provenance"]["data_sha256"] == sha
            assert "data file SHA-256 (as read)" + sha in words
    assert sha in Page(Path(index).read_text()).words


def test_executed_notebooks_stay_out_of_the_report_folders(hostile):
    batch, _ = hostile
    site = Path(batch.out_dir)
    assert not [p for p in site.glob("*/*.ipynb") if p.parent.name != "_build"]
    assert {p.name for p in (site / "_build").glob("*.ipynb")} == {"31.ipynb", "73.ipynb", "national.ipynb"}
    for report in batch.reports:
        expected = {"index.html", "summary.json"} if report.ok else {"index.html"}
        assert set(p.name for p in Path(report.html_path).parent.iterdir()) == expected


def test_split_files_hold_exactly_the_province_and_verify(tmp_path):
    from analysis.report.data import read_election, split_by_province
    from tests.hostile import hostile_election

    national = hostile_election()
    path = national.to_parquet(tmp_path / "n.parquet")
    split = split_by_province(path, tmp_path / "split")
    assert split.data_sha256 == file_sha256(path) and sorted(split.files) == ["31", "73"]
    for code, file in split.files.items():
        part = Election.read_parquet(file)  # verifies the subset's own table hash
        pd.testing.assert_frame_equal(part.table, national.select(province=code).table)
        assert part.provenance["source_table_sha256"] == national.provenance["table_sha256"]
        assert part.provenance["data_sha256"] == split.data_sha256 and split.stations[code] == len(part)
    election, digest = read_election(path)
    assert digest == split.data_sha256 and len(election) == len(national)
    tampered = tmp_path / "t.parquet"
    table = national.table.copy()
    table.iloc[0, table.columns.get_loc("voters")] += 1
    from dataclasses import replace

    replace(national, table=table).to_parquet(tampered)  # the recorded hash no longer matches the table
    with pytest.raises(ValueError, match="changed after it was written"):
        read_election(tampered)


def test_check_inert_accepts_only_the_pinned_script():
    from analysis.report.export import sort_script

    assert check_inert(f"<html><body><script>{sort_script()}</script></body></html>", "p.html")
    for bad in (f"<script>{sort_script()}alert(1)</script>", f"<script src='sort.js'>{sort_script()}</script>",
                f"<script>{sort_script()}"):
        with pytest.raises(ExportError, match="active content"):
            check_inert(f"<html><body>{bad}</body></html>", "p.html")


def test_figures_are_compact_captioned_and_escaped(tmp_path):
    import base64
    import io

    from matplotlib.figure import Figure
    from PIL import Image

    from analysis.report import figures

    fig = Figure(figsize=(6, 4))
    ax = fig.subplots()
    ax.hist2d(np.random.default_rng(1).normal(size=5000), np.random.default_rng(2).normal(size=5000), bins=60)
    figures.caption(fig, "A round blob is ordinary; <b>a smear</b> & a corner cluster are not.")
    mime, data, meta = figures.render(fig)
    assert meta["caption"].startswith("A round blob") and meta["width"] <= 6 * figures.DPI + 10
    raw = io.BytesIO()
    fig.savefig(raw, format="png", dpi=figures.DPI, bbox_inches="tight")
    if mime == "image/png":
        assert Image.open(io.BytesIO(data)).mode == "P" and len(data) < 0.7 * len(raw.getvalue())
    out = nbformat.v4.new_output
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("fig")
    payload = data if isinstance(data, str) else base64.b64encode(data).decode()
    cell.outputs = [out("display_data", data={mime: payload}, metadata={mime: meta}),
                    out("display_data", data={"image/png": base64.b64encode(raw.getvalue()).decode()})]
    nb.cells = [cell]
    nbformat.write(nb, tmp_path / "e.ipynb")
    html = export_html(tmp_path / "e.ipynb", tmp_path / "p.html", title="t").read_text()
    page = assert_safe(html)
    assert page.tags.count("figure") == 2 and page.tags.count("figcaption") == 1 and "b" not in page.tags
    assert "What to look at: A round blob is ordinary; <b>a smear</b> & a corner cluster are not." in page.words
    pngs = [v for tag, k, v in page.attributes if tag == "img" and v.startswith("data:image/png")]
    # The uncaptioned figure from a notebook that did not call figures.setup() is compacted on export too.
    assert pngs and len(pngs[-1]) < 0.7 * len("data:image/png;base64," + base64.b64encode(raw.getvalue()).decode())


def test_many_point_figures_skip_the_svg_attempt(monkeypatch):
    # A TPS scatter would make an SVG of megabytes: render must not even write it.
    from matplotlib.figure import Figure

    from analysis.report import figures

    fig = Figure(figsize=(4, 3))
    fig.add_subplot().scatter(np.random.default_rng(0).random(50_000), np.random.default_rng(1).random(50_000), s=2)
    formats = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, out, **kw: (formats.append(kw["format"]), original(self, out, **kw)))
    mime, data, meta = figures.render(fig)
    assert mime == "image/png" and formats == ["png"] and figures._marks(fig) == 50_000
    # A big, nearly empty figure: few marks, no text, so the smaller of the two is still looked for.
    sparse = Figure(figsize=(12, 9))
    ax = sparse.add_subplot()
    ax.plot([0, 1], [0, 1], linewidth=8)
    ax.set_axis_off()
    formats.clear()
    figures.render(sparse)
    assert formats == ["png", "svg"]
    # The bound is a lower bound of the real SVG, for marks and for text.
    labelled = Figure(figsize=(6, 4))
    bars = labelled.add_subplot()
    bars.bar([str(d) for d in range(10)], np.arange(10))
    bars.set_title("Last digits, Kabupaten <b>&</b> Kota")
    bars.scatter(np.arange(2000) % 10, np.arange(2000) / 300, s=1)
    for figure in (fig, labelled, sparse):
        out = io.BytesIO()
        original(figure, out, format="svg", bbox_inches="tight")
        assert figures._svg_lower_bound(figure) <= len(out.getvalue())

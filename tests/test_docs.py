"""The README stays short and its links resolve; the docs site builds strictly; the layout shows itself."""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
LAYOUT = ("data/raw", "data/processed", "reports")
MAX_LINES, MAX_WIDTH = 150, 160
# [text](target) outside code; images too. Targets with a scheme (https:, mailto:) are not files.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"`[^`\n]*`", "", text)


def _anchors(markdown: str) -> set[str]:
    """The heading anchors MkDocs' toc extension makes (lower case, punctuation dropped, spaces to dashes)."""
    out = set()
    unfenced = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    for heading in re.findall(r"^#+\s+(.*?)\s*$", unfenced, flags=re.MULTILINE):
        slug = re.sub(r"[^\w\s-]", "", heading.lower()).strip()
        out.add(re.sub(r"[\s]+", "-", slug))
    return out


def test_readme_is_short_and_narrow():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"
    wide = [(i + 1, len(line)) for i, line in enumerate(lines) if len(line) > MAX_WIDTH]
    assert not wide, f"README.md lines wider than {MAX_WIDTH} characters (line, width): {wide}"


def test_readme_names_the_two_commands_and_the_docs():
    text = README.read_text(encoding="utf-8")
    for needed in ("make report", "make test", "make real", "docs/index.md", "docs/glossary.md"):
        assert needed in text


def test_every_relative_link_in_the_readme_resolves():
    text = README.read_text(encoding="utf-8")
    links = LINK.findall(_prose(text))
    assert links, "no links found: the pattern is broken"
    broken = []
    for target in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):
            continue
        path, _, anchor = target.partition("#")
        file = (README.parent / path).resolve() if path else README
        if not file.exists():
            broken.append(target)
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file.read_text(encoding="utf-8")):
            broken.append(target)
    assert not broken, f"README links that do not resolve: {broken}"


def test_layout_folders_exist_with_a_readme_and_their_contents_are_ignored():
    for folder in LAYOUT:
        readme = ROOT / folder / "README.md"
        assert readme.is_file(), f"{folder}/README.md is missing"
        assert "not committed" in readme.read_text(encoding="utf-8")
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: .gitignore cannot be asked")

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT).returncode == 0

    for folder in LAYOUT:
        assert not ignored(f"{folder}/README.md"), f"{folder}/README.md would not be tracked"
        assert ignored(f"{folder}/some-output.parquet"), f"{folder}/ contents would be committed"
        assert ignored(f"{folder}/sub/dir/file.json")


def test_make_clean_keeps_the_layout_readmes(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    for folder in LAYOUT:
        (tmp_path / folder).mkdir(parents=True)
        (tmp_path / folder / "README.md").write_text("kept\n")
    (tmp_path / "reports" / "31").mkdir()
    (tmp_path / "reports" / "31" / "index.html").write_text("x")
    (tmp_path / "reports" / "index.html").write_text("x")
    (tmp_path / "data" / "processed" / "demo.parquet").write_text("x")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    subprocess.run(["make", "-s", "clean"], cwd=tmp_path, check=True, capture_output=True)
    for folder in ("reports", "data/processed"):
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == ["README.md"]
    assert (tmp_path / "data" / "raw" / "README.md").is_file()


def _notebook(path: Path, parameters: str, body: str) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(parameters)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_a_readme_in_the_reports_folder_is_kept_and_is_not_a_region(tmp_path):
    from analysis.election import Election
    from analysis.report.index import write_index
    from analysis.report.runner import run_reports

    body = '''
from analysis.report.summary import write_summary
write_summary(summary_path, scope={scope}, code={code}, name="x", headline={{}}, flags=[], provenance={{}}, parameters={{}})
'''
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    _notebook(notebooks / "province.ipynb", 'province: str = "31"\ndata_path: str = ""\nsummary_path: str = ""',
              body.format(scope='"province"', code="province"))
    _notebook(notebooks / "national.ipynb", 'data_path: str = ""\nsummary_path: str = ""',
              body.format(scope='"national"', code='"national"'))
    stations = pd.DataFrame({"unit_id": ["0201", "3101"], "province": ["02", "31"], "registered": 100, "voters": 80,
                             "valid": 78, "invalid": 2, "01": 78})
    data = Election.from_frame(stations, levels=["province"], candidates=["01"]).to_parquet(tmp_path / "e.parquet")
    site = tmp_path / "reports"
    site.mkdir()
    readme = (ROOT / "reports" / "README.md").read_text(encoding="utf-8")
    (site / "README.md").write_text(readme, encoding="utf-8")

    result = run_reports(data, out_dir=site, jobs=1, notebooks_dir=notebooks, progress=False)
    index = write_index(site, result)

    assert result.ok and sorted(r.code for r in result.reports) == ["02", "31", "national"]
    assert (site / "README.md").read_text(encoding="utf-8") == readme
    assert "README" not in index.read_text(encoding="utf-8")
    assert "README" not in (site / "index.json").read_text(encoding="utf-8")


def _docs_tools_missing() -> str:
    missing = [name for name in ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(name.split(".")[0]) is None
               or (name == "mkdocstrings_handlers.python" and importlib.util.find_spec(name) is None)]
    return ", ".join(missing)


@pytest.mark.skipif(bool(_docs_tools_missing()),
                    reason=f"the docs extra is not installed ({_docs_tools_missing()}): make docs installs it")
def test_docs_site_builds_strictly(tmp_path):
    # --strict: a broken internal link or anchor, a placeholder that matches no row of a calibration
    # table, or a warning of the API reference fails the build.
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-4000:]
    validation = (tmp_path / "site" / "validation" / "index.html").read_text(encoding="utf-8")
    assert not re.search(r"\{\{\s*\w+\s*:", validation) and "generated:" not in validation
    # A figure of the shipped placebo table reached the page (the table, not typed text).
    placebo = pd.read_csv(ROOT / "analysis" / "data" / "calibration" / "placebo.csv")
    assert f"<td>{placebo['election'].iloc[0]}</td>" in validation


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None, reason="the docs extra is not installed: make docs installs it")
def test_a_figure_that_matches_no_row_stops_the_build():
    from mkdocs.exceptions import PluginError

    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    digits = pd.read_csv(ROOT / "analysis" / "data" / "calibration" / "digits.csv")
    row = digits.query("test == 'last digit' and null == 'exact' and condition == 'clean'").iloc[0]
    shown = hooks.render("{{ digits: test=last digit; null=exact; condition=clean -> count }}")
    assert shown == f"{row['rejections']:,} of {row['trials']:,}"
    with pytest.raises(PluginError, match="matches 0 rows"):
        hooks.render("{{ digits: test=no such test -> rate }}")
    with pytest.raises(PluginError, match=r"matches \d\d* rows"):
        hooks.render("{{ digits: test=last digit -> rate }}")

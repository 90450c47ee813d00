"""MkDocs hook: the figures of the validation and benchmarks pages come from the shipped files, never typed.

Two kinds of placeholder in a page's Markdown, replaced at build time:

- a line ``<!-- generated: calibration NAME -->``: the table ``analysis/data/calibration/NAME.csv``
  as a Markdown table (rates in %, counts with thousands separators), followed by the run's settings
  from ``NAME.json`` when there is one; ``<!-- generated: calibration-blocks NAME -->`` summarises a
  per-election table (``*_elections.csv``) by blocks of 20 seeds; ``<!-- generated: benchmarks -->``
  the file ``benchmarks/results.md`` that ``make bench`` writes, or a note that none was run;
- inline ``{{ NAME: column=value; column=value -> FIELD }}``: one figure of one row of ``NAME.csv``,
  the row chosen by the filters (exactly one row must match, or the build fails). FIELD is
  ``rate`` (5.2 %), ``rate_se`` (5.2 % ± 0.3), ``count`` (351 of 6,812) or a column name.

A placeholder that names a missing file or matches no row stops the build (``PluginError``).
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

from mkdocs.exceptions import PluginError

ROOT = Path(__file__).resolve().parent.parent
CALIBRATION = ROOT / "analysis" / "data" / "calibration"
BENCH_RESULTS = ROOT / "benchmarks" / "results.md"

BLOCK = re.compile(r"^([ \t]*)<!-- generated: ([a-z-]+)(?: ([A-Za-z0-9_]+))? -->$", re.MULTILINE)
INLINE = re.compile(r"\{\{\s*([A-Za-z0-9_]+)\s*:\s*(.*?)\s*->\s*([A-Za-z0-9_]+)\s*\}\}")
PERCENT_COLUMNS = ("rate", "mc_se")
ID_COLUMNS = ("election", "seed")  # identifiers, shown as they are (no thousands separator)


def _read(name: str) -> list[dict[str, str]]:
    path = CALIBRATION / f"{name}.csv"
    if not path.is_file():
        raise PluginError(f"docs: no calibration table {path.relative_to(ROOT)}")
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _format(column: str, text: str) -> str:
    """One cell for a reader: rates in %, whole numbers with separators, other numbers to 3 digits."""
    if text in ("", "nan", "NaN"):
        return ""
    if column in ID_COLUMNS:
        return text
    if text in ("True", "False"):
        return "yes" if text == "True" else "no"
    value = _number(text)
    if value is None:
        return text.replace("|", "\\|")
    if column.startswith(PERCENT_COLUMNS):
        if column.startswith("mc_se"):
            return f"{100 * value:.2f} %"
        return f"{100 * value:.2g} %" if 0 < abs(value) < 0.001 else f"{100 * value:.1f} %"
    if value == int(value) and "." not in text and "e" not in text.lower():
        return f"{int(value):,}"
    if value == int(value) and abs(value) >= 1000:
        return f"{int(value):,}"
    return f"{value:.3g}"


def markdown_table(rows: list[dict[str, str]], columns: list[str] | None = None) -> str:
    """Rows as a Markdown table, cells formatted by ``_format``."""
    if not rows:
        return "*(the table is empty)*"
    columns = columns or list(rows[0])
    lines = ["| " + " | ".join(c.replace("_", " ") for c in columns) + " |",
             "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_format(c, row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _settings(name: str) -> str:
    """The run's settings (commands, seeds, time, code revision) from NAME.json, as a collapsed block."""
    path = CALIBRATION / f"{name}.json"
    if not path.is_file():
        return ""
    body = json.loads(path.read_text(encoding="utf-8"))
    shown = json.dumps(body, indent=1, ensure_ascii=False)
    indented = "\n".join("    " + line for line in ["```json", *shown.splitlines(), "```"])
    return f'\n\n??? info "How `{name}.csv` was measured (`{name}.json`)"\n\n{indented}\n'


def calibration_block(name: str) -> str:
    return markdown_table(_read(name)) + "\n\n" + f"*Generated from `analysis/data/calibration/{name}.csv`.*" + _settings(name)


def blocks_block(name: str, size: int = 20) -> str:
    """A per-election table summarised by blocks of ``size`` consecutive seeds: rejections / trials per block."""
    rows = _read(name)
    seed_column = "election" if "election" in rows[0] else "seed"
    keys = [c for c in rows[0] if c not in (seed_column, "trials", "rejections", "tests", "false_p", "false_q",
                                               "misreadings", "planted_q", "planted_found", "planted_candidate")
            and not c.startswith("national_p")]
    count, total = ("rejections", "trials") if "rejections" in rows[0] else ("false_p", "tests")
    seeds = sorted({int(r[seed_column]) for r in rows})
    first = seeds[0]
    labels = {s: f"{first + (s - first) // size * size}-{first + (s - first) // size * size + size - 1}" for s in seeds}
    blocks = sorted(set(labels.values()), key=lambda b: int(b.split("-")[0]))
    groups: dict[tuple, dict[str, list[int]]] = {}
    for row in rows:
        key = tuple(row[k] for k in keys)
        cell = groups.setdefault(key, {b: [0, 0] for b in blocks})[labels[int(row[seed_column])]]
        cell[0] += int(float(row[count]))
        cell[1] += int(float(row[total]))
    lines = ["| " + " | ".join(k.replace("_", " ") for k in keys) + " | " + " | ".join(f"seeds {b}" for b in blocks) + " |",
             "|" + "|".join("---" for _ in keys + blocks) + "|"]
    for key, cells in groups.items():
        shown = [f"{100 * k / n:.1f} % ({k:,} / {n:,})" if n else "" for k, n in cells.values()]
        lines.append("| " + " | ".join(_format(k, v) for k, v in zip(keys, key)) + " | " + " | ".join(shown) + " |")
    return "\n".join(lines) + f"\n\n*Generated from `analysis/data/calibration/{name}.csv` ({count} / {total} per block of {size} seeds).*"


def synthetic_placebo_block() -> str:
    """``placebo_synthetic.csv`` summed per kind of election and rule: false flags among the clean regions,
    planted regions found, and pages with at least one false flag."""
    rows = _read("placebo_synthetic")
    groups: dict[tuple[str, str], list[int]] = {}
    for row in rows:
        cell = groups.setdefault((row["kind"], row["rule"]), [0, 0, 0, 0, 0, 0])
        regions, planted = int(row["regions"]), int(row["planted"])
        false_flags, found = int(row["false_flags"]), int(row["planted_found"])
        cell[0] += 1
        cell[1] += regions - planted
        cell[2] += false_flags
        cell[3] += planted
        cell[4] += found
        cell[5] += false_flags > 0
    lines = ["| kind | rule | elections | false flags / clean regions | planted found / planted | pages with a false flag |",
             "|---|---|---|---|---|---|"]
    for (kind, rule), (n, clean, false, planted, found, pages) in groups.items():
        found_text = f"{found} / {planted} ({100 * found / planted:.0f} %)" if planted else ""
        lines.append(f"| {kind} | {rule} | {n} | {false} / {clean:,} ({100 * false / clean:.1f} %) | {found_text} | {pages} of {n} |")
    return "\n".join(lines) + "\n\n*Summed from `analysis/data/calibration/placebo_synthetic.csv` (rule `page`: the flags the pages show; `per-family BH`: the earlier rule).*"


def benchmarks_block() -> str:
    if not BENCH_RESULTS.is_file():
        return ("!!! note \"No benchmark run recorded\"\n\n"
                "    `benchmarks/results.md` does not exist in this checkout: `make bench` has not been run "
                "since it started writing that file. Run `make bench` and rebuild the docs to see its figures here.")
    text = BENCH_RESULTS.read_text(encoding="utf-8")
    # The page has its own title and section: the file's title goes, its sections go one level down.
    text = re.sub(r"\A# [^\n]*\n", "", text)
    return re.sub(r"^(#+) ", lambda m: "#" + m.group(1) + " ", text, flags=re.MULTILINE)


def figure(name: str, filters: str, field: str) -> str:
    """One figure of one row of a calibration table (exactly one row must match the filters)."""
    wanted = {}
    for part in filters.split(";"):
        if part.strip():
            column, _, value = part.partition("=")
            wanted[column.strip()] = value.strip()
    rows = [r for r in _read(name) if all(r.get(c) == v for c, v in wanted.items())]
    if len(rows) != 1:
        raise PluginError(f"docs: {{{{ {name}: {filters} -> {field} }}}} matches {len(rows)} rows of {name}.csv, not one")
    row = rows[0]
    if field == "rate":
        return _format("rate", row["rate"])
    if field == "rate_se":
        se = _number(row.get("mc_se", ""))
        return _format("rate", row["rate"]) + (f" ± {100 * se:.1f}" if se is not None else "")
    if field == "count":
        return f"{int(float(row['rejections'])):,} of {int(float(row['trials'])):,}"
    if field not in row:
        raise PluginError(f"docs: {name}.csv has no column {field}")
    return _format(field, row[field])


def render(markdown: str) -> str:
    """Replace every placeholder of one page."""
    def generated(kind: str, name: str | None, placeholder: str) -> str:
        if kind == "calibration" and name:
            return calibration_block(name)
        if kind == "calibration-blocks" and name:
            return blocks_block(name)
        if kind == "placebo-synthetic-summary":
            return synthetic_placebo_block()
        if kind == "benchmarks":
            return benchmarks_block()
        raise PluginError(f"docs: unknown placeholder {placeholder.strip()}")

    def block(match: re.Match) -> str:
        indent = match.group(1)  # a placeholder inside an admonition or details block keeps its indentation
        text = generated(match.group(2), match.group(3), match.group(0))
        return "\n".join(indent + line if line else line for line in text.splitlines())

    markdown = BLOCK.sub(block, markdown)
    return INLINE.sub(lambda m: figure(m.group(1), m.group(2), m.group(3)), markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ARG001 - MkDocs' hook signature
    return render(markdown)

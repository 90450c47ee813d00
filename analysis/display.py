"""How numbers and tables read on a page: one formatter for every table the reports show.

- p- and q-values: "< 1e-10" below 1e-10, otherwise 3 significant digits (``format_pvalue``);
- counts with thousands separators, other numbers with 3 significant digits (``format_number``);
- tables without pandas' row index (0, 1, 2, ...): an index that carries labels becomes a column;
- every string escaped; a test's name linked to its entry in the methods appendix when a page
  has said where those entries are (``set_test_links``).

Result objects use ``frame_html`` in their ``_repr_html_``; a report kernel registers it for every
DataFrame (``analysis.report.tables.setup``). This module imports nothing from the package.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["P_FLOOR", "format_pvalue", "format_number", "format_cell", "is_probability_column", "frame_html",
           "set_test_links", "test_link"]

#: p- and q-values below this are shown as "< 1e-10": the nulls are not calibrated that far out.
P_FLOOR = 1e-10
#: Column names that hold p- or q-values: pvalue, qvalue_vs_others, "p-value vs other regions", p, q_z, klimek_pvalue ...
_PROBABILITY = re.compile(r"(^|[^a-z])[pq]([ _-]?values?)?($|[^a-z])|[pq][ _-]?values?", re.IGNORECASE)

_links: Callable[[str], str | None] | None = None


def is_probability_column(name: Any) -> bool:
    """Whether a column of this name holds p- or q-values."""
    return bool(_PROBABILITY.search(str(name)))


def format_pvalue(value: Any) -> str:
    """A p- or q-value for reading: "< 1e-10" below ``P_FLOOR``, otherwise 3 significant digits; "" when missing."""
    number = _float(value)
    if number is None:
        return "" if value is None or _missing(value) else str(value)
    if number < P_FLOOR:
        return "< 1e-10"
    return f"{number:.3g}"


def format_number(value: Any) -> str:
    """A count with thousands separators (1,234,567); any other number with 3 significant digits; "" when missing."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    number = _float(value)
    if number is None:
        return "" if value is None or _missing(value) else str(value)
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number == round(number) and abs(number) < 1e15:
        return f"{int(round(number)):,}"
    if abs(number) >= 1000:
        return f"{number:,.0f}"
    return f"{number:.3g}"


def format_cell(value: Any, column: Any = "") -> str:
    """A table cell as text: p/q columns by ``format_pvalue``, numbers by ``format_number``, the rest as text."""
    if isinstance(value, (str, bytes)):
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if (is_probability_column(column) and isinstance(value, (float, np.floating)) and _float(value) is not None):
        return format_pvalue(value)
    if isinstance(value, (int, float, np.integer, np.floating, bool, np.bool_)):
        return format_number(value)
    if value is None or _missing(value):
        return ""
    return str(value)


def set_test_links(links: Callable[[str], str | None] | None) -> None:
    """Where a test's name links to on this page (name -> href, or None for no link); None: no links."""
    global _links
    _links = links


def test_link(name: str) -> str | None:
    """The href of a test's entry in the methods appendix, when the page has set one."""
    return _links(str(name)) if _links is not None else None


def frame_html(frame: pd.DataFrame, *, max_rows: int | None = None, caption: str = "",
               links: Mapping[str, Sequence[str | None]] | None = None) -> str:
    """A DataFrame as an escaped HTML table for reading (see the module docstring).

    ``links``: column -> one href per row (None: no link), e.g. a TPS id to its Sirekap page.
    """
    frame = _without_row_index(frame)
    links = {str(k): list(v) for k, v in (links or {}).items()}
    columns = [_column_label(c) for c in frame.columns]
    limit = pd.get_option("display.max_rows") if max_rows is None else max_rows
    rows = list(range(len(frame)))
    hidden = 0
    if limit and len(rows) > limit:
        half = max(int(limit) // 2, 1)
        hidden = len(rows) - 2 * half
        rows = rows[:half] + [-1] + rows[-half:]
    body = []
    values = frame.to_numpy(dtype=object)
    for i in rows:
        if i < 0:
            body.append(f'<tr><td colspan="{max(len(columns), 1)}">... {hidden:,} more rows ...</td></tr>')
            continue
        cells = []
        for j, column in enumerate(frame.columns):
            text = format_cell(values[i, j], columns[j])
            cell = html.escape(text)
            numeric = isinstance(values[i, j], (int, float, np.integer, np.floating)) and not isinstance(
                values[i, j], (bool, np.bool_))
            href = links[columns[j]][i] if columns[j] in links else None
            if href and text:
                cell = f'<a href="{html.escape(str(href), quote=True)}">{cell}</a>'
            elif columns[j].lower() == "test" and text:
                href = test_link(text)
                if href:
                    cell = f'<a href="{html.escape(href, quote=True)}">{cell}</a>'
            cells.append(f'<td class="num">{cell}</td>' if numeric else f"<td>{cell}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<table class="dataframe">{cap}<thead><tr>{head}</tr></thead><tbody>'
            + "".join(body) + "</tbody></table>")


# ------------------------------------------------------------------------------------ helpers
def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _float(value: Any) -> float | None:
    if isinstance(value, (str, bytes, bool, np.bool_)) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if number != number else number


def _column_label(column: Any) -> str:
    if isinstance(column, tuple):
        return " ".join(str(part) for part in column if str(part) != "")
    return str(column)


def _without_row_index(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with its row index dropped when it only numbers the rows, else turned into leading columns."""
    index = frame.index
    if isinstance(index, pd.RangeIndex) and index.name is None:
        return frame
    out = frame.copy()
    out.index = pd.RangeIndex(len(out))
    keep = []
    for position, name in enumerate(index.names):
        level = index.get_level_values(position)
        positional = name is None and pd.api.types.is_integer_dtype(level.dtype)
        if not positional:
            keep.append(("" if name is None else str(name), level.to_numpy(dtype=object)))
    for offset, (name, values) in enumerate(keep):
        label = name
        while label in out.columns and label != "":
            label += " "
        out.insert(offset, label, values, allow_duplicates=True)
    return out

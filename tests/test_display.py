"""analysis/display.py: numbers and tables for reading, one formatter for every table of a page."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.display import format_number, format_pvalue, frame_html, is_probability_column, set_test_links

HOSTILE = "<script>alert('x')</script>"


@pytest.mark.parametrize("value, shown", [
    (2.745936e-97, "< 1e-10"), (0.0, "< 1e-10"), (9.99e-11, "< 1e-10"), (1e-10, "1e-10"), (3.14159e-5, "3.14e-05"),
    (0.0123456, "0.0123"), (0.05, "0.05"), (0.5, "0.5"), (1.0, "1"), (np.nan, ""), (None, ""), (pd.NA, ""),
])
def test_pvalues_read_as_floor_or_three_significant_digits(value, shown):
    assert format_pvalue(value) == shown


@pytest.mark.parametrize("value, shown", [
    (1234567, "1,234,567"), (np.int64(5000), "5,000"), (3.0, "3"), (4521.0, "4,521"), (12345.6, "12,346"),
    (0.72345, "0.723"), (-0.0123, "-0.0123"), (np.nan, ""), (pd.NA, ""), (True, "True"),
])
def test_counts_get_thousands_separators_and_other_numbers_three_digits(value, shown):
    assert format_number(value) == shown


@pytest.mark.parametrize("name", ["pvalue", "qvalue", "p-value vs other regions", "region q-value", "p", "q_z",
                                  "klimek_pvalue", "qvalue_vs_others", "pvalue_mc"])
def test_probability_columns_are_recognised(name):
    assert is_probability_column(name)


@pytest.mark.parametrize("name", ["statistic", "expected_share", "alpha", "phi", "n_perm", "top", "region", "tps"])
def test_other_columns_are_not_probabilities(name):
    assert not is_probability_column(name)


def test_a_table_has_no_row_index_and_escapes_every_string():
    frame = pd.DataFrame({"region": ["31", HOSTILE], "pvalue": [2.7e-97, 0.0345], "units": [123456, 7]})
    page = frame_html(frame)
    assert "<th>region</th><th>pvalue</th><th>units</th>" in page  # no empty index header, no 0/1 column
    assert ">0<" not in page and ">1<" not in page
    assert "&lt; 1e-10" in page and "0.0345" in page and "123,456" in page and "2.7e-97" not in page
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_an_index_with_labels_becomes_a_column_and_positions_are_dropped():
    labelled = pd.DataFrame({"value": [1, 2]}, index=pd.Index(["a", HOSTILE], name="item"))
    page = frame_html(labelled)
    assert "<th>item</th><th>value</th>" in page and "&lt;script&gt;" in page
    filtered = pd.DataFrame({"x": [1.5, 2.5, 3.5]}).iloc[[2, 0]]  # a filtered frame keeps positions 2, 0
    assert "<th>x</th>" in frame_html(filtered) and ">2<" not in frame_html(filtered)


def test_test_names_link_to_their_appendix_entry_only_when_the_page_says_where():
    frame = pd.DataFrame({"test": ["last digit (" + HOSTILE + ")", "unknown test"], "pvalue": [0.01, 0.2]})
    assert "<a " not in frame_html(frame)
    set_test_links(lambda name: "#method-last-digit" if name.startswith("last digit") else None)
    try:
        page = frame_html(frame)
    finally:
        set_test_links(None)
    assert '<a href="#method-last-digit">last digit (&lt;script&gt;' in page
    assert "<td>unknown test</td>" in page


def test_long_tables_show_head_and_tail_and_say_how_many_rows_are_hidden():
    page = frame_html(pd.DataFrame({"n": range(100)}), max_rows=10)
    assert page.count("<tr>") == 1 + 5 + 1 + 5 and "90 more rows" in page

"""analysis/report/sections.py and methods.py: a page opens with what stands out, built from its own flags."""

from __future__ import annotations

import pandas as pd

from analysis.report import methods, sections
from analysis.report.summary import Flag

HOSTILE = "<img src=x onerror=alert(1)>"


def _flag(test, region, flagged, p=1e-12, q=0.001, empirical=2e-4):
    return Flag(test=test, region=region, statistic=3.0, pvalue=p, qvalue=q, flagged=flagged,
                pvalue_empirical=empirical, region_qvalue=q)


def test_nothing_stands_out_says_so_with_the_page_rule():
    page = sections.stands_out_html([_flag("last digit (01)", "31", False)], level="regency", alpha=0.05)
    assert "Nothing stands out: no region is flagged under the page rule (" in page
    assert "false discovery rate of 0.05" in page and "<li>" not in page


def test_a_sentence_per_flagged_region_with_its_tests_linked_and_p_values_for_reading():
    flags = [_flag("extreme cluster", "3101", True, p=2.7e-97, q=0.0021), _flag("last digit (" + HOSTILE + ")", "3101", True, q=0.0021),
             _flag("spikes (Rozenas)", "3102", False), _flag("misreadings favour 02", "3103", True, q=0.04)]
    page = sections.stands_out_html(flags, level="regency", alpha=0.05)
    assert page.count("<li>") == 2 and "2 regions flagged under the page rule" in page
    assert page.index("kabupaten/kota 3101") < page.index("kabupaten/kota 3103")  # strongest first
    assert '<a href="#method-extreme-cluster">extreme cluster</a> (p &lt; 1e-10' in page
    assert "q = 0.0021" in page and "2.7e-97" not in page
    assert '<a href="#method-misreadings-favour">misreadings favour 02</a>' in page
    assert HOSTILE not in page and "&lt;img src=x" in page
    assert "3102" not in page


def test_election_level_tests_get_their_sentence_or_are_counted():
    tests = pd.DataFrame({"test": ["integer percentages (02)", "last digit (01)"], "statistic": [1234.5, 2.0],
                          "pvalue": [1e-12, 0.4], "pvalue_holm": [2e-12, 0.4], "flagged": [True, False]})
    page = sections.stands_out_html([], alpha=0.05, election_tests=tests)
    assert "The election as a whole: " in page and "rejects its null" in page and "1 of 2 election-level tests" in page
    assert "statistic 1,234" in page or "statistic 1,235" in page
    calm = sections.stands_out_html([], alpha=0.05, election_tests=tests.assign(flagged=False))
    assert "Nothing stands out" in calm and "none of the 2 election-level tests rejects its null" in calm


def test_every_catalogued_test_has_one_anchor_and_table_names_find_it():
    anchors = [m.anchor for m in methods.METHODS]
    assert len(anchors) == len(set(anchors))
    page = methods.appendix_html()
    assert all(f'id="{a}"' in page for a in anchors)
    assert methods.method_href("Klimek model (registered)") == "#method-klimek-model"
    assert methods.method_href("Kobak integer (dpt)") == "#method-kobak-integer"
    assert methods.method_href("repeated final pair") == "#method-repeated-final-pair"
    assert methods.method_href("broken forms rate") == "#method-broken-forms-rate"
    assert methods.method_href("something else") is None

"""The methods appendix of a page: one entry per test, each with an anchor the page's tables link to.

A test's name in a table ("last digit (01)", "Klimek model (registered)", "misreadings favour 02")
links to the entry whose name it starts with (``method_href``); the entry says what the test asks,
the null it is judged against, and where it comes from. Names nobody catalogued stay plain text.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Method:
    name: str       # how the tables name it (a table's name may add a column or a candidate)
    asks: str       # the question, for a reader who is not a statistician
    null: str       # what "ordinary" means for it
    source: str     # reference

    @property
    def anchor(self) -> str:
        return "method-" + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


METHODS: tuple[Method, ...] = (
    Method("broken forms rate", "Does this region have more (or fewer) forms that break an arithmetic or capacity rule "
           "than the rest of the page?", "the same rate of broken forms everywhere (Fisher's exact test, region "
           "against the rest)", "the profile's rules (analysis.consistency)"),
    Method("last digit", "Are the last digits of the counts as even as counting gives?", "each station's own "
           "(beta-)binomial model of its count, with shares pooled over its neighbourhood; the textbook uniform "
           "law is shown beside it", "Beber & Scacco (2012), Political Analysis 20:211"),
    Method("second digit", "Do the second digits follow what counts of this size give?", "each station's own "
           "(beta-)binomial model; Benford's second-digit law is a reference line only", "Mebane (2006)"),
    Method("repeated final pair", "Are repeated final pairs (22, 55) rarer than chance?", "each station's own "
           "model of its count (textbook 10 %)", "Beber & Scacco (2012)"),
    Method("adjacent final pair", "Are adjacent final pairs (23, 54) more common than chance?", "each station's own "
           "model of its count (textbook 20 %)", "Beber & Scacco (2012)"),
    Method("extreme cluster", "Are there more stations at >= 95 % turnout and >= 95 % winner's share than the "
           "region's own spread gives?", "a robust logit-normal fit of each station's turnout and share around its "
           "neighbourhood (Poisson count)", "Klimek, Yegorov, Hanel & Thurner (2012), PNAS 109:16469"),
    Method("turnout-share association", "Within neighbourhoods, does the winner's share rise with turnout?",
           "turnout permuted within each neighbourhood; demography can cause an association too, so regions are "
           "compared by its size against the other regions", "Klimek et al. (2012)"),
    Method("integer percentages", "Are whole-number turnout or winner's shares (70 %, 80 %) more common than "
           "chance gives?", "each station redrawn from its own size and rates (exact null mean, saddlepoint tail)",
           "Kobak, Shpilkin & Pshenichnikov (2016), Ann. Appl. Stat. 10:54"),
    Method("Kobak integer", "Kobak's integer-percentage test per region, against the region's own winner.",
           "as for integer percentages", "Kobak et al. (2016)"),
    Method("Klimek model", "Does a fit with incremental and extreme ballot stuffing beat the fair model?",
           "elections simulated from the fair model (parametric bootstrap, 49 draws: shown, never flagged)",
           "Klimek et al. (2012)"),
    Method("spikes", "Does the winner's share pile up on simple fractions (50 %, 2/3, 75 %)?", "elections "
           "resampled from smooth beta-binomial mixtures of turnout and support", "Rozenas (2017), Political "
           "Analysis 25:41"),
    Method("resampled kernel density", "The spikes test for the whole page (Rozenas 2017).",
           "as for spikes", "Rozenas (2017)"),
    Method("misreadings favour", "Do the numbers that one OCR edit explains favour one candidate more than random "
           "misreadings at these forms would?", "an edit model estimated from misread numbers that cannot favour "
           "anyone (valid, ballots, voters); exact per region", "analysis.tsm (systematic)"),
)

_BY_LENGTH = sorted(METHODS, key=lambda m: -len(m.name))


def method_of(test: str) -> Method | None:
    """The catalogued method a table's test name belongs to (the longest name it starts with), or None."""
    text = str(test).strip().lower()
    for method in _BY_LENGTH:
        name = method.name.lower()
        if text == name or text.startswith(name + " ") or text.startswith(name + "("):
            return method
    return None


def method_href(test: str) -> str | None:
    """``#method-...``: the anchor of a test's entry in this page's methods appendix, or None."""
    method = method_of(test)
    return f"#{method.anchor}" if method is not None else None


def appendix_html() -> str:
    """One entry per test, each with its anchor: what it asks, its null, its source (all text escaped)."""
    items = []
    for m in METHODS:
        items.append(f'<dt id="{m.anchor}">{html.escape(m.name)}</dt>'
                     f"<dd>{html.escape(m.asks)} <em>Null:</em> {html.escape(m.null)}. "
                     f"<em>Source:</em> {html.escape(m.source)}.</dd>")
    return '<h3 id="methods">The tests on this page</h3><dl class="methods">' + "".join(items) + "</dl>"


def appendix():
    """``appendix_html`` for a notebook cell."""
    from IPython.display import HTML

    return HTML(appendix_html())

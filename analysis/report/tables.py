"""Tables on a report page: every DataFrame shown through ``analysis.display.frame_html``.

``setup()`` (in a notebook, beside ``figures.setup()``) makes the kernel show each DataFrame without
pandas' row index, with p- and q-values formatted for reading ("< 1e-10", 3 significant digits),
counts with thousands separators, and each test's name linked to its entry in the page's methods
appendix (``methods``). Result objects format their own tables with the same functions.
"""

from __future__ import annotations

from typing import Any

from ..display import frame_html, set_test_links
from .methods import method_href


def setup(*, shell: Any = None) -> str:
    """Register the page's table formatter in this IPython kernel; returns a one-line description."""
    set_test_links(method_href)
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return "not running in IPython: tables unchanged"
        shell = get_ipython()
    if shell is None:
        return "not running in IPython: tables unchanged"
    import pandas as pd

    shell.display_formatter.formatters["text/html"].for_type(pd.DataFrame, lambda frame: frame_html(frame))
    return "tables: no row index, p- and q-values for reading, thousands separators, tests linked to the appendix"

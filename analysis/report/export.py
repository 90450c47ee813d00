"""Executed notebook -> one safe HTML page: inputs hidden, outputs sanitised, one pinned script, strict CSP.

The page comes from the project's own nbconvert template (``templates/forensik``, built on
nbconvert's ``lab`` cell markup): every ``text/html`` and Markdown output goes through ``sanitise``
(nh3), JavaScript and widget outputs are dropped, SVG is shown only as an ``<img>``, PNG figures are
inline ``data:`` images (compacted to palette PNGs) inside ``<figure>`` with their caption, and the
shared stylesheet is inlined so that one file is the whole report (it can be mailed or archived alone).

Scripts: the page carries exactly one, ``static/sort.js`` (click a column heading to sort a table),
inlined and allowed by its SHA-256 in the Content-Security-Policy; no other script, inline or from
anywhere, can run, and without scripts (a mail client) the tables keep the report's own order. The
stylesheet is pinned the same way, so no injected style can apply either. A final check refuses to
write a page that holds any other script, an event handler, a ``javascript:`` URL or a load from
another host.
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Mapping

import nh3

from .folders import write_atomic

TEMPLATES = Path(__file__).resolve().parent / "templates"
STYLESHEET = Path(__file__).resolve().parent / "static" / "report.css"
SORT_SCRIPT = Path(__file__).resolve().parent / "static" / "sort.js"


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


@lru_cache(maxsize=1)
def content_security_policy() -> str:
    """The pages' policy: nothing loads from anywhere; images only inline; the one stylesheet and the one
    script (sort.js) run only because their SHA-256 is listed. (``frame-ancestors`` is not honoured in a
    ``meta`` tag, so it is left out rather than pretended.)"""
    return (
        f"default-src 'none'; img-src data:; style-src {_csp_hash(stylesheet())}; "
        f"script-src {_csp_hash(sort_script())}; base-uri 'none'; form-action 'none'; "
        "require-trusted-types-for 'script'; trusted-types 'none'"
    )

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "col", "colgroup", "dd", "del",
    "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong",
    "sub", "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title", "align", "lang"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "table": {"border"},
    "ol": {"start"},
}
#: Elements that run code, embed other documents, or change where the page's URLs point.
ACTIVE_TAGS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "form", "svg", "math"}
#: Attributes whose value the browser fetches on its own (a link's href only on a click).
LOADING_ATTRIBUTES = {"src", "srcset", "href", "data", "poster", "background", "action", "formaction", "xlink:href"}


class ExportError(RuntimeError):
    """The rendered page would hold something active; it is not written."""


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    lowered = value.strip().lower()
    if attribute in ("href", "src") and lowered.startswith("data:"):
        # data: only as an inline raster image; a data: link or SVG could smuggle a page.
        allowed = tag == "img" and lowered.startswith(("data:image/png", "data:image/jpeg", "data:image/gif"))
        return value if allowed else None
    if tag == "img" and attribute == "src" and ("://" in value or lowered.startswith("//")):
        return None  # images only from the report itself: nothing fetched from another host
    return value


def sanitise(html: str) -> str:
    """Strip scripts, iframes, event handlers, ``javascript:`` URLs and foreign image loads from HTML.

    Tables, headings, lists, basic formatting, links and inline raster images stay.
    """
    return nh3.clean(
        str(html), tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "data"}, attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer nofollow", strip_comments=True,
    )


class _ActiveContent(HTMLParser):
    """Everything in a page a browser would run or fetch by itself (the pinned sort script excepted)."""

    def __init__(self, allowed_scripts: frozenset[str] = frozenset()) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self.allowed_scripts = allowed_scripts
        self._script: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not attrs and self.allowed_scripts:
            self._script = []  # judged on its text, at its end tag
        elif tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip()
            # Browsers ignore ASCII whitespace and control characters inside a URL's scheme.
            scheme = "".join(ch for ch in value.lower() if ch > " ")
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            elif name == "style":
                # Not active, but the policy refuses it and the browser reports an error: fail here instead.
                self.found.append(f"<{tag} style=...>")
            elif scheme.startswith(("javascript:", "vbscript:")):
                self.found.append(f"<{tag} {name}={value[:30]!r}>")
            elif name in LOADING_ATTRIBUTES and tag != "a" and ("://" in value or value.startswith("//")):
                self.found.append(f"<{tag} {name}={value[:60]!r}>")

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            if "".join(self._script) not in self.allowed_scripts:
                self.found.append("<script> (not the pinned sort script)")
            self._script = None


def active_content(html: str, allowed_scripts: frozenset[str] = frozenset()) -> list[str]:
    """Scripts (but those in ``allowed_scripts``, by exact text), event handlers, ``javascript:`` URLs and
    loads from other hosts in ``html`` (empty: none)."""
    parser = _ActiveContent(allowed_scripts)
    parser.feed(html)
    parser.close()
    if parser._script is not None:
        parser.found.append("<script> (unterminated)")
    return parser.found


def check_inert(html: str, where: str) -> str:
    """``html`` unchanged when it holds no active content but the pinned sort script; ``ExportError``
    naming what it holds otherwise."""
    found = active_content(html, frozenset({sort_script()}))
    if found:
        raise ExportError(f"{where}: refusing to write a page with active content: {', '.join(found[:5])}")
    return html


@lru_cache(maxsize=1)
def stylesheet() -> str:
    """The shared stylesheet's text."""
    return STYLESHEET.read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def sort_script() -> str:
    """The table-sorting script's text (the only script a page carries)."""
    return SORT_SCRIPT.read_text(encoding="utf-8")


def page_assets() -> dict[str, str]:
    """What every page's ``<head>`` and end of ``<body>`` carry: the policy, the stylesheet, the script."""
    return {"csp": content_security_policy(), "css": stylesheet(), "script": sort_script()}


def compact_images(notebook) -> int:
    """Re-encode every PNG output as a palette PNG when smaller (``figures.compact_png``); bytes saved."""
    from .figures import compact_png_base64

    saved = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                text = "".join(data["image/png"]) if isinstance(data["image/png"], list) else data["image/png"]
                small = compact_png_base64(text.replace("\n", ""))
                saved += len(text) - len(small)
                data["image/png"] = small
    return saved


@lru_cache(maxsize=1)
def _exporter():
    """One exporter per process: a worker exports many reports, and compiling the templates took 0.3 s each time."""
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="forensik", extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
        filters={"sanitise": sanitise},
    )


def export_html(executed_ipynb: str | Path, html_path: str | Path, *, title: str, error: str = "",
                footer: Mapping[str, Any] | None = None, index_href: str = "../index.html") -> Path:
    """Render an executed notebook to one self-contained, script-free HTML page; return its path.

    ``error``, when given, is shown in a banner at the top (a failed report says why it stopped);
    ``footer`` is a mapping shown as "what this report was made from"; every string is escaped.
    """
    import nbformat

    from ..election import code_version

    notebook = nbformat.read(str(executed_ipynb), as_version=4)
    compact_images(notebook)
    resources = {"forensik": {
        "title": str(title), **page_assets(), "error": str(error or ""),
        "footer": {str(k): str(v) for k, v in (footer or {}).items()}, "index_href": index_href,
        "code_version": code_version(),
    }}
    html, _ = _exporter().from_notebook_node(notebook, resources=resources)
    return write_atomic(html_path, check_inert(html, str(html_path)))

"""Executed notebook -> one safe HTML page: inputs hidden, outputs sanitised, no scripts, strict CSP.

The page comes from the project's own nbconvert template (``templates/forensik``, built on
nbconvert's ``lab`` cell markup): every ``text/html`` and Markdown output goes through ``sanitise``
(nh3), JavaScript and widget outputs are dropped, SVG is shown only as an ``<img>``, PNG figures are
inline ``data:`` images, and the shared stylesheet is inlined so that one file is the whole report
(it can be mailed or archived alone). A final check refuses to write a page that still holds a
script, an event handler, a ``javascript:`` URL or a load from another host.
"""

from __future__ import annotations

import os
import secrets
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Mapping

import nh3

TEMPLATES = Path(__file__).resolve().parent / "templates"
STYLESHEET = Path(__file__).resolve().parent / "static" / "report.css"

#: No scripts at all; images only inline (or from the report's own folder); styles inline only.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
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
    """Everything in a page a browser would run or fetch by itself."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ACTIVE_TAGS:
            self.found.append(f"<{tag}>")
        for name, value in attrs:
            value = (value or "").strip()
            # Browsers ignore ASCII whitespace and control characters inside a URL's scheme.
            scheme = "".join(ch for ch in value.lower() if ch > " ")
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
            elif scheme.startswith(("javascript:", "vbscript:")):
                self.found.append(f"<{tag} {name}={value[:30]!r}>")
            elif name in LOADING_ATTRIBUTES and tag != "a" and ("://" in value or value.startswith("//")):
                self.found.append(f"<{tag} {name}={value[:60]!r}>")


def active_content(html: str) -> list[str]:
    """Scripts, event handlers, ``javascript:`` URLs and loads from other hosts in ``html`` (empty: none)."""
    parser = _ActiveContent()
    parser.feed(html)
    parser.close()
    return parser.found


def check_inert(html: str, where: str) -> str:
    """``html`` unchanged when it holds no active content; ``ExportError`` naming what it holds otherwise."""
    found = active_content(html)
    if found:
        raise ExportError(f"{where}: refusing to write a page with active content: {', '.join(found[:5])}")
    return html


def stylesheet() -> str:
    """The shared stylesheet's text."""
    return STYLESHEET.read_text(encoding="utf-8")


def write_atomic(path: str | Path, text: str) -> Path:
    """Write text to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A temp name no other writer uses, in the same folder (so the rename is atomic); created with the
    # umask's permissions, unlike mkstemp's 0600, because reports are published.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _exporter():
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
    resources = {"forensik": {
        "title": str(title), "csp": CONTENT_SECURITY_POLICY, "css": stylesheet(), "error": str(error or ""),
        "footer": {str(k): str(v) for k, v in (footer or {}).items()}, "index_href": index_href,
        "code_version": code_version(),
    }}
    html, _ = _exporter().from_notebook_node(notebook, resources=resources)
    return write_atomic(html_path, check_inert(html, str(html_path)))

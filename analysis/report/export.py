"""Executed notebook -> one safe HTML page: inputs hidden, outputs sanitised, no scripts, strict CSP."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any, Mapping

import jinja2
import nbformat
import nh3
from nbconvert import HTMLExporter

#: No scripts at all; images only from the report itself or inline; styles from the shared sheet
#: (and inline styles, which pandas tables use).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "del", "details",
    "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i",
    "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "small", "span", "strong", "sub",
    "summary", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "var",
}
ALLOWED_ATTRIBUTES = {
    "*": {"class", "id", "title", "align"},
    "a": {"href"},
    "img": {"src", "alt", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "table": {"border"},
}


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    # data: URLs only as inline images; a data: link could smuggle a page.
    if attribute in ("href", "src") and value.strip().lower().startswith("data:"):
        return value if tag == "img" and value.strip().lower().startswith("data:image/") else None
    # Images load only from the report (relative paths) or inline data: nothing from other hosts.
    if tag == "img" and attribute == "src" and "://" in value:
        return None
    return value


def sanitise(html: str) -> str:
    """Strip scripts, event handlers, javascript: URLs and foreign image loads from rendered HTML."""
    return nh3.clean(
        html, tags=ALLOWED_TAGS, attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto", "data"}, attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer nofollow",
    )


def _environment() -> jinja2.Environment:
    loader = jinja2.FileSystemLoader(str(files("analysis.report") / "templates"))
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)


def render_page(template: str, *, title: str, body_html: str, css_href: str, **context: Any) -> str:
    """Wrap sanitised HTML in the project's page template (CSP, shared stylesheet, escaped title)."""
    page = _environment().get_template(template)
    return page.render(title=title, body=sanitise(body_html), css_href=css_href, csp=CONTENT_SECURITY_POLICY, **context)


def install_stylesheet(out_dir: str | Path) -> Path:
    """Copy the shared stylesheet to ``out_dir/static/report.css`` (one copy for all reports)."""
    target = Path(out_dir) / "static" / "report.css"
    target.parent.mkdir(parents=True, exist_ok=True)
    with (files("analysis.report") / "static" / "report.css").open("rb") as source, open(target, "wb") as sink:
        shutil.copyfileobj(source, sink)
    return target


def export_html(executed: str | Path, html_path: str | Path, *, title: str, css_href: str = "../static/report.css",
                footer: Mapping[str, Any] | None = None) -> Path:
    """Render an executed notebook to HTML with input cells hidden and every output sanitised."""
    notebook = nbformat.read(str(executed), as_version=4)
    exporter = HTMLExporter(template_name="basic", exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    # Error tracebacks stay visible (a failed report must show why), but as plain text.
    body, _ = exporter.from_notebook_node(notebook)
    html = render_page("report.html.j2", title=title, body_html=body, css_href=css_href, footer=dict(footer or {}))
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(html_path.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(html_path)
    return html_path

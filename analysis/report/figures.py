"""Compact, captioned figures in the reports.

``setup()`` (in a notebook, after ``%matplotlib inline``) makes every matplotlib ``Figure`` a report
shows come out as a palette PNG at ``DPI`` or, when it is smaller, an SVG, with the figure's caption
in the output's metadata; the export puts that caption under the figure (``<figcaption>``).
``caption(fig, text)`` attaches the caption: one or two sentences saying what to look at.
``compact_png`` is also applied by the export to every PNG, so figures from a notebook that did not
call ``setup()`` are compacted too.
"""

from __future__ import annotations

import base64
import io
import weakref
from typing import Any

import numpy as np

#: Screen resolution: figures are read on screens, and 96 dpi keeps a 6-inch figure 576 px wide.
DPI = 96
#: PNG palette size: matplotlib figures use few colours; 256 keeps gradients (the fingerprint) smooth.
PALETTE = 256
_CAPTION = "forensik_caption"


def caption(fig: Any, text: str) -> Any:
    """Attach a caption (what to look at in the figure) to a matplotlib Figure; returns the figure."""
    setattr(fig, _CAPTION, " ".join(str(text).split()))
    return fig


def figure_caption(fig: Any) -> str:
    """The caption attached with ``caption``, or ""."""
    return str(getattr(fig, _CAPTION, "") or "")


def compact_png(raw: bytes) -> bytes:
    """The same image as a palette PNG (no dithering) when that is smaller; ``raw`` otherwise.

    Plots are flat colours and antialiased edges: 256 colours reproduce them without visible change
    at about a third of the size of matplotlib's RGBA PNG.
    """
    from PIL import Image

    try:
        image = Image.open(io.BytesIO(raw))
        image.load()
    except Exception:  # noqa: BLE001 - not a PNG we can read: leave it as it is
        return raw
    if image.mode == "P":
        return raw
    rgba = image.convert("RGBA")
    # Transparent background (the inline backend's default) on the page's white.
    flat = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flat.alpha_composite(rgba)
    palette = flat.convert("RGB").quantize(PALETTE, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    out = io.BytesIO()
    palette.save(out, "PNG", optimize=True)
    small = out.getvalue()
    return small if len(small) < len(raw) else raw


def compact_png_base64(text: str) -> str:
    """``compact_png`` on a base64 string, as notebooks store images."""
    raw = base64.b64decode(text)
    small = compact_png(raw)
    return text if small is raw else base64.b64encode(small).decode("ascii")


def render(fig: Any, *, dpi: int = DPI, svg_when_smaller: bool = True) -> tuple[str, bytes | str, dict[str, Any]]:
    """The figure as ("image/png", bytes, metadata) or ("image/svg+xml", text, metadata), whichever is smaller."""
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=dpi, bbox_inches="tight", facecolor="white")
    png = compact_png(out.getvalue())
    width, height = _png_size(png)
    meta: dict[str, Any] = {"width": width, "height": height}
    text = figure_caption(fig)
    if text:
        meta["caption"] = text
    if svg_when_smaller and _svg_lower_bound(fig) < len(png):
        out = io.BytesIO()
        fig.savefig(out, format="svg", bbox_inches="tight", facecolor="white", metadata={"Date": None})
        svg = out.getvalue()
        if len(svg) < len(png):
            return "image/svg+xml", svg.decode("utf-8"), meta
    return "image/png", png, meta


#: Bytes an SVG spends at least per marker, line vertex, bar or text glyph (a ``<use>`` or path
#: element with its coordinates; matplotlib's average is ~69) and per distinct glyph's outline.
_SVG_BYTES_PER_MARK = 45
_SVG_BYTES_PER_GLYPH = 300


def _marks(fig: Any) -> int:
    """Markers, mesh cells, line vertices and bars the figure's axes draw.

    A scatter of 130,000 TPS would make an SVG of megabytes, slow to write and then discarded.
    """
    total = 0
    for ax in fig.get_axes():
        for collection in ax.collections:
            if hasattr(collection, "get_coordinates"):  # a pcolormesh: one path per cell
                total += int(np.prod(collection.get_coordinates().shape[:2]))
            else:
                total += max(len(collection.get_offsets()), len(collection.get_paths()))
        total += sum(len(line.get_xdata()) for line in ax.get_lines()) + len(ax.patches)
    return total


def _svg_lower_bound(fig: Any) -> int:
    """Bytes the figure's SVG takes at least: its marks and text glyphs, and the outline of each distinct glyph.

    ``render`` writes the SVG only when this is below the PNG's size (at 96 dpi, with text, it
    rarely is: the SVG attempt was a second render of every figure, then discarded).
    """
    from matplotlib.text import Text

    texts = [t.get_text() for t in fig.findobj(Text) if t.get_visible()]
    glyphs = sum(len(t) for t in texts)
    distinct = len(set("".join(texts)))
    return _SVG_BYTES_PER_MARK * (_marks(fig) + glyphs) + _SVG_BYTES_PER_GLYPH * distinct


def _png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return image.size


def setup(*, dpi: int = DPI, svg_when_smaller: bool = True, shell: Any = None) -> str:
    """Make this IPython kernel show matplotlib Figures compact and captioned (call after ``%matplotlib inline``).

    Returns a one-line description (the notebook shows nothing when the call ends with ``;``).
    """
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return "not running in IPython: figures unchanged"
        shell = get_ipython()
    if shell is None:
        return "not running in IPython: figures unchanged"
    from matplotlib.figure import Figure

    # Both formatters (PNG, SVG) ask for the same figure in one display: render it once, for those two calls.
    pending: dict[int, list[Any]] = {}

    def once(fig: Figure) -> tuple[str, Any, dict[str, Any]]:
        entry = pending.get(id(fig))
        if entry is None or entry[0]() is not fig:
            entry = pending[id(fig)] = [weakref.ref(fig), render(fig, dpi=dpi, svg_when_smaller=svg_when_smaller), 0]
        entry[2] += 1
        if entry[2] >= 2:
            pending.pop(id(fig), None)
        return entry[1]

    def as_png(fig: Figure):
        mime, data, meta = once(fig)
        return (data, meta) if mime == "image/png" else None

    def as_svg(fig: Figure):
        mime, data, meta = once(fig)
        return (data, meta) if mime == "image/svg+xml" else None

    formatters = shell.display_formatter.formatters
    for mime in ("image/jpeg", "application/pdf", "text/html"):
        formatters[mime].pop(Figure, None)
    formatters["image/png"].for_type(Figure, as_png)
    formatters["image/svg+xml"].for_type(Figure, as_svg)
    return f"figures: PNG at {dpi} dpi (palette){' or SVG when smaller' if svg_when_smaller else ''}, captioned"

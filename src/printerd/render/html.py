"""
A receipt as one self-contained HTML page: the text in its styles, images as PNG data, QR codes
and barcodes drawn as SVG from their data. No external resources, so it works offline and under a
``default-src 'none'`` Content-Security-Policy.

Sizes follow the paper: a font A character is 12 dots wide, so ``1ch`` is 12 dots and an image
of ``w`` dots is ``w / 12`` ch wide on a paper of ``dots / 12`` ch.  Text is laid out here, as
the printer prints it (``printed_rows``): each printed row is one box, each run is placed at its
dot position as a share of the paper's width, so the browser never wraps, shifts or clips it.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from html import escape

from typing import Optional

from printerd.escpos.styles import Style
from printerd.render.budget import Budget
from printerd.render.codes import barcode_svg, bitmap_image, qr_svg
from printerd.render.document import (
    DEFAULT_PRINTER, Barcode, Block, Code2D, Image, Line, PageArea, ReceiptPrinter, Row, blocks,
    paper_for_columns, printed_rows,
)

DOTS_PER_COLUMN = 12
# A text row is its tallest character plus Epson's default gap to the next line (24 + 6 dots
# for font A: 1.25em, so 1em is 24 dots down the paper).
ROW_GAP_DOTS = 6
DOTS_PER_EM = 24

STYLESHEET = """
.receipt{font:var(--receipt-font-size,16px)/1.25 "DejaVu Sans Mono",Menlo,Consolas,monospace;background:#fff;color:#000;
 padding:1ch;box-sizing:content-box;margin:0 auto;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.receipt .l{position:relative;white-space:pre;height:1.25em}
.receipt .l>span,.receipt .page span{position:absolute;bottom:0;line-height:1;white-space:pre}
.receipt .b{font-weight:bold}.receipt .u1{text-decoration:underline}
.receipt .u2{text-decoration:underline double}.receipt .inv{background:#000;color:#fff}
.receipt .g{text-align:center;margin:.25em 0}.receipt .g svg,.receipt .g img{max-width:100%}
.receipt .g img{image-rendering:pixelated}
.receipt .band{margin:0}.receipt .band img{display:block;margin:0 auto}
.receipt .page{position:relative;overflow:hidden}.receipt .page>div{position:absolute;left:0;top:0;transform-origin:0 0}
.receipt .missing{border:1px dashed #888;padding:.25em;white-space:pre-wrap;word-break:break-all}
.receipt .truncated{border-top:1px dashed #888;font-style:italic;white-space:normal}
"""


def render_html(raw: bytes, columns: int = 48, title: str = "Receipt",
                printer: ReceiptPrinter = DEFAULT_PRINTER,
                budget: Optional[Budget] = None) -> str:
    body = render_fragment(raw, columns, printer, budget)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{STYLESHEET}"
            "body{margin:0;padding:1em;background:#eee}</style></head>"
            f"<body>{body}</body></html>\n")


def render_fragment(raw: bytes, columns: int = 48, printer: ReceiptPrinter = DEFAULT_PRINTER,
                    budget: Optional[Budget] = None) -> str:
    """The receipt as one ``<div class="receipt">`` (the stylesheet is ``STYLESHEET``)."""
    budget = budget or Budget()
    paper = paper_for_columns(columns, printer.profile)
    parts = []
    for block in blocks(raw, printer):
        part = _block(block, paper, budget)
        if part is None or not budget.take_text(len(part)):
            parts.append(f'<div class="truncated">{escape(budget.notice())}</div>')
            break
        parts.append(part)
    return (f'<div class="receipt" style="width:{paper / DOTS_PER_COLUMN:g}ch">'
            f'{"".join(parts)}</div>')


def _block(block: Block, paper: int, budget: Budget) -> Optional[str]:
    """The block's HTML, or None when the budget does not allow drawing it."""
    if isinstance(block, Line):
        return "".join(_row(row, block.align, paper) for row in printed_rows(block, paper))
    if isinstance(block, PageArea):
        return _page(block, paper)
    if not budget.take_graphic():
        return None
    if isinstance(block, Image):
        return _image(block)
    if isinstance(block, Barcode):
        drawn = barcode_svg(block.type, block.data)
        return _graphic(drawn.decode() if drawn else None, f"{block.type} {block.data}")
    if isinstance(block, Code2D):
        qr = qr_svg(block.data, block.params) if block.type == "qr" else None
        sized = None
        if qr is not None:
            svg, modules = qr
            # The printer draws each module as module_size dots square.
            dots = modules * max(int(block.params.get("module_size", 3)), 1)
            sized = svg.replace("<svg ", f'<svg style="width:{dots / DOTS_PER_COLUMN:g}ch" ', 1)
        return _graphic(sized, f"{block.type.upper()} {block.data}")
    raise TypeError(block)


_CONTROLS = dict.fromkeys(range(0x20), None) | {0x09: " "}


def _escape(text: str) -> str:
    """HTML-escaped, control characters (NUL in binary QR data ...) dropped."""
    return escape(text.translate(_CONTROLS))


def _row(row: Row, align: str, paper: int) -> str:
    """One printed row: each piece at its dot position, as a share of the paper's width, so
    the row never needs more room than the paper whatever the font size."""
    classes = f"l {align}" if align != "left" else "l"
    height = (row.height + ROW_GAP_DOTS) / DOTS_PER_EM
    height_css = f' style="height:{height:g}em"' if height != 1.25 else ""
    spans = "".join(_piece(style, text, f"left:{100 * x / paper:.5g}%" if x else "")
                    for x, style, text in row.pieces)
    return f'<div class="{classes}"{height_css}>{spans}</div>'


def _page(page: PageArea, paper: int) -> str:
    """A page-mode area: its runs placed in the direction's own coordinates, then turned."""
    along, across = page.extent()
    x, y, _, _ = page.area
    turned = page.direction in (1, 3)
    width, height = (across, along) if turned else (along, across)
    transform = {
        1: f"translateY({along / DOTS_PER_COLUMN:g}ch) rotate(-90deg)",
        2: f"translate({width / DOTS_PER_COLUMN:g}ch,{height / DOTS_PER_COLUMN:g}ch) "
           "rotate(180deg)",
        3: f"translateX({across / DOTS_PER_COLUMN:g}ch) rotate(90deg)",
    }.get(page.direction)
    spans = []
    for baseline, line in page.lines:
        for row in printed_rows(line, along):
            for piece_x, style, text in row.pieces:
                spans.append(_piece(style, text, f"left:{100 * piece_x / along:.5g}%;"
                                                 f"bottom:{100 * (across - baseline) / across:.5g}%"))
    inner_style = (f"width:{along / DOTS_PER_COLUMN:g}ch;height:{across / DOTS_PER_COLUMN:g}ch"
                   + (f";transform:{transform}" if transform else ""))
    return (f'<div class="page" style="margin-left:{100 * x / paper:.5g}%;'
            f'margin-top:{y / DOTS_PER_COLUMN:g}ch;width:{width / DOTS_PER_COLUMN:g}ch;'
            f'height:{height / DOTS_PER_COLUMN:g}ch"><div style="{inner_style}">'
            f'{"".join(spans)}</div></div>')


def _piece(style: Style, text: str, position: str) -> str:
    class_attr, css = _style_attributes(style)
    if position:
        css = f"{position};{css}" if css else position
    style_attr = f' style="{css}"' if css else ""
    return f"<span{class_attr}{style_attr}>{_escape(text)}</span>"


@lru_cache(maxsize=512)
def _style_attributes(style: Style) -> tuple[str, str]:
    """A style's class attribute and inline CSS (styles are few and shared: built once)."""
    classes = []
    if style.bold:
        classes.append("b")
    if style.underline:
        classes.append(f"u{style.underline}")
    if style.invert:
        classes.append("inv")
    css = []
    # Font B/C cells are 9 dots wide against font A's 12: three quarters of the size.
    size = style.height * (1 if style.font == "A" else 0.75)
    if size != 1:
        css.append(f"font-size:{size:g}em")
    if style.width != style.height:
        # Glyphs drawn at the height, squeezed or stretched to the width.
        css.append(f"transform:scaleX({style.width / style.height:g});transform-origin:0 0")
    class_attr = f' class="{" ".join(classes)}"' if classes else ""
    return class_attr, ";".join(css)


def _image(image: Image) -> str:
    if image.bitmap is None:
        return _graphic(None, f"image {image.width}x{image.height} (dots not in the job)")
    buffer = io.BytesIO()
    bitmap_image(image.bitmap).save(buffer, "PNG", optimize=True)
    data = base64.b64encode(buffer.getvalue()).decode()
    width = image.width / DOTS_PER_COLUMN
    img = (f'<img alt="image {image.width}x{image.height}" style="width:{width:g}ch" '
           f'src="data:image/png;base64,{data}">')
    if image.feed:
        # ESC * bands: each fed by the line spacing the job set, so they join up when it is
        # no more than their height (and leave a gap when it is more, as on paper).
        advance = max(image.height, image.feed) / DOTS_PER_COLUMN
        return f'<div class="g band" style="height:{advance:g}ch">{img}</div>'
    return f'<div class="g">{img}</div>'



def _graphic(svg: str | None, label: str) -> str:
    if svg is None:
        return f'<div class="g"><div class="missing">{_escape(label)}</div></div>'
    return f'<div class="g" role="img" aria-label="{_escape(label)}">{svg}</div>'

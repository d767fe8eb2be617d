"""
A receipt as one self-contained HTML page: the text in its styles, images as PNG data, QR codes
and barcodes drawn as SVG from their data. No external resources, so it works offline and under a
``default-src 'none'`` Content-Security-Policy.

Sizes follow the paper: a font A character is 12 dots wide, so ``1ch`` is 12 dots and an image
of ``w`` dots is ``w / 12`` ch wide on a paper of ``columns`` ch.
"""

from __future__ import annotations

import base64
import io
from html import escape

from printerd.escpos.styles import Style
from printerd.render.codes import barcode_svg, bitmap_image, qr_svg
from printerd.render.document import Barcode, Block, Code2D, Image, Line, blocks

DOTS_PER_COLUMN = 12

STYLESHEET = """
.receipt{font:var(--receipt-font-size,16px)/1.25 "DejaVu Sans Mono",Menlo,Consolas,monospace;background:#fff;color:#000;
 padding:1ch;box-sizing:content-box;margin:0 auto;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.receipt .l{white-space:pre;min-height:1.25em;overflow:hidden}
.receipt .center{text-align:center}.receipt .right{text-align:right}
.receipt .b{font-weight:bold}.receipt .u1{text-decoration:underline}
.receipt .u2{text-decoration:underline double}.receipt .inv{background:#000;color:#fff}
.receipt .fB{font-size:75%}.receipt .fC{font-size:70%}
.receipt .g{text-align:center;margin:.25em 0}.receipt .g svg,.receipt .g img{max-width:100%}
.receipt .g img{image-rendering:pixelated}
.receipt .missing{border:1px dashed #888;padding:.25em;white-space:pre-wrap;word-break:break-all}
"""


def render_html(raw: bytes, columns: int = 48, title: str = "Receipt",
                two_byte_encoding: str = "gb18030") -> str:
    body = render_fragment(raw, columns, two_byte_encoding)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{STYLESHEET}"
            "body{margin:0;padding:1em;background:#eee}</style></head>"
            f"<body>{body}</body></html>\n")


def render_fragment(raw: bytes, columns: int = 48, two_byte_encoding: str = "gb18030") -> str:
    """The receipt as one ``<div class="receipt">`` (the stylesheet is ``STYLESHEET``)."""
    parts = [_block(block) for block in blocks(raw, two_byte_encoding)]
    return f'<div class="receipt" style="width:{columns}ch">{"".join(parts)}</div>'


def _block(block: Block) -> str:
    if isinstance(block, Line):
        return _line(block)
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


def _line(line: Line) -> str:
    align = f" {line.align}" if line.align != "left" else ""
    spans = "".join(_run(style, text) for style, text in line.runs)
    return f'<div class="l{align}">{spans}</div>'


def _run(style: Style, text: str) -> str:
    columns = len(text)
    text = _escape(text)
    classes = []
    if style.bold:
        classes.append("b")
    if style.underline:
        classes.append(f"u{style.underline}")
    if style.invert:
        classes.append("inv")
    if style.font != "A":
        classes.append(f"f{style.font}")
    css = ""
    if style.height != 1 or style.width != 1:
        css = f"font-size:{style.height}em;line-height:1.1"
        if style.width != style.height:
            # Glyphs drawn at the height, squeezed or stretched to the width; the box takes
            # the scaled width in the layout (a transform alone does not).
            ratio = style.width / style.height
            css += (f";display:inline-block;transform:scaleX({ratio:g});transform-origin:0 0;"
                    f"width:{columns * ratio:g}ch")
    if not classes and not css:
        return text
    class_attr = f' class="{" ".join(classes)}"' if classes else ""
    style_attr = f' style="{css}"' if css else ""
    return f"<span{class_attr}{style_attr}>{text}</span>"


def _image(image: Image) -> str:
    if image.bitmap is None:
        return _graphic(None, f"image {image.width}x{image.height} (dots not in the job)")
    buffer = io.BytesIO()
    bitmap_image(image.bitmap).save(buffer, "PNG", optimize=True)
    data = base64.b64encode(buffer.getvalue()).decode()
    width = image.width / DOTS_PER_COLUMN
    return (f'<div class="g"><img alt="image {image.width}x{image.height}" '
            f'style="width:{width:g}ch" src="data:image/png;base64,{data}"></div>')


def _graphic(svg: str | None, label: str) -> str:
    if svg is None:
        return f'<div class="g"><div class="missing">{_escape(label)}</div></div>'
    return f'<div class="g" role="img" aria-label="{_escape(label)}">{svg}</div>'

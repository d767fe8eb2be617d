"""
A receipt as a PNG at the paper's dot width (576 dots: 80 mm paper at 203 dpi; 512: 80 mm at
180 dpi or wide 58 mm models), drawn with Pillow the way the print head would: font A cells of
12 x 24 dots, font B/C 9 x 17, each scaled by the character size; images dot for dot.
"""

from __future__ import annotations

import io
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

import barcode
from PIL import Image, ImageDraw, ImageFont
from twisted.logger import Logger

from printerd.escpos.styles import Style
from printerd.render.codes import barcode_image, bitmap_image, qr_image
from printerd.render.document import Barcode, Block, Code2D, Line, blocks
from printerd.render.document import Image as ImageBlock

PAPER_WIDTHS = (576, 512)
CELLS = {"A": (12, 24), "B": (9, 17), "C": (9, 17)}
LINE_GAP = 6  # Epson's default 1/6-inch line spacing leaves about this much between lines
# python-barcode ships DejaVu Sans Mono for its own captions: a font we always have.
_FONT_FILE = Path(barcode.__file__).parent / "fonts" / "DejaVuSansMono.ttf"
# DejaVu has no CJK glyphs: Debian's fonts-droid-fallback (Droid Sans Fallback, Apache 2.0) has
# the Chinese, Japanese and Korean ones; `make setup` and .ci/run install it.
CJK_FONT_FILES = (Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),)
# Renders run on both database reader threads; a FreeType face must not draw in two at once.
_FONT_LOCK = threading.Lock()
log = Logger()


@lru_cache(maxsize=8)
def _font(size: int, wide: bool = False) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """DejaVu Sans Mono, or for wide (CJK) characters the first CJK font installed."""
    if wide:
        for path in CJK_FONT_FILES:
            if path.exists():
                return ImageFont.truetype(str(path), size)
        log.warn("no CJK font ({paths}): PNG renderings draw boxes for CJK text; install "
                 "Debian's fonts-droid-fallback", paths=", ".join(map(str, CJK_FONT_FILES)))
    try:
        return ImageFont.truetype(str(_FONT_FILE), size)
    except OSError:
        return ImageFont.load_default(size)


def _is_wide(char: str) -> bool:
    """Double-byte characters print two cells wide."""
    return unicodedata.east_asian_width(char) in ("W", "F")


@lru_cache(maxsize=4096)
def _glyph(char: str, style: Style) -> Image.Image:
    """One character cell, black on white (or inverted), scaled by the character size."""
    cell_w, cell_h = CELLS.get(style.font, CELLS["A"])
    wide = _is_wide(char)
    cell_w *= 2 if wide else 1
    ink, paper = (255, 0) if style.invert else (0, 255)
    cell = Image.new("L", (cell_w, cell_h), paper)
    draw = ImageDraw.Draw(cell)
    with _FONT_LOCK:
        draw.text((cell_w / 2, cell_h - 4), char, fill=ink, font=_font(cell_h - 4, wide),
                  anchor="ms",
                  stroke_width=1 if style.bold else 0, stroke_fill=ink)
    for row in range(style.underline):
        draw.line([(0, cell_h - 1 - row), (cell_w, cell_h - 1 - row)], fill=ink)
    if style.width != 1 or style.height != 1:
        cell = cell.resize((cell_w * style.width, cell_h * style.height), Image.Resampling.NEAREST)
    return cell.point(lambda v: 255 if v >= 128 else 0).convert("1")


def _line_rows(line: Line, paper: int) -> list[Image.Image]:
    """The line as one or more image rows (a printer wraps at the paper's edge)."""
    cells = [_glyph(char, style) for style, text in line.runs for char in text]
    if not cells:
        return [Image.new("1", (paper, CELLS["A"][1] + LINE_GAP), 1)]
    rows: list[list[Image.Image]] = [[]]
    used = 0
    for cell in cells:
        if used + cell.width > paper and rows[-1]:
            rows.append([])
            used = 0
        rows[-1].append(cell)
        used += cell.width
    images = []
    for row in rows:
        width = sum(c.width for c in row)
        height = max(c.height for c in row) + LINE_GAP
        image = Image.new("1", (paper, height), 1)
        x = {"left": 0, "center": (paper - width) // 2, "right": paper - width}[line.align]
        for cell in row:
            image.paste(cell, (max(x, 0), height - LINE_GAP - cell.height))  # on the baseline
            x += cell.width
        images.append(image)
    return images


def _centered(graphic: Image.Image, paper: int) -> Image.Image:
    if graphic.width > paper:
        graphic = graphic.resize((paper, max(graphic.height * paper // graphic.width, 1)))
    image = Image.new("1", (paper, graphic.height + LINE_GAP), 1)
    image.paste(graphic.convert("1"), ((paper - graphic.width) // 2, 0))
    return image


def _label(text: str, paper: int) -> Image.Image:
    """A dashed box with what could not be drawn (NV image, PDF417, bad barcode data)."""
    text = "".join(ch for ch in text if ch >= " ")[: paper // 12 - 2]
    image = Image.new("1", (paper, 40), 1)
    draw = ImageDraw.Draw(image)
    for x in range(0, paper, 8):
        draw.line([(x, 2), (x + 4, 2)], fill=0)
        draw.line([(x, 33), (x + 4, 33)], fill=0)
    with _FONT_LOCK:
        draw.text((12, 8), text, fill=0, font=_font(18))
    return image


def _block_images(block: Block, paper: int) -> list[Image.Image]:
    if isinstance(block, Line):
        return _line_rows(block, paper)
    if isinstance(block, ImageBlock):
        if block.bitmap is None:
            return [_label(f"image {block.width}x{block.height}", paper)]
        return [_centered(bitmap_image(block.bitmap), paper)]
    if isinstance(block, Barcode):
        drawn = barcode_image(block.type, block.data)
        return [_centered(drawn, paper) if drawn else _label(f"{block.type} {block.data}", paper)]
    if isinstance(block, Code2D):
        drawn = qr_image(block.data, block.params) if block.type == "qr" else None
        return [_centered(drawn, paper) if drawn else
                _label(f"{block.type.upper()} {block.data}", paper)]
    raise TypeError(block)


def render_png(raw: bytes, paper: int = 576, two_byte_encoding: str = "gb18030") -> bytes:
    parts = [image for block in blocks(raw, two_byte_encoding)
             for image in _block_images(block, paper)]
    height = sum(p.height for p in parts) or 1
    page = Image.new("1", (paper, height), 1)
    y = 0
    for part in parts:
        page.paste(part, (0, y))
        y += part.height
    out = io.BytesIO()
    page.save(out, "PNG", optimize=True)
    return out.getvalue()

"""
A receipt as a PNG at the paper's dot width (576 dots: 80 mm paper at 203 dpi; 512: 80 mm at
180 dpi; 384: 58 mm at 203 dpi), drawn with Pillow the way the print head would: font A cells
of 12 x 24 dots, font B/C 9 x 17, each scaled by the character size, every character at its dot
position (``printed_rows``); page-mode areas turned to their direction; images dot for dot.
A rendering stays within its ``Budget`` (height, graphics): past it, it ends with a notice.
"""

from __future__ import annotations

import io
import threading
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Iterator, Optional

import barcode
from PIL import Image, ImageDraw, ImageFont
from twisted.logger import Logger

from printerd.escpos.layout import display_width
from printerd.escpos.styles import CELLS, Style
from printerd.render.budget import Budget
from printerd.render.codes import barcode_image, bitmap_image, qr_image
from printerd.render.document import (
    DEFAULT_PRINTER, Barcode, Block, Code2D, Line, PageArea, ReceiptPrinter, Row, blocks,
    printed_rows,
)
from printerd.render.document import Image as ImageBlock

LINE_GAP = 6  # Epson's default 1/6-inch line spacing leaves about this much between lines
# python-barcode ships DejaVu Sans Mono for its own captions: a font we always have.
_FONT_FILE = Path(barcode.__file__).parent / "fonts" / "DejaVuSansMono.ttf"
# Fonts tried in turn for a character DejaVu Sans Mono lacks, each used where it has a glyph:
# DejaVu Sans (fonts-dejavu-core: Hebrew, Arabic, Vietnamese), Droid Sans Fallback
# (fonts-droid-fallback, Apache 2.0: Chinese, Japanese, Korean, half-width kana) and TLWG Mono
# (fonts-tlwg-mono-ttf, GPL with the font exception: Thai).  `make setup` and .ci/run install
# them; a character none has is drawn as DejaVu's empty box.
FALLBACK_FONT_FILES = (Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
                       Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),
                       Path("/usr/share/fonts/truetype/tlwg/TlwgMono.ttf"))
CJK_FONT_FILES = FALLBACK_FONT_FILES[1:2]
# The order a wide (two-cell) character tries them: the CJK font first.
_WIDE_ORDER = CJK_FONT_FILES + tuple(p for p in FALLBACK_FONT_FILES if p not in CJK_FONT_FILES)
_NO_CHARACTER = "\U0010ffff"  # a noncharacter: every font draws its "missing glyph" for it
# Renders run on both database reader threads; a FreeType face must not draw in two at once.
_FONT_LOCK = threading.Lock()
log = Logger()


Font = ImageFont.ImageFont | ImageFont.FreeTypeFont


@lru_cache(maxsize=32)
def _font_file(path: Path, size: int) -> Optional[Font]:
    try:
        return ImageFont.truetype(str(path), size)
    except OSError:
        return None


@lru_cache(maxsize=8)
def _main_font(size: int) -> Font:
    try:
        return ImageFont.truetype(str(_FONT_FILE), size)
    except OSError:
        return ImageFont.load_default(size)


@lru_cache(maxsize=64)
def _missing_glyph(font: Font) -> tuple[tuple[int, int], bytes]:
    """The size and bits of ``font``'s missing-glyph shape."""
    mask = font.getmask(_NO_CHARACTER)
    return mask.size, bytes(mask)


def _has_glyph(font: Font, char: str) -> bool:
    """Whether ``font`` draws ``char`` as anything but its missing-glyph shape."""
    drawn = font.getmask(char)
    return (drawn.size, bytes(drawn)) != _missing_glyph(font)


def _font(char: str, size: int, wide: bool) -> Font:
    """The first font that has ``char``: DejaVu Sans Mono, then the fallbacks (the CJK font
    first for a wide character); DejaVu Sans Mono if none has it."""
    main = _main_font(size)
    if _has_glyph(main, char):
        return main
    for path in _WIDE_ORDER if wide else FALLBACK_FONT_FILES:
        font = _font_file(path, size)
        if font is not None and _has_glyph(font, char):
            return font
    _warn_if_no_fallbacks()
    return main


@lru_cache(maxsize=1)
def _warn_if_no_fallbacks() -> None:
    missing = [str(path) for path in FALLBACK_FONT_FILES if not path.exists()]
    if missing:
        log.warn("fonts missing ({paths}): PNG renderings draw boxes for what only they have "
                 "(CJK, Thai, Hebrew...); install fonts-dejavu-core, fonts-droid-fallback and "
                 "fonts-tlwg-mono-ttf", paths=", ".join(missing))


@lru_cache(maxsize=4096)
def _cell(char: str, style: Style) -> Image.Image:
    """One character cell at size 1 x 1, black on white (or inverted): a few hundred bytes,
    so the cache stays small whatever sizes receipts ask for."""
    cell_w, cell_h = CELLS.get(style.font, CELLS["A"])
    wide = display_width(char) == 2  # double-byte characters print two cells wide
    cell_w *= 2 if wide else 1
    ink, paper = (255, 0) if style.invert else (0, 255)
    cell = Image.new("L", (cell_w, cell_h), paper)
    draw = ImageDraw.Draw(cell)
    with _FONT_LOCK:
        draw.text((cell_w / 2, cell_h - 4), char, fill=ink, font=_font(char, cell_h - 4, wide),
                  anchor="ms", stroke_width=1 if style.bold else 0, stroke_fill=ink)
    for row in range(style.underline):
        draw.line([(0, cell_h - 1 - row), (cell_w, cell_h - 1 - row)], fill=ink)
    return cell.point(lambda v: 255 if v >= 128 else 0).convert("1")


class _Glyphs:
    """One rendering's glyphs at their sizes (scaled from the cached cells, kept for this
    rendering only, so a receipt in 8 x 8 characters leaves nothing behind)."""

    def __init__(self) -> None:
        self._scaled: dict[tuple[str, Style], Image.Image] = {}

    def __call__(self, char: str, style: Style) -> Image.Image:
        if style.width == 1 and style.height == 1:
            return _cell(char, style)
        found = self._scaled.get((char, style))
        if found is None:
            base = _cell(char, replace(style, width=1, height=1))
            found = base.resize((base.width * style.width, base.height * style.height),
                                Image.Resampling.NEAREST)
            self._scaled[(char, style)] = found
        return found


def _text_row(row: Row, paper: int, glyphs: _Glyphs) -> Image.Image:
    """One printed row: every character at its dot position, on the row's baseline."""
    height = row.height + LINE_GAP
    image = Image.new("1", (paper, height), 1)
    for x, style, text in row.pieces:
        for char in text:
            glyph = glyphs(char, style)
            if x < paper:
                image.paste(glyph, (x, height - LINE_GAP - glyph.height))
            x += glyph.width
    return image


def _page(page: PageArea, paper: int, glyphs: _Glyphs) -> Image.Image:
    """A page-mode area drawn in its direction's coordinates, then turned onto the paper."""
    along, across = page.extent()
    drawn = Image.new("1", (along, across), 1)
    for baseline, line in page.lines:
        for row in printed_rows(line, along):
            for x, style, text in row.pieces:
                for char in text:
                    glyph = glyphs(char, style)
                    drawn.paste(glyph, (x, baseline - glyph.height))
                    x += glyph.width
    turned = {1: Image.Transpose.ROTATE_90, 2: Image.Transpose.ROTATE_180,
              3: Image.Transpose.ROTATE_270}.get(page.direction)
    if turned is not None:
        drawn = drawn.transpose(turned)
    x, y, _, _ = page.area
    image = Image.new("1", (paper, y + drawn.height + LINE_GAP), 1)
    image.paste(drawn, (min(x, paper - 1), y))
    return image


def _centered(graphic: Image.Image, paper: int, advance: int = 0) -> Image.Image:
    """A graphic centred on the paper; ``advance``: the feed after it (ESC * bands), else
    the usual gap."""
    if graphic.width > paper:
        graphic = graphic.resize((paper, max(graphic.height * paper // graphic.width, 1)))
    height = max(graphic.height, advance) if advance else graphic.height + LINE_GAP
    image = Image.new("1", (paper, height), 1)
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
        draw.text((12, 8), text, fill=0, font=_main_font(18))
    return image


def _block_images(block: Block, paper: int, glyphs: _Glyphs,
                  budget: Budget) -> Iterator[Image.Image]:
    if isinstance(block, Line):
        for row in printed_rows(block, paper):
            if not budget.take_height(row.height + LINE_GAP):
                return
            yield _text_row(row, paper, glyphs)
        return
    if isinstance(block, PageArea):
        along, across = block.extent()
        if budget.take_height(along if block.direction in (1, 3) else across):
            yield _page(block, paper, glyphs)
        return
    if not budget.take_graphic():
        return
    if isinstance(block, ImageBlock):
        if block.bitmap is None:
            drawn = _label(f"image {block.width}x{block.height}", paper)
        else:
            drawn = _centered(bitmap_image(block.bitmap), paper, block.feed)
    elif isinstance(block, Barcode):
        image = barcode_image(block.type, block.data)
        drawn = _centered(image, paper) if image else _label(f"{block.type} {block.data}", paper)
    elif isinstance(block, Code2D):
        image = qr_image(block.data, block.params) if block.type == "qr" else None
        drawn = (_centered(image, paper) if image else
                 _label(f"{block.type.upper()} {block.data}", paper))
    else:
        raise TypeError(block)
    if budget.take_height(drawn.height):
        yield drawn


def render_png(raw: bytes, paper: int = 576, printer: ReceiptPrinter = DEFAULT_PRINTER,
               budget: Optional[Budget] = None) -> bytes:
    budget = budget or Budget()
    glyphs = _Glyphs()
    parts: list[Image.Image] = []
    for block in blocks(raw, printer):
        parts += _block_images(block, paper, glyphs, budget)
        if budget.truncated:
            parts.append(_label(budget.notice(), paper))
            break
    height = sum(p.height for p in parts) or 1
    page = Image.new("1", (paper, height), 1)
    y = 0
    for part in parts:
        page.paste(part, (0, y))
        y += part.height
    del parts, glyphs
    out = io.BytesIO()
    page.save(out, "PNG", optimize=True)
    return out.getvalue()

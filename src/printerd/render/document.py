"""
A receipt as the renderers see it: its text lines, pages, barcodes, 2D codes and images in print
order, parsed again from the stored raw bytes (so a better parser improves old receipts), and
the rows a line prints as on a paper of a given width (``printed_rows``: dot positions, wrapping
at the print area's edge, alignment).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from printerd.escpos.codepages import DEFAULT_TWO_BYTE_ENCODING
from printerd.escpos.content import Bitmap
from printerd.escpos.layout import Run, cell_dots, display_width
from printerd.escpos.parser import ParsedReceipt
from printerd.escpos.profiles import DEFAULT_PROFILE, PrinterProfile
from printerd.escpos.styles import CELLS, Style
from printerd.emulation import EMULATIONS, ESCPOS


@dataclass(frozen=True)
class Line:
    align: str
    runs: list[Run]  # (style, text, dot from the print area's start or None: after the last)
    margin: int = 0  # dots
    width: int = 0  # the print area's width in dots; 0: up to the paper's edge


@dataclass(frozen=True)
class PageArea:
    """An area printed in page mode: its lines (baseline ``y``, in the direction's own
    coordinates: x along the text, y across it) and where it sits on the paper."""

    direction: int  # ESC T: 0 normal, 1 bottom to top, 2 upside down, 3 top to bottom
    area: tuple[int, int, int, int]  # x, y, width, height on the paper (0 0 0 0: not set)
    lines: list[tuple[int, Line]]

    def extent(self) -> tuple[int, int]:
        """The area's size in its direction's coordinates (along the text, across it)."""
        x, y, width, height = self.area
        along, across = (height, width) if self.direction in (1, 3) else (width, height)
        if not along:
            along = max((end for _, line in self.lines for end in [_line_end(line)]), default=1)
        if not across:
            across = max((y + 8 for y, _ in self.lines), default=1)
        return along, across


@dataclass(frozen=True)
class Barcode:
    type: str
    data: str


@dataclass(frozen=True)
class Code2D:
    type: str  # "qr" or "pdf417"
    data: str
    params: dict[str, Any]


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    bitmap: Optional[Bitmap]  # None: the dots are not in the job (NV image, cut-off payload)
    feed: int = 0  # ESC * bands: the line spacing they were fed with (dots), else 0


Block = Union[Line, PageArea, Barcode, Code2D, Image]


@dataclass(frozen=True)
class ReceiptPrinter:
    """
    What the renderers need of the printer a receipt was printed on: how its stored bytes are
    parsed again (the printer's emulation, ``epson`` or ``star``, and its two-byte encoding)
    and the paper they are laid out on (its model's profile).
    """

    emulation: str = "epson"
    two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING
    profile: PrinterProfile = DEFAULT_PROFILE


DEFAULT_PRINTER = ReceiptPrinter()

PAPER_WIDTHS = (576, 512, 384)  # dots: 80 mm (TM-T20III, TM-m30), 80 mm TM-T88V, 58 mm


def parse_job(raw: bytes, printer: ReceiptPrinter = DEFAULT_PRINTER,
              keep_bitmaps: bool = True) -> list[ParsedReceipt]:
    """The receipts of a whole job, split at its cuts as the printer's raw port splits them
    (with their layout, and the images' dots with ``keep_bitmaps``)."""
    emulation = EMULATIONS.get(printer.emulation, ESCPOS)
    parser = emulation.new_parser(printer.two_byte_encoding, printer.profile, keep_bitmaps)
    return [e for e in parser.feed(raw) + parser.close() if isinstance(e, ParsedReceipt)]


def parse_receipt(raw: bytes,
                  printer: ReceiptPrinter = DEFAULT_PRINTER) -> Optional[ParsedReceipt]:
    """The first receipt in ``raw`` (a stored receipt holds exactly one), with its layout."""
    receipts = parse_job(raw, printer)
    return receipts[0] if receipts else None


def blocks(raw: bytes, printer: ReceiptPrinter = DEFAULT_PRINTER) -> list[Block]:
    """Everything the receipt prints, in print order."""
    receipt = parse_receipt(raw, printer)
    if receipt is None or receipt.layout is None:
        return []
    layout = receipt.layout
    content = layout.content
    text_lines = [Line(line.align, line.runs, line.margin, line.width) for line in layout.lines]
    lines: list[Optional[Block]] = list(text_lines)
    # A page's lines become one block, where its first line was.
    for page in layout.pages:
        page_lines = [(layout.lines[n].y, text_lines[n]) for n in range(page.first, page.end)]
        lines[page.first:page.end] = [PageArea(page.direction, page.area, page_lines)] + [
            None] * (page.end - page.first - 1)
    graphics: list[tuple[int, Block]] = []
    for kind, index in content.order:
        item = getattr(content, kind)[index]
        if kind == "barcodes":
            block: Block = Barcode(item["type"], item["data"])
        elif kind == "codes_2d":
            params = {k: v for k, v in item.items() if k not in ("type", "data", "line")}
            block = Code2D(item["type"], item["data"], params)
        else:
            block = Image(item.get("width", 0), item.get("height", 0), content.bitmaps[index],
                          layout.image_feeds.get(index, 0))
        graphics.append((item["line"], block))
    # A graphic printed after n complete lines goes after the n-th line; sorted() is stable,
    # so graphics on the same line keep their print order.
    ordered: list[Optional[Block]] = []
    position = 0
    for line_number, block in sorted(graphics, key=lambda g: g[0]):
        ordered += lines[position:line_number]
        position = max(position, line_number)
        ordered.append(block)
    return [block for block in ordered + lines[position:] if block is not None]


# -- rows as printed ---------------------------------------------------------------------------

# A piece of a printed row: dots from the paper's left edge, style, text.
Piece = tuple[int, Style, str]


@dataclass(frozen=True)
class Row:
    pieces: list[Piece]
    height: int  # the tallest character's height in dots (font A: 24)


def _line_end(line: Line) -> int:
    end = 0
    cursor = 0
    for style, text, x in line.runs:
        if x is not None:
            cursor = x
        cursor += cell_dots(style, 0) * display_width(text)
        end = max(end, cursor)
    return end


def printed_rows(line: Line, paper: int) -> list[Row]:
    """
    The rows ``line`` prints on a paper ``paper`` dots wide: each run at its dot position from
    the left margin, the line wrapped where the next character would pass the print area's
    edge (mid-word, as a printer does), each row aligned within the print area.
    """
    margin = max(min(line.margin, paper - CELLS["A"][0]), 0)
    area = paper - margin
    if line.width:
        area = max(min(line.width, area), 1)
    rows: list[list[Piece]] = [[]]
    ends = [0]  # where each row's last character ends, in the row's own dots
    shift = 0  # where the current row starts, in the line's own dots
    cursor = 0
    for style, text, x in line.runs:
        if x is not None:
            cursor = x
        unit = cell_dots(style, 0)
        # Most text is ASCII: every character one cell, so a row's share is a division.
        widths = None if text.isascii() else [unit * display_width(ch) for ch in text]
        start = 0
        while start < len(text):
            room = area - (cursor - shift)
            if cursor < shift:
                count = 0  # placed left of where this row starts (after a wrap)
            elif widths is None:
                count = min(max(room // unit, 0), len(text) - start)
            else:
                count, used = 0, 0
                while start + count < len(text) and used + widths[start + count] <= room:
                    used += widths[start + count]
                    count += 1
            if count == 0:
                if rows[-1]:
                    rows.append([])
                    ends.append(0)
                    shift = cursor
                    continue
                count = 1  # wider than the whole area: alone on its row, as printed
            piece = text[start:start + count]
            width = unit * count if widths is None else sum(widths[start:start + count])
            rows[-1].append((cursor - shift, style, piece))
            cursor += width
            ends[-1] = max(ends[-1], cursor - shift)
            start += count
    placed = []
    for pieces, end in zip(rows, ends, strict=True):
        offset = margin + {"center": max(area - end, 0) // 2,
                           "right": max(area - end, 0)}.get(line.align, 0)
        height = max((CELLS.get(style.font, CELLS["A"])[1] * style.height
                      for _, style, _ in pieces), default=CELLS["A"][1])
        placed.append(Row([(offset + x, style, text) for x, style, text in pieces], height))
    return placed


def paper_for_columns(columns: int, profile: PrinterProfile) -> int:
    """The paper width in dots a rendering ``columns`` wide stands for: the printer's own
    width at its own column count, else ``columns`` font A characters."""
    return profile.dots if columns == profile.columns else columns * CELLS["A"][0]

"""
Plain-text rendering of a receipt from its raw bytes, at the paper's width in columns: each row
as the printer prints it (runs at their dot positions, wrapped at the print area's edge,
aligned), a dot position shown at the column it falls in (dots / the run's character width),
and a double-width character takes two columns (it is followed by a space). Pages printed in
page mode read top to bottom, whatever their direction. Barcodes, 2D codes and images show as a
bracketed line with their data.
"""

from __future__ import annotations

from printerd.escpos.layout import display_width
from printerd.escpos.styles import CELLS
from printerd.render.budget import Budget
from printerd.render.document import (
    DEFAULT_PRINTER, Barcode, Block, Code2D, Image, Line, PageArea, ReceiptPrinter, Row, blocks,
    paper_for_columns, printed_rows,
)

WIDTHS = (32, 42, 48, 56, 64)  # 58 mm and 80 mm papers in their common fonts


def render_text(raw: bytes, width: int = 48, printer: ReceiptPrinter = DEFAULT_PRINTER,
                budget: Budget | None = None) -> str:
    """The receipt as the printer would lay it out at ``width`` columns."""
    budget = budget or Budget()
    paper = paper_for_columns(width, printer.profile)
    out: list[str] = []
    for block in blocks(raw, printer):
        for row in _block_lines(block, width, paper):
            if not budget.take_text(len(row) + 1):
                out.append(budget.notice())
                return "".join(line.rstrip() + "\n" for line in out)
            out.append(row)
    return "".join(line.rstrip() + "\n" for line in out)


def _block_lines(block: Block, width: int, paper: int) -> list[str]:
    if isinstance(block, Line):
        return [_columns(row) for row in printed_rows(block, paper)]
    if isinstance(block, PageArea):
        return [_columns(row) for _, line in block.lines for row in printed_rows(line, paper)]
    if isinstance(block, Barcode):
        label = f"[{block.type} {block.data}]"
    elif isinstance(block, Code2D):
        label = f"[{block.type.upper()} {block.data}]"
    elif isinstance(block, Image):
        label = f"[image {block.width}x{block.height}]"
    else:
        raise TypeError(block)
    label = "".join(ch for ch in label if ch >= " ")
    return [_center(label[i:i + width], width) for i in range(0, len(label), width)]


def _columns(row: Row) -> str:
    parts: list[str] = []
    used = 0
    for x, style, text in row.pieces:
        column = x // CELLS.get(style.font, CELLS["A"])[0]
        if column > used:
            parts.append(" " * (column - used))
            used = column
        elif column < used and parts and not parts[-1].endswith(" "):
            parts.append(" ")
            used += 1
        if text.isascii() and style.width == 1:
            parts.append(text)
            used += len(text)
            continue
        for char in text:
            # A character takes as many columns as cells, times its width multiple.
            cells = display_width(char)
            parts.append(char + " " * (cells * style.width - cells))
            used += cells * style.width
    return "".join(parts)


def _center(row: str, width: int) -> str:
    return " " * ((width - len(row)) // 2) + row

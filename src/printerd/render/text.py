"""
Plain-text rendering of a receipt from its raw bytes, at the paper's width in columns: lines
wrap at the edge, keep their alignment, and a double-width character takes two columns (it is
followed by a space). Barcodes, 2D codes and images show as a bracketed line with their data.
"""

from __future__ import annotations

from printerd.render.document import Barcode, Block, Code2D, Image, Line, blocks

WIDTHS = (32, 42, 48, 56, 64)  # 58 mm and 80 mm papers in their common fonts


def render_text(raw: bytes, width: int = 48, two_byte_encoding: str = "gb18030") -> str:
    """The receipt as the printer would lay it out at ``width`` columns."""
    out: list[str] = []
    for block in blocks(raw, two_byte_encoding):
        out += _block_lines(block, width)
    return "".join(line.rstrip() + "\n" for line in out)


def _block_lines(block: Block, width: int) -> list[str]:
    if isinstance(block, Line):
        return [_align(row, width, block.align) for row in _wrap(block, width)]
    if isinstance(block, Barcode):
        label = f"[{block.type} {block.data}]"
    elif isinstance(block, Code2D):
        label = f"[{block.type.upper()} {block.data}]"
    elif isinstance(block, Image):
        label = f"[image {block.width}x{block.height}]"
    else:
        raise TypeError(block)
    label = "".join(ch for ch in label if ch >= " ")
    return [_align(label[i:i + width], width, "center") for i in range(0, len(label), width)]


def _wrap(line: Line, width: int) -> list[str]:
    rows: list[str] = []
    row: list[str] = []
    used = 0
    for style, text in line.runs:
        for char in text.expandtabs(8):
            # A printer wraps at the paper's edge, mid-word if need be.
            columns = min(style.width, width)
            if used + columns > width:
                rows.append("".join(row))
                row, used = [], 0
            row.append(char + " " * (columns - 1))
            used += columns
    rows.append("".join(row))
    return rows


def _align(row: str, width: int, align: str) -> str:
    if align == "center":
        return " " * ((width - len(row)) // 2) + row
    if align == "right":
        return " " * (width - len(row)) + row
    return row

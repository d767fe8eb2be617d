"""
A receipt as the renderers see it: its text lines, barcodes, 2D codes and images in print order,
parsed again from the stored raw bytes (so a better parser improves old receipts).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

from printerd.escpos.content import Bitmap
from printerd.escpos.parser import JobParser, ParsedReceipt
from printerd.escpos.styles import Style
from printerd.star.parser import StarJobParser


@dataclass(frozen=True)
class Line:
    align: str
    runs: list[tuple[Style, str]]


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


Block = Union[Line, Barcode, Code2D, Image]


def parsing(emulation: str, two_byte_encoding: str) -> str:
    """
    How a printer's receipts are parsed, as the renderers pass it along in place of the two-byte
    encoding: the encoding alone for ESC/POS, "star:<encoding>" for a Star printer.
    """
    return two_byte_encoding if emulation == "epson" else f"{emulation}:{two_byte_encoding}"


def parse_receipt(raw: bytes, two_byte_encoding: str = "gb18030") -> Optional[ParsedReceipt]:
    """The first receipt in ``raw`` (a stored receipt holds exactly one), with its layout;
    ``two_byte_encoding`` may name the printer's emulation first (see ``parsing``)."""
    emulation, _, encoding = two_byte_encoding.rpartition(":")
    parser = (StarJobParser if emulation == "star" else JobParser)(encoding, keep_bitmaps=True)
    receipts = [e for e in parser.feed(raw) + parser.close() if isinstance(e, ParsedReceipt)]
    return receipts[0] if receipts else None


def blocks(raw: bytes, two_byte_encoding: str = "gb18030") -> list[Block]:
    """Everything the receipt prints, in print order."""
    receipt = parse_receipt(raw, two_byte_encoding)
    if receipt is None or receipt.layout is None:
        return []
    content = receipt.layout.content
    lines = [Line(align, runs) for align, runs in receipt.layout.lines]
    graphics: list[tuple[int, Block]] = []
    for kind, index in content.order:
        item = getattr(content, kind)[index]
        if kind == "barcodes":
            block: Block = Barcode(item["type"], item["data"])
        elif kind == "codes_2d":
            params = {k: v for k, v in item.items() if k not in ("type", "data", "line")}
            block = Code2D(item["type"], item["data"], params)
        else:
            block = Image(item.get("width", 0), item.get("height", 0), content.bitmaps[index])
        graphics.append((item["line"], block))
    # A graphic printed after n complete lines goes after the n-th line; sorted() is stable,
    # so graphics on the same line keep their print order.
    ordered: list[Block] = []
    position = 0
    for line_number, block in sorted(graphics, key=lambda g: g[0]):
        ordered += lines[position:line_number]
        position = max(position, line_number)
        ordered.append(block)
    return ordered + lines[position:]

"""Plain-text rendering of a receipt from its raw bytes, at the paper's width in columns."""

from __future__ import annotations

import textwrap

from printerd.escpos.parser import JobParser, ParsedReceipt

WIDTHS = (32, 42, 48, 56, 64)  # 58 mm and 80 mm papers in their common fonts


def parse_raw(raw: bytes, two_byte_encoding: str = "gb18030") -> ParsedReceipt | None:
    """Parse stored bytes again: a better parser improves old receipts."""
    parser = JobParser(two_byte_encoding)
    receipts = [e for e in parser.feed(raw) + parser.close() if isinstance(e, ParsedReceipt)]
    return receipts[0] if receipts else None


def render_text(raw: bytes, width: int = 48, two_byte_encoding: str = "gb18030") -> str:
    """The receipt as the printer would lay it out: lines wrapped at ``width`` columns."""
    parsed = parse_raw(raw, two_byte_encoding)
    if parsed is None:
        return ""
    lines = []
    for line in parsed.text.split("\n"):
        line = line.expandtabs(8)
        # A printer wraps long lines at the paper's edge, mid-word if need be.
        lines += textwrap.wrap(line, width, break_long_words=True, drop_whitespace=False,
                               replace_whitespace=False) or [""]
    return "\n".join(line.rstrip() for line in lines) + "\n"

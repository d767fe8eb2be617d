"""
A receipt as a one-page PDF: the PNG renderer's drawing, placed at the paper's real size (576
dots at 203 dpi, 512 at 180 dpi: both 72 mm printed width; 384 at 203 dpi: 48 mm), so it prints or archives as the
receipt looked. Pillow writes the PDF (a 1-bit image, no fonts); no date goes in, so the same
receipt always gives the same bytes (golden tests).
"""

from __future__ import annotations

import io

from PIL import Image

from printerd.render.document import DEFAULT_PRINTER, ReceiptPrinter
from printerd.render.png import render_png

# Dots per inch of the print heads that draw each paper width.
DOTS_PER_INCH = {576: 203.2, 512: 180.0, 384: 203.2}


def render_pdf(raw: bytes, paper: int = 576, printer: ReceiptPrinter = DEFAULT_PRINTER) -> bytes:
    page = Image.open(io.BytesIO(render_png(raw, paper, printer)))
    out = io.BytesIO()
    page.save(out, "PDF", resolution=DOTS_PER_INCH[paper], title="Receipt",
              creationDate=None, modDate=None)
    return out.getvalue()

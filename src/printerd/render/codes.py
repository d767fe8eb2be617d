"""
Drawing what a receipt prints other than text: bit images, barcodes and QR codes, as SVG (for
HTML) or Pillow images (for PNG). Barcodes come from python-barcode, QR codes from segno; where
neither library draws a symbology (UPC-E, CODE93, GS1 DataBar, PDF417) the callers show the data.
"""

from __future__ import annotations

import io
import re
from typing import Optional

import barcode
import segno
from barcode.writer import ImageWriter, SVGWriter
from PIL import Image

from printerd.escpos.content import GS1_SEPARATOR, Bitmap

# ESC/POS barcode type -> python-barcode name.
_SYMBOLOGIES = {
    "UPC-A": "upca", "EAN13": "ean13", "EAN8": "ean8", "CODE39": "code39", "ITF": "itf",
    "CODABAR": "codabar", "CODE128": "code128", "GS1-128": "gs1_128",
}
_XML_PROLOGUE = re.compile(rb"^.*?(?=<svg)", re.S)


def bitmap_image(bitmap: Bitmap) -> Image.Image:
    """The dots as a black-on-white Pillow image (mode "1")."""
    if bitmap.layout == "raster":
        return Image.frombytes("1", (bitmap.width, bitmap.height), bitmap.data, "raw", "1;I")
    # ESC *: each column's bytes run top to bottom, so the data is the transposed raster.
    columns = Image.frombytes("1", (bitmap.height, bitmap.width), bitmap.data, "raw", "1;I")
    return columns.transpose(Image.Transpose.TRANSPOSE)


def _barcode(kind: str, data: str, writer):
    name = _SYMBOLOGIES.get(kind)
    if name is None:
        return None
    if name == "gs1_128":
        # The receipt's data is what a scanner reads (fields separated by GS); python-barcode
        # adds the leading FNC1 itself and takes "\xf1" for the ones between fields.
        data = data.replace(GS1_SEPARATOR, "\xf1")
    options = {"add_checksum": False} if name == "code39" else {}
    try:
        return barcode.get_barcode_class(name)(data, writer=writer, **options)
    except Exception:  # python-barcode rejects data the symbology cannot hold
        return None


def barcode_svg(kind: str, data: str) -> Optional[bytes]:
    """An inline <svg> element, or None when it cannot be drawn."""
    symbol = _barcode(kind, data, SVGWriter())
    if symbol is None:
        return None
    try:
        svg = symbol.render(writer_options={"module_height": 10.0, "font_size": 8})
    except Exception:
        return None
    return _XML_PROLOGUE.sub(b"", svg, count=1)


def barcode_image(kind: str, data: str) -> Optional[Image.Image]:
    symbol = _barcode(kind, data, ImageWriter())
    if symbol is None:
        return None
    try:
        return symbol.render(writer_options={"module_height": 10.0, "font_size": 8, "dpi": 203})
    except Exception:
        return None


def _qr(data: str, params: dict) -> Optional[segno.QRCode]:
    if not data:
        return None
    try:
        return segno.make(data, error=params.get("error_correction", "L").lower(), micro=False)
    except Exception:  # data too long for any version
        return None


def qr_svg(data: str, params: dict) -> Optional[tuple[str, int]]:
    """An inline <svg> element one unit per module, and its size in modules (quiet zone too)."""
    qr = _qr(data, params)
    if qr is None:
        return None
    buffer = io.BytesIO()
    # omitsize: a viewBox instead of a fixed size, so the page scales it to the module size.
    qr.save(buffer, kind="svg", scale=1, border=2, xmldecl=False, svgclass=None,
            lineclass=None, omitsize=True)
    return buffer.getvalue().decode(), int(qr.symbol_size(scale=1, border=2)[0])


def qr_image(data: str, params: dict) -> Optional[Image.Image]:
    """At the printer's module size in dots (GS ( k fn 67)."""
    qr = _qr(data, params)
    if qr is None:
        return None
    buffer = io.BytesIO()
    qr.save(buffer, kind="png", scale=max(int(params.get("module_size", 3)), 1), border=2)
    buffer.seek(0)
    return Image.open(buffer).convert("1")

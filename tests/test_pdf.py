"""PDF renderings: the PNG drawing on a page of the receipt's real size, read back with pypdf."""

from __future__ import annotations

import io
import subprocess

import pytest
from PIL import Image, ImageChops
from pypdf import PdfReader

from bench.daemon import PRINTERD
from printerd.render.pdf import render_pdf
from printerd.render.png import render_png
from support import SAMPLES

LOGO = SAMPLES / "escpos-php__receipt-with-logo.bin"
POINTS_PER_MM = 72 / 25.4


def first_receipt() -> bytes:
    from printerd.escpos.parser import JobParser, ParsedReceipt

    parser = JobParser()
    return next(e.raw for e in parser.feed(LOGO.read_bytes()) + parser.close()
                if isinstance(e, ParsedReceipt))


@pytest.mark.parametrize("paper", [576, 512])
def test_the_pdf_page_is_72_mm_wide_and_holds_the_png_drawing_dot_for_dot(paper):
    raw = first_receipt()
    png = Image.open(io.BytesIO(render_png(raw, paper)))
    reader = PdfReader(io.BytesIO(render_pdf(raw, paper)))
    assert len(reader.pages) == 1
    page = reader.pages[0]
    assert float(page.mediabox.width) / POINTS_PER_MM == pytest.approx(72.0, abs=0.3)
    # The page is as long as the receipt, at the same scale as its width.
    assert float(page.mediabox.height) / float(page.mediabox.width) == \
        pytest.approx(png.height / png.width)
    drawn = page.images[0].image
    assert drawn.size == png.size
    assert ImageChops.difference(drawn.convert("1"), png.convert("1")).getbbox() is None


def test_the_same_receipt_always_gives_the_same_pdf_bytes():
    raw = first_receipt()
    assert render_pdf(raw) == render_pdf(raw)


def test_printerd_render_writes_a_pdf(tmp_path):
    out = tmp_path / "receipt.pdf"
    result = subprocess.run([PRINTERD, "render", str(LOGO), "--format", "pdf", "-o", str(out)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    # The default printer (a TM-T88V) prints 512 dots.
    assert out.read_bytes() == render_pdf(first_receipt(), 512)


def test_get_api_receipt_pdf_serves_the_rendering_at_each_width(inline_store, clock):
    from support import Api, add_receipts, draft, request, request_json

    stub = Api(inline_store, clock).stub
    add_receipts(inline_store, clock, draft("logo", raw=first_receipt()))
    response, body = request(stub, "/api/receipts/1.pdf")
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["application/pdf"]
    assert body == render_pdf(first_receipt(), 512)  # the default printer's paper
    response, body = request(stub, "/api/receipts/1.pdf?width=576")
    page = PdfReader(io.BytesIO(body)).pages[0]
    assert float(page.mediabox.width) / POINTS_PER_MM == pytest.approx(72.0, abs=0.3)
    assert page.images[0].image.width == 576
    assert request_json(stub, "/api/receipts/1.pdf?width=48") == (
        400, {"error": "width: must be one of 576, 512, 384"})
    assert request_json(stub, "/api/receipts/2.pdf")[0] == 404
    assert request_json(stub, "/api/receipts/1.gif")[0] == 404

"""Star receipts render like ESC/POS ones: text, barcodes, codes and images in print order."""

from __future__ import annotations

import io

from PIL import Image

from printerd.cli import main
from printerd.escpos.parser import ParsedReceipt
from printerd.render.document import Barcode, Code2D, Line, ReceiptPrinter, blocks
from printerd.render.document import Image as ImageBlock
from printerd.render.html import render_html
from printerd.render.png import render_png
from printerd.render.text import render_text
from printerd.star.parser import StarJobParser
from clients import client_job

STAR = ReceiptPrinter(emulation="star")


def first_receipt(name: str) -> bytes:
    parser = StarJobParser()
    events = parser.feed(client_job(name)) + parser.close()
    return next(e for e in events if isinstance(e, ParsedReceipt)).raw


def test_the_star_parser_is_chosen_by_the_printers_emulation():
    raw = first_receipt("receipt-printer-encoder-star-prnt")
    kinds = [type(block).__name__ for block in blocks(raw, STAR)]
    assert kinds == ["Line"] * 5 + ["Barcode", "Barcode", "Code2D", "Code2D", "Image"]
    star_blocks = blocks(raw, STAR)
    assert isinstance(star_blocks[0], Line) and isinstance(star_blocks[5], Barcode)
    assert isinstance(star_blocks[7], Code2D) and star_blocks[7].data == "https://example.com/r/1"
    logo = star_blocks[9]
    assert isinstance(logo, ImageBlock) and logo.bitmap is not None
    # Parsed as ESC/POS, the same bytes are Star dialect: no barcode, no code, no image.
    assert not any(isinstance(b, (Barcode, Code2D, ImageBlock))
                   for b in blocks(raw, ReceiptPrinter()))


def test_text_html_and_png_renderings_of_a_star_receipt():
    raw = first_receipt("receipt-printer-encoder-star-line")
    text = render_text(raw, 48, STAR)
    assert "Café Ünïcödé – £5 €7" in text
    for label in ("[CODE128 RIO-128]", "[EAN13 3130630574613]", "[QR https://example.com/r/1]",
                  "[PDF417 PDF417 data]", "[image 48x48]"):
        assert label in text
    html = render_html(raw, 48, printer=STAR)
    assert "ExampleMart Ltd." in html and html.count("<svg") >= 3  # 2 barcodes and the QR
    assert "data:image/png;base64," in html  # the logo
    png = Image.open(io.BytesIO(render_png(raw, 576, STAR)))
    assert png.width == 576 and png.height > 400


def test_printerd_render_takes_the_emulation(tmp_path, capsysbinary):
    job = tmp_path / "star.bin"
    job.write_bytes(client_job("node-thermal-printer-star"))
    assert main(["render", str(job), "--format", "txt", "--emulation", "star"]) == 0
    out = capsysbinary.readouterr().out.decode()
    assert "[CODE128 ABC-123]" in out and "[image 48x48]" in out

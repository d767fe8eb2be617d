"""Star receipts render like ESC/POS ones: text, barcodes, codes and images in print order."""

from __future__ import annotations

import io

from PIL import Image

from printerd.cli import main
from printerd.escpos.parser import ParsedReceipt
from printerd.escpos.profiles import profile_for
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


RECEIPTLINE_COLUMNS = """{width:*,8}
Asparagus | 11.00
Tomatoes | 3.00
TOTAL | 14.00
"""


def test_receiptline_columns_on_a_star_printer_land_at_their_dot_positions():
    # receiptline's Star command set places columns with ESC GS A / ESC GS R (dots) inside
    # ESC l / ESC Q margins (characters): the text and the renderings read as on the paper,
    # as the same document printed through its ESC/POS command set does.
    from clients import receiptline_job

    job = receiptline_job(RECEIPTLINE_COLUMNS, command="starsbcs", cpl=42, encoding="cp437",
                          cutting=True)
    parser = StarJobParser()
    (receipt,) = [e for e in parser.feed(job) + parser.close() if isinstance(e, ParsedReceipt)]
    assert receipt.text.splitlines() == ["Asparagus" + " " * 28 + "11.00",
                                         "Tomatoes" + " " * 30 + "3.00",
                                         "TOTAL" + " " * 32 + "14.00"]
    assert render_text(receipt.raw, 42, STAR).splitlines()[0] == "Asparagus" + " " * 28 + "11.00"
    # "11.00" starts at dot 444 of the TM-T88V profile's 512: 86.719% of the paper.
    assert '<span style="left:86.719%">11.00</span>' in render_html(receipt.raw, 42,
                                                                     printer=STAR)
    image = Image.open(io.BytesIO(render_png(receipt.raw, 512, STAR)))
    box = Image.eval(image.convert("L").crop((120, 0, 512, 30)), lambda v: 255 - v).getbbox()
    assert box is not None and 444 <= 120 + box[0] <= 447


def test_star_margins_narrow_the_print_area_and_reset_with_esc_at():
    # ESC l 2 / ESC Q 30: characters 2-29 of the paper, 24 dots in and 336 wide. ESC @ gives
    # back the whole paper (no margin, no width of its own in the line's styles).
    job = (b"\x1b@\x1bl\x02\x1bQ\x1e\x1b\x1da\x01Mid\n\x1b@\x1b\x1da\x01Mid\n\x1bd\x02")
    parser = StarJobParser()
    (receipt,) = [e for e in parser.feed(job) + parser.close() if isinstance(e, ParsedReceipt)]
    first, second = receipt.details["line_styles"][:2]
    assert (first["margin"], first["width"]) == (2 * 12, (30 - 2) * 12)
    assert "margin" not in second and "width" not in second



def test_star_margins_leaving_36_mm_or_less_are_ignored():
    # Star's line mode ignores an ESC l or ESC Q that would leave a print region of 36 mm or
    # less (here 288 dots at 203 dpi, 24 characters of 12 dots): ESC Q 0, a left margin at or
    # past the right one, or a region of 24 characters keep the margins set before.
    job = (b"\x1b@\x1bl\x02\x1bQ\x28A\n"  # characters 2-39: 456 dots
           b"\x1bQ\x00B\n"                 # ignored
           b"\x1bl\x28C\n"                 # ignored
           b"\x1bQ\x19D\n"                 # 2-24: 276 dots, ignored
           b"\x1bQ\x1aE\n"                 # 2-25: 288 dots, 36.03 mm
           b"\x1bd\x02")
    parser = StarJobParser(profile=profile_for("TSP143"))
    (receipt,) = [e for e in parser.feed(job) + parser.close() if isinstance(e, ParsedReceipt)]
    styles = receipt.details["line_styles"][:5]
    assert [(s["margin"], s["width"]) for s in styles] == [(24, 456)] * 4 + [(24, 288)]


def test_star_tab_stops_are_counted_from_the_paper_edge_and_none_are_set_at_first():
    # Star's line mode: HT goes to the next ESC D stop (n characters of the pitch in force when
    # it was set, from the paper's left edge whatever the left margin); with no stop set, or
    # none left to the right, HT does nothing. ESC D NUL clears them, and so does ESC @.
    job = (b"\x1b@A\tB\n"                      # no stops yet
           b"\x1bD\x0a\x14\x00A\tB\tC\tD\n"     # stops at 10 and 20 characters
           b"\x1bl\x04A\tB\n"                  # left margin 4: the stop at 10 is 6 in
           b"\x1bl\x00\x1bD\x05\x03\x09\x00A\tB\tC\n"  # 3 is not after 5: only 5 is set
           b"\x1bD\x00A\tB\n"
           b"\x1bD\x06\x00\x1b@A\tB\n"
           b"\x1bd\x02")
    parser = StarJobParser()
    (receipt,) = [e for e in parser.feed(job) + parser.close() if isinstance(e, ParsedReceipt)]
    assert receipt.text.splitlines() == [
        "AB",
        "A" + " " * 9 + "B" + " " * 9 + "CD",
        "A" + " " * 5 + "B",
        "A" + " " * 4 + "BC",
        "AB",
        "AB",
    ]
    assert render_text(receipt.raw, 42, STAR).splitlines()[1] == "A" + " " * 9 + "B" + " " * 9 + "CD"


def test_receiptio_landscape_on_a_star_printer_is_placed_in_its_page():
    # receiptio turns a receipt a quarter in Star's page mode: ESC GS P 0 (page mode), P 2 1
    # (bottom to top), P 3 (the area), then each line at ESC GS P 4 nL nH (its position along
    # the paper's width) and ESC GS A, and P 7 prints it. ESC GS P 4 takes two bytes: read as
    # one of two, they were printed as characters ("(", "D", "b") and the lines ran together.
    job = client_job("receiptio-star-landscape")
    parser = StarJobParser(profile=profile_for("TSP143"))  # receiptio's 48 columns, 203 dpi
    (receipt,) = [e for e in parser.feed(job) + parser.close() if isinstance(e, ParsedReceipt)]
    assert receipt.text.splitlines() == [" " * 18 + "ExampleMart",
                                         "Coffee" + " " * 38 + "3.50",
                                         "Tea" + " " * 41 + "2.00"]
    (page,) = receipt.details["pages"]
    assert page["direction"] == 1 and page["lines"] == [0, 3]
    assert [s["y"] for s in receipt.details["line_styles"]] == [40, 68, 98]
    # Drawn turned: the text runs up the paper, so the image is taller than its lines are long.
    printer = ReceiptPrinter(emulation="star", profile=profile_for("TSP143"))
    image = Image.open(io.BytesIO(render_png(receipt.raw, 576, printer)))
    ink = Image.eval(image.convert("L"), lambda v: 255 - v).getbbox()
    assert ink is not None and ink[3] - ink[1] > 3 * (ink[2] - ink[0])

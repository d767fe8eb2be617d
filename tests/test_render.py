"""Renderers: text, HTML and PNG from the stored raw bytes, pinned by golden files."""

from __future__ import annotations

import base64
import io
import os
import re
from pathlib import Path

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from printerd.render.html import render_html
from printerd.render.png import render_png
from printerd.render.text import render_text
from conftest import sample_files

GOLDEN = Path(__file__).parent / "golden"
# PRINTERD_REGOLD=1 pytest tests/test_render.py rewrites the golden files after a deliberate
# change; review the diff before committing it.
REGOLD = os.environ.get("PRINTERD_REGOLD") == "1"
ESC, GS = b"\x1b", b"\x1d"
CUT = GS + b"V\x00"


def receipt_jobs():
    """Each sample's receipts (one per cut), as the store keeps them."""
    from printerd.escpos.parser import JobParser, ParsedReceipt

    for path in sample_files():
        parser = JobParser()
        found = [e for e in parser.feed(path.read_bytes()) + parser.close()
                 if isinstance(e, ParsedReceipt)]
        for number, receipt in enumerate(found):
            yield f"{path.stem}.{number}", receipt.raw


JOBS = dict(receipt_jobs())


def check_golden(name: str, rendered: str) -> None:
    path = GOLDEN / name
    if REGOLD:
        path.write_text(rendered, encoding="utf-8")
    assert path.exists(), f"no golden file {name}: run with PRINTERD_REGOLD=1"
    assert rendered == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(JOBS))
def test_text_rendering_matches_its_golden_file(name):
    check_golden(f"{name}.txt", render_text(JOBS[name], 48))


@pytest.mark.parametrize("name", sorted(JOBS))
def test_html_rendering_matches_its_golden_file(name):
    check_golden(f"{name}.html", render_html(JOBS[name], 48, title=name))


def test_html_escapes_what_the_pos_printed():
    html = render_html(b"<script>alert(1)</script> & \x1b!\x08<b>\n" + CUT)
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; " in html
    assert '<span class="b">&lt;b&gt;</span>' in html


def test_html_draws_qr_codes_barcodes_and_images_from_their_data():
    qr = render_html(JOBS["escpos-php__qr-code.0"])
    assert qr.count("<svg") == 19  # every QR code in the sample, binary data included
    assert 'aria-label="QR Testing 123"' in qr
    barcodes = render_html(JOBS["escpos-php__barcode.0"])
    assert 'aria-label="EAN13 012345678901"><svg' in barcodes
    logo = render_html(JOBS["escpos-php__receipt-with-logo.0"])
    (data,) = re.findall(r'src="data:image/png;base64,([^"]+)"', logo)
    image = Image.open(io.BytesIO(base64.b64decode(data)))
    assert image.size == (300, 236)
    assert image.convert("L").getextrema() == (0, 255)  # black dots on white paper


def test_code128_renders_from_what_the_barcode_encodes():
    """Code set C digits and GS1-128 fields (python-escpos's bytes) are drawn by python-barcode
    from the decoded data, not from the selector and raw code set C bytes."""
    from escpos.printer import Dummy

    from printerd.render.codes import barcode_svg

    printer = Dummy()
    printer.barcode("{C" + "".join(map(chr, (20, 24, 1, 2))), "CODE128", function_type="B")
    printer.barcode("{C{1" + "".join(map(chr, (1, 9, 50, 11, 1, 53, 0, 3, 10))) + "{BAB1",
                    "CODE128", function_type="B")
    printer.cut()
    html = render_html(printer.output)
    assert 'aria-label="CODE128 20240102"' in html and "{C" not in html
    assert barcode_svg("CODE128", "20240102").decode() in html
    assert 'aria-label="GS1-128 010950110153000310AB1"' in html
    assert barcode_svg("GS1-128", "010950110153000310AB1").decode() in html
    assert "20240102" in render_text(printer.output)


def test_png_draws_cjk_text_with_real_glyphs_two_cells_wide():
    """Two-byte (GB18030, Shift-JIS) text gets each character's own glyph, not the same empty
    box, and each character takes two 12-dot cells."""
    from printerd.render.png import CJK_FONT_FILES

    assert any(path.exists() for path in CJK_FONT_FILES), "make setup installs the CJK font"
    for encoding, text in (("gb18030", "收据合计"), ("shift_jis", "領収書計")):
        job = b"\x1c&" + text.encode(encoding) + b"\x1c.\n" + CUT
        image = Image.open(io.BytesIO(render_png(job, two_byte_encoding=encoding))).convert("L")
        cells = [image.crop((24 * i, 0, 24 * i + 24, 24)) for i in range(4)]
        assert all(cell.getextrema()[0] == 0 for cell in cells)  # ink in each 24-dot cell
        assert len({cell.tobytes() for cell in cells}) == 4  # four different glyphs
        assert image.crop((96, 0, 576, 24)).getextrema() == (255, 255)  # nothing past 4 x 24


def test_text_keeps_alignment_and_double_width():
    job = (ESC + b"a\x01" + b"Mid\n" + ESC + b"a\x02" + b"Right\n" + ESC + b"a\x00"
           + GS + b"!\x10" + b"Wide\n" + GS + b"!\x00" + b"x" * 12 + b"\n" + CUT)
    assert render_text(job, 32) == (" " * 14 + "Mid\n" + " " * 27 + "Right\n"
                                    + "W i d e\n" + "x" * 12 + "\n")
    # 16 double-width characters fill 32 columns; the rest wraps.
    assert render_text(GS + b"!\x10" + b"y" * 20 + b"\n" + CUT, 32) == (
        " ".join("y" * 16) + "\n" + " ".join("y" * 4) + "\n")


@pytest.mark.parametrize("paper", [576, 512])
@pytest.mark.parametrize("name", ["escpos-php__receipt-with-logo.0", "escpos-php__qr-code.0",
                                  "escpos-php__barcode.0", "escpos-php__demo.12",
                                  "escposnet__output-juliogamasso.0"])
def test_png_opens_at_the_paper_width_with_ink_on_it(name, paper):
    image = Image.open(io.BytesIO(render_png(JOBS[name], paper)))
    assert image.format == "PNG" and image.width == paper and image.height > 100
    assert image.convert("L").getextrema() == (0, 255)


def test_png_double_height_text_is_twice_as_tall():
    def height(job: bytes) -> int:
        return Image.open(io.BytesIO(render_png(job))).height
    plain, tall = height(b"Total\n" + CUT), height(GS + b"!\x01" + b"Total\n" + CUT)
    assert tall - plain == 24  # one more font A cell height


@pytest_twisted.ensureDeferred
async def test_renderings_are_cached_least_recently_used_within_their_byte_budget(store):
    from printerd.render.service import Renderings
    from printerd.store.receipts import NewReceipt, format_time

    for n in (1, 2, 3):  # ids 1, 2, 3
        await store.add_receipt(NewReceipt(
            printer="p", peer="x", received_at=format_time(1e9), job=n,
            raw=b"Receipt %d\n" % n + CUT, text="", cut="full", truncated=False))
    renderings = Renderings(store, {"p": "gb18030"}, cache_bytes=40)
    one = await renderings.get(1, "txt", 48)
    assert one == b"Receipt 1\n"
    # Gone from the database, still served: it came from the cache.
    await store.write(lambda conn: conn.execute("DELETE FROM receipts WHERE id = 1"))
    assert await renderings.get(1, "txt", 48) == one
    # Two more renderings (10 bytes each) fit; the next pushes out the least recently used.
    assert await renderings.get(2, "txt", 48) == b"Receipt 2\n"
    assert await renderings.get(3, "txt", 48) == b"Receipt 3\n"
    assert await renderings.get(2, "txt", 42) == b"Receipt 2\n"
    assert await renderings.get(3, "txt", 32) == b"Receipt 3\n"
    assert await renderings.get(1, "txt", 48) is None  # evicted, and no longer stored
    assert await renderings.get(9, "png", 576) is None


# Pieces of real commands, some cut short or with absurd sizes: what a broken POS might send.
PIECES = [
    b"text ", b"\n", CUT, ESC + b"@", ESC + b"E\x01", GS + b"!\x77", ESC + b"a\x01",
    GS + b"v0\x00\x00\x00\x00\x00", GS + b"v0\x00\x02\x00\x02\x00\xff\x00",
    GS + b"v0\x00\xff\xff\xff\xff\x01\x02", ESC + b"*\x21\x02\x00\xff\xff", ESC + b"*\x00\x00\x00",
    GS + b"(L\x0b\x000p0\x01\x01\x31\x00\x00\x00\x00", GS + b"(k\x03\x001Q0",
    GS + b"(k\x05\x001P0\x00\x00", GS + b"(k\x03\x001E9", GS + b"k\x02123\x00",
    GS + b"kI\x05{Babc", GS + b"k\x41\x00", GS + b"Z\x02" + ESC + b"Z\x00L\x06\x03\x00abc",
    b"\x1cp\x01\x00", b"\x00" * 30, b"\xff" * 10,
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30))
def test_renderers_never_raise_on_broken_jobs(parts):
    job = b"".join(parts)
    assert isinstance(render_text(job), str)
    assert render_html(job).startswith("<!DOCTYPE html>")
    assert Image.open(io.BytesIO(render_png(job))).width == 576


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=600))
def test_renderers_never_raise_on_arbitrary_bytes(data):
    render_text(data), render_html(data)
    assert Image.open(io.BytesIO(render_png(data, 512))).width == 512


@pytest_twisted.ensureDeferred
async def test_requests_for_the_same_rendering_at_once_render_it_once(store):
    from twisted.internet.defer import gatherResults

    from printerd.render.service import Renderings
    from printerd.store.receipts import NewReceipt, format_time

    await store.add_receipt(NewReceipt(printer="p", peer="x", received_at=format_time(1e9), job=1,
                                       raw=b"Once\n" + CUT, text="", cut="full", truncated=False))
    renderings = Renderings(store, {})
    bodies = await gatherResults([renderings.get(1, "html", 48) for _ in range(20)])
    assert renderings.renders_total == 1
    assert len(set(bodies)) == 1 and b"Once" in bodies[0]
    assert await renderings.get(1, "png", 576) and renderings.renders_total == 2

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

from printerd.render.document import ReceiptPrinter
from printerd.render.html import render_html
from printerd.render.png import render_png
from printerd.render.text import render_text
from support import CountingRunner, sample_files

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
    assert re.search(r'<span class="b"[^>]*>&lt;b&gt;</span>', html)


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
        printer = ReceiptPrinter(two_byte_encoding=encoding)
        image = Image.open(io.BytesIO(render_png(job, printer=printer))).convert("L")
        cells = [image.crop((24 * i, 0, 24 * i + 24, 24)) for i in range(4)]
        assert all(cell.getextrema()[0] == 0 for cell in cells)  # ink in each 24-dot cell
        assert len({cell.tobytes() for cell in cells}) == 4  # four different glyphs
        assert image.crop((96, 0, 576, 24)).getextrema() == (255, 255)  # nothing past 4 x 24


@pytest.mark.parametrize("page, text", [
    (1, "ｱｲｳｴ"),  # Epson's Katakana page: half-width kana
    (49, "שלום"),  # WPC1255
    (21, "กขคง"),  # Thai character code 11
])
def test_png_draws_every_script_of_the_code_pages_with_real_glyphs_one_cell_each(page, text):
    """Characters DejaVu Sans Mono lacks (half-width kana, Hebrew, Thai) get a fallback font's
    glyph in one 12-dot cell each, not the same empty box."""
    from printerd.escpos.codepages import epson_page
    from printerd.render.png import FALLBACK_FONT_FILES

    assert all(path.exists() for path in FALLBACK_FONT_FILES), "make setup installs the fonts"
    byte_of = {char: byte for byte, char in enumerate(epson_page(page))}
    job = ESC + b"t" + bytes([page]) + bytes(byte_of[char] for char in text) + b"\n" + CUT
    assert render_text(job).strip() == text
    image = Image.open(io.BytesIO(render_png(job))).convert("L")
    cells = [image.crop((12 * i, 0, 12 * i + 12, 24)) for i in range(5)]
    assert all(cell.getextrema()[0] == 0 for cell in cells[:4])  # ink in each 12-dot cell
    assert len({cell.tobytes() for cell in cells[:4]}) == 4  # four different glyphs
    assert cells[4].getextrema() == (255, 255)  # one cell each: nothing in the fifth


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
    renderings = Renderings(store, {}, cache_bytes=40)
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


def test_a_rendering_reads_the_database_once(db_path):
    from twisted.internet.task import Clock

    from printerd.render.service import Renderings
    from printerd.store.receipts import NewReceipt, format_time
    from printerd.store.service import ReceiptStore
    from printerd.store.sqlite import SQLiteEngine

    clock = Clock()
    engine = SQLiteEngine(db_path)
    runner = CountingRunner(engine)
    store = ReceiptStore(clock, engine, engine.prepare(20), runner, commit_delay=0.0)
    store.startService()
    added = store.add_receipt(NewReceipt(printer="p", peer="x", received_at=format_time(1e9),
                                         job=1, raw=b"Once\n" + CUT, text="", cut="full",
                                         truncated=False))
    clock.advance(0)
    assert added.called
    renderings = Renderings(store, {})
    before = runner.reads
    body = renderings.get(1, "txt", 48)
    assert body.called and body.result == b"Once\n"
    assert runner.reads - before == 1
    assert renderings.get(2, "txt", 48).result is None  # no such receipt: one read too
    assert runner.reads - before == 2


# Pieces of real commands, some cut short or with absurd sizes: what a broken POS might send.
PIECES = [
    b"text ", b"\n", CUT, ESC + b"@", ESC + b"E\x01", GS + b"!\x77", ESC + b"a\x01",
    GS + b"v0\x00\x00\x00\x00\x00", GS + b"v0\x00\x02\x00\x02\x00\xff\x00",
    GS + b"v0\x00\xff\xff\xff\xff\x01\x02", ESC + b"*\x21\x02\x00\xff\xff", ESC + b"*\x00\x00\x00",
    GS + b"(L\x0b\x000p0\x01\x01\x31\x00\x00\x00\x00", GS + b"(k\x03\x001Q0",
    GS + b"(k\x05\x001P0\x00\x00", GS + b"(k\x03\x001E9", GS + b"k\x02123\x00",
    GS + b"kI\x05{Babc", GS + b"k\x41\x00", GS + b"Z\x02" + ESC + b"Z\x00L\x06\x03\x00abc",
    b"\x1cp\x01\x00", b"\x00" * 30, b"\xff" * 10,
    # print positions and page mode
    ESC + b"$\x20\x01", ESC + b"$\xfa\x01", ESC + b"\\\xe8\xff", b"\t", ESC + b"D\x02\x05\x00",
    GS + b"L\xf0\x01", GS + b"W\x10\x00", ESC + b" \xff", ESC + b"L", ESC + b"T\x01", ESC + b"T\x02",
    ESC + b"W\x10\x00\x10\x00\x00\x01\x80\x00", GS + b"$\x00\x02", b"\x0c", ESC + b"\x0c",
    ESC + b"3\x00", ESC + b"*\x21\x02\x00" + b"\xff" * 6, b"\x1c&\xb5\xda\xb5\xda\x1c.",
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


# -- print positions and page mode (issue 14.1, 14.2) --------------------------------------

RECEIPTLINE_RECEIPT = """{width:*,8}
Asparagus | 11.00
Tomatoes | 3.00
TOTAL | 14.00
"""


def receiptline_raw(**options) -> bytes:
    from clients import receiptline_job
    from printerd.render.document import parse_receipt

    receipt = parse_receipt(receiptline_job(RECEIPTLINE_RECEIPT, command="escpos", cpl=42,
                                            encoding="cp437", cutting=True, **options))
    assert receipt is not None
    return receipt.raw


def ink_box(image: Image.Image, box: tuple[int, int, int, int]):
    """The bounding box of the black dots inside ``box`` (None: no ink there)."""
    return Image.eval(image.convert("L").crop(box), lambda v: 255 - v).getbbox()


def test_renderings_put_receiptline_columns_at_their_dot_positions():
    raw = receiptline_raw()
    assert render_text(raw, 42).splitlines()[0] == "Asparagus" + " " * 28 + "11.00"
    # The price starts at dot 444 of the TM-T88V's 512: 86.719% of the paper.
    html = render_html(raw, 42)
    assert '<span style="left:86.719%">11.00</span>' in html
    image = Image.open(io.BytesIO(render_png(raw, 512)))
    left, _, right, _ = ink_box(image, (120, 0, 512, 30))
    assert 444 <= 120 + left <= 447 and 120 + right <= 504  # "11.00" in dots 444-503


def test_landscape_page_is_drawn_turned_and_read_top_to_bottom():
    raw = receiptline_raw(landscape=True, resolution=180)
    lines = render_text(raw, 42).splitlines()
    assert lines[:3] == ["Asparagus" + " " * 28 + "11.00", "Tomatoes" + " " * 30 + "3.00",
                         "TOTAL" + " " * 32 + "14.00"]
    assert "rotate(-90deg)" in render_html(raw, 42)
    image = Image.open(io.BytesIO(render_png(raw, 512)))
    left, top, right, bottom = ink_box(image, (0, 0, image.width, image.height))
    # 42 characters run up the paper (504 dots) in three lines side by side (72 dots).
    assert bottom - top > 400 and right - left < 100


@pytest.mark.parametrize("model, dots, columns", [
    ("TM-T88V", 512, 42), ("TM-T20III", 576, 48), ("TM-m30II-H", 576, 48), ("TM-m10", 384, 32),
    ("Some Printer 3000", 512, 42),
])
def test_printer_profiles_give_paper_width_and_columns(model, dots, columns):
    from printerd.escpos.profiles import profile_for

    profile = profile_for(model)
    assert (profile.dots, profile.columns) == (dots, columns)
    assert profile.known == (model != "Some Printer 3000")


@pytest_twisted.ensureDeferred
async def test_renderings_default_to_the_printers_model(store):
    from printerd.escpos.profiles import profile_for
    from printerd.render.service import Renderings
    from printerd.store.receipts import NewReceipt, format_time

    for n, printer in enumerate(["bar", "kitchen", "mobile"], 1):
        await store.add_receipt(NewReceipt(
            printer=printer, peer="x", received_at=format_time(1e9), job=n,
            raw=b"x" * 50 + b"\n" + CUT, text="", cut="full", truncated=False))
    models = {"bar": "TM-T88V", "kitchen": "TM-T20III", "mobile": "TM-m10"}
    renderings = Renderings(store, {name: ReceiptPrinter(profile=profile_for(model))
                                    for name, model in models.items()})
    for receipt_id, dots, columns in [(1, 512, 42), (2, 576, 48), (3, 384, 32)]:
        png = Image.open(io.BytesIO(await renderings.get(receipt_id, "png")))
        assert png.width == dots
        text = (await renderings.get(receipt_id, "txt")).decode()
        assert text.splitlines()[0] == "x" * columns  # the printer wraps at its columns
        html = (await renderings.get(receipt_id, "html")).decode()
        assert f'class="receipt" style="width:{dots / 12:g}ch"' in html
    assert Image.open(io.BytesIO(await renderings.get(1, "png", 576))).width == 576


# -- the rendering budget (issue 13.3) -------------------------------------------------------

def test_renderings_past_their_budget_stop_and_say_so():
    from printerd.render.budget import Budget

    job = b"".join(b"line %d\n" % n for n in range(200)) + CUT
    text = render_text(job, 48, budget=Budget(characters=500))
    assert len(text) < 600 and text.rstrip().endswith("longer than printerd draws]")
    html = render_html(job, 48, budget=Budget(characters=2000))
    assert len(html) < 5000 and 'class="truncated"' in html
    image = Image.open(io.BytesIO(render_png(job, 576, budget=Budget(height=300))))
    assert image.height <= 300 + 40  # what fits, and the notice
    qr_codes = render_html(JOBS["escpos-php__qr-code.0"], budget=Budget(graphics=2))
    assert qr_codes.count("<svg") == 2 and 'class="truncated"' in qr_codes


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", status, re.M).group(1)) / 1024


@pytest.mark.e2e
def test_a_receipt_in_huge_characters_renders_within_its_memory_budget(tmp_path):
    import socket
    import urllib.request
    from concurrent.futures import ThreadPoolExecutor

    from bench.daemon import Daemon

    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", "--shutdown-timeout=2")
    try:
        # 20 KB of text at GS ! 0x77 (8 x 8 cells): 60 m of paper.
        text = (b"The quick brown fox jumps over the lazy dog 0123456789\n" * 400)[:20_000]
        with socket.create_connection(("127.0.0.1", daemon.raw_port), timeout=10) as sock:
            sock.sendall(b"\x1b@\x1d!\x77" + text + b"\x1dV\x00")
        daemon.wait_for(lambda: daemon.get("/api/stats")[1]["receipts_total"] == 1)
        pid = daemon.process.pid
        before = rss_mb(pid)

        def fetch(path: str) -> bytes:
            with urllib.request.urlopen(daemon.url(path), timeout=120) as response:
                return response.read()

        paths = ["/api/receipts/1.png", "/api/receipts/1.png?width=576",
                 "/api/receipts/1.html", "/api/receipts/1.txt"]
        with ThreadPoolExecutor(max_workers=4) as pool:  # at once, on both reader threads
            bodies = dict(zip(paths, pool.map(fetch, paths), strict=True))
        peak = rss_mb(pid, "VmHWM")
        after = rss_mb(pid)
        png = Image.open(io.BytesIO(bodies["/api/receipts/1.png?width=576"]))
        assert png.width == 576 and png.height <= 40_100  # cut at the budget, with its notice
        assert bodies["/api/receipts/1.txt"].startswith(b"T" + b" " * 7 + b"h")
        assert b">brown<" in bodies["/api/receipts/1.html"]
        # Two PNG renders at once (and the text and HTML): the day-one renderer peaked at 1.6 GB
        # for two and kept 862 MB.
        assert peak - before < 200, (before, peak, after)
        assert after - before < 40, (before, peak, after)  # and handed back afterwards
        print(f"RSS before {before:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB")
    finally:
        daemon.stop()


# -- column bit images (issue 14.11) ---------------------------------------------------------

def column_image_job(spacing: bytes | None = None) -> bytes:
    """python-escpos printing a 64 x 72 black box with ESC * (three 24-dot bands, each ended
    by a line feed, after ESC 3 16); ``spacing`` replaces that line spacing command."""
    from escpos.printer import Dummy

    printer = Dummy()
    printer.hw("INIT")
    printer.text("Logo\n")
    printer.image(Image.new("1", (64, 72), 0), impl="bitImageColumn")
    printer.text("After\n")
    printer.cut()
    job = printer.output
    assert job.count(b"\x1b*!") == 3 and b"\x1b3\x10" in job
    return job if spacing is None else job.replace(b"\x1b3\x10", spacing)


def black_rows(png: bytes) -> list[int]:
    image = Image.open(io.BytesIO(png)).convert("L")
    return [y for y in range(image.height)
            if image.crop((224, y, 288, y + 1)).getextrema()[0] == 0]


def test_column_image_bands_join_up_at_the_line_spacing_the_job_set():
    # ESC 3 16 is 8 dots, less than a band: each band feeds its own 24 dots, no gap.
    rows = black_rows(render_png(column_image_job(), 512))
    assert len(rows) == 72 and rows[-1] - rows[0] == 71
    html = render_html(column_image_job(), 42)
    assert html.count('class="g band" style="height:2ch"') == 3
    # One after the other: no blank text rows between the bands.
    assert re.search(r'(<div class="g band"[^>]*><img[^>]*></div>){3}<div class="l">', html)
    # ESC 2 (1/6 inch, 30 dots at 180 dpi): each band leaves 6 dots of paper, as printed.
    rows = black_rows(render_png(column_image_job(b"\x1b2"), 512))
    assert len(rows) == 72 and rows[-1] - rows[0] == 71 + 2 * 6
    assert render_html(column_image_job(b"\x1b2"), 42).count('style="height:2.5ch"') == 3

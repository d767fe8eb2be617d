"""
The pure Star Line mode / StarPRNT parser: jobs from real Star client libraries, exact lengths,
boundaries, status requests, the other dialect, chunking parity and caps.
"""

from __future__ import annotations

import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from printerd.escpos.parser import CAPTURE_LIMIT, JobParser, ParsedReceipt, StatusQuery
from printerd.star.parser import StarJobParser
from clients import client_job

ESC = b"\x1b"
CUT = ESC + b"d\x00"
CLIENT_JOBS = ["receipt-printer-encoder-star-prnt", "receipt-printer-encoder-star-line",
               "node-thermal-printer-star", "receiptline-starsbcs", "receiptline-starlinesbcs",
               "receiptio-star-landscape"]


def parse(data: bytes, chunk: int | None = None, parser=None) -> list:
    parser = parser or StarJobParser()
    events = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        events += parser.feed(piece)
    return events + parser.close()


def receipts(events: list) -> list[ParsedReceipt]:
    return [e for e in events if isinstance(e, ParsedReceipt)]


def queries(events: list) -> list[bytes]:
    return [e.command for e in events if isinstance(e, StatusQuery)]


def star_tsp_image_job(cut: bool = True) -> bytes:
    """A TSP100 raster job as StarTSPImage (a Star Graphic mode driver library) builds it."""
    import StarTSPImage

    image = Image.new("RGB", (144, 48), "white")
    ImageDraw.Draw(image).rectangle((0, 0, 71, 23), fill="black")
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return bytes(StarTSPImage.imageToRaster(Image.open(buffer), cut=cut))


def assert_no_control_characters(receipt: ParsedReceipt) -> None:
    for line in receipt.text.splitlines():
        assert not any(ord(c) < 0x20 and c != "\t" for c in line), line


@pytest.mark.parametrize("name", CLIENT_JOBS + ["StarTSPImage"])
def test_client_jobs_parse_the_same_whole_and_in_any_chunks(name):
    data = star_tsp_image_job() if name == "StarTSPImage" else client_job(name)
    whole = parse(data)
    assert whole == parse(data, chunk=1)
    assert whole == parse(data, chunk=7)
    found = receipts(whole)
    assert found and sum(r.unknown_commands for r in found) == 0
    for receipt in found:
        assert_no_control_characters(receipt)
        assert receipt.details["dialects"] == {}
    assert data.startswith(b"".join(r.raw for r in found))


@pytest.mark.parametrize("name", ["receipt-printer-encoder-star-prnt",
                                  "receipt-printer-encoder-star-line"])
def test_receipt_printer_encoder_jobs_come_out_whole(name):
    first, second = receipts(parse(client_job(name)))
    assert first.text.splitlines() == [
        " " * 16 + "ExampleMart Ltd.", " " * 14 + "Café Ünïcödé – £5 €7",
        "Underlined and inverted", "BIG", " " * 37 + "Total 14.25"]
    # The library centres and right-aligns with spaces itself.
    assert first.details["line_styles"] == [
        {"line": 0, "align": "left",
         "runs": [{"text": " " * 16}, {"text": "ExampleMart Ltd.", "bold": True}]},
        {"line": 2, "align": "left", "runs": [
            {"text": "Underlined", "underline": 1}, {"text": " and "},
            {"text": "inverted", "invert": True}]},
        {"line": 3, "align": "left", "runs": [{"text": "BIG", "width": 2, "height": 2}]},
    ]
    assert [(b["type"], b["data"]) for b in first.details["barcodes"]] == [
        ("CODE128", "RIO-128"), ("EAN13", "3130630574613")]
    qr, pdf417 = first.details["codes_2d"]
    assert (qr["type"], qr["data"], qr["model"], qr["module_size"], qr["error_correction"]) == (
        "qr", "https://example.com/r/1", "2", 6, "M")
    assert (pdf417["type"], pdf417["data"], pdf417["columns"], pdf417["error_correction"]) == (
        "pdf417", "PDF417 data", 3, 2)
    # The 48 x 48 logo arrives in two 24-dot bands: one image.
    assert first.details["images"] == {"count": 1, "items": [
        {"command": "ESC X", "line": 9, "width": 48, "height": 48}]}
    assert first.details["drawer_kicks"] == [{"pin": 2, "on_ms": 200, "off_ms": 200}]
    assert (first.cut, second.cut, second.text.strip()) == ("partial", "full", "Second receipt")


def test_the_logo_dots_are_kept_for_the_renderers():
    parser = StarJobParser(keep_bitmaps=True)
    first = receipts(parse(client_job("receipt-printer-encoder-star-prnt"), parser=parser))[0]
    (bitmap,) = first.layout.content.bitmaps
    image = Image.frombytes("1", (bitmap.width, bitmap.height), bitmap.data, "raw", "1;I")
    # jobs.mjs draws a 4-dot black frame and a black dot in the middle on white ("1;I": a
    # printed dot reads 0, black).
    assert image.getpixel((1, 1)) == image.getpixel((24, 24)) == image.getpixel((47, 20)) == 0
    assert image.getpixel((10, 10)) == 255


def test_node_thermal_printer_job():
    (receipt,) = receipts(parse(client_job("node-thermal-printer-star")))
    # Its QR code sends the data without Star's "store data" command: a Star printer prints the
    # data as text and has no symbol to print.
    assert receipt.text.splitlines() == ["Star Cafe", "Underlined", "Inverted", "Tall",
                                         "https://example.com/q", "", "Thank you"]
    assert receipt.details["line_styles"][:2] == [
        {"line": 0, "align": "center", "runs": [{"text": "Star Cafe", "bold": True}]},
        {"line": 1, "align": "left", "runs": [{"text": "Underlined", "underline": 1}]}]
    assert receipt.details["barcodes"] == [{"type": "CODE128", "data": "ABC-123", "line": 4}]
    assert [c["type"] for c in receipt.details["codes_2d"]] == ["pdf417"]
    assert receipt.details["images"]["items"] == [
        {"command": "ESC k", "line": 6, "width": 48, "height": 48}]
    assert receipt.details["drawer_kicks"] == [{"pin": 2, "on_ms": 110, "off_ms": 550}]
    assert receipt.cut == "full"


@pytest.mark.parametrize("name, image", [("receiptline-starsbcs", "ESC GS S"),
                                         ("receiptline-starlinesbcs", "ESC k")])
def test_receiptline_jobs(name, image):
    (receipt, *rest) = receipts(parse(client_job(name)))
    assert rest == []
    lines = receipt.text.splitlines()
    assert lines[0].strip() == "ExampleMart"
    assert lines[3] == "─" * 48  # its rule, in Star's CP437 page
    assert "Café au lait" in lines[1] and "3.50" in lines[1]
    assert receipt.details["barcodes"] == [{"type": "EAN13", "data": "1234567890128",
                                            "line": 5}]
    # receiptline draws its QR code as an image.
    assert [(i["command"], i["width"]) for i in receipt.details["images"]["items"]] == [
        (image, 104)]
    assert receipt.cut == "partial"
    assert all(f"{n}\x1b" not in receipt.text for n in "ABRS")


def test_raster_mode_job_is_one_image_cut_per_the_eot_mode():
    (receipt,) = receipts(parse(star_tsp_image_job()))
    # StarTSPImage scales the picture to the full 576 dots.
    assert receipt.details["images"]["items"] == [
        {"command": "ESC * r", "line": 0, "width": 576, "height": 192}]
    assert receipt.cut == "partial"  # the EOT mode's default: feed and partial cut
    (uncut,) = receipts(parse(star_tsp_image_job(cut=False)))  # EOT mode 1: no cut
    assert uncut.cut == "none"


def test_raster_rows_make_the_picture():
    parser = StarJobParser(keep_bitmaps=True)
    (receipt,) = receipts(parse(star_tsp_image_job(), parser=parser))
    (bitmap,) = receipt.layout.content.bitmaps
    image = Image.frombytes("1", (bitmap.width, bitmap.height), bitmap.data, "raw", "1;I")
    # The black rectangle in the top-left quarter, scaled 4 times: printed dots (0, black).
    assert image.getpixel((50, 50)) == 0 and image.getpixel((500, 150)) == 255


def test_an_esc_pos_job_on_a_star_printer_is_recognised_not_printed():
    events = parse(client_job("receipt-printer-encoder-esc-pos"))
    (receipt,) = receipts(events)
    assert receipt.details["dialects"]["ESC/POS"] > 20
    assert_no_control_characters(receipt)
    for payload in ("RIO-128", "3130630574613", "https://example.com/r/1", "PDF417 data"):
        assert payload not in receipt.text
    assert {"Underlined and inverted", "BIG"} <= set(receipt.text.splitlines())
    assert receipt.details["barcodes"] == receipt.details["codes_2d"] == []


@pytest.mark.parametrize("name", CLIENT_JOBS)
def test_star_jobs_on_an_epson_printer_are_recognised_not_printed(name):
    parser = JobParser()
    found = receipts(parse(client_job(name), parser=parser))
    assert sum(r.details["dialects"].get("Star Line mode", 0) for r in found) > 3
    text = "\n".join(r.text for r in found)
    for receipt in found:
        assert_no_control_characters(receipt)
    for payload in ("RIO-128", "https://example.com/r/1", "PDF417 data", "1234567890128",
                    "yS0", "xD", "ABC-123"):
        assert payload not in text


def test_status_requests_in_order_and_split_across_feeds():
    job = (b"\x05" + ESC + b"\x06\x01" + b"A" + b"\x04" + ESC + b"\x1ea\x01" + b"B\n"
           + ESC + b"#*\n\x00" + b"\x17" + ESC + b"\x1eE\x00" + CUT)
    expected = [b"\x05", b"\x1b\x06\x01", b"\x04", b"\x1b\x1ea\x01", b"\x1b#*\n\x00", b"\x17",
                b"\x1b\x1eE\x00"]
    assert queries(parse(job)) == expected
    assert queries(parse(job, chunk=1)) == expected
    (receipt,) = receipts(parse(job))
    assert receipt.text == "AB"


@pytest.mark.parametrize("job", [
    b"", b"\x05", ESC + b"\x06\x01", ESC + b"@" + b"\x04" + ESC + b"@" + b"\x17",
    ESC + b"@\n\n\n" + CUT, CUT + CUT, ESC + b"\x1ea\x01" + b"\x17",
])
def test_jobs_that_print_nothing_make_no_receipt(job):
    assert receipts(parse(job)) == receipts(parse(job, chunk=1)) == []


@pytest.mark.parametrize("cut, kind", [
    (ESC + b"d\x00", "full"), (ESC + b"d0", "full"), (ESC + b"d\x01", "partial"),
    (ESC + b"d1", "partial"), (ESC + b"d\x02", "full"), (ESC + b"d3", "partial"),
])
def test_every_cut_form_ends_a_receipt(cut, kind):
    first, second = receipts(parse(b"A\n" + cut + b"B"))
    assert (first.text, first.cut, second.text, second.cut) == ("A", kind, "B", "none")


def test_a_cut_parameter_out_of_range_is_no_cut():
    (receipt,) = receipts(parse(b"A\n" + ESC + b"d\x07" + b"B\n"))
    assert receipt.text == "A\nB"


@pytest.mark.parametrize("command", [
    ESC + b"K\x03\x00" + b"ABC",
    ESC + b"L\x02\x00" + b"AB",
    ESC + b"X\x02\x00" + b"ABCDEF",
    ESC + b"k\x01\x00" + b"ABCDEFGHIJKLMNOPQRSTUVWX",
    ESC + b"b\x04\x02\x32\x50" + b"CODE39" + b"\x1e",
    ESC + b"\x1dyD1\x00\x05\x00" + b"Hello",
    ESC + b"\x1dxD\x04\x00" + b"PDF4",
    ESC + b"\x1dS\x01\x02\x00\x02\x00\x00" + b"ABCD",
    ESC + b"\x1dxS0\x01\x05\x03" + ESC + b"\x1dyS1\x02",
    ESC + b"#*\n\x00" + ESC + b"?\n\x00",
    ESC + b"D\x08\x10\x00" + ESC + b"B\x04\x00",
    ESC + b"C\x00\x05" + ESC + b"C\x05",
    ESC + b"i\x01\x01" + ESC + b"i\x00\x00" + ESC + b"\x07\x14\x14",
    # Positions: dot 84 is where "before " ends (7 characters of 12 dots), and 0 dots on.
    ESC + b"\x1dA\x54\x00" + ESC + b"\x1dR\x00\x00" + ESC + b"\x1d\x03\x01\x00\x00",
    # Outside page mode these place nothing (ESC GS P 0 would start a page).
    ESC + b"\x1dP3" + b"ABCDEFGH" + ESC + b"\x1dP2\x01" + ESC + b"\x1dP4(\x00"
    + ESC + b"\x1dP5\x01\x00",
    ESC + b"\x1eF\x01" + ESC + b"\x1ea\x00" + ESC + b"\x1ed\x03" + ESC + b"\x1cp\x01\x00",
    ESC + b"*rA" + ESC + b"*rP0\x00" + b"b\x02\x00AB" + ESC + b"*rY24\x00"
    + ESC + b"*rE1\x00" + ESC + b"*rB",
])
def test_payloads_are_skipped_by_exact_length(command):
    (receipt,) = receipts(parse(b"before " + command + b"after\n" + CUT))
    assert receipt.text == "before after"
    assert receipt.unknown_commands == 0 and receipt.details["dialects"] == {}


def test_text_styles_sizes_and_alignment():
    job = (ESC + b"\x1da1" + b"Title\n" + ESC + b"\x1da0"
           + ESC + b"E" + b"bold" + ESC + b"F" + b" " + ESC + b"-1" + b"under" + ESC + b"-0"
           + b" " + ESC + b"4" + b"inv" + ESC + b"5\n"
           + ESC + b"i\x01\x02" + b"tall" + ESC + b"i\x00\x00" + b"\x0e" + b"wide" + b"\x14"
           + ESC + b"W2" + b"w3" + ESC + b"W0" + ESC + b"h\x01" + b"h2" + ESC + b"h0\n"
           + ESC + b"\x0e" + b"hi" + ESC + b"\x14" + ESC + b"\x1eF\x01" + b"fontB\n"
           + ESC + b"\x1da\x02" + CUT + b"right after the cut\n" + CUT)
    first, second = receipts(parse(job))
    assert first.text == "Title\nbold under inv\ntallwidew3h2\nhifontB"
    assert first.details["line_styles"] == [
        {"line": 0, "align": "center", "runs": [{"text": "Title"}]},
        {"line": 1, "align": "left", "runs": [
            {"text": "bold", "bold": True}, {"text": " "}, {"text": "under", "underline": 1},
            {"text": " "}, {"text": "inv", "invert": True}]},
        {"line": 2, "align": "left", "runs": [
            {"text": "tall", "width": 3, "height": 2}, {"text": "wide", "width": 2},
            {"text": "w3", "width": 3}, {"text": "h2", "height": 2}]},
        {"line": 3, "align": "left", "runs": [
            {"text": "hi", "height": 2}, {"text": "fontB", "font": "B"}]},
    ]
    # Alignment, like the style, outlives a cut.
    assert second.details["line_styles"] == [
        {"line": 0, "align": "right", "runs": [{"text": "right after the cut", "font": "B"}]}]


def test_code_pages_international_sets_and_two_byte_mode():
    job = (b"caf\xe9 " + ESC + b"\x1dt\x20" + b"caf\xe9 \x80 " + ESC + b"\x1dt\x01" + b"\x82\n"
           + ESC + b"\x1dt\x02" + b"\xb1\xb2\xb3 " + ESC + b"R2" + b"[]{}\n"
           + ESC + b"@" + b"[ok] " + ESC + b"$1" + "領収書".encode("shift_jis") + ESC + b"$0"
           + b"!\n" + CUT)
    (receipt,) = receipts(parse(job, parser=StarJobParser("shift_jis")))
    # Page 0 is Star's "Normal" page: 0xE9 is its "▒".
    assert receipt.text == "caf▒ café € é\nｱｲｳ ÄÜäü\n[ok] 領収書!"
    assert receipts(parse(job, chunk=1, parser=StarJobParser("shift_jis"))) == [receipt]


def test_a_japanese_star_model_reads_receiptlines_shift_jis_with_the_japanese_set():
    from clients import JAPANESE_LINES, japanese_job, squeezed_lines

    # receiptline's Japanese for a Star printer: ESC $ 1 (Shift JIS Kanji mode) and ESC R 8,
    # whose "¥" replaces the backslash in Kanji mode too.
    job = japanese_job("starmbcs")
    assert b"\x1b$1\x1bR8" in job
    (receipt,) = receipts(parse(job, parser=StarJobParser("shift_jis")))
    assert squeezed_lines(receipt.text) == JAPANESE_LINES
    assert receipts(parse(job, chunk=1, parser=StarJobParser("shift_jis"))) == [receipt]


@pytest.mark.parametrize("encoding, printer_encoding, text", [
    ("gb18030", "gb18030", "收据 点心店 合计 ¥56.00"),
    ("big5", "big5", "收據 台北 餐廳 合計"),
    ("ksc5601", "euc_kr", "영수증 서울 식당 합계 12,000"),
])
def test_receiptlines_chinese_and_korean_for_star_read_right_on_a_printer_starting_in_two_byte(
        encoding, printer_encoding, text):
    from dataclasses import replace

    from clients import receiptline_job

    from printerd.escpos.profiles import DEFAULT_PROFILE

    # receiptline sends no mode command for Star's Chinese and Korean models, whose memory
    # switch puts them in two-byte mode from power-on: two_byte_at_start.
    job = receiptline_job(text + "\n", command="starmbcs", cpl=42, encoding=encoding)
    profile = replace(DEFAULT_PROFILE, two_byte_at_start=True)
    (receipt,) = receipts(parse(job, parser=StarJobParser(printer_encoding, profile=profile)))
    assert " ".join(receipt.text.split()) == text
    (one_byte,) = receipts(parse(job, parser=StarJobParser(printer_encoding)))
    assert " ".join(one_byte.text.split()) != text


def test_esc_p_and_esc_q_are_jis_kanji_mode_on_a_japanese_model_only():
    jis = "領収書".encode("iso2022_jp")[3:-3]  # without the codec's ESC $ B and ESC ( B
    job = ESC + b"p" + jis + ESC + b"q" + b" Total\n" + CUT
    (receipt,) = receipts(parse(job, parser=StarJobParser("shift_jis")))
    assert receipt.text == "領収書 Total"
    assert receipts(parse(job, chunk=1, parser=StarJobParser("shift_jis"))) == [receipt]
    # Models without Japanese characters ignore both: the bytes print as they are.
    (other,) = receipts(parse(job))
    assert other.text == jis.decode("ascii") + " Total"


def test_an_image_and_its_line_feed_leave_no_blank_line():
    band = ESC + b"k\x01\x00" + b"\xff" * 24
    (receipt,) = receipts(parse(b"top\n" + band + b"\n" + band + b"\n" + b"bottom\n" + CUT))
    assert receipt.text == "top\nbottom"
    assert receipt.details["images"]["items"] == [
        {"command": "ESC k", "line": 1, "width": 8, "height": 48}]


def test_drawer_kicks_and_pulse_width():
    job = b"Sale\n\x07" + ESC + b"\x07\x05\x0a" + b"\x1a" + CUT
    (receipt,) = receipts(parse(job))
    assert receipt.details["drawer_kicks"] == [{"pin": 2, "on_ms": 200, "off_ms": 200},
                                               {"pin": 5, "on_ms": 50, "off_ms": 100}]
    (last,) = receipts(parse(b"Sale\n\x1c"))  # FS at the very end: a kick, not ESC/POS
    assert last.details["drawer_kicks"] == [{"pin": 2, "on_ms": 200, "off_ms": 200}]


def test_esc_pos_commands_are_skipped_and_dle_eot_gets_no_answer():
    job = (b"\x1d!\x11" + b"A" + b"\x1dv0\x00\x01\x00\x02\x00\xff\xff" + b"\x10\x04\x01"
           + b"\x1b!\x08" + b"B" + b"\x1bp\x00\x19\xfa" + b"C\n" + b"\x1dV\x00" + CUT)
    events = parse(job)
    assert queries(events) == []
    assert queries(parse(b"\x04" + b"\x05")) == [b"\x04", b"\x05"]  # Star's own are answered
    (receipt,) = receipts(events)
    assert (receipt.text, receipt.details["dialects"]) == ("ABC", {"ESC/POS": 6})


def test_unknown_commands_are_counted_not_fatal():
    (receipt,) = receipts(parse(ESC + b"\x01" + b"text " + ESC + b"\x1d\x01" + b"more\n" + CUT))
    assert receipt.text == "text more"
    assert receipt.details["unknown_commands"] == {"ESC 0x01": 1, "ESC GS 0x01": 1}


def test_huge_length_fields_stream_without_buffering():
    parser = StarJobParser()
    parser.feed(b"x" + ESC + b"\x1dS\x01\xff\xff\xff\xff\x00")  # 65535 x 65535 bytes
    for _ in range(8):
        assert parser.feed(b"\x00" * 65536) == []
        assert len(parser._buffer) == 0  # noqa: SLF001 - the cap is the point of the test
    (receipt,) = receipts(parser.close(truncated=True))
    assert receipt.truncated and receipt.text == "x"
    assert receipt.details["images"]["items"][0]["height"] == 65535


def test_a_job_ending_inside_a_command_is_truncated():
    (receipt,) = receipts(parse(b"x\n" + ESC + b"k\x10\x00" + b"\x00" * 10))
    assert receipt.truncated


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=1, max_value=64))
def test_arbitrary_bytes_never_raise_and_chunking_never_matters(data, chunk):
    assert parse(data) == parse(data, chunk=chunk)


STAR_PIECES = [
    b"text ", b"\n", CUT, ESC + b"@", b"\x05", b"\x04", b"\x17", ESC + b"\x06\x01",
    ESC + b"k\xff\xff", ESC + b"X\xff\xff", ESC + b"\x1dS\x01\xff\xff\xff\xff\x00",
    ESC + b"\x1dyD1\x00\xff\xff", ESC + b"\x1dxD\xff\xff", ESC + b"b\x06\x02\x03\x50",
    ESC + b"*rA", ESC + b"*rB", b"b\xff\xff", ESC + b"#", ESC + b"D", b"\x1d(k\xff\xff",
    b"\x1d8L\xff\xff\xff\x7f", b"\x1c", b"\x10\x04\x01", b"\x00" * 300, b"\xff" * 10,
    ESC + b"\x1d", ESC + b"\x1e", ESC + b"\x0c\x00",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(STAR_PIECES), max_size=40), st.integers(1, 64))
def test_mutated_jobs_never_buffer_past_the_capture_limit(parts, chunk):
    parser = StarJobParser()
    events = []
    for part in parts:
        events += parser.feed(part)
        assert len(parser._buffer) <= CAPTURE_LIMIT + 16  # noqa: SLF001
    events += parser.close()
    assert events == parse(b"".join(parts), chunk=chunk)


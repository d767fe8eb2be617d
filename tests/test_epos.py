"""
ePOS-Print documents to receipts (pure parts): reading the XML safely, translating each element to
the ESC/POS an Epson printer prints it with, the text encoder's round trip through the raw port's
parser, and the status numbers of Epson's response.

Documents come from the real ePOS-Print XML builder on PyPI (epos-print-xml, MIT: it installs as
the ``src.epos`` package) where it builds the element, and from the examples of Epson's
"ePOS-Print XML User's Manual" for the elements it does not build (symbol, pulse, sound, page,
command: those documents are written here after the manual's samples).
"""

from __future__ import annotations

import base64
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from src.epos.constants import Align, BarcodeType, Font
from src.epos.document import EposDocument
from src.epos.elements import Barcode, Cut, Feed, Image, Logo, Text
from src.epos.printer import _add_soap_enveloppe as soap_envelope

from printerd.epos.document import SchemaError, find_documents, parse_xml, read_request
from printerd.epos.encoder import TextEncoder
from printerd.epos.response import (
    EPTR_AUTOMATICAL, EPTR_COVER_OPEN, EPTR_REC_EMPTY, printed, printer_status, refusal,
    soap_response,
)
from printerd.epos.translate import escpos_of_part, parse_translation, translate
from printerd.escpos.parser import JobParser, ParsedReceipt
from printerd.escpos.profiles import DEFAULT_PROFILE
from printerd.escpos.status import PAPER_NEAR_END, PAPER_OUT, PrinterState
from printerd.render.document import ReceiptPrinter

EPOS_NS = "http://www.epson-pos.com/schemas/2011/03/epos-print"


def built(*elements) -> bytes:
    """A SOAP request as the epos-print-xml builder and client make it."""
    document = EposDocument()
    for element in elements:
        document.add_body(element)
    return soap_envelope(document.body_to_str()).encode()


def written(body: str) -> bytes:
    """A SOAP request around a document written after the manual's samples."""
    return (f'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
            f'<epos-print xmlns="{EPOS_NS}">{body}</epos-print></s:Body></s:Envelope>').encode()


def receipts_of(request: bytes, encoding: str = "gb18030") -> list[ParsedReceipt]:
    return parse_translation(translate(read_request(request).document, encoding).escpos,
                             encoding)


def one_receipt(request: bytes) -> ParsedReceipt:
    receipts = receipts_of(request)
    assert len(receipts) == 1, receipts
    return receipts[0]


# -- reading the XML -----------------------------------------------------------------------------

def test_a_built_request_gives_its_document_and_the_soap_header_parameters():
    body = (b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Header>'
            b'<parameter xmlns="' + EPOS_NS.encode() + b'"><devid>kitchen</devid>'
            b'<timeout>10000</timeout><printjobid>ABC123</printjobid></parameter></s:Header>'
            b'<s:Body><epos-print xmlns="' + EPOS_NS.encode() + b'"><text>Hi&#10;</text>'
            b'</epos-print></s:Body></s:Envelope>')
    request = read_request(body)
    assert (request.devid, request.timeout, request.printjobid) == ("kitchen", "10000", "ABC123")
    assert request.document.children[0].text == "Hi\n"


@pytest.mark.parametrize("body", [
    # The "billion laughs": entity definitions need a DOCTYPE, which is refused.
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>'
    b'<epos-print xmlns="' + EPOS_NS.encode() + b'"><text>&lol2;</text></epos-print>',
    # An external entity (a file on the printer's disk).
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    b'<epos-print xmlns="' + EPOS_NS.encode() + b'"><text>&xxe;</text></epos-print>',
    b'<!DOCTYPE epos-print SYSTEM "http://127.0.0.1:1/x.dtd"><epos-print/>',
    b'<epos-print><text>unclosed</epos-print>',
    b'',
    b'\xff\xfe not xml',
    b'<html><body>hello</body></html>',
    b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>',
    b'<a>' * 40 + b'</a>' * 40,
])
def test_what_is_not_an_epos_print_request_is_a_schema_error(body):
    with pytest.raises(SchemaError):
        read_request(body)


def test_the_element_count_is_capped_before_the_tree_grows():
    with pytest.raises(SchemaError, match="more than 10 elements"):
        parse_xml(b"<epos-print>" + b"<feed/>" * 11 + b"</epos-print>", max_elements=10)


def test_documents_are_found_in_order_wherever_they_sit():
    root = parse_xml(
        b'<PrintRequestInfo><ePOSPrint><PrintData><epos-print xmlns="' + EPOS_NS.encode()
        + b'"><text>one</text></epos-print></PrintData></ePOSPrint><ePOSPrint><PrintData>'
        b'<epos-print xmlns="' + EPOS_NS.encode() + b'"><text>two</text></epos-print>'
        b'</PrintData></ePOSPrint></PrintRequestInfo>')
    assert [d.children[0].text for d in find_documents(root)] == ["one", "two"]


# -- text --------------------------------------------------------------------------------------------

def test_text_attributes_become_the_receipts_line_styles():
    receipt = one_receipt(built(
        Text("Café Ünïcode €\n", align=Align.CENTER, bold=True, double_width=True),
        Text("Total 9.50\n", underline=True, width=3, height=2, bold=False),
        Text("small\n", font=Font.B, width=1, height=1, underline=False, align=Align.RIGHT),
        Cut()))
    assert receipt.text == "Café Ünïcode €\nTotal 9.50\nsmall"
    assert receipt.cut == "partial"
    styles = receipt.details["line_styles"]
    assert styles[0] == {"line": 0, "align": "center",
                         "runs": [{"text": "Café Ünïcode €", "bold": True, "width": 2}]}
    assert styles[1]["runs"] == [{"text": "Total 9.50", "underline": 1, "width": 3, "height": 2}]
    assert styles[2] == {"line": 2, "align": "right", "runs": [{"text": "small", "font": "B"}]}


def test_reverse_and_the_manuals_text_sample():
    # After the manual's <text> samples: attributes alone set the printer, then text prints.
    receipt = one_receipt(written(
        '<text lang="en" smooth="true"/><text reverse="true">INVERSE</text>'
        '<text reverse="false">&#10;plain&#10;</text><feed unit="30"/><cut type="no_feed"/>'))
    assert receipt.text == "INVERSE\nplain"
    assert receipt.details["line_styles"][0]["runs"] == [{"text": "INVERSE", "invert": True}]


@settings(max_examples=200, deadline=None)
@given(st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40),
       st.sampled_from(["en", "ja", "zh-cn", "multi"]))
def test_encoded_text_reads_back_as_the_same_characters(text, lang):
    encoder = TextEncoder("gb18030")
    data = encoder.encode(text, lang) + b"\n\x1dV\x00"
    parser = JobParser("gb18030")
    receipts = [e for e in parser.feed(data) + parser.close() if isinstance(e, ParsedReceipt)]
    printed_text = receipts[0].text if receipts else ""
    expected = text.rstrip() if not encoder.substituted else None
    if expected is not None:
        # Trailing spaces and blank lines are not part of a receipt's text.
        assert printed_text == "\n".join(line.rstrip() for line in expected.split("\n")).rstrip()
    else:
        assert printed_text.count("?") >= encoder.substituted


def test_japanese_text_goes_out_in_the_printers_two_byte_encoding():
    encoder = TextEncoder("shift_jis")
    data = encoder.encode("領収書 No.1", "ja")
    assert data.startswith(b"\x1c&") and "領収書".encode("shift_jis") in data
    receipts = receipts_of(written('<text lang="ja">領収書 No.1&#10;</text><cut/>'), "shift_jis")
    assert receipts[0].text == "領収書 No.1"


def test_a_document_for_a_printer_that_starts_in_two_byte_mode_is_read_back_as_written():
    chinese = replace(DEFAULT_PROFILE, two_byte_at_start=True)
    document = read_request(written(
        '<text lang="en">Café 9.50&#10;</text><text lang="zh-cn">点心&#10;</text><cut/>')).document
    translation = translate(document, "gb18030", two_byte_at_start=True)
    (receipt,) = parse_translation(translation.escpos, "gb18030", profile=chinese)
    assert receipt.text == "Café 9.50\n点心"
    assert escpos_of_part(document, 0, ReceiptPrinter(profile=chinese)) == receipt.raw
    # Translated as for a printer that starts in one-byte mode, the "é" is read as the first
    # half of a two-byte character.
    unaware = translate(document, "gb18030").escpos
    assert parse_translation(unaware, "gb18030", profile=chinese)[0].text != receipt.text
    # Chinese first needs no FS &: the printer is in two-byte mode from ESC @ on.
    chinese_first = read_request(written('<text lang="zh-cn">点心&#10;</text><cut/>')).document
    assert translate(chinese_first, "gb18030", two_byte_at_start=True).escpos.startswith(
        b"\x1b@" + "点心".encode("gb18030"))


# -- paper, graphics, codes ---------------------------------------------------------------------

def test_an_image_prints_as_raster_bands_the_parser_keeps_whole():
    width, height = 512, 2200  # an Odoo receipt: one image, the whole receipt
    rows = bytearray(width // 8 * height)
    for y in range(0, height, 2):
        rows[y * (width // 8)] = 0x80
    image = Image(width=width, height=height, text=base64.b64encode(bytes(rows)).decode(),
                  align=Align.CENTER)
    receipt = one_receipt(built(image, Cut()))
    assert receipt.text == ""
    items = receipt.details["images"]["items"]
    assert sum(item["height"] for item in items) == height
    assert all(item["width"] == width for item in items)
    parsed = parse_translation(translate(read_request(built(image, Cut())).document).escpos,
                               keep_bitmaps=True)[0]
    assert all(bitmap is not None for bitmap in parsed.layout.content.bitmaps)


def test_the_odoo_shape_of_document_prints_one_image_and_cuts():
    # Odoo's ePOS template: <image width height align="center">base64</image><cut type="feed"/>
    data = base64.b64encode(b"\xff" * (64 * 10)).decode()
    receipt = one_receipt(written(f'<image width="512" height="10" align="center">{data}</image>'
                                  '<cut type="feed"/>'))
    assert receipt.details["images"] == {"count": 1, "items": [
        {"command": "GS v 0", "width": 512, "height": 10, "line": 0}]}
    assert receipt.cut == "partial"


def test_an_image_element_outside_the_namespace_prints_nothing():
    # Odoo strips xmlns="" from its elements because a printer ignores them.
    data = base64.b64encode(b"\xff" * 64).decode()
    document = read_request(written(f'<image xmlns="" width="512" height="1">{data}</image>'
                                    '<cut xmlns="" type="feed"/>')).document
    translation = translate(document)
    assert translation.skipped == {"image": 1, "cut": 1}
    assert parse_translation(translation.escpos) == []


def test_barcodes_and_2d_symbols_are_recorded_as_data():
    receipt = one_receipt(built(
        Barcode(BarcodeType.CODE128, "{BNo.123", height=60, width=2),
        Barcode(BarcodeType.EAN13, "201234567890"), Cut()))
    assert [(b["type"], b["data"]) for b in receipt.details["barcodes"]] == [
        ("CODE128", "No.123"), ("EAN13", "201234567890")]
    receipt = one_receipt(written(
        '<symbol type="qrcode_model_2" level="level_h" width="5">https://example.com/r?id=42'
        '</symbol><symbol type="pdf417_standard" level="level_2">PDF\\x41\\\\</symbol><cut/>'))
    qr, pdf417 = receipt.details["codes_2d"]
    assert (qr["type"], qr["data"], qr["model"], qr["module_size"], qr["error_correction"]) == (
        "qr", "https://example.com/r?id=42", "2", 5, "H")
    assert (pdf417["type"], pdf417["data"]) == ("pdf417", "PDFA\\")


def test_pulse_feed_logo_sound_command_and_page():
    receipt = one_receipt(written(
        '<pulse drawer="drawer_2" time="pulse_200"/><feed line="3"/><logo key1="48" key2="49"/>'
        '<sound pattern="pattern_a" repeat="1"/><command>1b 45 01</command><text>bold</text>'
        '<feed/><page><area x="0" y="0" width="500" height="200"/><direction dir="left_to_right"/>'
        '<position x="50" y="30"/><text>ABCDE</text></page><cut type="full_cut_feed"/>'))
    assert receipt.details["drawer_kicks"] == [{"pin": 5, "on_ms": 200, "off_ms": 200}]
    assert receipt.text.split("\n")[-1].strip() == "ABCDE"
    assert receipt.details["line_styles"][0]["runs"] == [{"text": "bold", "bold": True}]
    assert receipt.details["unknown_commands"] == {}
    assert receipt.cut == "full"


def test_a_feed_past_255_goes_out_as_several_commands_of_one_byte_each():
    document = read_request(written('<text>a&#10;</text><feed unit="600"/><feed line="300"/>'
                                    '<text>b&#10;</text><cut/>')).document
    escpos = translate(document).escpos
    assert b"\x1bJ\xff\x1bJ\xff\x1bJ\x5a" + b"\x1bd\xff\x1bd\x2d" in escpos
    (receipt,) = parse_translation(escpos)
    assert receipt.text.startswith("a\n") and receipt.text.endswith("\nb")


def test_each_cut_ends_a_receipt_and_renderers_get_each_parts_bytes():
    request = built(Text("first\n"), Cut(), Text("second\n"), Feed(1), Cut())
    assert [r.text for r in receipts_of(request)] == ["first", "second"]
    document = read_request(request).document
    assert b"second" in escpos_of_part(document, 1) and b"first" not in escpos_of_part(document, 1)
    assert escpos_of_part(document, 5) == b""


@pytest.mark.parametrize("body", [
    '<text align="middle">x</text>', '<text width="9">x</text>', '<text em="yes">x</text>',
    '<barcode type="code999">1</barcode>', '<barcode type="code128"></barcode>',
    '<image width="8">AA==</image>', '<image width="8" height="1">not base64!</image>',
    '<symbol type="qr">x</symbol>', '<command>zz</command>', '<teleport/>',
    '<position x="1" y="1"/>', '<page><page/></page>', '<text lang="de">Hallo</text>',
])
def test_values_the_schema_does_not_allow_are_schema_errors(body):
    with pytest.raises(SchemaError):
        translate(read_request(written(body)).document)


def test_a_logo_built_by_the_library_prints_the_nv_graphic():
    receipt = one_receipt(built(Logo(key1=48, key2=48), Text("x\n"), Cut()))
    assert receipt.text == "x"


# -- the response ----------------------------------------------------------------------------------

def test_status_numbers_are_those_of_epsons_documented_responses():
    # A printer that printed with its drawer shut: status="251658262" in Epson's samples; the
    # same with the paper near its end: status="251854870" (Server Direct Print manual).
    assert printed(PrinterState()).status == 251658262
    assert printed(PrinterState(paper=PAPER_NEAR_END)).status == 251854870


@pytest.mark.parametrize("state, code, bits", [
    (PrinterState(cover_open=True), EPTR_COVER_OPEN, 0x08 | 0x20),
    (PrinterState(paper=PAPER_OUT), EPTR_REC_EMPTY, 0x08 | 0x00080000),
    (PrinterState(online=False), EPTR_AUTOMATICAL, 0x08 | 0x00004000),
    (PrinterState(drawer_open=True), None, 0),
])
def test_a_printer_that_cannot_print_refuses_with_epsons_code(state, code, bits):
    assert refusal(state) == code
    status = printer_status(state)
    assert status & bits == bits
    assert bool(status & 0x04) == (not state.drawer_open)  # pin 3 HIGH: drawer shut


def test_the_soap_response_carries_the_print_job_id_when_one_was_given():
    body = soap_response(printed(PrinterState()), "local_printer", "ABC123")
    root = parse_xml(body)
    header, answer = root.children[0], root.children[1].children[0]
    assert [c.text for c in header.children[0].children] == ["local_printer", "ABC123"]
    assert answer.attributes == {"success": "true", "code": "", "status": "251658262",
                                 "battery": "0"}


def test_epos_lines_a_client_in_a_loop_causes_are_ten_a_second_then_counted():
    from twisted.internet.task import Clock
    from printerd.epos.service import EposPrinting
    from support import capturing_logger

    clock = Clock()
    printing = EposPrinting(clock, store=None, printers=[])  # type: ignore[arg-type]
    logger, lines = capturing_logger()
    printing.log = printing.unknown_device_lines.log = printing.refused_lines.log = logger
    for n in range(40):
        printing.unknown_device(f"printer-{n % 3}")
        printing.schema_error(SchemaError("<epos-print> has no such element <x>"), "10.0.0.7:1")
    assert len(lines) == 20  # ten of each
    clock.advance(1)
    assert sorted(lines[20:]) == [
        "30 more ePOS-Print documents for unknown devices (by devid: printer-0 x10, printer-1"
        " x10, printer-2 x10): over 10 ePOS-Print documents for unknown devices in 1.0s, the"
        " rest are counted in one line",
        "30 more ePOS-Print documents refused (by error: <epos-print> has no such element <x>"
        " x30): over 10 ePOS-Print documents refused in 1.0s, the rest are counted in one line"]
    assert printing.documents_total["DeviceNotFound"] == 40
    clock.advance(1)
    printing.unknown_device("d" * 60_000)  # a line is never the size of a request
    assert len(lines[-1]) < 300 and "d" * 200 in lines[-1]

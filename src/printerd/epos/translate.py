"""
An ``<epos-print>`` document as the ESC/POS bytes an Epson printer would print it with.

printerd turns every ePOS-Print document into ESC/POS and hands that to the same parser the raw
port uses, so its receipts have the same JSON (text, line styles, barcodes, 2D codes, images,
drawer kicks) and the same renderings. The document itself stays the receipt's raw data; the
renderers translate it again (``escpos_of_part``). Pure: an element tree in, bytes out.

Each element maps to the commands its attributes name (Epson's ePOS-Print XML reference):
``text`` (lang, font, smooth, dw/dh, width/height, reverse, ul, em, color, align, rotate,
linespc, x, y) to ESC M, GS b, GS !, GS B, ESC -, ESC E, ESC r, ESC a, ESC V, ESC 3, ESC $,
GS $ and the characters (``encoder``); ``feed`` to LF, ESC J, ESC d, ESC 3, FS ( L; ``image`` to
GS v 0 raster images; ``logo`` to GS ( L (NV graphics); ``barcode`` to GS H/f/w/h + GS k;
``symbol`` to GS ( k; ``page`` and its ``area``/``direction``/``position`` to ESC L, ESC W,
ESC T, ESC $/GS $ and FF; ``cut`` to GS V; ``pulse`` to ESC p; ``sound`` to ESC ( A; ``reset``
to ESC @; ``command`` passes its hexadecimal bytes through. Elements that draw nothing a
receipt keeps (``layout``, ``recovery``, ruled lines, batch rotation) are skipped and counted.

Attribute values outside the schema raise ``SchemaError``, as the printer answers a document
that does not validate. Elements outside the ePOS-Print namespace are skipped and counted: a
printer prints nothing for them (Odoo's ePOS code notes that an ``<image xmlns="">`` is
answered with success and never printed).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional, TypeVar

from printerd.escpos.codepages import DEFAULT_TWO_BYTE_ENCODING
from printerd.epos.document import Element, SchemaError, find_documents, parse_xml
from printerd.epos.encoder import TextEncoder
from printerd.escpos.parser import CAPTURE_LIMIT, ParsedReceipt
from printerd.escpos.profiles import DEFAULT_PROFILE, PrinterProfile
from printerd.render.document import DEFAULT_PRINTER, ReceiptPrinter, parse_job

ESC, GS, FS = b"\x1b", b"\x1d", b"\x1c"
T = TypeVar("T")

ALIGN = {"left": 0, "center": 1, "right": 2}
FONTS = {"font_a": 0, "font_b": 1, "font_c": 2, "font_d": 3, "font_e": 4,
         "special_a": 97, "special_b": 98}
COLORS = {"none": -1, "color_1": 0, "color_2": 1, "color_3": 2, "color_4": 3}
LANGUAGES = frozenset({"en", "ja", "zh-cn", "zh-tw", "ko", "th", "vi", "multi"})
CUTS = {"no_feed": b"\x1dV\x01", "feed": b"\x1dVB\x00", "reserve": b"\x1dVh\x00",
        "full_cut_no_feed": b"\x1dV\x00", "full_cut_feed": b"\x1dVA\x00",
        "full_cut_reserve": b"\x1dVg\x00"}
FEED_POSITIONS = {"peeling": 65, "cutting": 66, "current_tof": 67, "next_tof": 68}
DRAWERS = {"drawer_1": 0, "drawer_2": 1}
PULSES = {f"pulse_{ms}": ms for ms in (100, 200, 300, 400, 500)}
SOUND_PATTERNS = {"pattern_none": 0, "pattern_a": 1, "pattern_b": 2, "pattern_c": 3,
                  "pattern_d": 4, "pattern_e": 5, "error": 6, "paper_end": 7,
                  **{f"pattern_{n}": 7 + n for n in range(1, 11)}}
HRI = {"none": 0, "above": 1, "below": 2, "both": 3}
HRI_FONTS = {"font_a": 0, "font_b": 1, "font_c": 2, "font_d": 3, "font_e": 4}
BARCODES = {"upc_a": 65, "upc_e": 66, "ean13": 67, "jan13": 67, "ean8": 68, "jan8": 68,
            "code39": 69, "itf": 70, "codabar": 71, "code93": 72, "code128": 73,
            "gs1_128": 74, "gs1_databar_omnidirectional": 75, "gs1_databar_truncated": 76,
            "gs1_databar_limited": 77, "gs1_databar_expanded": 78, "code128_auto": 73}
# 2D symbols: type -> (GS ( k symbol number cn, the model/mode setting (fn, n) or None).
SYMBOLS: dict[str, tuple[int, Optional[tuple[int, int]]]] = {
    "pdf417_standard": (48, (70, 0)), "pdf417_truncated": (48, (70, 1)),
    "qrcode_model_1": (49, (65, 49)), "qrcode_model_2": (49, (65, 50)),
    "qrcode_micro": (49, (65, 51)),
    **{f"maxicode_mode_{n}": (50, (65, 48 + n)) for n in range(2, 7)},
    "gs1_databar_stacked": (51, (71, 72)), "gs1_databar_stacked_omnidirectional": (51, (71, 73)),
    "gs1_databar_expanded_stacked": (51, (71, 76)),
    "azteccode_fullrange": (53, (66, 0)), "azteccode_compact": (53, (66, 1)),
    "datamatrix_square": (54, (66, 0)), "datamatrix_rectangle_8": (54, (66, 1)),
    "datamatrix_rectangle_12": (54, (66, 1)), "datamatrix_rectangle_16": (54, (66, 1)),
}
QR_LEVELS = {"level_l": 48, "level_m": 49, "level_q": 50, "level_h": 51, "default": 49}
PDF417_LEVELS = {**{f"level_{n}": 48 + n for n in range(9)}, "default": 49}
DIRECTIONS = {"left_to_right": 0, "bottom_to_top": 1, "right_to_left": 2, "top_to_bottom": 3}
# Known elements that leave nothing a receipt keeps.
SKIPPED = frozenset({"layout", "recovery", "hline", "vline-begin", "vline-end",
                     "rotate-begin", "rotate-end", "line", "rectangle"})
PAGE_ONLY = frozenset({"area", "direction", "position", "line", "rectangle"})


@dataclass
class Translation:
    """The ESC/POS bytes of a document, and what did not make it to paper."""

    escpos: bytes
    skipped: Counter[str] = field(default_factory=Counter)  # element names not printed
    substituted: int = 0  # characters printed as "?"


def _boolean(element: Element, name: str) -> Optional[bool]:
    value = element.attributes.get(name)
    if value is None:
        return None
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise SchemaError(f"<{element.name} {name}=\"{value}\">: must be true or false")


def _in_steps(command: bytes, amount: int) -> bytes:
    """``command n`` as many times as it takes to feed ``amount``: n is one byte, at most 255."""
    return b"".join(command + bytes([min(left, 255)]) for left in range(amount, 0, -255))


def _integer(element: Element, name: str, low: int, high: int) -> Optional[int]:
    value = element.attributes.get(name)
    if value is None:
        return None
    if not value.strip().isdigit() or not low <= int(value) <= high:
        raise SchemaError(f"<{element.name} {name}=\"{value}\">: must be {low} to {high}")
    return int(value)


def _integer_or(element: Element, name: str, low: int, high: int, default: int) -> int:
    value = _integer(element, name, low, high)
    return default if value is None else value


def _choice(element: Element, name: str, choices: Mapping[str, T]) -> Optional[T]:
    value = element.attributes.get(name)
    if value is None:
        return None
    if value not in choices:
        raise SchemaError(f"<{element.name} {name}=\"{value}\">: must be one of "
                          + ", ".join(sorted(choices)))
    return choices[value]


def _choice_or(element: Element, name: str, choices: Mapping[str, T], default: T) -> T:
    value = _choice(element, name, choices)
    return default if value is None else value


def _u16(value: int) -> bytes:
    return bytes([value & 0xFF, value >> 8 & 0xFF])


_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|\\)")


def unescape(text: str, encoding: str) -> bytes:
    """Barcode and symbol data: ``\\xHH`` is byte HH, ``\\\\`` a backslash (Epson's escapes)."""
    out = bytearray()
    position = 0
    for match in _ESCAPE.finditer(text):
        out += text[position:match.start()].encode(encoding, "replace")
        escape = match.group(1)
        out += b"\\" if escape == "\\" else bytes([int(escape[1:], 16)])
        position = match.end()
    out += text[position:].encode(encoding, "replace")
    return bytes(out)


class _Translator:
    def __init__(self, namespace: str, two_byte_encoding: str, two_byte_at_start: bool) -> None:
        self.namespace = namespace
        self.out = bytearray()
        self.encoder = TextEncoder(two_byte_encoding, two_byte_at_start)
        self.skipped: Counter[str] = Counter()
        self.in_page = False
        self._reset_state()

    def _reset_state(self) -> None:
        self.lang = "en"
        self.width = self.height = 1

    def element(self, element: Element) -> None:
        if element.namespace != self.namespace:
            self.skipped[element.name] += 1
            return
        handler = _HANDLERS.get(element.name)
        if handler is None:
            if element.name in SKIPPED:
                self.skipped[element.name] += 1
                return
            raise SchemaError(f"<{element.name}> is not an ePOS-Print element")
        if element.name in PAGE_ONLY and not self.in_page:
            raise SchemaError(f"<{element.name}> belongs inside <page>")
        handler(self, element)

    # -- text ----------------------------------------------------------------------------------

    def text(self, element: Element) -> None:
        out = self.out
        size_changed = False
        for name in element.attributes:
            if name == "lang":
                lang = element.attributes[name]
                if lang not in LANGUAGES:
                    raise SchemaError(f"<text lang=\"{lang}\">: not a language ePOS-Print knows")
                self.lang = lang
            elif name == "font":
                out += ESC + b"M" + bytes([_choice_or(element, name, FONTS, 0)])
            elif name == "smooth":
                out += GS + b"b" + bytes([int(bool(_boolean(element, name)))])
            elif name in ("dw", "dh"):
                multiple = 2 if _boolean(element, name) else 1
                if name == "dw":
                    self.width = multiple
                else:
                    self.height = multiple
                size_changed = True
            elif name in ("width", "height"):
                multiple = _integer_or(element, name, 1, 8, 1)
                if name == "width":
                    self.width = multiple
                else:
                    self.height = multiple
                size_changed = True
            elif name == "reverse":
                out += GS + b"B" + bytes([int(bool(_boolean(element, name)))])
            elif name == "ul":
                out += ESC + b"-" + bytes([int(bool(_boolean(element, name)))])
            elif name == "em":
                out += ESC + b"E" + bytes([int(bool(_boolean(element, name)))])
            elif name == "color":
                color = _choice_or(element, name, COLORS, 0)
                if color >= 0:  # "none": nothing to select
                    out += ESC + b"r" + bytes([color])
            elif name == "align":
                out += ESC + b"a" + bytes([_choice_or(element, name, ALIGN, 0)])
            elif name == "rotate":
                out += ESC + b"V" + bytes([int(bool(_boolean(element, name)))])
            elif name == "linespc":
                out += ESC + b"3" + bytes([_integer_or(element, name, 0, 255, 0)])
            elif name == "x":
                out += ESC + b"$" + _u16(_integer_or(element, name, 0, 65535, 0))
            elif name == "y":
                y = _integer_or(element, name, 0, 65535, 0)
                if self.in_page:
                    out += GS + b"$" + _u16(y)
        if size_changed:
            out += GS + b"!" + bytes([(self.width - 1) << 4 | (self.height - 1)])
        if element.text:
            out += self.encoder.encode(element.text, self.lang)

    # -- paper -----------------------------------------------------------------------------------

    def feed(self, element: Element) -> None:
        out = self.out
        given = False
        linespc = _integer(element, "linespc", 0, 255)
        if linespc is not None:
            out += ESC + b"3" + bytes([linespc])
            given = True
        unit = _integer(element, "unit", 0, 65535)
        if unit is not None:
            out += _in_steps(ESC + b"J", unit)
            given = True
        line = _integer(element, "line", 0, 65535)
        if line is not None:
            out += _in_steps(ESC + b"d", line)
            given = True
        position = _choice(element, "pos", FEED_POSITIONS)
        if position is not None:
            out += FS + b"(L\x02\x00" + bytes([position, 48])
            given = True
        if not given:
            out += b"\n"

    def cut(self, element: Element) -> None:
        self.out += _choice_or(element, "type", CUTS, CUTS["feed"])

    def pulse(self, element: Element) -> None:
        drawer = _choice_or(element, "drawer", DRAWERS, 0)
        on = _choice_or(element, "time", PULSES, 100) // 2
        self.out += ESC + b"p" + bytes([drawer, on, on])

    def sound(self, element: Element) -> None:
        pattern = _choice_or(element, "pattern", SOUND_PATTERNS, 1)
        repeat = _integer_or(element, "repeat", 0, 255, 1)
        cycle = _integer_or(element, "cycle", 1000, 25500, 1000) // 100
        self.out += ESC + b"(A\x04\x00\x30" + bytes([pattern, repeat, cycle])

    def reset(self, element: Element) -> None:
        self.out += ESC + b"@"
        self.encoder.reset()
        self._reset_state()

    def command(self, element: Element) -> None:
        hexadecimal = "".join(element.text.split())
        try:
            data = bytes.fromhex(hexadecimal)
        except ValueError:
            raise SchemaError("<command>: must be hexadecimal bytes") from None
        self.out += data

    # -- graphics ----------------------------------------------------------------------------------

    def _align(self, element: Element) -> None:
        align = _choice(element, "align", ALIGN)
        if align is not None:
            self.out += ESC + b"a" + bytes([align])

    def image(self, element: Element) -> None:
        width = _integer(element, "width", 0, 65535)
        height = _integer(element, "height", 0, 65535)
        if width is None or height is None:
            raise SchemaError("<image> needs width and height")
        mode = element.attributes.get("mode", "mono")
        if mode not in ("mono", "gray16"):
            raise SchemaError(f"<image mode=\"{mode}\">: must be mono or gray16")
        color = _choice_or(element, "color", COLORS, 0)
        self._align(element)
        try:
            data = base64.b64decode("".join(element.text.split()), validate=True)
        except (binascii.Error, ValueError):
            raise SchemaError("<image>: the content must be base64") from None
        if color < 0 or width == 0 or height == 0:
            return
        row_bytes = (width + 7) // 8
        if mode == "gray16":
            data = _gray16_to_mono(data, width, height)
        data = data[:row_bytes * height].ljust(row_bytes * height, b"\x00")
        # Bands small enough for the parser to keep whole, so the renderers draw every dot.
        rows = max(1, min(65535, (CAPTURE_LIMIT - 8) // row_bytes))
        for top in range(0, height, rows):
            band = min(rows, height - top)
            self.out += (GS + b"v0\x00" + _u16(row_bytes) + _u16(band)
                         + data[top * row_bytes:(top + band) * row_bytes])

    def logo(self, element: Element) -> None:
        key1 = _integer(element, "key1", 0, 255)
        key2 = _integer(element, "key2", 0, 255)
        if key1 is None or key2 is None:
            raise SchemaError("<logo> needs key1 and key2")
        self._align(element)
        self.out += GS + b"(L\x06\x00\x30\x45" + bytes([key1, key2, 1, 1])

    def barcode(self, element: Element) -> None:
        kind = element.attributes.get("type")
        if kind not in BARCODES:
            raise SchemaError(f"<barcode type=\"{kind}\">: not a barcode type ePOS-Print knows")
        out = self.out
        hri = _choice(element, "hri", HRI)
        if hri is not None:
            out += GS + b"H" + bytes([hri])
        font = _choice(element, "font", HRI_FONTS)
        if font is not None:
            out += GS + b"f" + bytes([font])
        width = _integer(element, "width", 2, 6)
        if width is not None:
            out += GS + b"w" + bytes([width])
        height = _integer(element, "height", 1, 255)
        if height is not None:
            out += GS + b"h" + bytes([height])
        self._align(element)
        data = unescape(element.text, "latin-1")
        if kind == "code128_auto" and not data.startswith(b"{"):
            data = b"{B" + data
        if not 1 <= len(data) <= 255:
            raise SchemaError("<barcode>: the data must be 1 to 255 bytes")
        out += GS + b"k" + bytes([BARCODES[kind], len(data)]) + data

    def symbol(self, element: Element) -> None:
        kind = element.attributes.get("type")
        if kind not in SYMBOLS:
            raise SchemaError(f"<symbol type=\"{kind}\">: not a symbol type ePOS-Print knows")
        cn, model = SYMBOLS[kind]
        self._align(element)

        def function(fn: int, *parameters: int) -> bytes:
            body = bytes([cn, fn, *parameters])
            return GS + b"(k" + _u16(len(body)) + body

        out = self.out
        if model is not None:
            fn, n = model
            out += function(fn, n, 0) if cn == 49 else function(fn, n)
        width = _integer(element, "width", 0, 255)
        height = _integer(element, "height", 0, 255)
        size = _integer(element, "size", 0, 65535)
        level = element.attributes.get("level")
        if cn == 49:  # QR Code
            if width:
                out += function(67, width)
            if level is not None:
                out += function(69, _choice_or(element, "level", QR_LEVELS, 49))
            data = element.text
            try:
                encoded = unescape(data, "shift_jis")  # Epson encodes QR data in Shift_JIS
                data.encode("shift_jis")
            except UnicodeEncodeError:
                encoded = unescape(data, "utf-8")
        else:
            if cn == 48:  # PDF417: size is the column count, width/height the module size
                if size is not None:
                    out += function(65, min(size, 30))
                if width:
                    out += function(67, width)
                if height:
                    out += function(68, height)
                if level is not None:
                    out += function(69, 48, _choice_or(element, "level", PDF417_LEVELS, 49))
            elif width:
                out += function(67, width)
            encoded = unescape(element.text, "utf-8")
        if len(encoded) + 3 > 65535:
            raise SchemaError("<symbol>: the data is too long")
        out += GS + b"(k" + _u16(len(encoded) + 3) + bytes([cn, 80, 48]) + encoded
        out += function(81, 48)

    # -- page mode ---------------------------------------------------------------------------------

    def page(self, element: Element) -> None:
        if self.in_page:
            raise SchemaError("<page> cannot hold another <page>")
        self.out += ESC + b"L"
        self.in_page = True
        try:
            for child in element.children:
                self.element(child)
        finally:
            self.in_page = False
        self.out += b"\x0c"  # FF: print the page, back to standard mode

    def area(self, element: Element) -> None:
        values = [_integer_or(element, name, 0, 65535, 0) for name in ("x", "y", "width", "height")]
        self.out += ESC + b"W" + b"".join(_u16(v) for v in values)

    def direction(self, element: Element) -> None:
        self.out += ESC + b"T" + bytes([_choice_or(element, "dir", DIRECTIONS, 0)])

    def position(self, element: Element) -> None:
        x = _integer_or(element, "x", 0, 65535, 0)
        y = _integer_or(element, "y", 0, 65535, 0)
        self.out += ESC + b"$" + _u16(x) + GS + b"$" + _u16(y)


def _gray16_to_mono(data: bytes, width: int, height: int) -> bytes:
    """4 bits a dot, darkest 15: the dots at half tone or darker print."""
    row_in = (width + 1) // 2
    row_out = (width + 7) // 8
    out = bytearray(row_out * height)
    for y in range(height):
        row = data[y * row_in:(y + 1) * row_in]
        for x in range(min(width, len(row) * 2)):
            level = row[x // 2] >> 4 if x % 2 == 0 else row[x // 2] & 0x0F
            if level >= 8:
                out[y * row_out + x // 8] |= 0x80 >> (x % 8)
    return bytes(out)


_HANDLERS: dict[str, Callable[[_Translator, Element], None]] = {
    "text": _Translator.text, "feed": _Translator.feed, "cut": _Translator.cut,
    "pulse": _Translator.pulse, "sound": _Translator.sound, "reset": _Translator.reset,
    "command": _Translator.command, "image": _Translator.image, "logo": _Translator.logo,
    "barcode": _Translator.barcode, "symbol": _Translator.symbol, "page": _Translator.page,
    "area": _Translator.area, "direction": _Translator.direction,
    "position": _Translator.position,
}


def translate(document: Element, two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING,
              two_byte_at_start: bool = False) -> Translation:
    """
    The ESC/POS bytes of an ``<epos-print>`` element (``SchemaError`` if it is invalid), for a
    printer with this two-byte encoding that starts in two-byte mode or not.
    """
    translator = _Translator(document.namespace, two_byte_encoding, two_byte_at_start)
    translator.out += ESC + b"@"  # every ePOS-Print job starts from the printer's defaults
    for child in document.children:
        translator.element(child)
    return Translation(bytes(translator.out), translator.skipped,
                       translator.encoder.substituted)


def parse_translation(escpos: bytes, two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING,
                      keep_bitmaps: bool = False,
                      profile: PrinterProfile = DEFAULT_PROFILE) -> list[ParsedReceipt]:
    """The receipts a translated document prints, as the raw port's parser reads them."""
    return parse_job(escpos, ReceiptPrinter("epson", two_byte_encoding, profile),
                     keep_bitmaps=keep_bitmaps)


def escpos_of_part(document: Element, part: int,
                   printer: ReceiptPrinter = DEFAULT_PRINTER) -> bytes:
    """The ESC/POS bytes of receipt ``part`` (0 first) of a document: what renderers draw."""
    translation = translate(document, printer.two_byte_encoding, printer.profile.two_byte_at_start)
    receipts = parse_translation(translation.escpos, printer.two_byte_encoding,
                                 profile=printer.profile)
    return receipts[part].raw if 0 <= part < len(receipts) else b""


def printable_escpos(raw: bytes, details: dict,
                     printer: ReceiptPrinter = DEFAULT_PRINTER) -> bytes:
    """
    The ESC/POS bytes a stored receipt prints: its raw bytes, or for a receipt printed from
    ePOS-Print (``details["source"] == "epos-print"``) those of its part of its document.
    """
    if details.get("source") != "epos-print":
        return raw
    where = details.get("epos") or {}
    try:
        documents = find_documents(parse_xml(raw))
    except SchemaError:
        return b""
    index = where.get("document", 0)
    if not 0 <= index < len(documents):
        return b""
    return escpos_of_part(documents[index], where.get("part", 0), printer)

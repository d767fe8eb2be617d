"""
Unicode text to the bytes an Epson printer prints it from: what an ePOS-Print printer does with
a ``<text>`` element's characters before they reach its ESC/POS engine.

ASCII goes out as it is. Another character goes out on the current code page if that page has
it, else on the first page (``ESC t``, lowest number first) whose table has it, else in two-byte
mode (``FS &`` ... ``FS .``) in the printer's two-byte encoding when that encoding has it, else as
``?`` (counted, as a printer prints a substitute). Languages that print two-byte characters
(``lang`` ja, ko, zh-cn, zh-tw) try two-byte mode before the single-byte pages.

The tables are the parser's (``escpos.codepages``), so what is encoded here decodes back to the
same text: the round trip is what the tests check.
"""

from __future__ import annotations

from functools import cache
from typing import Optional

from printerd.escpos.codepages import CODE_PAGES, DEFAULT_TWO_BYTE_ENCODING, epson_page

ESC, FS = b"\x1b", b"\x1c"
TWO_BYTE_LANGUAGES = frozenset({"ja", "ko", "zh-cn", "zh-tw"})
_UNASSIGNED = "\ufffe"


@cache
def _page_maps() -> list[tuple[int, dict[str, int]]]:
    """(page, character -> byte) for bytes 0x80-0xFF of every page with a table; built on the
    first character that needs a page other than 0's ASCII."""
    maps = []
    for page in sorted(CODE_PAGES):
        if CODE_PAGES[page] is None:
            continue
        table = epson_page(page)
        found: dict[str, int] = {}
        for byte in range(0x80, 0x100):
            char = table[byte]
            if char != _UNASSIGNED and char not in found:
                found[char] = byte
        maps.append((page, found))
    return maps


@cache
def _page_by_number() -> dict[int, dict[str, int]]:
    return dict(_page_maps())


class TextEncoder:
    """
    Encodes text run by run, keeping the code page and two-byte mode the printer is in;
    ``two_byte_at_start``: the printer starts in two-byte mode (``PrinterProfile``).
    """

    def __init__(self, two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING,
                 two_byte_at_start: bool = False) -> None:
        self.two_byte_encoding = two_byte_encoding
        self.two_byte_at_start = two_byte_at_start
        self.substituted = 0  # characters no page and no two-byte encoding has
        self.reset()

    def reset(self) -> None:
        """ESC @: page 0, and the two-byte mode the printer starts in."""
        self.page = 0
        self.two_byte = self.two_byte_at_start

    def encode(self, text: str, lang: str = "en") -> bytes:
        out = bytearray()
        prefer_two_byte = lang in TWO_BYTE_LANGUAGES
        for char in text:
            code = ord(char)
            if char == "\n" or char == "\t" or 0x20 <= code < 0x7F:
                if self.two_byte and not prefer_two_byte:
                    out += self._leave_two_byte()
                out.append(code)
                continue
            if code < 0x20 or code == 0x7F:
                continue  # other control characters print nothing
            if prefer_two_byte:
                encoded = self._two_byte(char)
                if encoded is not None:
                    out += encoded
                    continue
            single = self._single_byte(char)
            if single is not None:
                out += single
                continue
            encoded = self._two_byte(char) if not prefer_two_byte else None
            if encoded is not None:
                out += encoded
                continue
            self.substituted += 1
            if self.two_byte:
                out += self._leave_two_byte()
            out += b"?"
        return bytes(out)

    def _leave_two_byte(self) -> bytes:
        self.two_byte = False
        return FS + b"."

    def _single_byte(self, char: str) -> Optional[bytes]:
        current = _page_by_number().get(self.page, {})
        prefix = self._leave_two_byte() if self.two_byte else b""
        if char in current:
            return prefix + bytes([current[char]])
        for page, table in _page_maps():
            if char in table:
                self.page = page
                return prefix + ESC + b"t" + bytes([page, table[char]])
        if prefix:
            self.two_byte = True  # nothing printed: stay where we were
        return None

    def _two_byte(self, char: str) -> Optional[bytes]:
        try:
            encoded = char.encode(self.two_byte_encoding)
        except UnicodeEncodeError:
            return None
        if not encoded or encoded[0] < 0x80:
            return None
        if self.two_byte:
            return encoded
        self.two_byte = True
        return FS + b"&" + encoded

"""
An incremental ESC/POS job parser: bytes in, events out, no I/O.

``JobParser.feed(data)`` takes the bytes of one print job in chunks of any size and returns the
events they complete: ``StatusQuery`` for each real-time query (the protocol answers it) and
``ParsedReceipt`` for each receipt ended by a cut.  ``close()`` ends the job.  Fed one byte at a
time, the parser returns exactly the events it returns when fed the whole job at once.

Every command is skipped by its exact length (``commands.measure``), so image, barcode and QR
payload bytes never turn into text.  A command longer than ``CAPTURE_LIMIT`` is never buffered:
its payload is passed through as it arrives, whatever its length field claims.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from typing import Callable, Optional, Union

from printerd.escpos.codepages import (
    CharacterDecoder, DEFAULT_TWO_BYTE_ENCODING, JIS_SYSTEM, SHIFT_JIS_SYSTEM, printer_decoder,
)
from printerd.escpos.content import ContentCollector
from printerd.escpos.commands import Measured, is_command_prefix, measure, measure_fsq_image
from printerd.escpos.layout import (
    LineLayout, Page, TextBuilder, full_lines, line_styles_json,
)
from printerd.escpos.profiles import DEFAULT_PROFILE, PrinterProfile
from printerd.escpos.status import STATUS_QUERY_NAMES
from printerd.escpos.styles import STYLE_COMMAND_NAMES, alignment, apply

# Commands up to this many bytes are buffered whole before they are handled; longer ones are
# handled from their header and their payload streams past.
CAPTURE_LIMIT = 64 * 1024

LF, CR, HT, FF, CAN = 0x0A, 0x0D, 0x09, 0x0C, 0x18
# Printed characters and the line feeds between them: a receipt's text is mostly such runs.
_TEXT_RUN = re.compile(rb"[\x20-\xff][\x20-\xff\n]*")

CUT_FULL, CUT_PARTIAL, CUT_NONE = "full", "partial", "none"
_GS_V_CUTS = {0: CUT_FULL, 48: CUT_FULL, 65: CUT_FULL, 97: CUT_FULL, 103: CUT_FULL,
              1: CUT_PARTIAL, 49: CUT_PARTIAL, 66: CUT_PARTIAL, 98: CUT_PARTIAL, 104: CUT_PARTIAL}

# Commands that put ink on paper other than text: a receipt may consist of only these.
_MARKING_COMMANDS = frozenset({
    "GS v 0", "GS Q 0", "ESC *", "GS k", "GS ( k", "GS ( L", "GS 8 L", "FS p", "GS /", "ESC Z",
})


def _set_page(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.page = command[2]


def _set_international(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.international = command[2]


def _two_byte_on(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.two_byte = True


def _two_byte_off(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.two_byte = False


def _kanji_code_system(decoder: CharacterDecoder, command: bytes) -> None:
    # FS C n (Japanese models): 0 / 48 JIS, 1 / 49 Shift JIS, 2 / 50 Shift JIS-2004; other
    # values are ignored.
    system = _KANJI_SYSTEMS.get(command[2])
    if system is not None:
        decoder.select_kanji_system(system)


_KANJI_SYSTEMS = {0: JIS_SYSTEM, 48: JIS_SYSTEM, 1: SHIFT_JIS_SYSTEM, 49: SHIFT_JIS_SYSTEM,
                  2: SHIFT_JIS_SYSTEM, 50: SHIFT_JIS_SYSTEM}

# Commands that change how bytes become characters (the command listing applies them too).
DECODER_COMMANDS: dict[str, Callable[[CharacterDecoder, bytes], None]] = {
    "ESC t": _set_page, "ESC R": _set_international, "FS &": _two_byte_on,
    "FS .": _two_byte_off, "FS C": _kanji_code_system}


def _u16(command: bytes, at: int = 2) -> int:
    return command[at] | command[at + 1] << 8


# Commands that place text: print positions, tabs, margins, spacing, page mode.
_LAYOUT_COMMANDS: dict[str, Callable[[TextBuilder, bytes], None]] = {
    "ESC $": lambda text, command: text.absolute(_u16(command)),
    "ESC \\": lambda text, command: text.relative(_u16(command)),
    "ESC D": lambda text, command: text.set_tabs(command[2:-1]),
    "ESC 0x20": lambda text, command: text.set_spacing(command[2]),
    "GS L": lambda text, command: text.set_margin(_u16(command)),
    "GS W": lambda text, command: text.set_area_width(_u16(command)),
    "GS P": lambda text, command: text.set_units(command[2], command[3]),
    "ESC 2": lambda text, command: text.set_line_spacing(None),
    "ESC 3": lambda text, command: text.set_line_spacing(command[2]),
    "ESC L": lambda text, command: text.page_mode(),
    "ESC S": lambda text, command: text.clear_page(leave=True),
    "ESC T": lambda text, command: text.page_direction(command[2]),
    "ESC W": lambda text, command: text.page_area(command[2:10]),
    "ESC 0x0c": lambda text, command: text.print_page(leave=False),
    "GS $": lambda text, command: text.page_vertical(_u16(command), relative=False),
    "GS \\": lambda text, command: text.page_vertical(_u16(command), relative=True),
}


@dataclass(frozen=True)
class StatusQuery:
    """A real-time query the printer must answer now (``DLE EOT 1``, ``GS r 1`` ...)."""

    command: bytes


@dataclass(frozen=True)
class ParsedReceipt:
    """One receipt: its raw bytes, its text (Unicode), how it ended."""

    raw: bytes
    text: str
    cut: str
    truncated: bool
    unknown_commands: int
    details: dict = field(default_factory=dict, compare=True)
    # For renderers (JobParser(keep_bitmaps=True)): the lines with their Style objects and the
    # content collector holding image dots and print order.
    layout: Optional["Layout"] = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Layout:
    """What the renderers draw: every line's layout, the pages, the graphics in order."""

    lines: list[LineLayout]
    content: ContentCollector
    pages: list[Page]
    # ESC * images (by index in content.images): the line spacing in dots they were fed with.
    image_feeds: dict[int, int]


Event = Union[StatusQuery, ParsedReceipt]


_DLE_EOT = b"\x10\x04"


def realtime_queries_inside(data: bytes | bytearray, already_seen: int = 0) -> list[StatusQuery]:
    """
    DLE EOT queries sitting in another command's bytes: an Epson printer answers them even there.
    Only queries that end after ``already_seen`` bytes are returned (``data`` may start with the
    tail of bytes scanned before).
    """
    found = []
    at = data.find(_DLE_EOT)
    while at >= 0:
        if at + 2 < len(data):
            n = data[at + 2]
            length = 4 if n in (7, 8, 18) else 3 if 1 <= n <= 4 else 0
            if length and at + length <= len(data) and at + length > already_seen:
                found.append(StatusQuery(bytes(data[at:at + length])))
        at = data.find(_DLE_EOT, at + 1)
    return found


class JobParser:
    """Parses one ESC/POS print job fed in arbitrary chunks; see the module docstring."""

    def __init__(self, two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING,
                 keep_bitmaps: bool = False,
                 profile: PrinterProfile = DEFAULT_PROFILE) -> None:
        # keep_bitmaps: renderers want image dots; the ingest path does not store them.
        self._keep_bitmaps = keep_bitmaps
        self.profile = profile  # the paper positions are placed on
        self.decoder = printer_decoder(two_byte_encoding, profile)
        self._buffer = bytearray()  # bytes of a command not yet complete
        self._skip = 0  # payload bytes of a long command still to pass through
        self._skip_tail = b""  # the last bytes passed through, for queries split across feeds
        self._images_follow = 0  # FS q: images still to measure
        self._closed = False
        # Grows whenever the job puts something on paper (text, images, codes and their
        # payloads), by about the bytes that did: the raw port tells by it a connection that
        # prints from one that only holds its slot.
        self.content_bytes = 0
        self._start_receipt()

    def _start_receipt(self) -> None:
        previous = getattr(self, "_text", None)
        self._raw = bytearray()
        self._text = TextBuilder(self.decoder, self.profile)
        if previous is not None:
            self._text.carry_over(previous)
        self._has_content = False
        self._open = True  # False after a cut until bytes come (see _end_receipt)
        self._unknown = 0
        # The line count from the receipt's own list (extended in place), not through self: a
        # closure over the parser made every job's parser a reference cycle, garbage that only
        # the cyclic collector frees.
        self._content = ContentCollector(partial(len, self._text.lines), self._keep_bitmaps)
        self._image_feeds: dict[int, int] = {}

    def feed(self, data: bytes) -> list[Event]:
        """Consume the next bytes of the job and return the events they complete."""
        if self._closed:
            raise ValueError("feed() after close()")
        if not self._open:
            self._start_receipt()
        events: list[Event] = []
        if self._skip:
            passed = min(self._skip, len(data))
            self._raw += memoryview(data)[:passed]
            self._skip -= passed
            self.content_bytes += passed
            window = self._skip_tail + data[:passed]
            events += realtime_queries_inside(window, len(self._skip_tail))
            self._skip_tail = window[-3:]
            data = data[passed:]
            if not data:
                return events
        buf = self._buffer
        buf += data
        pos = self._parse(buf, events)
        del buf[:pos]
        return events

    def close(self, truncated: bool = False) -> list[Event]:
        """End the job (connection closed, or cut off at the size limit)."""
        if self._closed:
            return []
        self._closed = True
        # A job that stops inside a command did not arrive whole.
        truncated = truncated or bool(self._buffer) or self._skip > 0
        self._raw += self._buffer
        self._buffer.clear()
        events: list[Event] = []
        if self._open:  # else the job ended at a cut, with nothing after it
            self._end_receipt(CUT_NONE, truncated, events, start_next=False)
        return events

    def _parse(self, buf: bytearray, events: list[Event]) -> int:
        """Handle every complete element in buf; return how many bytes were consumed."""
        pos, end = 0, len(buf)
        raw_mark = 0  # buf[:raw_mark] is already in self._raw
        while pos < end:
            byte = buf[pos]
            if self._images_follow == 0 and byte >= 0x20:
                run_end = _TEXT_RUN.match(buf, pos).end()  # type: ignore[union-attr]
                self._text.add(bytes(buf[pos:run_end]))
                self._has_content = True
                self.content_bytes += run_end - pos
                pos = run_end
                continue
            if self._images_follow == 0 and not is_command_prefix(byte):
                self._control(byte)
                pos += 1
                continue
            measured = measure_fsq_image(buf, pos) if self._images_follow else measure(buf, pos)
            if measured is None:
                break
            available = end - pos
            if measured.length > available and measured.length <= CAPTURE_LIMIT:
                break  # wait for the whole command
            command = bytes(buf[pos:pos + min(measured.length, CAPTURE_LIMIT)])
            # A query inside needs 3 bytes after the 2-byte prefix: short commands hold none.
            if measured.length >= 5 and measured.known and measured.name not in STATUS_QUERY_NAMES:
                here = buf[pos + 2:pos + min(measured.length, available)]
                events += realtime_queries_inside(here)
            cut = self._command(measured, command, events)
            if measured.length > available:
                # A long payload: take what is here and pass the rest through as it arrives.
                self._skip = measured.length - available
                self._skip_tail = bytes(buf[max(end - 3, pos + 2):end])
                pos = end
                break
            pos += measured.length
            if cut is not None:
                self._raw += memoryview(buf)[raw_mark:pos]
                raw_mark = pos
                self._end_receipt(cut, False, events, start_next=pos < end)
        self._raw += memoryview(buf)[raw_mark:pos]
        return pos

    def _control(self, byte: int) -> None:
        if byte == LF:
            self._text.newline()
        elif byte == HT:
            self._text.tab()
        elif byte == FF:
            self._text.print_page(leave=True)  # page mode only; ignored in standard mode
        elif byte == CAN:
            self._text.clear_page(leave=False)
        # CR is ignored (auto line feed is off on Epson's network interfaces); so are other
        # stray control bytes such as NUL padding.

    def _command(self, measured: Measured, command: bytes, events: list[Event]) -> Optional[str]:
        """Apply one command; return the cut type if it ends the receipt."""
        name = measured.name
        if self._images_follow:
            self._images_follow -= 1
            return None
        if not measured.known:
            self._unknown += 1
            self._content.unknown_command(name)
            return None
        self._content.command(name, command)
        if name in STATUS_QUERY_NAMES:
            events.append(StatusQuery(command))
            return None
        if name in _MARKING_COMMANDS:
            self._has_content = True
            self.content_bytes += measured.length
            if name == "ESC *" and self._content.images:
                self._text.image_in_line()
                self._image_feeds[len(self._content.images) - 1] = self._text.line_spacing
        elif name in STYLE_COMMAND_NAMES:
            if name == "ESC a":
                self._text.set_align(alignment(command) or self._text.align)
            else:
                self._text.set_style(apply(self._text.style, name, command))
        elif name in _LAYOUT_COMMANDS:
            _LAYOUT_COMMANDS[name](self._text, command)
        elif name == "FS q":
            self._images_follow = measured.images_follow
        elif name == "ESC d":
            self._text.newline(max(command[2], 1))
        elif name == "ESC J" and self._text.has_pending():
            self._text.newline()
        elif name in DECODER_COMMANDS:
            self._text.before_switch()
            DECODER_COMMANDS[name](self.decoder, command)
        elif name == "ESC @":
            self._text.reset()
        elif name == "GS V":
            return _GS_V_CUTS[command[2]]
        elif name in ("ESC i", "ESC m"):
            # Epson: ESC i leaves one point uncut, ESC m three: both partial cuts.
            return CUT_PARTIAL
        return None

    def _end_receipt(self, cut: str, truncated: bool, events: list[Event],
                     start_next: bool = True) -> None:
        if self._has_content:
            lines, styled, pages = self._text.finish()
            details = self._content.to_json()
            details["line_styles"] = line_styles_json(styled)
            if pages:
                details["pages"] = [page.json for page in pages]
            events.append(ParsedReceipt(
                raw=bytes(self._raw),
                text="\n".join(lines),
                cut=cut,
                truncated=truncated,
                unknown_commands=self._unknown,
                details=details,
                layout=(Layout(full_lines(lines, styled), self._content, pages,
                               self._image_feeds) if self._keep_bitmaps else None),
            ))
        # A job's next receipt is set up once bytes come for it: most jobs end at their cut.
        if start_next:
            self._start_receipt()
        else:
            self._open = False

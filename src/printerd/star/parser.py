"""
An incremental Star Line mode / StarPRNT job parser: bytes in, events out, no I/O.

The same contract as ``printerd.escpos.parser.JobParser``: ``feed(data)`` returns the events the
bytes complete (``StatusQuery`` for each status request, ``ParsedReceipt`` for each receipt ended
by a cut), ``close()`` ends the job, and fed one byte at a time the parser returns exactly what
it returns fed the whole job.  Receipts come out in the same JSON and layout as ESC/POS ones.

Every command is skipped by its exact length (``star.commands.measure``).  ESC/POS commands in
a Star job (an Epson driver pointed at a Star printer) are measured with the ESC/POS table,
skipped and counted under ``dialects``, never printed as text, and never answered (a
``DLE EOT n`` is not Star's ``EOT``).  A command longer than
``CAPTURE_LIMIT`` is never buffered: its payload passes through as it arrives.
"""

from __future__ import annotations

import re
from dataclasses import replace
from functools import partial
from typing import Any, Callable, Optional

from printerd.escpos.codepages import (
    CharacterDecoder, DEFAULT_TWO_BYTE_ENCODING, printer_decoder,
)
from printerd.escpos import commands as escpos_commands
from printerd.escpos.commands import Measured
from printerd.escpos.layout import TextBuilder, full_lines, line_styles_json
from printerd.escpos.parser import (
    CAPTURE_LIMIT, CUT_FULL, CUT_NONE, CUT_PARTIAL, Event, Layout, ParsedReceipt, StatusQuery,
)
from printerd.escpos.profiles import DEFAULT_PROFILE, FONT_A_DOTS, PrinterProfile
from printerd.escpos.styles import ALIGNMENTS, FONTS, Style, intern
from printerd.star.codepages import international_set, star_page
from printerd.star.commands import ESC, measure, measure_raster
from printerd.star.content import StarContent, columns_to_rows, digit, raster_rows
from printerd.star.status import ASB_REQUEST, VERSION_REQUEST

_TEXT_RUN = re.compile(rb"[\x20-\xff][\x20-\xff\n]*")
LF, HT, FF, VT = 0x0A, 0x09, 0x0C, 0x0B
SO, SI, DC2, DC4, CAN = 0x0E, 0x0F, 0x12, 0x14, 0x18
BEL, SUB, EM = 0x07, 0x1A, 0x19
GS, FS, DLE = 0x1D, 0x1C, 0x10

# ESC d n: 0 full cut, 1 partial cut, 2 and 3 the same after feeding to the cutter.
_CUTS = {0: CUT_FULL, 1: CUT_PARTIAL, 2: CUT_FULL, 3: CUT_PARTIAL}

# For commands that may exceed CAPTURE_LIMIT: their header, all a handler sees of them then
# (fed whole or a byte at a time, the parser handles them when the header is in).
_HEADERS = {"ESC GS y D": 8, "ESC GS x D": 6, "ESC GS S": 9, "ESC K": 4, "ESC L": 4,
            "ESC X": 4, "ESC k": 4, "raster b": 3}

# Raster EOT and FF modes (ESC * r E / F n NUL): what ejecting a page does.  0 is the default,
# 13 (feed to the cutter, partial cut); 1, 2 and 3 feed without cutting.
_RASTER_MODE_CUTS = {0: CUT_PARTIAL, 8: CUT_FULL, 9: CUT_FULL, 12: CUT_PARTIAL, 13: CUT_PARTIAL}
_DEFAULT_RASTER_MODE = 13

# The most blank rows one ESC * r Y adds to a raster image (it moves the paper by n dots).
_MAX_BLANK_ROWS = 2400


def _size(style: Style, n: int, key: str) -> Style:
    # ESC i / W / h: 0..5 (or "0".."5") is 1..6 times the size.
    times = min(digit(n), 7) + 1
    return replace(style, width=times) if key == "width" else replace(style, height=times)


# Style commands: command bytes -> the new style.
_STYLES: dict[str, Callable[[Style, bytes], Style]] = {
    "ESC E": lambda s, c: replace(s, bold=True),
    "ESC F": lambda s, c: replace(s, bold=False),
    "ESC -": lambda s, c: replace(s, underline=1 if digit(c[2]) == 1 else 0),
    "ESC 4": lambda s, c: replace(s, invert=True),
    "ESC 5": lambda s, c: replace(s, invert=False),
    "ESC i": lambda s, c: _size(_size(s, c[2], "height"), c[3], "width"),
    "ESC W": lambda s, c: _size(s, c[2], "width"),
    "ESC h": lambda s, c: _size(s, c[2], "height"),
    "ESC SO": lambda s, c: replace(s, height=2),
    "ESC DC4": lambda s, c: replace(s, height=1),
    "ESC RS F": lambda s, c: replace(s, font=FONTS[digit(c[3])] if digit(c[3]) < 3 else "A"),
}
_MARKING = frozenset({"ESC b", "ESC FS p"})
# ESC l / ESC Q leaving a print region of this or less are ignored (Star line mode, thermal).
STAR_MIN_REGION_MM = 36
STAR_TAB_STOPS_MAX = 32
MM_PER_INCH = 25.4


class StarJobParser:
    """Parses one Star print job fed in arbitrary chunks; see the module docstring."""

    def __init__(self, two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING,
                 keep_bitmaps: bool = False, profile: PrinterProfile = DEFAULT_PROFILE) -> None:
        self._keep_bitmaps = keep_bitmaps
        self.profile = profile  # the paper positions are placed on
        # ESC l / ESC Q: the left margin and the right edge, in characters from the paper's
        # left (0: none); TextBuilder takes them in dots, the print area as a width.
        self._left_margin = self._right_edge = 0
        # ESC D: tab stops in dots from the paper's left edge, whatever the left margin (a
        # Star printer has none until a job sets them).
        self._tab_stops: tuple[int, ...] = ()
        self.decoder = printer_decoder(two_byte_encoding, profile, star_page)
        self._buffer = bytearray()
        self._skip = 0  # payload bytes of a long command still to pass through
        self._closed = False
        self._raster = False  # between ESC * r A and ESC * r B
        self._raster_pending = False  # raster rows not yet ejected
        self._eot_mode = self._ff_mode = _DEFAULT_RASTER_MODE
        self._pulse = (200, 200)  # ESC BEL n1 n2: the drawer pulse, on and off (ms)
        # Grows whenever the job puts something on paper (JobParserLike): the raw port tells
        # by it a connection that prints from one that only holds its slot.
        self.content_bytes = 0
        self._start_receipt()

    def _start_receipt(self) -> None:
        previous = getattr(self, "_text", None)
        self._raw = bytearray()
        # Star's positions and page areas are in dots, across and along the paper alike.
        self._text = TextBuilder(self.decoder, self.profile,
                                 default_units=(self.profile.dpi, self.profile.dpi))
        if previous is not None:
            self._text.carry_over(previous)
        self._has_content = False
        self._unknown = 0
        # The line count from the receipt's own list (extended in place), not through self: a
        # closure over the parser would make every job's parser a reference cycle.
        self._content = StarContent(partial(len, self._text.lines), self._keep_bitmaps)
        self._band_follows = False  # the last thing printed was an image band
        self._graphic_line = False  # the line buffer holds an image band and no text

    # -- bytes in ----------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Event]:
        """Consume the next bytes of the job and return the events they complete."""
        if self._closed:
            raise ValueError("feed() after close()")
        events: list[Event] = []
        if self._skip:
            passed = min(self._skip, len(data))
            self._raw += memoryview(data)[:passed]
            self._skip -= passed
            self.content_bytes += passed
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
        if self._buffer == b"\x1c":
            # FS alone at the very end: a drawer kick, not the start of an ESC/POS command.
            self._raw += self._buffer
            self._buffer.clear()
            self._content.drawer(2, *self._pulse)
        truncated = truncated or bool(self._buffer) or self._skip > 0
        self._raw += self._buffer
        self._buffer.clear()
        events: list[Event] = []
        self._end_receipt(CUT_NONE, truncated, events, start_next=False)
        return events

    def _parse(self, buf: bytearray, events: list[Event]) -> int:
        """Handle every complete element in buf; return how many bytes were consumed."""
        pos, end = 0, len(buf)
        raw_mark = 0  # buf[:raw_mark] is already in self._raw
        while pos < end:
            byte = buf[pos]
            foreign = False
            measured: Optional[Measured]
            if self._raster:
                measured = measure_raster(buf, pos)
                if measured is None:
                    break
                if not measured.known and measured.length == 1:
                    # Raster mode takes raster commands, status requests and drawer kicks;
                    # other bytes are dropped.
                    if byte in _RASTER_CONTROLS:
                        self._control(byte, events)
                    pos += 1
                    continue
            elif byte >= 0x20:
                run_end = _TEXT_RUN.match(buf, pos).end()  # type: ignore[union-attr]
                self._text.add(bytes(buf[pos:run_end]))
                self._printed_text()
                pos = run_end
                continue
            elif byte == ESC:
                measured = measure(buf, pos)
                if measured is None:
                    break
                if not measured.known:
                    # Not Star: an ESC/POS command, if ESC/POS knows it.
                    other = escpos_commands.measure(buf, pos)
                    if other is None:
                        break
                    if other.known:
                        measured, foreign = other, True
            elif byte in (GS, DLE, FS):
                # No Star command starts so; an ESC/POS one might.  FS alone kicks the drawer.
                if end - pos < 2:
                    break
                measured = escpos_commands.measure(buf, pos)
                if measured is None:
                    break
                if not measured.known:
                    self._control(byte, events)
                    pos += 1
                    continue
                foreign = True
            else:
                self._control(byte, events)
                pos += 1
                continue
            available = end - pos
            if measured.length > available and measured.length <= CAPTURE_LIMIT:
                break  # wait for the whole command
            command = bytes(buf[pos:pos + min(measured.length, CAPTURE_LIMIT)])
            if measured.length > CAPTURE_LIMIT:
                command = command[:_HEADERS.get(measured.name, 2)]
            cut = self._command(measured, command, events, foreign)
            if measured.length > available:
                # A long payload: take what is here and pass the rest through as it arrives.
                self._skip = measured.length - available
                pos = end
                break
            pos += measured.length
            if cut is not None:
                self._raw += memoryview(buf)[raw_mark:pos]
                raw_mark = pos
                self._end_receipt(cut, False, events)
        self._raw += memoryview(buf)[raw_mark:pos]
        return pos

    def _printed_text(self) -> None:
        """Text was printed: the receipt has content, and the line is not an image band."""
        self._has_content = True
        self.content_bytes += 1
        self._band_follows = False
        self._graphic_line = False

    # -- single control bytes ----------------------------------------------------------------

    def _control(self, byte: int, events: list[Event]) -> None:
        if byte == LF:
            if not (self._graphic_line and not self._text.has_pending()):
                self._text.newline()
            # else: the line feed prints the image band in the line buffer, no blank line.
            self._graphic_line = False
        elif byte == HT:
            margin = self._left_margin * FONT_A_DOTS
            self._text.tab_to(stop - margin for stop in self._tab_stops)
        elif byte in (FF, VT):
            if self._text.has_pending():
                self._text.newline()
        elif byte == SO:
            self._restyle(width=2)
        elif byte == DC4:
            self._restyle(width=1)
        elif byte in (BEL, FS):
            self._content.drawer(2, *self._pulse)
        elif byte in (SUB, EM):
            self._content.drawer(5, *self._pulse)
        elif byte in (0x04, 0x05, 0x17):
            events.append(StatusQuery(bytes([byte])))
        elif byte == CAN:
            self._text.reset()
        # CR is ignored (Star's default memory switch setting); so are SI / DC2 (upside down)
        # and other stray control bytes.

    def _restyle(self, **changes: Any) -> None:
        self._text.set_style(intern(replace(self._text.style, **changes)))

    # -- commands ----------------------------------------------------------------------------

    def _command(self, measured: Measured, command: bytes, events: list[Event],
                 foreign: bool) -> Optional[str]:
        """Apply one command; return the cut type if it ends the receipt."""
        name = measured.name
        if foreign:
            # ESC/POS's DLE EOT n and DLE ENQ n get no answer: receiptio's printer detection
            # (written against real Star printers) sends DLE EOT 2 then ESC ACK SOH and takes
            # the first byte back for the ASB's header; answering the EOT inside made it read a
            # Star printer as an Epson one.  Star's own EOT and ENQ are still answered.
            self._content.foreign()
            return None
        if not measured.known:
            self._unknown += 1
            self._content.unknown_command(name)
            return None
        complete = len(command) == measured.length
        if name in _STYLES:
            self._text.set_style(intern(_STYLES[name](self._text.style, command)))
        elif name == "ESC GS a":
            n = digit(command[3])
            if n <= 2:
                self._text.set_align(ALIGNMENTS[n])
        elif name in _IMAGES:
            self._image(name, command, complete)
        elif name in _MARKING:
            self._mark()
            if name == "ESC b":
                self._content.barcode(command)
            else:
                self._content.logo(command[3])
        elif name.startswith("ESC GS y "):
            if self._content.qr(command if complete else command[:8]):
                self._mark()
        elif name.startswith("ESC GS x "):
            if self._content.pdf417(command if complete else command[:6]):
                self._mark()
        elif name in STAR_DECODER_COMMANDS:
            self._text.before_switch()  # what came before is read as it was
            STAR_DECODER_COMMANDS[name](self.decoder, command)
        else:
            handler = _HANDLERS.get(name)
            if handler is not None:
                return handler(self, command, events)
        return None

    def _mark(self) -> None:
        """Something other than text or an image band was printed."""
        self._printed_text()
        self._content.end_image()

    def _image(self, name: str, command: bytes, complete: bool) -> None:
        keep = self._keep_bitmaps and complete
        rows: Optional[list[bytes]] = None
        if name == "raster b":
            self._raster_pending = True
            command_name, width, height = "ESC * r", (command[1] | command[2] << 8) * 8, 1
            if keep:
                rows = [command[3:]]
        elif name == "ESC GS S":
            row_bytes, height = command[4] | command[5] << 8, command[6] | command[7] << 8
            command_name, width = name, row_bytes * 8
            if keep:
                rows = raster_rows(command[9:], row_bytes, height)
        else:
            count, data, command_name, height = command[2] | command[3] << 8, command[4:], name, 24
            if name == "ESC k":  # 24 rows of count bytes
                width = count * 8
                if keep:
                    rows = raster_rows(data, count, 24)
            elif name == "ESC X":  # count columns of 24 dots
                width = count
                if keep:
                    rows = columns_to_rows(data, count, 24)
            else:  # ESC K: 8-dot columns, each dot 3 x 3; ESC L: each dot 1 wide, 3 high
                scale = 3 if name == "ESC K" else 1
                width = count * scale
                if keep:
                    rows = columns_to_rows(data, count, 8, scale, 3)
        self._content.image_band(command_name, width, height, rows, extend=self._band_follows)
        self._has_content = True
        self.content_bytes += 1
        self._band_follows = True
        if not self._raster and not self._text.has_pending():
            self._graphic_line = True

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
                layout=(Layout(full_lines(lines, styled), self._content, pages, {})
                        if self._keep_bitmaps else None),
            ))
        if start_next:  # not after close(): nothing more is parsed
            self._start_receipt()

    # -- command handlers (name -> method) ---------------------------------------------------

    def _reset(self, command: bytes, events: list[Event]) -> Optional[str]:
        self._text.reset()
        self._left_margin = self._right_edge = 0
        self._tab_stops = ()
        return None

    def _set_tabs(self, command: bytes, events: list[Event]) -> Optional[str]:
        """
        ESC D n1 .. nk NUL: tab stops n characters (at the pitch now, with its spacing, not
        expanded) from the paper's left edge; the list ends at the first stop not after the one
        before.  ESC D NUL clears them.
        """
        pitch, stops = self._text.pitch(), list[int]()
        for n in command[2:-1][:STAR_TAB_STOPS_MAX]:
            if stops and n * pitch <= stops[-1]:
                break
            stops.append(n * pitch)
        self._tab_stops = tuple(stops)
        return None

    def _page(self, command: bytes, events: list[Event]) -> Optional[str]:
        """
        ESC GS P n ...: Star's page mode, placed as Epson's is: 0 enters it, 1 leaves it
        dropping the page, 2 the direction, 3 the area, 4 / 5 the vertical position (absolute,
        relative), 6 prints the page, 7 prints it and leaves, 8 drops what it holds.
        """
        n, text = digit(command[3]), self._text
        if n == 0:
            text.page_mode()
        elif n == 1:
            text.clear_page(leave=True)
        elif n == 2:
            text.page_direction(digit(command[4]))
        elif n == 3:
            text.page_area(command[4:12])
        elif n in (4, 5):
            text.page_vertical(command[4] | command[5] << 8, relative=n == 5)
        elif n in (6, 7):
            text.print_page(leave=n == 7)
        elif n == 8:
            text.clear_page(leave=False)
        return None

    def _absolute(self, command: bytes, events: list[Event]) -> Optional[str]:
        """ESC GS A n1 n2: the next character at n dots from the print area's start."""
        self._text.absolute(command[3] | command[4] << 8)
        return None

    def _relative(self, command: bytes, events: list[Event]) -> Optional[str]:
        """ESC GS R n1 n2: n dots on from the current position."""
        self._text.relative(command[3] | command[4] << 8)
        return None

    def _margin(self, command: bytes, events: list[Event]) -> Optional[str]:
        """
        ESC l n (left margin), ESC Q n (right edge): n characters of font A from the paper's
        left.  Star's line mode ignores either when it would leave a print region of 36 mm or
        less between the two.
        """
        left, right = self._left_margin, self._right_edge
        if command[1:2] == b"l":
            left = command[2]
        else:
            right = command[2]
        left_dots = left * FONT_A_DOTS
        right_dots = right * FONT_A_DOTS if right else self.profile.dots
        if (right_dots - left_dots) * MM_PER_INCH <= STAR_MIN_REGION_MM * self.profile.dpi:
            return None
        self._left_margin, self._right_edge = left, right
        self._text.set_margin(left_dots)
        if right:
            self._text.set_area_width(right_dots - left_dots)
        return None

    def _cut(self, command: bytes, events: list[Event]) -> Optional[str]:
        return _CUTS.get(digit(command[2]))

    def _feed_lines(self, command: bytes, events: list[Event]) -> Optional[str]:
        self._text.newline(max(command[2], 1))
        return None

    def _feed_dots(self, command: bytes, events: list[Event]) -> Optional[str]:
        if self._text.has_pending():
            self._text.newline()
        return None

    def _pulse_width(self, command: bytes, events: list[Event]) -> Optional[str]:
        # ESC BEL n1 n2: the drawer pulse, n1 on and n2 off, in 10 ms units.
        self._pulse = (command[2] * 10, command[3] * 10)
        return None

    def _status(self, command: bytes, events: list[Event]) -> Optional[str]:
        if command in (ASB_REQUEST, VERSION_REQUEST) or command[:3] in (b"\x1b\x1ea",
                                                                          b"\x1b\x1eE"):
            events.append(StatusQuery(command))
        return None

    def _raster_mode(self, command: bytes, events: list[Event]) -> Optional[str]:
        # ESC * r A enters raster mode (its settings back to their defaults); ESC * r B leaves
        # it, ejecting per the EOT mode any rows not yet ejected.
        self._content.end_image()
        self._band_follows = False
        entering = command[3] == ord("A")
        if entering and not self._raster:
            self._eot_mode = self._ff_mode = _DEFAULT_RASTER_MODE
            self._raster_pending = False
        if not entering and self._raster:
            self._raster = False
            return self._eject(self._eot_mode)
        self._raster = self._raster or entering
        return None

    def _raster_setting(self, command: bytes, events: list[Event]) -> Optional[str]:
        # ESC * r E n NUL (EOT mode), ESC * r F n NUL (FF mode): n in ASCII decimal.
        digits = command[4:-1]
        if digits.isdigit() and len(digits) <= 3:
            if command[3] == ord("E"):
                self._eot_mode = int(digits)
            else:
                self._ff_mode = int(digits)
        return None

    def _raster_feed(self, command: bytes, events: list[Event]) -> Optional[str]:
        # ESC * r Y n NUL: move the paper n dots, blank rows in the page being printed.
        digits = command[4:-1]
        if self._raster and digits.isdigit():
            rows = min(int(digits[:6]), _MAX_BLANK_ROWS)
            if rows and self._band_follows:
                self._content.image_band("ESC * r", 0, rows,
                                         [b""] * rows if self._keep_bitmaps else None,
                                         extend=True)
        return None

    def _raster_eject(self, command: bytes, events: list[Event]) -> Optional[str]:
        # In raster mode ESC FF NUL ejects the page per the FF mode, ESC FF EOT per the EOT mode.
        if self._raster and command[2] in (0x00, 0x04):
            return self._eject(self._ff_mode if command[2] == 0 else self._eot_mode)
        return None

    def _eject(self, mode: int) -> Optional[str]:
        self._content.end_image()
        self._band_follows = False
        pending, self._raster_pending = self._raster_pending, False
        return _RASTER_MODE_CUTS.get(mode) if pending else None


_RASTER_CONTROLS = frozenset({0x04, 0x05, 0x17, BEL, SUB, EM, FS})
_IMAGES = frozenset({"ESC K", "ESC L", "ESC X", "ESC k", "ESC GS S", "raster b"})


def _set_page(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.page = command[3]  # ESC GS t n


def _set_international(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.international = international_set(command[2])


def _shift_jis(decoder: CharacterDecoder, command: bytes) -> None:
    # ESC $ n: Shift JIS (two-byte) mode on (1) or off (0), in the printer's encoding.
    decoder.kanji_system = None
    decoder.two_byte = digit(command[2]) == 1


def _jis_kanji(decoder: CharacterDecoder, command: bytes) -> None:
    # ESC p / ESC q: JIS Kanji mode on / off on a Japanese model (two_byte_encoding shift_jis);
    # other models ignore both.
    decoder.jis_kanji_mode(command[1] == ord("p"))


# Commands that change how bytes become characters (the command listing applies them too).
STAR_DECODER_COMMANDS: dict[str, Callable[[CharacterDecoder, bytes], None]] = {
    "ESC GS t": _set_page, "ESC R": _set_international, "ESC $": _shift_jis,
    "ESC p": _jis_kanji, "ESC q": _jis_kanji}


_HANDLERS: dict[str, Callable[[StarJobParser, bytes, list[Event]], Optional[str]]] = {
    "ESC @": StarJobParser._reset,
    "ESC GS A": StarJobParser._absolute,
    "ESC GS R": StarJobParser._relative,
    "ESC l": StarJobParser._margin,
    "ESC Q": StarJobParser._margin,
    "ESC D": StarJobParser._set_tabs,
    "ESC GS P": StarJobParser._page,
    "ESC d": StarJobParser._cut,
    "ESC a": StarJobParser._feed_lines,
    "ESC J": StarJobParser._feed_dots,
    "ESC I": StarJobParser._feed_dots,
    "ESC BEL": StarJobParser._pulse_width,
    "ESC ACK": StarJobParser._status,
    "ESC #": StarJobParser._status,
    "ESC RS a": StarJobParser._status,
    "ESC RS E": StarJobParser._status,
    "ESC * r A": StarJobParser._raster_mode,
    "ESC * r B": StarJobParser._raster_mode,
    "ESC * r Y": StarJobParser._raster_feed,
    "ESC * r E": StarJobParser._raster_setting,
    "ESC * r F": StarJobParser._raster_setting,
    "ESC FF": StarJobParser._raster_eject,
}

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
from typing import Optional, Union

from printerd.escpos.codepages import CharacterDecoder
from printerd.escpos.content import ContentCollector
from printerd.escpos.commands import Measured, is_command_prefix, measure, measure_fsq_image
from printerd.escpos.status import STATUS_QUERY_NAMES
from printerd.escpos.styles import PLAIN, STYLE_COMMAND_NAMES, Style, alignment, apply

# Commands up to this many bytes are buffered whole before they are handled; longer ones are
# handled from their header and their payload streams past.
CAPTURE_LIMIT = 64 * 1024

LF, CR, HT = 0x0A, 0x0D, 0x09
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


# Commands that change how bytes become characters.
_DECODER_COMMANDS = {"ESC t": _set_page, "ESC R": _set_international, "FS &": _two_byte_on,
                     "FS .": _two_byte_off}


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
    lines: list[tuple[str, list[tuple[Style, str]]]]
    content: ContentCollector


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


Runs = list[tuple[Style, str]]


class _TextBuilder:
    """
    Collects printed characters into lines, decoding each run under the decoder's state.

    Most lines are plain and left-aligned, so a line is kept as its text alone; style changes
    are kept as marks (character offset, new style) and only lines with marks or another
    alignment get runs: ``styled`` maps their index to ``(alignment, [(Style, text), ...])``.
    """

    def __init__(self, decoder: CharacterDecoder) -> None:
        self.decoder = decoder
        self.style = PLAIN
        self.align = "left"
        self.lines: list[str] = []
        self.styled: dict[int, tuple[str, Runs]] = {}
        self._decoded: list[str] = []  # the current line, decoded so far
        self._bytes = bytearray()  # bytes under the current decoding
        self._marks: list[tuple[int, Style]] = []  # style changes in the current line
        self._line_align = "left"

    def carry_over(self, previous: "_TextBuilder") -> None:
        """A cut ends the receipt, not the printer's style and alignment settings."""
        self.set_align(previous.align)
        self.set_style(previous.style)

    def reset(self) -> None:
        """ESC @: the printer's defaults for characters, style and alignment."""
        self.before_switch()
        self.decoder.reset()
        self.set_style(PLAIN)
        self.set_align("left")

    def set_align(self, align: str) -> None:
        self.align = align
        if not self.has_pending():
            # Epson applies ESC a at the start of a line only.
            self._line_align = align

    def add(self, data: bytes) -> None:
        """Printed bytes, line feeds included."""
        first, feed, rest = data.partition(b"\n")
        self._bytes += first
        if not feed:
            return
        self.newline()
        *whole_lines, last = rest.split(b"\n")
        if whole_lines and self.style is PLAIN and self.align == "left":
            # Plain lines between two line feeds: decoded in one go (a line feed never sits
            # inside a character in any page or two-byte encoding we decode).
            self.lines += self.decoder.decode(b"\n".join(whole_lines)).split("\n")
        else:
            for line in whole_lines:
                self._bytes += line
                self.newline()
        self._bytes += last

    def before_switch(self) -> None:
        """Decode what came before a code page / set / style switch, under the old one."""
        if self._bytes:
            self._decoded.append(self.decoder.decode(self._bytes))
            self._bytes.clear()

    def set_style(self, style: Style) -> None:
        if style is not self.style:
            self.before_switch()
            self.style = style
            self._marks.append((sum(map(len, self._decoded)), style))

    def newline(self, count: int = 1) -> None:
        if self._bytes:  # before_switch(), inlined: this runs once per printed line
            self._decoded.append(self.decoder.decode(self._bytes))
            self._bytes.clear()
        decoded = self._decoded
        text = decoded[0] if len(decoded) == 1 else "".join(decoded)
        if self._marks or self._line_align != "left":
            runs = _runs(text, self._marks)
            if self._line_align != "left" or any(style is not PLAIN for style, _ in runs):
                self.styled[len(self.lines)] = (self._line_align, runs)
        self.lines.append(text)
        if count > 1:
            self.lines.extend([""] * (count - 1))
        self._decoded = []
        self._line_align = self.align
        if self._marks or self.style is not PLAIN:
            self._marks = [(0, self.style)] if self.style is not PLAIN else []

    def has_pending(self) -> bool:
        return bool(self._bytes or self._decoded)

    def finish(self) -> tuple[list[str], dict[int, tuple[str, Runs]]]:
        """The lines without trailing spaces or trailing blank lines, and the styled ones."""
        if self.has_pending():
            self.newline()
        lines = [line.rstrip() for line in self.lines]
        while lines and not lines[-1].strip():
            lines.pop()
        styled = {n: (align, _rstrip_runs(runs)) for n, (align, runs) in self.styled.items()
                  if n < len(lines)}
        return lines, styled


def _runs(text: str, marks: list[tuple[int, Style]]) -> Runs:
    """Cut a line's text at its style marks into runs, dropping empty ones."""
    runs: Runs = []
    style, start = PLAIN, 0
    for offset, next_style in marks + [(len(text), PLAIN)]:
        if offset > start:
            if runs and runs[-1][0] is style:
                runs[-1] = (style, runs[-1][1] + text[start:offset])
            else:
                runs.append((style, text[start:offset]))
            start = offset
        style = next_style
    return runs


def _rstrip_runs(runs: Runs) -> Runs:
    runs = list(runs)
    while runs:
        style, text = runs[-1]
        # Trailing spaces print nothing, unless inverted or underlined.
        if style.invert or style.underline or text.rstrip():
            break
        runs.pop()
    if runs and not (runs[-1][0].invert or runs[-1][0].underline):
        runs[-1] = (runs[-1][0], runs[-1][1].rstrip())
    return runs


def line_styles_json(styled: dict[int, tuple[str, Runs]]) -> list[dict]:
    """The receipt JSON's ``line_styles``: lines not listed are plain and left-aligned."""
    return [{"line": n, "align": align,
             "runs": [{"text": text, **style.json} for style, text in runs]}
            for n, (align, runs) in sorted(styled.items())]


def full_lines(lines: list[str], styled: dict[int, tuple[str, Runs]]) -> list[tuple[str, Runs]]:
    """Every line as (alignment, runs), for the renderers."""
    return [styled.get(n) or ("left", [(PLAIN, line)] if line else [])
            for n, line in enumerate(lines)]


class JobParser:
    """Parses one ESC/POS print job fed in arbitrary chunks; see the module docstring."""

    def __init__(self, two_byte_encoding: str = "gb18030", keep_bitmaps: bool = False) -> None:
        # keep_bitmaps: renderers want image dots; the ingest path does not store them.
        self._keep_bitmaps = keep_bitmaps
        self.decoder = CharacterDecoder(two_byte_encoding)
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
        self._text = _TextBuilder(self.decoder)
        if previous is not None:
            self._text.carry_over(previous)
        self._has_content = False
        self._unknown = 0
        self._content = ContentCollector(lambda: len(self._text.lines), self._keep_bitmaps)

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
        self._end_receipt(CUT_NONE, truncated, events)
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
                self._end_receipt(cut, False, events)
        self._raw += memoryview(buf)[raw_mark:pos]
        return pos

    def _control(self, byte: int) -> None:
        if byte == LF:
            self._text.newline()
        elif byte == HT:
            self._text.add(b"\t")
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
        elif name == "FS q":
            self._images_follow = measured.images_follow
        elif name == "ESC d":
            self._text.newline(max(command[2], 1))
        elif name == "ESC J" and self._text.has_pending():
            self._text.newline()
        elif name in STYLE_COMMAND_NAMES:
            if name == "ESC a":
                self._text.set_align(alignment(command) or self._text.align)
            else:
                self._text.set_style(apply(self._text.style, name, command))
        elif name in _DECODER_COMMANDS:
            self._text.before_switch()
            _DECODER_COMMANDS[name](self.decoder, command)
        elif name == "ESC @":
            self._text.reset()
        elif name == "GS V":
            return _GS_V_CUTS[command[2]]
        elif name in ("ESC i", "ESC m"):
            # Epson: ESC i leaves one point uncut, ESC m three: both partial cuts.
            return CUT_PARTIAL
        return None

    def _end_receipt(self, cut: str, truncated: bool, events: list[Event]) -> None:
        if self._has_content:
            lines, styled = self._text.finish()
            details = self._content.to_json()
            details["line_styles"] = line_styles_json(styled)
            events.append(ParsedReceipt(
                raw=bytes(self._raw),
                text="\n".join(lines),
                cut=cut,
                truncated=truncated,
                unknown_commands=self._unknown,
                details=details,
                layout=(Layout(full_lines(lines, styled), self._content) if self._keep_bitmaps
                        else None),
            ))
        self._start_receipt()

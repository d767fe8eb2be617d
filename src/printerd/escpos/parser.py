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

# Commands up to this many bytes are buffered whole before they are handled; longer ones are
# handled from their header and their payload streams past.
CAPTURE_LIMIT = 64 * 1024

LF, CR, HT = 0x0A, 0x0D, 0x09
_TEXT_RUN = re.compile(rb"[\x20-\xff]+")

CUT_FULL, CUT_PARTIAL, CUT_NONE = "full", "partial", "none"
_GS_V_CUTS = {0: CUT_FULL, 48: CUT_FULL, 65: CUT_FULL, 97: CUT_FULL, 103: CUT_FULL,
              1: CUT_PARTIAL, 49: CUT_PARTIAL, 66: CUT_PARTIAL, 98: CUT_PARTIAL, 104: CUT_PARTIAL}

# Commands that put ink on paper other than text: a receipt may consist of only these.
_MARKING_COMMANDS = frozenset({
    "GS v 0", "GS Q 0", "ESC *", "GS k", "GS ( k", "GS ( L", "GS 8 L", "FS p", "GS /",
})


def _set_page(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.page = command[2]


def _set_international(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.international = command[2]


def _two_byte_on(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.two_byte = True


def _two_byte_off(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.two_byte = False


def _reset(decoder: CharacterDecoder, command: bytes) -> None:
    decoder.reset()


# Commands that change how bytes become characters.
_DECODER_COMMANDS = {"ESC t": _set_page, "ESC R": _set_international, "FS &": _two_byte_on,
                     "FS .": _two_byte_off, "ESC @": _reset}


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


Event = Union[StatusQuery, ParsedReceipt]


class _TextBuilder:
    """Collects printed characters into lines, decoding each run under the decoder's state."""

    def __init__(self, decoder: CharacterDecoder) -> None:
        self.decoder = decoder
        self.lines: list[str] = []
        self._decoded: list[str] = []  # the current line, decoded so far
        self._bytes = bytearray()  # the current line's bytes under the current decoding

    def add(self, data: bytes | bytearray | memoryview) -> None:
        self._bytes += data

    def before_switch(self) -> None:
        """Decode what came before a code page / set / two-byte switch, under the old one."""
        if self._bytes:
            self._decoded.append(self.decoder.decode(bytes(self._bytes)))
            self._bytes.clear()

    def newline(self, count: int = 1) -> None:
        self.before_switch()
        self.lines.append("".join(self._decoded))
        self._decoded = []
        self.lines.extend([""] * (count - 1))

    def has_pending(self) -> bool:
        return bool(self._bytes or self._decoded)

    def text(self) -> str:
        self.before_switch()
        lines = self.lines + (["".join(self._decoded)] if self._decoded else [])
        while lines and not lines[-1].strip():
            lines.pop()
        return "\n".join(line.rstrip() for line in lines)


class JobParser:
    """Parses one ESC/POS print job fed in arbitrary chunks; see the module docstring."""

    def __init__(self, two_byte_encoding: str = "gb18030") -> None:
        self.decoder = CharacterDecoder(two_byte_encoding)
        self._buffer = bytearray()  # bytes of a command not yet complete
        self._skip = 0  # payload bytes of a long command still to pass through
        self._images_follow = 0  # FS q: images still to measure
        self._closed = False
        self._start_receipt()

    def _start_receipt(self) -> None:
        self._raw = bytearray()
        self._text = _TextBuilder(self.decoder)
        self._has_content = False
        self._unknown = 0
        self._content = ContentCollector()

    def feed(self, data: bytes) -> list[Event]:
        """Consume the next bytes of the job and return the events they complete."""
        if self._closed:
            raise ValueError("feed() after close()")
        if self._skip:
            passed = min(self._skip, len(data))
            self._raw += memoryview(data)[:passed]
            self._skip -= passed
            data = data[passed:]
            if not data:
                return []
        buf = self._buffer
        buf += data
        events: list[Event] = []
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
                self._text.add(memoryview(buf)[pos:run_end])
                self._has_content = True
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
            cut = self._command(measured, command, events)
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
        elif name == "FS q":
            self._images_follow = measured.images_follow
        elif name == "ESC d":
            self._text.newline(max(command[2], 1))
        elif name == "ESC J" and self._text.has_pending():
            self._text.newline()
        elif name in _DECODER_COMMANDS:
            self._text.before_switch()
            _DECODER_COMMANDS[name](self.decoder, command)
        elif name == "GS V":
            return _GS_V_CUTS[command[2]]
        elif name in ("ESC i", "ESC m"):
            # Epson: ESC i leaves one point uncut, ESC m three: both partial cuts.
            return CUT_PARTIAL
        return None

    def _end_receipt(self, cut: str, truncated: bool, events: list[Event]) -> None:
        if self._has_content:
            events.append(ParsedReceipt(
                raw=bytes(self._raw),
                text=self._text.text(),
                cut=cut,
                truncated=truncated,
                unknown_commands=self._unknown,
                details=self._content.to_json(),
            ))
        self._start_receipt()

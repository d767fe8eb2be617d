"""
What the printer was sent: a job listed element by element (commands, text runs, control bytes).

``list_commands(raw, emulation, ...)`` walks the bytes as the parsers do, on the same command
measurement (``escpos.commands.measure``, ``star.commands.measure``), and says for each element
its offset, length, name, parameters, the text it prints (decoded under the code page in force),
whether the printer knows it, and, for a status query, the reply the printer gives in a state.
A POS developer reads it to find why a receipt looks wrong: an unknown command, a code page
switched too late, a size byte off by one.

Pure and bounded: at most ``MAX_ELEMENTS`` elements are walked and ``limit`` listed, a text
run shows at most ``TEXT_SHOWN`` characters and a command ``PARAMS_SHOWN`` parameter bytes,
however large the job; a 64 MiB image payload is stepped over by its length field.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

from printerd.escpos import commands as escpos
from printerd.escpos.codepages import DEFAULT_TWO_BYTE_ENCODING, printer_decoder
from printerd.escpos.parser import DECODER_COMMANDS
from printerd.escpos.profiles import DEFAULT_PROFILE, PrinterProfile
from printerd.escpos.status import (
    DEFAULT_IDENTITY, STATUS_QUERY_NAMES, PrinterIdentity, PrinterState,
)
from printerd.emulation import EMULATIONS, StatusReplies
from printerd.star import commands as star
from printerd.star.codepages import star_page
from printerd.star.parser import STAR_DECODER_COMMANDS
from printerd.star.status import ASB_REQUEST, VERSION_REQUEST

MAX_ELEMENTS = 100_000  # elements walked per listing: the work a request may cause
MAX_LIMIT = 1_000  # elements listed per page
TEXT_SHOWN = 200  # bytes of one text run decoded and shown
PARAMS_SHOWN = 16  # parameter bytes shown per command

HEALTHY = PrinterState()
_TEXT = re.compile(rb"[\x20-\xff]+")
LF = 0x0A

# Single control bytes each command set acts on, by name; other control bytes are ignored.
_ESCPOS_CONTROLS = {0x0A: "LF", 0x0D: "CR", 0x09: "HT", 0x0C: "FF", 0x18: "CAN", 0x00: "NUL"}
_STAR_CONTROLS = {0x0A: "LF", 0x0D: "CR", 0x09: "HT", 0x0C: "FF", 0x0B: "VT", 0x0E: "SO",
                  0x0F: "SI", 0x12: "DC2", 0x14: "DC4", 0x18: "CAN", 0x07: "BEL", 0x1A: "SUB",
                  0x19: "EM", 0x1C: "FS", 0x04: "EOT", 0x05: "ENQ", 0x17: "ETB", 0x00: "NUL"}
_STAR_STATUS_BYTES = frozenset({0x04, 0x05, 0x17})
_STAR_RASTER_CONTROLS = frozenset({0x04, 0x05, 0x17, 0x07, 0x1A, 0x19, 0x1C})
_ASCII_NAMES = {0x1B: "ESC", 0x1D: "GS", 0x1C: "FS", 0x10: "DLE", 0x1E: "RS"}


@dataclass
class Listing:
    """One page of a job's elements and what the walk found in the part it walked."""

    emulation: str
    size: int  # bytes in the job
    elements: list[dict[str, Any]] = field(default_factory=list)  # the page asked for
    walked: int = 0  # elements walked
    walked_bytes: int = 0  # bytes they cover (== size once the walk reached the end)
    commands: int = 0
    text_runs: int = 0
    unknown: int = 0
    status_queries: int = 0
    more: bool = False  # elements follow the page

    def to_json(self) -> dict[str, Any]:
        return {"commands": self.elements, "summary": {
            "emulation": self.emulation, "bytes": self.size, "elements": self.walked,
            "walked_bytes": self.walked_bytes, "complete": self.walked_bytes == self.size,
            "commands": self.commands, "text_runs": self.text_runs, "unknown": self.unknown,
            "status_queries": self.status_queries}}


def list_commands(raw: bytes, emulation: str = "epson", two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING,
                  state: PrinterState = HEALTHY,
                  identity: PrinterIdentity = DEFAULT_IDENTITY, start: int = 0,
                  limit: int = MAX_LIMIT, profile: PrinterProfile = DEFAULT_PROFILE) -> Listing:
    """
    Elements ``start`` .. ``start + limit`` of the job (counted from 0), with the summary of
    the walk (see the module docstring).  ``state`` and ``identity`` are what status replies
    report; replies follow the emulation's own rules (automatic status, Star's ETB counter).
    ``profile``: how the printer's maker numbers ESC t pages, and whether it starts in two-byte
    mode.
    """
    limit = max(0, min(limit, MAX_LIMIT))
    status = EMULATIONS[emulation].new_status()
    replies = _Replies(status, state, identity)
    walk = (_star_elements(raw, two_byte_encoding, profile, replies) if emulation == "star"
            else _escpos_elements(raw, two_byte_encoding, profile, replies))
    listing = Listing(emulation, len(raw))
    for index, element in enumerate(walk):
        if index >= MAX_ELEMENTS:
            break
        listing.walked += 1
        listing.walked_bytes = element["offset"] + element["length"]
        kind = element["kind"]
        listing.commands += kind == "command"
        listing.text_runs += kind == "text"
        listing.unknown += not element["known"]
        listing.status_queries += "reply" in element
        if start <= index < start + limit:
            listing.elements.append(element)
        elif index >= start + limit:
            listing.more = True
    return listing


@dataclass
class _Replies:
    status: StatusReplies
    state: PrinterState
    identity: PrinterIdentity

    def to(self, query: bytes) -> Optional[str]:
        reply = self.status.reply(query, self.state, self.identity)
        return None if reply is None else reply.hex(" ")


def _text(raw: bytes, pos: int, end: int, decode: Any) -> dict[str, Any]:
    shown = raw[pos:min(end, pos + TEXT_SHOWN)]
    element = {"offset": pos, "length": end - pos, "kind": "text", "name": "text", "known": True,
               "text": decode(shown)}
    if end - pos > len(shown):
        element["more_bytes"] = end - pos - len(shown)
    return element


def _control(pos: int, byte: int, names: dict[int, str]) -> dict[str, Any]:
    name = names.get(byte)
    return {"offset": pos, "length": 1, "kind": "control", "name": name or f"0x{byte:02x}",
            "known": name is not None}


def _name_bytes(name: str, length: int) -> int:
    """How many of a command's bytes its name spells ("GS ( k": 3); the rest are parameters."""
    if name == "FS q image":
        return 0  # xL xH yL yH and the dots: all parameters
    if name.startswith("raster "):
        return 1  # Star raster mode's b n1 n2
    return min(len([word for word in name.split() if word != "Star"]), length)


def _command(raw: bytes, pos: int, name: str, length: int, known: bool) -> dict[str, Any]:
    available = min(length, len(raw) - pos)
    named = _name_bytes(name, available)
    params = raw[pos + named:pos + min(available, named + PARAMS_SHOWN)]
    element: dict[str, Any] = {"offset": pos, "length": available, "kind": "command",
                               "name": name, "known": known, "params": list(params)}
    if available - named > len(params):
        element["more_bytes"] = available - named - len(params)
    if available < length:
        element["cut_off"] = length - available  # the job ended inside it
    return element


def _incomplete(raw: bytes, pos: int) -> dict[str, Any]:
    """The job ended before a command's length could be known."""
    name = _ASCII_NAMES.get(raw[pos], f"0x{raw[pos]:02x}") + " (incomplete)"
    return {"offset": pos, "length": len(raw) - pos, "kind": "command", "name": name,
            "known": False, "params": list(raw[pos + 1:pos + 1 + PARAMS_SHOWN])}


def _escpos_elements(raw: bytes, two_byte_encoding: str, profile: PrinterProfile,
                     replies: _Replies) -> Iterator[dict[str, Any]]:
    decoder = printer_decoder(two_byte_encoding, profile)
    pos, size, images_follow = 0, len(raw), 0
    while pos < size:
        byte = raw[pos]
        if images_follow == 0 and byte >= 0x20:
            end = _TEXT.match(raw, pos).end()  # type: ignore[union-attr]
            yield _text(raw, pos, end, decoder.decode)
            pos = end
            continue
        if images_follow == 0 and not escpos.is_command_prefix(byte):
            yield _control(pos, byte, _ESCPOS_CONTROLS)
            pos += 1
            continue
        measured = escpos.measure_fsq_image(raw, pos) if images_follow \
            else escpos.measure(raw, pos)
        if measured is None:
            yield _incomplete(raw, pos)
            return
        element = _command(raw, pos, measured.name, measured.length, measured.known)
        command = raw[pos:pos + measured.length]
        if images_follow:
            images_follow -= 1
        elif measured.known:
            name = measured.name
            if name == "FS q":
                images_follow = measured.images_follow
            elif name == "ESC @":
                decoder.reset()
            elif name in DECODER_COMMANDS and len(command) == measured.length:
                DECODER_COMMANDS[name](decoder, command)
            elif name in STATUS_QUERY_NAMES:
                element["reply"] = replies.to(command)
        yield element
        pos += element["length"]


def _star_elements(raw: bytes, two_byte_encoding: str, profile: PrinterProfile,
                   replies: _Replies) -> Iterator[dict[str, Any]]:
    decoder = printer_decoder(two_byte_encoding, profile, star_page)
    pos, size, raster = 0, len(raw), False
    while pos < size:
        byte = raw[pos]
        foreign = False
        measured: Optional[escpos.Measured]
        if raster:
            measured = star.measure_raster(raw, pos)
            if measured is not None and not measured.known and measured.length == 1:
                # Raster mode takes raster rows, status requests and drawer kicks only.
                element = _control(pos, byte, _STAR_CONTROLS)
                element["known"] = byte in _STAR_RASTER_CONTROLS
                if byte in _STAR_STATUS_BYTES:
                    element["reply"] = replies.to(bytes([byte]))
                yield element
                pos += 1
                continue
        elif byte >= 0x20:
            end = _TEXT.match(raw, pos).end()  # type: ignore[union-attr]
            yield _text(raw, pos, end, decoder.decode)
            pos = end
            continue
        elif byte == star.ESC:
            measured = star.measure(raw, pos)
            if measured is not None and not measured.known:
                other = escpos.measure(raw, pos)
                if other is not None and other.known:
                    measured, foreign = other, True
        elif byte in (star.GS, star.DLE) or (byte == star.FS and size - pos >= 2):
            other = escpos.measure(raw, pos) if size - pos >= 2 else None
            if other is None or not other.known:
                yield _control(pos, byte, _STAR_CONTROLS)
                pos += 1
                continue
            measured, foreign = other, True
        else:
            element = _control(pos, byte, _STAR_CONTROLS)
            if byte in _STAR_STATUS_BYTES:
                element["reply"] = replies.to(bytes([byte]))
            yield element
            pos += 1
            continue
        if measured is None:
            yield _incomplete(raw, pos)
            return
        if foreign:
            # An ESC/POS command in a Star job: a Star printer skips it and answers none, as
            # the Star parser does (DLE EOT n is not Star's EOT).
            element = _command(raw, pos, measured.name, measured.length, False)
            element["name"] = f"{measured.name} (ESC/POS)"
            yield element
            pos += element["length"]
            continue
        element = _command(raw, pos, measured.name, measured.length, measured.known)
        command = raw[pos:pos + measured.length]
        name = measured.name
        if measured.known and len(command) == measured.length:
            if name == "ESC @":
                decoder.reset()
            elif name in STAR_DECODER_COMMANDS:
                STAR_DECODER_COMMANDS[name](decoder, command)
            elif name in ("ESC * r A", "ESC * r B"):
                raster = name == "ESC * r A"
            elif command in (ASB_REQUEST, VERSION_REQUEST) \
                    or command[:3] in (b"\x1b\x1ea", b"\x1b\x1eE"):
                element["reply"] = replies.to(command)
        yield element
        pos += element["length"]

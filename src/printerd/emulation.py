"""
What a printer speaks (its ``emulation`` setting): the parser that splits a job into receipts,
and the status replies of one connection.  The raw port takes one ``Emulation`` per printer, so
another command set plugs in its own parser and replies without touching the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from printerd.escpos.parser import Event, JobParser
from printerd.escpos.profiles import PrinterProfile
from printerd.escpos.status import PrinterIdentity, PrinterState, automatic_status, reply_to
from printerd.star.parser import StarJobParser
from printerd.star.status import StarStatus


class JobParserLike(Protocol):
    """A sans-IO job parser: bytes in any chunks -> status queries and receipts."""

    # Grows whenever the job puts something on paper: a connection whose parser's count does
    # not grow prints nothing (resets, feeds, status queries) and may lose its slot to others.
    content_bytes: int

    def feed(self, data: bytes) -> list[Event]:
        """Consume the next bytes of the job; return the events they complete."""

    def close(self, truncated: bool = False) -> list[Event]:
        """The job ended: return the events of what is still pending."""


class NewParser(Protocol):
    """Makes a job's parser: the printer's two-byte encoding and paper; ``keep_bitmaps`` for
    renderers, which draw the images' dots (the raw port does not store them)."""

    def __call__(self, two_byte_encoding: str, profile: PrinterProfile,
                 keep_bitmaps: bool = False) -> JobParserLike:
        """A new parser for one job."""


class StatusReplies(Protocol):
    """One connection's status replies (and what it asked to be sent unasked)."""

    def reply(self, query: bytes, state: PrinterState,
              identity: PrinterIdentity) -> Optional[bytes]:
        """The reply to one status query (a StatusQuery's command), or None: no reply."""

    def state_changed(self, state: PrinterState) -> Optional[bytes]:
        """The printer's state was set: what to send now (automatic status), or None."""


class EpsonStatus:
    """An Epson printer's replies; ``GS a n`` turns automatic status back on or off."""

    def __init__(self) -> None:
        self.automatic = False

    def reply(self, query: bytes, state: PrinterState,
              identity: PrinterIdentity) -> Optional[bytes]:
        if query[:2] == b"\x1da" and len(query) == 3:
            self.automatic = bool(query[2])
        return reply_to(query, state, identity)

    def state_changed(self, state: PrinterState) -> Optional[bytes]:
        return automatic_status(state) if self.automatic else None


@dataclass(frozen=True)
class Emulation:
    """A command set: its parser (given the two-byte encoding and the paper) and its replies."""

    name: str
    new_parser: NewParser
    new_status: Callable[[], StatusReplies]


def _escpos_parser(two_byte_encoding: str, profile: PrinterProfile,
                   keep_bitmaps: bool = False) -> JobParser:
    return JobParser(two_byte_encoding, keep_bitmaps=keep_bitmaps, profile=profile)


def _star_parser(two_byte_encoding: str, profile: PrinterProfile,
                 keep_bitmaps: bool = False) -> StarJobParser:
    return StarJobParser(two_byte_encoding, keep_bitmaps=keep_bitmaps, profile=profile)


ESCPOS = Emulation("epson", _escpos_parser, EpsonStatus)
STAR = Emulation("star", _star_parser, StarStatus)
EMULATIONS = {emulation.name: emulation for emulation in (ESCPOS, STAR)}

"""
What a printer model speaks: the parser that splits a job into receipts and the functions that
answer its status queries.  The raw port takes one ``Emulation`` per printer, so another command
set (Star Line mode, say) plugs in its own parser and replies without touching the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Protocol

from printerd.escpos.parser import Event, JobParser
from printerd.escpos.status import PrinterIdentity, PrinterState, automatic_status, reply_to


class JobParserLike(Protocol):
    """A sans-IO job parser: bytes in any chunks -> status queries and receipts."""

    # Grows whenever the job puts something on paper: a connection whose parser's count does
    # not grow prints nothing (resets, feeds, status queries) and may lose its slot to others.
    content_bytes: int

    def feed(self, data: bytes) -> list[Event]:
        """Consume the next bytes of the job; return the events they complete."""

    def close(self, truncated: bool = False) -> list[Event]:
        """The job ended: return the events of what is still pending."""


ReplyFunction = Callable[[bytes, PrinterState, PrinterIdentity], Optional[bytes]]


@dataclass(frozen=True)
class Emulation:
    """A command set: its parser (given the two-byte encoding) and its status replies."""

    name: str
    new_parser: Callable[[str], JobParserLike]
    reply: ReplyFunction  # the reply to one status query, or None (no reply)
    automatic_status: Callable[[PrinterState], bytes]  # sent on each change once enabled
    # Whether a status query turns automatic status on (True) or off (False); None: neither.
    automatic_status_switch: Callable[[bytes], Optional[bool]]


def _epson_automatic_status_switch(query: bytes) -> Optional[bool]:
    # GS a n: any bit of n enables automatic status back, n = 0 disables it.
    return bool(query[2]) if query[:2] == b"\x1da" else None


ESCPOS = Emulation("escpos", JobParser, reply_to, automatic_status,
                   _epson_automatic_status_switch)

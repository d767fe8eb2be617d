"""
What an Epson TM printer answers to real-time status queries, for a given printer state.

Pure functions of (query bytes, state): the protocol writes whatever ``reply_to`` returns and
nothing else, so a client never receives a byte it did not ask for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

PAPER_OK, PAPER_NEAR_END, PAPER_OUT = "ok", "near_end", "out"


@dataclass(frozen=True)
class PrinterState:
    """The state a status reply reports. A healthy, online printer by default."""

    online: bool = True
    paper: str = PAPER_OK
    cover_open: bool = False
    drawer_open: bool = False


def _dle_eot(n: int, state: PrinterState) -> Optional[bytes]:
    # Bits 0x02 and 0x10 are fixed to 1 in every DLE EOT reply.
    fixed = 0x12
    if n == 1:
        # The reference table's healthy reply is 0x16: pin 3 reads high while the drawer is shut.
        drawer = 0 if state.drawer_open else 0x04
        return bytes([fixed | drawer | (0 if state.online else 0x08)])
    if n == 2:
        cover = 0x04 if state.cover_open else 0
        paper_stop = 0x20 if state.paper == PAPER_OUT else 0
        return bytes([fixed | cover | paper_stop])
    if n == 3:
        return bytes([fixed])
    if n == 4:
        paper = {PAPER_OK: 0, PAPER_NEAR_END: 0x0C, PAPER_OUT: 0x6C}[state.paper]
        return bytes([fixed | paper])
    return None


def _paper_sensor(state: PrinterState) -> bytes:
    # GS r 1 and ESC v: 0x03 near end, 0x0C paper out.
    return bytes([{PAPER_OK: 0, PAPER_NEAR_END: 0x03, PAPER_OUT: 0x0F}[state.paper]])


def reply_to(query: bytes, state: PrinterState) -> Optional[bytes]:
    """The reply bytes for a status query command, or None if the printer stays silent."""
    if query[:2] == b"\x10\x04" and len(query) >= 3:
        return _dle_eot(query[2], state)
    if query[:2] == b"\x1dr" and len(query) == 3:
        if query[2] in (1, 49):
            return _paper_sensor(state)
        if query[2] in (2, 50):
            # ...whereas GS r 2 answers 0x00 for a healthy printer, 0x01 with the drawer open.
            return bytes([0x01 if state.drawer_open else 0x00])
        return None
    if query == b"\x1bv":
        return _paper_sensor(state)
    return None


# Commands whose only effect is to ask for a reply: a job made only of these is not a receipt.
STATUS_QUERY_NAMES = frozenset({"DLE EOT", "DLE ENQ", "DLE DC4", "GS r", "ESC v", "GS I", "GS a"})

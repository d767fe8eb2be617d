"""
What a Star printer (TSP100/TSP143, TSP650, mC-Print) answers to status requests, for a given
printer state.

Pure: ``StarStatus.reply(query, state, identity)`` gives the bytes to write (or None) and keeps
the little a connection remembers between requests: whether automatic status (ASB) is on and
the ETB counter.  The bits are those of Star's "Automatic Status" appendix (ASB version 3:
nine bytes, as TSP100 and TSP650 send), the ENQ and EOT status tables and ``ESC # *``.
"""

from __future__ import annotations

from typing import Optional

from printerd.escpos.status import (
    PAPER_NEAR_END, PAPER_OK, PAPER_OUT, PrinterIdentity, PrinterState,
)

STAR_FIRMWARE = "1.0"

# Header 1: the byte count (9) in bits 1-3 and 5, bit 0 set; header 2: ASB version 3.
_ASB_HEADER = bytes([0x23, 0x06])

ENQ, EOT, ETB = b"\x05", b"\x04", b"\x17"
ASB_REQUEST = b"\x1b\x06\x01"  # ESC ACK SOH
VERSION_REQUEST = b"\x1b#*\n\x00"  # ESC # * LF NUL


def automatic_status(state: PrinterState, etb: int = 0, etb_executed: bool = False) -> bytes:
    """The nine bytes of automatic status (ASB)."""
    # Printer status 1: 0x20 cover open, 0x08 offline, 0x04 drawer (compulsion switch),
    # 0x02 ETB executed.  A printer stops (goes offline) with its cover open or out of paper.
    offline = not state.online or state.cover_open or state.paper == PAPER_OUT
    first = (0x20 if state.cover_open else 0) | (0x08 if offline else 0) \
        | (0x04 if state.drawer_open else 0) | (0x02 if etb_executed else 0)
    # Printer status 4: 0x08 paper end, 0x04 paper near end (an empty roll is past both).
    paper = {PAPER_OK: 0, PAPER_NEAR_END: 0x04, PAPER_OUT: 0x0C}[state.paper]
    # Printer status 6: the ETB counter's five bits in bits 1-3 and 5-6.
    counter = (etb & 0x07) << 1 | (etb >> 3 & 0x03) << 5
    return _ASB_HEADER + bytes([first, 0, 0, paper, 0, counter, 0])


def enq_status(state: PrinterState) -> bytes:
    # 0x80 compulsion switch (drawer), 0x20 receive buffer empty (we print at once), 0x08 paper end.
    return bytes([0x20 | (0x80 if state.drawer_open else 0)
                  | (0x08 if state.paper == PAPER_OUT else 0)])


def eot_status(state: PrinterState) -> bytes:
    # 0x10 always set; 0x08 paper end, 0x04 paper near end.
    return bytes([0x10 | {PAPER_OK: 0, PAPER_NEAR_END: 0x04, PAPER_OUT: 0x0C}[state.paper]])


def version(identity: PrinterIdentity) -> bytes:
    """``ESC # * , model Ver version LF NUL``."""
    text = f"{identity.model} Ver{STAR_FIRMWARE}".encode("ascii", "replace")
    return b"\x1b#*," + text + b"\n\x00"


def _flag(n: int) -> bool:
    return bool((n - 0x30 if n >= 0x30 else n) & 0x01)


class StarStatus:
    """One connection's status replies; see the module docstring."""

    def __init__(self) -> None:
        self.automatic = False  # ESC RS a n: send ASB on every change
        self.etb = 0  # ETB counter, 5 bits

    def reply(self, query: bytes, state: PrinterState,
              identity: PrinterIdentity) -> Optional[bytes]:
        """The bytes a Star printer sends for ``query`` (a StatusQuery's command), or None."""
        if query == ASB_REQUEST:
            return automatic_status(state, self.etb)
        if query == ENQ:
            return enq_status(state)
        if query == EOT:
            return eot_status(state)
        if query == VERSION_REQUEST:
            return version(identity)
        if query[:3] == b"\x1b\x1ea" and len(query) == 4:
            # Enabling ASB sends the status at once, as the first of the changes it reports.
            self.automatic = _flag(query[3])
            return automatic_status(state, self.etb) if self.automatic else None
        if query[:3] == b"\x1b\x1eE" and len(query) == 4:
            self.etb = 0  # ESC RS E n: initialise the ETB counter
            return None
        if query == ETB:
            # Everything before ETB is printed: the counter moves, which ASB reports.
            self.etb = (self.etb + 1) & 0x1F
            return automatic_status(state, self.etb, etb_executed=True) if self.automatic \
                else None
        return None

    def state_changed(self, state: PrinterState) -> Optional[bytes]:
        """The printer's state was set: with ASB on, the new status."""
        return automatic_status(state, self.etb) if self.automatic else None

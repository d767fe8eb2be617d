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

    def to_json(self) -> dict:
        return {"online": self.online, "paper": self.paper, "cover_open": self.cover_open,
                "drawer_open": self.drawer_open}


@dataclass(frozen=True)
class PrinterIdentity:
    """What GS I answers: the model a POS believes it is talking to."""

    maker: str = "EPSON"
    model: str = "TM-T88V"
    serial: str = "PRINTERD0001"
    firmware: str = "30.00 ESC/POS"
    model_id: int = 0x20  # GS I 1: TM-T88 family
    type_id: int = 0x02  # GS I 2: autocutter fitted
    rom_version: int = 0x64  # GS I 3


DEFAULT_IDENTITY = PrinterIdentity()


# How each state switch shows in Epson's status bits (TM-T88V / TM-T20 references):
# - The printer is offline while its cover is open, while printing is stopped by the paper end,
#   and while an error is pending. ``online: false`` with neither of the other two is reported as
#   an automatically recoverable error (as a print head that overheated), the one offline cause
#   that needs no other switch; it shows in the error bits too.
# - Every reply reports the drawer as the level of kick-out connector pin 3. Epson's drivers
#   take LOW as "drawer open" unless told otherwise (ePOS SDK drawerOpenLevel, default
#   DRAWER_OPEN_LEVEL_LOW), so a closed drawer reads HIGH in DLE EOT 1, GS r 2 and GS a alike.
# - Paper out also trips the near-end sensor: both sensor pairs report no paper.


def _offline(state: PrinterState) -> bool:
    return not state.online or state.cover_open or state.paper == PAPER_OUT


def _pin3_high(state: PrinterState) -> bool:
    return not state.drawer_open


def _near_end(state: PrinterState) -> bool:
    return state.paper in (PAPER_NEAR_END, PAPER_OUT)


def automatic_status(state: PrinterState) -> bytes:
    """The 4 bytes of automatic status back (GS a), sent when enabled and on every change."""
    # Byte 1 has 0x10 set and the two low bits clear, the bytes after it 0x10 clear: that is
    # how a client tells an ASB block from other replies.
    first = 0x10
    first |= 0x04 if _pin3_high(state) else 0
    first |= 0x08 if _offline(state) else 0
    first |= 0x20 if state.cover_open else 0
    errors = 0 if state.online else 0x40  # automatically recoverable error
    paper = (0x03 if _near_end(state) else 0) | (0x0C if state.paper == PAPER_OUT else 0)
    return bytes([first, errors, paper, 0x00])


def _dle_eot(n: int, state: PrinterState) -> Optional[bytes]:
    # Bits 0x02 and 0x10 are fixed to 1 in every DLE EOT reply.
    fixed = 0x12
    if n == 1:  # printer status
        return bytes([fixed | (0x04 if _pin3_high(state) else 0)
                      | (0x08 if _offline(state) else 0)])
    if n == 2:  # offline cause
        return bytes([fixed | (0x04 if state.cover_open else 0)
                      | (0x20 if state.paper == PAPER_OUT else 0)
                      | (0 if state.online else 0x40)])
    if n == 3:  # error cause
        return bytes([fixed | (0 if state.online else 0x40)])
    if n == 4:  # roll paper sensors
        return bytes([fixed | (0x0C if _near_end(state) else 0)
                      | (0x60 if state.paper == PAPER_OUT else 0)])
    return None


def _paper_sensor(state: PrinterState) -> bytes:
    # GS r 1 and ESC v: 0x03 near end, 0x0C paper out.
    return bytes([(0x03 if _near_end(state) else 0) | (0x0C if state.paper == PAPER_OUT else 0)])


def _gs_i(n: int, identity: PrinterIdentity) -> Optional[bytes]:
    if n in (1, 49):
        return bytes([identity.model_id])
    if n in (2, 50):
        return bytes([identity.type_id])
    if n in (3, 51):
        return bytes([identity.rom_version])
    text = {65: identity.firmware, 66: identity.maker, 67: identity.model, 68: identity.serial,
            69: "", 112: ""}.get(n)
    if text is None:
        return None
    # Printer information B: a header byte 0x5F, ASCII, NUL.
    return b"\x5f" + text.encode("ascii", "replace") + b"\x00"


def reply_to(query: bytes, state: PrinterState,
             identity: PrinterIdentity = DEFAULT_IDENTITY) -> Optional[bytes]:
    """The reply bytes for a status query command, or None if the printer stays silent."""
    if query[:2] == b"\x10\x04" and len(query) == 4:
        # DLE EOT 7 a (ink), 8 3 (label peeler), 18 1 (interface): a thermal printer with no
        # ink, no peeler and a working interface has nothing to report but the fixed bits.
        known = {7: (1, 2, 49, 50), 8: (3, 51), 18: (1, 49)}.get(query[2], ())
        return bytes([0x12]) if query[3] in known else None
    if query[:2] == b"\x10\x04" and len(query) == 3:
        return _dle_eot(query[2], state)
    if query[:2] == b"\x1dr" and len(query) == 3:
        if query[2] in (1, 49):
            return _paper_sensor(state)
        if query[2] in (2, 50):
            # Drawer kick-out connector pin 3, as in DLE EOT 1.
            return bytes([0x01 if _pin3_high(state) else 0x00])
        return None
    if query == b"\x1bv":
        return _paper_sensor(state)
    if query[:2] == b"\x1dI" and len(query) == 3:
        return _gs_i(query[2], identity)
    if query[:2] == b"\x1da" and len(query) == 3:
        # Enabling automatic status back sends the status at once; disabling sends nothing.
        return automatic_status(state) if query[2] else None
    if query[:3] == b"\x1d(H" and len(query) == 11 and query[5:7] == b"00":
        # A "process ID" response: echoed once everything before it has been processed,
        # which, for a printer that prints instantly, is now.
        return b"\x37\x22" + query[7:11] + b"\x00"
    if query == b"\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08":
        return b"\x37\x25\x00"  # clear buffers: done
    return None


# Commands whose only effect is to ask for a reply: a job made only of these is not a receipt.
STATUS_QUERY_NAMES = frozenset({
    "DLE EOT", "DLE ENQ", "DLE DC4", "GS r", "ESC v", "GS I", "GS a", "GS ( H",
})

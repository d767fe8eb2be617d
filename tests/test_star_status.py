"""Star status replies (ASB, ENQ, EOT, ETB, ESC # *) for every combination of the state switches."""

from __future__ import annotations

import itertools

import pytest

from printerd.escpos.status import PrinterIdentity, PrinterState
from printerd.star.status import StarStatus, automatic_status

HEALTHY = PrinterState()
IDENTITY = PrinterIdentity(maker="STAR", model="TSP143IIIU")
STATES = [PrinterState(online=online, paper=paper, cover_open=cover, drawer_open=drawer)
          for online, paper, cover, drawer in itertools.product(
              (True, False), ("ok", "near_end", "out"), (False, True), (False, True))]


def asb_length(header: int) -> int:
    """The byte count header 1 announces (bits 1-3 and 5), as Star documents it."""
    return ((header >> 1) & 0x07) | ((header >> 2) & 0x08)


@pytest.mark.parametrize("state", STATES, ids=lambda s: "-".join(
    f"{k}={v}" for k, v in s.to_json().items()))
def test_every_reply_tells_the_same_story(state):
    status = StarStatus()
    asb = status.reply(b"\x1b\x06\x01", state, IDENTITY)
    assert len(asb) == asb_length(asb[0]) == 9 and asb[0] & 0x91 == 0x01
    assert asb[1] == 0x06  # ASB version 3
    stopped = not state.online or state.cover_open or state.paper == "out"
    assert bool(asb[2] & 0x08) == stopped  # offline
    assert bool(asb[2] & 0x20) == state.cover_open
    assert bool(asb[2] & 0x04) == state.drawer_open
    assert bool(asb[5] & 0x08) == (state.paper == "out")  # paper end
    assert bool(asb[5] & 0x04) == (state.paper != "ok")  # paper near end
    assert asb[3] == asb[4] == asb[6] == asb[8] == 0  # no errors, no presenter
    assert all(byte & 0x91 == 0 for byte in asb[1:])  # only header 1 looks like header 1
    enq = status.reply(b"\x05", state, IDENTITY)
    assert enq == bytes([0x20 | (0x80 if state.drawer_open else 0)
                         | (0x08 if state.paper == "out" else 0)])
    eot = status.reply(b"\x04", state, IDENTITY)
    assert eot == bytes([0x10 | {"ok": 0, "near_end": 0x04, "out": 0x0C}[state.paper]])


def test_healthy_printer_replies():
    status = StarStatus()
    assert status.reply(b"\x1b\x06\x01", HEALTHY, IDENTITY) == bytes.fromhex("230600000000000000")
    assert status.reply(b"\x05", HEALTHY, IDENTITY) == b"\x20"
    assert status.reply(b"\x04", HEALTHY, IDENTITY) == b"\x10"
    assert status.reply(b"\x1b#*\n\x00", HEALTHY, IDENTITY) == b"\x1b#*,TSP143IIIU Ver1.0\n\x00"


def test_asb_on_sends_at_once_and_on_every_etb_and_state_change():
    status = StarStatus()
    assert status.reply(b"\x17", HEALTHY, IDENTITY) is None  # ETB without ASB: counted only
    assert status.state_changed(HEALTHY) is None
    first = status.reply(b"\x1b\x1ea\x01", HEALTHY, IDENTITY)
    assert first == automatic_status(HEALTHY, etb=1)
    after_etb = status.reply(b"\x17", HEALTHY, IDENTITY)
    assert after_etb[2] & 0x02  # ETB executed
    assert (after_etb[7] >> 1) & 0x07 == 2  # the counter moved on to 2
    paper_out = PrinterState(paper="out")
    changed = status.state_changed(paper_out)
    assert changed[5] & 0x08 and changed[2] & 0x08
    assert status.reply(b"\x1b\x1eE\x00", HEALTHY, IDENTITY) is None  # counter back to 0
    assert status.reply(b"\x1b\x06\x01", HEALTHY, IDENTITY)[7] == 0
    assert status.reply(b"\x1b\x1ea0", HEALTHY, IDENTITY) is None  # ASB off ("0")
    assert status.state_changed(paper_out) is None


def test_etb_counter_wraps_at_32_in_its_five_bits():
    status = StarStatus()
    status.reply(b"\x1b\x1ea\x01", HEALTHY, IDENTITY)
    counters = [status.reply(b"\x17", HEALTHY, IDENTITY)[7] for _ in range(33)]
    values = [(c >> 1 & 0x07) | (c >> 2 & 0x18) for c in counters]
    assert values == list(range(1, 32)) + [0, 1]
    assert all(c & 0x91 == 0 for c in counters)


def test_requests_it_does_not_know_get_no_reply():
    status = StarStatus()
    for query in (b"\x1b\x06\x02", b"\x1b#N?0000\n\x00", b"\x1b\x1dyI"):
        assert status.reply(query, HEALTHY, IDENTITY) is None

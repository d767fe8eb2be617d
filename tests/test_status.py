"""Real-time status replies for each printer state (the core subset)."""

import pytest

from printerd.escpos.status import PrinterState, reply_to

HEALTHY = PrinterState()


@pytest.mark.parametrize("query, reply", [
    (b"\x10\x04\x01", b"\x16"),
    (b"\x10\x04\x02", b"\x12"),
    (b"\x10\x04\x03", b"\x12"),
    (b"\x10\x04\x04", b"\x12"),
    (b"\x1dr\x01", b"\x00"),
    (b"\x1dr1", b"\x00"),
    (b"\x1dr\x02", b"\x00"),
    (b"\x1bv", b"\x00"),
])
def test_healthy_printer_replies(query, reply):
    assert reply_to(query, HEALTHY) == reply


@pytest.mark.parametrize("state, query, reply", [
    (PrinterState(online=False), b"\x10\x04\x01", b"\x1e"),
    (PrinterState(drawer_open=True), b"\x10\x04\x01", b"\x12"),
    (PrinterState(cover_open=True), b"\x10\x04\x02", b"\x16"),
    (PrinterState(paper="out"), b"\x10\x04\x02", b"\x32"),
    (PrinterState(paper="near_end"), b"\x10\x04\x04", b"\x1e"),
    (PrinterState(paper="out"), b"\x10\x04\x04", b"\x7e"),
    (PrinterState(paper="near_end"), b"\x1dr\x01", b"\x03"),
    (PrinterState(paper="out"), b"\x1bv", b"\x0f"),
    (PrinterState(drawer_open=True), b"\x1dr\x02", b"\x01"),
])
def test_replies_follow_the_state(state, query, reply):
    assert reply_to(query, state) == reply


def test_queries_it_does_not_know_get_no_reply():
    assert reply_to(b"\x10\x04\x09", HEALTHY) is None
    assert reply_to(b"\x1dr\x07", HEALTHY) is None

"""Real-time status replies for each printer state: Epson's documented bits, every combination."""

import itertools
import json
import urllib.request

import pytest
from escpos.printer import Network

from bench.daemon import Daemon
from printerd.escpos.status import PrinterState, automatic_status, reply_to

HEALTHY = PrinterState()


@pytest.mark.parametrize("query, reply", [
    (b"\x10\x04\x01", b"\x16"),
    (b"\x10\x04\x02", b"\x12"),
    (b"\x10\x04\x03", b"\x12"),
    (b"\x10\x04\x04", b"\x12"),
    (b"\x1dr\x01", b"\x00"),
    (b"\x1dr1", b"\x00"),
    (b"\x1dr\x02", b"\x01"),  # drawer shut: pin 3 HIGH, as DLE EOT 1's 0x04 says
    (b"\x1bv", b"\x00"),
    (b"\x10\x04\x07\x01", b"\x12"),
    (b"\x10\x04\x08\x03", b"\x12"),
    (b"\x10\x04\x12\x01", b"\x12"),
])
def test_healthy_printer_replies(query, reply):
    assert reply_to(query, HEALTHY) == reply


@pytest.mark.parametrize("state, query, reply", [
    (PrinterState(online=False), b"\x10\x04\x01", b"\x1e"),
    (PrinterState(drawer_open=True), b"\x10\x04\x01", b"\x12"),
    (PrinterState(cover_open=True), b"\x10\x04\x01", b"\x1e"),  # offline with the cover open
    (PrinterState(paper="out"), b"\x10\x04\x01", b"\x1e"),  # ...and with the paper out
    (PrinterState(cover_open=True), b"\x10\x04\x02", b"\x16"),
    (PrinterState(paper="out"), b"\x10\x04\x02", b"\x32"),
    (PrinterState(online=False), b"\x10\x04\x02", b"\x52"),  # offline by an error
    (PrinterState(online=False), b"\x10\x04\x03", b"\x52"),  # ...recoverable by itself
    (PrinterState(paper="near_end"), b"\x10\x04\x04", b"\x1e"),
    (PrinterState(paper="out"), b"\x10\x04\x04", b"\x7e"),
    (PrinterState(paper="near_end"), b"\x1dr\x01", b"\x03"),
    (PrinterState(paper="out"), b"\x1bv", b"\x0f"),
    (PrinterState(drawer_open=True), b"\x1dr\x02", b"\x00"),
])
def test_replies_follow_the_state(state, query, reply):
    assert reply_to(query, state) == reply


def test_queries_it_does_not_know_get_no_reply():
    assert reply_to(b"\x10\x04\x09", HEALTHY) is None
    assert reply_to(b"\x1dr\x07", HEALTHY) is None
    assert reply_to(b"\x10\x04\x07\x09", HEALTHY) is None


@pytest.mark.parametrize("query, reply", [
    (b"\x1dI\x01", b"\x20"), (b"\x1dI1", b"\x20"), (b"\x1dI\x02", b"\x02"),
    (b"\x1dI\x42", b"\x5fEPSON\x00"), (b"\x1dIC", b"\x5fTM-T88V\x00"),
    (b"\x1dID", b"\x5fPRINTERD0001\x00"),
    (b"\x1da\xff", b"\x14\x00\x00\x00"), (b"\x1da\x00", None),
    (b"\x1d(H\x06\x0000ABCD", b"\x37\x22ABCD\x00"),
    (b"\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08", b"\x37\x25\x00"),
])
def test_identity_automatic_status_and_process_id_replies(query, reply):
    assert reply_to(query, HEALTHY) == reply


def test_automatic_status_bits_follow_the_state():
    state = PrinterState(online=False, cover_open=True, paper="out", drawer_open=True)
    assert automatic_status(state) == bytes([0x10 | 0x08 | 0x20, 0x40, 0x0F, 0])


STATES = [PrinterState(online=online, paper=paper, cover_open=cover, drawer_open=drawer)
          for online, paper, cover, drawer in itertools.product(
              (True, False), ("ok", "near_end", "out"), (False, True), (False, True))]


@pytest.mark.parametrize("state", STATES, ids=lambda s: "-".join(
    f"{k}={v}" for k, v in s.to_json().items()))
def test_every_status_reply_tells_the_same_story_in_epsons_bits(state):
    """
    For each of the 24 combinations of the state switches, every reply reads as Epson documents
    its bits, and the replies agree with each other: DLE EOT 1-4, GS r 1/2, ESC v, GS a.
    """
    eot1, eot2, eot3, eot4 = (reply_to(bytes([0x10, 0x04, n]), state)[0] for n in (1, 2, 3, 4))
    (paper,) = reply_to(b"\x1dr\x01", state)
    (drawer,) = reply_to(b"\x1dr\x02", state)
    asb = automatic_status(state)
    paper_out, near_end = state.paper == "out", state.paper in ("near_end", "out")
    offline = not state.online or state.cover_open or paper_out

    # Fixed bits: DLE EOT replies are 0xx1xx10, the ASB block's first byte 0xx1xx00 and the
    # bytes after it 0xx0xxxx (how a client tells them apart).
    for reply in (eot1, eot2, eot3, eot4):
        assert reply & 0x93 == 0x12
    assert asb[0] & 0x93 == 0x10 and all(b & 0x90 == 0 for b in asb[1:])
    assert paper & 0xF0 == 0 and drawer & 0xFE == 0

    # Online or not: DLE EOT 1 bit 3 and ASB byte 1 bit 3, and at least one offline cause.
    assert bool(eot1 & 0x08) == offline == bool(asb[0] & 0x08)
    assert bool(eot2 & 0x64) == offline  # cover, paper end, error
    # python-escpos is_online(): not (status & 8).
    assert (not eot1 & 0x08) == (state.online and not state.cover_open and not paper_out)

    # The cover: DLE EOT 2 bit 2, ASB byte 1 bit 5.
    assert bool(eot2 & 0x04) == state.cover_open == bool(asb[0] & 0x20)
    # Paper out stops printing: DLE EOT 2 bit 5.
    assert bool(eot2 & 0x20) == paper_out
    # An error is pending exactly when DLE EOT 2 says so, DLE EOT 3 names it, ASB byte 2 agrees.
    assert bool(eot2 & 0x40) == (not state.online) == bool(eot3 & 0x6C) == bool(asb[1] & 0x6C)
    assert eot3 & 0x6C == asb[1] & 0x6C

    # Paper sensors: each pair of bits both set or both clear, the same in every reply.
    assert eot4 & 0x0C in (0, 0x0C) and eot4 & 0x60 in (0, 0x60)
    assert bool(eot4 & 0x0C) == near_end == bool(paper & 0x03) == bool(asb[2] & 0x03)
    assert bool(eot4 & 0x60) == paper_out == bool(paper & 0x0C) == bool(asb[2] & 0x0C)
    assert paper == asb[2] and reply_to(b"\x1bv", state) == bytes([paper])
    assert paper & 0x03 in (0, 0x03) and paper & 0x0C in (0, 0x0C)

    # Drawer kick-out connector pin 3, read the same way in DLE EOT 1, GS r 2 and ASB; a shut
    # drawer reads HIGH (Epson drivers' default: LOW means open).
    assert bool(eot1 & 0x04) == bool(drawer & 0x01) == bool(asb[0] & 0x04) == (not state.drawer_open)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    running = Daemon(tmp_path_factory.mktemp("status"), "--database=var/printerd.sqlite3")
    yield running
    running.stop()


@pytest.mark.e2e
@pytest.mark.parametrize("state, online, paper", [
    ({"cover_open": True}, False, 2),
    ({"paper": "out"}, False, 0),
    ({"paper": "near_end", "drawer_open": True}, True, 1),
    ({"online": False}, False, 2),
    ({}, True, 2),
])
def test_python_escpos_reads_the_state_from_the_real_daemon(daemon, state, online, paper):
    full = {"online": True, "paper": "ok", "cover_open": False, "drawer_open": False, **state}
    request = urllib.request.Request(daemon.url("/api/printers/default/state"),
                                     data=json.dumps(full).encode(), method="PUT")
    urllib.request.urlopen(request, timeout=10).close()
    printer = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
    try:
        assert (printer.is_online(), printer.paper_status()) == (online, paper)
    finally:
        printer.close()


def status_queries(job: bytes, chunk: int | None = None) -> list[bytes]:
    from printerd.escpos.parser import JobParser, StatusQuery

    parser = JobParser()
    pieces = [job] if chunk is None else [job[i:i + chunk] for i in range(len(job))[::chunk]]
    events = [e for piece in pieces for e in parser.feed(piece)] + parser.close()
    return [e.command for e in events if isinstance(e, StatusQuery)]


def test_a_query_between_the_data_bytes_of_an_image_is_answered_and_the_image_kept():
    from printerd.escpos.parser import JobParser, ParsedReceipt

    image = b"\x1dv0\x00\x02\x00\x03\x00" + b"\xff\x10\x04\x01\x00\xff"  # 2 x 3 bytes
    job = image + b"after\n\x1dV\x00"
    assert status_queries(job) == [b"\x10\x04\x01"]
    assert status_queries(job, chunk=1) == [b"\x10\x04\x01"]
    parser = JobParser()
    (receipt,) = [e for e in parser.feed(job) + parser.close() if isinstance(e, ParsedReceipt)]
    assert receipt.text == "after" and receipt.details["images"]["count"] == 1


def test_a_query_inside_a_streamed_payload_split_across_feeds_is_answered_once():
    payload = b"\x00" * 70_000 + b"\x10\x04\x04" + b"\x00" * 10 + b"\x10\x04\x07\x01"
    header = b"\x1d8L" + (len(payload) + 10).to_bytes(4, "little") + b"0p0\x01\x01\x31"
    job = header + b"\x00" * 4 + payload + b"\x1dV\x00"
    expected = [b"\x10\x04\x04", b"\x10\x04\x07\x01"]
    assert status_queries(job) == expected
    for chunk in (1, 2, 3, 4096):
        assert status_queries(job, chunk=chunk) == expected

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
    (b"\x10\x04\x07\x01", b"\x12"),
    (b"\x10\x04\x08\x03", b"\x12"),
    (b"\x10\x04\x12\x01", b"\x12"),
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
    assert reply_to(b"\x10\x04\x07\x09", HEALTHY) is None


@pytest.mark.parametrize("query, reply", [
    (b"\x1dI\x01", b"\x20"), (b"\x1dI1", b"\x20"), (b"\x1dI\x02", b"\x02"),
    (b"\x1dI\x42", b"\x5fEPSON\x00"), (b"\x1dIC", b"\x5fTM-T88V\x00"),
    (b"\x1dID", b"\x5fPRINTERD0001\x00"),
    (b"\x1da\xff", b"\x10\x00\x00\x00"), (b"\x1da\x00", None),
    (b"\x1d(H\x06\x0000ABCD", b"\x37\x22ABCD\x00"),
    (b"\x10\x14\x08\x01\x03\x14\x01\x06\x02\x08", b"\x37\x25\x00"),
])
def test_identity_automatic_status_and_process_id_replies(query, reply):
    assert reply_to(query, HEALTHY) == reply


def test_automatic_status_bits_follow_the_state():
    from printerd.escpos.status import automatic_status

    state = PrinterState(online=False, cover_open=True, paper="out", drawer_open=True)
    assert automatic_status(state) == bytes([0x10 | 0x08 | 0x20 | 0x04, 0, 0x0F, 0])


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

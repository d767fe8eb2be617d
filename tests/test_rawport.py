"""The raw printing protocol and factory on StringTransport with a fake clock."""

from __future__ import annotations

import os
import re
import socket
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import pytest_twisted
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport

from printerd.config import Settings
from printerd.escpos.status import PrinterState
from printerd.rawport.factory import job_settings
from printerd.rawport.protocol import SLICE, EndedJob, RawPrintProtocol
from support import capturing_logger, connect, hang_up, make_factory, make_store, sample_files

GS_I_65 = b"\x1dI\x41"  # firmware version: 3 bytes in, 15 out


class RecordingPort:
    """Stands in for the listening port: records pause / resume."""

    def __init__(self) -> None:
        self.reading = True
        self.changes: list[str] = []

    def stopReading(self) -> None:
        self.reading = False
        self.changes.append("paused")

    def startReading(self) -> None:
        self.reading = True
        self.changes.append("resumed")

    def getHost(self):
        return object()  # not a TCP address: no backlog to read


async def committed(store, count: int) -> None:
    for _ in range(500):
        if store.receipts_total >= count:
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"expected {count} receipts, store has {store.receipts_total}")


def test_status_query_split_across_segments_is_answered_once(store):
    factory, _ = make_factory(store)
    protocol, transport = connect(factory)
    protocol.dataReceived(b"\x10\x04")
    assert transport.value() == b""
    protocol.dataReceived(b"\x01")
    assert transport.value() == b"\x16"
    protocol.dataReceived(b"\x10\x04\x04\x10\x04\x02")
    assert transport.value() == b"\x16\x12\x12"


def test_nothing_is_written_unasked(store):
    factory, _ = make_factory(store)
    protocol, transport = connect(factory)
    protocol.dataReceived(b"\x1b@Hello\n\x1dV\x00" + b"\x1d(k\x08\x001P0\x10\x04\x01Q")
    assert transport.value() == b""


@pytest_twisted.ensureDeferred
async def test_receipts_are_stored_with_peer_job_and_printer(store):
    factory, clock = make_factory(store, printer="kitchen")
    clock.advance(1_700_000_000)
    protocol, transport = connect(factory)
    job = b"one\n\x1dV\x00two\n\x1dV\x01three"
    protocol.dataReceived(job)
    hang_up(protocol)
    await committed(store, 3)
    texts = [(r.text, r.cut, r.printer, r.peer, r.job) for r in store.newest]
    assert texts == [("one", "full", "kitchen", "10.0.0.7:40000", 1),
                     ("two", "partial", "kitchen", "10.0.0.7:40000", 1),
                     ("three", "none", "kitchen", "10.0.0.7:40000", 1)]
    assert store.newest[0].received_at == "2023-11-14T22:13:20.000000Z"
    assert (factory.counters.jobs_total, factory.counters.bytes_total) == (1, len(job))


async def printed_on_each_model(store, job: bytes, *models: str) -> list[str]:
    """The text of ``job`` printed once on a printer set to each model, in that order."""
    from printerd.escpos.status import PrinterIdentity

    for model in models:
        factory, _ = make_factory(store, identity=PrinterIdentity(model=model))
        protocol, _ = connect(factory)
        protocol.dataReceived(job)
        hang_up(protocol)
    await committed(store, len(models))
    return [r.text for r in store.newest]


@pytest_twisted.ensureDeferred
async def test_print_positions_are_placed_on_the_printer_models_paper(store):
    # Dot 540 is on a TM-T20III's 576-dot paper, past a TM-T88V's 512: there it is ignored.
    job = b"\x1b@Total\x1b$\x1c\x02" + b"9.99\n\x1dV\x00"
    assert await printed_on_each_model(store, job, "TM-T20III", "TM-T88V") == [
        "Total" + " " * 40 + "9.99", "Total9.99"]


@pytest_twisted.ensureDeferred
async def test_a_printer_set_to_another_makers_model_reads_that_makers_code_pages(store):
    from clients import client_job

    # A Citizen driver's euro is ESC t 2 0xD5 (PC858 on a Citizen, PC850 "ı" on an Epson).
    job = client_job("receipt-printer-encoder-citizen-ct-s310ii")
    assert await printed_on_each_model(store, job, "CT-S310II", "TM-T88V") == [
        "Café €5 Ünïcödé", "Café ı5 Ünïcödé"]


@pytest_twisted.ensureDeferred
async def test_a_printer_set_to_start_in_two_byte_mode_reads_gb18030_without_fs_ampersand(store):
    from clients import client_job

    job = client_job("node-escpos-gb18030")
    for two_byte_at_start in (True, False):
        factory, _ = make_factory(store, two_byte_at_start=two_byte_at_start)
        protocol, _ = connect(factory)
        protocol.dataReceived(job)
        hang_up(protocol)
    await committed(store, 2)
    chinese, epson = (r.text for r in store.newest)
    assert chinese.startswith("点心店 Dim Sum House\n虾饺")
    assert epson.startswith("╡π╨─╡Ω Dim Sum House")  # PC437


@pytest_twisted.ensureDeferred
async def test_a_status_only_connection_stores_nothing(store):
    factory, _ = make_factory(store)
    protocol, transport = connect(factory)
    protocol.dataReceived(b"\x1b@\x10\x04\x01")
    hang_up(protocol)
    empty, _ = connect(factory)
    hang_up(empty)
    await deferLater(reactor, 0.05, lambda: None)
    assert store.receipts_total == 0
    assert store.pending_count == 0


def test_over_the_connection_limit_connections_wait_unread_and_none_is_refused(store):
    factory, _ = make_factory(store, max_connections=2)
    port = RecordingPort()
    factory.set_port(port)
    first, t1 = connect(factory, 1)
    second, t2 = connect(factory, 2)
    third, t3 = connect(factory, 3)
    assert t3.producerState == "paused"  # its bytes stay in the kernel
    assert not t3.disconnecting
    assert (factory.connections_active, factory.connections_waiting) == (2, 1)
    assert port.changes == []  # the port keeps accepting: a waiting host must be seen

    hang_up(first)
    assert t3.producerState == "producing"
    assert (factory.connections_active, factory.connections_waiting) == (2, 0)
    assert factory.counters.connections_total == 3


@pytest_twisted.ensureDeferred
async def test_idle_timeout_ends_the_job_and_keeps_its_receipt(store):
    factory, clock = make_factory(store, idle_timeout=30)
    protocol, transport = connect(factory)
    protocol.dataReceived(b"half a receipt")
    clock.advance(29)
    protocol.dataReceived(b" and the rest")
    clock.advance(29)
    assert not transport.disconnecting  # bytes reset the timer
    clock.advance(1)
    assert transport.disconnecting
    await committed(store, 1)
    assert store.newest[-1].text == "half a receipt and the rest"
    assert store.newest[-1].cut == "none"


@pytest_twisted.ensureDeferred
async def test_a_job_over_the_size_limit_is_kept_truncated_and_closed(store):
    factory, _ = make_factory(store, max_job_bytes=100)
    protocol, transport = connect(factory)
    protocol.dataReceived(b"first\n\x1dV\x00")
    protocol.dataReceived(b"A" * 200)
    assert transport.disconnecting
    protocol.dataReceived(b"ignored after the limit")
    hang_up(protocol)
    await committed(store, 2)
    first, second = store.newest
    assert not first.truncated
    assert second.truncated and second.text == "A" * (100 - 9)
    assert factory.counters.bytes_total == 100


@pytest_twisted.ensureDeferred
async def test_drain_waits_for_jobs_then_ends_them_at_the_deadline(store):
    factory, clock = make_factory(store, max_connections=1)
    factory.set_port(RecordingPort())
    busy, busy_transport = connect(factory, 1)
    waiting, waiting_transport = connect(factory, 2)
    busy.dataReceived(b"in flight")
    drained = factory.drain(10)
    # The waiting connection's bytes are ours to keep: it is started, not dropped.
    assert waiting_transport.producerState == "producing"
    waiting.dataReceived(b"was waiting")
    clock.advance(9)
    assert not drained.called
    clock.advance(1)
    assert busy_transport.disconnecting and waiting_transport.disconnecting
    hang_up(busy)
    hang_up(waiting)
    assert drained.called
    await committed(store, 2)
    assert sorted(r.text for r in store.newest) == ["in flight", "was waiting"]


def test_peers_outside_the_allow_list_are_refused_and_counted(store):
    factory, _ = make_factory(store, allow=("192.168.1.0/24", "::1/128"))
    assert factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", 1)) is None
    assert factory.buildProtocol(IPv4Address("TCP", "192.168.1.20", 1)) is not None
    assert factory.counters.connections_refused_total == 1
    assert factory.counters.connections_total == 1


def test_refused_and_dropped_connections_in_a_loop_log_ten_lines_a_second_then_a_count(store):
    factory, clock = make_factory(store, allow=("192.168.1.0/24",))
    logger, lines = capturing_logger()
    factory.log = factory.refused_log.log = factory.dropped_log.log = logger
    clock.advance(1_000)
    for port in range(30):
        factory.buildProtocol(IPv4Address("TCP", "10.0.0.%d" % (7 + port % 2), port))
    assert len(lines) == 10 and lines[0] == "refused raw connection from 10.0.0.7: not in raw_allow"
    clock.advance(1)
    assert lines[10] == ("20 more raw connections refused (not in raw_allow) (by host: 10.0.0.7"
                         " x10, 10.0.0.8 x10): over 10 raw connections refused (not in"
                         " raw_allow) in 1.0s, the rest are counted in one line")
    for port in range(12):  # an HTTP client on the printer port
        protocol = factory.buildProtocol(IPv4Address("TCP", "192.168.1.9", 40000 + port))
        protocol.makeConnection(StringTransport())
        protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        hang_up(protocol)
    assert factory.counters.junk_total["http"] == 12
    assert len(lines) == 21  # ten lines; two counted
    factory.drain(1)  # at stop, the window's count is told at once
    assert lines[-1].startswith("2 more connections dropped on the printer port (by kind: http x2)")


def test_allow_verdicts_are_remembered_per_address_in_a_bounded_table(store):
    from printerd.rawport.factory import ALLOW_CACHE_SIZE

    factory, _ = make_factory(store, allow=("10.0.0.0/8",))
    for _ in range(3):  # asked again, each address keeps its own verdict
        assert factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", 1)) is not None
        assert factory.buildProtocol(IPv4Address("TCP", "192.168.1.20", 1)) is None
    assert factory.counters.connections_refused_total == 3
    # Past the bound the table starts again: strangers are still refused, tills still let in.
    for n in range(ALLOW_CACHE_SIZE + 10):
        factory.buildProtocol(IPv4Address("TCP", f"172.16.{n // 256}.{n % 256}", 1))
    assert factory.counters.connections_refused_total == 3 + ALLOW_CACHE_SIZE + 10
    assert factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", 2)) is not None


def test_the_per_peer_cap_queues_a_busy_peer_without_blocking_others(store):
    factory, _ = make_factory(store, max_connections=10, max_per_peer=2)
    a1, t1 = connect(factory, 1)
    a2, t2 = connect(factory, 2)
    a3, t3 = connect(factory, 3)  # same host 10.0.0.7: over its cap
    assert t3.producerState == "paused"
    other = factory.buildProtocol(IPv4Address("TCP", "10.0.0.8", 1))
    other_transport = StringTransport()
    other.makeConnection(other_transport)
    assert other_transport.producerState == "producing"
    hang_up(a1)
    assert t3.producerState == "producing"


@pytest_twisted.ensureDeferred
async def test_the_port_pauses_while_the_database_cannot_be_written(db_path):
    store = make_store(db_path, commit_delay=0.001, retry_delay=0.05)
    store.startService()
    try:
        factory, _ = make_factory(store)
        store.on_write_health(factory.storage_changed)
        port = RecordingPort()
        factory.set_port(port)
        pages = await store.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
        protocol, _ = connect(factory)
        protocol.dataReceived(b"big " * 100_000 + b"\n\x1dV\x00")
        for _ in range(300):
            if port.changes:
                break
            await deferLater(reactor, 0.01, lambda: None)
        assert port.changes == ["paused"]
        await store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        await committed(store, 1)
        assert port.changes == ["paused", "resumed"]
    finally:
        await store.stopService()


def test_automatic_status_back_reports_each_state_change(store):
    factory, _ = make_factory(store)
    asb, asb_transport = connect(factory, 1)
    quiet, quiet_transport = connect(factory, 2)
    asb.dataReceived(b"\x1da\xff")
    assert asb_transport.value() == b"\x14\x00\x00\x00"  # online, drawer shut (pin 3 HIGH)
    factory.set_state(PrinterState(paper="out"))
    assert asb_transport.value() == b"\x14\x00\x00\x00" + b"\x1c\x00\x0f\x00"  # offline
    assert quiet_transport.value() == b""  # never asked
    quiet.dataReceived(b"\x10\x04\x04")
    assert quiet_transport.value() == b"\x7e"  # DLE EOT 4: paper out
    factory.set_state(PrinterState(paper="out"))  # no change: nothing sent
    assert len(asb_transport.value()) == 8


@pytest.mark.parametrize("first_bytes, kind", [
    (b"GET / HTTP/1.1\r\nHost: printer\r\n\r\n", "http"),
    (b"OPTIONS * HTTP/1.0\r\n\r\n", "http"),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", "tls"),
    (b"SSH-2.0-OpenSSH_9.2\r\n", "ssh"),
])
@pytest_twisted.ensureDeferred
async def test_other_protocols_are_counted_and_dropped_never_stored(store, first_bytes, kind):
    factory, _ = make_factory(store)
    protocol, transport = connect(factory)
    for i in range(len(first_bytes)):  # byte at a time: the verdict waits for enough bytes
        protocol.dataReceived(first_bytes[i:i + 1])
    assert transport.disconnecting
    assert transport.value() == b""
    hang_up(protocol)
    await deferLater(reactor, 0.05, lambda: None)
    assert store.receipts_total == 0 and store.pending_count == 0
    assert factory.counters.junk_total[kind] == 1


async def printed_as_text(store, job: bytes, text: str) -> None:
    """``job`` on the raw port is stored as a receipt reading ``text``, and counted as no junk."""
    factory, _ = make_factory(store)
    protocol, _ = connect(factory)
    protocol.dataReceived(job)
    hang_up(protocol)
    await committed(store, 1)
    assert store.newest[-1].text == text
    assert not factory.counters.junk_total


@pytest.mark.parametrize("job, text", [
    (b"GET READY\nTable 5\n\x1dV\x00", "GET READY\nTable 5"),
    (b"\x10\x04\x01GET / HTTP/1.1\n\x1dV\x00", "GET / HTTP/1.1"),  # a status query first
    (b"POST", "POST"),  # closed while still ambiguous: it is a job
])
@pytest_twisted.ensureDeferred
async def test_print_jobs_that_look_a_little_like_http_are_kept(store, job, text):
    await printed_as_text(store, job, text)


class MemoryJobSink:
    """A JobSink that keeps everything in lists; each receipt's commit is a Deferred we fire."""

    def __init__(self) -> None:
        self.state = PrinterState()
        self.jobs: list[str] = []
        self.receipts: list[tuple[int, str, str]] = []
        self.commits: list[Deferred] = []
        self.bytes = 0
        self.replies = 0
        self.junk_seen: list[tuple[str, str]] = []
        self.ended: list[EndedJob] = []

    def start_job(self, peer: str) -> int:
        self.jobs.append(peer)
        return 100 + len(self.jobs)

    def receipt(self, job: int, peer: str, parsed) -> Deferred:
        self.receipts.append((job, peer, parsed.text))
        self.commits.append(Deferred())
        return self.commits[-1]

    def received(self, count: int) -> None:
        self.bytes += count

    def replied(self, count: int) -> None:
        self.replies += count

    def junk(self, peer: str, kind: str) -> None:
        self.junk_seen.append((peer, kind))

    def end_job(self, ended: EndedJob) -> None:
        self.ended.append(ended)


class OpenGate:
    """A Gate that starts every connection at once and remembers the released ones."""

    def __init__(self) -> None:
        self.released: list = []

    def admit(self, connection) -> None:
        connection.start_job()

    def release(self, connection) -> None:
        self.released.append(connection)


def connect_protocol(sink: MemoryJobSink, gate: OpenGate | None = None, **changes):
    clock = MemoryReactorClock()
    settings = replace(job_settings(Settings()), **changes)
    protocol = RawPrintProtocol(settings, sink, gate or OpenGate(), clock, "10.0.0.9:5000",
                                "10.0.0.9")
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport, clock


def test_the_protocol_hands_its_results_to_its_sink():
    sink, gate = MemoryJobSink(), OpenGate()
    protocol, transport, clock = connect_protocol(sink, gate)
    job = b"\x1b@one\n\x1dV\x00\x10\x04\x01two"
    protocol.dataReceived(job)
    clock.advance(2)
    protocol.connectionLost(None)
    assert sink.jobs == ["10.0.0.9:5000"]
    assert sink.receipts == [(101, "10.0.0.9:5000", "one"), (101, "10.0.0.9:5000", "two")]
    assert (sink.bytes, sink.replies) == (len(job), 1)
    assert sink.ended == [EndedJob(101, "10.0.0.9:5000", 2, len(job), 2.0)]
    assert gate.released == [protocol]


def test_the_protocol_reports_junk_to_its_sink_and_hangs_up():
    sink = MemoryJobSink()
    protocol, transport, _ = connect_protocol(sink)
    protocol.dataReceived(b"SSH-2.0-OpenSSH_9.2\r\n")
    assert sink.junk_seen == [("10.0.0.9:5000", "ssh")]
    assert transport.disconnecting and sink.receipts == []


# nmap's service probes, read from Debian's nmap-common (.ci/run installs it) rather than copied
# here: that file is under the Nmap Public Source License.
NMAP_PROBES = Path("/usr/share/nmap/nmap-service-probes")
_ESCAPES = {"0": 0, "r": 13, "n": 10, "t": 9, "\\": 92, "|": 124}


def nmap_probes() -> dict[str, bytes]:
    """The probe bytes of nmap-service-probes lines (`Probe TCP name q|...|`), unescaped."""
    if not NMAP_PROBES.exists():
        message = f"{NMAP_PROBES} is missing: apt-get install nmap-common"
        if os.environ.get("PRINTERD_REQUIRE_NMAP"):
            pytest.fail(message)
        pytest.skip(message)
    probes = {}
    for line in NMAP_PROBES.read_text(encoding="latin-1").splitlines():
        match = re.match(r"Probe TCP (\S+) q\|(.*)\|", line)
        if match is None:
            continue
        name, quoted = match.groups()
        data, at = bytearray(), 0
        while at < len(quoted):
            if quoted[at] == "\\" and quoted[at + 1] == "x":
                data.append(int(quoted[at + 2:at + 4], 16))
                at += 4
            elif quoted[at] == "\\":
                data.append(_ESCAPES[quoted[at + 1]])
                at += 2
            else:
                data.append(ord(quoted[at]))
                at += 1
        probes[name] = bytes(data)
    return probes


# Telnet's opening negotiation (RFC 854): IAC DO SUPPRESS-GO-AHEAD, IAC WILL TERMINAL-TYPE,
# IAC WILL NAWS.
TELNET = b"\xff\xfd\x03\xff\xfb\x18\xff\xfb\x1f"
SCANNER_PROBES = {
    "RTSPRequest": "rtsp", "SIPOptions": "sip", "Help": "help", "HELP4STOMP": "help",
    "X11Probe": "x11", "DNSVersionBindReqTCP": "dns", "DNSStatusRequestTCP": "dns",
    "SSLv23SessionReq": "sslv2", "RPCCheck": "rpc", "redis-server": "redis",
    "TerminalServerCookie": "rdp", "TerminalServer": "rdp", "SMBProgNeg": "smb",
    "GetRequest": "http", "TLSSessionReq": "tls",
}


@pytest.mark.parametrize("name, kind", [*SCANNER_PROBES.items(), ("telnet", "telnet")])
@pytest_twisted.ensureDeferred
async def test_scanner_probes_are_counted_by_kind_and_never_stored(store, name, kind):
    probe = TELNET if name == "telnet" else nmap_probes()[name]
    factory, _ = make_factory(store)
    protocol, transport = connect(factory)
    for i in range(len(probe)):  # byte at a time: the verdict waits for enough bytes
        protocol.dataReceived(probe[i:i + 1])
    assert transport.value() == b""
    hang_up(protocol)  # a bare HELP line is a probe only once the scanner hangs up
    await deferLater(reactor, 0.05, lambda: None)
    assert store.receipts_total == 0 and store.pending_count == 0
    assert dict(factory.counters.junk_total) == {kind: 1}


@pytest.mark.parametrize("job, text", [
    (b"HELP ME\nTable 4\n\x1dV\x00", "HELP ME\nTable 4"),
    (b"HELP\r\nTable 4 needs a hand\r\n", "HELP\nTable 4 needs a hand"),
    (b"OPTIONS:\n- no onions\n", "OPTIONS:\n- no onions"),
    (b"*1 Espresso\r\n$4.00\r\n", "*1 Espresso\n$4.00"),
    (b"PLAY AREA 3\n", "PLAY AREA 3"),
])
@pytest_twisted.ensureDeferred
async def test_jobs_that_start_like_a_probe_but_are_text_are_kept(store, job, text):
    await printed_as_text(store, job, text)


@pytest.mark.e2e
def test_scanner_probes_against_the_real_daemon_store_nothing_and_real_jobs_still_print(tmp_path):
    """Each probe on its own connection to the running daemon: nothing stored, counted by kind;
    then printer traffic (LPD and PJL probes, the sample jobs, python-escpos) is stored."""
    from escpos.printer import Network

    from bench.daemon import Daemon

    probes = nmap_probes()
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3")
    try:
        expected: Counter[str] = Counter()
        for name, kind in [*SCANNER_PROBES.items(), ("telnet", "telnet")]:
            with socket.create_connection(("127.0.0.1", daemon.raw_port), timeout=10) as sock:
                sock.sendall(TELNET if name == "telnet" else probes[name])
            expected[kind] += 1
        daemon.wait_for(lambda: daemon.get("/api/stats")[1]["junk_connections_total"]
                        == dict(expected))
        assert daemon.get("/api/stats")[1]["receipts_total"] == 0

        jobs = [probes["LPDString"], probes["hp-pjl"] + b"Ticket 7\n"]
        jobs += [path.read_bytes() for path in sample_files()]
        for job in jobs:
            with socket.create_connection(("127.0.0.1", daemon.raw_port), timeout=10) as sock:
                sock.sendall(job)
        printer = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
        printer.text("Scanned, still printing\n")
        printer.cut()
        printer.close()

        def stored_texts():
            # jobs_total counts the junk connections too, and a job's receipts are committed
            # after it is counted: wait for the receipts themselves.
            texts = [r["text"] for r in daemon.get("/api/receipts?limit=500")[1]["receipts"]]
            return texts if "Scanned, still printing" in texts \
                and any("Ticket 7" in text for text in texts) else None

        texts = daemon.wait_for(stored_texts)
        assert "Scanned, still printing" in texts
        assert any("default" in text for text in texts)  # LPD's "\x01default\n"
        assert any("Ticket 7" in text for text in texts)
        assert daemon.get("/api/stats")[1]["junk_connections_total"] == dict(expected)
    finally:
        daemon.stop()


def test_no_prefix_of_a_real_job_is_taken_for_another_protocol():
    """Every prefix of the sample jobs and of python-escpos's bytes is a job or undecided."""
    from escpos.printer import Dummy

    from printerd.escpos.junk import NEED_MORE, classify

    printer = Dummy()
    printer.text("HELP\n")
    printer.barcode("{BRIO-128", "CODE128", function_type="B")
    printer.cut()
    for job in [printer.output, *(path.read_bytes() for path in sample_files())]:
        for end in range(1, min(len(job), 600)):
            assert classify(job[:end]) in (None, NEED_MORE)
        assert classify(job, complete=True) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=700))
def test_the_verdict_never_waits_past_the_prefix_limit(data):
    from printerd.escpos.junk import MAX_PREFIX, NEED_MORE, classify

    assert classify(data, complete=True) != NEED_MORE
    if len(data) >= MAX_PREFIX:
        assert classify(data) != NEED_MORE


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(range(256)), st.binary(max_size=80), st.booleans())
def test_the_first_byte_shortcut_gives_the_verdict_every_shape_would(first, rest, complete):
    # classify answers "a job" at once for a first byte that starts none of the shapes; asking
    # every shape must agree, whatever follows that byte (nmap's probes included, below).
    from printerd.escpos import junk

    data = bytes([first]) + rest
    shortcut = junk.classify(data, complete)
    every_shape = junk._FIRST_BYTES
    try:
        junk._FIRST_BYTES = frozenset(range(256))
        assert junk.classify(data, complete) == shortcut
    finally:
        junk._FIRST_BYTES = every_shape


def test_the_first_byte_shortcut_passes_print_jobs_and_holds_for_nmaps_probes():
    from printerd.escpos.junk import _FIRST_BYTES

    assert not {0x1B, 0x1D, 0x1C, 0x10} & _FIRST_BYTES  # ESC, GS, FS, DLE start jobs
    for probe in (b"GET / HTTP/1.0\r\n", b"\x16\x03\x01", b"SSH-2.0-", b"*1\r\n", b"\xff\xfb",
                  b"OPTIONS ", b"HELP\r\n", b"l\x00\x0b\x00"):
        assert probe[0] in _FIRST_BYTES, probe


class SlowReaderTransport(StringTransport):
    """A transport whose client reads only when told: it pauses its producer past ``bound``
    unsent bytes and resumes it once the client has read them all, as Twisted's TCP does."""

    def __init__(self, bound: int = 64 * 1024) -> None:
        super().__init__()
        self.bound = bound
        self.read_by_client = 0

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and len(self.value()) - self.read_by_client > self.bound:
            self.producer.pauseProducing()

    def client_reads(self) -> None:
        self.read_by_client = len(self.value())
        if self.producer is not None:
            self.producer.resumeProducing()


def test_reading_stops_while_the_transport_holds_unsent_replies():
    sink = MemoryJobSink()
    protocol, transport, _ = connect_protocol(sink)
    assert transport.producer is protocol  # the protocol learns when its replies are taken
    protocol.pauseProducing()  # as the transport does past its buffer size
    assert transport.producerState == "paused"
    protocol.dataReceived(b"\x10\x04\x01" * 3)  # read before the pause took effect
    assert transport.value() == b""
    protocol.resumeProducing()
    assert transport.value() == b"\x16\x16\x16"
    assert transport.producerState == "producing"


def test_a_client_that_never_reads_gets_at_most_one_slice_of_replies_past_the_bound():
    sink = MemoryJobSink()
    clock = MemoryReactorClock()
    protocol = RawPrintProtocol(job_settings(Settings()), sink, OpenGate(), clock,
                                "10.0.0.9:5000", "10.0.0.9")
    transport = SlowReaderTransport(bound=64 * 1024)
    protocol.makeConnection(transport)
    queries = GS_I_65 * 20_000  # 60 KB in, 300 KB of replies
    protocol.dataReceived(queries)
    reply = b"_30.00 ESC/POS\x00"
    assert len(transport.value()) <= 64 * 1024 + SLICE // 3 * len(reply)
    assert transport.producerState == "paused"
    for _ in range(20):
        transport.client_reads()
    assert transport.value() == reply * 20_000
    assert transport.producerState == "producing"
    assert sink.replies == 20_000


def test_a_reply_after_a_receipt_is_sent_once_the_receipt_is_committed():
    sink = MemoryJobSink()
    protocol, transport, _ = connect_protocol(sink)
    protocol.dataReceived(b"\x10\x04\x01")  # nothing printed yet: answered at once
    assert transport.value() == b"\x16"
    protocol.dataReceived(b"\x10\x04\x02Table 5\n\x1dV\x00\x10\x04\x01")
    assert transport.value() == b"\x16\x12"  # the query before the receipt went at once
    sink.commits[0].callback(None)
    assert transport.value() == b"\x16\x12\x16"


def test_replies_keep_their_order_behind_commits_that_finish_out_of_order():
    from printerd.escpos.status import automatic_status

    sink = MemoryJobSink()
    protocol, transport, _ = connect_protocol(sink)
    protocol.dataReceived(b"one\n\x1dV\x00\x10\x04\x01two\n\x1dV\x00\x10\x04\x04\x1da\xff")
    assert transport.value() == b""
    sink.commits[1].callback(None)
    assert transport.value() == b""  # the first receipt is not yet stored
    sink.commits[0].callback(None)
    healthy = automatic_status(PrinterState())
    assert transport.value() == b"\x16\x12" + healthy
    protocol.dataReceived(b"three\n\x1dV\x00")
    sink.state = PrinterState(paper="out")
    protocol.state_changed()  # automatic status back waits behind the commit too
    assert transport.value() == b"\x16\x12" + healthy
    sink.commits[2].callback(None)
    assert transport.value() == b"\x16\x12" + healthy + automatic_status(sink.state)


def test_replies_held_behind_a_commit_past_the_bound_stop_reading_until_it_lands():
    sink = MemoryJobSink()
    protocol, transport, _ = connect_protocol(sink)
    protocol.dataReceived(b"receipt\n\x1dV\x00" + GS_I_65 * 10_000)
    assert transport.value() == b""
    assert transport.producerState == "paused"
    sink.commits[0].callback(None)
    assert transport.value() == b"_30.00 ESC/POS\x00" * 10_000
    assert transport.producerState == "producing"


def test_a_pos_polling_for_an_hour_beside_fifty_tricklers_gets_every_reply(store):
    """Issue 13.1 in simulated time: 50 connections from one host send ESC @ every 10 s, a
    POS polls DLE EOT every 2 s on one connection for an hour, another host prints every
    minute: every poll is answered and every job starts at once."""
    factory, clock = make_factory(store)
    tricklers = [connect(factory, 1000 + n) for n in range(50)]
    assert factory.connections_active == 50
    clock.advance(5)
    pos = factory.buildProtocol(IPv4Address("TCP", "10.0.0.3", 9000))
    pos_transport = StringTransport()
    pos.makeConnection(pos_transport)
    started_at_once = 0
    for second in range(0, 3600, 2):
        if second % 10 == 0:
            for protocol, _ in tricklers:
                protocol.dataReceived(b"\x1b@")
        pos.dataReceived(b"\x10\x04\x01")
        if second % 60 == 0:
            job = factory.buildProtocol(IPv4Address("TCP", "10.0.0.2", 20000 + second))
            job_transport = StringTransport()
            job.makeConnection(job_transport)
            started_at_once += job_transport.producerState == "producing" and job.job is not None
            job.dataReceived(b"\x1b@Order %d\n\x1dV\x00" % second)
            job.connectionLost(None)
        clock.advance(2)
    assert pos_transport.value() == b"\x16" * 1800
    assert started_at_once == 60
    assert factory.counters.receipts_total == 60
    assert factory.counters.connections_evicted_total >= 1

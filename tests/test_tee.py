"""
The tee: a printer that relays every raw job to a real printer as the bytes arrive.

Real sockets on 127.0.0.1 throughout: the POS is a Twisted client sending python-escpos's
bytes, printerd's raw port listens for it, and the real printer is a small fake (a Twisted
server that records what it gets and answers status queries as a printer out of paper would).
"""

from __future__ import annotations

import json
from typing import Optional

import pytest_twisted
from escpos.printer import Dummy
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.protocol import ClientFactory, Factory, Protocol
from twisted.internet.task import deferLater

from printerd.backoff import Backoff
from printerd.config import Settings
from printerd.rawport.factory import RawPrintFactory, job_settings
from printerd.tee import Tee
from support import wait_until

DLE_EOT_1 = b"\x10\x04\x01"  # printer status
DLE_EOT_4 = b"\x10\x04\x04"  # roll paper sensor status
PAPER_OUT_EOT_4 = b"\x72"  # a real printer's answer with no paper (both sensors)
PRINTERD_HEALTHY_EOT_4 = b"\x12"


def pos_job(*lines: str) -> bytes:
    """A receipt per line, as python-escpos sends it."""
    printer = Dummy()
    for line in lines:
        printer.text(line + "\n")
        printer.cut()
    return printer.output


class FakePrinter(Protocol):
    """A printer on port 9100: records every byte, answers DLE EOT 4 with "paper out"."""

    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        self.received = bytearray()

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        self.factory.received += data
        self.transport.write(PAPER_OUT_EOT_4 * data.count(DLE_EOT_4))

    def connectionLost(self, reason=None) -> None:
        self.factory.closed += 1


class FakePrinterFactory(Factory):
    protocol = FakePrinter

    def __init__(self) -> None:
        self.connections: list[FakePrinter] = []
        self.received = bytearray()
        self.closed = 0


class Pos(Protocol):
    """A POS connection: sends what it is given, keeps what the printer answers."""

    def __init__(self) -> None:
        self.answers = bytearray()
        self.done: Deferred[None] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.answers += data

    def connectionLost(self, reason=None) -> None:
        self.done.callback(None)


async def connect_pos(port: int) -> Pos:
    factory = ClientFactory.forProtocol(Pos)
    return await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(factory)


def listen_fake_printer(port: int = 0):
    factory = FakePrinterFactory()
    return factory, reactor.listenTCP(port, factory, interface="127.0.0.1")


async def refused_port() -> int:
    """A loopback port a fake printer listened on and left: connecting there is refused."""
    _, fake_port = listen_fake_printer()
    closed_port = fake_port.getHost().port
    await fake_port.stopListening()
    return closed_port


def tee_printer(store, printer_port: int, fallback: str = "own", backoff: Optional[Backoff] = None):
    tee = Tee(reactor, TCP4ClientEndpoint(reactor, "127.0.0.1", printer_port),
              f"tcp:127.0.0.1:{printer_port}", fallback=fallback, timeout=2.0,
              backoff=backoff or Backoff(first=0.2, cap=0.2))
    factory = RawPrintFactory(reactor, store, printer="front", job=job_settings(Settings()),
                              tee=tee)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    return tee, factory, port


async def receipts(store, count: int) -> list[dict]:
    await wait_until(lambda: store.receipts_total >= count)
    stored = [await store.get_receipt(n) for n in range(1, count + 1)]
    return [{**json.loads(receipt.details), "text": receipt.text} for receipt in stored]


@pytest_twisted.ensureDeferred
async def test_a_job_is_relayed_byte_for_byte_and_the_real_printer_answers(store):
    fake, fake_port = listen_fake_printer()
    tee, factory, port = tee_printer(store, fake_port.getHost().port)
    try:
        job = pos_job("Table 4", "Table 5")
        pos = await connect_pos(port.getHost().port)
        pos.transport.write(DLE_EOT_4)
        # The real printer's "paper out" comes back, not printerd's own healthy answer.
        await wait_until(lambda: bytes(pos.answers) == PAPER_OUT_EOT_4)
        pos.transport.write(job)
        pos.transport.loseConnection()
        await pos.done
        stored = await receipts(store, 2)
        await wait_until(lambda: fake.closed == 1)
        assert bytes(fake.received) == DLE_EOT_4 + job
        assert [r["text"] for r in stored] == ["Table 4", "Table 5"]
        assert [r["tee"] for r in stored] == [
            {"to": tee.description, "delivered": True, "error": None}] * 2
        assert tee.state == "up"
        assert (tee.counters.jobs_relayed_total, tee.counters.bytes_relayed_total) == \
            (1, len(DLE_EOT_4 + job))
        assert factory.counters.status_replies_total == 0  # printerd answered nothing itself
    finally:
        await port.stopListening()
        await fake_port.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_unreachable_printer_leaves_the_job_stored_not_printed_and_printerd_answering(store):
    tee, factory, port = tee_printer(store, await refused_port())
    try:
        pos = await connect_pos(port.getHost().port)
        pos.transport.write(DLE_EOT_4 + pos_job("Order 9"))
        await wait_until(lambda: bytes(pos.answers) == PRINTERD_HEALTHY_EOT_4)
        pos.transport.loseConnection()
        await pos.done
        (stored,) = await receipts(store, 1)
        assert stored["text"] == "Order 9"
        assert stored["tee"]["delivered"] is False
        assert "refused" in stored["tee"]["error"]
        assert tee.state == "down" and tee.counters.jobs_not_relayed_total == 1
        assert tee.to_json()["last_error"] == stored["tee"]["error"]
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_fallback_offline_answers_as_an_offline_printer_while_unreachable(store):
    tee, factory, port = tee_printer(store, await refused_port(), fallback="offline")
    try:
        pos = await connect_pos(port.getHost().port)
        pos.transport.write(DLE_EOT_1)
        # Bit 3 (0x08) is Epson's "offline"; a healthy printerd answers 0x16.
        await wait_until(lambda: bytes(pos.answers) == b"\x1e")
        pos.transport.loseConnection()
        await pos.done
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_the_printer_going_away_mid_job_and_coming_back(store):
    fake, fake_port = listen_fake_printer()
    printer_port = fake_port.getHost().port
    tee, factory, port = tee_printer(store, printer_port, backoff=Backoff(first=0.3, cap=0.3))
    try:
        pos = await connect_pos(port.getHost().port)
        pos.transport.write(pos_job("Before"))
        await wait_until(lambda: b"Before" in fake.received)
        # The printer is switched off mid-job: its connection drops, it stops listening.
        await fake_port.stopListening()
        fake.connections[0].transport.abortConnection()
        await wait_until(lambda: tee.state == "down")
        pos.transport.write(DLE_EOT_4 + pos_job("After"))
        # printerd answers from now on (its own healthy roll sensor byte).
        await wait_until(lambda: bytes(pos.answers) == PRINTERD_HEALTHY_EOT_4)
        pos.transport.loseConnection()
        await pos.done
        before, after = await receipts(store, 2)
        assert (before["text"], before["tee"]["delivered"]) == ("Before", True)
        assert (after["text"], after["tee"]["delivered"]) == ("After", False)
        assert after["tee"]["error"].startswith("connection lost mid-job")
        assert b"After" not in fake.received
        assert tee.counters.connections_lost_total == 1

        # Back on, on the same port: once the backoff has passed, jobs reach it again.
        back, back_port = listen_fake_printer(printer_port)
        try:
            await wait_until(lambda: tee.may_try(), timeout=2)
            pos = await connect_pos(port.getHost().port)
            pos.transport.write(pos_job("Again"))
            pos.transport.loseConnection()
            await pos.done
            *_, again = await receipts(store, 3)
            assert (again["text"], again["tee"]["delivered"]) == ("Again", True)
            await wait_until(lambda: b"Again" in back.received)
            assert tee.state == "up"
        finally:
            await back_port.stopListening()
    finally:
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_slow_printer_pauses_the_pos_and_the_relay_buffer_stays_bounded(store):
    fake, fake_port = listen_fake_printer()
    tee, factory, port = tee_printer(store, fake_port.getHost().port)
    try:
        # A 12 MB raster image (GS v 0, 1000 bytes x 12000 rows), then a cut: one receipt.
        job = b"\x1b@\x1dv0\x00" + (1000).to_bytes(2, "little") + (12000).to_bytes(2, "little") \
            + bytes(range(256)) * (1000 * 12000 // 256) + b"\x00" * (1000 * 12000 % 256) \
            + b"\x1dV\x00"
        pos = await connect_pos(port.getHost().port)
        await wait_until(lambda: fake.connections)
        printer = fake.connections[0]
        printer.transport.pauseProducing()  # the printer stops reading (busy, out of paper...)
        pos.transport.write(job)
        await wait_until(lambda: tee.counters.pauses_total >= 1)
        (job_connection,) = factory.admission.active
        # Once the kernel's buffers toward the printer are full too, the POS stays paused.
        await wait_until(lambda: job_connection.transport not in reactor.getReaders())
        await deferLater(reactor, 0.5, lambda: None)
        assert job_connection.transport not in reactor.getReaders()
        held = factory.counters.bytes_total
        await deferLater(reactor, 0.5, lambda: None)
        assert factory.counters.bytes_total == held < len(job)
        # What printerd read but the printer did not take: Twisted's 64 KiB buffer plus what
        # the kernel's send buffer holds (tcp_wmem's 4 MiB at most), never the whole job.
        assert held - len(fake.received) <= 4 * 1024 * 1024 + 256 * 1024
        printer.transport.resumeProducing()
        await wait_until(lambda: len(fake.received) == len(job), timeout=30)
        pos.transport.loseConnection()
        await pos.done
        (stored,) = await receipts(store, 1)
        assert bytes(fake.received) == job
        assert stored["tee"]["delivered"] is True
    finally:
        await port.stopListening()
        await fake_port.stopListening()


@pytest_twisted.ensureDeferred
async def test_a_connection_dropped_as_junk_lets_the_real_printers_connection_go(store):
    fake, fake_port = listen_fake_printer()
    tee, factory, port = tee_printer(store, fake_port.getHost().port)
    try:
        pos = await connect_pos(port.getHost().port)
        pos.transport.write(b"GET / HTTP/1.1\r\nHost: printer\r\n\r\n")  # a browser, not a POS
        await pos.done  # printerd hangs up on it
        await wait_until(lambda: fake.closed == 1)
        assert tee.open_relays == 0 and bytes(fake.received) == b""
        assert factory.counters.junk_total == {"http": 1} and store.receipts_total == 0
    finally:
        await port.stopListening()
        await fake_port.stopListening()

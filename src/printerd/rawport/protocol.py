"""
One raw print job: a TCP connection on the printer port.

The protocol only connects a ``JobParser`` to the transport: bytes in, status replies out,
parsed receipts handed to the factory.  It enforces the per-job limits (idle timeout, job
size); the factory enforces the connection limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.escpos.junk import NEED_MORE, classify
from printerd.escpos.parser import Event, JobParser, ParsedReceipt, StatusQuery
from printerd.escpos.status import automatic_status, reply_to

if TYPE_CHECKING:
    from printerd.rawport.factory import RawPrintFactory


class RawPrintProtocol(Protocol):
    """Receives one print job; see the module docstring."""

    log = Logger()

    def __init__(self, factory: RawPrintFactory, peer: str) -> None:
        self.factory = factory
        self.peer = peer
        self.host = peer  # the peer's address without port: the per-peer cap's key
        self.job: Optional[int] = None
        self.parser = JobParser(factory.two_byte_encoding)
        self.bytes_received = 0
        self.receipts = 0
        self.started_at = 0.0
        self._idle_call: Optional[IDelayedCall] = None
        self._ended = False
        self.auto_status = False  # GS a: send status on every change
        self._prefix: Optional[bytearray] = bytearray()  # first bytes, until classified

    # -- lifecycle, driven by the factory ----------------------------------------------------

    def connectionMade(self) -> None:
        self.factory.admit(self)

    def start_job(self) -> None:
        """Called by the factory when this connection gets a slot: start reading."""
        self.job = self.factory.store.next_job_id()
        self.started_at = self.factory.clock.seconds()
        self._reset_idle_timer()
        self.transport.resumeProducing()  # type: ignore[union-attr]

    def wait_for_slot(self) -> None:
        """Called by the factory at the connection limit: leave the bytes in the kernel."""
        self.transport.pauseProducing()  # type: ignore[union-attr]

    # -- bytes in ----------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._ended:
            return
        self._reset_idle_timer()
        if self._prefix is not None:
            self._prefix += data
            verdict = classify(bytes(self._prefix))
            if verdict == NEED_MORE:
                return
            data, self._prefix = bytes(self._prefix), None
            if verdict is not None:
                self.factory.junk_connection(self, verdict)
                self._ended = True
                self._cancel_idle_timer()
                self.transport.loseConnection()  # type: ignore[union-attr]
                return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        room = self.factory.max_job_bytes - self.bytes_received
        self.bytes_received += min(len(data), room)
        self.factory.bytes_received(min(len(data), room))
        if len(data) > room:
            self._handle(self.parser.feed(data[:room]))
            self.log.warn("job {job} from {peer} exceeds {limit} bytes: truncated",
                          job=self.job, peer=self.peer, limit=self.factory.max_job_bytes)
            self._end_job(truncated=True)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._handle(self.parser.feed(data))

    def _handle(self, events: list[Event]) -> None:
        replies = []
        for event in events:
            if isinstance(event, StatusQuery):
                if event.command[:2] == b"\x1da":
                    self.auto_status = bool(event.command[2])
                reply = reply_to(event.command, self.factory.state, self.factory.identity)
                if reply is not None:
                    replies.append(reply)
            elif isinstance(event, ParsedReceipt):
                self.receipts += 1
                self.factory.receipt_parsed(self, event)
        if replies:
            self.factory.status_replies_total += len(replies)
            # Queries that arrive together are answered in one write, as a printer would.
            self.transport.write(b"".join(replies))  # type: ignore[union-attr]

    def state_changed(self) -> None:
        """The printer's state was set: with automatic status back enabled, report it."""
        if self.auto_status and not self._ended:
            self.transport.write(automatic_status(self.factory.state))  # type: ignore

    # -- ending ------------------------------------------------------------------------------

    def _reset_idle_timer(self) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(self.factory.idle_timeout)
        else:
            self._idle_call = self.factory.clock.callLater(
                self.factory.idle_timeout, self._idle_timed_out)

    def _idle_timed_out(self) -> None:
        self._idle_call = None
        self.log.info("job {job} from {peer} idle for {timeout}s: ending it",
                      job=self.job, peer=self.peer, timeout=self.factory.idle_timeout)
        self.end_and_close()

    def end_and_close(self, abort: bool = False) -> None:
        """End the job now (idle, or shutting down) with what arrived, and hang up."""
        self._end_job(truncated=False)
        if abort:
            self.transport.abortConnection()  # type: ignore[union-attr]
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def _cancel_idle_timer(self) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None

    def _end_job(self, truncated: bool) -> None:
        if self._ended:
            return
        if self._prefix:
            # The job ended while its first bytes were still ambiguous: they are a job, unless
            # they are a whole probe (a bare "HELP" line).
            data, self._prefix = bytes(self._prefix), None
            verdict = classify(data, complete=True)
            if verdict is not None:
                self.factory.junk_connection(self, verdict)
            else:
                self._feed(data)
        self._prefix = None
        if self._ended:
            return
        self._ended = True
        self._cancel_idle_timer()
        self._handle(self.parser.close(truncated=truncated))
        self.factory.job_ended(self)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.job is not None:
            self._end_job(truncated=False)
        self.factory.release(self)

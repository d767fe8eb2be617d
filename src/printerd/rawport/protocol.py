"""
One raw print job: a TCP connection on the printer port.

The protocol only connects a parser to the transport: bytes in, status replies out, parsed
receipts handed on.  It knows nothing of the factory: its settings (``JobSettings``), where its
results go (a ``JobSink``) and who hands out slots (a ``Gate``) come in through the constructor.
It enforces the per-job limits (idle timeout, job size); the gate enforces the connection limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Callable, Optional, Protocol as Interface

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime, ITransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.escpos.junk import NEED_MORE, classify
from printerd.escpos.parser import Event, ParsedReceipt, StatusQuery
from printerd.escpos.profiles import PrinterProfile, profile_for
from printerd.escpos.status import PrinterIdentity, PrinterState
from printerd.rawport.emulation import ESCPOS, Emulation


@dataclass(frozen=True)
class JobSettings:
    """What one job on a printer's raw port may do, and how its bytes are understood."""

    idle_timeout: float  # seconds without bytes before the job is ended
    max_job_bytes: int  # bytes per job; past it the job is ended, truncated
    two_byte_encoding: str  # FS & two-byte mode
    identity: PrinterIdentity  # what GS I reports
    emulation: Emulation = ESCPOS

    @cached_property
    def profile(self) -> PrinterProfile:
        """The model's paper: where print positions may go in this printer's jobs."""
        return profile_for(self.identity.model)


@dataclass(frozen=True)
class EndedJob:
    """What a finished job did (for the job's log line)."""

    job: int
    peer: str
    receipts: int
    received: int  # bytes
    duration: float  # seconds


class JobSink(Interface):
    """Where a raw job's results go: the printer's factory (tests use an in-memory one)."""

    @property
    def state(self) -> PrinterState:
        """The printer's state, which status replies report."""

    def start_job(self, peer: str) -> int:
        """A connection got its slot: count the job and return its id."""

    def receipt(self, job: int, peer: str, parsed: ParsedReceipt) -> Deferred[object]:
        """Keep a parsed receipt; the Deferred fires once it is committed."""

    def received(self, count: int) -> None:
        """Count job bytes received."""

    def replied(self, count: int) -> None:
        """Count status replies sent."""

    def junk(self, peer: str, kind: str) -> None:
        """A connection spoke another protocol (``kind``): it was dropped, nothing stored."""

    def end_job(self, ended: EndedJob) -> None:
        """A job has ended."""


class JobRelay(Interface):
    """
    Another printer that gets a copy of the job as it arrives (``printerd.tee``): it may hold
    the job's start, and answers status queries in printerd's place while it is connected.
    """

    def start(self, pos: ITransport, resume: Callable[[], None]) -> bool:
        """The job starts: True to read now, False to wait until ``resume()`` is called."""

    def forward(self, data: bytes) -> None:
        """The job's bytes as they arrive (after the junk check, within max_job_bytes)."""

    def reported_state(self, own: PrinterState) -> Optional[PrinterState]:
        """The state printerd's replies report, or None: the other printer answers instead."""

    def annotate(self, receipt: ParsedReceipt) -> ParsedReceipt:
        """The receipt as stored (it says whether the other printer got it)."""

    def end(self) -> None:
        """The job has ended."""


class Gate(Interface):
    """Hands out job slots: calls ``start_job`` or ``wait_for_slot`` on each admitted one."""

    def admit(self, connection: RawPrintProtocol) -> None:
        """A connection was made: start it, or make it wait."""

    def release(self, connection: RawPrintProtocol) -> None:
        """A connection has closed: its slot (or its place in the queue) is free."""


class RawPrintProtocol(Protocol):
    """Receives one print job; see the module docstring."""

    log = Logger()

    def __init__(self, settings: JobSettings, sink: JobSink, gate: Gate, clock: IReactorTime,
                 peer: str, host: str, relay: Optional[JobRelay] = None) -> None:
        self.settings = settings
        self.relay = relay
        self.sink = sink
        self.gate = gate
        self.clock = clock
        self.peer = peer  # address and port, for logs and receipts
        self.host = host  # the peer's address without port: the per-peer key
        self.job: Optional[int] = None
        # The printer's emulation: its parser, and this connection's status replies.
        self.parser = settings.emulation.new_parser(settings.two_byte_encoding, settings.profile)
        self.status = settings.emulation.new_status()
        self.bytes_received = 0
        self.receipts = 0
        self.started_at = 0.0
        self._idle_call: Optional[IDelayedCall] = None
        self._ended = False
        self._prefix: Optional[bytearray] = bytearray()  # first bytes, until classified

    # -- lifecycle, driven by the gate -------------------------------------------------------

    def connectionMade(self) -> None:
        self.gate.admit(self)

    def start_job(self) -> None:
        """Called by the gate when this connection gets a slot: start reading."""
        self.job = self.sink.start_job(self.peer)
        self.started_at = self.clock.seconds()
        self._reset_idle_timer()
        # A relay that is still connecting to its printer holds the job's first byte until it
        # knows whether it will get the bytes and answer the status queries.
        if self.relay is None or self.relay.start(
                self.transport, self._resume_reading):  # type: ignore[arg-type]
            self.transport.resumeProducing()  # type: ignore[union-attr]
        else:
            self.transport.pauseProducing()  # type: ignore[union-attr]

    def _resume_reading(self) -> None:
        if not self._ended:
            self._reset_idle_timer()
            self.transport.resumeProducing()  # type: ignore[union-attr]

    def wait_for_slot(self) -> None:
        """Called by the gate at the connection limit: leave the bytes in the kernel."""
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
                self.sink.junk(self.peer, verdict)
                self._ended = True
                self._cancel_idle_timer()
                self.transport.loseConnection()  # type: ignore[union-attr]
                return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        room = self.settings.max_job_bytes - self.bytes_received
        self.bytes_received += min(len(data), room)
        self.sink.received(min(len(data), room))
        if self.relay is not None:
            self.relay.forward(data[:room])
        if len(data) > room:
            self._handle(self.parser.feed(data[:room]))
            self.log.warn("job {job} from {peer} exceeds {limit} bytes: truncated",
                          job=self.job, peer=self.peer, limit=self.settings.max_job_bytes)
            self._end_job(truncated=True)
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        self._handle(self.parser.feed(data))

    def _handle(self, events: list[Event]) -> None:
        replies = []
        for event in events:
            if isinstance(event, StatusQuery):
                state = self._reported_state()
                # Asked even when the relay answers: the status object keeps ASB and ETB state.
                reply = self.status.reply(event.command, state or self.sink.state,
                                          self.settings.identity)
                if reply is not None and state is not None:
                    replies.append(reply)
            elif isinstance(event, ParsedReceipt):
                self.receipts += 1
                if self.relay is not None:
                    event = self.relay.annotate(event)
                self.sink.receipt(self.job or 0, self.peer, event)
        if replies:
            self.sink.replied(len(replies))
            # Queries that arrive together are answered in one write, as a printer would.
            self.transport.write(b"".join(replies))  # type: ignore[union-attr]

    def _reported_state(self) -> Optional[PrinterState]:
        """What printerd's replies report; None while a relay's printer answers instead."""
        if self.relay is None:
            return self.sink.state
        return self.relay.reported_state(self.sink.state)

    def state_changed(self) -> None:
        """The printer's state was set: with automatic status back enabled, report it."""
        state = self._reported_state()
        update = self.status.state_changed(state or self.sink.state)
        if update is not None and state is not None and not self._ended:
            self.transport.write(update)  # type: ignore[union-attr]

    # -- ending ------------------------------------------------------------------------------

    def _reset_idle_timer(self) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.reset(self.settings.idle_timeout)
        else:
            self._idle_call = self.clock.callLater(self.settings.idle_timeout,
                                                   self._idle_timed_out)

    def _idle_timed_out(self) -> None:
        self._idle_call = None
        self.log.info("job {job} from {peer} idle for {timeout}s: ending it",
                      job=self.job, peer=self.peer, timeout=self.settings.idle_timeout)
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
                self.sink.junk(self.peer, verdict)
            else:
                self._feed(data)
        self._prefix = None
        if self._ended:
            return
        self._ended = True
        self._cancel_idle_timer()
        self._handle(self.parser.close(truncated=truncated))
        if self.relay is not None:
            self.relay.end()
        self.sink.end_job(EndedJob(self.job or 0, self.peer, self.receipts, self.bytes_received,
                                   self.clock.seconds() - self.started_at))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.job is not None:
            self._end_job(truncated=False)
        self.gate.release(self)

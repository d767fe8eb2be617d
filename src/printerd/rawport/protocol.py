"""
One raw print job: a TCP connection on the printer port.

The protocol only connects a parser to the transport: bytes in, status replies out, parsed
receipts handed on.  It knows nothing of the factory: its settings (``JobSettings``), where its
results go (a ``JobSink``) and who hands out slots (a ``Gate``) come in through the constructor.
It enforces the per-job limits (idle timeout, job size, unsent replies); the gate enforces the
connection limits.  A printer with a ``tee`` also hands each job to a ``JobRelay`` as it
arrives.

Replies are bounded.  The protocol is the push producer of its own transport: when the
transport holds more unsent bytes than its buffer size (64 KiB), it pauses the protocol, which
stops reading, so a client that asks and never reads leaves its queries in the kernel, not our
replies in memory.  Bytes are parsed in slices of ``SLICE`` bytes, so one read cannot produce
more than one slice's replies past the bound.

A reply acknowledges what came before it.  A status reply that follows receipts in the job is
written only once those receipts are committed (the sink's Deferred), so a POS that hears the
printer answer after a cut knows its receipt is stored.  Replies keep their order: one held
behind a commit holds the later ones too.  A reply with no uncommitted receipt before it goes
at once.  (With a tee connected, the real printer's answers take the same path.)
"""

from __future__ import annotations

import socket
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Callable, Optional, Protocol as Interface

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime, ITransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from printerd.escpos.junk import NEED_MORE, classify
from printerd.escpos.parser import Event, ParsedReceipt, StatusQuery
from printerd.escpos.profiles import PrinterProfile, profile_for
from printerd.escpos.status import PrinterIdentity, PrinterState
from printerd.emulation import ESCPOS, Emulation

# Bytes parsed at a time: between slices the protocol checks whether its replies are taken.
SLICE = 8 * 1024
# Replies held behind uncommitted receipts past which the protocol stops reading.
MAX_HELD_REPLIES = 64 * 1024
# The kernel's send buffer for replies (SO_SNDBUF; Linux doubles it).  Left to autotune it grows
# to megabytes for a client that never reads, and every byte of queries read to fill it stays
# in the job's raw bytes: a printer answers in a few bytes, so a small one serves every POS.
KERNEL_SEND_BUFFER = 16 * 1024


@dataclass(frozen=True)
class JobSettings:
    """What one job on a printer's raw port may do, and how its bytes are understood."""

    idle_timeout: float  # seconds without bytes before the job is ended
    max_job_bytes: int  # bytes per job; past it the job is ended, truncated
    two_byte_encoding: str  # FS & two-byte mode
    identity: PrinterIdentity  # what GS I reports
    emulation: Emulation = ESCPOS
    two_byte_at_start: bool = False  # in two-byte mode at power-on and after ESC @

    @cached_property
    def profile(self) -> PrinterProfile:
        """The model's paper (where print positions may go in this printer's jobs) and how it
        reads characters."""
        return profile_for(self.identity.model, self.two_byte_at_start)


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


def _limit_send_buffer(transport: Any) -> None:
    """Set KERNEL_SEND_BUFFER on a socket transport (others, such as tests', have none)."""
    get_handle = getattr(transport, "getHandle", None)
    handle = get_handle() if get_handle is not None else None
    if isinstance(handle, socket.socket):
        try:
            handle.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)
        except OSError as e:  # not every socket family takes it; the bound still holds
            RawPrintProtocol.log.debug("SO_SNDBUF not set: {error}", error=e)


@implementer(IPushProducer)
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
        self.receipts = 0  # handed to the sink so far
        self.started_at = 0.0
        self.last_printed_at = 0.0  # when the job last put something on paper
        self._prefix: Optional[bytearray] = bytearray()  # first bytes, until classified
        self._idle_call: Optional[IDelayedCall] = None
        self._close_call: Optional[IDelayedCall] = None
        self._ended = False  # the job is over: nothing more is parsed
        self._ending = False  # ending: parse what was read, whatever the replies
        self._truncated = False  # the job went past max_job_bytes
        self._hung_up = False
        # Flow control: reading stops for any reason here, or while bytes wait to be parsed:
        # "slot" (not admitted), "consumer" (replies unsent), "relay" (the tee is connecting),
        # "relay buffer" (the tee's printer has not taken what it was sent).
        self._pauses: set[str] = {"slot"}
        self._reading = True  # a new transport reads
        self._unparsed = b""
        self._parsed_to = 0  # self._unparsed[:self._parsed_to] is parsed
        self._processing = False
        # Receipts not yet committed, and replies waiting for them: (receipts before, bytes).
        self._uncommitted: set[int] = set()
        self._held: deque[tuple[int, bytes]] = deque()
        self._held_bytes = 0

    # -- lifecycle, driven by the gate -------------------------------------------------------

    def connectionMade(self) -> None:
        _limit_send_buffer(self.transport)
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.gate.admit(self)

    def start_job(self) -> None:
        """Called by the gate when this connection gets a slot: start reading."""
        self.job = self.sink.start_job(self.peer)
        self.started_at = self.last_printed_at = self.clock.seconds()
        self._reset_idle_timer()
        self._pauses.discard("slot")
        # A relay that is still connecting to its printer holds the job's first byte until it
        # knows whether it will get the bytes and answer the status queries.
        if self.relay is not None and not self.relay.start(
                _RelayView(self), self._resume_reading):  # type: ignore[arg-type]
            self._pauses.add("relay")
        self._update_reading()

    def _resume_reading(self) -> None:
        """The relay knows whether its printer is there: read the job."""
        if not self._ended:
            self._reset_idle_timer()
            self._pauses.discard("relay")
            self._update_reading()

    def wait_for_slot(self) -> None:
        """Called by the gate when no slot is free: leave the bytes in the kernel."""
        self._update_reading()

    def hang_up(self) -> None:
        """Called by the gate for a connection that never got a slot: close it."""
        self._hang_up(abort=True)

    # -- IPushProducer: the transport's buffer of unsent replies -----------------------------

    def pauseProducing(self) -> None:
        """The transport holds more than its buffer size unsent: stop reading."""
        self._pauses.add("consumer")
        self._update_reading()

    def resumeProducing(self) -> None:
        """The transport has sent what it held: parse what waits, then read again."""
        self._pauses.discard("consumer")
        self._run()

    def stopProducing(self) -> None:
        """The connection is gone; connectionLost follows."""

    def _relay_paused(self, paused: bool) -> None:
        """The relay's printer has (not) taken what it was sent: read on or wait."""
        if paused:
            self._pauses.add("relay buffer")
            self._update_reading()
        else:
            self._pauses.discard("relay buffer")
            self._run()

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
                if self.relay is not None:
                    self.relay.end()  # nothing was sent to the real printer: let it go too
                self._hang_up()
                return
        if self._parsed_to < len(self._unparsed):  # still parsing the last read: keep order
            self._unparsed = self._unparsed[self._parsed_to:] + data
        else:
            self._unparsed = data
        self._parsed_to = 0
        self._run()

    def _run(self) -> None:
        """Parse what was read until done or blocked; end a job past its size; read or not."""
        if self._processing or self._ended:
            return
        self._processing = True
        try:
            self._process()
        finally:
            self._processing = False
        if self._truncated and not self._ending:
            self.log.warn("job {job} from {peer} exceeds {limit} bytes: truncated",
                          job=self.job, peer=self.peer, limit=self.settings.max_job_bytes)
            self._end_job()
            self._hang_up()
        self._update_reading()

    def _blocked(self) -> bool:
        """Whether parsing waits for replies to be taken (never while the job ends)."""
        return not self._ending and ("consumer" in self._pauses
                                     or self._held_bytes > MAX_HELD_REPLIES)

    def _process(self) -> None:
        while self._parsed_to < len(self._unparsed) and not self._blocked():
            chunk = self._unparsed[self._parsed_to:self._parsed_to + SLICE]
            self._parsed_to += len(chunk)
            self._parse(chunk)
            if self._truncated:
                self._parsed_to = len(self._unparsed)  # the rest is past the limit
        if self._parsed_to >= len(self._unparsed):
            self._unparsed, self._parsed_to = b"", 0

    def _parse(self, chunk: bytes) -> None:
        room = self.settings.max_job_bytes - self.bytes_received
        if len(chunk) > room:
            chunk, self._truncated = chunk[:room], True
        self.bytes_received += len(chunk)
        self.sink.received(len(chunk))
        if self.relay is not None:
            self.relay.forward(chunk)
        printed = self.parser.content_bytes
        self._handle(self.parser.feed(chunk))
        if self.parser.content_bytes != printed:
            self.last_printed_at = self.clock.seconds()

    def _handle(self, events: list[Event]) -> None:
        replies: list[bytes] = []
        for event in events:
            if isinstance(event, StatusQuery):
                state = self._reported_state()
                # Asked even when the relay answers: the status object keeps ASB and ETB state.
                reply = self.status.reply(event.command, state or self.sink.state,
                                          self.settings.identity)
                if reply is not None and state is not None:
                    replies.append(reply)
            elif isinstance(event, ParsedReceipt):
                if replies:  # they answer what came before this receipt: not held behind it
                    self._send_replies(replies)
                    replies = []
                if self.relay is not None:
                    event = self.relay.annotate(event)
                self._hand_over(event)
        if replies:
            self._send_replies(replies)

    def _reported_state(self) -> Optional[PrinterState]:
        """What printerd's replies report; None while a relay's printer answers instead."""
        if self.relay is None:
            return self.sink.state
        return self.relay.reported_state(self.sink.state)

    def _send_replies(self, replies: list[bytes]) -> None:
        self.sink.replied(len(replies))
        # Queries that arrive together are answered in one write, as a printer would.
        self._write(b"".join(replies))

    def _write(self, data: bytes) -> None:
        if self._hung_up:
            return
        if self._uncommitted or self._held:
            self._held.append((self.receipts, data))
            self._held_bytes += len(data)
        else:
            self.transport.write(data)  # type: ignore[union-attr]

    # -- receipts and their commits ----------------------------------------------------------

    def _hand_over(self, parsed: ParsedReceipt) -> None:
        self.receipts += 1
        number = self.receipts
        self._uncommitted.add(number)
        committed = self.sink.receipt(self.job or 0, self.peer, parsed)
        committed.addCallbacks(self._committed, self._commit_failed, callbackArgs=(number,),
                               errbackArgs=(number,))

    def _committed(self, result: Any, number: int) -> None:
        self._uncommitted.discard(number)
        acknowledged = min(self._uncommitted) - 1 if self._uncommitted else self.receipts
        while self._held and self._held[0][0] <= acknowledged:
            _, data = self._held.popleft()
            self._held_bytes -= len(data)
            if not self._hung_up:
                self.transport.write(data)  # type: ignore[union-attr]
        self._run()

    def _commit_failed(self, failure: Failure, number: int) -> None:
        # The store retries failed commits until it stops; replies after this receipt stay
        # unsent, since it may not be stored.
        self.log.failure("receipt {number} of job {job} was not committed", failure,
                         number=number, job=self.job)

    def state_changed(self) -> None:
        """The printer's state was set: with automatic status back enabled, report it."""
        state = self._reported_state()
        update = self.status.state_changed(state or self.sink.state)
        if update is not None and state is not None and not self._ended:
            self._write(update)

    # -- reading or not ----------------------------------------------------------------------

    def _update_reading(self) -> None:
        if self._hung_up or self._ended:
            return
        reading = not self._pauses and not self._blocked() \
            and self._parsed_to >= len(self._unparsed)
        if reading != self._reading:
            self._reading = reading
            if reading:
                self.transport.resumeProducing()  # type: ignore[union-attr]
            else:
                self.transport.pauseProducing()  # type: ignore[union-attr]

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
        """End the job now (idle, evicted, shutting down) with what arrived, and hang up."""
        self._end_job()
        # A client that does not take its replies would hold a closing connection forever.
        self._hang_up(abort=abort or "consumer" in self._pauses)

    def _hang_up(self, abort: bool = False) -> None:
        if self._hung_up:
            return
        self._hung_up = True
        self.transport.unregisterProducer()  # type: ignore[union-attr]
        if abort:
            self.transport.abortConnection()  # type: ignore[union-attr]
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]
            # Replies already written go out first, unless the client never takes them.
            self._close_call = self.clock.callLater(self.settings.idle_timeout,
                                                    self._abort_lingering)

    def _abort_lingering(self) -> None:
        self._close_call = None
        self.transport.abortConnection()  # type: ignore[union-attr]

    def _cancel_idle_timer(self) -> None:
        if self._idle_call is not None and self._idle_call.active():
            self._idle_call.cancel()
        self._idle_call = None

    def _end_job(self) -> None:
        if self._ended or self._ending:
            return
        self._ending = True
        if self._prefix:
            # The job ended while its first bytes were still ambiguous: they are a job, unless
            # they are a whole probe (a bare "HELP" line).
            data, self._prefix = bytes(self._prefix), None
            verdict = classify(data, complete=True)
            if verdict is not None:
                self.sink.junk(self.peer, verdict)
            else:
                self._unparsed, self._parsed_to = data, 0
        self._prefix = None
        self._process()  # what was read is part of the job, replies or not
        self._ended = True
        self._cancel_idle_timer()
        self._handle(self.parser.close(truncated=self._truncated))
        if self.relay is not None:
            self.relay.end()
        self.sink.end_job(EndedJob(self.job or 0, self.peer, self.receipts, self.bytes_received,
                                   self.clock.seconds() - self.started_at))

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._hung_up = True
        if self._close_call is not None and self._close_call.active():
            self._close_call.cancel()
        self._close_call = None
        if self.job is not None:
            self._end_job()
        self._cancel_idle_timer()
        self.gate.release(self)


class _RelayView:
    """
    The POS connection as a relay sees it (``JobRelay.start``): the real printer's answers go
    the way printerd's own do (behind uncommitted receipts, within the reply bound), and the
    relay's backpressure is one more reason for the protocol not to read.
    """

    def __init__(self, protocol: RawPrintProtocol) -> None:
        self._protocol = protocol

    def write(self, data: bytes) -> None:
        self._protocol._write(data)

    def pauseProducing(self) -> None:
        self._protocol._relay_paused(True)

    def resumeProducing(self) -> None:
        self._protocol._relay_paused(False)

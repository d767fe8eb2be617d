"""
Pass-through ("tee") to a real printer: a printer with a ``tee`` setting also sends every raw
job, as its bytes arrive, to the real printer at that address, and is captured as always.

- Each POS connection gets its own connection to the real printer (a printer takes one job per
  connection).  The POS's bytes are read only once that connection is made or has failed, so
  every byte is known to be relayed or not, and every status query is answered by the one
  that should: the real printer while it is connected (its answers go back to the POS, so the
  POS sees real paper-out), printerd otherwise (with its own state, or as an offline printer
  if ``tee_fallback = "offline"``).
- Backpressure: the relay connection's write buffer pauses the POS connection (Twisted's
  producer API: past the transport's 64 KiB buffer), so a slow printer slows the POS as it
  would without printerd, and no more than one buffer per job is ever held.
- When the real printer cannot be reached (or goes away mid-job) the job goes on without it:
  its receipts are stored with ``tee.delivered = false``.  After a failure, jobs do not try
  again until a backoff (1 s doubling to 30 s) has passed, so a printer that is switched off
  delays at most one job per backoff by the connect timeout.

``Tee`` is one printer's relay (state, counters, backoff); ``JobRelay`` is one job's, which the
raw port's protocol drives (``printerd.rawport.protocol.JobRelay``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from twisted.internet.defer import CancelledError, Deferred, TimeoutError as DeferredTimeout
from twisted.internet.interfaces import IPushProducer, IReactorTime, IStreamClientEndpoint
from twisted.internet.interfaces import ITransport
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from printerd.backoff import Backoff
from printerd.escpos.parser import ParsedReceipt
from printerd.escpos.status import PrinterState
from printerd.store.receipts import format_time

FALLBACKS = ("own", "offline")  # what status queries get while the real printer is away

UNKNOWN, UP, DOWN = "unknown", "up", "down"


@dataclass
class TeeCounters:
    """Totals since start for one printer's relay."""

    jobs_relayed_total: int = 0  # jobs that reached the real printer's connection
    jobs_not_relayed_total: int = 0  # jobs that went on without it (unreachable, backing off)
    receipts_undelivered_total: int = 0  # receipts stored with delivered = false
    bytes_relayed_total: int = 0  # job bytes written to the real printer
    connect_failures_total: int = 0  # connections to the real printer that failed
    connections_lost_total: int = 0  # relay connections lost while their job was running
    pauses_total: int = 0  # times the real printer's backpressure paused a POS connection


def describe_failure(failure: Failure) -> str:
    if failure.check(DeferredTimeout, CancelledError):
        return "connect timed out"
    return failure.getErrorMessage() or repr(failure.value)


class Tee:
    """One printer's relay to its real printer; see the module docstring."""

    log = Logger()

    def __init__(self, clock: IReactorTime, endpoint: IStreamClientEndpoint, description: str,
                 fallback: str = "own", timeout: float = 3.0,
                 backoff: Optional[Backoff] = None) -> None:
        if fallback not in FALLBACKS:
            raise ValueError(f"fallback must be one of {FALLBACKS}")
        self.clock = clock
        self.endpoint = endpoint
        self.description = description
        self.fallback = fallback
        self.timeout = timeout
        self.backoff = backoff if backoff is not None else Backoff(first=1.0, cap=30.0)
        self.counters = TeeCounters()
        self.state = UNKNOWN
        self.last_error: Optional[str] = None
        self.changed_at: Optional[float] = None
        self.retry_at = 0.0  # while down: no job tries before this time
        self.open_relays = 0  # relay connections open now

    def relay(self) -> JobRelay:
        """A relay for one new job."""
        return JobRelay(self)

    @property
    def up(self) -> bool:
        return self.state == UP

    def may_try(self) -> bool:
        return self.state != DOWN or self.clock.seconds() >= self.retry_at

    def connected(self) -> None:
        self.backoff.succeeded()
        self._set(UP, None)

    def failed(self, error: str) -> None:
        self.retry_at = self.clock.seconds() + self.backoff.failed()
        self._set(DOWN, error)

    def _set(self, state: str, error: Optional[str]) -> None:
        if state != self.state:
            self.changed_at = self.clock.seconds()
            if state == UP:
                self.log.info("tee to {to}: the real printer is reachable", to=self.description)
            else:
                self.log.warn("tee to {to}: the real printer is unreachable ({error}); jobs are "
                              "stored, not printed", to=self.description, error=error)
        self.state = state
        if error is not None:
            self.last_error = error

    def to_json(self) -> dict[str, Any]:
        """The relay's state for /api/printers and the web page."""
        c = self.counters
        return {"to": self.description, "state": self.state, "fallback": self.fallback,
                "last_error": self.last_error,
                "since": format_time(self.changed_at) if self.changed_at is not None else None,
                "connections": self.open_relays,
                "counters": {"jobs_relayed": c.jobs_relayed_total,
                             "jobs_not_relayed": c.jobs_not_relayed_total,
                             "receipts_undelivered": c.receipts_undelivered_total,
                             "bytes_relayed": c.bytes_relayed_total,
                             "connect_failures": c.connect_failures_total,
                             "connections_lost": c.connections_lost_total}}


@implementer(IPushProducer)
class _PosPauser:
    """Registered on the relay connection: its full write buffer pauses the POS connection."""

    def __init__(self, relay: JobRelay) -> None:
        self.relay = relay
        self.paused = False

    def pauseProducing(self) -> None:
        if not self.paused and self.relay.pos is not None:
            self.paused = True
            self.relay.tee.counters.pauses_total += 1
            self.relay.pos.pauseProducing()  # type: ignore[attr-defined]

    def resumeProducing(self) -> None:
        if self.paused and self.relay.pos is not None:
            self.paused = False
            self.relay.pos.resumeProducing()  # type: ignore[attr-defined]

    def stopProducing(self) -> None:
        self.resumeProducing()  # the relay connection is gone: let the POS go on


class _RealPrinter(Protocol):
    """The connection to the real printer: its bytes (answers) go to the relay."""

    def __init__(self, relay: JobRelay) -> None:
        self.relay = relay

    def dataReceived(self, data: bytes) -> None:
        self.relay.answered(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.relay.lost(reason)


class _RealPrinterFactory(Factory):
    def __init__(self, relay: JobRelay) -> None:
        self.relay = relay

    def buildProtocol(self, addr: Any) -> _RealPrinter:
        return _RealPrinter(self.relay)


class JobRelay:
    """
    One job's copy to the real printer, driven by the raw port's protocol
    (``printerd.rawport.protocol.JobRelay``).
    """

    def __init__(self, tee: Tee) -> None:
        self.tee = tee
        self.pos: Optional[ITransport] = None
        self.printer: Optional[_RealPrinter] = None  # while connected
        self.error: Optional[str] = None  # why this job is not (or no longer) relayed
        self._pauser = _PosPauser(self)
        self._ended = False
        self._counted = False
        self._settled = False
        self._resume: Optional[Callable[[], None]] = None

    # -- the protocol's side -----------------------------------------------------------------

    def start(self, pos: ITransport, resume: Callable[[], None]) -> bool:
        """
        The job has its slot.  True: read the POS at once (the relay's fate is known); False:
        wait until ``resume()`` is called, once the real printer is connected or given up.
        """
        self.pos = pos
        if not self.tee.may_try():
            self._not_relayed(self.tee.last_error or "unreachable")
            return True

        def connected(printer: _RealPrinter) -> None:
            self.printer = printer
            self.tee.open_relays += 1
            self.tee.connected()
            self._count(relayed=True)
            transport = printer.transport
            transport.registerProducer(self._pauser, True)  # type: ignore[union-attr]
            if self._ended:  # the job ended while connecting (shutdown): nothing to send
                transport.loseConnection()  # type: ignore[union-attr]

        def failed(failure: Failure) -> None:
            self.tee.counters.connect_failures_total += 1
            error = describe_failure(failure)
            self.tee.failed(error)
            self._not_relayed(error)

        def go_on(_: Any) -> None:
            self._settled = True
            if self._resume is not None and not self._ended:
                self._resume()

        connecting: Deferred[Any] = self.tee.endpoint.connect(_RealPrinterFactory(self))
        connecting.addTimeout(self.tee.timeout, self.tee.clock)
        connecting.addCallbacks(connected, failed).addBoth(go_on)
        if self._settled:  # an endpoint that answered at once
            return True
        self._resume = resume
        return False

    def forward(self, data: bytes) -> None:
        """Job bytes as they arrive: on to the real printer while it is connected."""
        if self.printer is not None and data:
            self.tee.counters.bytes_relayed_total += len(data)
            self.printer.transport.write(data)  # type: ignore[union-attr]

    def reported_state(self, own: PrinterState) -> Optional[PrinterState]:
        """The state printerd's own status replies report, or None: the real printer answers."""
        if self.printer is not None:
            return None
        if self.tee.fallback == "offline":
            return replace(own, online=False)
        return own

    def annotate(self, receipt: ParsedReceipt) -> ParsedReceipt:
        """The receipt with ``tee``: whether all its bytes went to the real printer's connection."""
        delivered = self.printer is not None and self.error is None
        if not delivered:
            self.tee.counters.receipts_undelivered_total += 1
        details = {**receipt.details, "tee": {"to": self.tee.description,
                                               "delivered": delivered, "error": self.error}}
        return replace(receipt, details=details)

    def end(self) -> None:
        """The POS job has ended: finish sending what is buffered, then hang up."""
        self._ended = True
        if self.printer is not None:
            transport = self.printer.transport
            transport.unregisterProducer()  # type: ignore[union-attr]
            self._pauser.resumeProducing()
            transport.loseConnection()  # type: ignore[union-attr]

    # -- the real printer's side -------------------------------------------------------------

    def answered(self, data: bytes) -> None:
        """The real printer's answers (status replies) go back to the POS while its job runs."""
        if not self._ended and self.pos is not None:
            self.pos.write(data)

    def lost(self, reason: Failure) -> None:
        self.tee.open_relays -= 1
        self.printer = None
        self._pauser.resumeProducing()
        if not self._ended:
            # Mid-job: the rest of the job is stored, not printed; printerd answers from now on.
            error = f"connection lost mid-job: {reason.getErrorMessage()}"
            self.tee.counters.connections_lost_total += 1
            self.error = error
            self.tee.failed(error)

    def _not_relayed(self, error: str) -> None:
        self.error = error
        self._count(relayed=False)

    def _count(self, relayed: bool) -> None:
        if self._counted:
            return
        self._counted = True
        if relayed:
            self.tee.counters.jobs_relayed_total += 1
        else:
            self.tee.counters.jobs_not_relayed_total += 1

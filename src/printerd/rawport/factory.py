"""
The raw printing port's factory: one per printer.

It refuses peers outside the ``allow`` networks (closed at once and counted) and connections
its ``Admission`` cannot take (descriptors, a peer's waiting cap), builds a
``RawPrintProtocol`` per connection, and is the jobs' sink: it keeps the printer's state,
counts into its ``PrinterCounters`` and hands receipts to the store.  Who prints now and who
waits is the ``Admission``'s business.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Optional

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger, LogLevel

from printerd.addresses import in_networks, networks
from printerd.compact_json import compact_json
from printerd.config import PrinterConfig, Settings
from printerd.descriptors import DescriptorBudget, open_file_limit
from printerd.escpos.parser import ParsedReceipt
from printerd.emulation import EMULATIONS
from printerd.escpos.status import PrinterIdentity, PrinterState
from printerd.logwindow import CountedLines
from printerd.rawport.admission import Admission, AdmissionLimits
from printerd.rawport.counters import PrinterCounters
from printerd.rawport.joblog import JobLog
from printerd.rawport.protocol import EndedJob, JobSettings, RawPrintProtocol
from printerd.store.receipts import NewReceipt, format_time
from printerd.store.service import ReceiptStore
from printerd.tee import Tee


def describe_peer(address: IAddress) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def job_settings(settings: Settings, printer: Optional[PrinterConfig] = None) -> JobSettings:
    """A printer's job settings from printerd's settings and the printer's own (by default the
    one printer the top-level settings describe)."""
    printer = printer if printer is not None else settings.printer_configs()[0]
    return JobSettings(
        idle_timeout=settings.idle_timeout, max_job_bytes=settings.max_job_bytes,
        two_byte_encoding=printer.two_byte_encoding,
        identity=PrinterIdentity(maker=printer.maker, model=printer.model, serial=printer.serial),
        emulation=EMULATIONS[printer.emulation], two_byte_at_start=printer.two_byte_at_start)


def admission_limits(settings: Settings, max_open: Optional[int] = None) -> AdmissionLimits:
    """
    A printer's connection limits from printerd's settings; ``max_open`` is its share of
    descriptors (default: the raw ports' share of the process's limit now).
    """
    if max_open is None:
        max_open = DescriptorBudget.for_limit(open_file_limit()).raw
    return AdmissionLimits(max_connections=settings.max_connections,
                           max_per_peer=settings.raw_max_per_peer,
                           wait_timeout=settings.raw_wait_timeout, max_open=max_open)


# Peer addresses whose allow verdict is remembered (a LAN's tills are far fewer).
ALLOW_CACHE_SIZE = 4096


class RawPrintFactory(Factory):
    """Builds a RawPrintProtocol per connection and receives its results (``JobSink``)."""

    log = Logger()

    def __init__(self, clock: IReactorTime, store: ReceiptStore, printer: str = "default",
                 job: Optional[JobSettings] = None, limits: Optional[AdmissionLimits] = None,
                 allow: Optional[tuple[str, ...]] = None, tee: Optional[Tee] = None) -> None:
        defaults = Settings()
        self.clock = clock
        self.store = store
        self.printer = printer
        self.job_settings = job if job is not None else job_settings(defaults)
        self.allow = networks(allow if allow is not None else defaults.raw_allow)
        # Whether a peer is in ``allow``: a till's address is parsed once, not per job (bounded,
        # the least recently used forgotten).
        self._allowed = lru_cache(maxsize=ALLOW_CACHE_SIZE)(partial(in_networks,
                                                                    allowed=self.allow))
        self.counters = PrinterCounters()
        self.tee = tee  # a real printer every job is also sent to, if any
        self.admission: Admission[RawPrintProtocol] = Admission(
            clock, limits if limits is not None else admission_limits(defaults), self.counters)
        self._state = PrinterState()
        self.job_log = JobLog(clock, self.log, printer)
        # A refused host or a scanner in a loop: a line each for the first 10 a second, then
        # counted (a line per connection would grow the log without bound).
        self.refused_log = CountedLines(clock, self.log, "raw connections refused (not in "
                                        "raw_allow)", "host", LogLevel.warn)
        self.dropped_log = CountedLines(clock, self.log, "connections dropped on the printer "
                                        "port", "kind", LogLevel.warn)

    def buildProtocol(self, addr: IAddress) -> Optional[RawPrintProtocol]:  # type: ignore
        host = getattr(addr, "host", None)
        if host is not None and not self._allowed(host):
            self.counters.connections_refused_total += 1
            if self.refused_log.admit(host):
                self.log.warn("refused raw connection from {host}: not in raw_allow", host=host)
            return None  # Twisted closes the socket
        peer = describe_peer(addr)
        if not self.admission.accepts(host or peer):
            return None  # counted and logged by admission; Twisted closes the socket
        self.counters.connections_total += 1
        return RawPrintProtocol(self.job_settings, self, self.admission, self.clock, peer,
                                host or peer, self.tee.relay() if self.tee else None)

    # -- wiring: the listener, the store's health, shutdown ---------------------------------

    def set_port(self, port: IListeningPort) -> None:
        """The listening port, which admission pauses (called by the listener service)."""
        self.admission.set_port(port)

    def storage_changed(self) -> None:
        """The store's write health changed: pause or resume accepting jobs."""
        if self.store.write_error:
            self.log.error("database cannot be written: raw port paused, jobs wait in the backlog")
        self.admission.set_storage_blocked(self.store.write_error is not None)

    def drain(self, timeout: float) -> Deferred[None]:
        """Let every accepted job finish, up to ``timeout`` seconds (see Admission.drain)."""
        def log_the_last_jobs(result: None) -> None:
            for log in (self.job_log, self.refused_log, self.dropped_log):
                log.flush()
            return result

        return self.admission.drain(timeout).addBoth(log_the_last_jobs)

    @property
    def connections_active(self) -> int:
        return self.admission.connections_active

    @property
    def connections_waiting(self) -> int:
        return self.admission.connections_waiting

    # -- the printer's state -----------------------------------------------------------------

    @property
    def state(self) -> PrinterState:
        """What status replies report (JobSink)."""
        return self._state

    def set_state(self, state: PrinterState) -> None:
        """Set what status replies report; connections with automatic status back hear it."""
        changed = state != self._state
        self._state = state
        if changed:
            self.log.info("printer {printer} state set to {state}", printer=self.printer,
                          state=state.to_json())
            for protocol in self.admission.active:
                protocol.state_changed()

    # -- JobSink -----------------------------------------------------------------------------

    def start_job(self, peer: str) -> int:
        self.counters.jobs_total += 1
        return self.store.next_job_id()

    def receipt(self, job: int, peer: str, parsed: ParsedReceipt) -> Deferred[Any]:
        self.counters.receipts_total += 1
        self.counters.unknown_commands_total += parsed.unknown_commands
        return self.store.add_receipt(NewReceipt(
            printer=self.printer,
            peer=peer,
            received_at=format_time(self.clock.seconds()),
            job=job,
            raw=parsed.raw,
            text=parsed.text,
            cut=parsed.cut,
            truncated=parsed.truncated,
            details=compact_json(parsed.details),
        ))

    def received(self, count: int) -> None:
        self.counters.bytes_total += count

    def replied(self, count: int) -> None:
        self.counters.status_replies_total += count

    def junk(self, peer: str, kind: str) -> None:
        self.counters.junk_total[kind] += 1
        if self.dropped_log.admit(kind):
            self.log.warn("dropped a {kind} connection from {peer} on the printer port",
                          kind=kind, peer=peer)

    def end_job(self, ended: EndedJob) -> None:
        self.job_log.ended(ended)


@dataclass(frozen=True)
class RawPrinter:
    """One emulated printer: its factory and, once wired, the listener that serves it."""

    factory: RawPrintFactory
    listener: Optional[Any] = None  # printerd.listener.ListenerService
    cloudprnt: Optional[Any] = None  # printerd.cloudprnt.CloudPrntPrinter polling for it
    mdns: Optional[Any] = None  # printerd.mdns.AvahiPublisher advertising it

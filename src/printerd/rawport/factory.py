"""
The raw printing port's factory: the connection limit, counters, and receipts to the store.

At most ``max_connections`` jobs run at once, and at most ``max_per_peer`` from one address.
At the limit the listening port is paused, so further POS connections wait in the kernel's
backlog as they would for a busy printer; the few the reactor had already accepted in the same
batch (and a peer's connections over its own cap) wait here, not reading, until a slot frees.
No allowed connection is refused.  The port is also paused while the database cannot be
written, so a POS waits rather than printing into a receipt we could not keep.

Peers outside the ``allow`` networks are closed at once and counted.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from printerd.emulations import ESCPOS, Emulation
from printerd.escpos.parser import ParsedReceipt
from printerd.escpos.status import DEFAULT_IDENTITY, PrinterIdentity, PrinterState
from printerd.rawport.protocol import RawPrintProtocol
from printerd.store.receipts import NewReceipt, format_time
from printerd.store.service import ReceiptStore


def describe_peer(address: IAddress) -> str:
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None:
        return str(address)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class RawPrintFactory(Factory):
    """Builds a RawPrintProtocol per connection; see the module docstring."""

    log = Logger()

    def __init__(self, clock: IReactorTime, store: ReceiptStore, printer: str = "default",
                 max_connections: int = 50, idle_timeout: float = 30.0,
                 max_job_bytes: int = 64 * 1024 * 1024,
                 allow: tuple[str, ...] = ("0.0.0.0/0", "::/0"), max_per_peer: int = 0,
                 identity: PrinterIdentity = DEFAULT_IDENTITY,
                 two_byte_encoding: str = "gb18030", emulation: Emulation = ESCPOS) -> None:
        self.clock = clock
        self.store = store
        self.printer = printer
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_job_bytes = max_job_bytes
        self.state = PrinterState()
        self.identity = identity
        self.two_byte_encoding = two_byte_encoding
        self.emulation = emulation
        self.receipts_total = 0
        self.allow = [ipaddress.ip_network(n, strict=False) for n in allow]
        self.max_per_peer = max_per_peer
        self._per_peer: Counter[str] = Counter()
        self.connections_refused_total = 0
        self.junk_total: Counter[str] = Counter()
        self.port: Optional[IListeningPort] = None
        self._active: set[RawPrintProtocol] = set()
        self._waiting: deque[RawPrintProtocol] = deque()
        self._paused = False
        self._drains: list[Deferred[None]] = []
        self.connections_total = 0
        self.jobs_total = 0
        self.bytes_total = 0
        self.unknown_commands_total = 0
        self.status_replies_total = 0

    def buildProtocol(self, addr: IAddress) -> Optional[RawPrintProtocol]:  # type: ignore
        host = getattr(addr, "host", None)
        if host is not None and not self._allowed(host):
            self.connections_refused_total += 1
            self.log.warn("refused raw connection from {host}: not in raw_allow", host=host)
            return None  # Twisted closes the socket
        self.connections_total += 1
        protocol = RawPrintProtocol(self, describe_peer(addr))
        protocol.host = host or protocol.peer
        return protocol

    def _allowed(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in self.allow)

    def set_port(self, port: IListeningPort) -> None:
        """The listening port, paused at the limit (called by the listener service)."""
        self.port = port
        self._paused = False
        self._update_port()

    # -- the connection limit ----------------------------------------------------------------

    @property
    def connections_active(self) -> int:
        return len(self._active)

    @property
    def connections_waiting(self) -> int:
        """Accepted connections waiting for a slot, plus those in the kernel's backlog."""
        return len(self._waiting) + backlog_length(self.port)

    def _has_slot(self, protocol: RawPrintProtocol) -> bool:
        if len(self._active) >= self.max_connections:
            return False
        return not self.max_per_peer or self._per_peer[protocol.host] < self.max_per_peer

    def admit(self, protocol: RawPrintProtocol) -> None:
        if self._has_slot(protocol):
            self._start(protocol)
        else:
            self._waiting.append(protocol)
            protocol.wait_for_slot()
        self._update_port()

    def release(self, protocol: RawPrintProtocol) -> None:
        """A connection has closed: give its slot to the next one waiting."""
        if protocol in self._active:
            self._active.discard(protocol)
            self._per_peer[protocol.host] -= 1
            if self._per_peer[protocol.host] <= 0:
                del self._per_peer[protocol.host]
        else:
            try:
                self._waiting.remove(protocol)
            except ValueError:
                pass
        self._start_waiting()
        self._update_port()
        if not self._active and not self._waiting:
            drains, self._drains = self._drains, []
            for d in drains:
                d.callback(None)

    def _start_waiting(self) -> None:
        """Start waiting connections, oldest first, that now have a slot."""
        for protocol in list(self._waiting):
            if len(self._active) >= self.max_connections:
                break
            if self._has_slot(protocol):
                self._waiting.remove(protocol)
                self._start(protocol)

    def _start(self, protocol: RawPrintProtocol) -> None:
        self._active.add(protocol)
        self._per_peer[protocol.host] += 1
        self.jobs_total += 1
        protocol.start_job()

    def storage_changed(self) -> None:
        """The store's write health changed: pause or resume accepting jobs."""
        if self.store.write_error:
            self.log.error("database cannot be written: raw port paused, jobs wait in the backlog")
        self._update_port()

    def _update_port(self) -> None:
        at_limit = len(self._active) >= self.max_connections
        pause = at_limit or self.store.write_error is not None
        if self.port is None or pause == self._paused:
            return
        self._paused = pause
        if pause:
            if at_limit:
                self.log.warn("{limit} jobs in flight: new connections wait in the backlog",
                              limit=self.max_connections)
            self.port.stopReading()  # type: ignore[attr-defined]
        else:
            self.port.startReading()  # type: ignore[attr-defined]

    # -- receipts ----------------------------------------------------------------------------

    def bytes_received(self, count: int) -> None:
        self.bytes_total += count

    def junk_connection(self, protocol: RawPrintProtocol, kind: str) -> None:
        """A connection spoke another protocol: counted, dropped, never stored."""
        self.junk_total[kind] += 1
        self.log.warn("dropped a {kind} connection from {peer} on the printer port",
                      kind=kind, peer=protocol.peer)

    def set_state(self, state: PrinterState) -> None:
        """Set what status replies report; connections with automatic status back hear it."""
        changed = state != self.state
        self.state = state
        if changed:
            self.log.info("printer {printer} state set to {state}", printer=self.printer,
                          state=state.to_json())
            for protocol in list(self._active):
                protocol.state_changed()

    def receipt_parsed(self, protocol: RawPrintProtocol, parsed: ParsedReceipt) -> None:
        self.receipts_total += 1
        self.unknown_commands_total += parsed.unknown_commands
        self.store.add_receipt(NewReceipt(
            printer=self.printer,
            peer=protocol.peer,
            received_at=format_time(self.clock.seconds()),
            job=protocol.job or 0,
            raw=parsed.raw,
            text=parsed.text,
            cut=parsed.cut,
            truncated=parsed.truncated,
            details=json.dumps(parsed.details, separators=(",", ":")),
        ))

    def job_ended(self, protocol: RawPrintProtocol) -> None:
        self.log.info(
            "job {job} printer={printer} peer={peer} receipts={receipts} bytes={bytes} "
            "duration={duration:.3f}s", job=protocol.job, printer=self.printer,
            peer=protocol.peer, receipts=protocol.receipts, bytes=protocol.bytes_received,
            duration=self.clock.seconds() - protocol.started_at)

    # -- shutdown ----------------------------------------------------------------------------

    def drain(self, timeout: float) -> Deferred[None]:
        """
        Let every accepted job finish, ending those still open after ``timeout`` seconds.

        Jobs waiting for a slot are started too: their bytes are already ours to keep.
        """
        self.max_connections = max(self.max_connections, len(self._active) + len(self._waiting))
        self.max_per_peer = 0
        self._start_waiting()
        if not self._active:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drains.append(d)

        def deadline() -> None:
            for protocol in list(self._active):
                self.log.warn("job {job} still open at shutdown: ending it", job=protocol.job)
                protocol.end_and_close(abort=True)

        call = self.clock.callLater(timeout, deadline)

        def cancel_deadline(result: None) -> None:
            if call.active():
                call.cancel()
            return result

        return d.addCallback(cancel_deadline)


@dataclass(frozen=True)
class RawPrinter:
    """One emulated printer: its factory and, once wired, the listener that serves it."""

    factory: RawPrintFactory
    listener: Optional[Any] = None  # printerd.listener.ListenerService


def backlog_length(port: Optional[IListeningPort]) -> int:
    """
    Connections waiting in a listening TCP socket's accept queue (Linux only, else 0).

    For a socket in LISTEN state, /proc/net/tcp reports the accept queue length as rx_queue.
    """
    if port is None:
        return 0
    local_port = getattr(port.getHost(), "port", None)
    if local_port is None:
        return 0
    waiting = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == local_port:
                        waiting += int(fields[4].split(":")[1], 16)
        except OSError:
            continue
    return waiting

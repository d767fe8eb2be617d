"""
The raw printing port's factory: the connection limit, counters, and receipts to the store.

At most ``max_connections`` jobs run at once.  At the limit the listening port is paused, so
further POS connections wait in the kernel's backlog as they would for a busy printer; the
few the reactor had already accepted in the same batch wait here, not reading, until a slot
frees.  No connection is refused.
"""

from __future__ import annotations

from collections import deque
from typing import Optional

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IAddress, IListeningPort, IReactorTime
from twisted.internet.protocol import Factory
from twisted.logger import Logger

from printerd.escpos.parser import ParsedReceipt
from printerd.escpos.status import PrinterState
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
                 max_job_bytes: int = 64 * 1024 * 1024) -> None:
        self.clock = clock
        self.store = store
        self.printer = printer
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_job_bytes = max_job_bytes
        self.state = PrinterState()
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

    def buildProtocol(self, addr: IAddress) -> RawPrintProtocol:
        self.connections_total += 1
        return RawPrintProtocol(self, describe_peer(addr))

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

    def admit(self, protocol: RawPrintProtocol) -> None:
        if len(self._active) < self.max_connections:
            self._start(protocol)
        else:
            self._waiting.append(protocol)
            protocol.wait_for_slot()
        self._update_port()

    def release(self, protocol: RawPrintProtocol) -> None:
        """A connection has closed: give its slot to the next one waiting."""
        if protocol in self._active:
            self._active.discard(protocol)
        else:
            try:
                self._waiting.remove(protocol)
            except ValueError:
                pass
        while self._waiting and len(self._active) < self.max_connections:
            self._start(self._waiting.popleft())
        self._update_port()
        if not self._active and not self._waiting:
            drains, self._drains = self._drains, []
            for d in drains:
                d.callback(None)

    def _start(self, protocol: RawPrintProtocol) -> None:
        self._active.add(protocol)
        self.jobs_total += 1
        protocol.start_job()

    def _update_port(self) -> None:
        at_limit = len(self._active) >= self.max_connections
        if self.port is None or at_limit == self._paused:
            return
        self._paused = at_limit
        if at_limit:
            self.log.warn("{limit} jobs in flight: new connections wait in the backlog",
                          limit=self.max_connections)
            self.port.stopReading()  # type: ignore[attr-defined]
        else:
            self.port.startReading()  # type: ignore[attr-defined]

    # -- receipts ----------------------------------------------------------------------------

    def bytes_received(self, count: int) -> None:
        self.bytes_total += count

    def receipt_parsed(self, protocol: RawPrintProtocol, parsed: ParsedReceipt) -> None:
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
        while self._waiting:
            self._start(self._waiting.popleft())
        if not self._active:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._drains.append(d)

        def deadline() -> None:
            for protocol in list(self._active):
                self.log.warn("job {job} still open at shutdown: ending it", job=protocol.job)
                protocol.end_and_close(abort=True)

        call = self.clock.callLater(timeout, deadline)
        return d.addBoth(lambda result: (call.active() and call.cancel(), result)[1])


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

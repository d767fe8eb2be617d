"""
Admission control for one printer's raw port: who prints now and who waits.

At most ``max_connections`` jobs run at once, and at most ``max_per_peer`` from one address.
At the limit the listening port is paused, so further POS connections wait in the kernel's
backlog as they would for a busy printer; the few the reactor had already accepted in the same
batch (and a peer's connections over its own cap) wait here, not reading, until a slot frees.
No allowed connection is refused.  The port is also paused while the database cannot be
written, so a POS waits rather than printing into a receipt we could not keep.

On shutdown, ``drain`` lets every accepted job finish, up to a deadline.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Generic, Iterator, Optional, Protocol, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IListeningPort, IReactorTime
from twisted.logger import Logger

from printerd.rawport.backlog import backlog_length


class Admittable(Protocol):
    """A connection as admission sees it (``RawPrintProtocol``)."""

    host: str  # the per-peer key
    job: Optional[int]  # the job id once started

    def start_job(self) -> None:
        """It has a slot: start reading."""

    def wait_for_slot(self) -> None:
        """No slot yet: stop reading."""

    def end_and_close(self, abort: bool = False) -> None:
        """End its job with what arrived and hang up."""


Connection = TypeVar("Connection", bound=Admittable)


@dataclass(frozen=True)
class AdmissionLimits:
    """How many jobs one printer's raw port runs at once."""

    max_connections: int  # jobs in flight
    max_per_peer: int = 0  # jobs in flight per address (0: no cap)


class Admission(Generic[Connection]):
    """Slots, per-peer caps, the waiting queue, port pausing and drain; see the module docstring."""

    log = Logger()

    def __init__(self, clock: IReactorTime, limits: AdmissionLimits) -> None:
        self.clock = clock
        self.max_connections = limits.max_connections
        self.max_per_peer = limits.max_per_peer
        self.port: Optional[IListeningPort] = None
        self._active: set[Connection] = set()
        self._per_peer: Counter[str] = Counter()
        self._waiting: deque[Connection] = deque()
        self._paused = False
        self._storage_blocked = False
        self._drains: list[Deferred[None]] = []

    @property
    def active(self) -> Iterator[Connection]:
        """The connections running a job now."""
        return iter(list(self._active))

    @property
    def connections_active(self) -> int:
        return len(self._active)

    @property
    def connections_waiting(self) -> int:
        """Accepted connections waiting for a slot, plus those in the kernel's backlog."""
        return len(self._waiting) + backlog_length(self.port)

    def set_port(self, port: IListeningPort) -> None:
        """The listening port, paused at the limit (called once it listens)."""
        self.port = port
        self._paused = False
        self._update_port()

    def set_storage_blocked(self, blocked: bool) -> None:
        """While the database cannot be written, new connections wait in the backlog."""
        self._storage_blocked = blocked
        self._update_port()

    # -- the connection limit ----------------------------------------------------------------

    def _has_slot(self, connection: Connection) -> bool:
        if len(self._active) >= self.max_connections:
            return False
        return not self.max_per_peer or self._per_peer[connection.host] < self.max_per_peer

    def admit(self, connection: Connection) -> None:
        """A connection was made: start its job, or make it wait for a slot."""
        if self._has_slot(connection):
            self._start(connection)
        else:
            self._waiting.append(connection)
            connection.wait_for_slot()
        self._update_port()

    def release(self, connection: Connection) -> None:
        """A connection has closed: give its slot to the next one waiting."""
        if connection in self._active:
            self._active.discard(connection)
            self._per_peer[connection.host] -= 1
            if self._per_peer[connection.host] <= 0:
                del self._per_peer[connection.host]
        else:
            try:
                self._waiting.remove(connection)
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
        for connection in list(self._waiting):
            if len(self._active) >= self.max_connections:
                break
            if self._has_slot(connection):
                self._waiting.remove(connection)
                self._start(connection)

    def _start(self, connection: Connection) -> None:
        self._active.add(connection)
        self._per_peer[connection.host] += 1
        connection.start_job()

    def _update_port(self) -> None:
        at_limit = len(self._active) >= self.max_connections
        pause = at_limit or self._storage_blocked
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
            for connection in list(self._active):
                self.log.warn("job {job} still open at shutdown: ending it", job=connection.job)
                connection.end_and_close(abort=True)

        call = self.clock.callLater(timeout, deadline)

        def cancel_deadline(result: None) -> None:
            if call.active():
                call.cancel()
            return result

        return d.addCallback(cancel_deadline)

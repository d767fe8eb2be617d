"""
Admission control for one printer's raw port: who prints now, who waits, who is turned away.

Slots.  At most ``max_connections`` jobs run at once, at most ``max_per_peer`` from one address
(0: no cap).  A connection without a slot is accepted and waits here unread (its bytes stay in
the kernel) for up to ``wait_timeout`` seconds; then it is closed, and the POS sees a failed
print.  A slot that frees goes to the waiting host that holds the fewest slots, oldest first.

Fair share.  One host may use every slot while nobody else waits.  When a connection from a
host holding fewer than its fair share (``max_connections`` divided among the hosts that have
connections, at least 1) waits and no slot is free, the connection that has printed nothing
for longest, among hosts holding more than their share, is ended (what it sent is kept) and its
slot goes to the waiting host, provided it has printed nothing for ``EVICT_AFTER`` seconds.  A
POS that keeps one connection open to poll the status is never the one ended: one connection is
within every host's share (up to ``max_connections`` hosts).

Descriptors.  Connections wait here rather than in the kernel's backlog, so that a host
waiting behind another is seen.  The port holds at most ``max_open`` connections, its share of
the process's descriptors: at that many the listening port is paused and further connections
wait in the kernel's backlog.  One host may hold all of them but an eighth, kept for other
hosts.  At that cap, while its queue moves (one of its jobs started within ``STALLED_AFTER``
seconds: a burst), the port is paused and its burst waits in the backlog, nothing lost (Twisted
accepts in batches: connections of the batch under way when the port pauses wait here too, up
to ``max_open``).  Once its queue has stalled (it holds connections rather than printing), its
newest waiting connections past the cap are closed, the port accepts again and that host's new
connections are closed at once, so other hosts are accepted and heard.

Storage.  While the database cannot be written the listening port is paused too, so a POS waits
rather than printing into a receipt we could not keep.

On shutdown, ``drain`` lets every accepted job finish, waiting ones included, up to a deadline.
"""

from __future__ import annotations

import itertools
from collections import Counter, deque
from dataclasses import dataclass
from typing import Generic, Iterator, Optional, Protocol, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IListeningPort, IReactorTime
from twisted.logger import Logger

from printerd.rawport.backlog import backlog_length
from printerd.rawport.counters import PrinterCounters

# Seconds a connection must have printed nothing before it may lose its slot to another host:
# long enough not to cut a job between two packets, short enough that a waiting host prints
# within about a second.
EVICT_AFTER = 1.0
# Seconds without a job of its own starting after which a host holding its cap of descriptors
# is taken to hoard them rather than to burst: its further connections are closed at once.
STALLED_AFTER = 5.0


class Admittable(Protocol):
    """A connection as admission sees it (``RawPrintProtocol``)."""

    host: str  # the per-peer key
    job: Optional[int]  # the job id once started
    last_printed_at: float  # when its job last put something on paper

    def start_job(self) -> None:
        """It has a slot: start reading."""

    def wait_for_slot(self) -> None:
        """No slot yet: stop reading."""

    def hang_up(self) -> None:
        """Close it without a job: it waited too long."""

    def end_and_close(self, abort: bool = False) -> None:
        """End its job with what arrived and hang up."""


Connection = TypeVar("Connection", bound=Admittable)


@dataclass(frozen=True)
class AdmissionLimits:
    """How many connections one printer's raw port serves, and how long one may wait."""

    max_connections: int  # jobs in flight
    max_per_peer: int  # jobs in flight per address (0: no cap)
    wait_timeout: float  # seconds a connection may wait for a slot
    max_open: int  # connections held open, running or waiting: the port's descriptors


def _power_of_ten(n: int) -> bool:
    """1, 10, 100...: how often a flood of the same event is logged."""
    return n > 0 and str(n).rstrip("0") == "1"


class Admission(Generic[Connection]):
    """Slots, fair share, the waiting queue, port pausing and drain; see the module docstring."""

    log = Logger()

    def __init__(self, clock: IReactorTime, limits: AdmissionLimits,
                 counters: Optional[PrinterCounters] = None) -> None:
        self.clock = clock
        self.max_connections = limits.max_connections
        self.max_per_peer = limits.max_per_peer
        self.wait_timeout = limits.wait_timeout
        self.max_open = limits.max_open
        self.max_open_per_host = limits.max_open - max(1, limits.max_open // 8)
        self.counters = counters if counters is not None else PrinterCounters()
        self.port: Optional[IListeningPort] = None
        self._open = 0  # admitted and not yet released: running, waiting or closing
        self._open_per_host: Counter[str] = Counter()
        # Connections admission has closed (hoarded ones) whose release has not come yet.
        self._closing: set[Connection] = set()
        self._closing_per_host: Counter[str] = Counter()
        self._last_start: dict[str, float] = {}  # per host with open connections
        self._port_check_call: Optional[IDelayedCall] = None
        self._active: dict[Connection, None] = {}  # running a job, oldest first
        self._active_per_host: Counter[str] = Counter()
        # Waiting connections per host, oldest first, with their arrival number and deadline.
        self._waiting: dict[str, deque[tuple[int, Connection]]] = {}
        self._waiting_count = 0
        self._deadlines: dict[Connection, IDelayedCall] = {}
        self._arrivals = itertools.count()
        self._rebalance_call: Optional[IDelayedCall] = None
        self._paused = False
        self._storage_blocked = False
        self._draining = False
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
        return self._waiting_count + backlog_length(self.port)

    def set_port(self, port: IListeningPort) -> None:
        """The listening port, paused at ``max_open`` (called once it listens)."""
        self.port = port
        self._paused = False
        self._update_port()

    def set_storage_blocked(self, blocked: bool) -> None:
        """While the database cannot be written, new connections wait in the backlog."""
        self._storage_blocked = blocked
        self._update_port()

    # -- arrivals and departures -------------------------------------------------------------

    def accepts(self, host: str) -> bool:
        """Whether a new connection from ``host`` may be accepted (else it is closed at once)."""
        if self._open >= self.max_open:
            reason = f"the port holds {self._open} connections, its share of descriptors"
        elif self._held(host) >= self.max_open_per_host and self._stalled(host):
            reason = (f"{host} holds {self._held(host)} connections, all but those kept for "
                      f"other hosts, and none started a job for {STALLED_AFTER:.0f}s")
        else:
            return True
        self.counters.connections_turned_away_total += 1
        if _power_of_ten(self.counters.connections_turned_away_total):
            self.log.warn("closed a raw connection at once: {reason} ({n} so far)",
                          reason=reason, n=self.counters.connections_turned_away_total)
        return False

    def admit(self, connection: Connection) -> None:
        """A connection was made: start its job, or make it wait for a slot."""
        self._open += 1
        self._open_per_host[connection.host] += 1
        if self._has_slot(connection.host):
            self._start(connection)
        else:
            self._wait(connection)
            self._rebalance()
        self._update_port()

    def release(self, connection: Connection) -> None:
        """A connection has closed: its slot or its place in the queue is free."""
        self._open -= 1
        if connection in self._closing:
            self._closing.discard(connection)
            self._closing_per_host[connection.host] -= 1
            if self._closing_per_host[connection.host] <= 0:
                del self._closing_per_host[connection.host]
        self._open_per_host[connection.host] -= 1
        if self._open_per_host[connection.host] <= 0:
            del self._open_per_host[connection.host]
            self._last_start.pop(connection.host, None)
        if connection in self._active:
            self._stop(connection)
        else:
            self._leave_queue(connection)
        self._fill_slots()
        self._rebalance()
        self._update_port()
        if not self._active and not self._waiting_count:
            drains, self._drains = self._drains, []
            for d in drains:
                d.callback(None)

    # -- slots -------------------------------------------------------------------------------

    def _has_slot(self, host: str) -> bool:
        if len(self._active) >= self.max_connections:
            return False
        return not self.max_per_peer or self._active_per_host[host] < self.max_per_peer

    def _start(self, connection: Connection) -> None:
        self._active[connection] = None
        self._active_per_host[connection.host] += 1
        self._last_start[connection.host] = self.clock.seconds()
        connection.start_job()

    def _held(self, host: str) -> int:
        """Connections of host open, less those admission has closed already."""
        return self._open_per_host[host] - self._closing_per_host[host]

    def _stalled(self, host: str) -> bool:
        """Whether host has connections waiting and none of its jobs started for STALLED_AFTER."""
        last_start = self._last_start.get(host)
        return host in self._waiting and (
            last_start is None or self.clock.seconds() - last_start >= STALLED_AFTER)

    def _stop(self, connection: Connection) -> None:
        del self._active[connection]
        self._active_per_host[connection.host] -= 1
        if self._active_per_host[connection.host] <= 0:
            del self._active_per_host[connection.host]

    def _wait(self, connection: Connection) -> None:
        self._waiting.setdefault(connection.host, deque()).append(
            (next(self._arrivals), connection))
        self._waiting_count += 1
        if not self._draining:
            self._deadlines[connection] = self.clock.callLater(
                self.wait_timeout, self._expire, connection)
        connection.wait_for_slot()

    def _leave_queue(self, connection: Connection) -> bool:
        queue = self._waiting.get(connection.host)
        if not queue:
            return False
        for entry in queue:
            if entry[1] is connection:
                queue.remove(entry)
                break
        else:
            return False
        if not queue:
            del self._waiting[connection.host]
        self._waiting_count -= 1
        deadline = self._deadlines.pop(connection, None)
        if deadline is not None and deadline.active():
            deadline.cancel()
        return True

    def _next_waiting(self) -> Optional[Connection]:
        """The waiting connection a free slot goes to: its host holds fewest, then oldest."""
        best: Optional[tuple[int, int, Connection]] = None
        for host, queue in self._waiting.items():
            if self.max_per_peer and self._active_per_host[host] >= self.max_per_peer:
                continue
            arrival, connection = queue[0]
            key = (self._active_per_host[host], arrival, connection)
            if best is None or key[:2] < best[:2]:
                best = key
        return best[2] if best is not None else None

    def _fill_slots(self) -> None:
        while len(self._active) < self.max_connections:
            connection = self._next_waiting()
            if connection is None:
                return
            self._leave_queue(connection)
            self._start(connection)

    def _expire(self, connection: Connection) -> None:
        self._deadlines.pop(connection, None)
        if not self._leave_queue(connection):
            return
        self.counters.connections_expired_total += 1
        if _power_of_ten(self.counters.connections_expired_total):
            self.log.warn("closed a raw connection from {host} that waited {timeout}s for a "
                          "slot ({n} so far)", host=connection.host, timeout=self.wait_timeout,
                          n=self.counters.connections_expired_total)
        connection.hang_up()

    # -- fair share --------------------------------------------------------------------------

    def _fair_share(self) -> int:
        hosts = set(self._active_per_host) | set(self._waiting)
        return max(1, self.max_connections // max(1, len(hosts)))

    def _rebalance(self) -> None:
        """While a host under its share waits, end the longest non-printing over-share job."""
        if self._rebalance_call is not None and self._rebalance_call.active():
            self._rebalance_call.cancel()
        self._rebalance_call = None
        while not self._draining and len(self._active) >= self.max_connections:
            share = self._fair_share()
            if not any(self._active_per_host[host] < share
                       and (not self.max_per_peer
                            or self._active_per_host[host] < self.max_per_peer)
                       for host in self._waiting):
                return
            candidates = [c for c in self._active if self._active_per_host[c.host] > share]
            if not candidates:
                return
            victim = min(candidates, key=lambda c: c.last_printed_at)
            eligible_at = victim.last_printed_at + EVICT_AFTER
            now = self.clock.seconds()
            if eligible_at > now:
                self._rebalance_call = self.clock.callLater(eligible_at - now, self._rebalance)
                return
            self._evict(victim, share)
            self._fill_slots()

    def _evict(self, victim: Connection, share: int) -> None:
        self._stop(victim)
        self.counters.connections_evicted_total += 1
        self.log.info("ended job {job} from {host}, which printed nothing for {idle:.1f}s: "
                      "another host waits and {host} holds over its share of {share} slots",
                      job=victim.job, host=victim.host, share=share,
                      idle=self.clock.seconds() - victim.last_printed_at)
        victim.end_and_close(abort=True)

    def _close_hoarded(self, host: str) -> None:
        """Close a stalled host's newest waiting connections past its cap."""
        queue = self._waiting.get(host)
        closed = 0
        while queue and self._held(host) > self.max_open_per_host:
            _, connection = queue[-1]
            self._leave_queue(connection)
            self._closing.add(connection)
            self._closing_per_host[host] += 1
            closed += 1
            connection.hang_up()
        if closed:
            self.counters.connections_turned_away_total += closed
            self.log.warn("closed {n} waiting raw connections of {host}, which holds its cap of "
                          "{cap} and started no job for {stalled:.0f}s", n=closed, host=host,
                          cap=self.max_open_per_host, stalled=STALLED_AFTER)

    # -- the listening port ------------------------------------------------------------------

    def _update_port(self) -> None:
        if self._port_check_call is not None and self._port_check_call.active():
            self._port_check_call.cancel()
        self._port_check_call = None
        if self._draining:
            return
        capped = [host for host in self._open_per_host
                  if self._held(host) >= self.max_open_per_host]
        for host in capped:
            if self._stalled(host):
                self._close_hoarded(host)
        full = self._open >= self.max_open
        bursting = [host for host in capped if not self._stalled(host)]
        if bursting:
            # Look again when the burst's queue would count as stalled.
            stalls_at = min(self._last_start.get(host, 0.0) for host in bursting) + STALLED_AFTER
            self._port_check_call = self.clock.callLater(
                max(0.0, stalls_at - self.clock.seconds()), self._update_port)
        pause = full or bool(bursting) or self._storage_blocked
        if self.port is None or pause == self._paused:
            return
        self._paused = pause
        if pause:
            if full:
                self.log.warn("{n} raw connections open, the port's share of descriptors: "
                              "new connections wait in the backlog", n=self._open)
            elif bursting:
                self.log.warn("{host} holds {n} raw connections: new connections wait in the "
                              "backlog", host=bursting[0], n=self._held(bursting[0]))
            self.port.stopReading()  # type: ignore[attr-defined]
        else:
            self.port.startReading()  # type: ignore[attr-defined]

    # -- shutdown ----------------------------------------------------------------------------

    def drain(self, timeout: float) -> Deferred[None]:
        """
        Let every accepted job finish, ending those still open after ``timeout`` seconds.

        Jobs waiting for a slot are started too: their bytes are already ours to keep.
        """
        self._draining = True
        # The listener has stopped by now: its port is no longer ours to pause or resume.
        self.port = None
        if self._port_check_call is not None and self._port_check_call.active():
            self._port_check_call.cancel()
        if self._rebalance_call is not None and self._rebalance_call.active():
            self._rebalance_call.cancel()
        for waiting in self._deadlines.values():
            if waiting.active():
                waiting.cancel()
        self._deadlines.clear()
        self.max_connections = max(self.max_connections, len(self._active) + self._waiting_count)
        self.max_per_peer = 0
        self._fill_slots()
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

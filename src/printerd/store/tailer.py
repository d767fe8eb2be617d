"""
The tailer: makes an instance on a shared database (PostgreSQL) announce every instance's
receipts, in id order, each once.

Each group commit of any instance sends one NOTIFY carrying its newest id
(``postgres.CHANNEL``).  The tailer listens on a connection of its own whose socket the reactor
reads (``PostgresNotifications``, an ``IReadDescriptor``: no thread waits on it); a notification
newer than what the store has announced makes the store read on (``ReceiptStore.catch_up``: the
rows after the last announced id, in id order, on a reader thread) and announce them to the
stream hub, the /api/recent cache and the forwarder.

A notification can be lost (the LISTEN connection drops, the server restarts), so the tailer
also catches up every ``interval`` seconds, and at once whenever it starts listening again:
LISTEN is in place before that read starts, so whatever commits after it is notified.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Any, Callable, Optional, Protocol

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorFDSet, IReactorTime, IReadDescriptor
from twisted.python.failure import Failure
from zope.interface import implementer

from printerd.periodic import PeriodicJob
from printerd.store.receipts import Receipt
from printerd.store.service import ReceiptStore

OnNotify = Callable[[int, float], None]  # (newest id of a commit, server time it was sent)
OnLost = Callable[[str], None]  # why listening stopped


class Notifications(Protocol):
    """Where commit wake-ups come from (``PostgresNotifications``; a fake in tests)."""

    def listen(self, on_notify: OnNotify, on_lost: OnLost) -> Deferred[None]:
        """Start listening; fires once in place (fails if it cannot be).  After that,
        ``on_lost`` is called once if listening stops by itself."""

    def close(self) -> None:
        """Stop listening (``on_lost`` is not called)."""


class Tailer(PeriodicJob):
    """Feeds the store's ``catch_up`` from notifications and a timer; see the module docstring."""

    def __init__(self, clock: IReactorTime, store: ReceiptStore, notifications: Notifications,
                 interval: float = 1.0) -> None:
        super().__init__("tailer", clock, interval, self._tick, now=True)
        self.store = store
        self.notifications = notifications
        self.listening = False
        self._connecting = False
        self.notifications_total = 0
        self.reconnects_total = 0
        self._failing: Optional[str] = None
        # (newest id, server time) of notifications whose receipts are not announced yet.
        self._waiting: deque[tuple[int, float]] = deque(maxlen=10_000)
        self._latency_observers: list[Callable[[float], None]] = []
        store.on_commit(self._announced)

    def on_announce_latency(self, observer: Callable[[float], None]) -> None:
        """Call observer with the seconds from a commit's NOTIFY to its announcement here."""
        self._latency_observers.append(observer)

    def stopService(self) -> Deferred[None]:
        self.notifications.close()
        self.listening = False
        return super().stopService()

    # -- listening ----------------------------------------------------------------------------

    def _listen(self) -> None:
        self._connecting = True
        d = self.notifications.listen(self._notified, self._lost)
        d.addCallbacks(self._listening, self._not_listening)

    def _listening(self, _: object) -> None:
        self._connecting = False
        if not self.running:
            self.notifications.close()
            return
        self.listening = True
        if self._failing is not None:
            self.log.info("tailer listening again")
            self.reconnects_total += 1
        self._failing = None
        self._catch_up()

    def _not_listening(self, failure: Failure) -> None:
        self._connecting = False
        self._report(f"cannot listen: {failure.getErrorMessage()}")

    def _lost(self, reason: str) -> None:
        self.listening = False
        self._report(f"listening stopped: {reason}")
        if self.running and not self._connecting:
            self._listen()

    def _report(self, problem: str) -> None:
        # One line per change of state, not one per second while the database is away.
        if self._failing != problem:
            self.log.warn("tailer: {problem}; catching up every {interval} s meanwhile",
                          problem=problem, interval=self.interval)
        self._failing = problem

    # -- catching up --------------------------------------------------------------------------

    def _tick(self) -> Deferred[None]:
        if not self.listening and not self._connecting:
            self._listen()
        return self._catch_up()

    def _notified(self, newest: int, sent_at: float) -> None:
        self.notifications_total += 1
        if newest > self.store.last_announced:
            self._waiting.append((newest, sent_at))
            self._catch_up()

    def _catch_up(self) -> Deferred[None]:
        return self.store.catch_up().addErrback(self._catch_up_failed)

    def _announced(self, receipts: list[Receipt]) -> None:
        """Commit listener: the notified commits these receipts complete have been announced."""
        now = self.clock.seconds()
        while self._waiting and self._waiting[0][0] <= receipts[-1].id:
            _, sent_at = self._waiting.popleft()
            for observe in self._latency_observers:
                observe(max(0.0, now - sent_at))

    def _catch_up_failed(self, failure: Failure) -> None:
        self._report(f"cannot read new receipts: {failure.getErrorMessage()}")


@implementer(IReadDescriptor)
class PostgresNotifications:
    """
    ``Notifications`` from PostgreSQL's LISTEN: the connection is opened (and LISTEN sent) on
    a store reader thread, then its socket is read by the reactor, which only takes what has
    arrived (libpq's non-blocking ``consume_input``) and never waits for the server.
    """

    def __init__(self, reactor: IReactorFDSet, store: ReceiptStore, engine: Any) -> None:
        self._reactor = reactor
        self._store = store
        self._engine = engine
        self._conn: Any = None
        self._fd = -1
        self._on_notify: Optional[OnNotify] = None
        self._on_lost: Optional[OnLost] = None

    def listen(self, on_notify: OnNotify, on_lost: OnLost) -> Deferred[None]:
        self._on_notify, self._on_lost = on_notify, on_lost
        return self._store.read(self._engine.open_listener).addCallback(self._opened)

    def _opened(self, conn: Any) -> None:
        self.close()
        self._conn = conn
        # The reactor watches a duplicate of the socket: libpq closes its own descriptor
        # when the connection breaks, and the reactor must still be able to forget ours.
        self._fd = os.dup(conn.pgconn.socket)
        self._reactor.addReader(self)
        self.doRead()  # anything that arrived before the reactor watched the socket

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._reactor.removeReader(self)
        os.close(self._fd)
        self._fd = -1
        try:
            conn.close()
        except Exception:  # a broken connection may fail to close; it is dropped anyway
            pass

    # IReadDescriptor

    def fileno(self) -> int:
        return self._fd

    def doRead(self) -> None:
        if self._conn is None:
            return
        pgconn = self._conn.pgconn
        try:
            pgconn.consume_input()
        except Exception as e:  # psycopg.OperationalError: the server or the network went away
            self._gone(" ".join(str(e).split()) or type(e).__name__)
            return
        while (notification := pgconn.notifies()) is not None:
            newest, _, sent_at = notification.extra.decode().partition(" ")
            if self._on_notify is not None:
                self._on_notify(int(newest), float(sent_at or 0))

    def connectionLost(self, reason: Failure) -> None:
        self._gone(reason.getErrorMessage())

    def _gone(self, why: str) -> None:
        if self._conn is None:
            return
        self.close()
        if self._on_lost is not None:
            self._on_lost(why)

    def logPrefix(self) -> str:
        return "postgres-listen"

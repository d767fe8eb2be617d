"""
The receipt store: owns the SQLite database and the fixed threads that use it.

One writer thread commits receipts in groups (group commit): receipts that arrive while a
commit is running, or within ``commit_delay`` of the first one, share the next transaction.
A fixed pool of reader threads answers queries; WAL lets them read while the writer writes.
Nothing touches SQLite on the reactor thread.  The threads are the store's ``ThreadRunner``
(``threads.py``), given to it: the daemon's fixed pools, or an inline runner in tests.

A receipt is announced to listeners (the memory cache, the stream hub, ...) only after its
transaction has committed.  A failed commit loses nothing: the batch goes back to the head
of the queue and is retried.
"""

from __future__ import annotations

import os
from collections import deque
from typing import Callable, Optional, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.store import receipts as sql
from printerd.store.receipts import NewReceipt, Receipt, ReceiptQuery, StoreSummary
from printerd.store.threads import ThreadRunner

T = TypeVar("T")

MAX_BATCH = 500

CommitListener = Callable[[list[Receipt]], None]


class ReceiptStore(Service):
    """Stores receipts durably and answers queries about them; see the module docstring."""

    log = Logger()
    name = "store"

    def __init__(self, reactor: IReactorTime, path: str, summary: StoreSummary,
                 runner: ThreadRunner, commit_delay: float = 0.002, recent_size: int = 500,
                 retry_delay: float = 1.0,
                 outbox: Callable[[str], list[str]] = lambda printer: []) -> None:
        """
        ``summary`` is what ``schema.prepare_database`` read at start-up; ``runner`` runs the
        thread functions (``threads.DatabaseThreads`` in the daemon).
        """
        self._reactor = reactor
        self.path = path
        self.commit_delay = commit_delay
        self._retry_delay = retry_delay
        self._outbox = outbox
        self._runner = runner
        self._pending: list[tuple[NewReceipt, Deferred[Receipt]]] = []
        self._flush_call: Optional[IDelayedCall] = None
        self._writing: Optional[Deferred[None]] = None
        self._listeners: list[CommitListener] = []
        self._latency_observers: list[Callable[[float], None]] = []
        self._health_listeners: list[Callable[[], None]] = []
        self.committed_total = 0
        self.receipts_total = summary.receipts
        self._last_job = summary.last_job
        # The memory cache behind /api/recent: the newest receipts, oldest first.
        self.newest: deque[Receipt] = deque(summary.newest, maxlen=recent_size)
        self.write_error: Optional[str] = None
        self._stopping = False

    # -- lifecycle ---------------------------------------------------------------------------

    def startService(self) -> None:
        """Start the pool threads."""
        super().startService()
        self._stopping = False
        self._runner.start()

    async def _stop(self) -> None:
        self._stopping = True
        while self._writing is not None or self._pending:
            if self._writing is not None:
                await self._writing
            elif self._pending:
                await self._flush()
                if self.write_error:
                    self.log.critical(
                        "stopping with {n} receipts not written: {error}",
                        n=len(self._pending), error=self.write_error)
                    break
        self._runner.stop()

    def stopService(self) -> Deferred[None]:
        """Commit every receipt received, then stop the threads and close the database."""
        super().stopService()
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        return Deferred.fromCoroutine(self._stop())

    # -- writing -----------------------------------------------------------------------------

    def next_job_id(self) -> int:
        """A new job (connection) id, unique across restarts."""
        self._last_job += 1
        return self._last_job

    def on_commit(self, listener: CommitListener) -> None:
        """Call listener with each group of receipts once it has committed."""
        self._listeners.append(listener)

    def on_write_health(self, listener: Callable[[], None]) -> None:
        """Call listener whenever writing starts failing or recovers (see write_error)."""
        self._health_listeners.append(listener)

    def _write_health_changed(self) -> None:
        for listener in self._health_listeners:
            try:
                listener()
            except Exception:
                self.log.failure("write health listener failed")

    def on_commit_latency(self, observer: Callable[[float], None]) -> None:
        """Call observer with each commit's duration in seconds (metrics)."""
        self._latency_observers.append(observer)

    def add_receipt(self, draft: NewReceipt) -> Deferred[Receipt]:
        """Queue a receipt for the next group commit; fires with it once committed."""
        d: Deferred[Receipt] = Deferred()
        self._pending.append((draft, d))
        if self._writing is None and self._flush_call is None and not self._stopping:
            self._flush_call = self._reactor.callLater(self.commit_delay, self._flush)
        return d

    def _flush(self) -> Deferred[None]:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if not self._pending:
            return succeed(None)
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        started = self._reactor.seconds()
        written = self._runner.run_write(sql.insert_receipts, [draft for draft, _ in batch],
                                         self._outbox)
        # Set before the callbacks: an inline runner has fired already, and _committed may
        # start the next batch's write.
        writing: Deferred[None] = Deferred()
        self._writing = writing
        written.addCallbacks(self._committed, self._failed, callbackArgs=(batch, started),
                             errbackArgs=(batch,)).addBoth(writing.callback)
        return writing

    def _committed(self, stored: list[Receipt], batch: list, started: float) -> None:
        self._writing = None
        for observe in self._latency_observers:
            observe(self._reactor.seconds() - started)
        if self.write_error:
            self.log.info("database writable again; {n} receipts committed", n=len(stored))
            self.write_error = None
            self._write_health_changed()
        self.receipts_total += len(stored)
        self.committed_total += len(stored)
        self._announce(stored)
        for (_, d), receipt in zip(batch, stored, strict=True):
            d.callback(receipt)
        if self._pending and not self._stopping:
            self._flush()

    def _failed(self, failure: Failure, batch: list) -> None:
        self._writing = None
        was_failing = self.write_error is not None
        self.write_error = f"{failure.value.__class__.__name__}: {failure.getErrorMessage()}"
        if not was_failing:
            self._write_health_changed()
        self.log.error("commit of {n} receipts failed, will retry: {error}",
                       n=len(batch), error=self.write_error)
        # Nothing is lost: the batch goes back to the head of the queue.
        self._pending[:0] = batch
        if not self._stopping:
            self._flush_call = self._reactor.callLater(self._retry_delay, self._flush)

    def _announce(self, stored: list[Receipt]) -> None:
        self.newest.extend(stored)
        for listener in self._listeners:
            try:
                listener(stored)
            except Exception:
                self.log.failure("commit listener {listener!r} failed", listener=listener)

    def forget(self, deleted: int, cutoff: str) -> None:
        """Retention deleted ``deleted`` receipts received before ``cutoff``."""
        self.receipts_total -= deleted
        while self.newest and self.newest[0].received_at < cutoff:
            self.newest.popleft()

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def write(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        """Run ``fn(connection, *args)`` on the writer thread (other modules' writes)."""
        return self._runner.run_write(fn, *args)

    # -- reading -----------------------------------------------------------------------------

    def read(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        """Run ``fn(connection, *args)`` on a reader thread."""
        return self._runner.run_read(fn, *args)

    def get_receipt(self, receipt_id: int) -> Deferred[Optional[Receipt]]:
        return self.read(sql.get_receipt, receipt_id)

    def get_raw(self, receipt_id: int) -> Deferred[Optional[bytes]]:
        return self.read(sql.get_raw, receipt_id)

    def find_receipts(self, query: ReceiptQuery) -> Deferred[list[Receipt]]:
        return self.read(sql.find_receipts, query)

    def receipts_after(self, after: int, limit: int,
                       printer: Optional[str] = None) -> Deferred[list[Receipt]]:
        return self.read(sql.receipts_after, after, limit, printer)

    def database_bytes(self) -> int:
        """Size of the database file and its WAL on disk."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(self.path + suffix).st_size
            except OSError:
                pass
        return total

"""
The receipt store: the one way into the database for the rest of printerd.

Writing.  Receipts are committed in groups (group commit) by one writer thread: receipts that
arrive while a commit is running, or within ``commit_delay`` of the first one, share the next
transaction.  A receipt is announced to listeners (the memory cache, the stream hub, the
forwarder) only after its transaction has committed.  A failed commit loses nothing: the batch
goes back to the head of the queue and is retried.

Reading.  A fixed pool of reader threads answers queries (SQLite's WAL lets them read while the
writer writes).  Nothing touches the database on the reactor thread.

The seam.  Everything above the store (raw port, API, stream, forwarder, retention, renderers)
calls the methods of ``ReceiptStore`` and knows neither SQL nor which engine runs.  Below it:

- an ``engine.Engine`` holds all SQL: ``prepare`` at start-up (migrations, a write check, the
  ``StoreSummary``), ``connect``/``is_disconnect`` for the threads, ``size_on_disk`` on the
  reactor thread, and thread functions ``fn(connection, *args) -> plain data`` for inserting,
  reading, the outbox and retention.  ``engine.open_engine(database)`` picks it from the
  ``database`` setting; ``SQLiteEngine`` is the one engine today.  The outbox's statements are
  shared (``outbox.SharedOutbox``): an engine gives its parameter marker and transaction.
- a ``threads.ThreadRunner`` runs those functions: ``DatabaseThreads`` in the daemon (1 writer
  + ``db_readers`` readers, fixed, one connection per thread, reconnecting after a connection
  the engine calls lost), ``InlineRunner`` in tests.

What a second engine (PostgreSQL) must keep true: the writer's ``insert_receipts`` commits ids
in id order (several instances: serialise the commits, e.g. an advisory transaction lock), as
stream replay reads ``id > last``; ``prepare`` runs the migrations under a lock so instances
starting together do not race, and reads its summary without counting every row; connections
are in autocommit mode and every write opens its own transaction (``transaction``); the outbox's
``CLAIM`` statement never hands one delivery to two live claims (``FOR UPDATE SKIP LOCKED``);
``find_receipts`` folds case as ``folding`` does and gives up after its budget with
``ReceiptPage.resume_before``.  Today the writer passes its own commits to ``announce``; with
several instances on one database, a tailer would feed ``announce`` every instance's commits in
id order instead, and the writer would only fire each receipt's own Deferred.  Job ids
(``next_job_id``) come from the summary's last job and are this process's own.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Optional, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.store.engine import Engine
from printerd.store.outbox import Claim
from printerd.store.receipts import (
    NewReceipt, Receipt, ReceiptPage, ReceiptQuery, StoreSummary,
)
from printerd.store.threads import ThreadRunner

T = TypeVar("T")

MAX_BATCH = 500
# A search (q=, or a time window when received_at went back in time) spends at most this long
# on a reader thread before it answers with what it found and where it stopped.
SEARCH_BUDGET = 0.03

CommitListener = Callable[[list[Receipt]], None]


class ReceiptStore(Service):
    """Stores receipts durably and answers queries about them; see the module docstring."""

    log = Logger()
    name = "store"

    def __init__(self, reactor: IReactorTime, engine: Engine, summary: StoreSummary,
                 runner: ThreadRunner, commit_delay: float = 0.002, recent_size: int = 500,
                 retry_delay: float = 1.0,
                 outbox: Callable[[str], list[str]] = lambda printer: []) -> None:
        """
        ``summary`` is what ``engine.prepare`` read at start-up; ``runner`` runs the engine's
        thread functions (``threads.DatabaseThreads`` in the daemon).  ``outbox(printer)``
        names the webhook targets that want that printer's receipts (called on the writer).
        """
        self._reactor = reactor
        self._engine = engine
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
        self.database_id = summary.database_id  # which database: the stream tells its clients
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
        written = self._runner.run_write(self._engine.insert_receipts,
                                         [draft for draft, _ in batch], self._outbox)
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
        self.announce(stored)
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

    def announce(self, stored: list[Receipt]) -> None:
        """Give committed receipts, in id order, to the memory cache and the listeners."""
        self.newest.extend(stored)
        for listener in self._listeners:
            try:
                listener(stored)
            except Exception:
                self.log.failure("commit listener {listener!r} failed", listener=listener)

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    # -- the webhook outbox (the forwarder) ----------------------------------------------------

    def claim_deliveries(self, now: float, room: dict[str, int], claimant: str,
                         lease_until: float) -> Deferred[Claim]:
        """
        Claim up to ``room[target]`` due deliveries per target for ``claimant`` until
        ``lease_until`` (a write: never from a stale read); see ``outbox``.
        """
        return self._runner.run_write(self._engine.claim_deliveries, now, room, claimant,
                                      lease_until)

    def record_delivery(self, delivery_id: int, claimant: str, now: float, state: str,
                        next_attempt_at: Optional[float], error: Optional[str],
                        count_attempt: bool = True) -> Deferred[bool]:
        """Record an attempt's outcome if ``claimant`` still holds the claim (else False)."""
        return self._runner.run_write(self._engine.record_delivery, delivery_id, claimant, now,
                                      state, next_attempt_at, error, count_attempt)

    def release_claims(self, delivery_ids: list[int], claimant: str) -> Deferred[int]:
        """Give back claims that were not acted on."""
        return self._runner.run_write(self._engine.release_claims, delivery_ids, claimant)

    def delivery_counts(self) -> Deferred[dict[str, dict[str, int]]]:
        """Deliveries per target and state (``outbox.PENDING``, ``DELIVERED``, ``DEAD``)."""
        return self._runner.run_read(self._engine.delivery_counts)

    def dead_letters(self, limit: int) -> Deferred[list[dict[str, Any]]]:
        """The newest dead deliveries, as JSON-ready dicts."""
        return self._runner.run_read(self._engine.dead_letters, limit)

    def retry_dead(self, now: float, delivery_id: Optional[int] = None) -> Deferred[int]:
        """Make dead deliveries (one, or all) pending and due at once; how many changed."""
        return self._runner.run_write(self._engine.retry_dead, now, delivery_id)

    # -- OCR ----------------------------------------------------------------------------------

    def set_ocr_text(self, receipt_id: int, text: str) -> Deferred[Optional[Receipt]]:
        """
        Store the text OCR read from a receipt's images; fires with the updated receipt (None
        if it is gone), which also replaces the old one in the memory cache of the newest.
        """
        def refresh_cache(receipt: Optional[Receipt]) -> Optional[Receipt]:
            if receipt is not None:
                for index, cached in enumerate(self.newest):
                    if cached.id == receipt.id:
                        self.newest[index] = receipt
                        break
            return receipt

        return self._runner.run_write(self._engine.set_ocr_text, receipt_id,
                                      text).addCallback(refresh_cache)

    # -- retention ----------------------------------------------------------------------------

    def purge_batch(self, cutoff: str, batch: int) -> Deferred[tuple[int, int]]:
        """
        Delete up to ``batch`` delivered outbox rows and up to ``batch`` receipts received
        before ``cutoff`` that no delivery waits for, in one short transaction; returns
        (receipts deleted, delivery rows deleted) and forgets the deleted receipts.
        """
        def forget(deleted: tuple[int, int]) -> tuple[int, int]:
            self.receipts_total -= deleted[0]
            while self.newest and self.newest[0].received_at < cutoff:
                self.newest.popleft()
            return deleted

        return self._runner.run_write(self._engine.purge_batch, cutoff, batch).addCallback(forget)

    def reclaim_space(self) -> Deferred[None]:
        """Give space freed by purging back, a bounded step at a time."""
        return self._runner.run_write(self._engine.reclaim_space)

    # -- reading -----------------------------------------------------------------------------

    def get_receipt(self, receipt_id: int) -> Deferred[Optional[Receipt]]:
        return self._runner.run_read(self._engine.get_receipt, receipt_id)

    def get_raw(self, receipt_id: int) -> Deferred[Optional[bytes]]:
        return self._runner.run_read(self._engine.get_raw, receipt_id)

    def find_receipts(self, query: ReceiptQuery) -> Deferred[ReceiptPage]:
        """
        Receipts matching ``query``, newest first, at most ``query.limit``.  A search that
        could read every receipt stops after ``SEARCH_BUDGET`` seconds: the page then says
        where to go on (``ReceiptPage.resume_before``).
        """
        return self._runner.run_read(self._engine.find_receipts, query, self._reactor.seconds,
                                     SEARCH_BUDGET)

    def receipts_after(self, after: int, limit: int,
                       printer: Optional[str] = None) -> Deferred[list[Receipt]]:
        """Receipts with id > after, oldest first (stream replay)."""
        return self._runner.run_read(self._engine.receipts_after, after, limit, printer)

    def with_raw(self, receipt_id: int,
                 use: Callable[[str, bytes], T]) -> Deferred[Optional[T]]:
        """
        ``use(printer, raw)`` run on a reader thread with the receipt's printer and raw bytes
        (renderers: the bytes are read and rendered off the reactor); None if there is no
        such receipt.
        """
        get_printer_and_raw = self._engine.get_printer_and_raw

        def read_and_use(conn: Any) -> Optional[T]:
            found = get_printer_and_raw(conn, receipt_id)
            return None if found is None else use(*found)

        return self._runner.run_read(read_and_use)

    def database_bytes(self) -> int:
        """Bytes the database takes on disk (cheap: safe to call on the reactor thread)."""
        return self._engine.size_on_disk()

    @property
    def engine_name(self) -> str:
        """Which engine stores the receipts ("sqlite")."""
        return self._engine.name

    # -- engine-specific thread functions (the store's own tests) -----------------------------

    def write(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        """Run ``fn(connection, *args)`` on the writer thread.  Above the store, use the
        methods: they work whichever engine runs."""
        return self._runner.run_write(fn, *args)

    def read(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        """Run ``fn(connection, *args)`` on a reader thread (as ``write``)."""
        return self._runner.run_read(fn, *args)

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

Announcing.  ``announce`` gives committed receipts to the listeners in id order, each once: it
passes on only ids above the last one announced.  With SQLite (one process) the writer announces
its own commits.  With a shared engine (PostgreSQL, several instances) the writer announces
nothing itself but calls ``catch_up``, as every instance's tailer (``tailer.Tailer``) does when
a commit's NOTIFY arrives and now and then: it reads ``id > last announced`` in id order and
announces that, so each instance announces every instance's receipts in the same order; the
writer still fires each receipt's own Deferred on its commit.  The PostgreSQL engine commits
ids in id order (``postgres.COMMIT_LOCK``), so such a read never skips one.

What a second engine (PostgreSQL) must keep true: the writer's ``insert_receipts`` commits ids
in id order (several instances: serialise the commits, e.g. an advisory transaction lock), as
stream replay reads ``id > last``; ``prepare`` runs the migrations under a lock so instances
starting together do not race, and reads its summary without counting every row; connections
are in autocommit mode and every write opens its own transaction (``transaction``); the outbox's
``CLAIM`` statement never hands one delivery to two live claims (``FOR UPDATE SKIP LOCKED``);
``find_receipts`` folds case as ``folding`` does and gives up after its budget with
``ReceiptPage.resume_before``.  Job ids
(``next_job_id``) come from the summary's last job and are this process's own.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import replace
from typing import Any, Callable, Optional, TypeVar

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.store.engine import Engine
from printerd.store.outbox import Claim
from printerd.store.receipts import (
    NewReceipt, RawReceipt, Receipt, ReceiptPage, ReceiptQuery, StoreSummary, with_site,
)
from printerd.store.threads import ThreadRunner

T = TypeVar("T")

MAX_BATCH = 500
CATCH_UP_PAGE = 500  # receipts per catch-up read
# A search (q=, or a time window when received_at went back in time) spends at most this long
# on a reader thread before it answers with what it found and where it stopped.
SEARCH_BUDGET = 0.03
# Receipts kept by id so that pages read again reuse their encoded JSON (about 2 KB each for
# a 1.5 KB receipt: 4 MB at most).
KNOWN_RECEIPTS = 2_000

CommitListener = Callable[[list[Receipt]], None]


class KnownReceipts:
    """
    The receipts read or announced lately, by id, up to ``size``: a read hands out the object
    already in memory instead of a new one from its row, so that a receipt's JSON
    (``Receipt.json_bytes``) is encoded once, not on every page that lists it.  Of a stored
    receipt only its OCR text can change, so a kept one stands for a row only while their OCR
    text is the same (the row wins otherwise: another instance may have read it).
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._by_id: OrderedDict[int, Receipt] = OrderedDict()

    def remember(self, receipts: list[Receipt]) -> None:
        for receipt in receipts:
            self._by_id[receipt.id] = receipt
            self._by_id.move_to_end(receipt.id)
        while len(self._by_id) > self._size:
            self._by_id.popitem(last=False)

    def reuse(self, page: ReceiptPage) -> ReceiptPage:
        """``page`` with each receipt replaced by the known one it equals; the rest kept."""
        for index, receipt in enumerate(page):
            known = self._by_id.get(receipt.id)
            if known is not None and known.ocr_text == receipt.ocr_text:
                page[index] = known
        self.remember(page)
        return page


class ReceiptStore(Service):
    """Stores receipts durably and answers queries about them; see the module docstring."""

    log = Logger()
    name = "store"

    def __init__(self, reactor: IReactorTime, engine: Engine, summary: StoreSummary,
                 runner: ThreadRunner, commit_delay: float = 0.002, recent_size: int = 500,
                 retry_delay: float = 1.0,
                 outbox: Callable[[str], list[str]] = lambda printer: [], site: str = "") -> None:
        """
        ``summary`` is what ``engine.prepare`` read at start-up; ``runner`` runs the engine's
        thread functions (``threads.DatabaseThreads`` in the daemon).  ``outbox(printer)``
        names the webhook targets that want that printer's receipts (called on the writer).
        ``site``: put into each receipt's details, unless it names a site already (one
        forwarded from another printerd).
        """
        self.site = site
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
        # The highest id given to the listeners: announce passes on only ids above it.
        self.last_announced = summary.newest[-1].id if summary.newest else 0
        self._catch_up_again = False
        # Callers of the catch-up read under way (none: no read runs).
        self._catch_up_waiters: list[Deferred[None]] = []
        self.catch_up_reads_total = 0  # reads of the receipts after the last announced
        # Shared engine: receipts announced here that other instances committed.  Ids this
        # instance committed and has not announced yet; ids announced while a commit of its
        # own was under way (a catch-up read can see that commit before its answer arrives):
        # whose they are is known when it does.
        self.announced_from_others_total = 0
        self._own_unannounced: set[int] = set()
        self._announced_while_committing: list[int] = []
        self._last_job = summary.last_job
        # The memory cache behind /api/recent: the newest receipts, oldest first.
        self.newest: deque[Receipt] = deque(summary.newest, maxlen=recent_size)
        self._known = KnownReceipts(KNOWN_RECEIPTS)
        self._known.remember(summary.newest)
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
        if self.site:
            draft = replace(draft, details=with_site(draft.details, self.site))
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
        self.committed_total += len(stored)
        if self._engine.shared:
            self._own_committed(stored)
            # Read on at once rather than wait for our own NOTIFY to come back; whatever
            # other instances committed before is announced first.
            self.catch_up().addErrback(self._catch_up_failed)
        else:
            self.announce(stored)
        for (_, d), receipt in zip(batch, stored, strict=True):
            d.callback(receipt)
        if self._pending and not self._stopping:
            self._flush()

    def _failed(self, failure: Failure, batch: list) -> None:
        self._writing = None
        if self._engine.shared:
            self._own_committed([])
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
        """
        Give committed receipts, in id order, to the memory cache and the listeners; those
        at or below the last id announced were announced already and are left out.
        """
        fresh = [r for r in stored if r.id > self.last_announced]
        if not fresh:
            return
        self.last_announced = fresh[-1].id
        if self._engine.shared:
            self._attribute(fresh)
        self.receipts_total += len(fresh)
        self.newest.extend(fresh)
        self._known.remember(fresh)
        for listener in self._listeners:
            try:
                listener(fresh)
            except Exception:
                self.log.failure("commit listener {listener!r} failed", listener=listener)

    def _attribute(self, announced: list[Receipt]) -> None:
        """Count the announced receipts that other instances committed (shared engine)."""
        for receipt in announced:
            if receipt.id in self._own_unannounced:
                self._own_unannounced.discard(receipt.id)
            elif self._writing is not None:
                self._announced_while_committing.append(receipt.id)
            else:
                self.announced_from_others_total += 1

    def _own_committed(self, stored: list[Receipt]) -> None:
        """
        A commit of this instance ended (``stored``: its receipts; none if it failed): the
        receipts announced meanwhile are now known to be its own or others'.
        """
        own = {receipt.id for receipt in stored}
        self.announced_from_others_total += sum(
            1 for receipt_id in self._announced_while_committing if receipt_id not in own)
        self._announced_while_committing = []
        self._own_unannounced.update(i for i in own if i > self.last_announced)

    def catch_up(self) -> Deferred[None]:
        """
        Read the receipts committed after the last one announced (by any instance) in id
        order, and announce them (the tailer).  Calls while a read runs share it and make it
        read once more, so a commit that lands meanwhile is not left for the next call.
        Fires once done; fails if the database cannot be read.
        """
        d: Deferred[None] = Deferred()
        reading = bool(self._catch_up_waiters)
        self._catch_up_waiters.append(d)
        if reading:
            self._catch_up_again = True
        else:
            Deferred.fromCoroutine(self._catch_up())
        return d

    def _catch_up_failed(self, failure: Failure) -> None:
        self.log.warn("cannot read the receipts just committed (the tailer reads them on its "
                      "next round): {error}", error=failure.getErrorMessage())

    async def _catch_up(self) -> None:
        failure: Optional[Failure] = None
        try:
            while True:
                self._catch_up_again = False
                self.catch_up_reads_total += 1
                page = await self._runner.run_read(self._engine.receipts_after,
                                                   self.last_announced, CATCH_UP_PAGE, None)
                self.announce(page)
                if len(page) < CATCH_UP_PAGE and not self._catch_up_again:
                    break
        except Exception:
            failure = Failure()
        waiters, self._catch_up_waiters = self._catch_up_waiters, []
        for waiter in waiters:
            if failure is None:
                waiter.callback(None)
            else:
                waiter.errback(failure)

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
                self._known.remember([receipt])
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
        def forget(deleted: tuple[list[int], int]) -> tuple[int, int]:
            receipt_ids, deliveries = deleted
            self.receipts_total -= len(receipt_ids)
            # By id: a receipt kept for its pending delivery stays, and received_at need not
            # grow with the id (the clock may have stepped back between two receipts).
            gone = set(receipt_ids)
            if gone and self.newest and self.newest[0].id <= max(gone):
                kept = [receipt for receipt in self.newest if receipt.id not in gone]
                self.newest.clear()
                self.newest.extend(kept)
            return len(receipt_ids), deliveries

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
        where to go on (``ReceiptPage.resume_before``).  A page of the newest receipts (by
        printer, before or after an id) comes from the memory cache when it holds the whole
        page, as ``/api/recent`` does.
        """
        in_memory = self._page_in_memory(query)
        if in_memory is not None:
            return succeed(in_memory)
        return self._runner.run_read(self._engine.find_receipts, query, self._reactor.seconds,
                                     SEARCH_BUDGET).addCallback(self._known.reuse)

    def _page_in_memory(self, query: ReceiptQuery) -> Optional[ReceiptPage]:
        """
        The page from the cache of the newest receipts, or None when the database must answer.
        The cache holds every receipt from its oldest id on (announced in id order), so a page
        it fills, or one whose ``after`` it reaches below, is what the database would give.  Not
        with a shared engine: another instance's OCR text would not be in this one's cache.
        """
        if query.text or query.since or query.until or self._engine.shared or not self.newest:
            return None
        found = ReceiptPage()
        for receipt in reversed(self.newest):
            if query.before is not None and receipt.id >= query.before:
                continue
            if query.after is not None and receipt.id <= query.after:
                return found  # everything above ``after`` was in the cache
            if query.printer is None or receipt.printer == query.printer:
                found.append(receipt)
                if len(found) == query.limit:
                    return found
        return None

    def receipts_after(self, after: int, limit: int,
                       printer: Optional[str] = None) -> Deferred[list[Receipt]]:
        """Receipts with id > after, oldest first (stream replay)."""
        return self._runner.run_read(self._engine.receipts_after, after, limit, printer)

    def with_raw(self, receipt_id: int,
                 use: Callable[[RawReceipt], T]) -> Deferred[Optional[T]]:
        """
        ``use(raw_receipt)`` run on a reader thread with the receipt's raw bytes, printer and
        details (renderers: the bytes are read and rendered off the reactor, in one read);
        None if there is no such receipt.
        """
        get_raw_receipt = self._engine.get_raw_receipt

        def read_and_use(conn: Any) -> Optional[T]:
            found = get_raw_receipt(conn, receipt_id)
            return None if found is None else use(found)

        return self._runner.run_read(read_and_use)

    def database_bytes(self) -> int:
        """
        Bytes the database takes on disk, as last measured (cheap: safe to call on the
        reactor thread; ``measure_database`` measures again).
        """
        return self._engine.size_on_disk()

    def measure_database(self) -> Deferred[int]:
        """Measure the database's size on a reader thread (PostgreSQL asks the server)."""
        return self._runner.run_read(self._engine.measure_size)

    def ping(self) -> Deferred[None]:
        """A round trip to the database from a reader thread (health)."""
        return self._runner.run_read(self._engine.ping)

    @property
    def engine_name(self) -> str:
        """Which engine stores the receipts ("sqlite" or "postgresql")."""
        return self._engine.name

    @property
    def shared(self) -> bool:
        """Whether other instances write the same database (a tailer announces commits)."""
        return self._engine.shared

    # -- engine-specific thread functions (the store's own tests) -----------------------------

    def write(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        """Run ``fn(connection, *args)`` on the writer thread.  Above the store, use the
        methods: they work whichever engine runs."""
        return self._runner.run_write(fn, *args)

    def read(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        """Run ``fn(connection, *args)`` on a reader thread (as ``write``)."""
        return self._runner.run_read(fn, *args)

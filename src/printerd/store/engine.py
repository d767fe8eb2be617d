"""
The store's backend seam: what a database engine provides, and how the store picks one.

Everything above the store (raw port, API, stream, forwarder, retention, renderers) calls
``ReceiptStore`` methods and never sees SQL or a connection.  The store calls an ``Engine``:

- at start-up, before the reactor runs: ``prepare`` (create or migrate the schema, prove the
  database writable, read the ``StoreSummary`` the store starts from);
- from its threads (``threads.ThreadRunner``): ``connect`` and ``is_disconnect`` for each
  thread's one connection, and the *thread functions*, each ``fn(connection, ...)`` returning
  plain data (dataclasses, tuples, ints; never a cursor).  Writer-thread functions run one at a
  time in call order; reader-thread functions run side by side and see only committed data;
- on the reactor thread: ``size_on_disk`` only, which must answer without blocking.

``SQLiteEngine`` (``store/sqlite.py``) is one process's file; ``PostgresEngine``
(``store/postgres.py``) is a database several instances share (``shared``: their commits are
announced by each instance's tailer, ``store/tailer.py``).  SQL that SQLite and PostgreSQL
both run is written once: the receipt reads and retention (``store/shared_sql.py``) and the
outbox (``store/outbox.py``); an engine supplies its parameter marker, its write transaction,
its claim statement and whether it may purge now.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Protocol

from printerd.store.outbox import Claim
from printerd.store.receipts import (
    NewReceipt, RawReceipt, Receipt, ReceiptPage, ReceiptQuery, StoreSummary,
)

Connection = Any  # the engine's own connection type: sqlite3.Connection, psycopg.Connection, ...


class SchemaTooNew(Exception):
    """The database was written by a newer printerd."""


class DatabaseUnavailable(Exception):
    """The database cannot be opened, reached or written at start-up (the message says why)."""


class Engine(Protocol):
    """A database engine for ``ReceiptStore``; see the module docstring for where each runs."""

    name: str  # "sqlite", "postgresql": reported by /api/stats and /metrics
    # Whether other printerd instances may commit to the same database: then each instance's
    # tailer announces every commit in id order, and the writer announces none itself.
    shared: bool

    def describe(self) -> str:
        """Where the database is, for the banner and messages (never a password)."""

    # -- start-up (main thread, before the reactor and the store's threads) -----------------

    def prepare(self, newest: int) -> StoreSummary:
        """
        Bring the schema up to date (raise ``SchemaTooNew`` for a newer one), prove the
        database writable (raise ``DatabaseUnavailable`` with a clear message if it is not),
        and return the count, last job id, ``newest`` newest receipts (oldest first) and the
        database's id (made at random when the database was created, kept for its life).
        """

    # -- connections (threads.Connector) ------------------------------------------------------

    def connect(self) -> Connection:
        """A new connection for one store thread, configured for printerd."""

    def is_disconnect(self, error: BaseException) -> bool:
        """Whether ``error`` means the connection is lost (the thread then opens a new one)."""

    # -- reactor thread -----------------------------------------------------------------------

    def size_on_disk(self) -> int:
        """Bytes the database takes on disk (as last measured); must not block."""

    # -- any thread ---------------------------------------------------------------------------

    def ping(self, conn: Connection) -> None:
        """A round trip to the database (health); raises if it does not answer."""

    def measure_size(self, conn: Connection) -> int:
        """Measure the bytes the database takes (what ``size_on_disk`` answers next)."""

    # -- writer thread ------------------------------------------------------------------------

    def insert_receipts(self, conn: Connection, drafts: list[NewReceipt],
                        targets_for: Callable[[str], list[str]]) -> list[Receipt]:
        """
        Insert drafts in one transaction, ids ascending in draft order, with a delivery row
        (due at once) for each webhook target ``targets_for(printer)`` names; return them as
        committed.  Ids must become visible in id order (a reader of ``id > last`` never
        skips one).
        """

    def claim_deliveries(self, conn: Connection, now: float, room: dict[str, int],
                         claimant: str, lease_until: float) -> Claim:
        """
        In one write transaction, claim up to ``room[target]`` pending deliveries per target
        that are due by ``now`` and under no live claim (none, or ``claimed_until <= now``),
        oldest due first, marking them ``claimed_by = claimant`` until ``lease_until``; return
        them, and how many deliveries were due (at most ``outbox.DUE_LIMIT``).  What it claims
        must be read under the transaction's lock, not from an earlier snapshot; several
        instances claiming at once must get different rows.
        """

    def record_delivery(self, conn: Connection, delivery_id: int, claimant: str, now: float,
                        state: str, next_attempt_at: Optional[float], error: Optional[str],
                        count_attempt: bool = True) -> bool:
        """
        Record an attempt's outcome and clear its claim, only if ``claimant`` still holds it;
        False (nothing written) if it does not.
        """

    def release_claims(self, conn: Connection, delivery_ids: list[int], claimant: str) -> int:
        """Clear ``claimant``'s claims on these deliveries (nothing was sent); how many."""

    def set_ocr_text(self, conn: Connection, receipt_id: int, text: str) -> Optional[Receipt]:
        """Store the text OCR read from a receipt's images; the updated receipt, or None."""

    def retry_dead(self, conn: Connection, now: float, delivery_id: Optional[int]) -> int:
        """Make dead deliveries (one, or all) pending and due at ``now``; how many changed."""

    def purge_batch(self, conn: Connection, cutoff: str, batch: int) -> tuple[list[int], int]:
        """
        One short retention transaction: up to ``batch`` delivered outbox rows, then up to
        ``batch`` receipts received before ``cutoff`` with no pending delivery (and their
        finished delivery rows).  Returns (the ids of the receipts deleted, delivery rows
        deleted).
        """

    def reclaim_space(self, conn: Connection) -> None:
        """Give freed space back after purging, in a bounded step (may do nothing)."""

    # -- reader threads -----------------------------------------------------------------------

    def get_receipt(self, conn: Connection, receipt_id: int) -> Optional[Receipt]:
        """One receipt without its raw bytes, or None."""

    def get_raw(self, conn: Connection, receipt_id: int) -> Optional[bytes]:
        """A receipt's raw bytes, or None."""

    def get_raw_receipt(self, conn: Connection, receipt_id: int) -> Optional[RawReceipt]:
        """What reading a receipt's raw bytes needs (printer, details, bytes), in one read."""

    def find_receipts(self, conn: Connection, query: ReceiptQuery, now: Callable[[], float],
                      budget: float) -> ReceiptPage:
        """
        Receipts matching ``query``, newest (highest id) first, at most ``query.limit``;
        ``text`` is a substring, case folded by Unicode's simple rules.  Work that could read
        every receipt stops after ``budget`` seconds of ``now()``, with the id it stopped at
        in ``ReceiptPage.resume_before`` (the caller goes on with ``before`` = that id).
        """

    def receipts_after(self, conn: Connection, after: int, limit: int,
                       printer: Optional[str]) -> list[Receipt]:
        """Receipts with id > after (of one printer, if given), oldest first (stream replay)."""

    def delivery_counts(self, conn: Connection) -> dict[str, dict[str, int]]:
        """Deliveries per target and state."""

    def dead_letters(self, conn: Connection, limit: int) -> list[dict[str, Any]]:
        """The newest dead deliveries: id, receipt_id, target, attempts, last_attempt_at,
        last_error."""


def is_postgres_url(database: str) -> bool:
    """Whether the ``database`` setting names a PostgreSQL server rather than a SQLite file."""
    return database.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """A PostgreSQL URL without its password, for messages and logs."""
    return re.sub(r"^(postgres(?:ql)?://[^:/@?]*):[^@/?]*@", r"\1:***@", url)


def check_url(url: str) -> None:
    """ValueError (with a message fit for an operator) unless libpq can parse ``url``."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        problem = " ".join(str(e).split())
        raise ValueError(f"{redact(url)} is not a valid PostgreSQL URL: {problem}") from None


def open_engine(database: str, synchronous: str = "FULL", instance: str = "") -> Engine:
    """
    The engine for the ``database`` setting: a PostgreSQL URL (``postgresql://...``, also
    ``?host=/socket/folder``) or else a SQLite file path.  A URL libpq cannot parse raises
    ``DatabaseUnavailable``.  ``instance`` names this printerd to the server.
    """
    if is_postgres_url(database):
        from printerd.store.postgres import PostgresEngine

        try:
            return PostgresEngine(database, instance)
        except ValueError as e:
            raise DatabaseUnavailable(str(e)) from None
    from printerd.store.sqlite import SQLiteEngine

    return SQLiteEngine(database, synchronous)

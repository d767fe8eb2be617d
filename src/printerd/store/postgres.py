"""
The PostgreSQL engine: several printerd instances on one database (``database =
"postgresql://..."``), its schema in ``postgres_schema``.

Every method that takes a connection is a thread function (see ``engine.py``): the store runs it
on its writer or reader threads, never on the reactor thread.  Connections are psycopg 3's, in
autocommit mode; every write opens its own transaction.

What several instances need, and how they get it:

- *Ids become visible in id order.*  Each group commit takes ``COMMIT_LOCK`` (a transaction
  advisory lock) before it inserts, so the commits of all instances are serialised: a batch
  gets its ids after the previous batch has committed (PostgreSQL makes a transaction visible
  before it releases its locks), and a reader of ``id > last`` can never see a later batch
  without the earlier ones.  Gaps (ids of a rolled-back batch) are harmless.
- *Every instance hears of every commit.*  Each group commit sends one NOTIFY on ``CHANNEL``
  carrying its newest id and the server's clock (commit-to-announce latency); the tailer
  (``tailer.Tailer``) of every instance then reads the new rows in id order.
- *Migrations do not race*: ``MIGRATE_LOCK`` is held while the schema is read and changed.
- *Retention runs on one instance at a time*: each purge transaction tries ``RETENTION_LOCK``
  and deletes nothing if another instance holds it.
"""

from __future__ import annotations

import socket
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator, Optional

import psycopg
from psycopg.conninfo import conninfo_to_dict
from twisted.logger import Logger

from printerd.store.engine import DatabaseUnavailable, SchemaTooNew, check_url, redact
from printerd.store.outbox import SharedOutbox
from printerd.store.receipts import (
    INSERTED_COLUMNS, RECEIPT_COLUMNS, NewReceipt, Receipt, ReceiptPage, ReceiptQuery, StoreSummary,
    receipt_from_row,
)
from printerd.store.shared_sql import SharedReceipts
from printerd.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION

# Advisory lock keys (one bigint space per database; "prnt" and a number, unlikely to clash).
MIGRATE_LOCK = 0x70726E74_0001
COMMIT_LOCK = 0x70726E74_0002
RETENTION_LOCK = 0x70726E74_0003

CHANNEL = "printerd_receipts"  # NOTIFY payload: "<newest id> <server epoch seconds>"

# Job numbers: each start of an instance takes the next block from the job_blocks sequence.
JOB_BLOCK = 1_000_000_000

# q= looks through this many ids at a time, newest first, between two looks at the clock.
SEARCH_RANGE = 50_000

CONNECT_TIMEOUT = 5  # seconds; a server that does not answer fails start-up, not hangs it

_SERVER_GOING_AWAY = {"57P01", "57P02", "57P03"}

_INSERT_RECEIPT = (
    f"INSERT INTO receipts ({INSERTED_COLUMNS})"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (origin) WHERE origin IS NOT NULL DO NOTHING RETURNING id")


@contextmanager
def transaction(conn: psycopg.Connection) -> Iterator[psycopg.Connection]:
    """One transaction on an autocommit connection: commits when the block ends."""
    with conn.transaction():
        yield conn


class PostgresEngine(SharedReceipts, SharedOutbox):
    """The store's ``engine.Engine`` on a PostgreSQL database shared by several instances."""

    name = "postgresql"
    shared = True  # other instances commit too: a tailer announces every commit
    PARAM = "%s"
    log = Logger()

    # Instances claiming at once take different rows: each skips the rows another has locked
    # (and, under READ COMMITTED, rechecks a row another has just claimed and committed).
    CLAIM = (
        "UPDATE deliveries SET claimed_by = %s, claimed_until = %s"
        " WHERE id IN (SELECT id FROM deliveries WHERE target = %s AND state = 'pending'"
        " AND next_attempt_at <= %s AND (claimed_until IS NULL OR claimed_until <= %s)"
        " ORDER BY next_attempt_at, id LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id"
    )

    def __init__(self, url: str, instance: str = "", search_range: int = SEARCH_RANGE) -> None:
        check_url(url)
        self.url = url
        self.search_range = search_range
        self.instance = instance or socket.gethostname()
        self._size = 0  # pg_database_size, as last measured on a reader thread

    def describe(self) -> str:
        """Where the database is, for the banner and messages (no password)."""
        return redact(self.url)

    # -- start-up -----------------------------------------------------------------------------

    def prepare(self, newest: int = 500) -> StoreSummary:
        """
        Bring the schema up to date under the migration lock, prove the database writable
        (not a read-only standby), and read what the store needs to start.  A server that does
        not answer, refuses the login or is read-only stops the daemon with a clear message.
        """
        try:
            conn = self.connect()
        except psycopg.Error as e:
            raise DatabaseUnavailable(f"cannot connect to {self.describe()}: "
                                      f"{_one_line(e)}") from None
        try:
            (read_only,) = conn.execute("SHOW transaction_read_only").fetchone()  # type: ignore
            if read_only == "on":
                raise DatabaseUnavailable(
                    f"{self.describe()} is read-only (a standby?): printerd needs the primary")
            migrate(conn, self.describe())
            if not folds_every_script(conn):
                self.log.warn(
                    "search (q=) is case-insensitive for ASCII only on {database}: the server "
                    "has no ICU and the database's LC_CTYPE is not a UTF-8 locale",
                    database=self.describe())
            self.measure_size(conn)
            return self.summarize(conn, newest)
        except psycopg.Error as e:
            raise DatabaseUnavailable(f"cannot use {self.describe()}: {_one_line(e)}") from None
        finally:
            conn.close()

    def last_job(self, conn: psycopg.Connection, stored: int) -> int:
        # This start's block of job numbers (JOB_BLOCK), past every stored job.
        (block,) = conn.execute("SELECT nextval('job_blocks')").fetchone()  # type: ignore
        return max(stored, block * JOB_BLOCK)

    # -- connections --------------------------------------------------------------------------

    def connect(self) -> psycopg.Connection:
        """A connection in autocommit mode, named after this instance in pg_stat_activity."""
        params = conninfo_to_dict(self.url)
        extra: dict[str, Any] = {"application_name": f"printerd {self.instance}"[:63]}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = CONNECT_TIMEOUT
        if "keepalives_idle" not in params:
            # A server that vanished without a word (a failover) is noticed in about 20 s.
            extra.update(keepalives=1, keepalives_idle=10, keepalives_interval=5,
                         keepalives_count=2)
        return psycopg.connect(self.url, autocommit=True, **extra)

    def is_disconnect(self, error: BaseException) -> bool:
        # InterfaceError: the connection is closed already.  An OperationalError without a
        # SQLSTATE is libpq's own (the server or the network went away); class 08 is a
        # connection exception; 57P01-03: the server is shutting down or starting.  Other
        # OperationalErrors (a full disk, a lock timeout) leave the connection usable.
        if isinstance(error, psycopg.InterfaceError):
            return True
        if not isinstance(error, psycopg.OperationalError):
            return False
        state = error.sqlstate
        return state is None or state.startswith("08") or state in _SERVER_GOING_AWAY

    def transaction(self, conn: psycopg.Connection) -> AbstractContextManager[Any]:
        return transaction(conn)

    def ping(self, conn: psycopg.Connection) -> None:
        """A round trip to the server (health)."""
        conn.execute("SELECT 1").fetchone()

    # -- reactor thread -----------------------------------------------------------------------

    def size_on_disk(self) -> int:
        """The database's size as last measured by ``measure_size`` (no I/O: reactor-safe)."""
        return self._size

    def measure_size(self, conn: psycopg.Connection) -> int:
        """pg_database_size of the database, remembered for ``size_on_disk``."""
        (size,) = conn.execute(  # type: ignore[misc]
            "SELECT pg_database_size(current_database())").fetchone()
        self._size = int(size)
        return self._size

    # -- writer thread ------------------------------------------------------------------------

    def insert_receipts(self, conn: psycopg.Connection, drafts: list[NewReceipt],
                        targets_for: Callable[[str], list[str]] = lambda printer: [],
                        ) -> list[Receipt]:
        """
        Insert drafts in one transaction under ``COMMIT_LOCK`` (ids commit in id order across
        instances), with a delivery row per webhook target, and one NOTIFY carrying the
        newest id; return them as committed, in order.  A draft whose ``origin`` is stored
        already (a forwarded receipt sent again) is not inserted: the receipt stored before is
        returned in its place.
        """
        digests = [draft.digest() for draft in drafts]
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
            with conn.cursor() as cursor:
                cursor.executemany(_INSERT_RECEIPT, [
                    draft.inserted_values(digest)
                    for draft, digest in zip(drafts, digests, strict=True)], returning=True)
                ids: list[Optional[int]] = []
                while True:
                    row = cursor.fetchone()  # none: its origin is stored already (a retry)
                    ids.append(row[0] if row else None)
                    if not cursor.nextset():
                        break
            deliveries = [(receipt_id, target) for receipt_id, draft in zip(ids, drafts, strict=True)
                          if receipt_id is not None for target in targets_for(draft.printer)]
            if deliveries:
                with conn.cursor() as cursor:
                    cursor.executemany("INSERT INTO deliveries (receipt_id, target,"
                                       " next_attempt_at) VALUES (%s, %s, 0)", deliveries)
            inserted = [receipt_id for receipt_id in ids if receipt_id is not None]
            if inserted:
                self.count_receipts(conn, len(inserted))
                conn.execute("SELECT pg_notify(%s, %s || ' ' || extract(epoch FROM"
                             " clock_timestamp()))", (CHANNEL, str(inserted[-1])))
            stored = []
            for receipt_id, draft, digest in zip(ids, drafts, digests, strict=True):
                if receipt_id is None:
                    stored.append(self.stored_before(conn, draft))
                else:
                    stored.append(draft.stored_as(receipt_id, digest))
        return stored

    def may_purge(self, conn: psycopg.Connection) -> bool:
        """Whether no other instance is purging (``RETENTION_LOCK``, held to the commit)."""
        (locked,) = conn.execute(  # type: ignore[misc]
            "SELECT pg_try_advisory_xact_lock(%s)", (RETENTION_LOCK,)).fetchone()
        return bool(locked)

    def count_receipts(self, conn: psycopg.Connection, change: int) -> None:
        """
        Add ``change`` to the number of receipts kept in ``receipt_stats`` (migration 4), in
        the transaction that inserted or deleted them: one update per transaction, not per
        receipt.
        """
        if change:
            conn.execute("UPDATE receipt_stats SET receipts = receipts + %s", (change,))

    def reclaim_space(self, conn: psycopg.Connection) -> None:
        """Nothing: autovacuum makes the space of deleted rows reusable."""

    # -- reader threads -----------------------------------------------------------------------

    def find_receipts(self, conn: psycopg.Connection, query: ReceiptQuery,
                      now: Callable[[], float] = lambda: 0.0,
                      budget: float = float("inf")) -> ReceiptPage:
        """
        Receipts matching query, newest first, at most query.limit.  A ``q`` is looked for in
        ranges of ``search_range`` ids, newest first, with a look at the clock between two: a
        text that is rare or nowhere would otherwise have the server read every receipt, so
        after ``budget`` seconds the page says where it stopped (``resume_before``).
        """
        where, args = [], []
        conditions = [
            ("received_at >= %s", query.since),
            ("received_at < %s", query.until),
            ("printer = %s", query.printer),
        ]
        for clause, value in conditions:
            if value is not None:
                where.append(clause)
                args.append(value)
        if query.text:
            # Each side has its trigram index (the planner ORs the two bitmaps).
            where.append("(printerd_fold(text) LIKE printerd_fold(%s)"
                         " OR printerd_fold(ocr_text) LIKE printerd_fold(%s))")
            args += [_like_pattern(query.text)] * 2
        low = query.after if query.after is not None else 0  # ids above this
        high = query.before  # ids below this (None: no bound)
        if not query.text:
            return ReceiptPage(self._newest(conn, where, args, low, high, query.limit))
        if high is None:
            (newest,) = conn.execute(  # type: ignore[misc]
                "SELECT coalesce(max(id), 0) FROM receipts").fetchone()
            high = newest + 1
        found: list[Receipt] = []
        started = now()
        while high > low + 1 and len(found) < query.limit:
            start = max(high - self.search_range, low + 1)
            found += self._newest(conn, where, args, start - 1, high, query.limit - len(found))
            high = start
            if len(found) < query.limit and high > low + 1 and now() - started >= budget:
                return ReceiptPage(found, resume_before=high)
        return ReceiptPage(found)

    @staticmethod
    def _newest(conn: psycopg.Connection, where: list[str], args: list[Any], above: int,
                below: Optional[int], limit: int) -> list[Receipt]:
        """At most ``limit`` receipts with above < id < below matching ``where``, newest first."""
        where = [*where, "id > %s"]
        args = [*args, above]
        if below is not None:
            where.append("id < %s")
            args.append(below)
        sql = (f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE {' AND '.join(where)}"
               " ORDER BY id DESC LIMIT %s")
        return [receipt_from_row(row) for row in conn.execute(sql, [*args, limit])]

    # -- the tailer's LISTEN connection ---------------------------------------------------------

    def open_listener(self, conn: Any) -> psycopg.Connection:
        """
        A new connection of its own that LISTENs on ``CHANNEL`` (opened on a store thread; the
        reactor then reads its socket: ``tailer.PostgresNotifications``).
        """
        listener = self.connect()
        try:
            listener.execute(f"LISTEN {CHANNEL}")
        except BaseException:
            listener.close()
            raise
        return listener


def migrate(conn: psycopg.Connection, where: str = "database") -> int:
    """
    Bring the schema up to date in one transaction under ``MIGRATE_LOCK`` (an instance starting
    meanwhile waits, then finds it done); return the version it had before.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATE_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS printerd_schema (version integer NOT NULL)")
        row = conn.execute("SELECT version FROM printerd_schema").fetchone()
        version = row[0] if row else 0
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(
                f"{where} has schema version {version}, newer than this printerd's "
                f"{SCHEMA_VERSION}: upgrade printerd or use another database")
        for number in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute(MIGRATIONS[number - 1])
        if row is None:
            conn.execute("INSERT INTO printerd_schema (version) VALUES (%s)", (SCHEMA_VERSION,))
        elif version < SCHEMA_VERSION:
            conn.execute("UPDATE printerd_schema SET version = %s", (SCHEMA_VERSION,))
    return version


def folds_every_script(conn: psycopg.Connection) -> bool:
    """Whether printerd_fold lower-cases beyond ASCII on this server (search is Unicode-wide)."""
    (folded,) = conn.execute("SELECT printerd_fold('ÄЖΣΑ')").fetchone()  # type: ignore[misc]
    return bool(folded == "äжσα")


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__

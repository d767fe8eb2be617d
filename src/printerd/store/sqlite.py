"""
The SQLite engine: one database file in WAL mode, its schema in ``sqlite_schema``.

Every method that takes a connection is a thread function (see ``engine.py``): the store runs it
on its writer or reader threads, never on the reactor thread.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
from contextlib import AbstractContextManager, contextmanager
from typing import Callable, Iterator

from printerd.store import sqlite_search
from printerd.store.engine import DatabaseUnavailable, SchemaTooNew
from printerd.store.outbox import SharedOutbox
from printerd.store.receipts import (
    INSERTED_COLUMNS, NewReceipt, Receipt, ReceiptPage, ReceiptQuery, StoreSummary,
)
from printerd.store.shared_sql import SharedReceipts
from printerd.store.sqlite_schema import MIGRATIONS, SCHEMA_VERSION


def connect(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """
    Open the database with printerd's connection settings.

    ``check_same_thread`` is off because the store closes its pool threads' connections
    from the reactor thread once those threads have stopped; each connection is still
    used by one thread at a time.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """
    One write transaction: takes the write lock at once (BEGIN IMMEDIATE, so what it reads is
    what it writes over), commits when the block ends, rolls back if it raises.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def migrate(conn: sqlite3.Connection, path: str = "database") -> int:
    """Bring the schema up to date; return the version it had before."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    if version > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"{path} has schema version {version}, newer than this printerd's "
            f"{SCHEMA_VERSION}: upgrade printerd or use another database"
        )
    if version == 0:
        # Both must be set before the first table exists to take effect.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
    for number in range(version + 1, SCHEMA_VERSION + 1):
        with write_transaction(conn):
            for statement in split_statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    return version


def split_statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


# The oldest SQLite library printerd runs on: RETURNING (3.35) and FTS5's trigram tokenizer
# for the search index (3.34; FTS5 itself is a compile-time option).
MIN_SQLITE = (3, 35, 0)


def check_library() -> None:
    """Stop start-up with a clear message when Python's SQLite library cannot hold the schema."""
    needs = f"printerd needs SQLite {'.'.join(map(str, MIN_SQLITE))} or newer, built with FTS5"
    if sqlite3.sqlite_version_info < MIN_SQLITE:
        raise DatabaseUnavailable(f"Python's SQLite library is {sqlite3.sqlite_version}: {needs}")
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute("CREATE VIRTUAL TABLE probe USING fts5(text, tokenize = 'trigram')")
    except sqlite3.Error as e:
        raise DatabaseUnavailable(f"Python's SQLite library {sqlite3.sqlite_version} has no"
                                  f" trigram search index ({e}): {needs}") from None
    finally:
        probe.close()


class SQLiteEngine(SharedReceipts, SharedOutbox):
    """The store's ``engine.Engine`` on one SQLite file."""

    name = "sqlite"
    shared = False  # one process: the writer announces its own commits

    # One writer takes the write lock (BEGIN IMMEDIATE) before the inner SELECT, so the rows
    # it picks are the current ones.
    CLAIM = (
        "UPDATE deliveries SET claimed_by = ?, claimed_until = ?"
        " WHERE id IN (SELECT id FROM deliveries WHERE target = ? AND state = 'pending'"
        " AND next_attempt_at <= ? AND (claimed_until IS NULL OR claimed_until <= ?)"
        " ORDER BY next_attempt_at, id LIMIT ?) RETURNING id"
    )

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous

    def describe(self) -> str:
        return self.path

    # -- start-up -----------------------------------------------------------------------------

    def prepare(self, newest: int = 500) -> StoreSummary:
        """
        Create the database's folder, bring its schema up to date, prove it writable, and
        read what the store needs to start.  Runs once at start-up, before the reactor and the
        store's threads, so a bad path or a too-new database stops the daemon with a clear
        message instead of failing later.
        """
        check_library()
        try:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            conn = self.connect()
        except (OSError, sqlite3.Error) as e:
            raise DatabaseUnavailable(f"cannot open {self.path} for writing: {e}") from None
        try:
            migrate(conn, self.path)
            # An unwritable file or folder fails here, not at the first receipt.
            with write_transaction(conn):
                pass
            return self.summarize(conn, newest)
        except sqlite3.Error as e:
            raise DatabaseUnavailable(f"cannot open {self.path} for writing: {e}") from None
        finally:
            conn.close()

    # -- connections --------------------------------------------------------------------------

    def connect(self) -> sqlite3.Connection:
        return connect(self.path, self.synchronous)

    def is_disconnect(self, error: BaseException) -> bool:
        # A file has no connection to lose; errors (a full disk, a lock) are the statement's.
        return False

    def transaction(self,
                    conn: sqlite3.Connection) -> AbstractContextManager[sqlite3.Connection]:
        return write_transaction(conn)

    def ping(self, conn: sqlite3.Connection) -> None:
        conn.execute("SELECT 1").fetchone()

    def measure_size(self, conn: sqlite3.Connection) -> int:
        return self.size_on_disk()

    # -- reactor thread -----------------------------------------------------------------------

    def size_on_disk(self) -> int:
        """The database file and its WAL (a stat: cheap enough for the reactor thread)."""
        total = 0
        for suffix in ("", "-wal"):
            try:
                total += os.stat(self.path + suffix).st_size
            except OSError:
                pass
        return total

    # -- writer thread ------------------------------------------------------------------------

    def insert_receipts(self, conn: sqlite3.Connection, drafts: list[NewReceipt],
                        targets_for: Callable[[str], list[str]] = lambda printer: [],
                        ) -> list[Receipt]:
        """
        Insert drafts in one transaction; return them as committed, in order.  One writer
        connection makes ids commit in id order.

        ``targets_for(printer)`` names the webhook targets that want a receipt from that
        printer; a delivery row for each is written in the same transaction, due at once
        (time 0).  A draft whose ``origin`` is stored already (a forwarded receipt sent again)
        is not inserted: the receipt stored before is returned in its place.
        """
        stored: list[tuple[Receipt, bool]] = []  # each receipt, and whether it is new
        with write_transaction(conn):
            for forwarded, run in _runs_by_origin(drafts):
                stored += (self._insert_forwarded(conn, run) if forwarded
                           else [(receipt, True) for receipt in _insert_printed(conn, run)])
            deliveries = [(receipt.id, target) for receipt, new in stored if new
                          for target in targets_for(receipt.printer)]
            _insert_rows(conn, "INSERT INTO deliveries (receipt_id, target, next_attempt_at)"
                               " VALUES ", "(?, ?, 0)", deliveries)
        return [receipt for receipt, _ in stored]

    def _insert_forwarded(self, conn: sqlite3.Connection,
                          drafts: list[NewReceipt]) -> list[tuple[Receipt, bool]]:
        """
        Forwarded receipts, one statement each, and whether each is new: one stored before (a
        retry) is returned as it was stored, and gets no delivery again.
        """
        stored = []
        for draft in drafts:
            digest = draft.digest()
            cursor = conn.execute(
                f"INSERT INTO receipts ({INSERTED_COLUMNS}) VALUES {_INSERTED_ROW}"
                " ON CONFLICT (origin) WHERE origin IS NOT NULL DO NOTHING",
                draft.inserted_values(digest))
            if cursor.rowcount == 0:
                stored.append((self.stored_before(conn, draft), False))
                continue
            stored.append((draft.stored_as(cursor.lastrowid, digest), True))  # type: ignore[arg-type]
        return stored

    def reclaim_space(self, conn: sqlite3.Connection, pages: int = 1000) -> None:
        """Give up to ``pages`` free pages back to the file system (incremental vacuum)."""
        conn.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()

    # -- reader threads -----------------------------------------------------------------------

    def find_receipts(self, conn: sqlite3.Connection, query: ReceiptQuery,
                      now: Callable[[], float] = lambda: 0.0,
                      budget: float = float("inf")) -> ReceiptPage:
        """
        Receipts matching query, newest first, at most query.limit; a search stops after
        ``budget`` seconds of ``now()`` and says where (``sqlite_search`` tells how).
        """
        return sqlite_search.find_receipts(conn, query, now, budget)


# -- the writer's batched insert ---------------------------------------------------------------
#
# Each statement the writer runs gives up the GIL in SQLite and must win it back from the
# reactor, which holds it most of the time under load: a statement per receipt made the writer
# wait more than it wrote, and receipts queued by the thousand.  So a group commit inserts its
# printed receipts (and their deliveries) with multi-row statements, a few per batch.

_INSERTED_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# Rows per statement are powers of two up to this: a batch is a few statements, and their
# texts are few enough to stay in the connection's statement cache.  Fewer where the SQLite
# library binds fewer parameters to a statement (32,766 by default, 999 before 3.32).
_MAX_ROWS_PER_STATEMENT = 256


def _runs_by_origin(drafts: list[NewReceipt]) -> Iterator[tuple[bool, list[NewReceipt]]]:
    """Consecutive drafts grouped by whether they were forwarded (have an origin), in order."""
    for forwarded, run in itertools.groupby(drafts, key=lambda d: d.origin is not None):
        yield forwarded, list(run)


def _insert_printed(conn: sqlite3.Connection, drafts: list[NewReceipt]) -> list[Receipt]:
    """
    Receipts without an origin (nothing to conflict with) in multi-row statements.  The ids of
    one statement's rows are consecutive: AUTOINCREMENT gives each row one more than the
    largest id so far, and this connection is the only writer.
    """
    digests = [draft.digest() for draft in drafts]
    rows = [draft.inserted_values(digest) for draft, digest in zip(drafts, digests, strict=True)]
    ids = [receipt_id for count, last_id in _insert_rows(
               conn, f"INSERT INTO receipts ({INSERTED_COLUMNS}) VALUES ", _INSERTED_ROW, rows)
           for receipt_id in range(last_id - count + 1, last_id + 1)]
    return [draft.stored_as(receipt_id, digest)
            for draft, receipt_id, digest in zip(drafts, ids, digests, strict=True)]


def _insert_rows(conn: sqlite3.Connection, head: str, row: str,
                 rows: list[tuple]) -> list[tuple[int, int]]:
    """
    Insert ``rows`` with ``head`` + ``row`` repeated, in statements of a power of two rows
    each; return each statement's row count and last inserted rowid.
    """
    done: list[tuple[int, int]] = []
    if not rows:
        return done
    fits = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(rows[0])
    most = min(_MAX_ROWS_PER_STATEMENT, 1 << (max(fits, 1).bit_length() - 1))
    at = 0
    while at < len(rows):
        count = min(most, 1 << ((len(rows) - at).bit_length() - 1))
        chunk = rows[at:at + count]
        cursor = conn.execute(head + ", ".join([row] * count),
                              [value for values in chunk for value in values])
        if cursor.rowcount != count:
            raise sqlite3.DatabaseError(f"inserted {cursor.rowcount} rows of {count}")
        done.append((count, cursor.lastrowid or 0))
        at += count
    return done

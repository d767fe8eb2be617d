"""
The SQLite schema, as ordered migrations keyed on ``PRAGMA user_version``.

Migration N brings a database from version N-1 to N.  Append new migrations; never edit one
that has shipped.  A database whose version is newer than the code refuses to open.
"""

from __future__ import annotations

import os
import sqlite3

from printerd.store.receipts import StoreSummary, summarize
from printerd.store.sqlite import connect, write_transaction

MIGRATIONS: list[str] = [
    # 1: receipts.  AUTOINCREMENT so ids are never reused after old receipts are purged
    # (stream clients resume from the last id they saw).
    """
    CREATE TABLE receipts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        printer     TEXT    NOT NULL,
        peer        TEXT    NOT NULL,
        received_at TEXT    NOT NULL,  -- UTC, ISO 8601 with microseconds: sorts as text
        job         INTEGER NOT NULL,
        bytes       INTEGER NOT NULL,
        raw         BLOB    NOT NULL,
        text        TEXT    NOT NULL,
        cut         TEXT    NOT NULL,
        sha256      TEXT    NOT NULL,
        truncated   INTEGER NOT NULL
    );
    CREATE INDEX receipts_received_at ON receipts (received_at);
    CREATE INDEX receipts_printer ON receipts (printer, id);
    CREATE INDEX receipts_job ON receipts (job);
    """,
    # 2: the webhook outbox.  A row per (receipt, target), written in the receipt's own
    # transaction, so a crash can neither lose a delivery nor send an unstored receipt.
    """
    CREATE TABLE deliveries (
        id              INTEGER PRIMARY KEY,
        receipt_id      INTEGER NOT NULL REFERENCES receipts (id),
        target          TEXT    NOT NULL,
        state           TEXT    NOT NULL DEFAULT 'pending',  -- pending, delivered, dead
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_at REAL    NOT NULL,                    -- epoch seconds
        last_attempt_at REAL,
        last_error      TEXT,
        UNIQUE (receipt_id, target)
    );
    CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
    """,
    # 3: structured content (barcodes, 2D codes, images, drawer kicks, unknown commands), JSON.
    """
    ALTER TABLE receipts ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(Exception):
    """The database was written by a newer printerd."""


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
            for statement in _statements(MIGRATIONS[number - 1]):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
    return version


def _statements(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit on its own)."""
    statements, current = [], ""
    for line in script.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    return [s for s in statements if s]


def prepare_database(path: str, synchronous: str = "FULL", newest: int = 500) -> StoreSummary:
    """
    Create the database's folder, bring its schema up to date, and read what the store
    needs to start (counts, last ids, the newest receipts).

    Runs once at start-up, before the reactor and the store's threads, so a bad path or a
    too-new database stops the daemon with a clear message instead of failing later.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    conn = connect(path, synchronous)
    try:
        migrate(conn, path)
        # Prove we can write: an unwritable file or folder fails here, not at the first receipt.
        with write_transaction(conn):
            pass
        return summarize(conn, newest)
    finally:
        conn.close()

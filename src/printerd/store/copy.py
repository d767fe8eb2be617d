"""
``printerd copy-db SOURCE DEST``: move a site's SQLite database into PostgreSQL, keeping every
id, so stream clients resume from the Last-Event-ID they hold and webhook receivers see the same
``webhook-id`` for the same receipt.

The copy is one PostgreSQL transaction (a failure leaves the destination as it was), into a
database that holds no receipts yet; receipts and outbox rows go over with COPY in id order, and
the identity sequences are set past the highest id SQLite ever gave out (its AUTOINCREMENT
counter, which purged receipts may have left above the highest id still stored).  Run it with
printerd stopped on the source.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import Callable

from printerd.store.engine import DatabaseUnavailable, is_postgres_url
from printerd.store.postgres import PostgresEngine
from printerd.store.sqlite import SQLiteEngine

RECEIPT_COPY_COLUMNS = ("id", "printer", "peer", "received_at", "job", "bytes", "raw", "text",
                        "cut", "sha256", "truncated", "details", "ocr_text", "origin")
DELIVERY_COPY_COLUMNS = ("id", "receipt_id", "target", "state", "attempts", "next_attempt_at",
                         "last_attempt_at", "last_error", "claimed_by", "claimed_until")
PAGE = 1000  # rows read from SQLite at a time


class CopyRefused(Exception):
    """The copy cannot start (the message says why); nothing was written."""


@dataclass(frozen=True)
class Copied:
    destination: str  # the URL without its password
    receipts: int
    deliveries: int
    next_id: int  # the id the next receipt gets in PostgreSQL


def copy_database(source: str, destination: str,
                  progress: Callable[[int], None] = lambda copied: None) -> Copied:
    """
    Copy the SQLite database ``source`` into the PostgreSQL database ``destination`` (a URL),
    keeping ids; ``progress(receipts copied so far)`` is called after each page.
    """
    if not is_postgres_url(destination):
        raise CopyRefused(f"{destination} is not a postgresql:// URL")
    if not os.path.isfile(source):
        raise CopyRefused(f"{source}: no such SQLite database")
    try:
        SQLiteEngine(source).prepare()  # its schema up to date, as printerd would
        target = PostgresEngine(destination, "copy-db")
        target.prepare()
    except (DatabaseUnavailable, ValueError) as e:
        raise CopyRefused(str(e)) from None
    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        with target.connect() as conn, conn.transaction():
            (present,) = conn.execute("SELECT count(*) FROM receipts").fetchone()  # type: ignore
            if present:
                raise CopyRefused(f"{target.describe()} holds {present} receipts already: "
                                  "copy-db copies into a database without receipts")
            receipts = _copy_table(reader, conn, "receipts", RECEIPT_COPY_COLUMNS, progress)
            deliveries = _copy_table(reader, conn, "deliveries", DELIVERY_COPY_COLUMNS,
                                     lambda copied: None)
            # COPY leaves the engine's count of receipts as it was (none): start-up reads it.
            conn.execute("UPDATE receipt_stats SET receipts = %s", (receipts,))
            highest = _highest_id_given(reader)
            # The same receipts under the same ids: the same database to the stream's clients,
            # which go on where they were instead of starting over.
            (identity,) = reader.execute("SELECT id FROM database_identity").fetchone()
            conn.execute("UPDATE database_identity SET id = %s", (identity,))
            for table, last in (("receipts", highest), ("deliveries", None)):
                conn.execute(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                    f" greatest(coalesce(%s, 0), (SELECT coalesce(max(id), 0) FROM {table}), 1),"
                    f" (SELECT count(*) > 0 FROM {table}) OR coalesce(%s, 0) > 0)",
                    (last, last))
            (sequence,) = conn.execute(  # type: ignore[misc]
                "SELECT pg_get_serial_sequence('receipts', 'id')").fetchone()
            (next_id,) = conn.execute(  # type: ignore[misc]
                f"SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END"
                f" FROM {sequence}").fetchone()
    finally:
        reader.close()
    return Copied(target.describe(), receipts, deliveries, int(next_id))


def _copy_table(reader: sqlite3.Connection, conn: object, table: str, columns: tuple[str, ...],
                progress: Callable[[int], None]) -> int:
    names = ", ".join(columns)
    copied, last = 0, 0
    with conn.cursor() as cursor:  # type: ignore[attr-defined]
        with cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy:
            while True:
                rows = reader.execute(f"SELECT {names} FROM {table} WHERE id > ? ORDER BY id"
                                      f" LIMIT ?", (last, PAGE)).fetchall()
                for row in rows:
                    copy.write_row(_for_postgres(table, row))
                if not rows:
                    return copied
                copied += len(rows)
                last = rows[-1][0]
                progress(copied)


def _for_postgres(table: str, row: tuple) -> tuple:
    if table == "receipts":
        # raw is a BLOB (bytes); truncated an INTEGER that PostgreSQL keeps as boolean.
        row = row[:6] + (bytes(row[6]),) + row[7:10] + (bool(row[10]),) + row[11:]
    return row


def _highest_id_given(reader: sqlite3.Connection) -> int:
    """The highest receipt id SQLite ever handed out (AUTOINCREMENT's counter)."""
    row = reader.execute("SELECT seq FROM sqlite_sequence WHERE name = 'receipts'").fetchone()
    return int(row[0]) if row else 0

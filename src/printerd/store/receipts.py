"""
Receipts as stored, and the SQL that reads and writes them.

The functions here take a connection and return plain data; they run on the store's pool
threads, never on the reactor thread.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timezone
from typing import Any, Callable, Optional

from printerd.store.sqlite import write_transaction


def format_time(seconds: float) -> str:
    """UTC ISO 8601 with microseconds and a Z: fixed width, so it sorts as text."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> str:
    """An ISO 8601 time (naive means UTC) in the stored format; ValueError if it is not one."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_time(moment.timestamp())


# Every receipt's JSON has these, even receipts stored before the parser reported them.
EMPTY_DETAILS: dict[str, Any] = {"barcodes": [], "codes_2d": [],
                                 "images": {"count": 0, "items": []}, "drawer_kicks": [],
                                 "unknown_commands": {}, "dialects": {}, "line_styles": []}


@dataclass(frozen=True)
class NewReceipt:
    """A parsed receipt waiting to be committed."""

    printer: str
    peer: str
    received_at: str
    job: int
    raw: bytes
    text: str
    cut: str
    truncated: bool
    details: str = "{}"  # structured content, JSON


@dataclass(frozen=True)
class Receipt:
    """A committed receipt, without its raw bytes."""

    id: int
    printer: str
    peer: str
    received_at: str
    job: int
    size: int  # bytes of raw data (the JSON's "bytes")
    text: str
    cut: str
    truncated: bool
    sha256: str
    details: str = "{}"  # structured content, JSON

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "printer": self.printer, "peer": self.peer,
                "received_at": self.received_at, "job": self.job, "bytes": self.size,
                "text": self.text, "cut": self.cut, "truncated": self.truncated,
                "sha256": self.sha256, **EMPTY_DETAILS, **json.loads(self.details)}

    @cached_property
    def json_bytes(self) -> bytes:
        """The receipt's JSON, encoded once and reused by /api/recent and the stream."""
        return json.dumps(self.to_json(), separators=(",", ":")).encode()


@dataclass(frozen=True)
class ReceiptQuery:
    """Filters for listing receipts, newest first."""

    limit: int = 50
    before: Optional[int] = None
    after: Optional[int] = None
    since: Optional[str] = None
    until: Optional[str] = None
    printer: Optional[str] = None
    text: Optional[str] = None


RECEIPT_COLUMNS = ("id, printer, peer, received_at, job, bytes, text, cut, truncated, sha256,"
                   " details")


def receipt_from_row(row: tuple) -> Receipt:
    """A Receipt from a row of RECEIPT_COLUMNS."""
    id_, printer, peer, received_at, job, size, text, cut, truncated, sha256, details = row
    return Receipt(id_, printer, peer, received_at, job, size, text, cut, bool(truncated), sha256,
                   details)


def insert_receipts(conn: sqlite3.Connection, drafts: list[NewReceipt],
                    outbox: Callable[[str], list[str]] = lambda printer: []) -> list[Receipt]:
    """
    Insert drafts in one transaction; return them as committed, in order.

    ``outbox(printer)`` names the webhook targets that want a receipt from that printer; a
    delivery row for each is written in the same transaction, due at once (time 0).
    """
    stored = []
    with write_transaction(conn):
        for draft in drafts:
            digest = hashlib.sha256(draft.raw).hexdigest()
            cursor = conn.execute(
                "INSERT INTO receipts (printer, peer, received_at, job, bytes, raw, text, cut,"
                " sha256, truncated, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (draft.printer, draft.peer, draft.received_at, draft.job, len(draft.raw),
                 draft.raw, draft.text, draft.cut, digest, int(draft.truncated), draft.details),
            )
            for target in outbox(draft.printer):
                conn.execute(
                    "INSERT INTO deliveries (receipt_id, target, next_attempt_at) VALUES (?, ?, 0)",
                    (cursor.lastrowid, target))
            stored.append(Receipt(
                cursor.lastrowid, draft.printer, draft.peer, draft.received_at,  # type: ignore
                draft.job, len(draft.raw), draft.text, draft.cut, draft.truncated, digest,
                draft.details,
            ))
    return stored


def get_receipt(conn: sqlite3.Connection, receipt_id: int) -> Optional[Receipt]:
    row = conn.execute(f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = ?", (receipt_id,)).fetchone()
    return receipt_from_row(row) if row else None


def get_raw(conn: sqlite3.Connection, receipt_id: int) -> Optional[bytes]:
    row = conn.execute("SELECT raw FROM receipts WHERE id = ?", (receipt_id,)).fetchone()
    return bytes(row[0]) if row else None


def get_printer_and_raw(conn: sqlite3.Connection,
                        receipt_id: int) -> Optional[tuple[str, bytes]]:
    """The printer a receipt came from and its raw bytes, in one read (renderers)."""
    row = conn.execute("SELECT printer, raw FROM receipts WHERE id = ?",
                       (receipt_id,)).fetchone()
    return (row[0], bytes(row[1])) if row else None


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def find_receipts(conn: sqlite3.Connection, query: ReceiptQuery) -> list[Receipt]:
    """Receipts matching query, newest first, at most query.limit."""
    where, args = [], []
    conditions = [
        ("id < ?", query.before),
        ("id > ?", query.after),
        ("received_at >= ?", query.since),
        ("received_at < ?", query.until),
        ("printer = ?", query.printer),
    ]
    for clause, value in conditions:
        if value is not None:
            where.append(clause)
            args.append(value)
    if query.text:
        where.append("text LIKE ? ESCAPE '\\'")
        args.append(_like_pattern(query.text))
    sql = f"SELECT {RECEIPT_COLUMNS} FROM receipts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    args.append(query.limit)
    return [receipt_from_row(row) for row in conn.execute(sql, args)]


def receipts_after(conn: sqlite3.Connection, after: int, limit: int,
                   printer: Optional[str] = None) -> list[Receipt]:
    """Receipts with id > after, oldest first (stream replay)."""
    if printer is None:
        rows = conn.execute(
            f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id > ? ORDER BY id LIMIT ?", (after, limit))
    else:
        rows = conn.execute(
            f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id > ? AND printer = ? ORDER BY id LIMIT ?",
            (after, printer, limit))
    return [receipt_from_row(row) for row in rows]


@dataclass(frozen=True)
class StoreSummary:
    """What the store loads at start: counts, the last job id, the newest receipts."""

    receipts: int
    last_job: int
    newest: list[Receipt]


def summarize(conn: sqlite3.Connection, newest: int) -> StoreSummary:
    (count,) = conn.execute("SELECT count(*) FROM receipts").fetchone()
    (last_job,) = conn.execute("SELECT coalesce(max(job), 0) FROM receipts").fetchone()
    rows = conn.execute(f"SELECT {RECEIPT_COLUMNS} FROM receipts ORDER BY id DESC LIMIT ?", (newest,))
    return StoreSummary(count, last_job,
                        [receipt_from_row(r) for r in reversed(rows.fetchall())])


def purge_batch(conn: sqlite3.Connection, cutoff: str, batch: int) -> tuple[int, int]:
    """
    One short write transaction of retention: delivered outbox rows, then receipts older
    than ``cutoff`` with no pending delivery (with their finished delivery rows).
    Returns (receipts deleted, delivery rows deleted).
    """
    with write_transaction(conn):
        deliveries = conn.execute(
            "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
            " WHERE state = 'delivered' LIMIT ?)", (batch,)).rowcount
        old = [row[0] for row in conn.execute(
            "SELECT id FROM receipts r WHERE received_at < ? AND NOT EXISTS (SELECT 1 FROM"
            " deliveries d WHERE d.receipt_id = r.id AND d.state = 'pending') ORDER BY id LIMIT ?",
            (cutoff, batch))]
        if old:
            marks = ",".join("?" * len(old))
            deliveries += conn.execute(
                f"DELETE FROM deliveries WHERE receipt_id IN ({marks})", old).rowcount
            conn.execute(f"DELETE FROM receipts WHERE id IN ({marks})", old)
    return len(old), deliveries


def reclaim_space(conn: sqlite3.Connection, pages: int = 1000) -> None:
    """Give up to ``pages`` free pages back to the file system (retention, after purging)."""
    conn.execute(f"PRAGMA incremental_vacuum({int(pages)})").fetchall()

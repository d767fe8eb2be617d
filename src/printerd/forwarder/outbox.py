"""SQL for the webhook outbox (the ``deliveries`` table); runs on the store's pool threads."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Optional

from printerd.store.receipts import RECEIPT_COLUMNS, Receipt, receipt_from_row

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True)
class Delivery:
    id: int
    target: str
    attempts: int
    receipt: Receipt


def due_deliveries(conn: sqlite3.Connection, now: float, targets: list[str],
                   limit: int) -> list[Delivery]:
    """Pending deliveries due by ``now`` for the given targets, oldest first."""
    if not targets:
        return []
    marks = ",".join("?" * len(targets))
    columns = ", ".join(f"r.{c.strip()}" for c in RECEIPT_COLUMNS.split(","))
    rows = conn.execute(
        f"SELECT d.id, d.target, d.attempts, {columns} FROM deliveries d"
        f" JOIN receipts r ON r.id = d.receipt_id"
        f" WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND d.target IN ({marks})"
        f" ORDER BY d.next_attempt_at, d.id LIMIT ?", (now, *targets, limit))
    return [Delivery(row[0], row[1], row[2], receipt_from_row(row[3:])) for row in rows]


def record_attempt(conn: sqlite3.Connection, delivery_id: int, now: float, state: str,
                   next_attempt_at: Optional[float], error: Optional[str],
                   count_attempt: bool = True) -> None:
    conn.execute(
        "UPDATE deliveries SET state = ?, attempts = attempts + ?, last_attempt_at = ?,"
        " last_error = ?, next_attempt_at = coalesce(?, next_attempt_at) WHERE id = ?",
        (state, int(count_attempt), now, error, next_attempt_at, delivery_id))


def counts(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Deliveries per target and state."""
    found: dict[str, dict[str, int]] = {}
    for target, state, n in conn.execute(
            "SELECT target, state, count(*) FROM deliveries GROUP BY target, state"):
        found.setdefault(target, {})[state] = n
    return found


def dead_letters(conn: sqlite3.Connection, limit: int) -> list[dict]:
    rows = conn.execute(
        "SELECT id, receipt_id, target, attempts, last_attempt_at, last_error FROM deliveries"
        " WHERE state = 'dead' ORDER BY id DESC LIMIT ?", (limit,))
    keys = ("id", "receipt_id", "target", "attempts", "last_attempt_at", "last_error")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def retry_dead(conn: sqlite3.Connection, now: float, delivery_id: Optional[int] = None) -> int:
    """Make dead deliveries (one, or all) pending again with a fresh set of attempts."""
    sql = ("UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?"
           " WHERE state = 'dead'")
    args: tuple = (now,)
    if delivery_id is not None:
        sql += " AND id = ?"
        args += (delivery_id,)
    return conn.execute(sql, args).rowcount

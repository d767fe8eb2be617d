"""
The webhook outbox (the ``deliveries`` table): its rows as data, and its thread functions in SQL
that SQLite and PostgreSQL both run.

An engine mixes ``SharedOutbox`` in and supplies what differs: its parameter marker
(``PARAM``) and its write transaction (``transaction``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Optional

from printerd.store.receipts import RECEIPT_COLUMNS, Receipt, receipt_from_row

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"


@dataclass(frozen=True)
class Delivery:
    """One receipt due to one webhook target."""

    id: int
    target: str
    attempts: int  # attempts made so far
    receipt: Receipt


_RECEIPT_COLUMNS_OF_R = ", ".join(f"r.{c.strip()}" for c in RECEIPT_COLUMNS.split(","))


class SharedOutbox:
    """The outbox's thread functions for an engine whose SQL they are (see the module docstring)."""

    PARAM = "?"  # the driver's parameter marker; statements here are written with "?"

    def transaction(self, conn: Any) -> AbstractContextManager[Any]:
        """The engine's write transaction (commits on leaving the block, rolls back on error)."""
        raise NotImplementedError

    def _sql(self, statement: str) -> str:
        return statement if self.PARAM == "?" else statement.replace("?", self.PARAM)

    def due_deliveries(self, conn: Any, now: float, targets: list[str],
                       limit: int) -> list[Delivery]:
        """Pending deliveries due by ``now`` for the given targets, oldest due first."""
        if not targets:
            return []
        marks = ",".join("?" * len(targets))
        rows = conn.execute(self._sql(
            f"SELECT d.id, d.target, d.attempts, {_RECEIPT_COLUMNS_OF_R} FROM deliveries d"
            f" JOIN receipts r ON r.id = d.receipt_id"
            f" WHERE d.state = 'pending' AND d.next_attempt_at <= ? AND d.target IN ({marks})"
            f" ORDER BY d.next_attempt_at, d.id LIMIT ?"), (now, *targets, limit))
        return [Delivery(row[0], row[1], row[2], receipt_from_row(row[3:])) for row in rows]

    def record_attempt(self, conn: Any, delivery_id: int, now: float, state: str,
                       next_attempt_at: Optional[float], error: Optional[str],
                       count_attempt: bool = True) -> None:
        """Record a delivery attempt's outcome."""
        with self.transaction(conn):
            conn.execute(self._sql(
                "UPDATE deliveries SET state = ?, attempts = attempts + ?, last_attempt_at = ?,"
                " last_error = ?, next_attempt_at = coalesce(?, next_attempt_at) WHERE id = ?"),
                (state, int(count_attempt), now, error, next_attempt_at, delivery_id))

    def delivery_counts(self, conn: Any) -> dict[str, dict[str, int]]:
        """Deliveries per target and state."""
        found: dict[str, dict[str, int]] = {}
        for target, state, n in conn.execute(
                "SELECT target, state, count(*) FROM deliveries GROUP BY target, state"):
            found.setdefault(target, {})[state] = n
        return found

    def dead_letters(self, conn: Any, limit: int) -> list[dict[str, Any]]:
        """The newest dead deliveries."""
        rows = conn.execute(self._sql(
            "SELECT id, receipt_id, target, attempts, last_attempt_at, last_error FROM deliveries"
            " WHERE state = 'dead' ORDER BY id DESC LIMIT ?"), (limit,))
        keys = ("id", "receipt_id", "target", "attempts", "last_attempt_at", "last_error")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def retry_dead(self, conn: Any, now: float, delivery_id: Optional[int] = None) -> int:
        """Make dead deliveries (one, or all) pending again with a fresh set of attempts."""
        sql = ("UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?"
               " WHERE state = 'dead'")
        args: tuple = (now,)
        if delivery_id is not None:
            sql += " AND id = ?"
            args += (delivery_id,)
        with self.transaction(conn):
            return conn.execute(self._sql(sql), args).rowcount

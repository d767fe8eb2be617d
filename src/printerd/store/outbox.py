"""
The webhook outbox (the ``deliveries`` table): its rows as data, and its thread functions in SQL
that SQLite and PostgreSQL both run.

An engine mixes ``SharedOutbox`` in and supplies what differs: its parameter marker
(``PARAM``, see ``shared_sql``), its write transaction (``transaction``) and its claim
statement (``CLAIM``).

Delivering is claim, post, record: a forwarder claims due deliveries in a write transaction
(``claimed_by`` itself, ``claimed_until`` the end of its lease), posts them outside any
transaction, and records each result only if it still holds the claim, clearing it.  A claim
whose lease ran out (its instance died) is taken again: at-least-once, same ``webhook-id``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from printerd.store.receipts import RECEIPT_COLUMNS_OF_R, Receipt, receipt_from_row
from printerd.store.shared_sql import SharedSQL

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"

DUE_LIMIT = 200  # "due" is counted up to this many (a gauge, not an inventory)


@dataclass(frozen=True)
class Delivery:
    """One receipt due to one webhook target."""

    id: int
    target: str
    attempts: int  # attempts made so far
    receipt: Receipt


@dataclass(frozen=True)
class Claim:
    """What one claim took, and how many deliveries were due then (at most ``DUE_LIMIT``)."""

    deliveries: list[Delivery]
    due: int


class SharedOutbox(SharedSQL):
    """The outbox's thread functions for an engine whose SQL they are (see the module docstring)."""

    # Claims up to a limit of one target's due deliveries that no live claim holds, and
    # returns their ids.  Parameters: claimant, lease_until, target, now, now, limit.
    # PostgreSQL adds FOR UPDATE SKIP LOCKED to the inner SELECT, so that instances claiming
    # at once take different rows instead of waiting for each other.
    CLAIM: str = ""

    def claim_deliveries(self, conn: Any, now: float, room: dict[str, int], claimant: str,
                         lease_until: float) -> Claim:
        """
        Claim up to ``room[target]`` due deliveries per target for ``claimant`` until
        ``lease_until``, in one write transaction: what is claimed is read under the write
        lock, never from an earlier snapshot.  A delivery under another live claim is not
        taken; one whose lease ran out is.
        """
        with self.transaction(conn):
            claimed: list[int] = []
            for target, limit in room.items():
                if limit > 0:
                    claimed += [row[0] for row in conn.execute(
                        self._sql(self.CLAIM),
                        (claimant, lease_until, target, now, now, limit)).fetchall()]
            (due,) = conn.execute(self._sql(
                "SELECT count(*) FROM (SELECT 1 FROM deliveries WHERE state = 'pending'"
                " AND next_attempt_at <= ? LIMIT ?) AS due"), (now, DUE_LIMIT)).fetchone()
            if not claimed:
                return Claim([], due)
            marks = ",".join("?" * len(claimed))
            rows = conn.execute(self._sql(
                f"SELECT d.id, d.target, d.attempts, {RECEIPT_COLUMNS_OF_R} FROM deliveries d"
                f" JOIN receipts r ON r.id = d.receipt_id WHERE d.id IN ({marks})"
                f" ORDER BY d.next_attempt_at, d.id"), claimed).fetchall()
        # One Receipt per receipt, whatever its number of targets: the forwarder encodes a
        # receipt's JSON once (``Receipt.json_bytes``) for all of them.
        receipts: dict[int, Receipt] = {}
        deliveries = []
        for row in rows:
            receipt = receipts.get(row[3])
            if receipt is None:
                receipt = receipts[row[3]] = receipt_from_row(row[3:])
            deliveries.append(Delivery(row[0], row[1], row[2], receipt))
        return Claim(deliveries, due)

    def record_delivery(self, conn: Any, delivery_id: int, claimant: str, now: float,
                        state: str, next_attempt_at: Optional[float], error: Optional[str],
                        count_attempt: bool = True) -> bool:
        """
        Record an attempt's outcome and clear its claim, if ``claimant`` still holds it;
        False (and nothing written) if it does not.
        """
        with self.transaction(conn):
            changed = conn.execute(self._sql(
                "UPDATE deliveries SET state = ?, attempts = attempts + ?, last_attempt_at = ?,"
                " last_error = ?, next_attempt_at = coalesce(?, next_attempt_at),"
                " claimed_by = NULL, claimed_until = NULL WHERE id = ? AND claimed_by = ?"),
                (state, int(count_attempt), now, error, next_attempt_at, delivery_id,
                 claimant)).rowcount
        return changed == 1

    def release_claims(self, conn: Any, delivery_ids: list[int], claimant: str) -> int:
        """Give back claims not acted on (nothing was sent); how many were released."""
        if not delivery_ids:
            return 0
        marks = ",".join("?" * len(delivery_ids))
        with self.transaction(conn):
            return conn.execute(self._sql(
                f"UPDATE deliveries SET claimed_by = NULL, claimed_until = NULL"
                f" WHERE id IN ({marks}) AND claimed_by = ?"), (*delivery_ids, claimant)).rowcount

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
        sql = ("UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
               " claimed_by = NULL, claimed_until = NULL WHERE state = 'dead'")
        args: tuple = (now,)
        if delivery_id is not None:
            sql += " AND id = ?"
            args += (delivery_id,)
        with self.transaction(conn):
            return conn.execute(self._sql(sql), args).rowcount

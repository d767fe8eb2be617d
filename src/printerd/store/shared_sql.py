"""
Thread functions in SQL that SQLite and PostgreSQL both run, written once with "?" markers.

An engine mixes these in and names its driver's parameter marker (``PARAM``); the statements
are rewritten for it by ``_sql``.  It supplies its write transaction (``transaction``) and may
keep retention to one instance at a time (``may_purge``) and keep its count of receipts in
its own statements (``count_receipts``).  The outbox's shared functions are in
``outbox.SharedOutbox``.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Optional

from printerd.store.receipts import (
    RECEIPT_COLUMNS, NewReceipt, RawReceipt, Receipt, StoreSummary, receipt_from_row,
)


class SharedSQL:
    """An engine's parameter marker, the rewriting of "?" statements for it, its transaction."""

    PARAM = "?"  # the driver's parameter marker; statements here are written with "?"

    def _sql(self, statement: str) -> str:
        return statement if self.PARAM == "?" else statement.replace("?", self.PARAM)

    def transaction(self, conn: Any) -> AbstractContextManager[Any]:
        """The engine's write transaction (commits on leaving the block, rolls back on error)."""
        raise NotImplementedError


class SharedReceipts(SharedSQL):
    """The thread functions on receipts whose SQL is the same on every engine."""

    def may_purge(self, conn: Any) -> bool:
        """Whether this retention transaction may go on (another instance may be purging)."""
        return True

    def last_job(self, conn: Any, stored: int) -> int:
        """
        The job number the raw ports go on from, given the highest ``stored``: that one here
        (PostgreSQL also reserves a block of its own for each instance).
        """
        return stored

    def summarize(self, conn: Any, newest: int) -> StoreSummary:
        """What the store loads at start: the count of receipts (the engine keeps it: counting
        every row takes longer as they grow), the last job, the ``newest`` receipts."""
        (count,) = conn.execute("SELECT receipts FROM receipt_stats").fetchone()
        (stored,) = conn.execute("SELECT coalesce(max(job), 0) FROM receipts").fetchone()
        rows = conn.execute(self._sql(
            f"SELECT {RECEIPT_COLUMNS} FROM receipts ORDER BY id DESC LIMIT ?"), (newest,))
        newest_first = rows.fetchall()
        (database_id,) = conn.execute("SELECT id FROM database_identity").fetchone()
        return StoreSummary(count, self.last_job(conn, stored),
                            [receipt_from_row(r) for r in reversed(newest_first)], database_id)

    def count_receipts(self, conn: Any, change: int) -> None:
        """
        Keep the engine's count of receipts (the start-up summary's) right: ``change``
        receipts were inserted (or, below 0, deleted) in the transaction under way, which
        calls this once.  Nothing here: SQLite's triggers keep it.
        """

    # -- writer thread ------------------------------------------------------------------------

    def purge_batch(self, conn: Any, cutoff: str, batch: int) -> tuple[list[int], int]:
        """
        One short write transaction of retention: delivered outbox rows, then receipts older
        than ``cutoff`` with no pending delivery (with their finished delivery rows).
        Returns (the ids of the receipts deleted, delivery rows deleted); ([], 0) when
        ``may_purge`` says no, which ends the run.
        """
        with self.transaction(conn):
            if not self.may_purge(conn):
                return [], 0
            deliveries = conn.execute(self._sql(
                "DELETE FROM deliveries WHERE id IN (SELECT id FROM deliveries"
                " WHERE state = 'delivered' LIMIT ?)"), (batch,)).rowcount
            old = [row[0] for row in conn.execute(self._sql(
                "SELECT id FROM receipts r WHERE received_at < ? AND NOT EXISTS (SELECT 1 FROM"
                " deliveries d WHERE d.receipt_id = r.id AND d.state = 'pending')"
                " ORDER BY id LIMIT ?"), (cutoff, batch))]
            if old:
                marks = ",".join("?" * len(old))
                deliveries += conn.execute(self._sql(
                    f"DELETE FROM deliveries WHERE receipt_id IN ({marks})"), old).rowcount
                receipts = conn.execute(self._sql(
                    f"DELETE FROM receipts WHERE id IN ({marks})"), old).rowcount
                self.count_receipts(conn, -receipts)
        return old, deliveries

    def stored_before(self, conn: Any, draft: NewReceipt) -> Receipt:
        """The receipt stored before under the forwarded ``draft``'s origin: what a receipt
        sent again (a retry) gets back, in the transaction that found its origin taken."""
        row = conn.execute(self._sql(f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE origin = ?"),
                           (draft.origin,)).fetchone()
        return receipt_from_row(row)

    def set_ocr_text(self, conn: Any, receipt_id: int, text: str) -> Optional[Receipt]:
        """Store the text OCR read from a receipt; the receipt as updated (None: purged)."""
        with self.transaction(conn):
            row = conn.execute(self._sql(f"UPDATE receipts SET ocr_text = ? WHERE id = ?"
                                         f" RETURNING {RECEIPT_COLUMNS}"),
                               (text, receipt_id)).fetchone()
        return receipt_from_row(row) if row else None

    # -- reader threads -----------------------------------------------------------------------

    def get_receipt(self, conn: Any, receipt_id: int) -> Optional[Receipt]:
        row = conn.execute(self._sql(f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = ?"),
                           (receipt_id,)).fetchone()
        return receipt_from_row(row) if row else None

    def get_raw(self, conn: Any, receipt_id: int) -> Optional[bytes]:
        row = conn.execute(self._sql("SELECT raw FROM receipts WHERE id = ?"),
                           (receipt_id,)).fetchone()
        return bytes(row[0]) if row else None

    def get_raw_receipt(self, conn: Any, receipt_id: int) -> Optional[RawReceipt]:
        row = conn.execute(self._sql("SELECT printer, details, raw FROM receipts WHERE id = ?"),
                           (receipt_id,)).fetchone()
        return RawReceipt(row[0], row[1], bytes(row[2])) if row else None

    def receipts_after(self, conn: Any, after: int, limit: int,
                       printer: Optional[str] = None) -> list[Receipt]:
        """Receipts with id > after, oldest first (stream replay, the tailer)."""
        if printer is None:
            rows = conn.execute(self._sql(f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id > ?"
                                          " ORDER BY id LIMIT ?"), (after, limit))
        else:
            rows = conn.execute(self._sql(f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id > ?"
                                          " AND printer = ? ORDER BY id LIMIT ?"),
                                (after, printer, limit))
        return [receipt_from_row(row) for row in rows]

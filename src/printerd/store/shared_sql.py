"""
Thread functions in SQL that SQLite and PostgreSQL both run, written once with "?" markers.

An engine mixes these in and names its driver's parameter marker (``PARAM``); the statements
are rewritten for it by ``_sql``.  The outbox's shared functions are in ``outbox.SharedOutbox``.
"""

from __future__ import annotations

from typing import Any, Optional

from printerd.store.receipts import RECEIPT_COLUMNS, Receipt, receipt_from_row


class SharedSQL:
    """An engine's parameter marker, and the rewriting of "?" statements for it."""

    PARAM = "?"  # the driver's parameter marker; statements here are written with "?"

    def _sql(self, statement: str) -> str:
        return statement if self.PARAM == "?" else statement.replace("?", self.PARAM)


class SharedReceiptReads(SharedSQL):
    """The reader-thread functions on receipts whose SQL is the same on every engine."""

    def get_receipt(self, conn: Any, receipt_id: int) -> Optional[Receipt]:
        row = conn.execute(self._sql(f"SELECT {RECEIPT_COLUMNS} FROM receipts WHERE id = ?"),
                           (receipt_id,)).fetchone()
        return receipt_from_row(row) if row else None

    def get_raw(self, conn: Any, receipt_id: int) -> Optional[bytes]:
        row = conn.execute(self._sql("SELECT raw FROM receipts WHERE id = ?"),
                           (receipt_id,)).fetchone()
        return bytes(row[0]) if row else None

    def get_printer_and_raw(self, conn: Any, receipt_id: int) -> Optional[tuple[str, bytes]]:
        row = conn.execute(self._sql("SELECT printer, raw FROM receipts WHERE id = ?"),
                           (receipt_id,)).fetchone()
        return (row[0], bytes(row[1])) if row else None

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

"""
Finding receipts in SQLite: filters, paging, and ``q`` through the trigram index.

``q`` is a substring of the printed text or of the text OCR read from the images, case folded
as ``folding`` says.  Three characters or more: the FTS5 table
``receipts_text`` (trigram tokenizer, ``detail = none``, rowid = -id) names, newest first, the
receipts that hold every trigram of ``q``; their text is then checked for ``q`` itself.  One or
two characters, which no trigram holds: the text is read, newest first.  A time window becomes
a range of ids while received_at never went down in the table (``receipt_stats``); else it is a
predicate.

A search walks its candidates newest first, a batch at a time, and looks at the clock between
batches: when its time budget is spent before the page is full, the page says where it stopped
(``ReceiptPage.resume_before``).  Without that, a ``q`` whose trigrams are everywhere but which
occurs nowhere ("TOTAL   1"), or a rare printer, would read every receipt.
"""

from __future__ import annotations

import sqlite3
from typing import Callable, Iterator, Optional

from printerd.store.folding import fold, folded_contains
from printerd.store.receipts import (
    RECEIPT_COLUMNS_OF_R, Receipt, ReceiptPage, ReceiptQuery, receipt_from_row,
)

TRIGRAM = 3  # the shortest text the trigram index can answer
BATCH = 64  # candidates looked at between two looks at the clock


def find_receipts(conn: sqlite3.Connection, query: ReceiptQuery, now: Callable[[], float],
                  budget: float) -> ReceiptPage:
    """Receipts matching ``query``, newest first (see the module docstring)."""
    low, high, time_in_ids = _id_bounds(conn, query)
    if low is not None and high is not None and low > high:
        return ReceiptPage()
    filters, filter_args = _filters(query, time_in_ids)
    if not query.text and time_in_ids:
        # Indexes alone answer (ids; printer, id): nothing to budget.
        sql, args = _newest(filters, filter_args, low, high)
        return ReceiptPage(receipt_from_row(row) for row in conn.execute(
            sql + " LIMIT ?", [*args, query.limit]))
    if query.text and len(query.text) >= TRIGRAM:
        batches = _indexed(conn, query.text, filters, filter_args, low, high, query.limit)
    else:
        batches = _read(conn, query.text or "", filters, filter_args, low, high, query.limit)
    found: list[Receipt] = []
    started = now()
    for matches, looked_at, more in batches:
        found += matches[:query.limit - len(found)]
        if len(found) == query.limit:
            break
        if more and now() - started >= budget:
            return ReceiptPage(found, resume_before=looked_at)
    return ReceiptPage(found)


# Each batch: the receipts that match, the oldest id looked at, and whether there may be more.
Batches = Iterator[tuple[list[Receipt], int, bool]]
TEXT, OCR_TEXT = 6, 11  # their places in RECEIPT_COLUMNS


def _indexed(conn: sqlite3.Connection, text: str, filters: str, args: list[object],
             low: Optional[int], high: Optional[int], first: int) -> Batches:
    """Receipts holding ``text`` (three characters or more): the index's candidates, newest
    first, whose rows pass the filters and whose text holds it; ``first`` at first, then
    ``BATCH`` at a time."""
    bounds, match_args = "", list[object]([_trigrams(text)])
    # rowid is -id: forwards is newest first.
    if high is not None:
        bounds += " AND rowid >= ?"
        match_args.append(-high)
    if low is not None:
        bounds += " AND rowid <= ?"
        match_args.append(-low)
    candidates = conn.execute("SELECT -rowid FROM receipts_text WHERE receipts_text MATCH ?"
                              + bounds + " ORDER BY rowid", match_args)
    needle, size = fold(text), first
    while batch := [row[0] for row in candidates.fetchmany(size)]:
        marks = ",".join("?" * len(batch))
        rows = conn.execute(f"SELECT {RECEIPT_COLUMNS_OF_R} FROM receipts r WHERE r.id IN ({marks})"
                            f"{filters} ORDER BY r.id DESC", [*batch, *args])
        yield ([receipt_from_row(row) for row in rows if _holds(row, needle)],
               batch[-1], len(batch) == size)
        size = BATCH


def _read(conn: sqlite3.Connection, text: str, filters: str, args: list[object],
          low: Optional[int], high: Optional[int], first: int) -> Batches:
    """Receipts holding ``text`` (which may be empty), read newest first."""
    sql, args = _newest(filters, args, low, high)
    rows = conn.execute(sql, args)
    needle, size = fold(text), first
    while batch := rows.fetchmany(size):
        yield ([receipt_from_row(row) for row in batch if _holds(row, needle)],
               batch[-1][0], len(batch) == size)
        size = BATCH


def _holds(row: tuple, needle: str) -> bool:
    """Whether a receipt's printed text, or the text OCR read from its images, holds it."""
    return folded_contains(row[TEXT], needle) or (
        row[OCR_TEXT] is not None and folded_contains(row[OCR_TEXT], needle))


def _id_bounds(conn: sqlite3.Connection,
               query: ReceiptQuery) -> tuple[Optional[int], Optional[int], bool]:
    """
    The ids a query can match, at least and at most (None: unbounded), from ``before`` and
    ``after`` and, where received_at never goes down in the table, from ``since`` and
    ``until`` (two lookups in the received_at index instead of a scan of the window); and
    whether the time window, if any, is in those bounds.
    """
    low = None if query.after is None else query.after + 1
    high = None if query.before is None else query.before - 1
    if query.since is None and query.until is None:
        return low, high, True
    ordered_from, oldest = conn.execute(
        "SELECT ordered_from_id, (SELECT min(id) FROM receipts) FROM receipt_stats").fetchone()
    if oldest is None or oldest < ordered_from:
        return low, high, False  # time went back somewhere: the predicates alone decide
    if query.since is not None:
        row = conn.execute("SELECT id FROM receipts WHERE received_at >= ?"
                           " ORDER BY received_at, id LIMIT 1", (query.since,)).fetchone()
        if row is None:
            return 1, 0, True  # nothing that recent
        low = row[0] if low is None else max(low, row[0])
    if query.until is not None:
        row = conn.execute("SELECT id FROM receipts WHERE received_at < ?"
                           " ORDER BY received_at DESC, id DESC LIMIT 1",
                           (query.until,)).fetchone()
        if row is None:
            return 1, 0, True  # nothing that old
        high = row[0] if high is None else min(high, row[0])
    return low, high, True


def _trigrams(text: str) -> str:
    """An FTS5 query for the receipts that hold every trigram of ``text``."""
    trigrams = dict.fromkeys(text[i:i + TRIGRAM] for i in range(len(text) - TRIGRAM + 1))
    return " ".join('"' + trigram.replace('"', '""') + '"' for trigram in trigrams)


def _filters(query: ReceiptQuery, time_in_ids: bool) -> tuple[str, list[object]]:
    """The printer and time predicates, as " AND ..." on table ``r``."""
    sql, args = "", list[object]()
    # A time window outside the ids is read newest first, not through the received_at index
    # (the unary + keeps SQLite from it): the walk must be by id to stop early.
    time = "r.received_at" if time_in_ids else "+r.received_at"
    for clause, value in ((f"{time} >= ?", query.since), (f"{time} < ?", query.until),
                          ("r.printer = ?", query.printer)):
        if value is not None:
            sql += f" AND {clause}"
            args.append(value)
    return sql, args


def _newest(filters: str, args: list[object], low: Optional[int],
            high: Optional[int]) -> tuple[str, list[object]]:
    """Receipts from ``low`` to ``high`` (None: open) that pass the filters, newest first."""
    sql = f"SELECT {RECEIPT_COLUMNS_OF_R} FROM receipts r WHERE 1" + filters
    args = list(args)
    # Only the bounds there are: an open one would still steer SQLite away from the
    # (printer, id) index.
    if low is not None:
        sql += " AND r.id >= ?"
        args.append(low)
    if high is not None:
        sql += " AND r.id <= ?"
        args.append(high)
    return sql + " ORDER BY r.id DESC", args

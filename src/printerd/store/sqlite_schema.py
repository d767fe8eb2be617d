"""
The SQLite schema, as ordered migrations keyed on ``PRAGMA user_version``.

Migration N brings a database from version N-1 to N.  Append new migrations; never edit one
that has shipped.  A database whose version is newer than the code refuses to open
(``sqlite.migrate`` applies them).
"""

from __future__ import annotations

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
    # 4: delivery claims.  A forwarder claims a delivery (who, and until when) in a write
    # transaction before it posts it, and only the claimant records the result; a claim whose
    # lease ran out (its instance died) can be taken again.
    """
    ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;
    ALTER TABLE deliveries ADD COLUMN claimed_until REAL;
    CREATE INDEX deliveries_claimable ON deliveries (target, state, next_attempt_at);
    """,
    # 5: text read by OCR from a receipt's images, filled in after the receipt is stored
    # (NULL: not read).
    """
    ALTER TABLE receipts ADD COLUMN ocr_text TEXT;
    """,
    # 6: receipts forwarded by another printerd (POST /api/ingest) are stored once per origin
    # (the site and the webhook-id of the delivery); NULL for receipts printed here, which the
    # partial index leaves out (nothing to maintain for them).
    """
    ALTER TABLE receipts ADD COLUMN origin TEXT;
    CREATE UNIQUE INDEX receipts_origin ON receipts (origin) WHERE origin IS NOT NULL;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

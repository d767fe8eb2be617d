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
    # 6: the database's identity, random, made once with the database.  Receipt ids start
    # again at 1 in a new database: the stream says which database it serves, so that a page
    # that saw another one starts over instead of waiting for ids it has already passed.
    """
    CREATE TABLE database_identity (id TEXT NOT NULL);
    INSERT INTO database_identity (id) VALUES (lower(hex(randomblob(16))));
    """,
    # 7: search and start-up at a million receipts.
    # receipts_text: an FTS5 index of the text and the OCR text for q= (trigram tokenizer,
    # Unicode case folding), kept in each receipt's own transaction by triggers.  Its rowid is the
    # receipt's id negated, so that walking it forwards, which FTS5 does lazily, yields the
    # newest receipts first (backwards it loads a whole doclist first: a trigram in every
    # receipt is a million entries).  Contentless: the text is stored once, in receipts.
    # Which receipts hold a trigram, not where (detail = none): half the size and indexing
    # time of positions; a search checks its candidates' text itself.  Built here for the
    # receipts stored.
    # receipt_stats: one row the triggers keep current, so that start-up need not count: the
    # number of receipts, and from which id on received_at never goes down from one receipt
    # to the next (then a time window is a range of ids).
    """
    CREATE VIRTUAL TABLE receipts_text USING fts5(
        text, ocr_text, content = '', tokenize = 'trigram case_sensitive 0', detail = none,
        columnsize = 0
    );
    INSERT INTO receipts_text (rowid, text, ocr_text)
        SELECT -id, text, ocr_text FROM receipts ORDER BY id DESC;
    CREATE TABLE receipt_stats (
        only             INTEGER PRIMARY KEY CHECK (only = 1),
        receipts         INTEGER NOT NULL,
        last_received_at TEXT    NOT NULL,  -- of the newest receipt inserted
        ordered_from_id  INTEGER NOT NULL   -- received_at never goes down from this id on
    );
    INSERT INTO receipt_stats
        SELECT 1, (SELECT count(*) FROM receipts),
               coalesce((SELECT received_at FROM receipts ORDER BY id DESC LIMIT 1), ''),
               coalesce((SELECT max(id) FROM (SELECT id, received_at < lag(received_at)
                         OVER (ORDER BY id) AS went_down FROM receipts) WHERE went_down), 0);
    CREATE TRIGGER receipts_inserted AFTER INSERT ON receipts BEGIN
        INSERT INTO receipts_text (rowid, text, ocr_text)
            VALUES (-new.id, new.text, new.ocr_text);
        UPDATE receipt_stats SET receipts = receipts + 1,
            ordered_from_id = CASE WHEN new.received_at < last_received_at THEN new.id
                                   ELSE ordered_from_id END,
            last_received_at = new.received_at;
    END;
    CREATE TRIGGER receipts_deleted AFTER DELETE ON receipts BEGIN
        INSERT INTO receipts_text (receipts_text, rowid, text, ocr_text)
            VALUES ('delete', -old.id, old.text, old.ocr_text);
        UPDATE receipt_stats SET receipts = receipts - 1;
    END;
    CREATE TRIGGER receipts_text_updated AFTER UPDATE OF text, ocr_text ON receipts BEGIN
        INSERT INTO receipts_text (receipts_text, rowid, text, ocr_text)
            VALUES ('delete', -old.id, old.text, old.ocr_text);
        INSERT INTO receipts_text (rowid, text, ocr_text)
            VALUES (-new.id, new.text, new.ocr_text);
    END;
    """,
    # 8: receipts forwarded by another printerd (POST /api/ingest) are stored once per origin
    # (the site and the webhook-id of the delivery); NULL for receipts printed here, which the
    # partial index leaves out (nothing to maintain for them).
    """
    ALTER TABLE receipts ADD COLUMN origin TEXT;
    CREATE UNIQUE INDEX receipts_origin ON receipts (origin) WHERE origin IS NOT NULL;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

"""
Writer scenario: the store's writer thread alone, no reactor, no sockets.

The ingest scenario's receipts (~1.5 KB, parsed by the real parser) are committed in group
commits of the store's largest batch through the engine's ``insert_receipts`` into a fresh
database, once with the search index and once without it: SQLite (WAL, synchronous FULL) with
its trigger dropped, and, given ``--postgres``, PostgreSQL with its trigram indexes dropped.  The
first figure of each is the most receipts per second the writer could commit on this machine if
the reactor cost nothing; the two together say what the search index, kept in each receipt's
transaction, costs of it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Optional

from printerd.compact_json import compact_json
from printerd.escpos.parser import JobParser
from printerd.store.engine import Engine, open_engine
from printerd.store.receipts import NewReceipt, format_time
from printerd.store.service import MAX_BATCH

from bench.ingest import receipt_bytes
from bench.multi import fresh_database

# What takes the search index away, per engine (the bench's own fresh databases only).
WITHOUT_INDEX = {
    "sqlite": ["DROP TRIGGER receipts_inserted"],
    "postgresql": ["DROP INDEX receipts_text_trigrams", "DROP INDEX receipts_ocr_text_trigrams"],
}


def drafts(count: int) -> list[NewReceipt]:
    made = []
    for n in range(count):
        (parsed,) = JobParser().feed(receipt_bytes(n % 20, n))
        made.append(NewReceipt(printer="default", peer="127.0.0.1:40000",
                               received_at=format_time(1.7e9 + n / 1000), job=n,
                               raw=parsed.raw, text=parsed.text, cut=parsed.cut,
                               truncated=parsed.truncated, details=compact_json(parsed.details)))
    return made


def receipts_per_second(engine: Engine, receipts: list[NewReceipt], kind: str,
                        search_index: bool) -> dict:
    engine.prepare(0)
    conn = engine.connect()
    try:
        if not search_index:
            for statement in WITHOUT_INDEX[kind]:
                conn.execute(statement)
        started, cpu = time.perf_counter(), time.process_time()
        for at in range(0, len(receipts), MAX_BATCH):
            engine.insert_receipts(conn, receipts[at:at + MAX_BATCH])
        elapsed = time.perf_counter() - started
        (stored,) = conn.execute("SELECT count(*) FROM receipts").fetchone()
    finally:
        conn.close()
    assert stored == len(receipts)
    return {"receipts_per_s": round(len(receipts) / elapsed),
            "writer_cpu_us_per_receipt": round((time.process_time() - cpu) / len(receipts) * 1e6,
                                               1)}


def run(workdir: Any = None, receipts: int = 20_000, postgres: Optional[str] = None) -> dict:
    made = drafts(receipts)
    result: dict[str, Any] = {"receipts": receipts, "batch": MAX_BATCH}
    for search_index in (True, False):
        key = "with_search_index" if search_index else "without_search_index"
        with tempfile.TemporaryDirectory() as folder:
            engine = open_engine(str(Path(folder) / "writer.sqlite3"))
            result[f"sqlite_{key}"] = receipts_per_second(engine, made, "sqlite", search_index)
        if postgres:
            # The server's CPU is not in the writer's: on this machine it shares the cores.
            with fresh_database(postgres) as url:
                result[f"postgresql_{key}"] = receipts_per_second(
                    open_engine(url), made, "postgresql", search_index)
    return result

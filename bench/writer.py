"""
Writer scenario: the store's writer thread alone, no reactor, no sockets.

The ingest scenario's receipts (~1.5 KB, parsed by the real parser) are committed in group
commits of the store's largest batch through ``SQLiteEngine.insert_receipts`` into a fresh
database (WAL, synchronous FULL), once with the search index and once without it (its trigger
dropped).  The first figure is the most receipts per second that the writer could commit on
this machine if the reactor cost nothing; the two together say what the FTS5 trigram index,
kept in each receipt's transaction, costs of it.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from printerd.compact_json import compact_json
from printerd.escpos.parser import JobParser
from printerd.store.receipts import NewReceipt, format_time
from printerd.store.service import MAX_BATCH
from printerd.store.sqlite import SQLiteEngine

from bench.ingest import receipt_bytes


def drafts(count: int) -> list[NewReceipt]:
    made = []
    for n in range(count):
        (parsed,) = JobParser().feed(receipt_bytes(n % 20, n))
        made.append(NewReceipt(printer="default", peer="127.0.0.1:40000",
                               received_at=format_time(1.7e9 + n / 1000), job=n,
                               raw=parsed.raw, text=parsed.text, cut=parsed.cut,
                               truncated=parsed.truncated, details=compact_json(parsed.details)))
    return made


def receipts_per_second(workdir: Path, receipts: list[NewReceipt], search_index: bool) -> dict:
    engine = SQLiteEngine(str(workdir / f"writer-{search_index}.sqlite3"))
    engine.prepare()
    conn = engine.connect()
    try:
        if not search_index:
            conn.execute("DROP TRIGGER receipts_inserted")
        started, cpu = time.perf_counter(), time.process_time()
        for at in range(0, len(receipts), MAX_BATCH):
            engine.insert_receipts(conn, receipts[at:at + MAX_BATCH])
        elapsed = time.perf_counter() - started
        (stored,) = conn.execute("SELECT count(*) FROM receipts").fetchone()
    finally:
        conn.close()
    assert stored == len(receipts)
    return {"receipts_per_s": round(len(receipts) / elapsed),
            "cpu_us_per_receipt": round((time.process_time() - cpu) / len(receipts) * 1e6, 1)}


def run(workdir: Any = None, receipts: int = 20_000) -> dict:
    made = drafts(receipts)
    with tempfile.TemporaryDirectory() as folder:
        indexed = receipts_per_second(Path(folder), made, search_index=True)
        plain = receipts_per_second(Path(folder), made, search_index=False)
    return {"receipts": receipts, "batch": MAX_BATCH, "with_search_index": indexed,
            "without_search_index": plain}

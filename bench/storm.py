"""
Reconnect-storm scenario: printerd restarts, and N subscribers come back at once, every one
resuming with ``Last-Event-ID``.

The database holds ``receipts`` receipts; the daemon is stopped and started again on it, and
the subscribers resume ``behind`` (20) receipts before the newest: within the memory cache of
the newest receipts, or (``from_memory`` false: the daemon keeps only 10 in memory) beyond it, so
the replay is read from the database, and the resumes from the same point share the query.
Reports the time until every subscriber was streaming and until every one had all its
replayed events, and the daemon's replay counters (from memory, queries).  The ceiling is the
bare SSE server's plain connect storm (``stream``'s ``connect_s``): it replays nothing.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench.common import stats
from bench.daemon import Daemon, as_operated
from bench.ingest import pos_client
from bench.stream import measure, open_to
from printerd.config import Settings

SWEEP = 0.05  # counting subscribers are read this often: the completion time's resolution


async def fill(daemon: Daemon, receipts: int) -> None:
    clients = 10
    await asyncio.gather(*(pos_client(daemon.raw_port, c, receipts // clients, 10)
                           for c in range(clients)))
    while (await stats(daemon.http_port))["receipts_total"] < receipts:
        await asyncio.sleep(0.05)


def run(workdir: Any, subscribers: int = 10_000, receipts: int = 1000, behind: int = 20,
        from_memory: bool = True) -> dict:
    """``from_memory`` false: the daemon keeps 10 receipts in memory, so the replay is read."""
    memory_cache = Settings().recent_size if from_memory else 10
    options = (f"--recent-size={memory_cache}", *open_to(subscribers),
               "--api-rate=0", "--database=storm.sqlite3")
    first = as_operated(workdir, *options)
    try:
        asyncio.run(fill(first, receipts))
    finally:
        first.stop()
    started = time.perf_counter()
    daemon = as_operated(workdir, *options)
    restart_s = time.perf_counter() - started
    try:
        resume_from = receipts - behind  # ids are 1..receipts in a new database
        result = measure(daemon, subscribers, printers=0, receipts=0, rate=1.0,
                         headers=b"Last-Event-ID: %d\r\n" % resume_from, sample_recent=False,
                         expected_replay=behind, sweep=SWEEP)
        counters = asyncio.run(stats(daemon.http_port))
    finally:
        daemon.stop()
    return {"subscribers": subscribers, "receipts_stored": receipts, "behind": behind,
            "memory_cache": memory_cache,
            "restart_s": round(restart_s, 2), "connect_s": result["connect_s"],
            "refused": result["refused"],
            "all_replayed_s": result["all_events_s"], "events_lost": result["events_lost"],
            "replays_from_memory": counters["sse_replays_from_memory_total"],
            "replay_queries": counters["sse_replay_queries_total"],
            "server_connected": result["server_connected"],
            "server_idle": result["server_idle"]}

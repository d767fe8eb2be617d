"""
Soak scenario (by hand, long): a million receipts flow while the server's RSS and threads are
sampled after every round; both must stay flat.  ``python -m bench soak --soak-receipts 1000000``.
"""

from __future__ import annotations

import asyncio
import time

from bench.common import process_figures, stats
from bench.daemon import Daemon
from bench.ingest import pos_client

ROUND = 20_000


async def scenario(daemon: Daemon, receipts: int, clients: int) -> dict:
    samples = [{"receipts": 0, **process_figures(daemon.process.pid)}]
    started = time.perf_counter()
    sent = 0
    while sent < receipts:
        size = min(ROUND, receipts - sent)
        await asyncio.gather(*(pos_client(daemon.raw_port, c, size // clients, 10)
                               for c in range(clients)))
        sent += size // clients * clients
        while (await stats(daemon.http_port))["receipts_total"] < sent:
            await asyncio.sleep(0.05)
        samples.append({"receipts": sent, **process_figures(daemon.process.pid)})
    elapsed = time.perf_counter() - started
    rss = [s["rss_bytes"] for s in samples[1:]] or [samples[0]["rss_bytes"]]
    return {"receipts": sent, "elapsed_s": round(elapsed, 1),
            "receipts_per_s": round(sent / elapsed),
            "threads_seen": sorted({s["threads"] for s in samples}),
            "rss_first_round": rss[0], "rss_last_round": rss[-1], "rss_max": max(rss),
            "samples": samples}


def run(workdir, receipts: int = 1_000_000, clients: int = 20) -> dict:
    daemon = Daemon(workdir, "--raw-listen=tcp:0:interface=127.0.0.1:backlog=4096")
    try:
        return asyncio.run(scenario(daemon, receipts, clients))
    finally:
        daemon.stop()

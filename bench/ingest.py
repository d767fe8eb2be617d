"""
Ingest scenario: P POS clients print ~1.5 KB receipts, one per connection or ten per connection;
receipts per second until every one is committed, and a count of the database to prove none lost.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time

from bench.common import http_get, process_figures
from bench.daemon import Daemon

ITEM = b"Espresso doppio .......................  2.80\n"


def receipt_bytes(client: int, n: int) -> bytes:
    body = b"\x1b@\x1b!\x30ACME CAFE\x1b!\x00\nClient %d receipt %d\n" % (client, n)
    body += ITEM * 32  # about 1.5 KB
    return body + b"TOTAL 89.60\n\x1dVA\x03"


async def pos_client(port: int, client: int, receipts: int, per_connection: int) -> None:
    for first in range(0, receipts, per_connection):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(receipt_bytes(client, n)
                              for n in range(first, min(first + per_connection, receipts))))
        await writer.drain()
        writer.close()
        await writer.wait_closed()


async def stats(port: int) -> dict:
    return json.loads((await http_get(port, "/api/stats"))[1])


async def scenario(daemon: Daemon, clients: int, receipts: int, per_connection: int) -> dict:
    idle = process_figures(daemon.process.pid)
    per_client = receipts // clients
    started = time.perf_counter()
    await asyncio.gather(*(pos_client(daemon.raw_port, c, per_client, per_connection)
                           for c in range(clients)))
    sent_s = time.perf_counter() - started
    during = process_figures(daemon.process.pid)
    expected = per_client * clients
    while (await stats(daemon.http_port))["receipts_total"] < expected:
        await asyncio.sleep(0.01)
        if time.perf_counter() - started > 300:
            break
    elapsed = time.perf_counter() - started
    return {"clients": clients, "receipts_per_connection": per_connection,
            "receipts": expected, "send_s": round(sent_s, 3), "elapsed_s": round(elapsed, 3),
            "receipts_per_s": round(expected / elapsed), "server_idle": idle,
            "server_during": during}


def run(workdir, clients: int = 20, receipts: int = 10_000, per_connection: int = 1,
        synchronous: str = "FULL") -> dict:
    daemon = Daemon(workdir, "--raw-listen=tcp:0:interface=127.0.0.1:backlog=4096",
                    f"--synchronous={synchronous}", "--database=bench.sqlite3")
    try:
        result = asyncio.run(scenario(daemon, clients, receipts, per_connection))
    finally:
        daemon.stop()
    (count,) = sqlite3.connect(workdir / "bench.sqlite3").execute(
        "SELECT count(*) FROM receipts").fetchone()
    result["stored_in_database"] = count
    result["lost"] = result["receipts"] - count
    result["synchronous"] = synchronous
    return result

"""
Two printerd instances on one PostgreSQL database (``python -m bench pg-ingest pg-stream
--postgres URL``; URL names a server where the bench may create and drop databases).

- ``pg-ingest``: 20 POS clients split between the two instances, 1 or 10 receipts per
  connection; receipts per second until all are committed, counted in the database (0 lost),
  and the tailers' commit-to-announce latency (``printerd_tailer_announce_seconds`` of both
  instances: another instance's commit, from its NOTIFY to its announcement here).
- ``pg-announce``: one POS client prints on the second instance at a steady rate (20 receipts/s);
  the first instance's commit-to-announce latency, without an ingest burst competing for the CPU.
- ``pg-stream``: N subscribers on each instance while POS clients print on the first one; every
  subscriber of both must get every receipt; delivery latency percentiles.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from bench.common import histogram, percentiles, process_figures, stats
from bench.daemon import Daemon
from bench.ingest import pos_client
from bench.stream import open_to, print_receipts
from bench.subscribers import Fleet

_numbers = itertools.count(1)
ANNOUNCE_HISTOGRAM = "printerd_tailer_announce_seconds"


@contextmanager
def fresh_database(server: str) -> Iterator[str]:
    """A new, empty database on ``server`` for one scenario (dropped afterwards): its URL."""
    import psycopg

    name = f"printerd_bench_{os.getpid()}_{next(_numbers)}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(server)._replace(path="/" + name))
    finally:
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def count_receipts(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM receipts").fetchone()[0]  # type: ignore


def start_two(workdir: Path, url: str, *options: str) -> list[Daemon]:
    made: list[Daemon] = []
    for name in ("a", "b"):
        folder = workdir / name
        folder.mkdir(exist_ok=True)
        made.append(Daemon(folder, f"--database={url}", f"--instance-name={name}",
                           "--api-rate=0", *options))
    return made


def quantile_bound(buckets: dict[float, float], count: float, q: float) -> float:
    """The upper bound of the histogram bucket holding the q-quantile."""
    for bound in sorted(buckets):
        if buckets[bound] >= q * count:
            return bound
    return float("inf")


async def _ingest(daemons: list[Daemon], url: str, clients: int, receipts: int,
                  per_connection: int) -> dict:
    per_client = receipts // clients
    expected = per_client * clients
    started = time.perf_counter()
    await asyncio.gather(*(pos_client(daemons[c % 2].raw_port, c, per_client, per_connection)
                           for c in range(clients)))
    during = [process_figures(d.process.pid) for d in daemons]
    while count_receipts(url) < expected and time.perf_counter() - started < 300:
        await asyncio.sleep(0.02)
    elapsed = time.perf_counter() - started
    await asyncio.sleep(1.5)  # the tailers' last catch-up
    merged: dict[float, float] = {}
    total = 0.0
    for daemon in daemons:
        buckets, count = await histogram(daemon.http_port, ANNOUNCE_HISTOGRAM)
        for bound, n in buckets.items():
            merged[bound] = merged.get(bound, 0) + n
        total += count
    announced = [(await stats(d.http_port))["receipts_total"] for d in daemons]
    return {"instances": 2, "clients": clients, "receipts_per_connection": per_connection,
            "receipts": expected, "elapsed_s": round(elapsed, 3),
            "receipts_per_s": round(expected / elapsed),
            "receipts_total_per_instance": announced,
            "tailer_announce_observed": int(total),
            "tailer_announce_p50_at_most_ms": quantile_bound(merged, total, 0.5) * 1000,
            "tailer_announce_p99_at_most_ms": quantile_bound(merged, total, 0.99) * 1000,
            "server_during": during}


def ingest(workdir: Path, server: str, per_connection: int, clients: int = 20,
           receipts: int = 10_000) -> dict:
    with fresh_database(server) as url:
        daemons = start_two(workdir, url, "--raw-listen=tcp:0:interface=127.0.0.1:backlog=4096")
        try:
            result = asyncio.run(_ingest(daemons, url, clients, receipts, per_connection))
        finally:
            for daemon in daemons:
                daemon.stop()
        stored = count_receipts(url)
    result["stored_in_database"] = stored
    result["lost"] = result["receipts"] - stored
    return result


def announce(workdir: Path, server: str, receipts: int = 200, rate: float = 20.0) -> dict:
    """The tailer's latency at a steady rate: printed on B, announced on A."""
    with fresh_database(server) as url:
        a, b = start_two(workdir, url)
        try:
            async def trickle() -> dict:
                for n in range(receipts):
                    started = time.perf_counter()
                    _, writer = await asyncio.open_connection("127.0.0.1", b.raw_port)
                    writer.write(b"\x1b@Steady %d\nTotal 1.00\n\x1dV\x00" % n)
                    await writer.drain()
                    writer.close()
                    await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
                await asyncio.sleep(2)
                buckets, count = await histogram(a.http_port, ANNOUNCE_HISTOGRAM)
                return {"receipts": receipts, "rate_per_s": rate,
                        "tailer_announce_observed": int(count),
                        "tailer_announce_buckets_ms": {
                            str(bound * 1000): n for bound, n in sorted(buckets.items())},
                        "tailer_announce_p50_at_most_ms": quantile_bound(buckets, count, 0.5)
                        * 1000,
                        "tailer_announce_p99_at_most_ms": quantile_bound(buckets, count, 0.99)
                        * 1000}

            return asyncio.run(trickle())
        finally:
            a.stop()
            b.stop()


def stream(workdir: Path, server: str, subscribers: int = 5000, printers: int = 5,
           receipts: int = 20, rate: float = 1.0) -> dict:
    """``subscribers`` on each of the two instances; POS clients print on the first."""
    with fresh_database(server) as url:
        daemons = start_two(workdir, url, *open_to(subscribers))
        try:
            expected = printers * receipts
            # One load-generator process per instance, so that its figures stay apart.
            fleet = Fleet([(d.http_port, subscribers, 0) for d in daemons], b"", expected)
            storm_started = fleet.start()
            fleet.ready()
            connect_s = time.time() - storm_started
            if not all(asyncio.run(stats(d.http_port)).get("sse_subscribers", 0) >= subscribers
                       for d in daemons):
                raise RuntimeError("an instance does not count all its subscribers")
            printed_at = time.perf_counter()

            async def print_all() -> None:
                await asyncio.gather(*(print_receipts(daemons[0].raw_port, receipts, rate)
                                       for _ in range(printers)))

            asyncio.run(print_all())
            during = [process_figures(d.process.pid) for d in daemons]
            results = [message[1:3] for message in fleet.done(timeout=180)]
            elapsed = time.perf_counter() - printed_at
            fleet.join()
        finally:
            for daemon in daemons:
                daemon.stop()
    delivered = [r[0] for r in results]
    return {"instances": 2, "subscribers_per_instance": subscribers, "pos_clients": printers,
            "receipts": expected, "connect_s": round(connect_s, 2),
            "deliveries_per_instance": delivered,
            "events_lost": expected * subscribers * 2 - sum(delivered),
            "delivery_latency_printing_instance": percentiles(results[0][1]),
            "delivery_latency_other_instance": percentiles(results[1][1]),
            "deliveries_per_s": round(sum(delivered) / elapsed), "server_during": during}

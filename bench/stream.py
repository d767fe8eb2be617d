"""
Stream scenario: N subscribers open ``/api/stream`` all at once, then P POS clients print, each
at ``rate`` receipts per second, for ``receipts`` receipts each.

Reports how long until every subscriber was streaming (the connect storm), the delivery latency
from the POS client's send to a subscriber's arrival (measured by one subscriber in
``subscribers.LATENCY_EVERY``; the rest only count), events lost, ``/api/recent`` latency during
the run (printerd only), the server's threads, RSS and CPU, and the CPU the load generator used.
Runs against printerd or, in the same invocation, against the bare SSE ceiling
(``bench.ceiling stream``).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any, Union

from bench.ceiling import Ceiling
from bench.common import percentiles, process_figures, sample_rest, slow_commits, stats
from bench.daemon import Daemon, as_operated
from bench.subscribers import SWEEP, Fleet

Target = Union[Daemon, Ceiling]
WORKERS = 2  # load-generator processes holding the subscribers


async def print_receipts(port: int, count: int, rate: float) -> None:
    """One POS client: ``count`` receipts, one per connection, at ``rate`` per second."""
    for n in range(count):
        started = time.perf_counter()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x1b@Bench receipt %d sent=%.6f\nTotal 1.00\n\x1dV\x00" % (n, time.time()))
        await writer.drain()
        writer.close()
        await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))


async def drive(target: Target, printers: int, receipts: int, rate: float,
                sample_recent: bool) -> dict:
    stop = asyncio.Event()
    rest_latencies: list[float] = []
    if sample_recent:
        rest = asyncio.create_task(sample_rest(target.http_port, "/api/recent?limit=50", stop,
                                               rest_latencies))
    started = time.perf_counter()
    await asyncio.gather(*(print_receipts(target.raw_port, receipts, rate)
                           for _ in range(printers)))
    stop.set()
    if sample_recent:
        await rest
    return {"print_s": time.perf_counter() - started, "rest": rest_latencies}


def open_to(subscribers: int) -> tuple[str, ...]:
    """
    printerd's options that let ``subscribers`` streams in at once, all from 127.0.0.1: the
    per-client and connection caps that guard a real LAN are lifted to the run's size.
    Connections past the HTTP share of the descriptors would evict the oldest streams: the
    machine's hard limit of 20,000 descriptors gives HTTP 8,750 by default.
    """
    return ("--http-listen=tcp:0:interface=127.0.0.1:backlog=4096",
            f"--http-max-connections={subscribers + 100}",
            f"--sse-max-subscribers={max(subscribers, 1)}",
            f"--sse-max-per-client={max(subscribers, 1)}")


def start_target(kind: str, workdir: Any, subscribers: int, *options: str) -> Target:
    if kind == "ceiling":
        return Ceiling("stream")
    return as_operated(workdir, *open_to(subscribers), "--api-rate=0", *options)


def run(workdir: Any, subscribers: int = 1000, printers: int = 20, receipts: int = 20,
        rate: float = 1.0, target: str = "printerd", headers: bytes = b"") -> dict:
    """One run against ``target`` ("printerd" or "ceiling"); see the module docstring."""
    server = start_target(target, workdir, subscribers)
    try:
        return measure(server, subscribers, printers, receipts, rate, headers,
                       sample_recent=target == "printerd")
    finally:
        server.stop()


def measure(server: Target, subscribers: int, printers: int, receipts: int, rate: float,
            headers: bytes = b"", sample_recent: bool = True, expected_replay: int = 0,
            sweep: float = SWEEP) -> dict:
    """
    Connect ``subscribers`` at once to a running server, print, and measure; see above.
    ``expected_replay``: events each subscriber gets replayed before the printing starts
    (resuming with ``headers`` such as Last-Event-ID).
    """
    idle = process_figures(server.process.pid)
    expected = printers * receipts + expected_replay
    shares = [subscribers // WORKERS + (i < subscribers % WORKERS) for i in range(WORKERS)]
    fleet = Fleet([(server.http_port, share, sum(shares[:i]))
                   for i, share in enumerate(shares) if share], headers, expected, sweep)
    storm_started = fleet.start()
    ready = fleet.ready()
    connect_s = max(message[1] for message in ready) - storm_started
    refused = Counter(line for message in ready for line in message[2])
    connected = process_figures(server.process.pid)
    seen = asyncio.run(stats(server.http_port)).get("sse_subscribers")
    cpu_before = time.process_time()
    printed_at = time.perf_counter()
    driven = asyncio.run(drive(server, printers, receipts, rate, sample_recent))
    during = process_figures(server.process.pid)
    done = fleet.done()
    elapsed = time.perf_counter() - printed_at
    generator_cpu = time.process_time() - cpu_before + sum(message[4] for message in done)
    fleet.join()
    delivered = sum(message[1] for message in done)
    completed = [message[5] for message in done]
    complete_s = max(completed) - storm_started if None not in completed else None
    latencies = [x for message in done for x in message[2]]
    # Which of the tail is the disk's: the bare ceiling stores nothing (printerd only).
    commits = asyncio.run(slow_commits(server.http_port)) if isinstance(server, Daemon) else None
    return {
        "subscribers": subscribers, "subscribers_seen_by_server": seen,
        "refused": dict(refused),
        "latency_subscribers": sum(message[3] for message in done),
        "pos_clients": printers, "receipts": printers * receipts,
        "receipts_per_s": round(printers * receipts / driven["print_s"], 1),
        "connect_s": round(connect_s, 2),
        "all_events_s": round(complete_s, 2) if complete_s is not None else None,
        "delivery_latency": percentiles(latencies),
        "deliveries": delivered, "deliveries_per_s": round(delivered / elapsed),
        "events_lost": expected * (subscribers - sum(refused.values())) - delivered,
        "rest_recent_latency": percentiles(driven["rest"]) if sample_recent else None,
        "slow_commits": commits,
        "server_idle": idle, "server_connected": connected, "server_during": during,
        "server_cpu_s": round(during["cpu_s"] - connected["cpu_s"], 2),
        "generator_cpu_s": round(generator_cpu, 2),
        "generator_cores": round(generator_cpu / elapsed, 2),
        "elapsed_s": round(elapsed, 2),
    }

"""
Stream scenario: N subscribers hold /api/stream while P POS clients print.

Each receipt carries its send time; every subscriber records, per event, the delay from send to
arrival.  Subscribers are spread over worker processes (asyncio protocols, so the load generator
is not what is measured).  Reports delivery latency percentiles, deliveries per second, events
lost (expected deliveries that never arrived), /api/recent latency during the run, and the
server's threads and RSS idle and during the run.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import re
import time

from bench.common import http_get, percentiles, process_figures, raise_fd_limit, sample_rest
from bench.daemon import Daemon

_SENT = re.compile(rb"sent=(\d+\.\d+)")


class SubscriberProtocol(asyncio.Protocol):
    def __init__(self, ready: asyncio.Future) -> None:
        self.ready = ready
        self.buffer = b""
        self.received = 0
        self.latencies: list[float] = []

    def connection_made(self, transport) -> None:
        transport.write(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.ready.done() and b"retry: " in data:
            self.ready.set_result(None)
        self.buffer += data
        *blocks, self.buffer = self.buffer.split(b"\n\n")
        for block in blocks:
            match = _SENT.search(block)
            if match:
                self.received += 1
                self.latencies.append(now - float(match.group(1)))


async def subscribe_worker(port: int, count: int, expected: int, finished, out) -> None:
    loop = asyncio.get_running_loop()
    clients = []
    for batch in range(0, count, 250):
        readies = []
        for _ in range(min(250, count - batch)):
            ready = loop.create_future()
            readies.append(ready)
            _, protocol = await loop.create_connection(lambda ready=ready: SubscriberProtocol(ready),
                                                       "127.0.0.1", port)
            clients.append(protocol)
        await asyncio.gather(*readies)
    deadline = None
    while sum(c.received for c in clients) < expected * count:
        if finished.is_set():
            deadline = deadline or time.monotonic() + 60
            if time.monotonic() > deadline:
                break
        await asyncio.sleep(0.05)
    out.put((sum(c.received for c in clients), [x for c in clients for x in c.latencies]))


def _worker(port, count, expected, finished, out) -> None:
    raise_fd_limit()
    asyncio.run(subscribe_worker(port, count, expected, finished, out))


async def print_receipts(port: int, count: int, rate: float) -> None:
    """One POS client: ``count`` receipts, one per connection, at ``rate`` per second."""
    for n in range(count):
        started = time.perf_counter()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x1b@Bench receipt %d sent=%.6f\nTotal 1.00\n\x1dV\x00" % (n, time.time()))
        await writer.drain()
        writer.close()
        await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))


async def drive(daemon: Daemon, printers: int, receipts: int, rate: float) -> dict:
    stop = asyncio.Event()
    rest_latencies: list[float] = []
    rest = asyncio.create_task(sample_rest(daemon.http_port, "/api/recent?limit=50", stop,
                                           rest_latencies))
    started = time.perf_counter()
    await asyncio.gather(*(print_receipts(daemon.raw_port, receipts, rate)
                           for _ in range(printers)))
    during = process_figures(daemon.process.pid)
    code, stats = await http_get(daemon.http_port, "/api/stats")
    stop.set()
    await rest
    return {"print_s": time.perf_counter() - started, "during": during,
            "rest": rest_latencies}


def run(workdir, subscribers: int = 1000, printers: int = 5, receipts: int = 20,
        rate: float = 2.0, workers: int = 2) -> dict:
    daemon = Daemon(workdir, "--http-listen=tcp:0:interface=127.0.0.1:backlog=4096", "--api-rate=0",
                    f"--sse-max-subscribers={max(subscribers, 1)}")
    try:
        idle = process_figures(daemon.process.pid)
        expected = printers * receipts
        finished = multiprocessing.Event()
        out: multiprocessing.Queue = multiprocessing.Queue()
        shares = [subscribers // workers + (i < subscribers % workers) for i in range(workers)]
        procs = [multiprocessing.Process(target=_worker, args=(
            daemon.http_port, share, expected, finished, out))
            for share in shares]
        connect_started = time.perf_counter()
        for proc in procs:
            proc.start()
        deadline = time.perf_counter() + 300
        while time.perf_counter() < deadline:
            if asyncio.run(_subscribers(daemon)) >= subscribers:
                break
            time.sleep(0.2)
        connect_s = time.perf_counter() - connect_started
        printed_at = time.perf_counter()
        driven = asyncio.run(drive(daemon, printers, receipts, rate))
        finished.set()
        results = [out.get(timeout=120) for _ in procs]
        elapsed = time.perf_counter() - printed_at
        for proc in procs:
            proc.join(10)
        delivered = sum(r[0] for r in results)
        latencies = [x for r in results for x in r[1]]
        return {
            "subscribers": subscribers, "pos_clients": printers, "receipts": expected,
            "connect_s": round(connect_s, 2),
            "delivery_latency": percentiles(latencies),
            "deliveries": delivered, "deliveries_per_s": round(delivered / elapsed),
            "events_lost": expected * subscribers - delivered,
            "rest_recent_latency": percentiles(driven["rest"]),
            "server_idle": idle, "server_during": driven["during"],
        }
    finally:
        daemon.stop()
        import os
        if os.environ.get("BENCH_KEEP_LOG"):
            open("/tmp/bench-daemon.log", "w").write(daemon.log())


async def _subscribers(daemon: Daemon) -> int:
    import json

    code, body = await http_get(daemon.http_port, "/api/stats")
    return json.loads(body)["sse_subscribers"] if code == 200 else 0

"""
REST scenario: 50 concurrent keep-alive clients on /api/recent and on /api/receipts; requests per
second and latency percentiles, over a database of a few thousand receipts.

The ceiling (``bench.ceiling``) answers every request with a canned body as long as printerd's
``/api/receipts?limit=50`` answer: what Twisted alone does with the same requests.  The clients are
asyncio protocols that send a request and wait for the end of its answer, nothing more, so the
load generator stays a small share of the CPU; its CPU is reported.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Optional, Union

from bench.ceiling import Ceiling
from bench.common import http_get, percentiles, process_figures
from bench.daemon import Daemon, as_operated
from bench.ingest import pos_client

PATHS = (("recent", "/api/recent?limit=50"),
         ("receipts", "/api/receipts?limit=50"),
         ("receipts_search", "/api/receipts?limit=20&q=receipt%2017"))


class KeepAliveClient(asyncio.Protocol):
    """Sends one request at a time on its connection and times each answer."""

    def __init__(self, request: bytes, until: float, latencies: list[float],
                 done: asyncio.Future) -> None:
        self.request = request
        self.until = until
        self.latencies = latencies
        self.done = done
        self.errors = 0
        self.buffer = b""
        self.length: Optional[int] = None  # body bytes of a Content-Length answer
        self.body_at = 0
        self.started = 0.0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        self.send()

    def send(self) -> None:
        self.buffer = b""
        self.length = None
        self.body_at = 0
        self.started = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.body_at:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.body_at = end + 4
            head = self.buffer[:end].lower()
            if not head.startswith(b"http/1.1 200"):
                self.errors += 1
            if b"content-length: " in head:
                self.length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
        if self.length is not None:
            complete = len(self.buffer) - self.body_at >= self.length
        else:  # chunked: the answer ends with the last, empty chunk
            complete = self.buffer.endswith(b"\r\n0\r\n\r\n")
        if not complete:
            return
        self.latencies.append(time.perf_counter() - self.started)
        if time.perf_counter() < self.until:
            self.send()
        else:
            self.transport.close()

    def connection_lost(self, exc: Optional[Exception]) -> None:
        if not self.done.done():
            self.done.set_result(self.errors)


async def load(port: int, path: str, concurrency: int, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    until = time.perf_counter() + seconds
    dones = []
    cpu_before = time.process_time()
    for _ in range(concurrency):
        done = loop.create_future()
        dones.append(done)
        await loop.create_connection(
            lambda done=done: KeepAliveClient(request, until, latencies, done),
            "127.0.0.1", port)
    errors = await asyncio.gather(*dones)
    generator_cpu = time.process_time() - cpu_before
    return {"requests_per_s": round(len(latencies) / seconds), "errors": sum(errors),
            **percentiles(latencies), "generator_cpu_s": round(generator_cpu, 2),
            "generator_cores": round(generator_cpu / seconds, 2)}


async def scenario(daemon: Daemon, concurrency: int, seconds: float) -> dict:
    await asyncio.gather(*(pos_client(daemon.raw_port, c, 200, 10) for c in range(10)))
    await asyncio.sleep(1)
    _, page = await http_get(daemon.http_port, "/api/receipts?limit=50")
    result: dict[str, Any] = {"concurrency": concurrency, "seconds": seconds,
                              "receipts_page_bytes": len(page)}
    for name, path in PATHS:
        before = process_figures(daemon.process.pid)
        result[name] = await load(daemon.http_port, path, concurrency, seconds)
        after = process_figures(daemon.process.pid)
        result[name]["server_cpu_s"] = round(after["cpu_s"] - before["cpu_s"], 2)
    result["server"] = process_figures(daemon.process.pid)
    return result


def run(workdir: Any, concurrency: int = 50, seconds: float = 10.0,
        target: str = "printerd", body_bytes: int = 30_000) -> dict:
    """
    One run against ``target``: printerd (every path in ``PATHS``) or the ceiling (one canned
    body of ``body_bytes``, as "receipts").
    """
    server: Union[Daemon, Ceiling]
    if target == "ceiling":
        server = Ceiling("ingest", body_bytes=body_bytes, backlog=1024)
        try:
            return {"concurrency": concurrency, "seconds": seconds, "body_bytes": body_bytes,
                    "receipts": asyncio.run(load(server.http_port, "/api/receipts?limit=50",
                                                 concurrency, seconds))}
        finally:
            server.stop()
    server = as_operated(workdir, "--http-listen=tcp:0:interface=127.0.0.1:backlog=1024",
                    "--api-rate=0")
    try:
        return asyncio.run(scenario(server, concurrency, seconds))
    finally:
        server.stop()

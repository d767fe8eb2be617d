"""
REST scenario: 50 concurrent keep-alive clients on /api/recent and on /api/receipts;
requests per second and latency percentiles, over a database of a few thousand receipts.
"""

from __future__ import annotations

import asyncio
import time

from bench.common import percentiles, process_figures
from bench.daemon import Daemon
from bench.ingest import pos_client


async def read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    code = int(head.split(b" ", 2)[1])
    headers = head.lower()
    if b"transfer-encoding: chunked" in headers:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                return code
    length = int(headers.split(b"content-length: ")[1].split(b"\r\n")[0])
    await reader.readexactly(length)
    return code


async def client(port: int, path: str, until: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    while time.perf_counter() < until:
        started = time.perf_counter()
        writer.write(request)
        if await read_response(reader) != 200:
            errors += 1
        latencies.append(time.perf_counter() - started)
    writer.close()
    return errors


async def scenario(daemon: Daemon, concurrency: int, seconds: float) -> dict:
    await asyncio.gather(*(pos_client(daemon.raw_port, c, 200, 10) for c in range(10)))
    await asyncio.sleep(1)
    result = {"concurrency": concurrency, "seconds": seconds}
    for name, path in (("recent", "/api/recent?limit=50"),
                       ("receipts", "/api/receipts?limit=50"),
                       ("receipts_search", "/api/receipts?limit=20&q=receipt%2017")):
        latencies: list[float] = []
        until = time.perf_counter() + seconds
        errors = await asyncio.gather(*(client(daemon.http_port, path, until, latencies)
                                        for _ in range(concurrency)))
        result[name] = {"requests_per_s": round(len(latencies) / seconds),
                        "errors": sum(errors), **percentiles(latencies)}
    result["server"] = process_figures(daemon.process.pid)
    return result


def run(workdir, concurrency: int = 50, seconds: float = 10.0) -> dict:
    daemon = Daemon(workdir, "--http-listen=tcp:0:interface=127.0.0.1:backlog=1024", "--api-rate=0")
    try:
        return asyncio.run(scenario(daemon, concurrency, seconds))
    finally:
        daemon.stop()

"""Helpers shared by the benchmark scenarios: process figures, percentiles, tiny async HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import time


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def process_figures(pid: int) -> dict[str, float]:
    """OS threads, RSS and CPU seconds used so far of a process, from /proc."""
    threads = len(os.listdir(f"/proc/{pid}/task"))
    with open(f"/proc/{pid}/statm") as f:
        rss = int(f.read().split()[1]) * resource.getpagesize()
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return {"threads": threads, "rss_bytes": rss, "cpu_s": round(cpu, 2)}


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50 / p99 / max in milliseconds."""
    if not samples:
        return {"p50_ms": float("nan"), "p99_ms": float("nan"), "max_ms": float("nan")}
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {"p50_ms": round(statistics.median(ordered) * 1000, 2),
            "p99_ms": round(p99 * 1000, 2), "max_ms": round(ordered[-1] * 1000, 2),
            "samples": len(ordered)}


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    """One GET on a new connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    # HTTP/1.0: the body arrives plain (no chunked framing) and the server closes after it.
    writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


async def stats(port: int) -> dict:
    """``GET /api/stats`` of printerd (or a ceiling) on ``port``; {} on any other answer than 200."""
    code, body = await http_get(port, "/api/stats")
    return json.loads(body) if code == 200 else {}


async def histogram(port: int, name: str) -> tuple[dict[float, float], float]:
    """A histogram of printerd's ``/metrics``: its cumulative buckets (seconds -> count) and
    its count, summed over its label sets; empty from a server without it."""
    code, body = await http_get(port, "/metrics")
    buckets: dict[float, float] = {}
    count = 0.0
    for line in body.decode().splitlines() if code == 200 else ():
        if line.startswith(f"{name}_bucket"):
            bound = float(line.split('le="', 1)[1].split('"', 1)[0])  # "+Inf" reads as inf
            buckets[bound] = buckets.get(bound, 0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith(f"{name}_count"):
            count += float(line.rsplit(" ", 1)[1])
    return buckets, count


async def slow_commits(port: int, over: tuple[float, ...] = (0.025, 0.05, 0.1)) -> dict:
    """
    printerd's group commits so far, and how many took longer than each of ``over`` seconds
    from the start of the commit to its end on the reactor (the commit latency histogram's
    buckets; ``over`` must be bucket bounds).  {} from a server without it.
    """
    buckets, count = await histogram(port, "printerd_db_commit_seconds")
    if not buckets:
        return {}
    return {"commits": int(count),
            **{f"over_{round(bound * 1000)}ms": int(count - buckets[bound]) for bound in over}}


async def sample_rest(port: int, path: str, stop: asyncio.Event, latencies: list[float]) -> None:
    """Request ``path`` back to back until stop is set, recording each latency."""
    while not stop.is_set():
        started = time.perf_counter()
        code, _ = await http_get(port, path)
        if code == 200:
            latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0.01)


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 answer (Content-Length or chunked) off ``reader``; its status code."""
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

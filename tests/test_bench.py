"""
The benchmark's own parts: the bare-Twisted ceilings count and fan out what they should, and the
load generator's subscribers count every event however the stream is split into reads.
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request

from hypothesis import given, strategies as st

from bench.ceiling import Ceiling, Counts, RawCounter
from bench.subscribers import Subscription
from bench.table import Table


def stream_bytes(events: int) -> bytes:
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 3000\n\n"
    body = b"".join(b"id: %d\nevent: receipt\ndata: {\"text\":\"sent=%d.5 x\"}\n\n" % (n, 100 + n)
                    for n in range(events))
    return head + b": keepalive\n\n" + body


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


@given(st.integers(0, 20), st.lists(st.integers(0, 10_000), max_size=30), st.booleans())
def test_a_subscriber_counts_every_event_however_the_reads_split_it(events, cuts, latency):
    sub = Subscription(socket.socket(), measures_latency=latency)
    try:
        for piece in split(stream_bytes(events), cuts):
            sub.take(piece, now=200.0)
    finally:
        sub.sock.close()
    assert sub.ready
    assert sub.events == events
    if latency:
        assert sub.latencies == [200.0 - (100 + n + 0.5) for n in range(events)]
    else:
        assert sub.latencies == []


class Transport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


@given(st.integers(0, 10), st.lists(st.integers(0, 10_000), max_size=30))
def test_the_stream_ceiling_sends_one_event_per_cut_to_every_subscriber(receipts, cuts):
    counts = Counts(fan_out=True, body_bytes=100)
    subscribers = [RawCounter(counts) for _ in range(3)]  # any protocol with a transport
    for subscriber in subscribers:
        subscriber.transport = Transport()  # type: ignore[assignment]
        counts.subscribers.append(subscriber)
    job = b"".join(b"\x1b@receipt %d\n\x1dV\x00" % n for n in range(receipts))
    raw = RawCounter(counts)
    for piece in split(job, cuts):
        raw.dataReceived(piece)
    assert counts.receipts == receipts
    for subscriber in subscribers:
        written = b"".join(subscriber.transport.written)  # type: ignore[attr-defined]
        assert written.count(b"event: receipt") == receipts
        assert all(b"receipt %d\\n" % n in written for n in range(receipts))


def test_the_ingest_ceiling_counts_the_cuts_it_was_sent():
    ceiling = Ceiling("ingest", body_bytes=500)
    try:
        for n in range(5):
            with socket.create_connection(("127.0.0.1", ceiling.raw_port)) as sock:
                sock.sendall(b"\x1b@job %d\n\x1dVA\x03" % n * 2)
        url = f"http://127.0.0.1:{ceiling.http_port}"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with urllib.request.urlopen(url + "/api/stats", timeout=5) as response:
                if json.loads(response.read())["receipts_total"] == 10:
                    break
            time.sleep(0.02)
        with urllib.request.urlopen(url + "/api/stats", timeout=5) as response:
            assert json.loads(response.read()) == {"receipts_total": 10, "sse_subscribers": 0}
        with urllib.request.urlopen(url + "/api/receipts?limit=50", timeout=5) as response:
            assert len(response.read()) == 500
    finally:
        assert ceiling.stop() is not None


def test_the_table_says_a_missed_goal_is_missed():
    table = Table()
    server = {"threads": 4, "rss_bytes": 50 * 1024 * 1024, "cpu_s": 1.0}
    result = {"receipts_per_s": 2500, "clients": 20, "lost": 0, "receipts": 10_000,
              "generator_cores": 0.3, "server_idle": server, "server_during": server}
    table.ingest(1, result, {**result, "receipts_per_s": 5000})
    text = table.markdown("today")
    row = next(line for line in text.splitlines() if line.startswith("| ingest"))
    assert "| 2,500 | 5,000 | 50% | >= 3,000/s and >= 30% | **no** |" in row
    assert "| RSS idle (smallest of the scenarios' daemons) | 50 MB |" in text

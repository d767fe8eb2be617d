"""
The HTTP attacks of the README's security section, each against a fresh daemon on loopback,
with what was sent and what the daemon did: ``python -m bench.http_attacks [attack ...]``.

Bounded in count and time (the longest runs about 20 s); tests/test_http_attacks.py asserts
the same outcomes, this measures them.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable

from bench.common import process_figures, raise_fd_limit
from bench.daemon import TWISTD, Daemon

TOKEN = "bench-token"
MB = 1024 * 1024


def status_of(data: bytes) -> int:
    try:
        return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.") else 0
    except (IndexError, ValueError):
        return 0


def receive(sock: socket.socket, until: bytes = b"") -> bytes:
    """What the daemon sends until ``until`` has arrived (or, without it, until it closes);
    a reset or timeout ends the read with what came so far."""
    data = b""
    try:
        while not until or until not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    return data


def timed_health(daemon: Daemon) -> float:
    started = time.monotonic()
    with urllib.request.urlopen(daemon.url("/api/health"), timeout=30) as response:
        response.read()
    return time.monotonic() - started


def rss_mb(daemon: Daemon) -> float:
    return round(process_figures(daemon.process.pid)["rss_bytes"] / MB, 1)


def slowloris(workdir: Path) -> dict[str, Any]:
    """100 connections each send a request line, then one header byte a second."""
    daemon = Daemon(workdir)
    try:
        rss_before = rss_mb(daemon)
        sockets, opened = [], time.monotonic()
        for _ in range(100):
            sock = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=30)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            sockets.append(sock)
        cut_after: dict[int, float] = {}
        answers: dict[int, int] = {}
        health, rss_during = [], 0.0
        while len(cut_after) < len(sockets) and time.monotonic() - opened < 20:
            for n, sock in enumerate(sockets):
                if n in cut_after:
                    continue
                try:
                    data = sock.recv(4096)
                    cut_after[n], answers[n] = time.monotonic() - opened, status_of(data)
                except BlockingIOError:
                    try:
                        sock.send(b"X")
                    except OSError:
                        pass
                except OSError:
                    cut_after[n], answers[n] = time.monotonic() - opened, 0
            health.append(timed_health(daemon))
            rss_during = max(rss_during, rss_mb(daemon))
            time.sleep(1)
        for sock in sockets:
            sock.close()
        stats = daemon.get("/api/stats")[1]
        return {"sent": "100 connections, a request line, then 1 header byte/s each",
                "answered_408": sum(1 for s in answers.values() if s == 408),
                "cut_after_s": round(statistics.median(cut_after.values()), 1)
                if cut_after else None,
                "health_during_ms": round(max(health) * 1000, 1),
                "http_requests_timed_out_total": stats.get("http_requests_timed_out_total"),
                "rss_mb": {"before": rss_before, "during": rss_during}}
    finally:
        daemon.stop()


def descriptors(workdir: Path) -> dict[str, Any]:
    """Under a 1,024 descriptor limit, 1,020 slow connections; then health and a raw job."""
    daemon = Daemon(workdir, wrapper=("prlimit", "--nofile=1024:1024"))
    slow = []
    try:
        rss_before = rss_mb(daemon)
        for _ in range(1020):
            sock = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=30)
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            slow.append(sock)
        time.sleep(1)
        health = [timed_health(daemon) for _ in range(5)]
        started = time.monotonic()
        job = socket.socket()
        job.bind(("127.0.0.2", 0))
        job.connect(("127.0.0.1", daemon.raw_port))
        job.sendall(b"\x1b@printed during the attack\n\x1dV\x00")
        job.close()
        daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])
        stored_after = time.monotonic() - started
        stats = daemon.get("/api/stats")[1]
        return {"sent": "prlimit --nofile=1024:1024; 1,020 connections with an unfinished head",
                "health_ms": {"max": round(max(health) * 1000, 1)},
                "raw_job_from_127.0.0.2_stored_ms": round(stored_after * 1000, 1),
                "http_connections": stats["http_connections"],
                "http_connections_evicted_total": stats["http_connections_evicted_total"],
                "rss_mb": {"before": rss_before, "during": rss_mb(daemon)}}
    finally:
        for sock in slow:
            sock.close()
        daemon.stop()


def keep_alive(port: int, count: int, headers: dict[str, str]) -> list[int]:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    statuses = []
    for _ in range(count):
        connection.request("GET", "/api/receipts", headers=headers)
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
    connection.close()
    return statuses


def lockout(workdir: Path) -> dict[str, Any]:
    """260 requests without a token from the owner's address, then the owner's own."""
    daemon = Daemon(workdir, f"--api-tokens={TOKEN}")
    try:
        strangers = keep_alive(daemon.http_port, 260, {})
        owner = keep_alive(daemon.http_port, 5, {"Authorization": f"Bearer {TOKEN}"})
        return {"sent": "260 GET /api/receipts without a token, then 5 with it (defaults: "
                        "50/s, burst 200)",
                "strangers": {str(code): strangers.count(code) for code in sorted(set(strangers))},
                "owner": {str(code): owner.count(code) for code in sorted(set(owner))}}
    finally:
        daemon.stop()


def streams(workdir: Path) -> dict[str, Any]:
    """1,000 EventSource requests at once through one address."""
    daemon = Daemon(workdir, f"--api-tokens={TOKEN}")
    sockets = []
    try:
        rss_before = rss_mb(daemon)
        request = (b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: 0\r\n"
                   b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n")
        started = time.monotonic()
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=30)
            sock.sendall(request)
            sockets.append(sock)
        statuses = [status_of(receive(sock, until=b"\r\n\r\n")) for sock in sockets]
        elapsed = time.monotonic() - started
        return {"sent": "1,000 GET /api/stream (Last-Event-ID: 0) from 127.0.0.1 at once",
                "answered": {str(code): statuses.count(code) for code in sorted(set(statuses))},
                "all_answered_s": round(elapsed, 2),
                "rss_mb": {"before": rss_before, "with_1000_streams": rss_mb(daemon)}}
    finally:
        for sock in sockets:
            sock.close()
        daemon.stop()


def exchange(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass
        return receive(sock)


def edges(workdir: Path) -> dict[str, Any]:
    """Rebinding, nested JSON, oversized heads, odd paths: what each gets back."""
    daemon = Daemon(workdir, f"--api-tokens={TOKEN}")
    auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"

    def request(first_line: bytes, *headers: bytes, body: bytes = b"") -> str:
        length = b"Content-Length: %d\r\n" % len(body) if body else b""
        data = exchange(daemon.http_port, first_line + b"\r\nConnection: close\r\n"
                        + b"".join(headers) + length + b"\r\n" + body)
        head = data.partition(b"\r\n\r\n")[0]
        json_ok = b"application/json" in head
        return f"{status_of(data)}{' json' if json_ok else ''}"

    host = b"Host: 127.0.0.1\r\n"
    try:
        found = {
            "Host: evil.example (DNS rebinding)": request(
                b"GET /api/receipts HTTP/1.1", b"Host: evil.example\r\n", auth),
            "POST /api/session, 4,000 nested [": request(
                b"POST /api/session HTTP/1.1", host, body=b"[" * 4000),
            "PUT printer state, 4,000 nested [": request(
                b"PUT /api/printers/default/state HTTP/1.1", host, auth, body=b"[" * 4000),
            "a 20,000-byte header": request(b"GET /api/health HTTP/1.1", host,
                                             b"X-Big: " + b"a" * 20_000 + b"\r\n"),
            "a 20,000-byte request line": request(
                b"GET /api/receipts?q=" + b"a" * 20_000 + b" HTTP/1.1", host),
            "/api//receipts": request(b"GET /api//receipts HTTP/1.1", host, auth),
            "/api/receipts/%ff": request(b"GET /api/receipts/%ff HTTP/1.1", host, auth),
            "GARBAGE": request(b"GARBAGE", host),
        }
        return {"answers": found, "tracebacks_in_log": daemon.log().count("Traceback")}
    finally:
        daemon.stop()


def bound_address(workdir: Path) -> dict[str, Any]:
    """The safe default against an endpoint string with two interface= (Twisted binds the last)."""
    started = time.monotonic()
    result = subprocess.run(
        [TWISTD, "--nodaemon", "--pidfile=", "printerd", "--raw-listen=tcp:0:interface=127.0.0.1",
         "--http-listen=tcp:0:interface=127.0.0.1:interface=0.0.0.0"],
        cwd=workdir, capture_output=True, text=True, timeout=60)
    return {"sent": "--http-listen=tcp:0:interface=127.0.0.1:interface=0.0.0.0, no token",
            "exit_code": result.returncode, "stderr": result.stderr.strip(),
            "exited_after_s": round(time.monotonic() - started, 1)}


ATTACKS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "slowloris": slowloris, "descriptors": descriptors, "lockout": lockout, "streams": streams,
    "edges": edges, "bound_address": bound_address,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.http_attacks")
    parser.add_argument("attacks", nargs="*", help=f"some of: {' '.join(ATTACKS)} (default: all)")
    args = parser.parse_args()
    unknown = set(args.attacks) - set(ATTACKS)
    if unknown:
        parser.error(f"no such attack: {', '.join(sorted(unknown))}")
    raise_fd_limit()
    for name in args.attacks or ATTACKS:
        with tempfile.TemporaryDirectory() as workdir:
            print(json.dumps({name: ATTACKS[name](Path(workdir))}, indent=1), flush=True)


if __name__ == "__main__":
    main()

"""Abuse on the raw port: random and mutated jobs, idle connection hoards, floods."""

from __future__ import annotations

import random
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.daemon import Daemon
from support import sample_files

pytestmark = pytest.mark.e2e


def jobs(count: int, seed: int = 42):
    rng = random.Random(seed)
    samples = [path.read_bytes() for path in sample_files()]
    for n in range(count):
        kind = n % 3
        if kind == 0:
            yield bytes(rng.getrandbits(8) for _ in range(rng.randrange(1, 400)))
        else:
            job = bytearray(rng.choice(samples)[:rng.randrange(1, 3000)])
            for _ in range(rng.randrange(1, 20)):  # flip bytes, e.g. into huge length fields
                job[rng.randrange(len(job))] = rng.getrandbits(8)
            yield bytes(job)


def send(port: int, data: bytes) -> None:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(data)
    except OSError:
        pass  # the daemon may hang up on a job it cut off; it must keep serving others


def test_ten_thousand_random_and_mutated_jobs_leave_the_daemon_serving(tmp_path):
    daemon = Daemon(tmp_path, "--max-connections=100", "--idle-timeout=5", "--api-rate=0")
    try:
        with ThreadPoolExecutor(max_workers=32) as pool:
            list(pool.map(lambda job: send(daemon.raw_port, job), jobs(10_000)))
        stats = daemon.wait_for(lambda: (lambda s: s if s["connections_total"] >= 10_000
                                         and s["connections_active"] == 0 else None)(
            daemon.get("/api/stats")[1]), timeout=60)
        assert stats["receipts_total"] > 0  # the parseable ones were stored
        send(daemon.raw_port, b"\x1b@after the storm\n\x1dV\x00")
        found = daemon.wait_for(lambda: daemon.get("/api/receipts?q=after%20the%20storm")[1][
            "receipts"])
        assert found[0]["text"] == "after the storm"
        assert daemon.get("/api/health")[0] == 200
        assert "Traceback" not in daemon.log()
    finally:
        daemon.stop()


def test_a_thousand_idle_connections_do_not_stop_real_jobs(tmp_path):
    daemon = Daemon(tmp_path, "--max-connections=1100", "--idle-timeout=5", "--api-rate=0")
    idle = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", daemon.raw_port), timeout=10))
        daemon.wait_for(lambda: daemon.get("/api/stats")[1]["connections_active"] >= 1000)
        for n in range(20):
            send(daemon.raw_port, b"real job %d\n\x1dV\x00" % n)
        daemon.wait_for(lambda: daemon.get("/api/stats")[1]["receipts_total"] == 20)
        # The idle ones are ended by the idle timeout, and printed nothing.
        stats = daemon.wait_for(lambda: (lambda s: s if s["connections_active"] == 0 else None)(
            daemon.get("/api/stats")[1]), timeout=30)
        assert stats["receipts_total"] == 20
    finally:
        for sock in idle:
            sock.close()
        daemon.stop()


def test_a_flood_over_the_limit_is_stored_in_full(tmp_path):
    daemon = Daemon(tmp_path, "--max-connections=5", "--api-rate=0")
    try:
        with ThreadPoolExecutor(max_workers=100) as pool:
            list(pool.map(lambda n: send(daemon.raw_port, b"flood %d\n\x1dV\x00" % n),
                          range(1000)))
        stats = daemon.wait_for(lambda: (lambda s: s if s["receipts_total"] == 1000 else None)(
            daemon.get("/api/stats")[1]), timeout=60)
        assert stats["connections_total"] == 1000
    finally:
        daemon.stop()


def test_a_silent_http_client_is_disconnected_after_http_timeout(tmp_path):
    daemon = Daemon(tmp_path, "--http-timeout=1")
    try:
        with socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10) as sock:
            sock.sendall(b"GET /api/health HTTP/1.1\r\nHost: x\r\n")  # ...and never finishes
            started = time.monotonic()
            assert sock.recv(100) == b""  # closed by the server
            assert 0.5 < time.monotonic() - started < 8
        assert daemon.get("/api/health")[0] == 200
    finally:
        daemon.stop()


def open_file_limit(pid: int) -> tuple[int, int]:
    """The soft and hard RLIMIT_NOFILE of a running process."""
    for line in open(f"/proc/{pid}/limits"):
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError("no open file limit")


def test_the_daemon_raises_its_soft_descriptor_limit_to_the_hard_one(tmp_path):
    daemon = Daemon(tmp_path, wrapper=("prlimit", "--nofile=512:2048"))
    try:
        assert open_file_limit(daemon.process.pid) == (2048, 2048)
        assert "open file limit raised from 512 to 2048" in daemon.log()
    finally:
        daemon.stop()

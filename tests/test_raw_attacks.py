"""
Attacks on the raw port, each reproduced against the real daemon (loopback only, bounded in
count and time): hosts hoarding slots, clients that never read their replies, bursts, hoards
of parked connections under a small descriptor limit, replies that ran ahead of the commit.

127.0.0.1, 127.0.0.2 and 127.0.0.3 are three hosts to the daemon (all loopback on Linux).
"""

from __future__ import annotations

import errno
import resource
import selectors
import socket
import threading
import time
import urllib.parse

import pytest

from bench.common import process_figures
from bench.daemon import Daemon

pytestmark = pytest.mark.e2e

ATTACKER, PRINTING_HOST, POS_HOST = "127.0.0.1", "127.0.0.2", "127.0.0.3"
RESET = b"\x1b@"  # ESC @: prints nothing
DLE_EOT_1 = b"\x10\x04\x01"
GS_I_65 = b"\x1dI\x41"  # firmware version: 3 bytes in, 15 out


def connect_from(host: str, port: int, timeout: float = 10) -> socket.socket:
    sock = socket.socket()
    sock.settimeout(timeout)
    sock.bind((host, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def connect_without_waiting(host: str, port: int) -> socket.socket:
    """Start a connection and return at once (the handshake may still be under way)."""
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((host, 0))
    code = sock.connect_ex(("127.0.0.1", port))
    assert code in (0, errno.EINPROGRESS), errno.errorcode.get(code)
    return sock


def stats(daemon: Daemon) -> dict:
    return daemon.get("/api/stats")[1]


def found(daemon: Daemon, text: str) -> list:
    return daemon.get("/api/receipts?q=" + urllib.parse.quote(text))[1]["receipts"]


def seconds_to_store(daemon: Daemon, host: str, text: str, timeout: float = 10) -> float:
    """Print one receipt from ``host``; seconds until the API finds it stored."""
    started = time.monotonic()
    with connect_from(host, daemon.raw_port, timeout) as sock:
        sock.sendall(b"\x1b@" + text.encode() + b"\n\x1dV\x00")
    daemon.wait_for(lambda: found(daemon, text), timeout=timeout)
    return time.monotonic() - started


def settle(pid: int, quiet: float = 2, timeout: float = 120) -> None:
    """Wait until the process has used under 5% of a CPU for ``quiet`` seconds."""
    deadline = time.monotonic() + timeout
    cpu = process_figures(pid)["cpu_s"]
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = process_figures(pid)["cpu_s"]
        if now - cpu < 0.05 * quiet:
            return
        cpu = now
    raise AssertionError(f"still busy after {timeout} s")


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def use_every_descriptor_allowed() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Trickler(threading.Thread):
    """Holds connections from one host, sending ESC @ on each every ``interval`` seconds."""

    def __init__(self, socks: list[socket.socket], interval: float) -> None:
        super().__init__(daemon=True)
        self.socks, self.interval = socks, interval
        self.stop = threading.Event()
        self.failed_sends = 0

    def run(self) -> None:
        while True:
            for sock in self.socks:
                try:
                    sock.sendall(RESET)
                except OSError:
                    self.failed_sends += 1  # ended by the daemon: that is allowed
            if self.stop.wait(self.interval):
                return


def test_fifty_trickling_connections_cannot_keep_another_host_from_printing(tmp_path):
    """Issue 13.1, with the default settings (50 slots, idle timeout 30 s): one host holds 50
    connections sending ESC @ every 10 s; jobs from another host are stored within 2 s each,
    and a POS polling DLE EOT every 2 s on one open connection gets every reply."""
    use_every_descriptor_allowed()
    daemon = Daemon(tmp_path, "--api-rate=0")
    hoard = [connect_from(ATTACKER, daemon.raw_port) for _ in range(50)]
    trickler = Trickler(hoard, interval=10)
    trickler.start()
    pos = None
    try:
        daemon.wait_for(lambda: stats(daemon)["connections_active"] == 50)
        time.sleep(1.5)  # the hoard has printed nothing for a while
        pos = connect_from(POS_HOST, daemon.raw_port, timeout=5)
        replies, delays = [], []
        for poll in range(12):  # 24 s of polling, jobs from another host in between
            pos.sendall(DLE_EOT_1)
            replies.append(pos.recv(1))
            if poll % 4 == 1:
                delays.append(seconds_to_store(daemon, PRINTING_HOST, f"Table {poll}"))
            time.sleep(2)
        print(f"seconds from connect to stored, beside the hoard: {delays}")
        assert replies == [b"\x16"] * 12
        assert max(delays) <= 2, delays
        assert stats(daemon)["receipts_total"] == len(delays)
    finally:
        trickler.stop.set()
        trickler.join(15)
        for sock in hoard + ([pos] if pos else []):
            sock.close()
        daemon.stop()


def test_fifty_clients_that_query_and_never_read_add_at_most_20_mb(tmp_path):
    """Issue 13.2: 50 connections send GS I 65 (3 bytes in, 15 out) as fast as the daemon
    takes them and never read a reply; the daemon's RSS grows by at most 20 MB."""
    daemon = Daemon(tmp_path, "--api-rate=0")
    socks: list[socket.socket] = []
    try:
        daemon.wait_for(lambda: daemon.get("/api/health")[0] == 200)
        before = rss_bytes(daemon.process.pid)
        socks = [connect_from(ATTACKER, daemon.raw_port) for _ in range(50)]
        for sock in socks:
            sock.setblocking(False)
        queries = GS_I_65 * 10_000
        sent, deadline, last_progress = 0, time.monotonic() + 20, time.monotonic()
        # Until 40 MB are sent (the 38 MiB took RSS from 64 to 311 MB), or every
        # connection has been blocked for 2 s: the daemon stopped reading them.
        while sent < 40_000_000 and time.monotonic() < deadline \
                and time.monotonic() - last_progress < 2:
            for sock in socks:
                try:
                    n = sock.send(queries)
                except BlockingIOError:
                    continue
                sent += n
                last_progress = time.monotonic()
            time.sleep(0.001)
        settle(daemon.process.pid)  # the daemon has answered what it read
        read = stats(daemon)["bytes_total"]
        grown = rss_bytes(daemon.process.pid) - before
        print(f"sent {sent / 1e6:.1f} MB of GS I 65 on 50 connections, the daemon read "
              f"{read / 1e6:.1f} MB; RSS grew {grown / 1e6:.1f} MB")
        assert grown <= 20_000_000, f"RSS grew {grown / 1e6:.1f} MB"
        assert seconds_to_store(daemon, PRINTING_HOST, "still printing") < 10
    finally:
        for sock in socks:
            sock.close()
        daemon.stop()


def test_two_thousand_jobs_at_once_on_a_listener_given_without_backlog_are_all_stored(tmp_path):
    """Issue 13.4: 2,000 connections opened at once on `tcp:0:interface=127.0.0.1` (no backlog
    given): every one is accepted and its job stored."""
    use_every_descriptor_allowed()
    daemon = Daemon(tmp_path, "--raw-listen=tcp:0:interface=127.0.0.1", "--api-rate=0")
    selector = selectors.DefaultSelector()
    failed: list[str] = []
    try:
        started = time.monotonic()
        for n in range(2000):
            sock = connect_without_waiting(ATTACKER, daemon.raw_port)
            selector.register(sock, selectors.EVENT_WRITE, n)
        deadline = time.monotonic() + 60
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                sock, n = key.fileobj, key.data
                selector.unregister(sock)
                error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                try:
                    if error:
                        raise OSError(error, errno.errorcode.get(error))
                    sock.setblocking(True)
                    sock.settimeout(10)
                    sock.sendall(b"\x1b@Burst %d\n\x1dV\x00" % n)
                except OSError as e:
                    failed.append(f"{n}: {e}")
                finally:
                    sock.close()
        assert not selector.get_map(), "connections still not established after 60 s"
        assert failed == []
        final = daemon.wait_for(lambda: (lambda s: s if s["receipts_total"] >= 2000 else None)(
            stats(daemon)), timeout=60)
        assert final["receipts_total"] == 2000
        print(f"2,000 connections at once: all stored {time.monotonic() - started:.1f} s "
              "after the first connect")
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()
        daemon.stop()


@pytest.mark.parametrize("options", [(), ("--raw-max-per-peer=4",)])
def test_eleven_hundred_parked_connections_under_a_1024_descriptor_limit(tmp_path, options):
    """Issue 13.5: with the daemon limited to 1,024 descriptors, one host opens 1,100
    connections and holds them; a job from another host is stored, /api/health answers."""
    use_every_descriptor_allowed()
    daemon = Daemon(tmp_path, "--api-rate=0", *options,
                    wrapper=("prlimit", "--nofile=1024:1024"))
    hoard: list[socket.socket] = []
    try:
        for _ in range(1100):
            hoard.append(connect_without_waiting(ATTACKER, daemon.raw_port))
        time.sleep(2)  # the daemon takes what it will
        delay = seconds_to_store(daemon, PRINTING_HOST, "Order from another host", 30)
        assert delay < 30
        assert daemon.get("/api/health")[0] == 200
        print(f"options {options}: another host's job stored in {delay:.2f} s; "
              f"{stats(daemon)['connections_active']} active, "
              f"{stats(daemon)['connections_waiting']} waiting")
    finally:
        for sock in hoard:
            sock.close()
        daemon.stop()


def test_a_status_reply_after_a_receipt_means_the_receipt_is_stored(tmp_path):
    """Issue 13.12: with a 1 s group commit delay, a POS prints a receipt and asks DLE EOT 1
    on the same connection; when the reply arrives, the receipt is already in the database."""
    daemon = Daemon(tmp_path, "--commit-delay=1", "--api-rate=0")
    try:
        with connect_from(POS_HOST, daemon.raw_port) as sock:
            sock.sendall(DLE_EOT_1)  # nothing printed yet: answered at once
            assert sock.recv(1) == b"\x16"
            sock.sendall(b"\x1b@Acknowledged order\n\x1dV\x00" + DLE_EOT_1)
            assert sock.recv(1) == b"\x16"
            assert [r["text"] for r in found(daemon, "Acknowledged order")] \
                == ["Acknowledged order"]
    finally:
        daemon.stop()

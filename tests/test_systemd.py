"""systemd: the notify protocol against a real unix datagram socket, and the shipped unit file."""

from __future__ import annotations

import configparser
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from bench.daemon import PRINTERD, Daemon
from printerd.systemd import SystemdNotifier, notify_address, watchdog_interval

UNIT = Path(__file__).resolve().parents[1] / "contrib" / "printerd.service"


@pytest.fixture
def notify_socket():
    """A bound unix datagram socket standing in for systemd's (short path: sun_path is small)."""
    folder = Path(tempfile.mkdtemp(prefix="sd-"))
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(folder / "notify"))
    sock.settimeout(30)
    yield sock, str(folder / "notify")
    sock.close()
    shutil.rmtree(folder)


def received(sock: socket.socket) -> str:
    return sock.recv(4096).decode()


def test_addresses_and_watchdog_come_from_systemds_variables():
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "@sd-notify"}) == "\0sd-notify"
    assert notify_address({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}, pid=7) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "7"}, pid=7) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "8"}, pid=7) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}, pid=7) is None


def test_the_notifier_says_ready_pings_the_watchdog_on_the_clock_and_says_stopping(
        notify_socket):
    sock, path = notify_socket
    clock = Clock()
    notifier = SystemdNotifier(clock, {"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"},
                               pid=1234, status="serving")
    notifier.startService()
    assert received(sock) == "READY=1\nSTATUS=serving"
    assert received(sock) == "WATCHDOG=1"
    clock.advance(1.0)  # half the watchdog timeout
    assert received(sock) == "WATCHDOG=1"
    notifier.stopService()
    assert received(sock) == "STOPPING=1"
    clock.advance(5.0)
    sock.setblocking(False)
    with pytest.raises(BlockingIOError):
        sock.recv(4096)  # no ping after stopping


def test_without_notify_socket_the_notifier_does_nothing():
    clock = Clock()
    notifier = SystemdNotifier(clock, {"WATCHDOG_USEC": "2000000"})
    notifier.startService()
    assert clock.getDelayedCalls() == []
    notifier.stopService()


@pytest.mark.e2e
def test_the_real_daemon_is_ready_once_it_listens_then_pings_and_says_stopping(
        notify_socket, tmp_path):
    sock, path = notify_socket
    daemon = Daemon(tmp_path, "--database=var/printerd.sqlite3", cli=True,
                    env={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
    try:
        ready = received(sock)
        assert ready.startswith("READY=1\n")
        # By READY the HTTP listener answers.
        with urllib.request.urlopen(daemon.url("/api/health"), timeout=10) as response:
            assert response.status == 200
        started = time.monotonic()
        pings = [received(sock) for _ in range(3)]
        assert pings == ["WATCHDOG=1"] * 3
        assert time.monotonic() - started < 10
    finally:
        daemon.stop()
    messages = []
    sock.settimeout(10)
    while "STOPPING=1" not in messages:
        messages.append(received(sock))


def test_the_unit_file_is_type_notify_with_watchdog_limits_and_hardening():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # systemd keys are case-sensitive
    unit.read(UNIT)
    service = unit["Service"]
    assert service["Type"] == "notify"
    assert service["ExecStart"].endswith("/bin/printerd run")
    assert int(service["WatchdogSec"]) > 0
    assert service["LimitNOFILE"] == "65536"
    assert service["DynamicUser"] == "yes" and service["StateDirectory"] == "printerd"
    assert service["ProtectSystem"] == "strict"
    assert service["Environment"] == "PRINTERD_DATABASE=/var/lib/printerd/printerd.sqlite3"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_analyze_finds_nothing_to_say_about_the_unit_file(tmp_path):
    # verify checks that ExecStart exists: point it at this environment's printerd.
    unit = tmp_path / "printerd.service"
    unit.write_text(UNIT.read_text().replace("/opt/printerd/.venv/bin/printerd", PRINTERD))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and "printerd.service" not in result.stderr, result.stderr

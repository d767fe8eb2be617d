"""
The tee end to end: a printerd in front of a "real printer" that is a second printerd, a POS
printing with python-escpos, the real printer switched off mid-job and on again.
"""

from __future__ import annotations

import json
import signal
import socket
import time
import urllib.request

import pytest
from escpos.printer import Network

from bench.daemon import Daemon
from support import free_port, send_job

pytestmark = pytest.mark.e2e


def real_printer(workdir, port: int) -> Daemon:
    workdir.mkdir(exist_ok=True)
    return Daemon(workdir, f"--raw-listen=tcp:{port}:interface=127.0.0.1")


def receipts(daemon: Daemon, count: int) -> list[dict]:
    def enough():
        body = daemon.get("/api/receipts")[1]["receipts"]
        return body if len(body) >= count else None
    return list(reversed(daemon.wait_for(enough)))


def put_state(daemon: Daemon, **state) -> None:
    request = urllib.request.Request(daemon.url("/api/printers/default/state"), method="PUT",
                                     data=json.dumps(state).encode())
    urllib.request.urlopen(request, timeout=10).close()


def tee_of(daemon: Daemon) -> dict:
    return daemon.get("/api/printers")[1]["printers"][0]["tee"]


def metrics(daemon: Daemon) -> str:
    with urllib.request.urlopen(daemon.url("/metrics"), timeout=10) as response:
        return response.read().decode()


def test_python_escpos_sees_the_real_printers_paper_out_and_both_keep_the_receipts(tmp_path):
    port = free_port()
    real = real_printer(tmp_path / "real", port)
    front = Daemon(tmp_path, f"--tee=tcp:127.0.0.1:{port}", "--tee-timeout=2")
    try:
        put_state(real, paper="out")
        pos = Network("127.0.0.1", port=front.raw_port, timeout=10)
        assert pos.paper_status() == 0  # the real printer's "no paper", through the tee
        pos.close()
        assert front.get("/api/printers")[1]["printers"][0]["state"]["paper"] == "ok"
        put_state(real, paper="ok")
        pos = Network("127.0.0.1", port=front.raw_port, timeout=10)
        assert pos.paper_status() == 2
        pos.text("Table 12\nSoup 4.50\n")
        pos.cut()
        pos.close()
        (kept,) = [r for r in receipts(front, 1)]
        (printed,) = receipts(real, 1)
        assert kept["text"] == printed["text"] == "Table 12\nSoup 4.50"
        assert kept["sha256"] == printed["sha256"]
        assert kept["tee"] == {"to": f"tcp:127.0.0.1:{port}", "delivered": True, "error": None}
        tee = tee_of(front)
        assert (tee["state"], tee["counters"]["jobs_relayed"]) == ("up", 2)
        text = metrics(front)
        assert 'printerd_tee_up{printer="default"} 1.0' in text
        assert 'printerd_tee_jobs_total{outcome="relayed",printer="default"} 2.0' in text
    finally:
        front.stop()
        real.stop()


def test_the_real_printer_switched_off_mid_job_and_on_again(tmp_path):
    port = free_port()
    real = real_printer(tmp_path / "real", port)
    front = Daemon(tmp_path, f"--tee=tcp:127.0.0.1:{port}", "--tee-timeout=2")
    try:
        with socket.create_connection(("127.0.0.1", front.raw_port), timeout=30) as sock:
            sock.sendall(b"\x1b@Before\n\x1dV\x00")
            receipts(real, 1)
            real.stop(signal.SIGKILL)  # the plug is pulled: its connections die with it
            front.wait_for(lambda: tee_of(front)["state"] == "down")
            sock.sendall(b"\x10\x04\x01")  # a status query: printerd answers it now
            assert sock.recv(1) == b"\x16"
            sock.sendall(b"After\n\x1dV\x00")
        before, after = receipts(front, 2)
        assert (before["text"], before["tee"]["delivered"]) == ("Before", True)
        assert (after["text"], after["tee"]["delivered"]) == ("After", False)
        tee = tee_of(front)
        assert tee["last_error"].startswith("connection lost mid-job")
        assert tee["counters"]["receipts_undelivered"] == 1
        assert 'printerd_tee_up{printer="default"} 0.0' in metrics(front)

        # Off: a job while it is unreachable is stored, marked not delivered.
        send_job(front.raw_port, b"Offline\n\x1dV\x00")
        offline = receipts(front, 3)[2]
        assert (offline["text"], offline["tee"]["delivered"]) == ("Offline", False)

        # On again, same address: within the backoff (at most 30 s) jobs reach it again.
        real = real_printer(tmp_path / "real", port)

        sent = 3

        def relayed_again():
            nonlocal sent
            send_job(front.raw_port, b"Back\n\x1dV\x00")
            sent += 1
            newest = receipts(front, sent)[-1]
            time.sleep(0.25)
            return newest["tee"]["delivered"]
        front.wait_for(relayed_again, timeout=40)
        assert receipts(real, 1)[-1]["text"] == "Back"
        assert tee_of(front)["state"] == "up"
    finally:
        front.stop()
        real.stop()

"""
The real daemon as a Star printer: a Star client library reads its status and prints, sees
paper out when the state says so; jobs from Star encoders are stored and rendered whole.
"""

from __future__ import annotations

import json
import socket
import subprocess
import urllib.request

import pytest

from bench.daemon import Daemon
from clients import NODE_CLIENTS, client_job, require_node

pytestmark = pytest.mark.e2e


@pytest.fixture
def star_daemon(tmp_path):
    printers = json.dumps({"bar": {"listen": "tcp:0:interface=127.0.0.1", "emulation": "star"},
                           "kitchen": "tcp:0:interface=127.0.0.1"})
    daemon = Daemon(tmp_path, f"--printers={printers}")
    yield daemon
    daemon.stop()


def receiptio(port: int, *arguments: str) -> str:
    """What receiptio (npm) reports talking to the Star printer on ``port``."""
    done = subprocess.run([require_node(), str(NODE_CLIENTS / "receiptio.cjs"), "127.0.0.1", str(port),
                           *arguments], capture_output=True, text=True, timeout=60, check=True)
    return done.stdout


def set_state(daemon: Daemon, printer: str, **state) -> None:
    request = urllib.request.Request(daemon.url(f"/api/printers/{printer}/state"),
                                     data=json.dumps(state).encode(), method="PUT")
    urllib.request.urlopen(request, timeout=10).close()


def receipts_of(daemon: Daemon, printer: str, count: int) -> list[dict]:
    return daemon.wait_for(lambda: (lambda found: found if len(found) >= count else None)(
        daemon.get(f"/api/receipts?printer={printer}")[1]["receipts"]))


def test_receiptio_reads_star_status_prints_and_sees_paper_out(star_daemon):
    port = star_daemon.ports["printers.bar"]
    assert receiptio(port, "status") == "online"
    assert receiptio(port, "print", "star") == "success"  # StarPRNT, confirmed by ASB after ETB
    assert receiptio(port, "print", "starline") == "success"  # Star Line mode
    found = receipts_of(star_daemon, "bar", 2)
    for receipt in found:
        assert receipt["text"].splitlines()[0].strip() == "ExampleMart"
        assert "Coffee" in receipt["text"] and "3.50" in receipt["text"]
    set_state(star_daemon, "bar", paper="out")
    assert receiptio(port, "status") == "paperempty"
    assert receiptio(port, "print", "star") == "paperempty"
    set_state(star_daemon, "bar", paper="ok", cover_open=True)
    assert receiptio(port, "status") == "coveropen"
    set_state(star_daemon, "bar", cover_open=False)
    assert receiptio(port, "status") == "online"


def test_receiptio_tells_a_star_printer_from_an_epson_one_by_their_replies(star_daemon):
    # Without a printer language, receiptio sends DLE EOT 2, ESC ACK SOH and ESC @ and reads
    # the first answer: a Star printer's ASB, an Epson's real-time status.  Answering the EOT
    # inside DLE EOT 2 on the Star port made it take the Star printer for an Epson (offline).
    star, epson = star_daemon.ports["printers.bar"], star_daemon.ports["printers.kitchen"]
    for port in (star, epson):
        assert receiptio(port, "status", "auto") == "online", port
        assert receiptio(port, "print", "auto") == "success", port
    for printer in ("bar", "kitchen"):
        (receipt,) = receipts_of(star_daemon, printer, 1)
        assert receipt["text"].splitlines()[0].strip() == "ExampleMart", printer


def test_a_star_encoders_job_is_stored_and_rendered_whole(star_daemon):
    job = client_job("receipt-printer-encoder-star-prnt")
    with socket.create_connection(("127.0.0.1", star_daemon.ports["printers.bar"])) as sock:
        sock.sendall(job)
    first, second = sorted(receipts_of(star_daemon, "bar", 2), key=lambda r: r["id"])
    code, receipt = star_daemon.get(f"/api/receipts/{first['id']}")
    assert code == 200
    assert [b["data"] for b in receipt["barcodes"]] == ["RIO-128", "3130630574613"]
    assert [c["type"] for c in receipt["codes_2d"]] == ["qr", "pdf417"]
    assert receipt["images"]["count"] == 1 and receipt["cut"] == "partial"
    with urllib.request.urlopen(star_daemon.url(f"/api/receipts/{first['id']}.txt"),
                                timeout=10) as response:
        text = response.read().decode()
    assert "[QR https://example.com/r/1]" in text and "Café Ünïcödé – £5 €7" in text
    assert second["text"].strip() == "Second receipt"


def test_each_printer_speaks_its_own_emulation(star_daemon):
    code, body = star_daemon.get("/api/printers")
    models = {p["name"]: p["model"] for p in body["printers"]}
    assert models["bar"]["maker"] == "STAR" and models["bar"]["model"] == "TSP143IIIU"
    assert models["kitchen"]["maker"] == "EPSON"
    # The same Star job on the Epson printer: its Star commands are recognised, not printed.
    job = client_job("receipt-printer-encoder-star-prnt")
    with socket.create_connection(("127.0.0.1", star_daemon.ports["printers.kitchen"])) as sock:
        sock.sendall(job)
    found = receipts_of(star_daemon, "kitchen", 1)
    assert all("https://example.com/r/1" not in r["text"] for r in found)
    # A Star status request on each: the Star printer answers, the Epson printer stays silent.
    for printer, expected in (("bar", bytes.fromhex("230600000000000000")), ("kitchen", b"")):
        with socket.create_connection(("127.0.0.1", star_daemon.ports[f"printers.{printer}"]),
                                      timeout=10) as sock:
            sock.sendall(b"\x1b\x06\x01")
            reply = b""
            sock.settimeout(1.0)  # the Epson printer never answers: wait a second for nothing
            try:
                while len(reply) < 9 and (chunk := sock.recv(64)):
                    reply += chunk
            except TimeoutError:
                pass
        assert reply == expected, printer

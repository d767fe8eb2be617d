"""End to end: the real daemon in a subprocess, real sockets, real POS client library."""

from __future__ import annotations

import io
import re
import signal
import socket
import subprocess
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import json

import pytest
import pytest_twisted
from escpos.printer import Network

import printerd
from bench.daemon import TWISTD, Daemon
from support import SAMPLES, WebhookReceiver, send_job

pytestmark = pytest.mark.e2e
WEBHOOK_SECRET = "whsec_ZTJlLXdlYmhvb2stc2VjcmV0LWtleQ=="


def test_python_escpos_prints_three_receipts_on_one_connection(daemon):
    printer = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
    assert printer.is_online() is True
    assert printer.paper_status() == 2
    for n in range(3):
        printer.text(f"Receipt {n}\nCoffee      2.50\n")
        printer.cut()
    printer.close()
    code, body = daemon.wait_for(lambda: (lambda r: r if len(r[1]["receipts"]) == 3 else None)(
        daemon.get("/api/receipts")))
    assert code == 200
    texts = [r["text"] for r in reversed(body["receipts"])]
    assert texts == [f"Receipt {n}\nCoffee      2.50" for n in range(3)]
    assert {r["job"] for r in body["receipts"]} == {1}
    assert daemon.get("/api/health") == (200, {"status": "ok", "version": printerd.__version__,
                                               "checks": {"database": "ok", "raw_listener": "ok",
                                                          "forwarder": "ok"}})


def test_a_job_in_flight_at_sigterm_is_stored(tmp_path):
    first = Daemon(tmp_path, "--shutdown-timeout=1")
    sock = socket.create_connection(("127.0.0.1", first.raw_port))
    sock.sendall(b"\x1b@Order 17\nno cut yet")
    first.wait_for(lambda: first.get("/api/stats")[1]["bytes_total"] > 0)
    # twistd re-raises the signal after a clean shutdown, so the status says SIGTERM.
    assert first.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    sock.close()
    assert "still open at shutdown" in first.log()

    second = Daemon(tmp_path)
    try:
        code, body = second.get("/api/receipts")
        assert [r["text"] for r in body["receipts"]] == ["Order 17\nno cut yet"]
    finally:
        second.stop()


def test_200_parallel_jobs_over_a_limit_of_10_are_all_stored(tmp_path):
    daemon = Daemon(tmp_path, "--max-connections=10")
    try:
        threads_before = daemon.get("/api/stats")[1]["threads"]
        jobs = [b"\x1b@Table %d\nTotal 9.99\n\x1dV\x00" % i for i in range(200)]
        with ThreadPoolExecutor(max_workers=200) as pool:
            list(pool.map(lambda job: send_job(daemon.raw_port, job), jobs))
        stats = daemon.wait_for(lambda: (lambda s: s if s["receipts_total"] == 200 else None)(
            daemon.get("/api/stats")[1]))
        assert stats["connections_total"] == 200
        assert stats["threads"] == threads_before
        texts, url = set(), "/api/receipts?limit=500"
        texts = {r["text"] for r in daemon.get(url)[1]["receipts"]}
        assert texts == {f"Table {i}\nTotal 9.99" for i in range(200)}
    finally:
        daemon.stop()


def test_printerd_tac_reads_its_settings_from_the_environment(tmp_path):
    env = {"PRINTERD_RAW_LISTEN": "tcp:0:interface=127.0.0.1",
           "PRINTERD_HTTP_LISTEN": "tcp:0:interface=127.0.0.1",
           "PRINTERD_PRINTER_NAME": "bar"}
    daemon = Daemon(tmp_path, env=env, tac=True)
    try:
        send_job(daemon.raw_port, b"via tac\n\x1dV\x00")
        body = daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])
        assert body[0]["printer"] == "bar"
        assert (tmp_path / "var" / "printerd.sqlite3").exists()
    finally:
        daemon.stop()


def run_twistd(tmp_path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run([TWISTD, "--nodaemon", "--pidfile=", "printerd", *options],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("options, named", [
    (["--no-such-option"], "--no-such-option"),
    (["--max-connections=many"], "--max-connections"),
    (["--raw-listen=carrier-pigeon:9100"], "raw_listen"),
    (["--database=/proc/version/printerd.sqlite3"], "database"),
    (["--http-listen=tcp:0"], "http_listen"),  # reachable from the LAN without a token
    (["--raw-allow=10.0.0.0/33"], "--raw-allow"),
    (["--api-tokens-file=/nonexistent/tokens"], "api_tokens_file"),
])
def test_bad_settings_exit_non_zero_with_one_line(tmp_path, options, named):
    result = run_twistd(tmp_path, *options)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("printerd: error: ") and named in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_a_port_in_use_exits_non_zero_naming_the_setting(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        result = run_twistd(tmp_path, f"--raw-listen=tcp:{port}:interface=127.0.0.1",
                            "--http-listen=tcp:0:interface=127.0.0.1")
    finally:
        taken.close()
    assert result.returncode == 1
    assert "printerd: error: raw_listen: cannot listen" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_twistd_help_lists_the_plugin_options(tmp_path):
    result = run_twistd(tmp_path, "--help")
    assert result.returncode == 0
    assert "--raw-listen=" in result.stdout and "PRINTERD_MAX_CONNECTIONS" in result.stdout


def read_stream_events(sock: socket.socket, count: int) -> list[bytes]:
    """Read SSE blocks from a raw socket until ``count`` receipt events arrived."""
    buffer, events = b"", []
    while len(events) < count:
        data = sock.recv(65536)
        assert data, "stream closed early"
        buffer += data
        events = [block for block in buffer.split(b"\n\n") if b"event: receipt" in block]
    return events


def test_a_stream_subscriber_sees_python_escpos_receipts_live_and_resumes(daemon):
    stream = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10)
    stream.sendall(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    daemon.wait_for(lambda: daemon.get("/api/stats")[1]["sse_subscribers"] == 1)
    printer = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
    for n in range(3):
        printer.text(f"Live {n}\n")
        printer.cut()
    printer.close()
    events = read_stream_events(stream, 3)
    assert [b"Live %d" % n in event for n, event in enumerate(events)] == [True] * 3
    stream.close()
    # The hub forgets a subscriber that left.
    daemon.wait_for(lambda: daemon.get("/api/stats")[1]["sse_subscribers"] == 0)

    resumed = socket.create_connection(("127.0.0.1", daemon.http_port), timeout=10)
    resumed.sendall(b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: 1\r\n\r\n")
    events = read_stream_events(resumed, 2)
    assert [re.search(rb"id: (\d+)", event).group(1) for event in events] == [b"2", b"3"]
    resumed.close()


@pytest_twisted.ensureDeferred
async def test_webhook_receiver_that_fails_first_gets_each_receipt_once_signed(tmp_path):
    from twisted.internet import reactor
    from twisted.internet.task import deferLater
    from twisted.web.server import Site

    from printerd.forwarder.signing import verify

    receiver = WebhookReceiver([503, 200])  # the first attempt fails
    port = reactor.listenTCP(0, Site(receiver), interface="127.0.0.1")
    hooks = json.dumps([{"name": "cloud", "url": f"http://127.0.0.1:{port.getHost().port}/hook",
                         "secret": WEBHOOK_SECRET}])
    daemon = Daemon(tmp_path, f"--webhooks={hooks}")
    try:
        send_job(daemon.raw_port, b"forward me\n\x1dV\x00")
        for _ in range(400):  # the retry comes 5 s after the first failure
            if len(receiver.requests) >= 2:
                break
            await deferLater(reactor, 0.05, lambda: None)
        await deferLater(reactor, 0.5, lambda: None)
        assert len(receiver.requests) == 2
        (first, _), (second, body) = receiver.requests
        assert first["webhook-id"] == second["webhook-id"] == "msg_cloud_1"
        assert verify(WEBHOOK_SECRET, second["webhook-id"], int(second["webhook-timestamp"]),
                      body, second["webhook-signature"])
        assert json.loads(body)["receipt"]["text"] == "forward me"
        code, status = daemon.get("/api/forwarder")
        (target,) = status["targets"]
        assert (target["delivered"], target["pending"], target["failed_attempts"]) == (1, 0, 1)
        assert daemon.get("/api/health")[1]["checks"]["forwarder"] == "ok"
    finally:
        daemon.stop()
        await port.stopListening()


def test_a_refused_webhook_degrades_health_and_keeps_the_delivery(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    dead_port = closed.getsockname()[1]
    closed.close()
    hooks = json.dumps([{"url": f"http://127.0.0.1:{dead_port}/", "secret": WEBHOOK_SECRET}])
    daemon = Daemon(tmp_path, f"--webhooks={hooks}")
    try:
        send_job(daemon.raw_port, b"nobody listens\n\x1dV\x00")
        health = daemon.wait_for(lambda: (lambda h: h if h[1]["status"] == "degraded" else None)(
            daemon.get("/api/health")))
        assert health[0] == 200
        assert "webhook1 failing" in health[1]["checks"]["forwarder"]
        code, status = daemon.get("/api/forwarder")
        assert status["targets"][0]["pending"] == 1
        assert "refused" in status["targets"][0]["last_error"].lower()
        assert daemon.get("/api/stats")[1]["forwarder_pending"] == 1
    finally:
        daemon.stop()


def test_tokens_protect_the_real_daemon_and_insecure_allows_a_lan_listener(tmp_path):
    import urllib.error
    import urllib.request

    tokens = tmp_path / "tokens"
    tokens.write_text("# operators\nfile-token\n")
    daemon = Daemon(tmp_path, "--http-listen=tcp:0:interface=0.0.0.0",
                    f"--api-tokens-file={tokens}")
    try:
        assert daemon.get("/api/receipts")[0] == 401
        assert daemon.get("/api/health") == (200, {"status": "ok"})
        request = urllib.request.Request(daemon.url("/api/receipts"),
                                         headers={"Authorization": "Bearer file-token"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
    finally:
        daemon.stop()
    open_lan = Daemon(tmp_path, "--http-listen=tcp:0:interface=0.0.0.0", "--insecure")
    try:
        assert open_lan.get("/api/receipts")[0] == 200
    finally:
        open_lan.stop()


def http_status(port: int, request: bytes) -> int:
    """Send raw bytes as an HTTP request; the status code of the answer (0 if none)."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            sock.sendall(request)
            while b"\r\n" not in data:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                data += chunk
        except ConnectionResetError:
            pass  # the server answered and hung up on what we were still sending
    match = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return int(match.group(1)) if match else 0


@pytest.mark.parametrize("request_bytes", [
    b"GET /api/receipts/99999999999999999999999 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/receipts?limit=%ff%fe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/receipts?since=2024-99-99 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /../../etc/passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"BREW /api/receipts HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"PUT /api/receipts/1 HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9\r\n\r\n{\"tok\": 1",
    b"POST /api/session HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100000,
    b"GARBAGE\r\n\r\n",
    b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nLast-Event-ID: -5\r\n\r\n",
    b"GET /api/receipts/99999999999999999999.png HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/receipts/1.html?width=%00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /api/receipts/1.txt?width=48&width=42 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /static/..%2F..%2Fsetup.cfg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"GET /static/.hidden.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc",
])
def test_malformed_http_gets_4xx_never_5xx(daemon, request_bytes):
    status = http_status(daemon.http_port, request_bytes)
    assert 400 <= status < 500, status
    assert daemon.get("/api/health")[0] == 200
    assert "Traceback" not in daemon.log()


def test_oversized_headers_are_refused_and_the_daemon_keeps_serving(daemon):
    big = b"GET /api/receipts HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
    # A JSON 400, then a gentle close: the client reads it rather than a reset.
    assert http_status(daemon.http_port, big) == 400
    assert daemon.get("/api/health")[0] == 200


def test_python_escpos_sees_the_state_set_through_the_api(daemon):
    import urllib.request

    def set_state(**state):
        request = urllib.request.Request(daemon.url("/api/printers/default/state"),
                                         data=json.dumps(state).encode(), method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    printer = Network("127.0.0.1", port=daemon.raw_port, timeout=10)
    assert (printer.is_online(), printer.paper_status()) == (True, 2)
    set_state(paper="near_end")
    assert printer.paper_status() == 1
    set_state(paper="out", online=False)
    assert (printer.is_online(), printer.paper_status()) == (False, 0)
    set_state(paper="ok", online=True)
    assert (printer.is_online(), printer.paper_status()) == (True, 2)
    printer.close()


def test_several_printers_each_on_its_own_port(tmp_path):
    printers = json.dumps({"kitchen": "tcp:0:interface=127.0.0.1",
                           "bar": {"listen": "tcp:0:interface=127.0.0.1", "model": "TM-T20III",
                                   "serial": "BAR1"}})
    daemon = Daemon(tmp_path, f"--printers={printers}")
    try:
        send_job(daemon.ports["printers.kitchen"], b"2x soup\n\x1dV\x00")
        send_job(daemon.ports["printers.bar"], b"1x beer\n\x1dV\x00")
        found = daemon.wait_for(lambda: (lambda r: r if len(r) == 2 else None)(
            daemon.get("/api/receipts")[1]["receipts"]))
        assert {(r["printer"], r["text"]) for r in found} == {("kitchen", "2x soup"),
                                                              ("bar", "1x beer")}
        code, body = daemon.get("/api/printers")
        assert {p["name"]: p["model"] for p in body["printers"]} == {
            "bar": {"maker": "EPSON", "model": "TM-T20III", "serial": "BAR1"},
            "kitchen": {"maker": "EPSON", "model": "TM-T88V", "serial": "PRINTERD0001"}}
        bar = Network("127.0.0.1", port=daemon.ports["printers.bar"], timeout=10)
        import urllib.request
        request = urllib.request.Request(daemon.url("/api/printers/bar/state"),
                                         data=b'{"online": false}', method="PUT")
        urllib.request.urlopen(request, timeout=10).close()
        assert bar.is_online() is False
        kitchen = Network("127.0.0.1", port=daemon.ports["printers.kitchen"], timeout=10)
        assert kitchen.is_online() is True  # each printer has its own state
        bar.close()
        kitchen.close()
    finally:
        daemon.stop()


def test_a_printer_configured_to_start_in_two_byte_mode_stores_renders_and_lists_chinese(tmp_path):
    from clients import client_job

    # @node-escpos/core's default: GB18030 text with no FS &, for Chinese-firmware printers.
    job = client_job("node-escpos-gb18030")
    printers = json.dumps({"counter": "tcp:0:interface=127.0.0.1",
                           "kitchen": {"listen": "tcp:0:interface=127.0.0.1",
                                       "two_byte_at_start": True}})
    daemon = Daemon(tmp_path, f"--printers={printers}")
    try:
        send_job(daemon.ports["printers.kitchen"], job)
        send_job(daemon.ports["printers.counter"], job)
        found = daemon.wait_for(lambda: (lambda r: r if len(r) == 2 else None)(
            daemon.get("/api/receipts")[1]["receipts"]))
        text = {r["printer"]: r["text"] for r in found}
        assert text["kitchen"] == "点心店 Dim Sum House\n虾饺 Har gow 2 x 28.00\n合计 Total 56.00"
        assert "点心店" not in text["counter"]  # an Epson's one-byte mode: PC437 characters
        kitchen = next(r["id"] for r in found if r["printer"] == "kitchen")
        with urllib.request.urlopen(daemon.url(f"/api/receipts/{kitchen}.txt"),
                                    timeout=30) as response:
            assert "合计 Total 56.00" in response.read().decode()
        code, listing = daemon.get(f"/api/receipts/{kitchen}/commands")
        assert code == 200
        assert [e["text"] for e in listing["commands"] if e["kind"] == "text"][0] == \
            "点心店 Dim Sum House"
        code, found = daemon.get("/api/receipts?q=" + urllib.parse.quote("合计"))
        assert [r["printer"] for r in found["receipts"]] == ["kitchen"]
    finally:
        daemon.stop()


def test_japanese_models_store_render_and_find_the_japanese_receiptline_prints(tmp_path):
    from clients import JAPANESE_LINES, japanese_job, squeezed_lines

    # An Epson and a Star Japanese model (two_byte_encoding shift_jis), and a default printer.
    japanese = {"listen": "tcp:0:interface=127.0.0.1", "two_byte_encoding": "shift_jis"}
    printers = json.dumps({"counter": "tcp:0:interface=127.0.0.1", "epson-jp": japanese,
                           "star-jp": {**japanese, "emulation": "star"}})
    epson_job = japanese_job("escpos")
    daemon = Daemon(tmp_path, f"--printers={printers}")
    try:
        send_job(daemon.ports["printers.epson-jp"], epson_job)
        send_job(daemon.ports["printers.star-jp"], japanese_job("starmbcs"))
        send_job(daemon.ports["printers.counter"], epson_job)
        found = daemon.wait_for(lambda: (lambda r: r if len(r) == 3 else None)(
            daemon.get("/api/receipts")[1]["receipts"]))
        by_printer = {r["printer"]: r for r in found}
        for name in ("epson-jp", "star-jp"):
            receipt = by_printer[name]
            assert squeezed_lines(receipt["text"]) == JAPANESE_LINES, name
            with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}.txt"),
                                        timeout=30) as response:
                assert "東京ラーメン" in response.read().decode()
        assert "東京" not in by_printer["counter"]["text"]  # a model without Japanese
        code, searched = daemon.get("/api/receipts?q=" + urllib.parse.quote("ラーメン"))
        assert sorted(r["printer"] for r in searched["receipts"]) == ["epson-jp", "star-jp"]
    finally:
        daemon.stop()


def test_a_sample_printed_on_the_raw_port_renders_as_png_html_and_text(daemon):
    from PIL import Image

    send_job(daemon.raw_port, (SAMPLES / "escpos-php__receipt-with-logo.bin").read_bytes())
    daemon.wait_for(lambda: daemon.get("/api/receipts")[1]["receipts"])
    (receipt,) = daemon.get("/api/receipts")[1]["receipts"]
    assert any(run.get("bold") for line in receipt["line_styles"] for run in line["runs"])
    for paper in (576, 512):
        with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}.png?width={paper}"),
                                    timeout=30) as response:
            image = Image.open(io.BytesIO(response.read()))
        assert image.format == "PNG" and image.width == paper and image.height > 500
    with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}.html"),
                                timeout=30) as response:
        html = response.read().decode()
    assert "ExampleMart" in html and "data:image/png;base64," in html
    with urllib.request.urlopen(daemon.url(f"/api/receipts/{receipt['id']}.txt?width=42"),
                                timeout=30) as response:
        text = response.read().decode()
    assert "Example item #1" in text and max(map(len, text.splitlines())) <= 42

"""
Webhook scenario: a POS prints one receipt every 20 ms; a local receiver (stdlib HTTP server in
this process) records when each POST arrives.  Reports send-to-webhook latency percentiles.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.common import percentiles
from bench.daemon import Daemon


def run(workdir, receipts: int = 200, interval: float = 0.02) -> dict:
    arrivals: dict[str, float] = {}

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            arrivals[json.loads(body)["receipt"]["text"].split()[0]] = time.time()
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hooks = json.dumps([{"url": f"http://127.0.0.1:{server.server_port}/",
                         "secret": "whsec_YmVuY2gtd2ViaG9vay1zZWNyZXQ="}])
    daemon = Daemon(workdir, f"--webhooks={hooks}", "--api-rate=0")
    sent: dict[str, float] = {}
    try:
        for n in range(receipts):
            tag = f"r{n}"
            sent[tag] = time.time()
            with socket.create_connection(("127.0.0.1", daemon.raw_port)) as sock:
                sock.sendall(tag.encode() + b" webhook bench\n\x1dV\x00")
            time.sleep(interval)
        deadline = time.time() + 30
        while len(arrivals) < receipts and time.time() < deadline:
            time.sleep(0.05)
    finally:
        daemon.stop()
        server.shutdown()
    latencies = [arrivals[t] - sent[t] for t in sent if t in arrivals]
    return {"receipts": receipts, "delivered": len(latencies),
            "send_to_webhook": percentiles(latencies)}

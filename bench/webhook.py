"""
Webhook scenario: a POS prints one receipt every 20 ms, one per connection; a local receiver
(stdlib HTTP server in this process) records when each POST arrives and answers 204 after 20 ms
(a cloud function's usual time).  Reports send-to-webhook latency percentiles and POSTs received
per receipt (1.00: each receipt posted exactly once), counted on ``webhook-id``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from bench.common import percentiles
from bench.daemon import Daemon

RECEIVER_DELAY = 0.02


def run(workdir, receipts: int = 200, interval: float = 0.02) -> dict:
    arrivals: dict[str, float] = {}
    posts: Counter[str] = Counter()
    lock = threading.Lock()

    class Receiver(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as cloud endpoints answer

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with lock:
                posts[self.headers["webhook-id"]] += 1
                arrivals.setdefault(json.loads(body)["receipt"]["text"].split()[0], time.time())
            time.sleep(RECEIVER_DELAY)
            self.send_response(204)
            self.send_header("Content-Length", "0")
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
        time.sleep(1.0)  # a duplicate would arrive within the forwarder's next polls
    finally:
        daemon.stop()
        server.shutdown()
    latencies = [arrivals[t] - sent[t] for t in sent if t in arrivals]
    return {"receipts": receipts, "delivered": len(latencies),
            "posts_per_receipt": round(sum(posts.values()) / receipts, 3),
            "receipts_posted_twice_or_more": sum(1 for n in posts.values() if n > 1),
            "send_to_webhook": percentiles(latencies)}

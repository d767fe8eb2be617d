"""
The bare-Twisted ceilings that ``make bench`` measures printerd against, in the same run.

Each is the least a Twisted server can do for the same I/O: no parser, no storage, no routing.

- ``ingest``: accept, read until the client closes, count the cuts (``GS V``) seen; nothing kept.
- ``stream``: the same raw port, but the bytes up to each cut become one SSE event that is written
  to every open ``GET`` on the HTTP port (one ``write`` per subscriber per event, as a naive hub
  would do it).

Both answer ``GET /api/stats`` with ``{"receipts_total": n, "sse_subscribers": m}`` (what the load
generator polls on printerd too), and any other ``GET`` with a canned JSON body of
``--body-bytes`` bytes on a keep-alive connection: the ceiling of a REST read.

Run as ``python -m bench.ceiling ingest|stream``; it prints ``raw_listen listening on ...
port=N`` lines like printerd's log, which ``Ceiling`` reads to find its ports.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from bench.common import raise_fd_limit

CUT = b"\x1dV"  # GS V: every receipt the benchmarks print ends with one


class Counts:
    """What the ceiling servers share: cuts counted, open subscribers, the canned body."""

    def __init__(self, fan_out: bool, body_bytes: int) -> None:
        self.fan_out = fan_out
        self.receipts = 0
        self.subscribers: list[Protocol] = []
        padding = max(0, body_bytes - len(b'{"receipts":[],"pad":""}\n'))
        self.body = b'{"receipts":[],"pad":"' + b"x" * padding + b'"}\n'

    def publish(self, receipt: bytes) -> None:
        self.receipts += 1
        if not self.fan_out:
            return
        # The least encoding that keeps the event one SSE "data:" line.
        data = json.dumps({"id": self.receipts, "text": receipt.decode("latin-1")}).encode()
        event = b"id: %d\nevent: receipt\ndata: %s\n\n" % (self.receipts, data)
        for subscriber in self.subscribers:
            subscriber.transport.write(event)  # type: ignore[union-attr]


class RawCounter(Protocol):
    """Reads a connection to its end, splitting at cuts; keeps only the unfinished receipt."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = b""

    def dataReceived(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(CUT)
            if end < 0:
                break
            receipt, self.buffer = self.buffer[:end + len(CUT)], self.buffer[end + len(CUT):]
            self.counts.publish(receipt)


class BareHttp(Protocol):
    """Just enough HTTP: /api/stats, a held SSE stream on /api/stream, a canned body otherwise."""

    def __init__(self, counts: Counts) -> None:
        self.counts = counts
        self.buffer = b""
        self.streaming = False

    def dataReceived(self, data: bytes) -> None:
        if self.streaming:
            return
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            path = head.split(b" ", 2)[1]
            if path.startswith(b"/api/stream"):
                self.streaming = True
                self.transport.write(  # type: ignore[union-attr]
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                    b"Cache-Control: no-cache\r\nConnection: close\r\n\r\nretry: 3000\n\n")
                self.counts.subscribers.append(self)
                return
            if path.startswith(b"/api/stats"):
                body = json.dumps({"receipts_total": self.counts.receipts,
                                   "sse_subscribers": len(self.counts.subscribers)}).encode()
            else:
                body = self.counts.body
            keep = b"HTTP/1.0" not in head.split(b"\r\n", 1)[0]
            self.transport.write(  # type: ignore[union-attr]
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                b"%s\r\n%s" % (len(body), b"" if keep else b"Connection: close\r\n", body))
            if not keep:
                self.transport.loseConnection()  # type: ignore[union-attr]
                return

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if self.streaming:
            self.counts.subscribers.remove(self)


def serve(mode: str, body_bytes: int, backlog: int) -> None:
    from twisted.internet import reactor

    raise_fd_limit()
    counts = Counts(fan_out=mode == "stream", body_bytes=body_bytes)
    raw = reactor.listenTCP(0, Factory.forProtocol(lambda: RawCounter(counts)),  # type: ignore
                            backlog=backlog, interface="127.0.0.1")
    http = reactor.listenTCP(0, Factory.forProtocol(lambda: BareHttp(counts)),  # type: ignore
                             backlog=backlog, interface="127.0.0.1")
    print(f"raw_listen listening on port={raw.getHost().port}", flush=True)
    print(f"http_listen listening on port={http.getHost().port}", flush=True)
    reactor.run()  # type: ignore[attr-defined]


class Ceiling:
    """A running bare server (``python -m bench.ceiling``), with ``Daemon``'s port attributes."""

    def __init__(self, mode: str, body_bytes: int = 1000, backlog: int = 4096) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.ceiling", mode, f"--body-bytes={body_bytes}",
             f"--backlog={backlog}"], stdout=subprocess.PIPE, text=True)
        ports: dict[str, int] = {}
        assert self.process.stdout is not None
        while len(ports) < 2:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"bench.ceiling {mode} exited before listening")
            name, _, port = line.strip().partition(" listening on port=")
            ports[name] = int(port)
        self.raw_port = ports["raw_listen"]
        self.http_port = ports["http_listen"]

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(timeout)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling")
    parser.add_argument("mode", choices=["ingest", "stream"])
    parser.add_argument("--body-bytes", type=int, default=1000)
    parser.add_argument("--backlog", type=int, default=4096)
    args = parser.parse_args()
    serve(args.mode, args.body_bytes, args.backlog)


if __name__ == "__main__":
    main()

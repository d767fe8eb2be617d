"""
The stream load generator: thousands of SSE subscribers in a few processes, cheap enough not to
be what is measured.

Most subscribers only count events: their sockets sit in an epoll set that is swept every
``SWEEP`` seconds, so each ``recv`` takes the several events the kernel buffered meanwhile, and
counting is one ``bytes.count`` in C.  One subscriber in ``LATENCY_EVERY``, spread evenly through
the order in which they connect (the order a naive server writes to them), parses its events at
once and records, per event, the delay from the ``sent=`` time the POS client stamped into the
receipt to its arrival.  The sweep runs in slices, so it delays those readers by well under a
millisecond.

A worker opens all its subscribers at once (non-blocking connects, every request written as soon
as its socket connects) when ``go`` is set, and reports when the last of them had the stream's
first bytes (``retry:``): how fast the server takes a connect storm.
"""

from __future__ import annotations

import errno
import multiprocessing
import re
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Optional

from bench.common import raise_fd_limit

EVENT = b"event: receipt"
PREAMBLE = b"retry:"
SENT = re.compile(rb"sent=(\d+\.\d+)")
LATENCY_EVERY = 50  # one subscriber in 50 measures latency
SWEEP = 0.2  # seconds between reads of the counting subscribers
SLICE = 200  # counting sockets read between two looks at the latency sockets
RECV = 262144


@dataclass
class Subscription:
    """One subscriber's socket and what it has seen."""

    sock: socket.socket
    measures_latency: bool
    head: bytes = b""  # bytes before the stream's first event (status line, headers, retry)
    ready: bool = False
    events: int = 0
    tail: bytes = b""  # the last bytes read, in case EVENT straddles two reads
    pending: bytes = b""  # latency readers: an event not yet complete
    latencies: list[float] = field(default_factory=list)

    def take(self, data: bytes, now: float) -> None:
        if not self.ready:
            self.head += data
            if PREAMBLE not in self.head:
                return
            self.ready = True
            data, self.head = self.head, b""
        if self.measures_latency:
            self.pending += data
            *blocks, self.pending = self.pending.split(b"\n\n")
            for block in blocks:
                if EVENT in block:
                    self.events += 1
                    match = SENT.search(block)
                    if match:
                        self.latencies.append(now - float(match.group(1)))
            return
        both = self.tail + data
        self.events += both.count(EVENT)
        # Shorter than EVENT, so an event counted now cannot be counted again next time.
        self.tail = both[-(len(EVENT) - 1):]


def subscribe_all(port: int, count: int, go: Any, headers: bytes = b"", first_index: int = 0,
                  timeout: float = 120.0) -> tuple[list[Subscription], float, list[str]]:
    """
    Open ``count`` subscribers at once once ``go`` (an Event) is set; return those streaming,
    the wall time (``time.time()``) at which the last one had the stream's first bytes, and the
    status line (or "closed") of each one refused.  Subscriber
    ``first_index + i`` measures latency when that number is a multiple of ``LATENCY_EVERY``.
    """
    request = b"GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n" % headers
    go.wait()
    setup = select.epoll()
    by_fd: dict[int, Subscription] = {}
    for i in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(("127.0.0.1", port))
        if code not in (0, errno.EINPROGRESS):
            raise OSError(code, f"connect: {errno.errorcode.get(code, code)}")
        by_fd[sock.fileno()] = Subscription(sock, (first_index + i) % LATENCY_EVERY == 0)
        setup.register(sock.fileno(), select.EPOLLOUT)
    waiting = count
    refused: list[str] = []
    last_ready = time.time()
    deadline = time.monotonic() + timeout
    while waiting and time.monotonic() < deadline:
        for fd, mask in setup.poll(1.0, count):
            sub = by_fd[fd]
            if mask & select.EPOLLOUT:
                sub.sock.send(request)
                setup.modify(fd, select.EPOLLIN)
                continue
            data = _recv(sub.sock)
            if data is None:
                continue
            if not data:  # refused or closed before the stream began: counted, not retried
                setup.unregister(fd)
                waiting -= 1
                refused.append(sub.head.split(b"\r\n", 1)[0].decode("latin-1") or "closed")
                del by_fd[fd]
                sub.sock.close()
                continue
            sub.take(data, time.time())
            if sub.ready:
                setup.unregister(fd)
                waiting -= 1
                last_ready = time.time()
    setup.close()
    if waiting:
        raise TimeoutError(f"{waiting} of {count} subscribers not streaming after {timeout} s")
    return list(by_fd.values()), last_ready, refused


def _recv(sock: socket.socket) -> Optional[bytes]:
    try:
        return sock.recv(RECV)
    except BlockingIOError:
        return None
    except ConnectionError:
        return b""


def receive(subscriptions: list[Subscription], expected: int, finished: Any,
            grace: float = 60.0, sweep: float = SWEEP) -> Optional[float]:
    """
    Read until every subscriber has ``expected`` events, or ``grace`` seconds after
    ``finished`` (an Event: the POS clients are done) is set; return the wall time at which the
    last event was counted (None if some never came), to within ``sweep`` seconds.
    """
    latency = select.epoll()
    counting = select.epoll()
    by_fd = {sub.sock.fileno(): sub for sub in subscriptions}
    for fd, sub in by_fd.items():
        (latency if sub.measures_latency else counting).register(fd, select.EPOLLIN)
    closed: set[int] = set()
    total = expected * len(subscriptions)
    deadline: Optional[float] = None
    next_sweep = time.monotonic()
    while True:
        now = time.monotonic()
        if now >= next_sweep:
            ready = counting.poll(0, len(by_fd))
            for start in range(0, len(ready), SLICE):
                for fd, _ in ready[start:start + SLICE]:
                    _read(by_fd[fd], counting, closed)
                for fd, _ in latency.poll(0, len(by_fd)):
                    _read(by_fd[fd], latency, closed)
            next_sweep = time.monotonic() + sweep
            if sum(sub.events for sub in subscriptions) >= total:
                complete_at: Optional[float] = time.time()
                break
            if len(closed) == len(subscriptions):
                complete_at = None
                break
            if deadline is None and finished.is_set():
                deadline = time.monotonic() + grace
            if deadline is not None and time.monotonic() > deadline:
                complete_at = None
                break
        for fd, _ in latency.poll(max(0.0, next_sweep - time.monotonic()), len(by_fd)):
            _read(by_fd[fd], latency, closed)
    latency.close()
    counting.close()
    return complete_at


def _read(sub: Subscription, poller: select.epoll, closed: set[int]) -> None:
    data = _recv(sub.sock)
    if data is None:
        return
    if not data:
        fd = sub.sock.fileno()
        poller.unregister(fd)
        closed.add(fd)
        return
    sub.take(data, time.time())


def worker(port: int, count: int, first_index: int, headers: bytes, expected: int,
           go: Any, finished: Any, out: Any, sweep: float = SWEEP) -> None:
    """One load-generator process (multiprocessing target): see the module docstring."""
    raise_fd_limit()
    subscriptions, last_ready, refused = subscribe_all(port, count, go, headers,
                                                       first_index=first_index)
    out.put(("ready", last_ready, refused))
    started_cpu = time.process_time()  # the receiving phase's CPU, not the connects'
    complete_at = receive(subscriptions, expected, finished, sweep=sweep)
    out.put(("done", sum(s.events for s in subscriptions),
             [x for s in subscriptions for x in s.latencies],
             sum(1 for s in subscriptions if s.measures_latency),
             time.process_time() - started_cpu, complete_at))
    for sub in subscriptions:
        sub.sock.close()


class Fleet:
    """
    ``worker`` processes, forked and waiting for ``start()``; a queue each, so that a worker's
    "ready" message is always read before its "done".
    """

    def __init__(self, parts: list[tuple[int, int, int]], headers: bytes, expected: int,
                 sweep: float = SWEEP) -> None:
        """``parts``: (port, subscribers, index of the first) of each worker."""
        context = multiprocessing.get_context("fork")
        self.go, self.finished = context.Event(), context.Event()
        self.outs = [context.Queue() for _ in parts]
        self.procs = [context.Process(target=worker, args=(
            port, count, first, headers, expected, self.go, self.finished, out, sweep))
            for (port, count, first), out in zip(parts, self.outs, strict=True)]
        for proc in self.procs:
            proc.start()

    def start(self) -> float:
        """Start the connect storm once the workers are waiting; the wall time it started."""
        time.sleep(0.5)
        started = time.time()
        self.go.set()
        return started

    def ready(self, timeout: float = 300) -> list[tuple]:
        """Each worker's ("ready", when the last subscriber streamed, refused status lines)."""
        return [out.get(timeout=timeout) for out in self.outs]

    def done(self, timeout: float = 300) -> list[tuple]:
        """
        Tell the workers the printing is over; each one's ("done", events, latencies,
        latency subscribers, CPU seconds receiving, when complete or None).
        """
        self.finished.set()
        return [out.get(timeout=timeout) for out in self.outs]

    def join(self) -> None:
        for proc in self.procs:
            proc.join(10)

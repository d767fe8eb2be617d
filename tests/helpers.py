"""
Shared test helpers for the HTTP API: the API built as makeService builds it, and StubTreq
requests that wait for answers coming from the store's threads.
"""

from __future__ import annotations

import json
from typing import Optional, Sequence

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock

from printerd.forwarder.service import Forwarder
from printerd.http.api import HttpApi
from printerd.http.auth import Authenticator
from printerd.http.ratelimit import RateLimiter
from printerd.http.routes.forwarder import ForwarderRoutes
from printerd.http.routes.health import HealthRoutes
from printerd.http.routes.metrics import MetricsRoutes
from printerd.http.routes.page import PageRoutes
from printerd.http.routes.printers import PrinterRoutes
from printerd.http.routes.receipts import ReceiptRoutes
from printerd.http.routes.session import SessionRoutes
from printerd.http.routes.stream import StreamRoutes
from printerd.http.stream import StreamHub
from printerd.metrics import Figures, ReactorLag, Sources, make_registry
from printerd.rawport.factory import RawPrintFactory, RawPrinter
from printerd.render.service import Renderings
from printerd.retention import Retention
from printerd.store.receipts import NewReceipt, format_time


class Api:
    """Every route module over one store, with the parts a test may want to reach."""

    def __init__(self, store, clock=None, *, printers: Optional[Sequence[RawPrinter]] = None,
                 hub: Optional[StreamHub] = None, forwarder: Optional[Forwarder] = None,
                 tokens: tuple[str, ...] = (), limiter: Optional[RateLimiter] = None) -> None:
        self.clock = clock = clock or Clock()
        self.store = store
        self.printers = list(printers) if printers is not None else [
            RawPrinter(RawPrintFactory(MemoryReactorClock(), store))]
        self.hub = hub or StreamHub(clock, store.receipts_after)
        self.forwarder = forwarder or Forwarder(clock, store, (), http=None)
        self.authenticator = Authenticator(clock, tokens)
        self.limiter = limiter or RateLimiter(clock, rate=0, burst=1)
        factories = tuple(p.factory for p in self.printers)
        self.retention = Retention(clock, store)
        renderings = Renderings(store, {f.printer: f.two_byte_encoding for f in factories})
        self.figures = Figures(Sources(clock, store, factories, self.hub, self.forwarder,
                                       self.retention, renderings, self.limiter, ReactorLag(clock),
                                       clock.seconds()), make_registry(store))
        self.api = HttpApi([
            HealthRoutes(store, self.printers, self.forwarder, self.authenticator),
            SessionRoutes(self.authenticator),
            ReceiptRoutes(store, renderings),
            StreamRoutes(self.hub),
            PrinterRoutes(self.printers),
            ForwarderRoutes(clock, store, self.forwarder),
            MetricsRoutes(self.figures),
            PageRoutes(),
        ], self.authenticator, self.limiter)
        self.stub = StubTreq(self.api.resource())


async def settle(stub, d, timeout: float = 5.0):
    """Wait for a StubTreq request whose resource answers from the store's threads."""
    # d.called is already true while d waits on another Deferred: watch for the result.
    results = []
    d.addBoth(lambda result: results.append(result) or result)
    for _ in range(int(timeout / 0.005)):
        if results:
            break
        await deferLater(reactor, 0.005, lambda: None)
        stub.flush()
    return await d


async def get(stub, url: str, method: str = "GET", **kwargs):
    response = await settle(stub, stub.request(method, "http://printerd" + url, **kwargs))
    body = await settle(stub, response.content())
    return response, body


async def get_json(stub, url: str, **kwargs):
    response, body = await get(stub, url, **kwargs)
    assert response.headers.getRawHeaders("content-type") == ["application/json"]
    return response.code, json.loads(body)


async def put_json(stub, path, body):
    response, answer = await get(stub, path, method="PUT", data=json.dumps(body).encode())
    return response.code, json.loads(answer)


async def fill(store, count: int) -> None:
    for i in range(count):
        await store.add_receipt(NewReceipt(
            printer="bar" if i % 2 else "kitchen", peer="10.0.0.9:1234",
            received_at=format_time(1_700_000_000 + 60 * i), job=i, raw=b"r%d\n" % i,
            text=f"receipt {i}", cut="full", truncated=False))


async def committed(store, count: int) -> None:
    """Wait until the store has committed ``count`` receipts."""
    for _ in range(500):
        if store.receipts_total >= count:
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError(f"expected {count} receipts, store has {store.receipts_total}")

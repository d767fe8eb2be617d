"""
HTTP requests counted by route, method and status, and timed: the figures table reads the
counts (``printerd_http_requests_total``), a Prometheus histogram takes the latencies.

Labels stay bounded whatever a client sends: the route is the rule that matched (or
``unmatched``), an unusual method is ``other``, and the status is one the API itself chose.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable

from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

METHODS = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}
# A stream's time is how long the client listened, not how long printerd took to answer.
UNTIMED_ROUTES = {"/api/stream"}


class RequestMetrics:
    """``started(request, route)`` for each request; counts and latency once it finishes."""

    def __init__(self, clock: IReactorTime) -> None:
        self.clock = clock
        self.counts: Counter[tuple[str, str, str]] = Counter()  # (route, method, status)
        self._latency_observers: list[Callable[[str, float], None]] = []

    def on_latency(self, observe: Callable[[str, float], None]) -> None:
        """Call ``observe(route, seconds)`` for each timed request that finishes."""
        self._latency_observers.append(observe)

    def started(self, request: Request, route: str) -> None:
        method = request.method.decode("latin-1")
        method = method if method in METHODS else "other"
        # A method and its arguments rather than a closure: a stream keeps this for as long as
        # it is open, thousands at once, and a closure is four more objects each.
        request.notifyFinish().addBoth(self._finished, request, route, method,
                                       self.clock.seconds())

    def _finished(self, result: Any, request: Request, route: str, method: str,
                  began: float) -> None:
        # notifyFinish fails when the client left before the answer was complete.
        status = "disconnected" if result is not None else str(request.code)
        self.counts[(route, method, status)] += 1
        if route not in UNTIMED_ROUTES:
            for observe in self._latency_observers:
                observe(route, self.clock.seconds() - began)

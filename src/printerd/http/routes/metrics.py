"""printerd's figures: ``GET /api/stats`` (JSON) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.web.iweb import IRequest

from printerd.http.responses import json_app, json_body
from printerd.metrics import Stats


class MetricsRoutes:
    """The same counters, for people and scripts (stats) and for Prometheus (metrics)."""

    app = json_app()

    def __init__(self, stats: Stats, registry: CollectorRegistry) -> None:
        self.stats = stats
        self.registry = registry

    @app.route("/api/stats", methods=["GET"])
    async def stats_json(self, request: IRequest) -> bytes:
        return json_body(request, await self.stats.read())

    @app.route("/metrics", methods=["GET"])
    def prometheus(self, request: IRequest) -> bytes:
        """Prometheus text format."""
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)

"""printerd's figures: ``GET /api/stats`` (JSON) and ``GET /metrics`` (Prometheus)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from twisted.web.iweb import IRequest

from printerd.http.responses import json_app, json_body
from printerd.metrics import Figures


class MetricsRoutes:
    """The same figures (one table, ``printerd.metrics.FIGURES``) as JSON and for Prometheus."""

    app = json_app()

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    @app.route("/api/stats", methods=["GET"])
    async def stats(self, request: IRequest) -> bytes:
        return json_body(request, self.figures.stats(await self.figures.read()))

    @app.route("/metrics", methods=["GET"])
    async def prometheus(self, request: IRequest) -> bytes:
        """Prometheus text format."""
        body = self.figures.prometheus(await self.figures.read())
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return body

"""``GET /api/health``: whether printerd can take and keep jobs, for anyone who asks."""

from __future__ import annotations

from typing import Sequence

from twisted.web.iweb import IRequest

from printerd.forwarder.service import Forwarder
from printerd.http.auth import Authenticator
from printerd.http.responses import json_app, json_body
from printerd.rawport.factory import RawPrinter
from printerd.store.service import ReceiptStore


class HealthRoutes:
    """The checks; a client without a token is told only the overall status."""

    app = json_app()

    def __init__(self, store: ReceiptStore, printers: Sequence[RawPrinter], forwarder: Forwarder,
                 authenticator: Authenticator) -> None:
        self.store = store
        self.printers = tuple(printers)
        self.forwarder = forwarder
        self.authenticator = authenticator

    @app.route("/api/health", methods=["GET"])
    def health(self, request: IRequest) -> bytes:
        down = [p.listener.description for p in self.printers
                if p.listener is not None and not p.listener.listening]
        checks = {
            "database": "ok" if self.store.write_error is None
            else f"cannot write: {self.store.write_error}",
            "raw_listener": "ok" if not down else "not listening: " + ", ".join(down),
        }
        ok = all(value == "ok" for value in checks.values())
        status = "ok" if ok else "failing"
        # A webhook target that is down degrades health; it does not fail it.
        problems = self.forwarder.problems()
        checks["forwarder"] = "degraded: " + "; ".join(problems) if problems else "ok"
        if ok and problems:
            status = "degraded"
        code = 200 if ok else 503
        if not self.authenticator.authenticated(request):
            return json_body(request, {"status": status}, code)
        return json_body(request, {"status": status, "checks": checks}, code)

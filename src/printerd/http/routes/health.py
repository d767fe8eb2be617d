"""
Health for anyone who asks: ``/api/health`` (the checks), ``/readyz`` (can take and keep jobs
now: a readiness probe) and ``/livez`` (the process and its reactor answer: a liveness probe).

``/livez`` never looks at the database: with the disk full printerd keeps the receipts it
received queued in memory and retries, and a supervisor restarting it would lose them.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.web.iweb import IRequest

from printerd import __version__
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

    def _job_checks(self) -> dict[str, str]:
        """What taking and keeping a job needs: the raw listeners up, the database writable."""
        down = [p.listener.description for p in self.printers
                if p.listener is not None and not p.listener.listening]
        return {
            "database": "ok" if self.store.write_error is None
            else f"cannot write: {self.store.write_error}",
            "raw_listener": "ok" if not down else "not listening: " + ", ".join(down),
        }

    @app.route("/livez", methods=["GET"])
    def live(self, request: IRequest) -> bytes:
        # Answering at all is the check: a stuck reactor answers nothing and the probe times out.
        return json_body(request, {"status": "alive"})

    @app.route("/readyz", methods=["GET"])
    def ready(self, request: IRequest) -> bytes:
        checks = self._job_checks()
        ready = all(value == "ok" for value in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        if self.authenticator.authenticated(request):
            body["checks"] = checks
        return json_body(request, body, 200 if ready else 503)

    @app.route("/api/health", methods=["GET"])
    def health(self, request: IRequest) -> bytes:
        checks = self._job_checks()
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
        return json_body(request, {"status": status, "version": __version__, "checks": checks},
                         code)

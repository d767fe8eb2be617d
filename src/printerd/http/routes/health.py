"""
Health for anyone who asks: ``/api/health`` (the checks), ``/readyz`` (can take and keep jobs
now: a readiness probe) and ``/livez`` (the process and its reactor answer: a liveness probe).

``/livez`` never looks at the database: with the disk full printerd keeps the receipts it
received queued in memory and retries, and a supervisor restarting it would lose them.

The database check is a round trip (a ``SELECT 1`` from a reader thread, ``PING_TIMEOUT`` at
most) and the writer's state: a PostgreSQL server that went away fails it at once, even
while no receipt is being written.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from printerd import __version__
from printerd.forwarder.service import Forwarder
from printerd.http.auth import Authenticator
from printerd.http.responses import json_app, json_body
from printerd.rawport.factory import RawPrinter
from printerd.store.service import ReceiptStore


PING_TIMEOUT = 2.0  # seconds the database has to answer a health check's round trip


class HealthRoutes:
    """The checks; a client without a token is told only the overall status."""

    app = json_app()

    def __init__(self, store: ReceiptStore, printers: Sequence[RawPrinter], forwarder: Forwarder,
                 authenticator: Authenticator, clock: Optional[IReactorTime] = None) -> None:
        """``clock``: times out the database round trip (none: it is waited for)."""
        self.store = store
        self.printers = tuple(printers)
        self.forwarder = forwarder
        self.authenticator = authenticator
        self.clock = clock

    async def _database_check(self) -> str:
        if self.store.write_error is not None:
            return f"cannot write: {self.store.write_error}"
        ping = self.store.ping()
        if self.clock is not None:
            ping.addTimeout(PING_TIMEOUT, self.clock)
        try:
            await ping
        except Exception as e:
            return f"does not answer: {type(e).__name__}: {' '.join(str(e).split())}"
        return "ok"

    async def _job_checks(self) -> dict[str, str]:
        """What taking and keeping a job needs: the raw listeners up, the database writable."""
        down = [p.listener.description for p in self.printers
                if p.listener is not None and not p.listener.listening]
        return {
            "database": await self._database_check(),
            "raw_listener": "ok" if not down else "not listening: " + ", ".join(down),
        }

    @app.route("/livez", methods=["GET"])
    def live(self, request: IRequest) -> bytes:
        # Answering at all is the check: a stuck reactor answers nothing and the probe times out.
        return json_body(request, {"status": "alive"})

    @app.route("/readyz", methods=["GET"])
    async def ready(self, request: IRequest) -> bytes:
        checks = await self._job_checks()
        ready = all(value == "ok" for value in checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        if self.authenticator.authenticated(request):
            body["checks"] = checks
        return json_body(request, body, 200 if ready else 503)

    @app.route("/api/health", methods=["GET"])
    async def health(self, request: IRequest) -> bytes:
        checks = await self._job_checks()
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

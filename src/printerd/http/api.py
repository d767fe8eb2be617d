"""
The REST API (Klein), on the same reactor as the printer port.

JSON everywhere: every answer, errors included, is a JSON object; an error's body is
``{"error": "<clear message>"}`` with the status code that fits.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from collections import Counter
from typing import Any, Iterable, Optional, Sequence
from urllib.parse import urlencode

from klein import Klein
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from werkzeug.exceptions import HTTPException

from printerd import process
from printerd.escpos.status import PAPER_NEAR_END, PAPER_OK, PAPER_OUT
from printerd.forwarder import outbox
from printerd.http.auth import (
    COOKIE, SESSION_SECONDS, ApiGate, Authenticator, bearer_token,
)
from printerd.forwarder.service import Forwarder
from printerd.http.params import ApiError, QueryParams
from printerd.http.ratelimit import RateLimiter
from printerd.http.stream import StreamHub, SubscriberLimit, encode_event
from printerd.listener import ListenerService
from printerd.rawport.factory import RawPrintFactory, RawPrinter
from printerd.render.document import parsing
from printerd.render.service import FORMATS, Renderings
from printerd.store.receipts import Receipt, ReceiptQuery, parse_time
from printerd.store.service import ReceiptStore
from printerd.web.files import CONTENT_SECURITY_POLICY, static_file

MAX_PAGE = 500
MAX_ID = 2**63 - 1
MAX_SESSION_BODY = 4096
REPLAY_PAGE = 500


def json_body(request: IRequest, value: Any, code: int = 200) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps(value, separators=(",", ":")).encode() + b"\n"


def file_body(request: IRequest, body: bytes, content_type: bytes, cache: bytes) -> bytes:
    """A non-JSON answer (a rendering, a file of the page): its type is what it says."""
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Cache-Control", cache)
    return body


def _listeners_check(printers: Iterable[RawPrinter]) -> str:
    down = [p.listener.description for p in printers
            if p.listener is not None and not p.listener.listening]
    return "ok" if not down else "not listening: " + ", ".join(down)


def _receipt_id(value: int) -> int:
    """Ids are SQLite integers: anything larger cannot exist."""
    if value > MAX_ID:
        raise ApiError(404, f"no such id {value}")
    return value


def receipts_body(request: IRequest, receipts: Iterable[Receipt], **extra: Any) -> bytes:
    """``{"receipts": [...], **extra}`` from each receipt's JSON, encoded once and cached."""
    request.setHeader(b"Content-Type", b"application/json")
    tail = b"".join(b",%s:%s" % (json.dumps(k).encode(), json.dumps(v).encode())
                    for k, v in extra.items())
    return b'{"receipts":[' + b",".join(r.json_bytes for r in receipts) + b"]" + tail + b"}\n"


class PrinterdAPI:
    """The HTTP API over the store, the raw port and the process; ``resource()`` serves it."""

    app = Klein()
    log = Logger()

    def __init__(self, clock: IReactorTime, store: ReceiptStore,
                 printers: RawPrintFactory | Sequence[RawPrinter],
                 raw_listener: Optional[ListenerService] = None,
                 hub: Optional[StreamHub] = None,
                 registry: Optional[CollectorRegistry] = None,
                 forwarder: Optional[Forwarder] = None,
                 authenticator: Optional[Authenticator] = None,
                 limiter: Optional[RateLimiter] = None) -> None:
        self.clock = clock
        self.store = store
        if isinstance(printers, RawPrintFactory):  # one printer (tests, small setups)
            printers = [RawPrinter(printers, raw_listener)]
        self._printers = {p.factory.printer: p for p in printers}
        self.hub = hub
        self.registry = registry
        self.forwarder = forwarder
        self.authenticator = authenticator or Authenticator(clock, ())
        self.limiter = limiter
        self.started_at = clock.seconds()
        self.renderings = Renderings(store, {
            name: parsing(p.factory.emulation.name, p.factory.two_byte_encoding)
            for name, p in self._printers.items()})

    def resource(self):
        """The API, behind the body cap, the rate limit and the token check."""
        return ApiGate(self.app.resource(), self.authenticator, self.limiter)

    # -- errors ------------------------------------------------------------------------------

    @app.handle_errors(ApiError)
    def _api_error(self, request: IRequest, failure: Failure) -> bytes:
        error: ApiError = failure.value  # type: ignore[assignment]
        for name, value in error.headers.items():
            request.setHeader(name, value)
        return json_body(request, {"error": error.message}, error.code)

    @app.handle_errors(HTTPException)
    def _routing_error(self, request: IRequest, failure: Failure) -> bytes:
        # Klein raises werkzeug's NotFound / MethodNotAllowed while routing.
        error: HTTPException = failure.value  # type: ignore[assignment]
        message = {404: "no such resource", 405: "method not allowed"}.get(
            error.code or 500, error.description or "bad request")
        return json_body(request, {"error": message}, error.code or 500)

    @app.handle_errors(Exception)
    def _unexpected(self, request: IRequest, failure: Failure) -> bytes:
        self.log.failure("error answering {uri}", failure, uri=request.uri)
        return json_body(request, {"error": "internal error"}, 500)

    # -- routes ------------------------------------------------------------------------------

    @app.route("/api/health", methods=["GET"])
    def health(self, request: IRequest) -> bytes:
        checks = {
            "database": "ok" if self.store.write_error is None
            else f"cannot write: {self.store.write_error}",
            "raw_listener": _listeners_check(self._printers.values()),
        }
        ok = all(value == "ok" for value in checks.values())
        status = "ok" if ok else "failing"
        if self.forwarder is not None:
            # A webhook target that is down degrades health; it does not fail it.
            problems = self.forwarder.problems()
            checks["forwarder"] = "degraded: " + "; ".join(problems) if problems else "ok"
            if ok and problems:
                status = "degraded"
        if not getattr(request, "printerd_authenticated", True):
            return json_body(request, {"status": status}, 200 if ok else 503)
        return json_body(request, {"status": status, "checks": checks}, 200 if ok else 503)

    @app.route("/api/session", methods=["POST"])
    def session(self, request: Request) -> bytes:
        """Log a browser in: a token (JSON body or bearer header) buys an HttpOnly cookie."""
        token = bearer_token(request)
        if token is None:
            body = request.content.read(MAX_SESSION_BODY + 1) if request.content else b""
            if len(body) > MAX_SESSION_BODY:
                raise ApiError(413, "body too large")
            try:
                token = str(json.loads(body)["token"]).encode()
            except (ValueError, KeyError, TypeError):
                raise ApiError(400, 'body: expected {"token": "..."}') from None
        if not self.authenticator.enabled:
            raise ApiError(404, "no tokens are configured: the API is open")
        if not self.authenticator.token_ok(token):
            raise ApiError(401, "wrong token")
        request.addCookie(COOKIE, self.authenticator.open_session(), path=b"/", httpOnly=True,
                          sameSite="strict", max_age=str(SESSION_SECONDS).encode(),
                          secure=request.isSecure() or None)
        return json_body(request, {"ok": True})

    @app.route("/api/receipts", methods=["GET"])
    async def receipts(self, request: IRequest) -> bytes:
        params = QueryParams(request, {"limit", "before", "after", "since", "until",
                                       "printer", "q"})
        query = ReceiptQuery(
            limit=params.integer("limit", 50, 1, MAX_PAGE),
            before=params.optional_integer("before", 0),
            after=params.optional_integer("after", 0),
            since=params.optional("since", parse_time, "an ISO 8601 time"),
            until=params.optional("until", parse_time, "an ISO 8601 time"),
            printer=params.text("printer"),
            text=params.text("q"),
        )
        # One more than asked tells whether there is a next page.
        found = await self.store.find_receipts(replace(query, limit=query.limit + 1))
        page = found[:query.limit]
        next_url = None
        if len(found) > query.limit:
            args = {k: v for k, v in params.given().items() if k != "before"}
            args["before"] = str(page[-1].id)
            next_url = "/api/receipts?" + urlencode(args)
        return receipts_body(request, page, next=next_url)

    @app.route("/api/receipts/<int:receipt_id>", methods=["GET"])
    async def receipt(self, request: IRequest, receipt_id: int) -> bytes:
        found = await self.store.get_receipt(_receipt_id(receipt_id))
        if found is None:
            raise ApiError(404, f"no receipt {receipt_id}")
        return json_body(request, found.to_json())

    @app.route("/api/receipts/<int:receipt_id>/raw", methods=["GET"])
    async def receipt_raw(self, request: IRequest, receipt_id: int) -> bytes:
        raw = await self.store.get_raw(_receipt_id(receipt_id))
        if raw is None:
            raise ApiError(404, f"no receipt {receipt_id}")
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"Content-Disposition",
                          f'attachment; filename="receipt-{receipt_id}.bin"'.encode())
        return raw

    @app.route("/api/receipts/<int:receipt_id>.txt", methods=["GET"])
    async def receipt_text(self, request: IRequest, receipt_id: int) -> bytes:
        """Plain text at the paper's width (``width``: 32, 42, 48, 56 or 64; default 48)."""
        return await self._rendering(request, receipt_id, "txt")

    @app.route("/api/receipts/<int:receipt_id>.html", methods=["GET"])
    async def receipt_html(self, request: IRequest, receipt_id: int) -> bytes:
        """A self-contained page as on paper (``width`` in columns, as for .txt)."""
        # The page has inline styles and data: images only; nothing else may load or run.
        request.setHeader(b"Content-Security-Policy",
                          b"default-src 'none'; img-src data:; style-src 'unsafe-inline'")
        return await self._rendering(request, receipt_id, "html")

    @app.route("/api/receipts/<int:receipt_id>.png", methods=["GET"])
    async def receipt_png(self, request: IRequest, receipt_id: int) -> bytes:
        """A PNG at the paper's dot width (``width``: 576 or 512; default 576)."""
        return await self._rendering(request, receipt_id, "png")

    async def _rendering(self, request: IRequest, receipt_id: int, fmt: str) -> bytes:
        _, sizes, default, content_type = FORMATS[fmt]
        size = QueryParams(request, {"width"}).choice("width", default, sizes)
        body = await self.renderings.get(_receipt_id(receipt_id), fmt, size)
        if body is None:
            raise ApiError(404, f"no receipt {receipt_id}")
        # A receipt never changes: browsers may keep its renderings.
        return file_body(request, body, content_type, b"private, max-age=86400, immutable")

    @app.route("/api/recent", methods=["GET"])
    def recent(self, request: IRequest) -> bytes:
        params = QueryParams(request, {"limit"})
        limit = params.integer("limit", 50, 1, self.store.newest.maxlen or 1)
        return receipts_body(request, itertools.islice(reversed(self.store.newest), limit))

    @app.route("/api/stream", methods=["GET"])
    async def stream(self, request: Request) -> bytes:
        """Server-Sent Events: each committed receipt, resuming after Last-Event-ID."""
        if self.hub is None:
            raise ApiError(404, "no such resource")
        params = QueryParams(request, {"after", "printer"})
        after = params.optional_integer("after", 0)
        last_event_id = request.getHeader(b"last-event-id")
        if last_event_id is not None:
            text = last_event_id.decode("latin-1").strip()
            if not (text.isascii() and text.isdigit()):
                raise ApiError(400, "Last-Event-ID: must be a receipt id")
            after = int(text)
        printer = params.text("printer")
        try:
            subscriber = self.hub.subscribe(request, printer, after)
        except SubscriberLimit:
            raise ApiError(503, f"the stream has its maximum of {self.hub.max_subscribers} "
                                "subscribers: retry later", {b"Retry-After": b"30"}) from None
        try:
            request.setHeader(b"Content-Type", b"text/event-stream")
            request.setHeader(b"Cache-Control", b"no-cache")
            request.setHeader(b"X-Accel-Buffering", b"no")  # proxies: do not buffer
            request.write(b"retry: %d\n\n" % self.hub.retry_ms)  # sends the headers now
            request.registerProducer(subscriber, True)
            request.notifyFinish().addBoth(lambda _: subscriber.close())
            if after is not None:
                while not subscriber.closed:
                    page = await self.store.receipts_after(subscriber.last_id, REPLAY_PAGE,
                                                           printer)
                    for receipt in page:
                        subscriber.send(receipt.id, encode_event(receipt))
                    if len(page) < REPLAY_PAGE:
                        break
                    await subscriber.writable()
                subscriber.go_live()
            # Fires at the maximum duration; Klein cancels it when the client leaves.
            return await subscriber.done
        finally:
            subscriber.close()
            if request.channel is not None:  # gone if the client left
                request.unregisterProducer()

    @app.route("/api/printers", methods=["GET"])
    def printers(self, request: IRequest) -> bytes:
        return json_body(request, {"printers": [self._printer_json(p)
                                                for p in self._printers.values()]})

    def _printer_json(self, printer: RawPrinter) -> dict[str, Any]:
        factory = printer.factory
        listener = printer.listener.description if printer.listener else None
        return {"name": factory.printer, "listener": listener,
                "model": {"maker": factory.identity.maker, "model": factory.identity.model,
                          "serial": factory.identity.serial},
                "state": factory.state.to_json(),
                "counters": {"jobs": factory.jobs_total, "receipts": factory.receipts_total,
                             "bytes": factory.bytes_total,
                             "status_replies": factory.status_replies_total,
                             "unknown_commands": factory.unknown_commands_total}}

    @app.route("/api/printers/<name>/state", methods=["PUT"])
    def set_printer_state(self, request: IRequest, name: str) -> bytes:
        """Flip the printer offline, out of paper, cover open...: status replies follow."""
        printer = self._printers.get(name)
        if printer is None:
            raise ApiError(404, f"no printer {name!r}")
        body = request.content.read(MAX_SESSION_BODY + 1)
        try:
            changes = json.loads(body)
        except ValueError:
            raise ApiError(400, "body: expected a JSON object") from None
        if not isinstance(changes, dict):
            raise ApiError(400, "body: expected a JSON object")
        state = printer.factory.state
        fields = {"online": bool, "cover_open": bool, "drawer_open": bool, "paper": str}
        for key, value in changes.items():
            if key not in fields:
                raise ApiError(400, f"{key}: unknown field (allowed: {', '.join(fields)})")
            if not isinstance(value, fields[key]):
                raise ApiError(400, f"{key}: must be a {fields[key].__name__}")
        if changes.get("paper", PAPER_OK) not in (PAPER_OK, PAPER_NEAR_END, PAPER_OUT):
            raise ApiError(400, "paper: must be ok, near_end or out")
        printer.factory.set_state(replace(state, **changes))
        return json_body(request, self._printer_json(printer))

    # -- the web page ------------------------------------------------------------------------

    @app.route("/", methods=["GET"])
    def page(self, request: IRequest) -> bytes:
        return self._static(request, "index.html")

    @app.route("/static/<name>", methods=["GET"])
    def static_files(self, request: IRequest, name: str) -> bytes:
        return self._static(request, name)

    def _static(self, request: IRequest, name: str) -> bytes:
        found = static_file(name)
        if found is None:
            raise ApiError(404, "no such resource")
        content, content_type = found
        request.setHeader(b"Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return file_body(request, content, content_type, b"no-cache")

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest) -> bytes:
        """Prometheus text format."""
        if self.registry is None:
            raise ApiError(404, "no such resource")
        request.setHeader(b"Content-Type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(self.registry)

    def _forwarder(self) -> Forwarder:
        if self.forwarder is None:
            raise ApiError(404, "no such resource")
        return self.forwarder

    @app.route("/api/forwarder", methods=["GET"])
    async def forwarder_status(self, request: IRequest) -> bytes:
        return json_body(request, {"targets": await self._forwarder().report()})

    @app.route("/api/forwarder/dead", methods=["GET"])
    async def dead_letters(self, request: IRequest) -> bytes:
        self._forwarder()
        limit = QueryParams(request, {"limit"}).integer("limit", 100, 1, MAX_PAGE)
        return json_body(request, {"dead": await self.store.read(outbox.dead_letters, limit)})

    @app.route("/api/forwarder/dead/<int:delivery_id>/retry", methods=["POST"])
    async def retry_dead_letter(self, request: IRequest, delivery_id: int) -> bytes:
        forwarder = self._forwarder()
        delivery_id = _receipt_id(delivery_id)
        changed = await self.store.write(outbox.retry_dead, self.clock.seconds(), delivery_id)
        if not changed:
            raise ApiError(404, f"no dead delivery {delivery_id}")
        forwarder.wake()
        return json_body(request, {"retried": changed})

    @app.route("/api/forwarder/dead/retry", methods=["POST"])
    async def retry_all_dead_letters(self, request: IRequest) -> bytes:
        forwarder = self._forwarder()
        changed = await self.store.write(outbox.retry_dead, self.clock.seconds(), None)
        forwarder.wake()
        return json_body(request, {"retried": changed})

    @app.route("/api/stats", methods=["GET"])
    async def stats(self, request: IRequest) -> bytes:
        stats = self.collect_stats()
        if self.forwarder is not None:
            counts = await self.store.read(outbox.counts)
            stats["forwarder_pending"] = sum(c.get(outbox.PENDING, 0) for c in counts.values())
            stats["forwarder_dead"] = sum(c.get(outbox.DEAD, 0) for c in counts.values())
        return json_body(request, stats)

    def collect_stats(self) -> dict[str, Any]:
        factories = [p.factory for p in self._printers.values()]

        def total(attribute: str) -> int:
            return sum(getattr(f, attribute) for f in factories)

        junk: Counter[str] = Counter()
        for factory in factories:
            junk.update(factory.junk_total)
        stats: dict[str, Any] = {
            "receipts_total": self.store.receipts_total,
            "receipts_pending": self.store.pending_count,
            "jobs_total": total("jobs_total"),
            "bytes_total": total("bytes_total"),
            "connections_active": total("connections_active"),
            "connections_waiting": total("connections_waiting"),
            "connections_total": total("connections_total"),
            "connections_refused_total": total("connections_refused_total"),
            "junk_connections_total": dict(junk),
            "uptime_s": round(self.clock.seconds() - self.started_at, 3),
            "threads": process.thread_count(),
            "rss_bytes": process.rss_bytes(),
            "db_bytes": self.store.database_bytes(),
            "unknown_commands_total": total("unknown_commands_total"),
            "status_replies_total": total("status_replies_total"),
        }
        if self.hub is not None:
            stats.update(self.hub.stats())
        if self.limiter is not None:
            stats["http_rate_limited_total"] = self.limiter.limited_total
        return stats

"""
API authentication: bearer tokens, and a session cookie for browsers.

When tokens are configured, every ``/api/*`` route and ``/metrics`` needs
``Authorization: Bearer <token>`` or the ``printerd_session`` cookie that ``POST /api/session``
sets (EventSource cannot send headers).  ``/api/health`` answers anyone, but tells only the
status to those without a token.  Tokens are compared in constant time and are never read from
query strings.
"""

from __future__ import annotations

import hmac
import json
import secrets
from typing import Optional

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from printerd.http.ratelimit import RateLimiter

COOKIE = b"printerd_session"
SESSION_SECONDS = 12 * 3600
# Probes a supervisor calls without a token; they are not rate limited either.
PROBE_PATHS = {b"/api/health", b"/livez", b"/readyz"}
OPEN_PATHS = PROBE_PATHS | {b"/api/session", b"/"}  # "/": the page, which shows a login form
STATIC_PREFIX = b"/static/"  # the page's scripts and styles: no data in them
MAX_BODY = 64 * 1024  # the API takes no large bodies


class Authenticator:
    """Knows the tokens and the browser sessions opened with them."""

    def __init__(self, clock: IReactorTime, tokens: tuple[str, ...]) -> None:
        self.clock = clock
        self.tokens = tuple(t.encode() for t in tokens)
        self._sessions: dict[bytes, float] = {}  # session id -> expiry

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def token_ok(self, candidate: bytes) -> bool:
        # Compare against every token, without stopping early, in constant time each.
        matches = [hmac.compare_digest(candidate, token) for token in self.tokens]
        return any(matches)

    def open_session(self) -> bytes:
        now = self.clock.seconds()
        for expired in [s for s, until in self._sessions.items() if until < now]:
            del self._sessions[expired]
        session = secrets.token_urlsafe(32).encode()
        self._sessions[session] = now + SESSION_SECONDS
        return session

    def session_ok(self, session: bytes) -> bool:
        until = self._sessions.get(session)
        return until is not None and until >= self.clock.seconds()

    def authenticated(self, request: IRequest) -> bool:
        if not self.enabled:
            return True
        header = request.getHeader(b"authorization") or b""
        if header[:7].lower() == b"bearer ":
            return self.token_ok(header[7:].strip())
        session = request.getCookie(COOKIE)
        return session is not None and self.session_ok(session)


def bearer_token(request: IRequest) -> Optional[bytes]:
    header = request.getHeader(b"authorization") or b""
    return header[7:].strip() if header[:7].lower() == b"bearer " else None


def _refuse(request: IRequest, code: int, message: str, **headers: bytes) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    for name, value in headers.items():
        request.setHeader(name.replace("_", "-").encode(), value)
    return json.dumps({"error": message}).encode() + b"\n"


class ApiGate(Resource):
    """
    Wraps the API resource: oversized bodies (413), the per-client rate limit (429) and
    authentication (401) are answered before any route runs.
    """

    isLeaf = True

    def __init__(self, inner: Resource, authenticator: Authenticator,
                 limiter: Optional[RateLimiter] = None) -> None:
        super().__init__()
        self.inner = inner
        self.authenticator = authenticator
        self.limiter = limiter

    def render(self, request: IRequest) -> bytes:
        if getattr(request, "body_too_large", False):
            limit = getattr(request, "body_limit", MAX_BODY)
            return _refuse(request, 413, f"request body over {limit} bytes")
        if self.limiter is not None and request.path not in PROBE_PATHS:
            allowed, wait = self.limiter.allow(request.getClientAddress().host)
            if not allowed:
                return _refuse(request, 429, f"too many requests: retry in {wait} s",
                               Retry_After=str(wait).encode())
        path = request.path
        is_open = path in OPEN_PATHS or path.startswith(STATIC_PREFIX)
        if not is_open and not self.authenticator.authenticated(request):
            return _refuse(request, 401, "authentication required: send Authorization: "
                                         "Bearer <token>, or log in with POST /api/session",
                           WWW_Authenticate=b'Bearer realm="printerd"')
        return self.inner.render(request)


class LargeBodies:
    """
    Lets requests with an API token send bodies of up to ``limit`` bytes (a central
    printerd's ``POST /api/ingest`` takes forwarded receipts with their raw bytes); anyone
    else still gets MAX_BODY.  An ``ApiSite`` holds it.
    """

    def __init__(self, limit: int, authenticator: Authenticator) -> None:
        self.limit = limit
        self.authenticator = authenticator

    def limit_for(self, request: IRequest) -> int:
        if bearer_token(request) is not None and self.authenticator.authenticated(request):
            return max(self.limit, MAX_BODY)
        return MAX_BODY


class ApiSite(Site):
    """The HTTP site; ``large_bodies`` (if set) lifts the body limit for token holders."""

    large_bodies: Optional[LargeBodies] = None


class LimitedRequest(Request):
    """A request whose body is dropped past its limit (the gate then answers 413)."""

    body_too_large = False
    body_limit = MAX_BODY
    _body_bytes = 0

    def gotLength(self, length: Optional[int]) -> None:
        # The headers are in: whose request it is decides how large its body may be.
        large = getattr(getattr(self.channel, "site", None), "large_bodies", None)
        if large is not None:
            self.body_limit = large.limit_for(self)
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._body_bytes > self.body_limit:
            self.body_too_large = True
            return
        super().handleContentChunk(data)

"""
API authentication: bearer tokens, and a session cookie for browsers; and the gate in front
of every route.

When tokens are configured, every ``/api/*`` route and ``/metrics`` needs
``Authorization: Bearer <token>`` or the ``printerd_session`` cookie that ``POST /api/session``
sets (EventSource cannot send headers).  ``/api/health`` answers anyone, but tells only the
status to those without a token.  Tokens are compared in constant time and are never read from
query strings.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Optional

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

from printerd.http.hosts import AllowedHosts
from printerd.http.ratelimit import RateLimiter
from printerd.http.responses import error_body
from printerd.http.site import MAX_BODY, local_host

COOKIE = b"printerd_session"
SESSION_SECONDS = 12 * 3600
# Probes a supervisor calls without a token; they are not rate limited either.
PROBE_PATHS = {b"/api/health", b"/livez", b"/readyz"}
# "/": the page, which shows a login form; the OpenAPI document describes the API, holds no data.
OPEN_PATHS = PROBE_PATHS | {b"/api/session", b"/", b"/api/openapi.json"}
STATIC_PREFIX = b"/static/"  # the page's scripts and styles: no data in them
# Not charged to the REST rate limit once authenticated: the stream has caps of its own (a
# browser's EventSource never reconnects after a 429).
STREAM = b"/api/stream"


class Authenticator:
    """Knows the tokens and the browser sessions opened with them."""

    def __init__(self, clock: IReactorTime, tokens: tuple[str, ...]) -> None:
        self.clock = clock
        self.tokens = tuple(t.encode() for t in tokens)
        self._sessions: dict[bytes, tuple[float, int]] = {}  # session -> (expiry, token index)

    @property
    def enabled(self) -> bool:
        return bool(self.tokens)

    def token_index(self, candidate: bytes) -> Optional[int]:
        """Which token ``candidate`` is (None: none of them), in constant time."""
        # Compare against every token, without stopping early, in constant time each.
        matches = [hmac.compare_digest(candidate, token) for token in self.tokens]
        return matches.index(True) if any(matches) else None

    def open_session(self, token: bytes) -> bytes:
        """A new session for a browser that showed ``token`` (which must be one of ours)."""
        index = self.token_index(token)
        if index is None:
            raise ValueError("not a token")
        now = self.clock.seconds()
        for expired in [s for s, (until, _) in self._sessions.items() if until < now]:
            del self._sessions[expired]
        session = secrets.token_urlsafe(32).encode()
        self._sessions[session] = (now + SESSION_SECONDS, index)
        return session

    def close_session(self, session: bytes) -> None:
        """Log a browser out: its session id is no longer accepted."""
        self._sessions.pop(session, None)

    def token_of(self, request: IRequest) -> Optional[int]:
        """The index of the token a request carries (bearer, or a live session's); else None."""
        token = bearer_token(request)
        if token is not None:
            return self.token_index(token)
        session = request.getCookie(COOKIE)
        found = self._sessions.get(session) if session is not None else None
        if found is None or found[0] < self.clock.seconds():
            return None
        return found[1]

    def authenticated(self, request: IRequest) -> bool:
        return not self.enabled or self.token_of(request) is not None


def bearer_token(request: IRequest) -> Optional[bytes]:
    header = request.getHeader(b"authorization") or b""
    return header[7:].strip() if header[:7].lower() == b"bearer " else None


class ApiGate(Resource):
    """
    In front of every route: oversized bodies (413), a ``Host`` this printerd does not answer
    to (421, DNS rebinding), the rate limit (429) and authentication (401) are answered before
    any route runs.

    The rate limit is per token for requests that carry one, and per client address for the
    rest, so strangers failing at the owner's address (or behind the same tunnel) never spend
    the owner's requests; the address is the one a trusted proxy reports.
    """

    isLeaf = True

    def __init__(self, inner: Resource, authenticator: Authenticator,
                 limiter: Optional[RateLimiter] = None,
                 hosts: Optional[AllowedHosts] = None) -> None:
        super().__init__()
        self.inner = inner
        self.authenticator = authenticator
        self.limiter = limiter
        self.hosts = hosts or AllowedHosts()

    def render(self, request: IRequest) -> bytes:
        # Every answer is what its Content-Type says: no browser may guess otherwise.
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        if getattr(request, "body_too_large", False):
            return error_body(request, 413, f"request body over {MAX_BODY} bytes")
        if not self.hosts.allows(request.getHeader(b"host"), local_host(request)):
            return error_body(request, 421, "this printerd does not answer to that Host: list "
                                            "the name in http_allowed_hosts to use it")
        path = request.path
        token = self.authenticator.token_of(request) if self.authenticator.enabled else None
        authenticated = not self.authenticator.enabled or token is not None
        limited = path not in PROBE_PATHS and (path != STREAM or not authenticated)
        if self.limiter is not None and limited:
            client = f"token {token}" if token is not None \
                else f"address {getattr(request.getClientAddress(), 'host', '-')}"
            allowed, wait = self.limiter.allow(client)
            if not allowed:
                request.setHeader(b"Retry-After", str(wait).encode())
                return error_body(request, 429, f"too many requests: retry in {wait} s")
        if not authenticated and not (path in OPEN_PATHS or path.startswith(STATIC_PREFIX)):
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="printerd"')
            return error_body(request, 401, "authentication required: send Authorization: "
                                            "Bearer <token>, or log in with POST /api/session")
        return self.inner.render(request)

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

COOKIE = b"printerd_session"
SESSION_SECONDS = 12 * 3600
OPEN_PATHS = {b"/api/health", b"/api/session"}


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
        session = request.getCookie(COOKIE)  # type: ignore[attr-defined]
        return session is not None and self.session_ok(session)


def bearer_token(request: IRequest) -> Optional[bytes]:
    header = request.getHeader(b"authorization") or b""
    return header[7:].strip() if header[:7].lower() == b"bearer " else None


class AuthGate(Resource):
    """Wraps the API resource: answers 401 before any protected route runs."""

    isLeaf = True

    def __init__(self, inner: Resource, authenticator: Authenticator) -> None:
        super().__init__()
        self.inner = inner
        self.authenticator = authenticator

    def render(self, request: IRequest) -> bytes:
        request.printerd_authenticated = self.authenticator.authenticated(request)  # type: ignore
        if not request.printerd_authenticated and request.path not in OPEN_PATHS:  # type: ignore
            request.setResponseCode(401)
            request.setHeader(b"Content-Type", b"application/json")
            request.setHeader(b"WWW-Authenticate", b'Bearer realm="printerd"')
            return json.dumps({"error": "authentication required: send Authorization: "
                                        "Bearer <token>, or log in with POST /api/session"}
                              ).encode() + b"\n"
        return self.inner.render(request)

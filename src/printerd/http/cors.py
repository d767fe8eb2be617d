"""
CORS: the ``cors_origins`` setting lets pages from other origins (a dashboard) call the API and
read the stream.  Off by default: a browser then keeps other origins' pages from reading any
answer.  An allowed origin gets its own name back in ``Access-Control-Allow-Origin`` (with
credentials allowed: the session cookie or an ``Authorization`` header still has to be sent, so
CORS opens nothing that the token check would refuse) and preflight requests are answered here,
before the token check, as browsers send them without credentials.
"""

from __future__ import annotations

from typing import Iterable

from twisted.web.iweb import IRequest
from twisted.web.resource import Resource

ALLOWED_METHODS = b"GET, POST, PUT"
ALLOWED_HEADERS = b"Authorization, Content-Type, Last-Event-ID"
EXPOSED_HEADERS = b"Retry-After, WWW-Authenticate, Content-Disposition"
PREFLIGHT_MAX_AGE = b"600"  # seconds a browser may reuse a preflight answer


class CorsPolicy:
    """Which origins may read answers: exact ``scheme://host[:port]`` names, or ``*``: any."""

    def __init__(self, origins: Iterable[str]) -> None:
        origins = tuple(origins)
        self.any_origin = "*" in origins
        self.origins = frozenset(origin for origin in origins if origin != "*")

    def allows(self, origin: str) -> bool:
        return self.any_origin or origin in self.origins


class CorsResource(Resource):
    """Wraps the API: CORS headers for allowed origins, preflights answered with 204."""

    isLeaf = True

    def __init__(self, inner: Resource, policy: CorsPolicy) -> None:
        super().__init__()
        self.inner = inner
        self.policy = policy

    def render(self, request: IRequest) -> bytes:
        # Answers differ by Origin: caches must keep them apart.
        request.responseHeaders.addRawHeader(b"Vary", b"Origin")
        origin = request.getHeader(b"origin")
        if origin is not None and self.policy.allows(origin.decode("latin-1")):
            request.setHeader(b"Access-Control-Allow-Origin", origin)
            request.setHeader(b"Access-Control-Allow-Credentials", b"true")
            request.setHeader(b"Access-Control-Expose-Headers", EXPOSED_HEADERS)
            if request.method == b"OPTIONS" and \
                    request.getHeader(b"access-control-request-method") is not None:
                request.setHeader(b"Access-Control-Allow-Methods", ALLOWED_METHODS)
                request.setHeader(b"Access-Control-Allow-Headers", ALLOWED_HEADERS)
                request.setHeader(b"Access-Control-Max-Age", PREFLIGHT_MAX_AGE)
                request.setResponseCode(204)
                return b""
        return self.inner.render(request)

"""
What every route module answers with: JSON bodies, typed file bodies, JSON errors.

Each route module has its own Klein app; ``json_app()`` makes one whose errors are answered
the same way everywhere: an ``ApiError`` with its code, werkzeug's routing errors with theirs,
anything unexpected as a logged 500.  Every error body is ``{"error": "<message>"}``.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from klein import Klein
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException

from printerd.compact_json import compact_json
from printerd.http.params import ApiError
from printerd.store.receipts import Receipt

MAX_ID = 2**63 - 1  # ids are SQLite integers

log = Logger()


def json_body(request: IRequest, value: Any, code: int = 200) -> bytes:
    return json_body_encoded(request, encode_json(value), code)


def encode_json(value: Any) -> bytes:
    """The bytes of a JSON answer."""
    return compact_json(value).encode() + b"\n"


def json_body_encoded(request: IRequest, body: bytes, code: int = 200) -> bytes:
    """A JSON answer whose bytes were encoded before (``encode_json``)."""
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    return body


def error_body(request: IRequest, code: int, message: str) -> bytes:
    return json_body(request, {"error": message}, code)


def file_body(request: IRequest, body: bytes, content_type: bytes, cache: bytes) -> bytes:
    """A non-JSON answer (a rendering, a file of the page): its type is what it says."""
    request.setHeader(b"Content-Type", content_type)
    request.setHeader(b"X-Content-Type-Options", b"nosniff")
    request.setHeader(b"Cache-Control", cache)
    return body


def receipts_body(request: IRequest, receipts: Iterable[Receipt], **extra: Any) -> bytes:
    """``{"receipts": [...], **extra}`` from each receipt's JSON, encoded once and cached."""
    request.setHeader(b"Content-Type", b"application/json")
    tail = b"".join(b",%s:%s" % (json.dumps(k).encode(), json.dumps(v).encode())
                    for k, v in extra.items())
    return b'{"receipts":[' + b",".join(r.json_bytes for r in receipts) + b"]" + tail + b"}\n"


def stored_id(value: int, what: str = "id") -> int:
    """An id from a path: anything larger than SQLite's integers cannot exist."""
    if value > MAX_ID:
        raise ApiError(404, f"no such {what} {value}")
    return value


ROUTING_MESSAGES = {404: "no such resource", 405: "method not allowed"}


def api_error_body(request: IRequest, error: ApiError) -> bytes:
    """An ``ApiError``'s answer: its code, headers and message."""
    for name, value in error.headers.items():
        request.setHeader(name, value)
    return error_body(request, error.code, error.message)


def internal_error_body(request: IRequest, failure: Failure) -> bytes:
    """Anything unexpected: logged, answered 500."""
    log.failure("error answering {uri}", failure, uri=request.uri)
    return error_body(request, 500, "internal error")


def _api_error(self: object, request: IRequest, failure: Failure) -> bytes:
    return api_error_body(request, failure.value)  # type: ignore[arg-type]


def _routing_error(self: object, request: IRequest, failure: Failure) -> bytes:
    # Klein raises werkzeug's NotFound / MethodNotAllowed while routing.
    error: HTTPException = failure.value  # type: ignore[assignment]
    code = error.code or 500
    return error_body(request, code, ROUTING_MESSAGES.get(code, error.description or "bad request"))


def _unexpected(self: object, request: IRequest, failure: Failure) -> bytes:
    return internal_error_body(request, failure)


def json_app() -> Klein:
    """A Klein app for a route module, its errors answered as JSON (see the module docstring)."""
    app = Klein()
    # Klein calls a bound app's error handlers with the route module first; they ignore it.
    app.handle_errors(ApiError)(_api_error)
    app.handle_errors(HTTPException)(_routing_error)
    app.handle_errors(Exception)(_unexpected)
    return app

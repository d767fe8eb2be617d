"""Parsing what clients send (query strings, JSON bodies): every bad input is a 4xx that says why."""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, TypeVar

from twisted.web.iweb import IRequest

T = TypeVar("T")

MAX_TEXT = 500


class ApiError(Exception):
    """An error answer: status code, a message for the client, optional extra headers."""

    def __init__(self, code: int, message: str, headers: Optional[dict[bytes, bytes]] = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers or {}


class QueryParams:
    """A request's query parameters, each given at most once, from a known set of names."""

    def __init__(self, request: IRequest, allowed: set[str]) -> None:
        self._values: dict[str, str] = {}
        for raw_name, raw_values in (request.args or {}).items():
            name = raw_name.decode("utf-8", "replace")
            if name not in allowed:
                raise ApiError(400, f"{name}: unknown parameter (allowed: "
                                    f"{', '.join(sorted(allowed))})")
            if len(raw_values) != 1:
                raise ApiError(400, f"{name}: give it once")
            try:
                self._values[name] = raw_values[0].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"{name}: not valid UTF-8") from None

    def given(self) -> dict[str, str]:
        return dict(self._values)

    def text(self, name: str) -> Optional[str]:
        value = self._values.get(name)
        if value is not None and not 0 < len(value) <= MAX_TEXT:
            raise ApiError(400, f"{name}: must be 1 to {MAX_TEXT} characters")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.optional_integer(name, low, high)
        return default if value is None else value

    def optional_integer(self, name: str, low: int, high: int = 2**63 - 1) -> Optional[int]:
        text = self._values.get(name)
        if text is None:
            return None
        if not (text.isascii() and text.isdigit()) or not low <= int(text) <= high:
            raise ApiError(400, f"{name}: must be an integer from {low} to {high}")
        return int(text)

    def optional_choice(self, name: str, allowed: tuple[int, ...]) -> Optional[int]:
        """One of a few integers (a paper width...), or None; the error names them all."""
        text = self._values.get(name)
        if text is None:
            return None
        if text not in {str(value) for value in allowed}:
            raise ApiError(400, f"{name}: must be one of {', '.join(map(str, allowed))}")
        return int(text)

    def optional(self, name: str, parse: Callable[[str], T], expected: str) -> Optional[T]:
        text = self._values.get(name)
        if text is None:
            return None
        try:
            return parse(text)
        except (ValueError, OverflowError):
            raise ApiError(400, f"{name}: {text!r} is not {expected}") from None


def parse_json_body(request: IRequest, max_bytes: int, expected: str) -> Any:
    """
    The request's body as JSON: 413 past ``max_bytes``, else 400 ("body: <expected>") for
    anything that does not parse, nesting deeper than Python recurses included.
    """
    body = request.content.read(max_bytes + 1) if request.content is not None else b""
    if len(body) > max_bytes:
        raise ApiError(413, f"body over {max_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError is not a ValueError
        raise ApiError(400, f"body: {expected}") from None

"""An HTTP response's body read up to a byte limit, for the pollers that download from servers."""

from __future__ import annotations

from typing import Callable

from twisted.internet.defer import Deferred
from twisted.web.iweb import IResponse

# treq's ``collect`` (``treq.collect``, ``StubTreq(...).collect``): feeds the body to a callable
# chunk by chunk; a callable that raises ends the download, closing the connection.
Collect = Callable[[IResponse, Callable[[bytes], None]], "Deferred[None]"]


class BodyTooLarge(Exception):
    """A response's body is over the limit its reader set."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} bytes")
        self.limit = limit


def read_body(collect: Collect, response: IResponse, limit: int) -> Deferred[bytes]:
    """
    The body of ``response``, at most ``limit`` bytes, through ``collect`` (the HTTP client's
    ``collect``). Past the limit, or on the first chunk of a body whose Content-Length is over
    it, it fails with BodyTooLarge and the client drops the connection: the rest is never read.
    """
    declared = response.length if isinstance(response.length, int) else 0  # UNKNOWN_LENGTH
    chunks: list[bytes] = []
    size = 0

    def keep(data: bytes) -> None:
        nonlocal size
        size += len(data)
        if size > limit or declared > limit:
            raise BodyTooLarge(limit)
        chunks.append(data)

    return collect(response, keep).addCallback(lambda _: b"".join(chunks))

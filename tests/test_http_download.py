"""
The size-capped body download the pollers share (CloudPRNT, Server Direct Print): real treq
against a real Twisted HTTP server on 127.0.0.1, which can stop part way through a body and
hold the connection open, so a test sees whether the reader waited for more than it needed.
"""

from __future__ import annotations

from typing import Optional

import pytest
import pytest_twisted
import treq
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from printerd.http_download import BodyTooLarge, read_body
from support import local_site, wait_until

LIMIT = 1000


class StreamingServer(Resource):
    """Writes ``chunks`` one write each; then ends the body, or with ``hold`` keeps the
    connection open and records how it ended (the client dropping it, say)."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []
        self.content_length: Optional[int] = None
        self.hold = False
        self.ended: Optional[str] = None

    def render_GET(self, request) -> object:
        if self.content_length is not None:
            request.setHeader(b"content-length", str(self.content_length).encode())
        for chunk in self.chunks:
            request.write(chunk)
        if not self.hold:
            request.finish()
            return NOT_DONE_YET
        request.notifyFinish().addCallbacks(lambda _: setattr(self, "ended", "finished"),
                                            lambda _: setattr(self, "ended", "connection lost"))
        return NOT_DONE_YET


class FixedBody(Resource):
    isLeaf = True

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self.body = body

    def render_GET(self, request) -> bytes:
        return self.body


@pytest_twisted.async_yield_fixture()
async def server():
    resource = StreamingServer()
    async with local_site(resource, "/job") as resource.url:
        yield resource


async def download(server: StreamingServer) -> bytes:
    response = await treq.get(server.url, persistent=False)
    result: Deferred[bytes] = read_body(treq.collect, response, LIMIT)
    # A reader that waited for more than the server sent would hang here: fail instead.
    return await result.addTimeout(10, reactor)


@pytest_twisted.ensureDeferred
async def test_a_body_up_to_the_limit_is_returned_whole(server):
    server.chunks = [b"a" * 400, b"b" * 400, b"c" * 200]  # exactly LIMIT, chunked
    assert await download(server) == b"a" * 400 + b"b" * 400 + b"c" * 200
    server.content_length = LIMIT  # and with its length declared
    assert await download(server) == b"a" * 400 + b"b" * 400 + b"c" * 200
    server.chunks, server.content_length = [], None
    assert await download(server) == b""


@pytest_twisted.ensureDeferred
async def test_past_the_limit_it_fails_without_waiting_for_the_rest_and_drops_the_connection(
        server):
    # No declared length: the server sends one byte too many, then would send more later.
    server.chunks, server.hold = [b"x" * 600, b"y" * (LIMIT - 600 + 1)], True
    with pytest.raises(BodyTooLarge, match=f"more than {LIMIT} bytes"):
        await download(server)
    await wait_until(lambda: server.ended is not None)
    assert server.ended == "connection lost"


@pytest_twisted.ensureDeferred
async def test_a_declared_length_past_the_limit_fails_on_the_first_chunk(server):
    # 10 MB announced, one byte sent: nothing more is waited for.
    server.content_length, server.chunks, server.hold = 10 * 1024 * 1024, [b"x"], True
    with pytest.raises(BodyTooLarge) as raised:
        await download(server)
    assert raised.value.limit == LIMIT
    await wait_until(lambda: server.ended is not None)
    assert server.ended == "connection lost"


@pytest_twisted.ensureDeferred
async def test_the_clients_own_collect_is_used():
    # An injected treq-like client (StubTreq, as the pollers' tests pass) works the same.
    http = StubTreq(FixedBody(b"z" * (LIMIT + 1)))
    response = await http.get("http://pos.example/job")
    with pytest.raises(BodyTooLarge):
        await read_body(http.collect, response, LIMIT)
    http = StubTreq(FixedBody(b"z" * LIMIT))
    response = await http.get("http://pos.example/job")
    assert await read_body(http.collect, response, LIMIT) == b"z" * LIMIT

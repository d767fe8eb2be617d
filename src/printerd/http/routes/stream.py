"""
``GET /api/stream``: Server-Sent Events from the stream hub.

A direct route (``api.DirectRoute``): the route table hands it the request without Klein.  A
stream is set up in a connect storm thousands at a time and then held open for minutes; through
Klein each one cost its routing, adapters, Deferreds and a suspended coroutine for as long as it
was open.  Here the request is answered by hand: subscribed, headers and the ``retry`` line
written at once, and ``NOT_DONE_YET`` returned; the hub finishes the request when the stream
ends, and the request's own ``notifyFinish`` tells the hub when the client leaves.
"""

from __future__ import annotations

import json
from typing import Union, cast

from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import NOT_DONE_YET, Request

from printerd.http.params import ApiError, QueryParams
from printerd.http.responses import api_error_body, internal_error_body
from printerd.http.stream import StreamHub, Subscriber, SubscriberLimit


def database_event(database_id: str) -> bytes:
    """The first event of every stream: which database it serves (ids count within one)."""
    return b'event: database\ndata: {"database_id":%s}\n\n' % json.dumps(database_id).encode()


class StreamRoutes:
    """Opens a subscriber on the hub for each stream request; the hub does the rest."""

    path = "/api/stream"
    methods = frozenset({"GET"})

    def __init__(self, hub: StreamHub, database_id: str = "") -> None:
        self.hub = hub
        # What every stream starts with, made once: the retry line, then which database.
        self._opening = b"retry: %d\n\n" % hub.retry_ms + database_event(database_id)

    def render(self, request: IRequest) -> Union[bytes, int]:
        """Each committed receipt, resuming after Last-Event-ID (or ``?after=``)."""
        try:
            return self._open(request)
        except ApiError as error:
            return api_error_body(request, error)
        except Exception:
            return internal_error_body(request, Failure())

    def _open(self, request: IRequest) -> Union[bytes, int]:
        params = QueryParams(request, {"after", "printer"})
        after = params.optional_integer("after", 0)
        last_event_id = request.getHeader(b"last-event-id")
        if last_event_id is not None:
            text = last_event_id.decode("latin-1").strip()
            if not (text.isascii() and text.isdigit()):
                raise ApiError(400, "Last-Event-ID: must be a receipt id")
            after = int(text)
        printer = params.text("printer")
        if request.method == b"HEAD":
            _stream_headers(request)
            return b""  # the headers a stream would have; nothing to hold open
        client = getattr(request.getClientAddress(), "host", None) or "-"
        try:
            subscriber = self.hub.subscribe(request, printer, after, client)
        except SubscriberLimit as e:
            raise ApiError(503, f"{e}: retry later", {b"Retry-After": b"30"}) from None
        try:
            _stream_headers(request)
            # Sends the headers now; a client that saw another database starts over.
            request.write(self._opening)
            held = cast(Request, request)
            held.registerProducer(subscriber, True)
            held.notifyFinish().addBoth(_left, subscriber)
            self.hub.begin(subscriber)
        except BaseException:
            subscriber.close()
            raise
        return NOT_DONE_YET


def _stream_headers(request: IRequest) -> None:
    request.setHeader(b"Content-Type", b"text/event-stream")
    request.setHeader(b"Cache-Control", b"no-cache")
    request.setHeader(b"X-Accel-Buffering", b"no")  # proxies: do not buffer


def _left(result: object, subscriber: Subscriber) -> None:
    """The request is over: the client left (a failure: consumed here), or the stream ended."""
    subscriber.close()

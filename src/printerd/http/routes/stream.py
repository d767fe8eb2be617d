"""``GET /api/stream``: Server-Sent Events from the stream hub."""

from __future__ import annotations

import json

from twisted.web.server import Request

from printerd.http.params import ApiError, QueryParams
from printerd.http.responses import json_app
from printerd.http.stream import StreamHub, SubscriberLimit


def database_event(database_id: str) -> bytes:
    """The first event of every stream: which database it serves (ids count within one)."""
    return b'event: database\ndata: {"database_id":%s}\n\n' % json.dumps(database_id).encode()


class StreamRoutes:
    """Opens a subscriber on the hub for each stream request; the hub does the rest."""

    app = json_app()

    def __init__(self, hub: StreamHub, database_id: str = "") -> None:
        self.hub = hub
        self.database_id = database_id

    @app.route("/api/stream", methods=["GET"])
    async def stream(self, request: Request) -> bytes:
        """Each committed receipt, resuming after Last-Event-ID (or ``?after=``)."""
        params = QueryParams(request, {"after", "printer"})
        after = params.optional_integer("after", 0)
        last_event_id = request.getHeader(b"last-event-id")
        if last_event_id is not None:
            text = last_event_id.decode("latin-1").strip()
            if not (text.isascii() and text.isdigit()):
                raise ApiError(400, "Last-Event-ID: must be a receipt id")
            after = int(text)
        printer = params.text("printer")
        client = getattr(request.getClientAddress(), "host", None) or "-"
        try:
            subscriber = self.hub.subscribe(request, printer, after, client)
        except SubscriberLimit as e:
            raise ApiError(503, f"{e}: retry later", {b"Retry-After": b"30"}) from None
        try:
            request.setHeader(b"Content-Type", b"text/event-stream")
            request.setHeader(b"Cache-Control", b"no-cache")
            request.setHeader(b"X-Accel-Buffering", b"no")  # proxies: do not buffer
            # Sends the headers now; a client that saw another database starts over.
            request.write(b"retry: %d\n\n" % self.hub.retry_ms
                          + database_event(self.database_id))
            request.registerProducer(subscriber, True)
            request.notifyFinish().addBoth(lambda _: subscriber.close())
            # Fires when the stream ends; Klein cancels it when the client leaves.
            return await self.hub.serve(subscriber)
        finally:
            subscriber.close()
            if request.channel is not None:  # gone if the client left
                request.unregisterProducer()

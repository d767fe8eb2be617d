"""The webhook forwarder's state and its dead letters."""

from __future__ import annotations

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from printerd.forwarder.service import Forwarder
from printerd.http.params import ApiError, QueryParams
from printerd.http.responses import json_app, json_body, stored_id
from printerd.store.service import ReceiptStore

MAX_DEAD_PAGE = 500


class ForwarderRoutes:
    """``/api/forwarder...``: each target's counts, dead deliveries, retrying them."""

    app = json_app()

    def __init__(self, clock: IReactorTime, store: ReceiptStore, forwarder: Forwarder) -> None:
        self.clock = clock
        self.store = store
        self.forwarder = forwarder

    @app.route("/api/forwarder", methods=["GET"])
    async def targets(self, request: IRequest) -> bytes:
        return json_body(request, {"targets": await self.forwarder.report()})

    @app.route("/api/forwarder/dead", methods=["GET"])
    async def dead_letters(self, request: IRequest) -> bytes:
        limit = QueryParams(request, {"limit"}).integer("limit", 100, 1, MAX_DEAD_PAGE)
        return json_body(request, {"dead": await self.store.dead_letters(limit)})

    @app.route("/api/forwarder/dead/<int:delivery_id>/retry", methods=["POST"])
    async def retry_dead_letter(self, request: IRequest, delivery_id: int) -> bytes:
        changed = await self.store.retry_dead(self.clock.seconds(),
                                           stored_id(delivery_id, "delivery"))
        if not changed:
            raise ApiError(404, f"no dead delivery {delivery_id}")
        self.forwarder.wake()
        return json_body(request, {"retried": changed})

    @app.route("/api/forwarder/dead/retry", methods=["POST"])
    async def retry_all_dead_letters(self, request: IRequest) -> bytes:
        changed = await self.store.retry_dead(self.clock.seconds(), None)
        self.forwarder.wake()
        return json_body(request, {"retried": changed})

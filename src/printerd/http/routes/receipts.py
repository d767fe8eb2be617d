"""Receipts: the list with its filters, one receipt, its raw bytes, its renderings, recent."""

from __future__ import annotations

import itertools
from dataclasses import replace
from urllib.parse import urlencode

from twisted.web.iweb import IRequest

from printerd.http.params import ApiError, QueryParams
from printerd.http.responses import file_body, json_app, json_body, receipts_body, stored_id
from printerd.render.service import FORMATS, Renderings
from printerd.store.receipts import ReceiptQuery, parse_time
from printerd.store.service import ReceiptStore

MAX_PAGE = 500


class ReceiptRoutes:
    """``/api/receipts...`` and ``/api/recent``, read from the store and its memory cache."""

    app = json_app()

    def __init__(self, store: ReceiptStore, renderings: Renderings) -> None:
        self.store = store
        self.renderings = renderings

    @app.route("/api/receipts", methods=["GET"])
    async def list_receipts(self, request: IRequest) -> bytes:
        params = QueryParams(request, {"limit", "before", "after", "since", "until",
                                       "printer", "q"})
        query = ReceiptQuery(
            limit=params.integer("limit", 50, 1, MAX_PAGE),
            before=params.optional_integer("before", 0),
            after=params.optional_integer("after", 0),
            since=params.optional("since", parse_time, "an ISO 8601 time"),
            until=params.optional("until", parse_time, "an ISO 8601 time"),
            printer=params.text("printer"),
            text=params.text("q"),
        )
        # One more than asked tells whether there is a next page.
        found = await self.store.find_receipts(replace(query, limit=query.limit + 1))
        page = found[:query.limit]
        next_url = None
        # A search that spent its time stops early: its next page goes on from where it stopped.
        before = page[-1].id if len(found) > query.limit else found.resume_before
        if before is not None:
            args = {k: v for k, v in params.given().items() if k != "before"}
            args["before"] = str(before)
            next_url = "/api/receipts?" + urlencode(args)
        return receipts_body(request, page, next=next_url)

    @app.route("/api/receipts/<int:receipt_id>", methods=["GET"])
    async def one_receipt(self, request: IRequest, receipt_id: int) -> bytes:
        found = await self.store.get_receipt(stored_id(receipt_id))
        if found is None:
            raise ApiError(404, f"no receipt {receipt_id}")
        return json_body(request, found.to_json())

    @app.route("/api/receipts/<int:receipt_id>/raw", methods=["GET"])
    async def raw_bytes(self, request: IRequest, receipt_id: int) -> bytes:
        raw = await self.store.get_raw(stored_id(receipt_id))
        if raw is None:
            raise ApiError(404, f"no receipt {receipt_id}")
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"Content-Disposition",
                          f'attachment; filename="receipt-{receipt_id}.bin"'.encode())
        return raw

    # One route for every rendering in the format table: .txt and .html (``width`` in columns:
    # 32, 42, 48, 56 or 64), .png and .pdf (``width`` in dots: 576, 512 or 384); no width: the
    # paper of the printer that printed the receipt.  ``db``: the database the client expects
    # (a rendering is cached for a day by its URL; ids start again in a new database).
    @app.route(f"/api/receipts/<int:receipt_id>.<any({', '.join(FORMATS)}):format>",
               methods=["GET"])
    async def rendering(self, request: IRequest, receipt_id: int, format: str) -> bytes:
        fmt = format  # the name in the URL rule (and the OpenAPI document) shadows a builtin
        _, sizes, _, content_type = FORMATS[fmt]
        params = QueryParams(request, {"width", "db"})
        size = params.optional_choice("width", sizes)
        database = params.text("db")
        if database is not None and database != self.store.database_id:
            raise ApiError(404, f"no receipt {receipt_id} in database {database}: printerd "
                                f"now serves database {self.store.database_id}")
        if fmt == "html":
            # The page has inline styles and data: images only; nothing else may load or run.
            request.setHeader(b"Content-Security-Policy",
                              b"default-src 'none'; img-src data:; style-src 'unsafe-inline'")
        body = await self.renderings.get(stored_id(receipt_id), fmt, size)
        if body is None:
            raise ApiError(404, f"no receipt {receipt_id}")
        # A receipt never changes: browsers may keep its renderings.
        return file_body(request, body, content_type, b"private, max-age=86400, immutable")

    @app.route("/api/recent", methods=["GET"])
    def recent(self, request: IRequest) -> bytes:
        params = QueryParams(request, {"limit"})
        limit = params.integer("limit", 50, 1, self.store.newest.maxlen or 1)
        return receipts_body(request, itertools.islice(reversed(self.store.newest), limit),
                             database_id=self.store.database_id)

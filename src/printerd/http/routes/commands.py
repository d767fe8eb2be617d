"""``GET /api/receipts/<id>/commands``: what the printer was sent, command by command."""

from __future__ import annotations

from typing import Any, Optional, Sequence

from twisted.web.iweb import IRequest

from printerd.escpos.codepages import DEFAULT_TWO_BYTE_ENCODING
from printerd.escpos.profiles import DEFAULT_PROFILE
from printerd.escpos.status import DEFAULT_IDENTITY, PrinterState
from printerd.http.params import ApiError, QueryParams
from printerd.http.responses import json_app, json_body, stored_id
from printerd.rawport.factory import RawPrinter
from printerd.render.listing import MAX_ELEMENTS, MAX_LIMIT, list_commands
from printerd.store.receipts import RawReceipt
from printerd.store.service import ReceiptStore

DEFAULT_PAGE = 500


class CommandRoutes:
    """
    A receipt's raw bytes listed as its printer reads them (``render.listing``): decoded on a
    reader thread with the read, in the printer's emulation and two-byte encoding, with the
    status replies the printer gives in its current state.
    """

    app = json_app()

    def __init__(self, store: ReceiptStore, printers: Sequence[RawPrinter]) -> None:
        self.store = store
        self.printers = {p.factory.printer: p.factory for p in printers}

    @app.route("/api/receipts/<int:receipt_id>/commands", methods=["GET"])
    async def commands(self, request: IRequest, receipt_id: int) -> bytes:
        params = QueryParams(request, {"start", "limit"})
        start = params.integer("start", 0, 0, MAX_ELEMENTS)
        limit = params.integer("limit", DEFAULT_PAGE, 1, MAX_LIMIT)
        # Read here, on the reactor thread: the thread below sees plain values only.
        readers = {name: (factory.job_settings.emulation.name,
                          factory.job_settings.two_byte_encoding, factory.state,
                          factory.job_settings.identity,
                          factory.job_settings.profile)
                   for name, factory in self.printers.items()}

        def decode(found: RawReceipt) -> tuple[dict[str, Any], bool]:
            emulation, encoding, state, identity, profile = readers.get(
                found.printer, ("epson", DEFAULT_TWO_BYTE_ENCODING, PrinterState(),
                                DEFAULT_IDENTITY, DEFAULT_PROFILE))
            listing = list_commands(found.raw, emulation, encoding, state, identity, start,
                                    limit, profile)
            return listing.to_json(), listing.more

        found: Optional[tuple[dict[str, Any], bool]] = await self.store.with_raw(
            stored_id(receipt_id), decode)
        if found is None:
            raise ApiError(404, f"no receipt {receipt_id}")
        body, more = found
        body["next"] = (f"/api/receipts/{receipt_id}/commands?start={start + limit}"
                        f"&limit={limit}") if more else None
        return json_body(request, body)

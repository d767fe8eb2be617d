"""
``POST /api/ingest``: a central printerd takes the receipts site printerds forward to it.

A site forwards each receipt through its durable outbox as an ordinary webhook delivery (a
target whose url is the central ``/api/ingest``, whose secret is one of the central's
``ingest_secrets`` and whose token is one of its API tokens).  Here the delivery is checked as
a Standard Webhooks receiver checks one (signature over ``webhook-id.webhook-timestamp.body``
with any accepted secret, timestamp within ``TOLERANCE``), then stored through the store's group
commit like a receipt printed here, so it is listed, searched, streamed and forwarded on like
any other, keeping the site's name, its own receipt id (``site_receipt_id``) and printer.

Stored once: the receipt's origin is its site and ``webhook-id``, unique in the database; a
retry (the site never heard the 200) gets the receipt stored the first time.  A bad signature
is 401 and stores nothing.  With ``include_raw`` on the site the raw bytes come along (checked
against the site's sha256) and the central renders them as the site would.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from typing import Any, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from printerd.compact_json import compact_json
from printerd.forwarder.signing import verify
from printerd.http.auth import Authenticator, bearer_token
from printerd.http.params import ApiError
from printerd.http.responses import json_app, json_body
from printerd.http.site import PrinterdRequest
from printerd.store.receipts import NewReceipt, parse_time
from printerd.store.service import ReceiptStore

TOLERANCE = 300  # seconds a signed delivery's timestamp may be off (Standard Webhooks' five)
MAX_HEADER = 256
# The receipt JSON's own fields; the rest of it is its details.
COLUMNS = {"id", "printer", "peer", "received_at", "job", "bytes", "text", "cut", "truncated",
           "sha256", "raw_base64"}


def ingest_request_class(base: type[PrinterdRequest], max_body: int,
                         authenticator: Authenticator) -> type[PrinterdRequest]:
    """
    ``base``, letting a request that carries a valid API token (a site forwarding receipts
    with their raw bytes) send up to ``max_body`` bytes; any other keeps ``base``'s cap.
    """

    class IngestAwareRequest(base):  # type: ignore[valid-type,misc]
        max_body: int

        def gotLength(self, length: Optional[int]) -> None:
            # The headers are in, the body is not: whose request it is sets its cap.
            # (Without tokens the API listens on loopback only: every client may.)
            token = bearer_token(self)
            if not authenticator.enabled or (
                    token is not None and authenticator.token_index(token) is not None):
                self.max_body = max(self.max_body, max_body)
            super().gotLength(length)

    return IngestAwareRequest


class IngestRoutes:
    """``/api/ingest``; see the module docstring."""

    app = json_app()

    def __init__(self, clock: IReactorTime, store: ReceiptStore,
                 secrets: tuple[str, ...]) -> None:
        self.clock = clock
        self.store = store
        self.secrets = secrets

    @app.route("/api/ingest", methods=["POST"])
    async def ingest(self, request: IRequest) -> bytes:
        if not self.secrets:
            raise ApiError(404, "ingest is off here: set ingest_secrets to take forwarded "
                                "receipts")
        message_id, timestamp, signature = (
            _header(request, name) for name in ("webhook-id", "webhook-timestamp",
                                                "webhook-signature"))
        body = request.content.read()
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise ApiError(400, "webhook-timestamp: not an integer") from None
        if abs(self.clock.seconds() - sent_at) > TOLERANCE:
            raise ApiError(401, f"webhook-timestamp: more than {TOLERANCE} s from this "
                                "server's clock")
        if not any(verify(secret, message_id, sent_at, body, signature)
                   for secret in self.secrets):
            raise ApiError(401, "webhook-signature: no accepted secret signed this")
        draft = forwarded_receipt(message_id, body)
        stored = await self.store.add_receipt(draft)
        return json_body(request, {"id": stored.id, "origin": draft.origin})


def _header(request: IRequest, name: str) -> str:
    value = request.getHeader(name.encode())
    if not value:
        raise ApiError(400, f"{name}: missing (a Standard Webhooks delivery has it)")
    if len(value) > MAX_HEADER:
        raise ApiError(400, f"{name}: longer than {MAX_HEADER} bytes")
    try:
        return value.decode("ascii")
    except UnicodeDecodeError:
        raise ApiError(400, f"{name}: not ASCII") from None


def forwarded_receipt(message_id: str, body: bytes) -> NewReceipt:
    """The receipt a site's ``receipt.printed`` delivery carries; ApiError(400) if it is not one."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "body: not JSON") from None
    if not isinstance(payload, dict) or payload.get("type") != "receipt.printed":
        raise ApiError(400, "body: not a receipt.printed delivery")
    receipt = payload.get("receipt")
    if not isinstance(receipt, dict):
        raise ApiError(400, "receipt: missing")
    site = payload.get("site") or receipt.get("site")
    if not isinstance(site, str) or not site:
        raise ApiError(400, "site: empty; set site on the printerd that forwards receipts")
    try:
        raw = base64.b64decode(receipt.get("raw_base64", ""), validate=True)
        draft = NewReceipt(
            printer=_text(receipt, "printer"), peer=_text(receipt, "peer"),
            received_at=parse_time(_text(receipt, "received_at")), job=_integer(receipt, "job"),
            raw=raw, text=_text(receipt, "text"), cut=_text(receipt, "cut"),
            truncated=bool(receipt["truncated"]),
            details=compact_json({**{k: v for k, v in receipt.items() if k not in COLUMNS},
                                  "site": site, "site_receipt_id": _integer(receipt, "id")}),
            origin=f"{site}/{message_id}", sha256=_text(receipt, "sha256"),
            size=_integer(receipt, "bytes"))
    except (KeyError, binascii.Error, ValueError, TypeError) as e:
        raise ApiError(400, f"receipt: {type(e).__name__}: {e}") from None
    if raw and (hashlib.sha256(raw).hexdigest() != draft.sha256 or len(raw) != draft.size):
        raise ApiError(400, "receipt: raw_base64 does not match its sha256 and bytes")
    return draft


def _text(receipt: dict[str, Any], key: str) -> str:
    value = receipt[key]
    if not isinstance(value, str):
        raise ValueError(f"{key} must be a string")
    return value


def _integer(receipt: dict[str, Any], key: str) -> int:
    value = receipt[key]
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{key} must be an integer")
    return value

"""
A site printerd forwarding its receipts to a central one (POST /api/ingest), on each engine:
the site's real forwarder (signing, outbox, retries) posts through StubTreq into the central's
API built as makeService builds it.
"""

from __future__ import annotations

import json

import pytest
from treq.testing import StubTreq

from printerd.config import WebhookTarget
from printerd.forwarder.schedule import RetrySchedule
from printerd.forwarder.service import Forwarder
from printerd.forwarder.signing import sign
from support import Api, add_receipts, draft, make_inline_store, pump, request, request_json

SECRET = "whsec_Y2VudHJhbC1pbmdlc3Qtc2VjcmV0LWtleQ=="
TOKEN = "central-token"


class Central:
    """A central printerd's API on the engine under test, and a site (SQLite) forwarding to it."""

    def __init__(self, central_store, site_database: str, clock, include_raw: bool = False,
                 token: str = TOKEN, secret: str = SECRET) -> None:
        self.clock = clock
        self.store = central_store
        self.api = Api(central_store, clock, tokens=(TOKEN,), ingest_secrets=(SECRET,))
        self.site = make_inline_store(site_database, clock, site="paris-3",
                                      outbox=lambda printer: ["central"])
        self.site.startService()
        self.target = WebhookTarget("central", "http://printerd/api/ingest", secret,
                                    include_raw=include_raw, token=token)
        self.http = StubTreq(self.api.api.resource())
        self.forwarder = Forwarder(clock, self.site, (self.target,), self.http,
                                   schedule=RetrySchedule(jitter=0))
        self.site.on_commit(self.forwarder.wake)
        self.forwarder.startService()

    def print(self, *drafts):
        stored = add_receipts(self.site, self.clock, *drafts)
        pump(self.clock, self.http, self.api.stub)
        return stored

    def listed(self) -> list[dict]:
        code, body = request_json(self.api.stub, "/api/receipts",
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        assert code == 200
        return body["receipts"]

    def stop(self) -> None:
        self.forwarder.stopService()
        self.site.stopService()


@pytest.fixture
def central(inline_store, tmp_path, clock):
    made = []

    def make(**options):
        made.append(Central(inline_store, str(tmp_path / "site.sqlite3"), clock, **options))
        return made[-1]

    yield make
    for one in made:
        one.stop()


def post(central: Central, body: bytes, message_id: str = "msg_central_1",
         secret: str = SECRET, timestamp: int | None = None, token: str = TOKEN):
    timestamp = int(central.clock.seconds()) if timestamp is None else timestamp
    headers = {"webhook-id": message_id, "webhook-timestamp": str(timestamp),
               "webhook-signature": sign(secret, message_id, timestamp, body),
               "Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    response, answer = request(central.api.stub, "/api/ingest", "POST", central.clock,
                               data=body, headers=headers)
    return response.code, json.loads(answer)


def test_a_forwarded_receipt_is_stored_with_its_site_id_and_printer_and_streamed(central):
    c = central()
    seen = []
    c.store.on_commit(seen.extend)
    (printed,) = c.print(draft("Table 4\nTotal 9.50", printer="bar", job=77))
    (got,) = c.listed()
    assert got["site"] == "paris-3" and got["site_receipt_id"] == printed.id
    assert (got["printer"], got["text"], got["job"], got["received_at"]) == (
        "bar", "Table 4\nTotal 9.50", 77, printed.received_at)
    assert (got["sha256"], got["bytes"]) == (printed.sha256, printed.size)
    assert [r.id for r in seen] == [got["id"]]  # announced: streamed like any receipt
    assert c.forwarder.targets["central"].delivered == 1
    # The site's own receipt carries its site too, and so does its webhook payload.
    assert json.loads(printed.json_bytes)["site"] == "paris-3"


def test_the_same_delivery_twice_is_stored_once(central):
    c = central()
    (printed,) = c.print(draft("once"))
    receipt = json.loads(printed.json_bytes)
    body = json.dumps({"type": "receipt.printed", "site": "paris-3", "receipt": receipt}).encode()
    first = post(c, body, f"msg_central_{printed.id}")
    again = post(c, body, f"msg_central_{printed.id}")
    assert first[0] == again[0] == 200 and first[1]["id"] == again[1]["id"]
    assert [r["text"] for r in c.listed()] == ["once"]
    # Another site's delivery with the same webhook-id is another receipt.
    other = json.dumps({"type": "receipt.printed", "site": "lyon-1",
                        "receipt": {**receipt, "site": "lyon-1"}}).encode()
    assert post(c, other, f"msg_central_{printed.id}")[0] == 200
    assert sorted(r["site"] for r in c.listed()) == ["lyon-1", "paris-3"]


def test_a_bad_signature_is_401_and_stores_nothing(central):
    c = central(secret="whsec_" + "d3JvbmcgZm9yd2FyZGluZyBrZXk=")
    c.print(draft("forged"))
    assert c.forwarder.targets["central"].failed == 1
    assert c.forwarder.targets["central"].last_error == "HTTP 401"
    assert c.listed() == []
    body = b'{"type": "receipt.printed", "site": "x", "receipt": {}}'
    assert post(c, body, timestamp=int(c.clock.seconds()) - 3600)[0] == 401  # too old


@pytest.mark.parametrize("body, problem", [
    (b"not json", "not JSON"),
    (b'{"type": "receipt.voided"}', "not a receipt.printed"),
    (b'{"type": "receipt.printed", "receipt": {"id": 1}}', "site: empty"),
    (b'{"type": "receipt.printed", "site": "a", "receipt": {"id": 1}}', "receipt: KeyError"),
])
def test_a_signed_body_that_is_not_a_receipt_is_400(central, body, problem):
    c = central()
    code, answer = post(c, body)
    assert code == 400 and problem in answer["error"]
    assert c.listed() == []


def test_with_include_raw_the_central_renders_the_same_bytes(central):
    c = central(include_raw=True)
    raw = b"\x1b@\x1ba\x01Caf\x82\n\x1ba\x00Espresso    2.50\n\x1dV\x00"
    (printed,) = c.print(draft("Caf\u00e9\nEspresso    2.50", raw=raw))
    (got,) = c.listed()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    response, central_txt = request(c.api.stub, f"/api/receipts/{got['id']}.txt",
                                    headers=auth)
    site_api = Api(c.site, c.clock)
    _, site_txt = request(site_api.stub, f"/api/receipts/{printed.id}.txt")
    assert response.code == 200 and central_txt == site_txt
    _, central_raw = request(c.api.stub, f"/api/receipts/{got['id']}/raw", headers=auth)
    assert central_raw == raw


def test_without_ingest_secrets_the_route_is_off(inline_store, clock):
    api = Api(inline_store, clock)
    response, body = request(api.stub, "/api/ingest", "POST", data=b"{}")
    assert response.code == 404 and b"ingest_secrets" in body

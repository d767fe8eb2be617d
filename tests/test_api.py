"""The REST API through treq's StubTreq, over a real store."""

from __future__ import annotations

import io
import json
import re

import pytest
import pytest_twisted
from PIL import Image
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.internet.testing import MemoryReactorClock

from printerd.http.api import PrinterdAPI
from printerd.listener import ListenerService
from printerd.rawport.factory import RawPrintFactory
from printerd.store.receipts import NewReceipt, format_time


@pytest.fixture
def api(store):
    clock = MemoryReactorClock()
    factory = RawPrintFactory(clock, store)
    return PrinterdAPI(clock, store, factory, raw_listener=None)


@pytest.fixture
def stub(api):
    return StubTreq(api.resource())


async def settle(stub, d, timeout: float = 5.0):
    """Wait for a StubTreq request whose resource answers from the store's threads."""
    # d.called is already true while d waits on another Deferred: watch for the result.
    results = []
    d.addBoth(lambda result: results.append(result) or result)
    for _ in range(int(timeout / 0.005)):
        if results:
            break
        await deferLater(reactor, 0.005, lambda: None)
        stub.flush()
    return await d


async def fill(store, count: int) -> None:
    for i in range(count):
        await store.add_receipt(NewReceipt(
            printer="bar" if i % 2 else "kitchen", peer="10.0.0.9:1234",
            received_at=format_time(1_700_000_000 + 60 * i), job=i, raw=b"r%d\n" % i,
            text=f"receipt {i}", cut="full", truncated=False))


async def get(stub, url: str, method: str = "GET", **kwargs):
    response = await settle(stub, stub.request(method, "http://printerd" + url, **kwargs))
    body = await settle(stub, response.content())
    return response, body


async def get_json(stub, url: str, **kwargs):
    response, body = await get(stub, url, **kwargs)
    assert response.headers.getRawHeaders("content-type") == ["application/json"]
    return response.code, json.loads(body)


@pytest_twisted.ensureDeferred
async def test_health_ok(stub):
    assert await get_json(stub, "/api/health") == (
        200, {"status": "ok", "checks": {"database": "ok", "raw_listener": "ok"}})


@pytest_twisted.ensureDeferred
async def test_health_fails_when_the_raw_listener_is_down(store):
    clock = MemoryReactorClock()
    factory = RawPrintFactory(clock, store)
    down = ListenerService("raw_listen", "tcp:0", None, factory)  # never started
    stub = StubTreq(PrinterdAPI(clock, store, factory, raw_listener=down).resource())
    code, body = await get_json(stub, "/api/health")
    assert code == 503
    assert body["checks"]["raw_listener"] == "not listening: tcp:0"


@pytest_twisted.ensureDeferred
async def test_receipt_json_has_every_field(stub, store):
    await fill(store, 1)
    code, body = await get_json(stub, "/api/receipts/1")
    assert code == 200
    assert set(body) == {"id", "printer", "peer", "received_at", "job", "bytes", "text", "cut",
                         "truncated", "sha256", "barcodes", "codes_2d", "images", "drawer_kicks",
                         "unknown_commands", "dialects", "line_styles"}
    assert body["text"] == "receipt 0" and body["bytes"] == 3


@pytest_twisted.ensureDeferred
async def test_paging_through_everything_with_next(stub, store):
    await fill(store, 23)
    seen, url = [], "/api/receipts?limit=5&printer=kitchen"
    while url:
        code, body = await get_json(stub, url)
        assert code == 200
        seen += [r["id"] for r in body["receipts"]]
        url = body["next"]
    assert seen == list(range(23, 0, -2))


@pytest_twisted.ensureDeferred
async def test_filters_by_time_text_and_ids(stub, store):
    await fill(store, 10)
    since = format_time(1_700_000_000 + 60 * 3)
    code, body = await get_json(stub, f"/api/receipts?since={since}&until=2023-11-14T22:20:20Z")
    assert [r["id"] for r in body["receipts"]] == [7, 6, 5, 4]
    code, body = await get_json(stub, "/api/receipts?q=receipt%207")
    assert [r["id"] for r in body["receipts"]] == [8]
    code, body = await get_json(stub, "/api/receipts?after=7&before=10")
    assert [r["id"] for r in body["receipts"]] == [9, 8]


@pytest.mark.parametrize("query, named", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"), ("before=-3", "before"),
    ("after=1.5", "after"), ("since=yesterday", "since"), ("until=2024-13-01", "until"),
    ("q=", "q"), ("colour=red", "colour"), ("limit=1&limit=2", "limit"), ("printer=" + "x" * 600,
                                                                           "printer"),
])
@pytest_twisted.ensureDeferred
async def test_bad_parameters_get_400_naming_them(stub, query, named):
    code, body = await get_json(stub, "/api/receipts?" + query)
    assert code == 400
    assert body["error"].startswith(named + ":")


@pytest_twisted.ensureDeferred
async def test_missing_receipt_is_404_and_raw_is_the_original_bytes(stub, store):
    await fill(store, 2)
    assert await get_json(stub, "/api/receipts/99") == (404, {"error": "no receipt 99"})
    assert (await get_json(stub, "/api/receipts/99/raw"))[0] == 404
    response, body = await get(stub, "/api/receipts/2/raw")
    assert body == b"r1\n"
    assert response.headers.getRawHeaders("content-type") == ["application/octet-stream"]


@pytest_twisted.ensureDeferred
async def test_recent_comes_from_memory_newest_first(stub, store):
    await fill(store, 60)
    code, body = await get_json(stub, "/api/recent?limit=3")
    assert [r["id"] for r in body["receipts"]] == [60, 59, 58]
    code, body = await get_json(stub, "/api/recent")
    assert len(body["receipts"]) == 50
    assert (await get_json(stub, "/api/recent?limit=500"))[0] == 200
    assert (await get_json(stub, "/api/recent?limit=501"))[0] == 400  # the cache's size


@pytest_twisted.ensureDeferred
async def test_stats(stub, store):
    await fill(store, 4)
    code, body = await get_json(stub, "/api/stats")
    assert code == 200
    assert body["receipts_total"] == 4
    for key in ("jobs_total", "bytes_total", "connections_active", "connections_waiting",
                "connections_total", "threads", "rss_bytes", "db_bytes"):
        assert isinstance(body[key], int), key
    assert body["threads"] >= 4  # the reactor's thread plus the store's three
    assert body["db_bytes"] > 0


@pytest.mark.parametrize("method, url, code", [
    ("GET", "/api/nothing-here", 404), ("GET", "/api/receipts/abc", 404),
    ("POST", "/api/receipts", 405), ("DELETE", "/api/health", 405),
])
@pytest_twisted.ensureDeferred
async def test_routing_errors_are_json(stub, method, url, code):
    got, body = await get_json(stub, url, method=method)
    assert got == code
    assert "error" in body


@pytest_twisted.ensureDeferred
async def test_health_is_503_while_the_database_cannot_be_written(stub, store):
    await fill(store, 1)
    pages = await store.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    pending = store.add_receipt(NewReceipt(
        printer="p", peer="x", received_at=format_time(1e9), job=1, raw=b"x" * 300_000,
        text="big", cut="full", truncated=False))
    for _ in range(400):
        if store.write_error:
            break
        await deferLater(reactor, 0.01, lambda: None)
    code, body = await get_json(stub, "/api/health")
    assert code == 503
    assert body["status"] == "failing"
    assert body["checks"]["database"].startswith("cannot write:")
    # What was stored stays readable meanwhile.
    assert (await get_json(stub, "/api/receipts/1"))[0] == 200
    await store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    assert (await pending).text == "big"
    assert (await get_json(stub, "/api/health"))[0] == 200


async def put_json(stub, path, body):
    response = await settle(stub, stub.request("PUT", "http://printerd" + path,
                                                data=json.dumps(body).encode()))
    return response.code, json.loads(await settle(stub, response.content()))


@pytest_twisted.ensureDeferred
async def test_printer_state_can_be_read_and_set(stub, api):
    code, body = await get_json(stub, "/api/printers")
    (printer,) = body["printers"]
    assert printer["name"] == "default"
    assert printer["state"] == {"online": True, "paper": "ok", "cover_open": False,
                                "drawer_open": False}
    code, body = await put_json(stub, "/api/printers/default/state",
                                {"paper": "near_end", "online": False})
    assert code == 200 and body["state"]["paper"] == "near_end"
    (printer,) = (await get_json(stub, "/api/printers"))[1]["printers"]
    assert printer["state"]["online"] is False
    for bad, named in [({"paper": "lots"}, "paper"), ({"online": "no"}, "online"),
                       ({"colour": 1}, "colour"), ([1], "body")]:
        code, body = await put_json(stub, "/api/printers/default/state", bad)
        assert code == 400 and body["error"].startswith(named)
    assert (await put_json(stub, "/api/printers/bar/state", {}))[0] == 404


@pytest_twisted.ensureDeferred
async def test_text_rendering_from_raw_bytes_at_the_paper_width(stub, store):
    raw = b"\x1b@" + b"x" * 50 + b"\n\x1bt\x10caf\xe9\tok\n\x1dV\x00"
    await store.add_receipt(NewReceipt(printer="p", peer="x", received_at=format_time(1e9), job=1,
                                       raw=raw, text="stored before a parser fix", cut="full",
                                       truncated=False))
    response, body = await get(stub, "/api/receipts/1.txt?width=42")
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/plain; charset=utf-8"]
    # Rendered from the raw bytes, not the stored text: a better parser improves old receipts.
    assert body.decode() == "x" * 42 + "\n" + "x" * 8 + "\ncafé    ok\n"
    assert (await get(stub, "/api/receipts/1.txt?width=48"))[1].decode().startswith("x" * 48 + "\n")
    # No width: the printer model's (the default TM-T88V: 42 columns).
    assert (await get(stub, "/api/receipts/1.txt"))[1].decode().startswith("x" * 42 + "\n")
    assert (await get_json(stub, "/api/receipts/1.txt?width=40"))[0] == 400
    assert (await get_json(stub, "/api/receipts/7.txt"))[0] == 404


@pytest_twisted.ensureDeferred
async def test_html_and_png_renderings(stub, store):
    raw = b"\x1b@\x1ba\x01<Caf\x82>\n\x1dk\x02012345678901\x00\x1dV\x00"
    await store.add_receipt(NewReceipt(printer="p", peer="x", received_at=format_time(1e9), job=1,
                                       raw=raw, text="<Café>", cut="full", truncated=False))
    response, body = await get(stub, "/api/receipts/1.html?width=42")
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    assert "default-src 'none'" in response.headers.getRawHeaders("content-security-policy")[0]
    html = body.decode()
    assert re.search(r'class="l center"><span[^>]*>&lt;Café&gt;</span></div>', html)
    assert "width:42.6667ch" in html  # 42 columns on the TM-T88V: its 512 dots
    assert 'aria-label="EAN13 012345678901"><svg' in html
    response, body = await get(stub, "/api/receipts/1.png?width=512")
    assert response.headers.getRawHeaders("content-type") == ["image/png"]
    assert Image.open(io.BytesIO(body)).width == 512
    assert Image.open(io.BytesIO((await get(stub, "/api/receipts/1.png"))[1])).width == 512
    for bad in ("600", "abc", "", "576.0"):
        code, error = await get_json(stub, f"/api/receipts/1.png?width={bad}")
        assert code == 400 and error["error"] == "width: must be one of 576, 512, 384"
    assert (await get_json(stub, "/api/receipts/9.html"))[0] == 404
    assert (await get_json(stub, "/api/receipts/9.png"))[0] == 404

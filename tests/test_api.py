"""The REST API through treq's StubTreq, over a store on a real SQLite file, run inline."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image
from twisted.internet.testing import MemoryReactorClock

import printerd
from printerd.listener import ListenerService
from printerd.rawport.factory import RawPrintFactory, RawPrinter
from printerd.store.receipts import format_time
from support import (
    Api, add_receipts, draft, fill, fill_disk, free_disk, put_json, request, request_json,
    result_of,
)


@pytest.fixture
def store(inline_store):
    return inline_store


@pytest.fixture
def api(store, clock):
    return Api(store, clock)


@pytest.fixture
def stub(api):
    return api.stub


def test_health_ok(stub):
    assert request_json(stub, "/api/health") == (
        200, {"status": "ok", "version": printerd.__version__,
              "checks": {"database": "ok", "raw_listener": "ok", "forwarder": "ok"}})


def test_health_fails_when_the_raw_listener_is_down(store, clock):
    factory = RawPrintFactory(MemoryReactorClock(), store)
    down = ListenerService("raw_listen", "tcp:0", None, factory)  # never started
    code, body = request_json(Api(store, clock, printers=[RawPrinter(factory, down)]).stub,
                                "/api/health")
    assert code == 503
    assert body["checks"]["raw_listener"] == "not listening: tcp:0"


def test_receipt_json_has_every_field(stub, store, clock):
    fill(store, clock, 1)
    code, body = request_json(stub, "/api/receipts/1")
    assert code == 200
    assert set(body) == {"id", "printer", "peer", "received_at", "job", "bytes", "text", "cut",
                         "truncated", "sha256", "site", "barcodes", "codes_2d", "images", "drawer_kicks",
                         "unknown_commands", "dialects", "line_styles", "ocr_text"}
    assert body["text"] == "receipt 0" and body["bytes"] == 3


def test_paging_through_everything_with_next(stub, store, clock):
    fill(store, clock, 23)
    seen, url = [], "/api/receipts?limit=5&printer=kitchen"
    while url:
        code, body = request_json(stub, url)
        assert code == 200
        seen += [r["id"] for r in body["receipts"]]
        url = body["next"]
    assert seen == list(range(23, 0, -2))


def test_filters_by_time_text_and_ids(stub, store, clock):
    fill(store, clock, 10)
    since = format_time(1_700_000_000 + 60 * 3)
    code, body = request_json(stub, f"/api/receipts?since={since}&until=2023-11-14T22:20:20Z")
    assert [r["id"] for r in body["receipts"]] == [7, 6, 5, 4]
    code, body = request_json(stub, "/api/receipts?q=receipt%207")
    assert [r["id"] for r in body["receipts"]] == [8]
    code, body = request_json(stub, "/api/receipts?after=7&before=10")
    assert [r["id"] for r in body["receipts"]] == [9, 8]


@pytest.mark.parametrize("query, named", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"), ("before=-3", "before"),
    ("after=1.5", "after"), ("since=yesterday", "since"), ("until=2024-13-01", "until"),
    ("q=", "q"), ("colour=red", "colour"), ("limit=1&limit=2", "limit"), ("printer=" + "x" * 600,
                                                                           "printer"),
])
def test_bad_parameters_get_400_naming_them(stub, query, named):
    code, body = request_json(stub, "/api/receipts?" + query)
    assert code == 400
    assert body["error"].startswith(named + ":")


def test_missing_receipt_is_404_and_raw_is_the_original_bytes(stub, store, clock):
    fill(store, clock, 2)
    assert request_json(stub, "/api/receipts/99") == (404, {"error": "no receipt 99"})
    assert (request_json(stub, "/api/receipts/99/raw"))[0] == 404
    response, body = request(stub, "/api/receipts/2/raw")
    assert body == b"r1\n"
    assert response.headers.getRawHeaders("content-type") == ["application/octet-stream"]


def test_recent_comes_from_memory_newest_first(stub, store, clock):
    fill(store, clock, 60)
    code, body = request_json(stub, "/api/recent?limit=3")
    assert [r["id"] for r in body["receipts"]] == [60, 59, 58]
    code, body = request_json(stub, "/api/recent")
    assert len(body["receipts"]) == 50
    assert (request_json(stub, "/api/recent?limit=500"))[0] == 200
    assert (request_json(stub, "/api/recent?limit=501"))[0] == 400  # the cache's size


def test_stats(stub, store, clock):
    fill(store, clock, 4)
    code, body = request_json(stub, "/api/stats")
    assert code == 200
    assert body["receipts_total"] == 4
    for key in ("jobs_total", "bytes_total", "connections_active", "connections_waiting",
                "connections_total", "threads", "rss_bytes", "db_bytes"):
        assert isinstance(body[key], int), key
    assert body["threads"] >= 1
    assert body["db_bytes"] > 0


@pytest.mark.parametrize("method, url, code", [
    ("GET", "/api/nothing-here", 404), ("GET", "/api/receipts/abc", 404),
    ("POST", "/api/receipts", 405), ("DELETE", "/api/health", 405),
])
def test_routing_errors_are_json(stub, method, url, code):
    got, body = request_json(stub, url, method=method)
    assert got == code
    assert "error" in body


def test_health_is_503_while_the_database_cannot_be_written(stub, store, clock):
    fill(store, clock, 1)
    fill_disk(store)
    pending = store.add_receipt(draft("big", raw=b"x" * 300_000))
    clock.advance(store.commit_delay)  # the commit fails: the database is full
    assert store.write_error is not None
    code, body = request_json(stub, "/api/health")
    assert code == 503
    assert body["status"] == "failing"
    assert body["checks"]["database"].startswith("cannot write:")
    # What was stored stays readable meanwhile.
    assert request_json(stub, "/api/receipts/1")[0] == 200
    free_disk(store)
    clock.advance(1.0)  # the store retries every second
    assert result_of(pending).text == "big"
    assert request_json(stub, "/api/health")[0] == 200


def test_printer_state_can_be_read_and_set(stub, api):
    code, body = request_json(stub, "/api/printers")
    (printer,) = body["printers"]
    assert printer["name"] == "default"
    assert printer["state"] == {"online": True, "paper": "ok", "cover_open": False,
                                "drawer_open": False}
    code, body = put_json(stub, "/api/printers/default/state",
                                {"paper": "near_end", "online": False})
    assert code == 200 and body["state"]["paper"] == "near_end"
    (printer,) = (request_json(stub, "/api/printers"))[1]["printers"]
    assert printer["state"]["online"] is False
    for bad, named in [({"paper": "lots"}, "paper"), ({"online": "no"}, "online"),
                       ({"colour": 1}, "colour"), ([1], "body")]:
        code, body = put_json(stub, "/api/printers/default/state", bad)
        assert code == 400 and body["error"].startswith(named)
    for raw in (b"[" * 4000, b'{"online": ' + b"[" * 2000 + b"]" * 2000 + b"}", b"{"):
        code, body = request_json(stub, "/api/printers/default/state", "PUT", data=raw)
        assert (code, body) == (400, {"error": "body: expected a JSON object"})
    assert (put_json(stub, "/api/printers/bar/state", {}))[0] == 404


def test_text_rendering_from_raw_bytes_at_the_paper_width(stub, store, clock):
    raw = b"\x1b@" + b"x" * 50 + b"\n\x1bt\x10caf\xe9\tok\n\x1dV\x00"
    add_receipts(store, clock, draft("stored before a parser fix", printer="p", raw=raw))
    response, body = request(stub, "/api/receipts/1.txt?width=42")
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/plain; charset=utf-8"]
    # Rendered from the raw bytes, not the stored text: a better parser improves old receipts.
    assert body.decode() == "x" * 42 + "\n" + "x" * 8 + "\ncafé    ok\n"
    assert (request(stub, "/api/receipts/1.txt?width=48"))[1].decode().startswith("x" * 48 + "\n")
    # No width: the printer model's (the default TM-T88V: 42 columns).
    assert (request(stub, "/api/receipts/1.txt"))[1].decode().startswith("x" * 42 + "\n")
    assert (request_json(stub, "/api/receipts/1.txt?width=40"))[0] == 400
    assert (request_json(stub, "/api/receipts/7.txt"))[0] == 404


def test_html_and_png_renderings(stub, store, clock):
    raw = b"\x1b@\x1ba\x01<Caf\x82>\n\x1dk\x02012345678901\x00\x1dV\x00"
    add_receipts(store, clock, draft("<Café>", printer="p", raw=raw))
    response, body = request(stub, "/api/receipts/1.html?width=42")
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/html; charset=utf-8"]
    assert "default-src 'none'" in response.headers.getRawHeaders("content-security-policy")[0]
    html = body.decode()
    assert re.search(r'class="l center"><span[^>]*>&lt;Café&gt;</span></div>', html)
    assert "width:42.6667ch" in html  # 42 columns on the TM-T88V: its 512 dots
    assert 'aria-label="EAN13 012345678901"><svg' in html
    response, body = request(stub, "/api/receipts/1.png?width=512")
    assert response.headers.getRawHeaders("content-type") == ["image/png"]
    assert Image.open(io.BytesIO(body)).width == 512
    assert Image.open(io.BytesIO((request(stub, "/api/receipts/1.png"))[1])).width == 512
    for bad in ("600", "abc", "", "576.0"):
        code, error = request_json(stub, f"/api/receipts/1.png?width={bad}")
        assert code == 400 and error["error"] == "width: must be one of 576, 512, 384"
    assert (request_json(stub, "/api/receipts/9.html"))[0] == 404
    assert (request_json(stub, "/api/receipts/9.png"))[0] == 404


def test_asking_for_many_missing_page_files_does_not_grow_memory():
    import tracemalloc

    from printerd.web.files import static_file

    assert static_file("app.js") is not None
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for n in range(20_000):
            assert static_file(f"no-such-file-{n}.js") is None
        grown = sum(stat.size_diff for stat in
                    tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert grown < 200_000, f"{grown} bytes kept for names that do not exist"


def test_no_route_is_shadowed_by_an_attribute_of_its_module(api):
    for module in api.api.modules:
        if not hasattr(module, "app"):
            continue  # a direct route (api.DirectRoute): no Klein endpoints to shadow
        endpoints = {rule.endpoint for rule in module.app.url_map.iter_rules()}
        assert endpoints and not endpoints & set(vars(module)), type(module).__name__


def test_a_method_a_route_does_not_take_is_405_naming_the_ones_it_does(stub):
    response, body = request(stub, "/api/printers/default/state", "POST")
    assert response.code == 405
    assert response.headers.getRawHeaders("allow") == ["PUT"]
    response, body = request(stub, "/api/receipts", "DELETE")
    assert response.headers.getRawHeaders("allow") == ["GET, HEAD"]

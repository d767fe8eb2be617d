"""
The routes the web page needs: printers' addresses, test receipts sent to a printer's own port,
a receipt's command listing, and the session's state and logout (StubTreq, inline store).
"""

from __future__ import annotations

import json

import treq
from treq.testing import StubTreq
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure

from printerd.escpos.parser import JobParser, ParsedReceipt
from printerd.http.api import HttpApi
from printerd.http.auth import Authenticator
from printerd.http.hosts import AllowedHosts
from printerd.http.routes.sample import SampleReceiptRoutes, sample_job
from printerd.listener import ListenerService
from printerd.rawport.factory import RawPrintFactory, RawPrinter
from printerd.star.parser import StarJobParser
from printerd.store.sqlite import SQLiteEngine
from support import (
    Api, add_receipts, draft, python_escpos_job, request, request_json, result_of,
    sqlite_database_at_version,
)

LAN = ["192.168.1.20", "10.0.0.5"]


def serving(*modules, clock) -> HttpApi:
    """Route modules behind the gate, open (no tokens), answering StubTreq's Host: printerd."""
    return HttpApi(list(modules), Authenticator(clock, ()), hosts=AllowedHosts(["printerd"]))


def listening_printer(store, reactor: MemoryReactorClock, port: int = 9100,
                      interface: str = "") -> RawPrinter:
    """A printer whose raw listener listens (on a memory reactor) on every interface."""
    factory = RawPrintFactory(reactor, store)
    listener = ListenerService("raw_listen", f"tcp:{port}",
                               TCP4ServerEndpoint(reactor, port, interface=interface), factory)
    listener.privilegedStartService()
    return RawPrinter(factory, listener)


def test_printers_say_where_a_pos_prints_each_lan_address_and_never_0_0_0_0(inline_store, clock):
    printer = listening_printer(inline_store, MemoryReactorClock())
    from printerd.http.routes.printers import PrinterRoutes

    api = serving(PrinterRoutes([printer], lan=lambda: LAN), clock=clock)
    code, body = request_json(StubTreq(api.resource()), "/api/printers")
    (listed,) = body["printers"]
    assert listed["addresses"] == ["192.168.1.20:9100", "10.0.0.5:9100"]
    assert listed["emulation"] == "epson" and listed["listener"] == "tcp:9100"


def send_sample(inline_store, clock, printer, reactor, limiter=None):
    """POST a test receipt; plays the printer's side of the connection; (status, body, bytes)."""
    routes = SampleReceiptRoutes(reactor, [printer], lan=lambda: LAN, limiter=limiter)
    stub = StubTreq(serving(routes, clock=clock).resource())
    connections = len(reactor.tcpClients)
    answer = stub.post("http://printerd/api/printers/default/test-receipt", data=b"{}")
    stub.flush()
    sent = b""
    if len(reactor.tcpClients) > connections:
        host, port, factory, _, _ = reactor.tcpClients[-1]
        assert (host, port) == ("127.0.0.1", 9100)  # the printer's own port, from this machine
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        sent = transport.value()
        assert transport.disconnecting  # the job is whole: the client closed
        protocol.connectionLost(Failure(ConnectionDone()))
        stub.flush()
    response = result_of(answer)
    body = result_of(response.json())
    return response.code, body, sent, response


def test_a_test_receipt_goes_to_the_printers_own_port_and_parses_as_a_receipt(inline_store,
                                                                             clock):
    reactor = MemoryReactorClock()
    printer = listening_printer(inline_store, reactor)
    code, body, sent, _ = send_sample(inline_store, clock, printer, reactor)
    assert code == 202 and body["sent_to"] == "127.0.0.1:9100" and body["bytes"] == len(sent)
    (receipt,) = [e for e in JobParser().feed(sent) if isinstance(e, ParsedReceipt)]
    assert receipt.cut == "partial" and receipt.unknown_commands == 0
    assert "Test receipt" in receipt.text and f"Check:   {body['check']}" in receipt.text
    assert "Address: 192.168.1.20:9100, 10.0.0.5:9100" in receipt.text


def test_a_star_printers_test_receipt_is_star_line_mode():
    job = sample_job("star", "bar", ["192.168.1.20:9101"], "2026-01-02T03:04:05.000000Z", "ab12")
    (receipt,) = [e for e in StarJobParser().feed(job) if isinstance(e, ParsedReceipt)]
    assert receipt.cut == "full" and receipt.unknown_commands == 0
    assert receipt.details["dialects"] == {}  # no ESC/POS in it
    assert "Sent:    2026-01-02 03:04:05 UTC" in receipt.text


def test_test_receipts_are_rate_limited_per_printer(inline_store, clock):
    reactor = MemoryReactorClock()
    printer = listening_printer(inline_store, reactor)
    from printerd.http.ratelimit import RateLimiter

    limiter = RateLimiter(reactor, 0.2, 3)
    codes = [send_sample(inline_store, clock, printer, reactor, limiter)[0] for _ in range(4)]
    assert codes == [202, 202, 202, 429]
    _, body, _, response = send_sample(inline_store, clock, printer, reactor, limiter)
    assert response.headers.getRawHeaders("retry-after") == ["5"] and "retry in 5 s" in body["error"]
    reactor.advance(5)
    assert send_sample(inline_store, clock, printer, reactor, limiter)[0] == 202


def test_a_refused_connection_is_a_502_naming_the_address(inline_store, clock):
    reactor = MemoryReactorClock()
    printer = listening_printer(inline_store, reactor)
    routes = SampleReceiptRoutes(reactor, [printer], lan=lambda: LAN)
    stub = StubTreq(serving(routes, clock=clock).resource())
    answer = stub.post("http://printerd/api/printers/default/test-receipt", data=b"{}")
    _, _, factory, _, _ = reactor.tcpClients[-1]
    factory.clientConnectionFailed(None, Failure(ConnectionRefusedError()))
    stub.flush()
    response = result_of(answer)
    assert response.code == 502
    assert "could not connect to 127.0.0.1:9100" in result_of(response.json())["error"]


def test_test_receipts_are_post_only_and_name_unknown_printers(inline_store, clock):
    stub = Api(inline_store, clock).stub
    assert request_json(stub, "/api/printers/default/test-receipt")[0] == 405
    code, body = request_json(stub, "/api/printers/nope/test-receipt", "POST")
    assert (code, body["error"]) == (404, "no printer 'nope'")
    code, body = request_json(stub, "/api/printers/default/test-receipt", "POST")
    assert (code, body["error"]) == (503, "printer 'default' is not listening")


def test_a_receipts_commands_come_from_its_raw_bytes_in_pages(inline_store, clock):
    raw = python_escpos_job()
    add_receipts(inline_store, clock, draft("Table 7", raw=raw))
    stub = Api(inline_store, clock).stub
    code, body = request_json(stub, "/api/receipts/1/commands?limit=4")
    assert code == 200 and len(body["commands"]) == 4
    assert body["commands"][0] == {"offset": 0, "length": 3, "kind": "command", "name": "ESC E",
                                   "known": True, "params": [1]}
    assert body["summary"]["complete"] and body["summary"]["bytes"] == len(raw)
    assert body["next"] == "/api/receipts/1/commands?start=4&limit=4"
    rest = request_json(stub, "/api/receipts/1/commands?start=4&limit=1000")[1]
    assert rest["next"] is None
    assert sum(e["length"] for e in body["commands"] + rest["commands"]) == len(raw)
    assert request_json(stub, "/api/receipts/2/commands")[1] == {"error": "no receipt 2"}
    code, body = request_json(stub, "/api/receipts/1/commands?limit=100000")
    assert code == 400 and body["error"].startswith("limit: must be an integer from 1 to")


def test_the_session_says_whether_tokens_are_needed_and_logout_ends_it(inline_store, clock):
    stub = Api(inline_store, clock, tokens=("t0ken-for-the-test",)).stub
    assert request_json(stub, "/api/session")[1] == {"tokens": True, "logged_in": False}
    response, _ = request(stub, "/api/session", "POST",
                          data=json.dumps({"token": "t0ken-for-the-test"}).encode())
    cookie = response.cookies()["printerd_session"]
    cookies = {"printerd_session": cookie}
    assert request_json(stub, "/api/session", cookies=cookies)[1]["logged_in"] is True
    assert request_json(stub, "/api/recent", cookies=cookies)[0] == 200
    response, _ = request(stub, "/api/session", "DELETE", cookies=cookies)
    assert response.code == 200
    (set_cookie,) = response.headers.getRawHeaders("set-cookie")
    assert set_cookie.startswith("printerd_session=;") and "Max-Age=0" in set_cookie
    # The session is gone on the server too: the old cookie no longer opens anything.
    assert request_json(stub, "/api/recent", cookies=cookies)[0] == 401
    assert request_json(stub, "/api/session", cookies=cookies)[1]["logged_in"] is False
    open_api = Api(inline_store, clock).stub
    assert request_json(open_api, "/api/session")[1] == {"tokens": False, "logged_in": True}


def test_each_database_has_its_own_id_kept_for_its_life(tmp_path):
    first = SQLiteEngine(str(tmp_path / "a.sqlite3")).prepare()
    again = SQLiteEngine(str(tmp_path / "a.sqlite3")).prepare()
    other = SQLiteEngine(str(tmp_path / "b.sqlite3")).prepare()
    assert len(first.database_id) == 32 and first.database_id == again.database_id
    assert other.database_id != first.database_id


def test_a_database_made_before_ids_existed_gets_one_on_upgrade(tmp_path):
    path = str(tmp_path / "old.sqlite3")
    conn = sqlite_database_at_version(path, 3)
    conn.execute("INSERT INTO receipts (printer, peer, received_at, job, bytes, raw, text,"
                 " cut, sha256, truncated) VALUES ('default', 'p', 't', 1, 1, x'41', 'A',"
                 " 'full', '', 0)")
    conn.close()
    summary = SQLiteEngine(path).prepare()
    assert summary.receipts == 1 and len(summary.database_id) == 32


def test_the_stream_and_recent_say_which_database_they_serve(inline_store, clock):
    stub = Api(inline_store, clock).stub
    answer = stub.get("http://printerd/api/stream")
    stub.flush()
    chunks: list[bytes] = []
    treq.collect(result_of(answer), chunks.append)
    stub.flush()
    first_event = b"".join(chunks).split(b"\n\n")[1]
    assert first_event == b'event: database\ndata: {"database_id":"%s"}' % (
        inline_store.database_id.encode())
    assert request_json(stub, "/api/recent")[1]["database_id"] == inline_store.database_id

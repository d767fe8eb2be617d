"""
Epson Server Direct Print: printerd polls a fake POS server (a real Twisted HTTP server on
127.0.0.1) with real treq, prints the ePOS-Print jobs it hands out into a real store, and posts
the results back as Epson's manual shows them; failures back off and results are never lost.
The PrintRequestInfo documents follow the samples of Epson's "Server Direct Print User's Manual".
"""

from __future__ import annotations

from collections import deque
from typing import Optional

import pytest
import pytest_twisted
import treq
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.web.resource import Resource

from printerd.epos.document import parse_xml
from printerd.epos.sdp import MAX_REQUEST_BYTES, ServerDirectPrint, ServerDirectPrintConfig
from printerd.epos.service import EposPrinter, EposPrinting
from printerd.escpos.status import PrinterState
from printerd.store.receipts import ReceiptQuery
from support import local_site, wait_until

EPOS_NS = "http://www.epson-pos.com/schemas/2011/03/epos-print"


def print_request(*jobs: tuple[str, Optional[str], str], version: Optional[str] = "2.00") -> bytes:
    """A PrintRequestInfo with one ePOSPrint per (devid, printjobid, document body)."""
    parts = []
    for devid, printjobid, body in jobs:
        job_id = f"<printjobid>{printjobid}</printjobid>" if printjobid else ""
        parts.append(f"<ePOSPrint><Parameter><devid>{devid}</devid><timeout>10000</timeout>"
                     f"{job_id}</Parameter><PrintData><epos-print xmlns=\"{EPOS_NS}\">{body}"
                     f"</epos-print></PrintData></ePOSPrint>")
    version_attribute = f' Version="{version}"' if version else ""
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<PrintRequestInfo{version_attribute}>'
            + "".join(parts) + "</PrintRequestInfo>").encode()


class FakePosServer(Resource):
    """A POS server: hands out queued answers to GetRequest, records every POST."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.answers: deque[bytes] = deque()
        self.failing: dict[int, int] = {}  # POST number (0 first) -> status to answer with
        self.failing_body = b"busy"
        self.posts: list[dict[str, str]] = []

    def render_POST(self, request) -> bytes:
        form = {k.decode(): v[0].decode() for k, v in request.args.items()}
        form["content-type"] = request.getHeader(b"content-type").decode()
        self.posts.append(form)
        if len(self.posts) - 1 in self.failing:
            request.setResponseCode(self.failing[len(self.posts) - 1])
            return self.failing_body
        request.setHeader(b"Content-Type", b"text/xml; charset=utf-8")
        if form["ConnectionType"] == "GetRequest" and self.answers:
            return self.answers.popleft()
        return b""

    def responses(self) -> list[str]:
        return [p["ResponseFile"] for p in self.posts if p["ConnectionType"] == "SetResponse"]


@pytest_twisted.async_yield_fixture()
async def pos_server():
    server = FakePosServer()
    async with local_site(server, "/print.php") as server.url:
        yield server


class Printer:
    def __init__(self) -> None:
        self.state = PrinterState()


@pytest.fixture
def printer():
    return Printer()


async def stored_receipts(store) -> list:
    """What the database holds, oldest first (on PostgreSQL, store.newest follows the tailer's
    read after the commit, which the poller does not wait for)."""
    return list(reversed(await store.find_receipts(ReceiptQuery())))


def make_poller(store, server, printer, interval=0.02, **kwargs) -> ServerDirectPrint:
    target = EposPrinter("counter", state=lambda: printer.state)
    printing = EposPrinting(reactor, store, [target])
    config = ServerDirectPrintConfig("counter", server.url, interval, id="TM01", name="Counter")
    return ServerDirectPrint(reactor, printing, target, config, treq, timeout=10,
                             max_backoff=kwargs.pop("max_backoff", 0.1), **kwargs)


async def run_until_answered(store, server, printer, timeout: float = 5.0,
                             settled=lambda poller: True) -> ServerDirectPrint:
    """
    A poller run until the server has its first SetResponse and ``settled(poller)`` holds (the
    poller records its exchange after the server has seen it), then stopped.
    """
    poller = make_poller(store, server, printer)
    poller.startService()
    try:
        await wait_until(lambda: server.responses() and settled(poller), timeout=timeout)
    finally:
        poller.stopService()
    return poller


def response_elements(response_file: str) -> list[dict[str, str]]:
    root = parse_xml(response_file.encode())
    found, stack = [], [root]
    while stack:
        element = stack.pop(0)
        if element.name == "response" and element.namespace == EPOS_NS:
            found.append(element.attributes)
        stack = element.children + stack
    return found


@pytest_twisted.ensureDeferred
async def test_jobs_are_printed_and_the_results_posted_as_version_2(store, pos_server, printer):
    pos_server.answers.append(print_request(
        ("local_printer", "ABC123", "<text>Table 7&#10;Soup</text><cut/>"),
        ("local_printer", "ABC124", '<text em="true">Table 8</text><cut type="feed"/>')))
    await run_until_answered(store, pos_server, printer)
    get = pos_server.posts[0]
    assert (get["ConnectionType"], get["ID"], get["Name"]) == ("GetRequest", "TM01", "Counter")
    assert get["content-type"] == "application/x-www-form-urlencoded"
    stored = await stored_receipts(store)
    assert [(r.printer, r.text) for r in stored] == [("counter", "Table 7\nSoup"),
                                                    ("counter", "Table 8")]
    assert stored[0].job != stored[1].job  # each ePOSPrint is a print job of its own
    root = parse_xml(pos_server.responses()[0].encode())
    assert (root.name, root.attributes) == ("PrintResponseInfo", {"Version": "2.00"})
    jobs = [e for e in root.children if e.name == "ePOSPrint"]
    assert [[c.text for c in job.children[0].children] for job in jobs] == [
        ["local_printer", "ABC123"], ["local_printer", "ABC124"]]
    assert [r["success"] for r in response_elements(pos_server.responses()[0])] == ["true"] * 2
    assert response_elements(pos_server.responses()[0])[0]["status"] == "251658262"


@pytest_twisted.ensureDeferred
async def test_version_1_results_and_a_refusing_printer(store, pos_server, printer):
    printer.state = PrinterState(cover_open=True)
    pos_server.answers.append(print_request(("local_printer", None, "<text>x</text><cut/>"),
                                            version=None))
    await run_until_answered(store, pos_server, printer)
    root = parse_xml(pos_server.responses()[0].encode())
    assert root.attributes == {"Version": "1.00"}
    (result,) = response_elements(pos_server.responses()[0])
    assert (result["success"], result["code"]) == ("false", "EPTR_COVER_OPEN")
    assert list(store.newest) == []


@pytest_twisted.ensureDeferred
async def test_an_unusable_answer_is_reported_as_the_tm_t88vi_does(store, pos_server, printer):
    pos_server.answers.append(b"<PrintRequestInfo><ePOSPrint>")
    await run_until_answered(store, pos_server, printer)
    root = parse_xml(pos_server.responses()[0].encode())
    verdict = root.children[0].children[0]
    assert (verdict.name, verdict.attributes) == ("Response", {"Success": "false"})
    assert verdict.children[0].text == "Invalid XML format"


@pytest_twisted.ensureDeferred
async def test_failures_back_off_and_an_undelivered_result_is_sent_again(store, pos_server,
                                                                        printer):
    # Two GetRequests fail; the third gets the job; its SetResponse fails once.
    pos_server.failing = {0: 503, 1: 503, 3: 500}
    pos_server.answers.append(print_request(("local_printer", "J1", "<text>once</text><cut/>")))
    poller = make_poller(store, pos_server, printer)
    poller.startService()
    try:
        await wait_until(lambda: len(pos_server.posts) >= 6, timeout=10)
        errors = poller.errors_total  # before stopping: stopping cancels an exchange in flight
    finally:
        poller.stopService()
    kinds = [p["ConnectionType"] for p in pos_server.posts]
    # The result that was not taken goes out again before the next GetRequest.
    assert kinds[:6] == ["GetRequest"] * 3 + ["SetResponse", "SetResponse", "GetRequest"]
    assert pos_server.responses()[0] == pos_server.responses()[1]
    assert errors == 3
    # Printed once, reported until taken.
    assert [r.text for r in await stored_receipts(store)] == ["once"]


@pytest_twisted.ensureDeferred
async def test_an_answer_over_2_mb_is_reported_as_too_big_and_an_error_page_as_the_error(
        store, pos_server, printer):
    too_big = b"<PrintRequestInfo>" + b" " * MAX_REQUEST_BYTES + b"</PrintRequestInfo>"
    pos_server.failing, pos_server.failing_body = {0: 503}, too_big
    pos_server.answers.append(too_big)
    poller = await run_until_answered(store, pos_server, printer, timeout=10,
                                      settled=lambda poller: poller.last_error is None)
    # A big error page is the server's failure; a big answer, the print request's.
    assert (poller.errors_total, poller.last_error) == (1, None)
    assert poller.polls_total >= 2
    root = parse_xml(pos_server.responses()[0].encode())
    verdict = root.children[0].children[0]
    assert verdict.attributes == {"Success": "false"}
    assert [c.text for c in verdict.children] == ["Data size is exceeded",
                                                  "Too big print request"]
    assert list(store.newest) == []


def retry_delays(store, clock, failing: dict[int, int], polls: int, interval: float,
                 max_backoff: float) -> list[float]:
    """The seconds a poller waits after each of its first ``polls`` polls (on a task.Clock,
    through StubTreq), the server answering the POSTs numbered in ``failing`` with an error."""
    server = FakePosServer()
    server.failing = failing
    http = StubTreq(server)
    target = EposPrinter("counter", state=PrinterState)
    config = ServerDirectPrintConfig("counter", "http://pos.example/print.php", interval)
    poller = ServerDirectPrint(clock, EposPrinting(clock, store, [target]), target, config, http,
                               timeout=10, max_backoff=max_backoff)
    poller.startService()
    delays = []
    try:
        for poll in range(polls + 1):
            (call,) = clock.getDelayedCalls()
            delays.append(call.getTime() - clock.seconds())
            if poll < polls:
                clock.advance(delays[-1])
                http.flush()
                assert len(server.posts) == poll + 1  # the poll is over: one POST each
    finally:
        poller.stopService()
    return delays[1:]  # the first poll starts at once


def test_failed_polls_wait_two_intervals_doubling_to_the_maximum_and_a_success_starts_over(
        inline_store, clock):
    # Polls 0-4 and 6 fail, 5 and 7 work (each works out with an empty answer: no jobs).
    failing = {0: 503, 1: 503, 2: 500, 3: 503, 4: 503, 6: 503}
    assert retry_delays(inline_store, clock, failing, 8, interval=5, max_backoff=60) == [
        10, 20, 40, 60, 60, 5, 10, 5]
    # A maximum below the interval: never shorter than the interval.
    assert retry_delays(inline_store, clock, {0: 503, 1: 503}, 3, interval=5,
                        max_backoff=1) == [5, 5, 5]
    assert retry_delays(inline_store, clock, {0: 503, 1: 503}, 3, interval=5,
                        max_backoff=7) == [7, 7, 5]


@pytest_twisted.ensureDeferred
async def test_a_server_that_is_down_is_polled_with_backoff_and_no_job_is_lost(store, printer):
    config = ServerDirectPrintConfig("counter", "http://127.0.0.1:9/print.php", 0.02)
    target = EposPrinter("counter", state=lambda: printer.state)
    poller = ServerDirectPrint(reactor, EposPrinting(reactor, store, [target]), target, config,
                               treq, timeout=5, max_backoff=0.1)
    poller.startService()
    try:
        await wait_until(lambda: poller.failures >= 3)
    finally:
        poller.stopService()
    assert poller.last_error and "refused" in poller.last_error.lower()
    assert poller.status()["failures_in_a_row"] >= 3


@pytest.mark.e2e
@pytest_twisted.ensureDeferred
async def test_the_daemon_polls_the_server_its_settings_name(tmp_path, pos_server):
    import json

    from bench.daemon import Daemon

    pos_server.answers.append(print_request(
        ("local_printer", "ORDER-9", '<text align="center">Pickup #9&#10;</text>'
                                     '<pulse drawer="drawer_1" time="pulse_100"/><cut/>')))
    setting = json.dumps([{"printer": "default", "url": pos_server.url, "interval": 0.1,
                           "id": "TM01", "name": "Front"}])
    daemon = Daemon(tmp_path, f"--server-direct-print={setting}")  # blocks while it starts
    try:
        await wait_until(lambda: pos_server.responses(), timeout=20)
        response = await treq.get(daemon.url("/api/receipts"))
        receipts = (await response.json())["receipts"]
        assert [(r["text"], r["source"], r["epos"]["printjobid"]) for r in receipts] == [
            ("Pickup #9", "epos-print", "ORDER-9")]
        assert receipts[0]["drawer_kicks"] == [{"pin": 2, "on_ms": 100, "off_ms": 100}]
        response = await treq.get(daemon.url(f"/api/receipts/{receipts[0]['id']}.txt"))
        assert "Pickup #9" in (await response.text())
        assert {p["ID"] for p in pos_server.posts} == {"TM01"}
        assert {p["Name"] for p in pos_server.posts} == {"Front"}
        (result,) = response_elements(pos_server.responses()[0])
        assert result["success"] == "true"
    finally:
        daemon.stop()


def test_the_setting_reads_toml_tables_and_refuses_bad_entries(tmp_path):
    from printerd.config import ConfigError, load_settings

    config = tmp_path / "printerd.toml"
    config.write_text('[[server_direct_print]]\nprinter = "default"\n'
                      'url = "https://pos.example.com/print.php"\ninterval = 2.5\nid = "TM01"\n')
    (entry,) = load_settings({}, {}, str(config)).server_direct_print
    assert entry == ServerDirectPrintConfig("default", "https://pos.example.com/print.php", 2.5,
                                            "TM01", "")
    for bad in ('[{"printer": "default"}]', '[{"printer": "x", "url": "ftp://pos/"}]',
                '[{"printer": "x", "url": "http://pos/", "interval": 0}]',
                '[{"printer": "x", "url": "http://pos/", "colour": "red"}]'):
        with pytest.raises(ConfigError, match="server-direct-print"):
            load_settings({"server_direct_print": bad}, {})

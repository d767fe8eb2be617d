"""
Star CloudPRNT: printerd polls a small fake CloudPRNT server (a real Twisted HTTP server on
127.0.0.1) with treq, as a Star printer does, and stores the jobs it gets.
"""

from __future__ import annotations

import io
import json
from typing import Any, Optional
from urllib.parse import parse_qs, urlsplit

import pytest
import pytest_twisted
import treq
from PIL import Image, ImageDraw
from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.web.resource import Resource
from twisted.web.server import Site

from clients import client_job
from printerd.cloudprnt import (
    CloudPrntConfig, CloudPrntPrinter, asb_hex, choose_media_type, page_info, status_code,
)
from printerd.config import Settings
from printerd.escpos.profiles import profile_for
from printerd.escpos.status import PrinterState
from printerd.rawport.factory import RawPrintFactory, job_settings
from support import wait_until


class FakeCloudPrntServer(Resource):
    """A CloudPRNT server: offers its queued jobs, records every request it gets."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.polls: list[dict] = []
        self.requests: list[tuple[str, dict]] = []  # (method, query) of GETs and DELETEs
        self.jobs: list[dict] = []  # {"types": {media type: body}, "token": ..., ...}
        self.actions: list[dict] = []  # clientAction requests for the next poll answer
        self.extra: dict = {}  # more keys for every poll answer
        self.confirmations: list[dict] = []

    def render_POST(self, request) -> bytes:
        self.polls.append(json.loads(request.content.read()))
        answer: dict[str, Any] = {"jobReady": bool(self.jobs), **self.extra}
        if self.jobs:
            answer["mediaTypes"] = list(self.jobs[0]["types"])
            if "token" in self.jobs[0]:
                answer["jobToken"] = self.jobs[0]["token"]
        if self.actions:
            answer["clientAction"], self.actions = self.actions, []
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(answer).encode()

    def render_GET(self, request) -> bytes:
        query = {k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()}
        self.requests.append(("GET", query))
        if "delete" in query:
            return self._confirm(query)
        if not self.jobs or query["type"][0] not in self.jobs[0]["types"]:
            request.setResponseCode(404)
            return b""
        job = self.jobs[0]
        request.setHeader(b"content-type", query["type"][0].encode())
        for name, value in job.get("headers", {}).items():
            request.setHeader(name.encode(), value.encode())
        return job["types"][query["type"][0]]

    def render_DELETE(self, request) -> bytes:
        query = {k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()}
        self.requests.append(("DELETE", query))
        return self._confirm(query)

    def _confirm(self, query: dict) -> bytes:
        self.confirmations.append({k: v[0] for k, v in query.items()})
        if self.jobs:
            self.jobs.pop(0)
        return b""


@pytest.fixture
def server():
    fake = FakeCloudPrntServer()
    port = reactor.listenTCP(0, Site(fake), interface="127.0.0.1")
    yield fake, f"http://127.0.0.1:{port.getHost().port}/cloudprnt.php"
    port.stopListening()


def star_printer(store, url: str, interval: float = 0.05,
                 max_job_bytes: int = 1 << 20) -> CloudPrntPrinter:
    settings = Settings(emulation="star", printer_model="TSP143IIIU", printer_serial="S1")
    factory = RawPrintFactory(reactor, store, printer="bar", job=job_settings(settings))
    return CloudPrntPrinter(reactor, factory, CloudPrntConfig(url, interval, "00:11:62:aa:bb:cc"),
                            treq, max_job_bytes=max_job_bytes)


async def receipts(store, count: int) -> list:
    await wait_until(lambda: store.receipts_total >= count)
    return [await store.get_receipt(n) for n in range(1, count + 1)]


def png(width: int, height: int) -> bytes:
    image = Image.new("L", (width, height), 255)
    ImageDraw.Draw(image).rectangle((10, 10, width - 10, height // 2), fill=0)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def test_status_code_and_asb_follow_the_printer_state():
    assert status_code(PrinterState()) == "200 OK"
    assert status_code(PrinterState(paper="near_end")) == "211 Paper Low"
    assert status_code(PrinterState(paper="out")) == "410 Out of paper"
    assert status_code(PrinterState(cover_open=True, paper="out")) == "420 Cover open"
    assert status_code(PrinterState(online=False)).startswith("4")
    assert asb_hex(PrinterState()) == "23 6 0 0 0 0 0 0 0 "
    assert asb_hex(PrinterState(paper="out")) == "23 6 8 0 0 c 0 0 0 "


def test_media_type_choice_prefers_starprnt_then_line_then_text_then_images():
    assert choose_media_type(["image/png", "text/plain", "application/vnd.star.starprnt"]) == \
        "application/vnd.star.starprnt"
    assert choose_media_type(["image/jpeg", "text/plain; charset=utf-8"]) == "text/plain"
    assert choose_media_type(["application/pdf"]) is None
    assert choose_media_type(None) is None


def test_page_info_gives_the_paper_in_mm_and_dots_per_mm():
    assert page_info(profile_for("TSP143IIIU")) == {
        "paperWidth": "80", "printWidth": "72", "horizontalResolution": "8",
        "verticalResolution": "8"}
    assert page_info(profile_for("mC-Print2"))["paperWidth"] == "58"


@pytest_twisted.ensureDeferred
async def test_polls_answer_client_actions_and_a_starprnt_job_is_stored_and_confirmed(
        store, server):
    fake, url = server
    job = client_job("receipt-printer-encoder-star-prnt")
    fake.actions = [{"request": "ClientType"}, {"request": "Encodings"},
                    {"request": "SetID", "options": "bar-7"}, {"request": "GetPollInterval"},
                    {"request": "PageInfo"}, {"request": "Firmware"}]
    printer = star_printer(store, url)
    printer.startService()
    try:
        await wait_until(lambda: len(fake.polls) >= 2)
        first, second = fake.polls[:2]
        assert first == {"status": "23 6 0 0 0 0 0 0 0 ", "printerMAC": "00:11:62:aa:bb:cc",
                         "statusCode": "200%20OK", "printingInProgress": False,
                         "clientAction": None}
        # The results go out at once, in the next POST, with the ID the server set.
        assert second["uniqueID"] == "bar-7"
        results = {r["request"]: r["result"] for r in second["clientAction"]}
        assert results["ClientType"] == "Star TSP143IIIU"
        assert results["Encodings"].split(";")[:3] == [
            "application/vnd.star.starprnt", "application/vnd.star.line", "text/plain"]
        assert results["SetID"] == "bar-7" and results["GetPollInterval"] == "0.05"
        assert json.loads(results["PageInfo"])["printWidth"] == "72"
        assert "Firmware" not in results  # not a request it knows: no made-up answer

        fake.jobs.append({"types": {"image/png": png(100, 40),
                                    "application/vnd.star.starprnt": job}, "token": "t-1"})
        first_receipt, second_receipt = await receipts(store, 2)
        await wait_until(lambda: fake.confirmations)
        method, query = fake.requests[0]
        assert method == "GET"
        assert query == {"uid": ["bar-7"], "mac": ["00:11:62:aa:bb:cc"], "token": ["t-1"],
                         "type": ["application/vnd.star.starprnt"]}
        assert fake.requests[1][0] == "DELETE"
        assert fake.confirmations[0] == {"uid": "bar-7", "mac": "00:11:62:aa:bb:cc",
                                         "token": "t-1", "code": "200 OK"}
        assert first_receipt.printer == "bar" and first_receipt.cut == "partial"
        assert "Café Ünïcödé – £5 €7" in first_receipt.text
        assert second_receipt.text.strip() == "Second receipt"
        details = json.loads(first_receipt.details)
        assert details["source"] == "cloudprnt"
        assert details["cloudprnt"] == {"media_type": "application/vnd.star.starprnt"}
        assert [b["data"] for b in details["barcodes"]] == ["RIO-128", "3130630574613"]
        assert first_receipt.peer.startswith("cloudprnt:127.0.0.1:")
        assert printer.counters.jobs_printed_total == 1
    finally:
        await printer.stopService()


class ActionLoopServer(FakeCloudPrntServer):
    """Asks for a client action in every answer."""

    def render_POST(self, request) -> bytes:
        self.actions = [{"request": "ClientVersion"}]
        return super().render_POST(request)


@pytest_twisted.ensureDeferred
async def test_a_server_that_always_asks_for_actions_does_not_get_a_post_storm(store):
    fake = ActionLoopServer()
    port = reactor.listenTCP(0, Site(fake), interface="127.0.0.1")
    printer = star_printer(store, f"http://127.0.0.1:{port.getHost().port}/", interval=0.5)
    printer.startService()
    try:
        await wait_until(lambda: len(fake.polls) >= 5)
        await deferLater(reactor, 0.3, lambda: None)
        # One poll: the status POST and at most 4 POSTs of action results, then the interval.
        assert len(fake.polls) == 5
        assert fake.polls[-1]["clientAction"] == [{"request": "ClientVersion",
                                                   "result": "1.0.0"}]
    finally:
        await printer.stopService()
        await port.stopListening()


@pytest_twisted.ensureDeferred
async def test_an_offline_printer_reports_its_state_and_fetches_nothing(store, server):
    fake, url = server
    printer = star_printer(store, url)
    printer.factory.set_state(PrinterState(paper="out"))
    fake.jobs.append({"types": {"text/plain": b"not yet"}})
    printer.startService()
    try:
        await wait_until(lambda: len(fake.polls) >= 3)
        assert fake.polls[-1]["statusCode"] == "410%20Out%20of%20paper"
        assert fake.polls[-1]["status"] == "23 6 8 0 0 c 0 0 0 "
        assert fake.requests == []  # jobReady, but a printer without paper does not GET
        printer.factory.set_state(PrinterState(paper="near_end"))
        (receipt,) = await receipts(store, 1)
        assert receipt.text == "not yet"
        # A poll sent before the paper came back may be what brought the job: the next one
        # reports the new state.
        await wait_until(lambda: any(p["statusCode"] == "211%20Paper%20Low"
                                     for p in fake.polls))
    finally:
        await printer.stopService()


@pytest_twisted.ensureDeferred
async def test_text_and_image_jobs_and_confirmation_by_get(store, server):
    fake, url = server
    fake.extra = {"deleteMethod": "GET"}
    fake.jobs.append({"types": {"text/plain": "Grüße\nTable 3\n".encode()}, "token": "a",
                      "headers": {"X-Star-Cut": "partial; feed=true"}})
    fake.jobs.append({"types": {"image/png": png(800, 60)}, "token": "b"})
    printer = star_printer(store, url)
    printer.startService()
    try:
        text, image = await receipts(store, 2)
        await wait_until(lambda: len(fake.confirmations) == 2)
        assert (text.text, text.cut) == ("Grüße\nTable 3", "partial")
        # Confirmed with a GET carrying "delete", as the server asked.
        assert [r[0] for r in fake.requests] == ["GET", "GET", "GET", "GET"]
        assert "delete" in fake.requests[1][1] and fake.confirmations[0]["code"] == "200 OK"
        details = json.loads(image.details)
        assert details["images"]["count"] == 1
        # An 800-dot image is scaled to the TSP143's 576 dots, its height in proportion.
        assert details["images"]["items"][0]["width"] == 576
        assert details["images"]["items"][0]["height"] == 43
        assert image.cut == "full"
    finally:
        await printer.stopService()


@pytest_twisted.ensureDeferred
async def test_jobs_it_cannot_print_are_confirmed_with_their_error_code(store, server):
    fake, url = server
    fake.jobs.append({"types": {"application/pdf": b"%PDF-1.4"}})
    fake.jobs.append({"types": {"image/png": b"this is no PNG"}})
    fake.jobs.append({"types": {"application/vnd.star.starprnt": b"x" * 5000}})
    printer = star_printer(store, url, max_job_bytes=4096)
    printer.startService()
    try:
        await wait_until(lambda: len(fake.confirmations) == 3)
        assert [c["code"] for c in fake.confirmations] == [
            "510 Incompatible media type", "511 Media decoding error", "521 Job too large"]
        assert store.receipts_total == 0
        assert printer.counters.jobs_rejected_total == 3
    finally:
        await printer.stopService()


@pytest_twisted.ensureDeferred
async def test_an_unreachable_server_backs_off_and_polling_resumes_when_it_is_back(store):
    fake = FakeCloudPrntServer()
    port = reactor.listenTCP(0, Site(fake), interface="127.0.0.1")
    number = port.getHost().port
    await port.stopListening()
    printer = star_printer(store, f"http://127.0.0.1:{number}/", interval=0.05)
    printer.backoff.cap = 0.2
    printer.startService()
    back: Optional[Any] = None
    try:
        await wait_until(lambda: printer.counters.poll_failures_total >= 3)
        assert printer.to_json()["state"] == "down"
        assert "refused" in printer.counters.last_error.lower()
        back = reactor.listenTCP(number, Site(fake), interface="127.0.0.1")
        await wait_until(lambda: fake.polls and printer.up)
        assert printer.to_json()["state"] == "up" and printer.counters.last_error is None
    finally:
        await printer.stopService()
        if back is not None:
            await back.stopListening()


def test_cloudprnt_settings_per_printer(tmp_path):
    from printerd.config import load_settings

    config = tmp_path / "p.toml"
    config.write_text('[printers.bar]\nlisten = "tcp:9101"\nemulation = "star"\n'
                      'cloudprnt = "https://pos.example/cloudprnt"\ncloudprnt_interval = 2\n'
                      'cloudprnt_mac = "00-11-62-AA-BB-CC"\n')
    (bar,) = load_settings({}, {}, str(config)).printer_configs()
    assert (bar.cloudprnt, bar.cloudprnt_interval, bar.cloudprnt_mac) == (
        "https://pos.example/cloudprnt", 2.0, "00:11:62:aa:bb:cc")
    assert urlsplit(bar.cloudprnt).scheme == "https" and parse_qs("") == {}


@pytest.mark.e2e
@pytest_twisted.ensureDeferred
async def test_the_daemon_polls_a_cloudprnt_server_and_shows_it(tmp_path, server):
    from bench.daemon import Daemon

    fake, url = server
    fake.jobs.append({"types": {"application/vnd.star.starprnt":
                                client_job("receipt-printer-encoder-star-prnt")},
                      "token": "e2e"})
    printers = {"bar": {"listen": "tcp:0:interface=127.0.0.1", "emulation": "star",
                        "cloudprnt": url, "cloudprnt_interval": 0.2}}
    # Starting the daemon blocks this reactor a moment: its first polls fail and back off.
    daemon = Daemon(tmp_path, f"--printers={json.dumps(printers)}")
    try:
        await wait_until(lambda: fake.confirmations, timeout=30)
        assert fake.confirmations[0]["code"] == "200 OK"
        assert fake.confirmations[0]["token"] == "e2e"
        code, body = daemon.get("/api/receipts?printer=bar")
        assert [r["cut"] for r in body["receipts"]] == ["full", "partial"]
        (printer,) = daemon.get("/api/printers")[1]["printers"]
        assert printer["cloudprnt"]["url"] == url
        assert printer["cloudprnt"]["counters"]["jobs_printed"] == 1
        daemon.get("/api/stats")  # the figures table reads the poller's rows
        stats = daemon.get("/api/stats")[1]
        assert stats["cloudprnt_jobs_total"] == {"printed": 1, "rejected": 0}
    finally:
        daemon.stop()


def test_cloudprnt_needs_the_star_emulation(capsys):
    from printerd.tap import Options

    with pytest.raises(SystemExit):
        Options().parseOptions(["--cloudprnt=http://pos.example/cloudprnt"])
    assert "give it emulation = \"star\"" in capsys.readouterr().err
    Options().parseOptions(["--cloudprnt=http://pos.example/cloudprnt", "--emulation=star"])

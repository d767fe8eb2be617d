"""
OCR of image-only receipts: Debian's tesseract (installed by .ci/run) reads a raster receipt
printed through ePOS-Print as Odoo prints one (the whole receipt one image), the text lands in
``ocr_text``, ``q`` finds it, the stream announces it as ``event: receipt.ocr``; the worker is
bounded, kills a run that hangs, and survives one that fails.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import urllib.request

import pytest
import pytest_twisted
from PIL import Image as PillowImage
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from bench.ocr_cost import raster_receipt
from printerd.ocr import OcrWorker, wants_ocr
from printerd.store.receipts import NewReceipt, ReceiptQuery, format_time
from support import wait_until

TESSERACT = shutil.which("tesseract")
needs_tesseract = pytest.mark.skipif(
    TESSERACT is None and os.environ.get("PRINTERD_REQUIRE_TESSERACT") != "1",
    reason="tesseract is not installed (apt-get install tesseract-ocr); .ci/run installs it")

def stored(text: str = "", details: dict | None = None) -> NewReceipt:
    return NewReceipt("default", "10.0.0.3:1", format_time(1_700_000_000), 1, b"\x1dv0...",
                      text, "full", False, json.dumps(details or {}))


def test_only_receipts_with_images_and_no_text_are_read():
    from printerd.store.receipts import Receipt

    def receipt(text: str, count: int) -> Receipt:
        return Receipt(1, "p", "x", "t", 1, 10, text, "full", False, "", json.dumps(
            {"images": {"count": count, "items": []}}))

    assert wants_ocr(receipt("", 1)) and not wants_ocr(receipt("Total", 1))
    assert not wants_ocr(receipt("", 0)) and not wants_ocr(receipt("  \n", 0))


@pytest_twisted.ensureDeferred
async def test_the_queue_is_bounded_and_reads_one_at_a_time(store):
    waiting: list[Deferred] = []

    def image(receipt_id: int) -> Deferred:
        waiting.append(Deferred())
        return waiting[-1]

    worker = OcrWorker(reactor, store, image, lambda receipt: None, "/bin/true", queue_size=2)
    worker.startService()
    for receipt_id in (1, 2, 3, 4):
        worker.enqueue(receipt_id)
    assert len(waiting) == 1  # one at a time: the first is being read
    assert (worker.queued, worker.skipped_total) == (2, 1)
    worker.stopService()
    waiting[0].callback(None)


@needs_tesseract
@pytest_twisted.ensureDeferred
async def test_a_failing_or_hanging_tesseract_is_counted_and_the_receipt_kept(store, tmp_path):
    receipt = await store.add_receipt(stored(details={"images": {"count": 1}}))
    hang = tmp_path / "hang.sh"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    for executable, timeout in (("/bin/false", 30.0), (str(hang), 0.3)):
        async def png(receipt_id: int) -> bytes:
            return b"\x89PNG not really"

        worker = OcrWorker(reactor, store, lambda i: Deferred.fromCoroutine(png(i)),
                           lambda r: None, executable, timeout=timeout)
        worker.startService()
        worker.enqueue(receipt.id)
        await wait_until(lambda worker=worker: worker.failed_total == 1, timeout=10)
        worker.stopService()
    assert (await store.get_receipt(receipt.id)).ocr_text is None


@needs_tesseract
@pytest_twisted.ensureDeferred
async def test_ocr_text_is_stored_and_q_searches_it(store):
    width, height, dots = raster_receipt()
    png = PillowImage.frombytes("1", (width, height), bytes(b ^ 0xFF for b in dots))

    def image(receipt_id: int) -> Deferred:
        from io import BytesIO
        out = BytesIO()
        png.save(out, "PNG")
        return Deferred.fromCoroutine(_value(out.getvalue()))

    announced = []
    receipt = await store.add_receipt(stored(details={"images": {"count": 1}}))
    worker = OcrWorker(reactor, store, image, announced.append, TESSERACT or "tesseract")
    worker.startService()
    worker.receipts_committed([receipt])
    await wait_until(lambda: announced, timeout=60)
    worker.stopService()
    text = announced[0].ocr_text
    assert "Espresso" in text and "TOTAL" in text
    assert announced[0].to_json()["ocr_text"] == text
    found = await store.find_receipts(ReceiptQuery(text="croissant"))
    assert [r.id for r in found] == [receipt.id]
    assert worker.cpu_seconds_total > 0 and worker.wall_seconds_total > 0


async def _value(value):
    return value


@needs_tesseract
@pytest.mark.e2e
def test_an_odoo_style_image_receipt_gets_its_text_read_and_announced(tmp_path):
    from src.epos.document import EposDocument
    from src.epos.elements import Image
    from src.epos.printer import Printer

    from bench.daemon import Daemon

    daemon = Daemon(tmp_path, "--ocr")
    try:
        threads = daemon.get("/api/stats")[1]["threads"]
        stream = urllib.request.urlopen(daemon.url("/api/stream"), timeout=60)
        width, height, dots = raster_receipt()
        document = EposDocument()
        document.add_body(Image(width=width, height=height, text=base64.b64encode(dots).decode()))
        assert Printer(f"127.0.0.1:{daemon.http_port}", request_timeout=30).print(
            document).success
        events = []
        while not any(line.startswith(b"event: receipt.ocr") for line in events):
            events.append(stream.readline().strip())
        update = json.loads(stream.readline().strip()[len(b"data: "):])
        stream.close()
        assert b"event: receipt" in events  # the receipt itself first, then its update
        assert update["text"] == "" and "Espresso" in update["ocr_text"]
        found = daemon.get("/api/receipts?q=Orange%20juice")[1]["receipts"]
        assert [r["id"] for r in found] == [update["id"]]
        stats = daemon.get("/api/stats")[1]
        assert stats["ocr_read_total"] == 1 and stats["threads"] == threads
    finally:
        daemon.stop()


def test_an_ocr_update_reaches_live_streams_of_its_printer_without_an_id(inline_store, clock):
    from support import StreamHarness, draft, result_of

    harness = StreamHarness(inline_store, clock)
    _, everything = harness.open()
    _, kitchen = harness.open("/api/stream?printer=kitchen")
    (receipt,) = harness.commit(draft())
    updated = result_of(inline_store.set_ocr_text(receipt.id, "TOTAL 8.20"))
    harness.hub.publish_update(updated)
    harness.pump()
    body = b"".join(everything)
    update = body[body.index(b"event: receipt.ocr"):]
    assert update.startswith(b'event: receipt.ocr\ndata: {"id":%d' % receipt.id)
    assert b'"ocr_text":"TOTAL 8.20"' in update and b"\nid:" not in update
    assert b"receipt.ocr" not in b"".join(kitchen)
    assert inline_store.newest[-1].ocr_text == "TOTAL 8.20"  # /api/recent has it too


def test_an_update_waits_while_a_stream_replays(clock):
    from twisted.internet.defer import succeed
    from twisted.web.test.requesthelper import DummyRequest

    from printerd.http.stream import StreamHub

    hub = StreamHub(clock, lambda after, limit, printer: succeed([]))
    request = DummyRequest([b"api", b"stream"])
    subscriber = hub.subscribe(request, None, after=5)  # replaying from id 5
    subscriber.update("default", b"event: receipt.ocr\ndata: {}\n\n")
    assert request.written == []
    subscriber.go_live()
    assert request.written == [b"event: receipt.ocr\ndata: {}\n\n"]

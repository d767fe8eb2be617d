"""The raw port as a Star printer: the printer's emulation picks the parser and the replies."""

from __future__ import annotations

import json

import pytest_twisted
from twisted.internet.testing import MemoryReactorClock

from printerd.config import Settings
from printerd.escpos.status import PrinterState
from printerd.rawport.factory import RawPrintFactory, job_settings
from support import connect, wait_until

ASB_HEALTHY = bytes.fromhex("230600000000000000")


def star_factory(store) -> RawPrintFactory:
    settings = Settings(emulation="star", printer_model="TSP654II")
    return RawPrintFactory(MemoryReactorClock(), store, printer="bar",
                           job=job_settings(settings))


def test_star_status_requests_get_star_replies_and_epson_queries_none(store):
    factory = star_factory(store)
    protocol, transport = connect(factory, 1)
    protocol.dataReceived(b"\x1b\x06")
    assert transport.value() == b""  # ESC ACK SOH split across reads: answered when whole
    protocol.dataReceived(b"\x01\x05\x04" + b"\x1b#*\n\x00")
    assert transport.value() == ASB_HEALTHY + b"\x20\x10" + b"\x1b#*,TSP654II Ver1.0\n\x00"
    transport.clear()
    # ESC/POS queries get no answer (receiptio's detection reads the first byte back as the
    # ASB's header); Star's own EOT still does.
    protocol.dataReceived(b"\x10\x04\x01\x1dr\x01")
    assert transport.value() == b""
    protocol.dataReceived(b"\x04")
    assert transport.value() == b"\x10"


@pytest_twisted.ensureDeferred
async def test_asb_follows_state_changes_and_etb_only_once_enabled(store):
    factory = star_factory(store)
    asb, asb_transport = connect(factory, 1)
    quiet, quiet_transport = connect(factory, 2)
    quiet.dataReceived(b"\x17")  # ETB without ASB: counted, nothing sent
    asb.dataReceived(b"\x1b\x1ea\x01")
    assert asb_transport.value() == ASB_HEALTHY
    factory.set_state(PrinterState(paper="out"))
    assert asb_transport.value()[9:] == bytes.fromhex("23060800000c000000")
    assert quiet_transport.value() == b""
    asb_transport.clear()
    asb.dataReceived(b"printed\n\x1bd\x03\x17")
    # ETB confirms the receipt printed: it is answered once the receipt is committed.
    await wait_until(lambda: asb_transport.value())
    assert asb_transport.value() == bytes.fromhex("23060a00000c000200")  # ETB 1, executed


@pytest_twisted.ensureDeferred
async def test_a_star_job_is_stored_with_its_content(store):
    factory = star_factory(store)
    protocol, _ = connect(factory, 1)
    protocol.dataReceived(b"\x1b@\x1b\x1da\x01\x1bEStar\x1bF\n\x1bb\x06\x02\x02\x40ABC\x1e"
                          b"\x1b\x1dyD1\x00\x03\x00xyz\x1b\x1dyP\x07\x1bd\x01")
    protocol.connectionLost(None)
    await wait_until(lambda: store.receipts_total >= 1)
    receipt = await store.get_receipt(1)
    assert (receipt.printer, receipt.text, receipt.cut) == ("bar", "Star", "partial")
    details = json.loads(receipt.details)
    assert details["barcodes"] == [{"type": "CODE128", "data": "ABC", "line": 1}]
    assert details["codes_2d"][0]["data"] == "xyz"
    assert details["drawer_kicks"] == [{"pin": 2, "on_ms": 200, "off_ms": 200}]
    assert details["line_styles"][0]["align"] == "center"

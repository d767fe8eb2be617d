"""GET /metrics in the Prometheus text format, fed by the live counters."""

from __future__ import annotations

import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.address import IPv4Address

from printerd.http.api import PrinterdAPI
from printerd.http.stream import StreamHub
from printerd.metrics import ReactorLag, make_registry
from printerd.rawport.factory import RawPrintFactory
from test_api import get
from test_rawport import committed


def samples(text: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = sample.value
    return found


@pytest_twisted.ensureDeferred
async def test_metrics_follow_jobs_receipts_and_status_queries(store):
    clock = MemoryReactorClock()
    factory = RawPrintFactory(clock, store, printer="kitchen")
    hub = StreamHub(Clock())
    lag = ReactorLag(Clock())
    stub = StubTreq(PrinterdAPI(clock, store, factory, hub=hub,
                                registry=make_registry(store, factory, hub, lag)).resource())
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.1.1.1", 5))
    protocol.makeConnection(StringTransport())
    job = b"\x10\x04\x01\x1b\x07A\nB\n\x1dV\x00"
    protocol.dataReceived(job)
    protocol.connectionLost(None)
    await committed(store, 1)

    response, body = await get(stub, "/metrics")
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type")[0].startswith("text/plain")
    found = samples(body.decode())
    assert found["printerd_receipts_total"] == 1
    assert found["printerd_jobs_total"] == 1
    assert found["printerd_received_bytes_total"] == len(job)
    assert found["printerd_unknown_commands_total"] == 1
    assert found["printerd_status_queries_total"] == 1
    assert found["printerd_db_commit_seconds_count"] == 1
    assert found["printerd_sse_subscribers"] == 0
    assert found["printerd_threads"] >= 4
    assert "process_resident_memory_bytes" in found
    assert 'printer="kitchen"' in body.decode()


def test_reactor_lag_measures_late_timers():
    clock = Clock()
    lag = ReactorLag(clock, interval=1.0)
    lag.startService()
    clock.advance(1.0)
    assert lag.last_lag == 0
    clock.advance(3.5)  # the timer fired 2.5 s late
    assert lag.last_lag == 2.5
    assert lag.max_lag == 2.5
    lag.stopService()

"""GET /metrics in the Prometheus text format, fed by the live counters."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.internet.address import IPv4Address

from support import Api, request, request_json
from printerd.metrics import FIGURES, ReactorLag
from printerd.rawport.factory import RawPrintFactory, RawPrinter


def samples(text: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[sample.name] = sample.value
    return found


def test_metrics_follow_jobs_receipts_and_status_queries(inline_store, clock):
    store = inline_store
    factory = RawPrintFactory(MemoryReactorClock(), store, printer="kitchen")
    stub = Api(store, clock, printers=[RawPrinter(factory)]).stub
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.1.1.1", 5))
    protocol.makeConnection(StringTransport())
    job = b"\x10\x04\x01\x1b\x01A\nB\n\x1dV\x00"
    protocol.dataReceived(job)
    protocol.connectionLost(None)
    clock.advance(store.commit_delay)

    response, body = request(stub, "/metrics")
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
    assert found["printerd_threads"] >= 1
    assert "process_resident_memory_bytes" in found
    assert 'printer="kitchen"' in body.decode()


def test_every_figure_of_the_table_is_in_both_stats_and_metrics_and_nothing_else_is(
        inline_store, clock):
    """/api/stats and /metrics come from one table (printerd.metrics.FIGURES): no drift."""
    from printerd.config import WebhookTarget
    from printerd.forwarder.service import Forwarder

    forwarder = Forwarder(clock, inline_store, (WebhookTarget("cloud", "http://x/", "s"),),
                          http=None)
    stub = Api(inline_store, clock, forwarder=forwarder).stub
    code, stats = request_json(stub, "/api/stats")
    response, body = request(stub, "/metrics")
    families = {family.name for family in text_string_to_metric_families(body.decode())}
    assert set(stats) == {figure.stats_key for figure in FIGURES}
    for figure in FIGURES:
        assert figure.metric in families, figure.metric
    own = {name for name in families if name.startswith("printerd_")}
    # The commit and request latency histograms are distributions: Prometheus only.
    assert own == {f.metric for f in FIGURES if f.metric.startswith("printerd_")} | {
        "printerd_db_commit_seconds", "printerd_db_commit_seconds_created",
        "printerd_http_request_seconds", "printerd_http_request_seconds_created"}
    assert stats["junk_connections_total"] == {}
    assert stats["webhook_attempts_total"] == {"delivered": 0, "failed": 0}
    assert stats["forwarder_pending"] == 0


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


def test_every_figure_is_documented_in_the_readme():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [f.stats_key for f in FIGURES if f"`{f.stats_key}`" not in readme]
    missing += [f.metric for f in FIGURES if f"`{f.metric}" not in readme]
    assert missing == []


def test_every_raw_port_counter_is_a_figure(inline_store, clock):
    """A counter added to PrinterCounters must be added to the table too, or this fails."""
    import dataclasses

    from printerd.rawport.counters import PrinterCounters

    factory = RawPrintFactory(MemoryReactorClock(), inline_store)
    stub = Api(inline_store, clock, printers=[RawPrinter(factory)]).stub
    expected = {}
    for n, counter in enumerate(dataclasses.fields(PrinterCounters)):
        if counter.name == "junk_total":
            factory.counters.junk_total["probe"] = 7001
            expected[counter.name] = {"probe": 7001}
        else:
            setattr(factory.counters, counter.name, 1000 + n)
            expected[counter.name] = 1000 + n
    stats = request_json(stub, "/api/stats")[1]
    assert [name for name, value in expected.items() if value not in stats.values()] == []


def test_without_a_tailer_its_figures_are_0_in_stats_and_metrics_alike(db_path, clock):
    """SQLite has no tailer (no other instance commits): its figures read 0, not absent."""
    from support import add_receipts, draft, make_inline_store

    store = make_inline_store(db_path, clock)
    store.startService()
    try:
        add_receipts(store, clock, draft("one"), draft("two"))
        stub = Api(store, clock).stub
        stats = request_json(stub, "/api/stats")[1]
        found = samples(request(stub, "/metrics")[1].decode())
        names = ("notifications", "catch_up_reads", "receipts_from_others", "reconnects")
        assert {stats[f"tailer_{name}_total"] for name in names} == {0}
        assert {found[f"printerd_tailer_{name}_total"] for name in names} == {0}
        assert stats["receipts_committed_total"] == 2
    finally:
        store.stopService()

"""
Prometheus metrics for ``GET /metrics``.

Most figures are counters the services keep anyway; a collector reads them at scrape time so
nothing is counted twice.  Two are measured here: the database commit latency (a histogram fed
by the store) and the reactor's lag (how late a one-second timer fires).
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.internet.interfaces import IReactorTime

from printerd import process
from printerd.periodic import PeriodicJob
from printerd.forwarder.service import Forwarder
from printerd.http.stream import StreamHub
from printerd.rawport.factory import RawPrintFactory
from printerd.retention import Retention
from printerd.store.service import ReceiptStore


class ReactorLag(PeriodicJob):
    """Measures how late a periodic timer fires: a busy reactor delays everything."""

    def __init__(self, clock: IReactorTime, interval: float = 1.0) -> None:
        super().__init__("reactor-lag", clock, interval, self._tick, now=False)
        self.last_lag = 0.0
        self.max_lag = 0.0
        self._expected: Optional[float] = None

    def startService(self) -> None:
        self._expected = self.clock.seconds() + self.interval
        super().startService()

    def _tick(self) -> None:
        now = self.clock.seconds()
        if self._expected is not None:
            self.last_lag = max(0.0, now - self._expected)
            self.max_lag = max(self.max_lag, self.last_lag)
        self._expected = now + self.interval


class PrinterdCollector:
    """Reads printerd's counters at scrape time."""

    def __init__(self, store: ReceiptStore, factories: Sequence[RawPrintFactory],
                 hub: Optional[StreamHub], lag: Optional[ReactorLag],
                 forwarder: Optional[Forwarder] = None,
                 retention: Optional[Retention] = None) -> None:
        self.store = store
        self.factories = factories
        self.hub = hub
        self.lag = lag
        self.forwarder = forwarder
        self.retention = retention

    def collect(self) -> Iterator[Metric]:
        def per_printer(name: str, doc: str, attribute: str, kind: type = CounterMetricFamily):
            family = kind(name, doc, labels=["printer"])
            for factory in self.factories:
                family.add_metric([factory.printer], getattr(factory, attribute))
            return family

        def counter(name: str, doc: str, value: float):
            return CounterMetricFamily(name, doc, value=value)

        def gauge(name: str, doc: str, value: float):
            return GaugeMetricFamily(name, doc, value=value)

        yield per_printer("printerd_receipts", "Receipts received", "receipts_total")
        yield counter("printerd_receipts_committed", "Receipts committed since start",
                      self.store.committed_total)
        yield gauge("printerd_receipts_stored", "Receipts in the database", self.store.receipts_total)
        yield gauge("printerd_receipts_pending", "Receipts waiting for their commit",
                    self.store.pending_count)
        yield per_printer("printerd_jobs", "Raw print jobs started", "jobs_total")
        yield per_printer("printerd_received_bytes", "Bytes received on the raw port",
                          "bytes_total")
        yield per_printer("printerd_connections", "Raw connections accepted", "connections_total")
        yield per_printer("printerd_connections_active", "Raw jobs in flight",
                          "connections_active", GaugeMetricFamily)
        yield per_printer("printerd_connections_waiting", "Raw connections waiting for a slot",
                          "connections_waiting", GaugeMetricFamily)
        yield per_printer("printerd_unknown_commands", "Unknown ESC/POS commands seen",
                          "unknown_commands_total")
        yield per_printer("printerd_status_queries", "Real-time status queries answered",
                          "status_replies_total")
        junk = CounterMetricFamily("printerd_junk_connections",
                                   "Printer-port connections that spoke another protocol",
                                   labels=["printer", "protocol"])
        for factory in self.factories:
            for kind, count in factory.junk_total.items():
                junk.add_metric([factory.printer, kind], count)
        yield junk
        yield gauge("printerd_threads", "OS threads of the process", process.thread_count())
        yield gauge("printerd_database_bytes", "Database and WAL size on disk",
                    self.store.database_bytes())
        if self.hub is not None:
            yield gauge("printerd_sse_subscribers", "Open /api/stream subscribers",
                        len(self.hub.subscribers))
            yield counter("printerd_sse_events", "Stream events published", self.hub.events_total)
            yield counter("printerd_sse_dropped_slow", "Stream subscribers dropped for lagging",
                          self.hub.dropped_slow_total)
        if self.forwarder is not None:
            outcomes = CounterMetricFamily("printerd_webhook_attempts",
                                           "Webhook delivery attempts by outcome",
                                           labels=["target", "outcome"])
            in_flight = GaugeMetricFamily("printerd_webhook_in_flight", "Webhook POSTs in flight",
                                          labels=["target"])
            for name, state in self.forwarder.targets.items():
                outcomes.add_metric([name, "delivered"], state.delivered)
                outcomes.add_metric([name, "failed"], state.failed)
                in_flight.add_metric([name], state.in_flight)
            yield outcomes
            yield in_flight
            yield gauge("printerd_webhook_due", "Deliveries due at the forwarder's last poll "
                        "(at most 200; /api/forwarder has the full counts)", self.forwarder.due)
        if self.retention is not None:
            yield counter("printerd_retention_deleted", "Receipts deleted by retention",
                          self.retention.deleted_total)
        if self.lag is not None:
            yield gauge("printerd_reactor_lag_seconds",
                        "How late the last one-second reactor timer fired", self.lag.last_lag)
            yield gauge("printerd_reactor_lag_max_seconds", "Largest reactor lag seen",
                        self.lag.max_lag)


def make_registry(store: ReceiptStore, factories: RawPrintFactory | Sequence[RawPrintFactory],
                  hub: Optional[StreamHub],
                  lag: Optional[ReactorLag], forwarder: Optional[Forwarder] = None,
                  retention: Optional[Retention] = None) -> CollectorRegistry:
    """A registry of printerd's metrics (its own, not the global one: tests build several)."""
    registry = CollectorRegistry()
    if isinstance(factories, RawPrintFactory):
        factories = [factories]
    registry.register(PrinterdCollector(
        store, factories, hub, lag, forwarder, retention))
    ProcessCollector(registry=registry)
    commit_seconds = Histogram(
        "printerd_db_commit_seconds", "From a receipt's arrival at the store to its commit",
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
    store.on_commit_latency(commit_seconds.observe)
    return registry

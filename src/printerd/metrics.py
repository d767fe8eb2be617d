"""
printerd's figures: one table that both ``GET /api/stats`` and ``GET /metrics`` are made from.

Most figures are counters the services keep anyway; they are read at request time so nothing
is counted twice.  Each row of ``FIGURES`` names a figure once (its /api/stats key, its
Prometheus name, help, kind, labels) with how to read it, so the two outputs cannot drift
apart.  Two figures are measured here: the reactor's lag (how late a one-second timer fires)
and, in Prometheus only as they are distributions, the database commit latency histogram and
(on a shared database) the tailer's commit-to-announce latency histogram.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, Optional, Sequence, Union

import twisted
from prometheus_client import CollectorRegistry, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from printerd import __version__, process
from printerd.store import outbox
from printerd.forwarder.service import Forwarder
from printerd.http.measure import RequestMetrics
from printerd.http.ratelimit import RateLimiter
from printerd.http.site import HttpConnections
from printerd.http.stream import StreamHub
from printerd.periodic import PeriodicJob
from printerd.rawport.factory import RawPrintFactory
from printerd.render.service import Renderings
from printerd.retention import Retention
from printerd.store.service import ReceiptStore
from printerd.store.tailer import Tailer


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


@dataclass(frozen=True)
class Sources:
    """The services the figures are read from (makeService builds this once)."""

    clock: IReactorTime
    store: ReceiptStore
    factories: tuple[RawPrintFactory, ...]
    hub: StreamHub
    forwarder: Forwarder
    retention: Retention
    renderings: Renderings
    limiter: RateLimiter
    lag: ReactorLag
    http: HttpConnections
    started_at: float
    requests: Optional[RequestMetrics] = None
    instance: str = ""  # instance_name (default: the host name)
    site: str = ""
    tailer: Optional[Tailer] = None  # on a shared database (PostgreSQL) only
    # Deliveries per target and state: read from the database for each reading.
    outbox: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


Number = Union[int, float]
Samples = list[tuple[tuple[str, ...], Number]]  # (label values, value)


@dataclass(frozen=True)
class Figure:
    """One row of the table: a figure, both its names, and how to read it."""

    stats_key: str  # its key in /api/stats
    metric: str  # its Prometheus family name (a counter's samples get "_total" appended)
    help: str
    # "info": always 1 in Prometheus, where its labels are what it says; /api/stats shows
    # those labels as a dict.
    kind: Literal["counter", "gauge", "info"]
    read: Callable[[Sources], Any]  # a number, or Samples when it has labels
    labels: tuple[str, ...] = ()
    # /api/stats shows a labelled figure as its sum, or as a dict keyed by this label.
    stats_by: Optional[str] = None
    # Exported by prometheus_client's own process collector under ``metric``.
    process_collector: bool = False


def _per_printer(attribute: str) -> Callable[[Sources], Samples]:
    """A gauge each printer's factory reports (connections active, waiting)."""
    return lambda s: [((f.printer,), getattr(f, attribute)) for f in s.factories]


def _printer_counter(attribute: str) -> Callable[[Sources], Samples]:
    """A counter of each printer's PrinterCounters."""
    return lambda s: [((f.printer,), getattr(f.counters, attribute)) for f in s.factories]


def _tee(read: Callable[[Any], Number]) -> Callable[[Sources], Samples]:
    """A figure of each printer's tee (printers without one have no sample)."""
    return lambda s: [((f.printer,), read(f.tee)) for f in s.factories if f.tee is not None]


def _tee_jobs(s: Sources) -> Samples:
    return [((f.printer, outcome), getattr(f.tee.counters, f"jobs_{outcome}_total"))
            for f in s.factories if f.tee is not None for outcome in ("relayed", "not_relayed")]


def _tailer(read: Callable[[Tailer], Number]) -> Callable[[Sources], Number]:
    """A counter of the tailer; 0 without one (SQLite: no other instance commits)."""
    return lambda s: read(s.tailer) if s.tailer is not None else 0


def _per_target(read: Callable[[Sources, str], Number]) -> Callable[[Sources], Samples]:
    return lambda s: [((name,), read(s, name)) for name in s.forwarder.targets]


def _junk(s: Sources) -> Samples:
    return [((f.printer, kind), count) for f in s.factories for kind, count in f.counters.junk_total.items()]


def _http_requests(s: Sources) -> Samples:
    return sorted(s.requests.counts.items()) if s.requests is not None else []


def _build_info(s: Sources) -> Samples:
    return [((__version__, platform.python_version(), twisted.__version__), 1)]


def _attempts(s: Sources) -> Samples:
    return [((name, outcome), getattr(state, outcome))
            for name, state in s.forwarder.targets.items() for outcome in ("delivered", "failed")]


FIGURES: tuple[Figure, ...] = (
    Figure("instance", "printerd_instance",
           "This printerd: its instance_name, database engine (sqlite, postgresql) and site",
           "info", lambda s: [((s.instance, s.store.engine_name, s.site), 1)],
           ("instance_name", "engine", "site")),
    Figure("build_info", "printerd_build_info", "Which printerd runs (the value is always 1)",
           "gauge", _build_info, ("version", "python", "twisted"), stats_by="version"),
    Figure("receipts_total", "printerd_receipts_stored", "Receipts in the database", "gauge",
           lambda s: s.store.receipts_total),
    Figure("receipts_pending", "printerd_receipts_pending", "Receipts waiting for their commit",
           "gauge", lambda s: s.store.pending_count),
    Figure("receipts_received_total", "printerd_receipts", "Receipts received on the raw port",
           "counter", _printer_counter("receipts_total"), ("printer",)),
    Figure("receipts_committed_total", "printerd_receipts_committed",
           "Receipts committed since start", "counter", lambda s: s.store.committed_total),
    Figure("jobs_total", "printerd_jobs", "Raw print jobs started", "counter",
           _printer_counter("jobs_total"), ("printer",)),
    Figure("bytes_total", "printerd_received_bytes", "Bytes received on the raw port", "counter",
           _printer_counter("bytes_total"), ("printer",)),
    Figure("connections_active", "printerd_connections_active", "Raw jobs in flight", "gauge",
           _per_printer("connections_active"), ("printer",)),
    Figure("connections_waiting", "printerd_connections_waiting",
           "Raw connections waiting for a slot (accepted, and in the kernel's backlog)", "gauge",
           _per_printer("connections_waiting"), ("printer",)),
    Figure("connections_total", "printerd_connections", "Raw connections accepted", "counter",
           _printer_counter("connections_total"), ("printer",)),
    Figure("connections_refused_total", "printerd_connections_refused",
           "Raw connections refused (peer not in raw_allow)", "counter",
           _printer_counter("connections_refused_total"), ("printer",)),
    Figure("connections_turned_away_total", "printerd_connections_turned_away",
           "Raw connections closed before a slot: over the port's descriptor share, or a host "
           "holding its cap without printing", "counter",
           _printer_counter("connections_turned_away_total"), ("printer",)),
    Figure("connections_expired_total", "printerd_connections_expired",
           "Raw connections closed after waiting raw_wait_timeout for a slot", "counter",
           _printer_counter("connections_expired_total"), ("printer",)),
    Figure("connections_evicted_total", "printerd_connections_evicted",
           "Raw jobs that printed nothing, ended to give their slot to a waiting host", "counter",
           _printer_counter("connections_evicted_total"), ("printer",)),
    Figure("junk_connections_total", "printerd_junk_connections",
           "Printer-port connections that spoke another protocol", "counter", _junk,
           ("printer", "protocol"), stats_by="protocol"),
    Figure("unknown_commands_total", "printerd_unknown_commands", "Unknown ESC/POS commands seen",
           "counter", _printer_counter("unknown_commands_total"), ("printer",)),
    Figure("status_replies_total", "printerd_status_queries", "Real-time status queries answered",
           "counter", _printer_counter("status_replies_total"), ("printer",)),
    Figure("tee_up", "printerd_tee_up", "Tee relays whose real printer was reachable at the last "
           "try (1) or not (0)", "gauge", _tee(lambda t: int(t.up)), ("printer",)),
    Figure("tee_connections", "printerd_tee_connections", "Tee relay connections open", "gauge",
           _tee(lambda t: t.open_relays), ("printer",)),
    Figure("tee_jobs_total", "printerd_tee_jobs", "Raw jobs relayed to the tee's real printer, or "
           "not", "counter", _tee_jobs, ("printer", "outcome"), stats_by="outcome"),
    Figure("tee_receipts_undelivered_total", "printerd_tee_receipts_undelivered",
           "Receipts stored that the tee's real printer did not get", "counter",
           _tee(lambda t: t.counters.receipts_undelivered_total), ("printer",)),
    Figure("tee_bytes_total", "printerd_tee_bytes", "Job bytes written to the tee's real printer",
           "counter", _tee(lambda t: t.counters.bytes_relayed_total), ("printer",)),
    Figure("tee_connect_failures_total", "printerd_tee_connect_failures",
           "Connections to the tee's real printer that failed", "counter",
           _tee(lambda t: t.counters.connect_failures_total), ("printer",)),
    Figure("tee_connections_lost_total", "printerd_tee_connections_lost",
           "Tee relay connections lost mid-job", "counter",
           _tee(lambda t: t.counters.connections_lost_total), ("printer",)),
    Figure("tee_pauses_total", "printerd_tee_pauses",
           "Times the tee's real printer paused a POS connection (backpressure)", "counter",
           _tee(lambda t: t.counters.pauses_total), ("printer",)),
    Figure("uptime_s", "printerd_uptime_seconds", "Seconds since printerd started", "gauge",
           lambda s: round(s.clock.seconds() - s.started_at, 3)),
    Figure("threads", "printerd_threads", "OS threads of the process", "gauge",
           lambda s: process.thread_count()),
    Figure("rss_bytes", "process_resident_memory_bytes", "Resident memory of the process", "gauge",
           lambda s: process.rss_bytes(), process_collector=True),
    Figure("db_bytes", "printerd_database_bytes",
           "Database size on disk (SQLite: file and WAL; PostgreSQL: pg_database_size)", "gauge",
           lambda s: s.store.database_bytes()),
    Figure("tailer_notifications_total", "printerd_tailer_notifications",
           "Commit notifications (NOTIFY, every instance's commits) received on the LISTEN "
           "connection (PostgreSQL; 0 on SQLite)", "counter",
           _tailer(lambda t: t.notifications_total)),
    Figure("tailer_catch_up_reads_total", "printerd_tailer_catch_up_reads",
           "Reads of the receipts committed after the last one announced: on a notification, "
           "after each commit of this instance, every second and on listening again "
           "(PostgreSQL; 0 on SQLite)", "counter", lambda s: s.store.catch_up_reads_total),
    Figure("tailer_receipts_from_others_total", "printerd_tailer_receipts_from_others",
           "Receipts other instances committed, announced here (PostgreSQL; 0 on SQLite)",
           "counter", lambda s: s.store.announced_from_others_total),
    Figure("tailer_reconnects_total", "printerd_tailer_reconnects",
           "Times the tailer listened again after its LISTEN connection was lost or could not "
           "be opened (PostgreSQL; 0 on SQLite)", "counter",
           _tailer(lambda t: t.reconnects_total)),
    Figure("sse_subscribers", "printerd_sse_subscribers", "Open /api/stream subscribers", "gauge",
           lambda s: len(s.hub.subscribers)),
    Figure("sse_events_total", "printerd_sse_events", "Stream events published", "counter",
           lambda s: s.hub.events_total),
    Figure("sse_dropped_slow_total", "printerd_sse_dropped_slow",
           "Stream subscribers dropped for lagging", "counter", lambda s: s.hub.dropped_slow_total),
    Figure("sse_replays_from_memory_total", "printerd_sse_replays_from_memory",
           "Stream resumes replayed from the memory cache of the newest receipts", "counter",
           lambda s: s.hub.replays_from_memory_total),
    Figure("sse_replay_queries_total", "printerd_sse_replay_queries",
           "Database queries for stream replays (resumes from the same point share one)",
           "counter", lambda s: s.hub.replay_queries_total),
    Figure("http_rate_limited_total", "printerd_http_rate_limited",
           "API requests answered 429 (rate limit)", "counter",
           lambda s: s.limiter.limited_total),
    Figure("http_requests_total", "printerd_http_requests",
           "HTTP requests answered, by route, method and status (disconnected: the client left "
           "first)", "counter", _http_requests, ("route", "method", "code"), stats_by="code"),
    Figure("http_connections", "printerd_http_connections", "Open HTTP connections", "gauge",
           lambda s: s.http.open),
    Figure("http_connections_evicted_total", "printerd_http_connections_evicted",
           "HTTP connections closed at the cap to make room for a new one", "counter",
           lambda s: s.http.evicted_total),
    Figure("http_connections_refused_total", "printerd_http_connections_refused",
           "HTTP connections answered 503 at the cap (every connection busy)", "counter",
           lambda s: s.http.refused_total),
    Figure("http_requests_timed_out_total", "printerd_http_requests_timed_out",
           "HTTP requests not received within http_request_timeout (408)", "counter",
           lambda s: s.http.timed_out_total),
    Figure("http_requests_malformed_total", "printerd_http_requests_malformed",
           "HTTP requests answered 400 before any route (malformed, head over 16 KiB)",
           "counter", lambda s: s.http.malformed_total),
    Figure("renders_total", "printerd_renders", "Receipt renderings made (cache misses)",
           "counter", lambda s: s.renderings.renders_total),
    Figure("forwarder_pending", "printerd_webhook_pending", "Webhook deliveries waiting", "gauge",
           _per_target(lambda s, name: s.outbox.get(name, {}).get(outbox.PENDING, 0)),
           ("target",)),
    Figure("forwarder_dead", "printerd_webhook_dead", "Webhook deliveries dead-lettered", "gauge",
           _per_target(lambda s, name: s.outbox.get(name, {}).get(outbox.DEAD, 0)), ("target",)),
    Figure("webhook_attempts_total", "printerd_webhook_attempts",
           "Webhook delivery attempts by outcome", "counter", _attempts, ("target", "outcome"),
           stats_by="outcome"),
    Figure("webhook_in_flight", "printerd_webhook_in_flight", "Webhook POSTs in flight", "gauge",
           _per_target(lambda s, name: s.forwarder.targets[name].in_flight), ("target",)),
    Figure("webhook_due", "printerd_webhook_due", "Deliveries due at the forwarder's last poll "
           "(at most 200; /api/forwarder has the full counts)", "gauge",
           lambda s: s.forwarder.due),
    Figure("retention_deleted_total", "printerd_retention_deleted",
           "Receipts deleted by retention", "counter", lambda s: s.retention.deleted_total),
    Figure("retention_runs_total", "printerd_retention_runs", "Retention runs started",
           "counter", lambda s: s.retention.runs_total),
    Figure("retention_failures_total", "printerd_retention_failures", "Retention runs that failed",
           "counter", lambda s: s.retention.runs_failed),
    Figure("reactor_lag_s", "printerd_reactor_lag_seconds",
           "How late the last one-second reactor timer fired", "gauge",
           lambda s: s.lag.last_lag),
    Figure("reactor_lag_max_s", "printerd_reactor_lag_max_seconds", "Largest reactor lag seen",
           "gauge", lambda s: s.lag.max_lag),
)


Reading = dict[str, Any]  # stats key -> what the figure's read gave


class Figures:
    """Reads every figure of the table at once; renders a reading as stats or as metrics."""

    log = Logger()

    def __init__(self, sources: Sources, registry: CollectorRegistry,
                 table: Sequence[Figure] = FIGURES) -> None:
        self.sources = sources
        self.registry = registry  # the process collector and the commit latency histogram
        self.table = tuple(table)

    async def read(self) -> Reading:
        # While the database does not answer, the figures are still read: the size as last
        # measured, the outbox's counts as none (health says what is wrong).
        counts: Mapping[str, Mapping[str, int]] = {}
        try:
            await self.sources.store.measure_database()  # PostgreSQL: asked on a reader thread
            counts = await self.sources.store.delivery_counts()
        except Exception as e:
            self.log.warn("figures read without the database: {error}", error=e)
        sources = replace(self.sources, outbox=counts)
        return {figure.stats_key: figure.read(sources) for figure in self.table}

    def stats(self, reading: Reading) -> dict[str, Any]:
        """The reading as ``/api/stats`` shows it: labelled figures summed or keyed."""
        stats: dict[str, Any] = {}
        for figure in self.table:
            value = reading[figure.stats_key]
            if figure.kind == "info":
                stats[figure.stats_key] = dict(zip(figure.labels, value[0][0], strict=True))
            elif not figure.labels:
                stats[figure.stats_key] = value
            elif figure.stats_by is None:
                stats[figure.stats_key] = sum(v for _, v in value)
            else:
                position = figure.labels.index(figure.stats_by)
                by: dict[str, Number] = {}
                for labels, v in value:
                    by[labels[position]] = by.get(labels[position], 0) + v
                stats[figure.stats_key] = by
        return stats

    def families(self, reading: Reading) -> Iterator[Metric]:
        for figure in self.table:
            if figure.process_collector:
                continue
            kind = CounterMetricFamily if figure.kind == "counter" else GaugeMetricFamily
            value = reading[figure.stats_key]
            if not figure.labels:
                yield kind(figure.metric, figure.help, value=value)
                continue
            family = kind(figure.metric, figure.help, labels=list(figure.labels))
            for labels, v in value:
                family.add_metric(list(labels), v)
            yield family

    def prometheus(self, reading: Reading) -> bytes:
        """The reading in the Prometheus text format, then the registry's own metrics."""
        return generate_latest(_Collected(self.families(reading))) + generate_latest(self.registry)


class _Collected:
    """Families already read, in the shape ``generate_latest`` reads a registry."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


def make_registry(store: ReceiptStore, requests: Optional[RequestMetrics] = None,
                  tailer: Optional[Tailer] = None) -> CollectorRegistry:
    """
    The metrics prometheus_client keeps itself: the process's (memory, CPU, descriptors), the
    commit latency histogram, the HTTP latency histogram by route and, with a tailer, its
    commit-to-announce latency histogram (a registry of printerd's own: tests build several).
    """
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    commit_seconds = Histogram(
        "printerd_db_commit_seconds", "From a receipt's arrival at the store to its commit",
        registry=registry, buckets=LATENCY_BUCKETS)
    store.on_commit_latency(commit_seconds.observe)
    if requests is not None:
        request_seconds = Histogram(
            "printerd_http_request_seconds", "From a request's arrival to its last byte "
            "(streams not included), by route", labelnames=["route"], registry=registry,
            buckets=LATENCY_BUCKETS)
        requests.on_latency(lambda route, seconds: request_seconds.labels(route).observe(seconds))
    if tailer is not None:
        announce_seconds = Histogram(
            "printerd_tailer_announce_seconds", "From a commit's NOTIFY (any instance's; the "
            "database server's clock) to its receipts announced here", registry=registry,
            buckets=LATENCY_BUCKETS)
        tailer.on_announce_latency(announce_seconds.observe)
    return registry

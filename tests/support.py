"""
Helpers shared by the tests, in one place: sample jobs, receipts, stores, the HTTP API built
as makeService builds it, requests to it, and ways to wait.

A store runs its database calls on real threads (``make_store``: the store's own tests and the
end-to-end ones) or inline on the calling thread (``make_inline_store``: everything above the
store, driven by a ``task.Clock``; nothing to wait for).  Either is on SQLite or PostgreSQL,
as the ``database`` setting names: the ``database`` fixture (conftest) gives each test both in
turn, a PostgreSQL one being a fresh database of its own on the server that
``PRINTERD_TEST_POSTGRES`` names (``postgres_database``).
"""

from __future__ import annotations

import itertools
import json
import os
import socket
import sqlite3
from contextlib import asynccontextmanager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Iterator, Optional, Sequence, TypeVar
from urllib.parse import urlsplit, urlunsplit

import pytest
import treq

from escpos.printer import Dummy
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Site

from openapi_check import check_response
from printerd.config import Settings
from printerd.forwarder.service import Forwarder
from printerd.http.api import HttpApi
from printerd.http.auth import Authenticator
from printerd.http.hosts import AllowedHosts
from printerd.http.measure import RequestMetrics
from printerd.http.openapi import OpenApiRoutes
from printerd.http.ratelimit import RateLimiter
from printerd.http.site import HttpConnections
from printerd.http.routes.commands import CommandRoutes
from printerd.http.routes.forwarder import ForwarderRoutes
from printerd.http.routes.health import HealthRoutes
from printerd.http.routes.ingest import IngestRoutes
from printerd.http.routes.metrics import MetricsRoutes
from printerd.http.routes.page import PageRoutes
from printerd.http.routes.printers import PrinterRoutes
from printerd.http.routes.receipts import ReceiptRoutes
from printerd.http.routes.sample import SampleReceiptRoutes
from printerd.http.routes.session import SessionRoutes
from printerd.http.routes.stream import StreamRoutes
from printerd.http.stream import StreamHub
from printerd.metrics import Figures, ReactorLag, Sources, make_registry
from printerd.rawport.factory import RawPrintFactory, RawPrinter, admission_limits, job_settings
from printerd.render.document import ReceiptPrinter
from printerd.render.service import Renderings
from printerd.retention import Retention
from printerd.store.engine import open_engine
from printerd.store.receipts import NewReceipt, format_time
from printerd.store.service import ReceiptStore
from printerd.store.sqlite import connect as connect_sqlite
from printerd.store.sqlite import split_statements
from printerd.store.sqlite_schema import MIGRATIONS
from printerd.store.tailer import Tailer
from printerd.store.threads import DatabaseThreads, InlineRunner

T = TypeVar("T")

# Real jobs from public ESC/POS generators, kept in the repository (origin and licence beside them).
SAMPLES = Path(__file__).resolve().parent / "fixtures" / "escpos-samples"


def sample_files() -> list[Path]:
    files = sorted(SAMPLES.glob("*.bin"))
    assert files, f"no ESC/POS samples in {SAMPLES}"
    return files


def python_escpos_job() -> bytes:
    """What python-escpos sends for a short receipt with a native QR code and a cut."""
    printer = Dummy()
    printer.set(align="center", bold=True)
    printer.text("Table 7\n")
    printer.set(align="left", bold=False)
    printer.text("Espresso    2.20\n")
    printer.qr("https://example.com/r/7", native=True)
    printer.cut()
    return printer.output


def draft(text: str = "Table 4\nTotal 9.50", printer: str = "default",
          at: float = 1_700_000_000.0, job: int = 1, raw: Optional[bytes] = None,
          peer: str = "10.0.0.3:7000") -> NewReceipt:
    """A parsed receipt as the raw port hands it to the store."""
    return NewReceipt(printer=printer, peer=peer, received_at=format_time(at), job=job,
                      raw=raw if raw is not None else text.encode() + b"\n\x1dV\x00",
                      text=text, cut="full", truncated=False)


def free_port() -> int:
    """A loopback port free a moment ago, for a daemon that must come back on the same one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def send_job(port: int, data: bytes) -> None:
    """Print ``data`` to a raw port the way a POS does: connect, send, close."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)


def make_store(database: str, clock: Any = None, readers: int = 2, synchronous: str = "FULL",
               **kwargs: Any) -> ReceiptStore:
    """
    A store on a real database (a SQLite path or a PostgreSQL URL) and real threads (call
    startService to start them).
    """
    clock = reactor if clock is None else clock
    engine = open_engine(database, synchronous)
    summary = engine.prepare(kwargs.get("recent_size", 500))
    threads = DatabaseThreads(clock, engine, readers=readers)
    return ReceiptStore(clock, engine, summary, threads, **kwargs)


def make_inline_store(database: str, clock: Clock, **kwargs: Any) -> ReceiptStore:
    """
    A store on a real database (a SQLite path or a PostgreSQL URL) whose calls run at once
    on the calling thread: its Deferreds have fired when they are returned, and a commit
    happens on ``clock.advance`` (``commit_delay`` is 0 unless given).  On PostgreSQL no
    tailer runs: the store's own commits are announced as it reads on after each.
    """
    kwargs.setdefault("commit_delay", 0.0)
    engine = open_engine(database, "NORMAL")
    summary = engine.prepare(kwargs.get("recent_size", 500))
    return ReceiptStore(clock, engine, summary, InlineRunner(engine), **kwargs)


def sqlite_database_at_version(path: str, version: int) -> sqlite3.Connection:
    """
    A SQLite database as a printerd of schema ``version`` left it: the first ``version``
    migrations applied, ``user_version`` set to match.  The open connection (autocommit) is
    for adding the old rows; the caller closes it before the store upgrades the file.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    conn = connect_sqlite(path)
    conn.execute("PRAGMA journal_mode = WAL")
    for number, script in enumerate(MIGRATIONS[:version], start=1):
        for statement in split_statements(script):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
    return conn


def fill_disk(store: ReceiptStore) -> None:
    """
    Make the store's next commit of a large receipt (300 kB) fail as on a full disk: SQLite
    may not grow its file; PostgreSQL raises disk_full (SQLSTATE 53100) on insert.
    """
    if store.shared:
        store.write(lambda c: c.execute(
            "CREATE FUNCTION printerd_test_full() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " RAISE EXCEPTION 'could not extend file: No space left on device'"
            " USING ERRCODE = 'disk_full'; END $$;"
            " CREATE TRIGGER printerd_test_full BEFORE INSERT ON receipts"
            " FOR EACH STATEMENT EXECUTE FUNCTION printerd_test_full()"))
    else:
        pages = result_of(store.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0]))
        store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))


def free_disk(store: ReceiptStore) -> Deferred[Any]:
    """Undo ``fill_disk``."""
    if store.shared:
        return store.write(lambda c: c.execute(
            "DROP TRIGGER printerd_test_full ON receipts; DROP FUNCTION printerd_test_full()"))
    return store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))


def refuse_writes(store: ReceiptStore, refuse: bool = True) -> None:
    """Make the store's writer connection read-only (``refuse=False``: writable again)."""
    if store.shared:
        setting = "on" if refuse else "off"
        result_of(store.write(lambda c: c.execute(
            f"SET default_transaction_read_only = {setting}")))
    else:
        setting = "ON" if refuse else "OFF"
        result_of(store.write(lambda c: c.execute(f"PRAGMA query_only = {setting}")))


# -- PostgreSQL ------------------------------------------------------------------------------

POSTGRES_URL = os.environ.get("PRINTERD_TEST_POSTGRES", "")
REQUIRE_POSTGRES = os.environ.get("PRINTERD_REQUIRE_POSTGRES") == "1"
_database_numbers = itertools.count(1)
_template: list[str] = []  # the session's migrated template database, once made


def postgres_url_or_skip() -> str:
    """The test server's URL; skips the test without one (fails it where CI requires one)."""
    if not POSTGRES_URL:
        reason = ("PostgreSQL tests need PRINTERD_TEST_POSTGRES, e.g. "
                  "PRINTERD_TEST_POSTGRES=$(.ci/postgres-cluster)")
        if REQUIRE_POSTGRES:
            pytest.fail(f"PRINTERD_REQUIRE_POSTGRES=1: {reason}")
        pytest.skip(reason)
    return POSTGRES_URL


def with_database(url: str, name: str) -> str:
    """``url`` naming the database ``name`` instead."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def _admin() -> Any:
    import psycopg

    return psycopg.connect(postgres_url_or_skip(), autocommit=True)


def _template_database() -> str:
    """A database migrated once per session, copied for each test (faster than migrating)."""
    if not _template:
        from printerd.store.postgres import migrate

        import psycopg

        name = f"printerd_template_{os.getpid()}"
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
            admin.execute(f'CREATE DATABASE "{name}"')
        with psycopg.connect(with_database(POSTGRES_URL, name), autocommit=True) as conn:
            migrate(conn)
        _template.append(name)
    return _template[0]


def drop_template() -> None:
    """Drop the session's template database (conftest, at the end of the session)."""
    if _template:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{_template.pop()}" WITH (FORCE)')


@contextmanager
def postgres_database(migrated: bool = True) -> Iterator[str]:
    """
    A fresh database of its own on the test server, dropped afterwards: its URL.
    ``migrated``: with printerd's schema already in place (else empty).
    """
    postgres_url_or_skip()
    template = f' TEMPLATE "{_template_database()}"' if migrated else ""
    name = f"printerd_test_{os.getpid()}_{next(_database_numbers)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"{template}')
    try:
        yield with_database(POSTGRES_URL, name)
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class LaggingRunner:
    """
    A ``ThreadRunner`` for tests whose calls run at once (as ``InlineRunner``) but whose answers
    arrive ``read_lag`` / ``write_lag`` seconds of ``clock`` later, as from busy threads: a
    read's rows are as of when it ran, and may be stale by the time they arrive.
    """

    thread_count = 0

    def __init__(self, inner: InlineRunner, clock: Clock, read_lag: float,
                 write_lag: float) -> None:
        self._inner = inner
        self._clock = clock
        self._read_lag = read_lag
        self._write_lag = write_lag

    def start(self) -> None:
        self._inner.start()

    def stop(self) -> None:
        self._inner.stop()

    def run_write(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        return self._later(self._inner.run_write(fn, *args), self._write_lag)

    def run_read(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        return self._later(self._inner.run_read(fn, *args), self._read_lag)

    def _later(self, done: Deferred[T], lag: float) -> Deferred[T]:
        answer: Deferred[T] = Deferred()
        results: list[Any] = []
        done.addBoth(results.append)
        self._clock.callLater(lag, lambda: answer.callback(results[0]) if not isinstance(
            results[0], Failure) else answer.errback(results[0]))
        return answer


def make_lagging_store(database: str, clock: Clock, read_lag: float, write_lag: float,
                       **kwargs: Any) -> ReceiptStore:
    """An inline store (on either engine) whose answers come late (``LaggingRunner``)."""
    kwargs.setdefault("commit_delay", 0.0)
    engine = open_engine(database, "NORMAL")
    summary = engine.prepare(kwargs.get("recent_size", 500))
    runner = LaggingRunner(InlineRunner(engine), clock, read_lag, write_lag)
    return ReceiptStore(clock, engine, summary, runner, **kwargs)


def run_clock_until(clock: Clock, condition: Callable[[], Any], *stubs: Any,
                    limit: float = 3600.0) -> Any:
    """
    Run a simulation on ``clock``: flush the StubTreq clients, then jump to the next timed
    call, until ``condition()`` is true (returns its value) or ``limit`` seconds have passed.
    """
    deadline = clock.seconds() + limit
    while True:
        pump(clock, *stubs, rounds=2)
        value = condition()
        if value:
            return value
        calls = clock.getDelayedCalls()
        if not calls:
            raise AssertionError("nothing left to run and the condition is not met")
        next_time = min(call.getTime() for call in calls)
        if next_time > deadline:
            raise AssertionError(f"condition not met within {limit} s of the clock")
        clock.advance(max(0.0, next_time - clock.seconds()))


def result_of(d: Deferred[T]) -> T:
    """The result of a Deferred that has fired already (raises its failure)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, f"{d!r} has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def add_receipts(store: ReceiptStore, clock: Clock, *drafts: NewReceipt) -> list:
    """Add receipts to an inline store and commit them; returns them as stored."""
    pending = [store.add_receipt(d) for d in drafts]
    clock.advance(store.commit_delay)
    return [result_of(d) for d in pending]


def pump(clock: Clock, *stubs: Any, rounds: int = 20) -> None:
    """Run what is due now on the clock and in StubTreq clients until nothing is left."""
    for _ in range(rounds):
        clock.advance(0)
        for stub in stubs:
            stub.flush()


def request(stub: Any, url: str, method: str = "GET", clock: Optional[Clock] = None,
            **kwargs: Any) -> tuple[Any, bytes]:
    """
    A request through StubTreq to an API over an inline store: (response, body).  ``clock``:
    also run what is due on it meanwhile (a stream's fan-out, a commit).
    """
    d = stub.request(method, "http://printerd" + url, **kwargs)
    if clock is not None:
        pump(clock, stub)
    stub.flush()
    response = result_of(d)
    body = response.content()
    stub.flush()
    return response, result_of(body)


def request_json(stub: Any, url: str, method: str = "GET", clock: Optional[Clock] = None,
                 **kwargs: Any) -> tuple[int, Any]:
    """A request whose answer must be JSON: (status, decoded body)."""
    response, body = request(stub, url, method, clock, **kwargs)
    assert response.headers.getRawHeaders("content-type") == ["application/json"], body
    decoded = json.loads(body)
    check_response(method, url, response.code, decoded)  # as the OpenAPI document says
    return response.code, decoded


def put_json(stub: Any, url: str, body: Any) -> tuple[int, Any]:
    return request_json(stub, url, "PUT", data=json.dumps(body).encode())


def fill(store: ReceiptStore, clock: Clock, count: int) -> list:
    """``count`` committed receipts, kitchen and bar in turn, a minute apart."""
    return add_receipts(store, clock, *(
        draft(f"receipt {i}", printer="bar" if i % 2 else "kitchen", peer="10.0.0.9:1234",
              at=1_700_000_000 + 60 * i, job=i, raw=b"r%d\n" % i) for i in range(count)))


class Api:
    """
    Every route module over one store, built as makeService builds them, with the parts a test
    may want to reach; ``stub`` sends requests to it (StubTreq).
    """

    def __init__(self, store: ReceiptStore, clock: Clock, *,
                 printers: Optional[Sequence[RawPrinter]] = None,
                 hub: Optional[StreamHub] = None, forwarder: Optional[Forwarder] = None,
                 tokens: tuple[str, ...] = (), limiter: Optional[RateLimiter] = None,
                 cors_origins: Sequence[str] = (),
                 ingest_secrets: tuple[str, ...] = (), tailer: Optional[Tailer] = None) -> None:
        self.clock = clock
        self.store = store
        self.printers = list(printers) if printers is not None else [
            RawPrinter(RawPrintFactory(MemoryReactorClock(), store))]
        self.hub = hub or StreamHub(clock, store.receipts_after, newest=store.newest)
        self.forwarder = forwarder or Forwarder(clock, store, (), http=None)
        self.authenticator = Authenticator(clock, tokens)
        self.limiter = limiter or RateLimiter(clock, rate=0, burst=1)
        factories = tuple(p.factory for p in self.printers)
        self.retention = Retention(clock, store)
        renderings = Renderings(store, {
            f.printer: ReceiptPrinter(f.job_settings.emulation.name,
                                      f.job_settings.two_byte_encoding, f.job_settings.profile)
            for f in factories})
        self.requests = RequestMetrics(clock)
        self.figures = Figures(Sources(clock, store, factories, self.hub, self.forwarder,
                                       self.retention, renderings, self.limiter,
                                       ReactorLag(clock), HttpConnections(), clock.seconds(),
                                       self.requests, tailer=tailer),
                               make_registry(store, self.requests, tailer))
        self.api = HttpApi([
            HealthRoutes(store, self.printers, self.forwarder, self.authenticator, clock),
            SessionRoutes(self.authenticator),
            ReceiptRoutes(store, renderings),
            CommandRoutes(store, self.printers),
            StreamRoutes(self.hub, store.database_id),
            PrinterRoutes(self.printers, lan=lambda: ["192.0.2.7"]),
            SampleReceiptRoutes(clock, self.printers, lan=lambda: ["192.0.2.7"]),
            ForwarderRoutes(clock, store, self.forwarder),
            MetricsRoutes(self.figures),
            IngestRoutes(clock, store, ingest_secrets),
            PageRoutes(),
            OpenApiRoutes(),
        ], self.authenticator, self.limiter, AllowedHosts(["printerd"]), self.requests,
            cors_origins=cors_origins)
        self.stub = StubTreq(self.api.resource())  # its requests say Host: printerd


async def wait_until(condition: Callable[[], Any], timeout: float = 5.0,
                     interval: float = 0.01) -> Any:
    """
    Wait on the real reactor until ``condition()`` is true; returns its value.  Only for tests
    that run real threads (the store's own and the end-to-end ones).
    """
    for _ in range(int(timeout / interval)):
        value = condition()
        if value:
            return value
        await deferLater(reactor, interval, lambda: None)
    raise AssertionError(f"condition not met within {timeout} s")


# -- The raw port, in memory -----------------------------------------------------------------

JOB_FIELDS = {"idle_timeout", "max_job_bytes", "two_byte_encoding", "identity", "two_byte_at_start"}
LIMIT_FIELDS = {"max_connections", "max_per_peer", "wait_timeout", "max_open"}


def make_factory(store: ReceiptStore, printer: str = "default", allow: Any = None,
                 **changes: Any) -> tuple[RawPrintFactory, MemoryReactorClock]:
    """
    A raw port's factory over ``store`` with the default settings, except ``changes`` (job
    settings or admission limits), on a clock of its own.
    """
    clock = MemoryReactorClock()
    defaults = Settings()
    job = replace(job_settings(defaults), **{k: v for k, v in changes.items() if k in JOB_FIELDS})
    limits = replace(admission_limits(defaults),
                     **{k: v for k, v in changes.items() if k in LIMIT_FIELDS})
    assert set(changes) <= JOB_FIELDS | LIMIT_FIELDS
    return RawPrintFactory(clock, store, printer, job=job, limits=limits, allow=allow), clock


def connect(factory: RawPrintFactory, port: int = 40000) -> tuple[Any, StringTransport]:
    """A POS at 10.0.0.7:``port`` connected to the raw port: (protocol, its transport)."""
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.0.0.7", port))
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def hang_up(protocol: Any) -> None:
    """The POS closes its connection (the job ends)."""
    protocol.connectionLost(None)


# -- Live streams ----------------------------------------------------------------------------

class StreamHarness:
    """An API with a hub over an inline store, reached through StubTreq, driven by the clock."""

    def __init__(self, store: ReceiptStore, clock: Clock, read_after: Any = None,
                 **hub_options: Any) -> None:
        self.store = store
        self.clock = clock
        self.hub = StreamHub(clock, read_after or store.receipts_after, **hub_options)
        store.on_commit(self.hub.publish)
        self.hub.startService()
        self.stub = Api(store, clock, hub=self.hub).stub

    def open(self, path: str = "/api/stream", headers: Any = None) -> tuple[Any, list[bytes]]:
        """Open a stream; returns (response, received chunks)."""
        d = self.stub.get("http://printerd" + path, headers=headers)
        self.stub.flush()
        response = result_of(d)
        chunks: list[bytes] = []
        if response.code == 200:
            treq.collect(response, chunks.append)
        self.pump()
        return response, chunks

    def commit(self, *drafts: NewReceipt) -> list:
        """Commit receipts; the hub fans them out and the clients read them."""
        stored = add_receipts(self.store, self.clock, *drafts)
        self.pump()
        return stored

    def pump(self) -> None:
        pump(self.clock, self.stub)


# -- Webhooks --------------------------------------------------------------------------------

class WebhookReceiver(Resource):
    """A webhook receiver: answers each POST with the next code, records what it got."""

    isLeaf = True

    def __init__(self, codes: list[int], headers: Optional[dict] = None,
                 hang: bool = False) -> None:
        super().__init__()
        self.codes = codes
        self.headers = headers or {}
        self.hang = hang
        self.requests: list[tuple[dict, bytes]] = []

    def render_POST(self, request: Any) -> Any:
        self.requests.append(({k.decode().lower(): v[0].decode() for k, v in
                               request.requestHeaders.getAllRawHeaders()},
                              request.content.read()))
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.codes.pop(0) if len(self.codes) > 1 else self.codes[0])
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return b"ok"


@asynccontextmanager
async def local_site(resource: Resource, path: str = "/") -> AsyncIterator[str]:
    """``resource`` served on 127.0.0.1 on an ephemeral port; yields the URL of ``path``."""
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(resource))
    try:
        yield f"http://127.0.0.1:{port.getHost().port}{path}"
    finally:
        await port.stopListening()


class CountingRunner(InlineRunner):
    """An inline runner that counts the reads it is given."""

    reads = 0

    def run_read(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        self.reads += 1
        return super().run_read(fn, *args)


def capturing_logger() -> tuple[Logger, list[str]]:
    """A Logger whose events are kept as their formatted text, in order."""
    lines: list[str] = []
    return Logger(observer=lambda event: lines.append(formatEvent(event))), lines

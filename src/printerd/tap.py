"""
The one place that wires printerd together: ``Options`` and ``makeService``.

Used by the twistd plugin (``twistd printerd ...``) and by ``printerd.tac``.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import socket
import sys
from dataclasses import replace
from typing import Any, Callable, NoReturn, Optional, Sequence, cast

from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import clientFromString, serverFromString
from twisted.internet.interfaces import IAddress
from twisted.logger import ILogObserver, Logger
from twisted.python.components import Componentized
from twisted.python import usage

from printerd import __version__
from printerd.banner import Banner
from printerd.cloudprnt import CloudPrntConfig, CloudPrntPrinter, cloudprnt_figures
from printerd.mdns import (
    Advertisement, AvahiPublisher, epos_advertisement, printer_advertisement,
)
from printerd.config import (
    DEFAULT_CONFIG, ConfigError, Settings, describe, env_name, format_value, help_default,
    load_settings_with_sources, option_name, setting_fields, unknown_variables,
)
from printerd.collector import CollectorTuning
from printerd.descriptors import DescriptorBudget, raise_open_file_limit
from printerd.epos.http import EposEndpoint, HttpRoot, request_factory
from printerd.epos.metrics import epos_figures
from printerd.epos.sdp import ServerDirectPrint
from printerd.epos.service import EposPrinter, EposPrinting
from printerd.escpos.status import PrinterState
from printerd.forwarder.service import Forwarder
from printerd.http.api import HttpApi
from printerd.http.auth import Authenticator
from printerd.http.hosts import AllowedHosts
from printerd.http.measure import RequestMetrics
from printerd.http.openapi import OpenApiRoutes
from printerd.http.proxies import TrustedProxies, parse_address
from printerd.http.ratelimit import RateLimiter
from printerd.http.site import HttpConnections, PrinterdRequest, PrinterdSite
from printerd.http_client import treq
from printerd.http.routes.commands import CommandRoutes
from printerd.http.routes.forwarder import ForwarderRoutes
from printerd.http.routes.health import HealthRoutes
from printerd.http.routes.ingest import IngestRoutes, ingest_request_class
from printerd.http.routes.metrics import MetricsRoutes
from printerd.http.routes.page import PageRoutes
from printerd.http.routes.printers import PrinterRoutes
from printerd.http.routes.receipts import ReceiptRoutes
from printerd.http.routes.sample import SampleReceiptRoutes
from printerd.http.routes.session import SessionRoutes
from printerd.http.routes.stream import StreamRoutes
from printerd.http.stream import StreamHub
from printerd.listener import ListenerService, default_backlog, with_backlog
from printerd.logs import observer_for
from printerd.metrics import FIGURES, Figures, ReactorLag, Sources, make_registry
from printerd.ocr import OcrWorker, ocr_figure_rows
from printerd.rawport.factory import (
    RawPrintFactory, RawPrinter, admission_limits, job_settings,
)
from printerd.render.document import ReceiptPrinter
from printerd.render.service import Renderings
from printerd.retention import Retention
from printerd.store.engine import DatabaseUnavailable, SchemaTooNew, open_engine
from printerd.store.service import ReceiptStore
from printerd.store.tailer import PostgresNotifications, Tailer
from printerd.store.threads import DatabaseThreads
from printerd.systemd import SystemdNotifier
from printerd.tee import Tee


def flag_name(f: dataclasses.Field) -> str:
    """The command-line flag of a true/false setting: --name, or --no-name if it is on."""
    return ("no-" if f.default else "") + option_name(f.name)


class Options(usage.Options):
    """``twistd printerd`` options: every setting, plus ``--config`` for a TOML file."""

    synopsis = "[options]"
    longdesc = ("printerd: a network receipt printer stand-in. Settings may also come from "
                "PRINTERD_* environment variables and a TOML file (--config, PRINTERD_CONFIG, "
                f"else {DEFAULT_CONFIG} if it exists); the command line wins.")
    optParameters = [
        ["config", "c", None, "TOML file of settings (env PRINTERD_CONFIG)"],
    ] + [
        [option_name(f.name), None, None,
         f"{describe(f.name)} [default: {help_default(f.default)}] (env {env_name(f.name)})"]
        for f in setting_fields() if f.type != "bool"
    ]
    # A true/false setting is a flag on the command line that turns its default around:
    # --insecure, --no-epos (its variable and TOML key take true or false).
    optFlags = [
        ["print-config", None, "print every effective setting and where it came from, then exit"],
    ] + [
        [flag_name(f), None, f"{describe(f.name)} (env {env_name(f.name)}: true or false)"]
        for f in setting_fields() if f.type == "bool"
    ]

    settings: Settings
    tokens: tuple[str, ...]
    warnings: list[str]

    def __init__(self, default_config: Optional[str] = DEFAULT_CONFIG) -> None:
        super().__init__()
        self.default_config = default_config  # tests pass their own: never the real /etc

    def opt_version(self) -> None:
        """Print printerd's version and exit."""
        print(f"printerd {__version__}")
        raise SystemExit(0)

    def parseOptions(self, options: Optional[list[str]] = None) -> None:
        # One clear line and a non-zero exit, rather than twistd's usage dump.
        try:
            super().parseOptions(options)
        except usage.UsageError as e:
            fail(str(e), code=2)

    def postOptions(self) -> None:
        """Settings merged and checked across fields; every problem is a UsageError."""
        given = {f.name: (not f.default if self[flag_name(f)] else None) if f.type == "bool"
                 else self[option_name(f.name)] for f in setting_fields()}
        try:
            self.settings, sources = load_settings_with_sources(
                given, os.environ, self["config"], self.default_config)
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None
        self.warnings = unknown_variables(os.environ)
        if self["print-config"]:
            print(effective_config(self.settings, sources, self.warnings), end="")
            raise SystemExit(0)
        for setting, _, description in listeners(self.settings):
            check_endpoint(setting, description)
        for printer in self.settings.printer_configs():
            if printer.cloudprnt and printer.emulation != "star":
                raise usage.UsageError(
                    f"cloudprnt: printer {printer.name!r} polls a CloudPRNT server, a Star "
                    "protocol: give it emulation = \"star\"")
        if self.settings.epos_listen:
            check_endpoint("epos_listen", self.settings.epos_listen)
        if self.settings.ocr and shutil.which(self.settings.ocr_command) is None:
            raise usage.UsageError(f"ocr_command: {self.settings.ocr_command!r} not found (install "
                                   "Debian's tesseract-ocr, or set ocr = false)")
        known = {name for _, name, _ in listeners(self.settings)[1:]}
        for config in self.settings.server_direct_print:
            if config.printer not in known:
                raise usage.UsageError(f"server_direct_print: no printer named {config.printer!r}")
        if self.settings.mdns and shutil.which(self.settings.mdns_command) is None:
            raise usage.UsageError(
                f"mdns_command: {self.settings.mdns_command!r} not found (install Debian's "
                "avahi-utils and run avahi-daemon, or set mdns = false)")
        self.tokens = read_tokens(self.settings)


def effective_config(settings: Settings, sources: dict[str, str], warnings: list[str]) -> str:
    """Every setting as a TOML line with where it came from (secrets not shown)."""
    lines = [f"# {warning}" for warning in warnings]
    for f in setting_fields():
        lines.append(f"{f.name} = {format_value(f.name, getattr(settings, f.name))}"
                     f"  # {sources[f.name]}")
    return "\n".join(lines) + "\n"


def listeners(settings: Settings) -> list[tuple[str, str, str]]:
    """(setting, printer name or "", endpoint string) of every listener, HTTP first."""
    raw = [(f"printers.{p.name}" if settings.printers else "raw_listen", p.name, p.listen)
           for p in settings.printer_configs()]
    return [("http_listen", "", settings.http_listen), *raw]


log = Logger(namespace="printerd")


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"printerd: error: {message}", file=sys.stderr)
    raise SystemExit(code)


class SequentialMultiService(MultiService):
    """
    Starts its children in the order they were added, and stops them one after another in
    ``stop_order`` (their names), each once the previous one has finished (MultiService
    stops them all at once).
    """

    def __init__(self, stop_order: Sequence[str] = ()) -> None:
        super().__init__()
        self.stop_order = tuple(stop_order)

    def stopping_order(self) -> list[IService]:
        """The children in the order stopService stops them; each must be named in stop_order."""
        by_name = {child.name: child for child in self}
        if set(by_name) != set(self.stop_order) or len(by_name) != len(list(self)):
            raise ValueError(f"stop order {self.stop_order} does not name exactly the "
                             f"children {sorted(map(str, by_name))}")
        return [by_name[name] for name in self.stop_order]

    async def _stop_children(self, children: list[IService]) -> None:
        for child in children:
            await maybeDeferred(child.stopService)

    def stopService(self) -> Deferred[None]:
        children = self.stopping_order()
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children(children))


class DrainJobs(Service):
    """On stop, lets raw jobs in flight finish (up to a deadline) before the store closes."""

    def __init__(self, factory: RawPrintFactory, timeout: float) -> None:
        self.name = f"drain:{factory.printer}"
        self.factory = factory
        self.timeout = timeout

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.factory.drain(self.timeout)


class DaemonService(SequentialMultiService):
    """printerd's root service; under twistd it also chooses the log observer (log_format)."""

    def __init__(self, stop_order: Sequence[str] = (),
                 log_observer: Optional[ILogObserver] = None,
                 collector: Optional[CollectorTuning] = None) -> None:
        super().__init__(stop_order)
        self.log_observer = log_observer
        self.collector = collector

    def startService(self) -> None:
        # Once everything is built (see printerd.collector), and before the children start:
        # the banner they log says printerd is ready, and a supervisor may act on it at once.
        if self.collector is not None:
            self.collector.apply()
        super().startService()

    def stopService(self) -> Deferred[None]:
        if self.collector is not None:
            self.collector.restore()
        return super().stopService()

    def setServiceParent(self, parent: Any) -> Any:
        # twistd starts logging after makeService, to the application's ILogObserver component
        # when it has one (the hook documented for .tac files). Here is where the plugin meets
        # the application; twistd's own --logger option still wins.
        if self.log_observer is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, self.log_observer)
        return super().setServiceParent(parent)


def check_endpoint(setting: str, description: str) -> None:
    """A UsageError naming the setting unless ``description`` is an endpoint string."""
    try:
        # Parsed only to check it: makeService builds it again on the reactor it is given.
        serverFromString(cast(Any, None), description)
    except Exception as e:  # serverFromString raises many kinds for bad strings
        raise usage.UsageError(f"{setting}: {description!r} is not a valid endpoint: {e}") \
            from None


def lan_without_tokens(tokens: tuple[str, ...], insecure: bool,
                       description: str) -> Callable[[IAddress], Optional[str]]:
    """
    The HTTP listener's check of the address it bound: without tokens (and without
    ``insecure``) only loopback or a unix socket will do.  It reads the address bound, not the
    endpoint string, which Twisted may read differently (of two ``interface=``, the last wins).
    """
    def check(address: IAddress) -> Optional[str]:
        host = getattr(address, "host", None)
        if tokens or insecure or host is None:  # a unix socket has no host
            return None
        parsed = parse_address(host)
        if parsed is not None and parsed.is_loopback:
            return None
        return (f"{description!r} listens on {host}, reachable from other machines, and no "
                "api_tokens are set: add a token, listen on 127.0.0.1, or pass --insecure")

    return check


def http_connection_cap(settings: Settings, budget: DescriptorBudget) -> int:
    """http_max_connections, or by default the HTTP share of the descriptors."""
    return settings.http_max_connections or max(1, budget.http)


def read_tokens(settings: Settings) -> tuple[str, ...]:
    tokens = list(settings.api_tokens)
    if settings.api_tokens_file:
        try:
            with open(settings.api_tokens_file) as f:
                tokens += [line.strip() for line in f if line.strip()
                           and not line.lstrip().startswith("#")]
        except OSError as e:
            raise usage.UsageError(f"api_tokens_file: cannot read {settings.api_tokens_file}: "
                                   f"{e.strerror}") from None
    return tuple(tokens)


def _state_of(factory: RawPrintFactory) -> Callable[[], PrinterState]:
    """The raw printer's current state, as status replies report it (ePOS-Print too)."""
    return lambda: factory.state


def makeService(options: Options, reactor: Any = None) -> IService:
    """Build printerd's service tree from parsed options."""
    if reactor is None:
        from twisted.internet import reactor  # the global reactor: only here
    settings = options.settings
    for warning in getattr(options, "warnings", ()):
        log.warn("{warning}", warning=warning)
    budget = DescriptorBudget.for_limit(raise_open_file_limit())
    instance = settings.instance_name or socket.gethostname()
    try:
        engine = open_engine(settings.database, settings.synchronous, instance)
        summary = engine.prepare(settings.recent_size)
    except (SchemaTooNew, DatabaseUnavailable) as e:
        fail(f"database: {e}")

    # Tell systemd first, stop taking requests and jobs, let jobs in flight finish, end streams
    # and deliveries, then commit what is queued and close the database.  On a shared database
    # the tailer stops before them: nothing new is announced to streams and deliveries ending.
    raw_listeners = listeners(settings)[1:]
    pollers = [f"server-direct-print:{n + 1}" for n in range(len(settings.server_direct_print))]
    root = DaemonService(stop_order=(
        "systemd-notify", *(f"mdns:{name}" for _, name, _ in raw_listeners if settings.mdns),
        *([EPOS_ADVERTISER] if advertises_epos(settings) else []),
        "http_listen", *(["epos_listen"] if settings.epos_listen else []),
        *(setting for setting, _, _ in raw_listeners), *pollers,
        *(f"cloudprnt:{p.name}" for p in settings.printer_configs() if p.cloudprnt),
        *(f"drain:{name}" for _, name, _ in raw_listeners), *(["ocr"] if settings.ocr else []),
        *(["tailer"] if engine.shared else []),
        "reactor-lag", "stream-hub", "forwarder", "retention", "store", "banner"),
        log_observer=observer_for(settings.log_format), collector=CollectorTuning())
    targets = settings.webhooks
    threads = DatabaseThreads(reactor, engine, readers=settings.db_readers)
    store = ReceiptStore(reactor, engine, summary, threads,
                         commit_delay=settings.commit_delay, recent_size=settings.recent_size,
                         outbox=lambda printer: [t.name for t in targets if t.wants(printer)],
                         site=settings.site)
    store.setServiceParent(root)
    tailer = None
    if engine.shared:
        # Every instance's commits, announced here in id order (store/tailer.py).
        tailer = Tailer(reactor, store, PostgresNotifications(reactor, store, engine))
        tailer.setServiceParent(root)
    retention = Retention(reactor, store, days=settings.retention_days,
                          interval=settings.retention_interval)
    retention.setServiceParent(root)
    # Claims name the process: a restarted instance does not take its predecessor's for its own.
    forwarder = Forwarder(reactor, store, targets, treq, timeout=settings.webhook_timeout,
                          concurrency=settings.webhook_concurrency,
                          instance=f"{instance}/{os.getpid()}")
    store.on_commit(forwarder.wake)
    forwarder.setServiceParent(root)

    hub = StreamHub(reactor, store.receipts_after, keepalive=settings.sse_keepalive,
                    max_duration=settings.sse_max_duration, max_buffer=settings.sse_max_buffer,
                    max_subscribers=settings.sse_max_subscribers,
                    max_per_client=settings.sse_max_per_client, newest=store.newest)
    store.on_commit(hub.publish)
    hub.setServiceParent(root)

    printers = []
    listening_services: list[ListenerService] = []
    backlog = default_backlog()
    for (setting, name, description), config in zip(raw_listeners, settings.printer_configs(),
                                                     strict=True):
        tee = Tee(reactor, clientFromString(reactor, config.tee), config.tee,
                  config.tee_fallback, settings.tee_timeout) if config.tee else None
        # The raw ports share their part of the descriptors: each printer an equal share.
        limits = admission_limits(settings, max_open=budget.raw // len(raw_listeners))
        factory = RawPrintFactory(reactor, store, printer=name,
                                  job=job_settings(settings, config), limits=limits,
                                  allow=settings.raw_allow, tee=tee)
        store.on_write_health(factory.storage_changed)
        DrainJobs(factory, settings.shutdown_timeout).setServiceParent(root)
        raw = ListenerService(setting, description,
                              serverFromString(reactor, with_backlog(description, backlog)),
                              factory, on_listening=factory.set_port)
        raw.setServiceParent(root)
        listening_services.append(raw)
        cloudprnt = None
        if config.cloudprnt:
            cloudprnt = CloudPrntPrinter(reactor, factory, CloudPrntConfig(
                config.cloudprnt, config.cloudprnt_interval, config.cloudprnt_mac), treq,
                max_job_bytes=settings.max_job_bytes)
            cloudprnt.setServiceParent(root)
        printers.append(RawPrinter(factory, raw, cloudprnt))

    if settings.mdns:
        # After the listeners (their ports are known once they listen), before the HTTP one.
        command = cast(str, shutil.which(settings.mdns_command))
        for index, printer in enumerate(printers):
            publisher = AvahiPublisher(reactor, printer.factory.printer, command,
                                       advertised(printer), os.environ)
            publisher.setServiceParent(root)
            printers[index] = replace(printer, mdns=publisher)

    lag = ReactorLag(reactor)
    lag.setServiceParent(root)
    authenticator = Authenticator(reactor, options.tokens)
    limiter = RateLimiter(reactor, settings.api_rate, settings.api_burst)
    renderings = Renderings(store, {
        p.factory.printer: ReceiptPrinter(p.factory.job_settings.emulation.name,
                                          p.factory.job_settings.two_byte_encoding,
                                          p.factory.job_settings.profile)
        for p in printers})
    connections = HttpConnections()
    requests = RequestMetrics(reactor)
    # ePOS-Print (HTTP, and Server Direct Print polling) prints on the same printers.
    printing = EposPrinting(reactor, store, [
        EposPrinter(p.factory.printer, state=_state_of(p.factory),
                    two_byte_encoding=p.factory.job_settings.two_byte_encoding,
                    allow=p.factory.allow, profile=p.factory.job_settings.profile)
        for p in printers])
    epos = EposEndpoint(printing)
    servers = []
    for name, config in zip(pollers, settings.server_direct_print, strict=True):
        poller = ServerDirectPrint(reactor, printing, printing.printers[config.printer], config,
                                   treq)
        poller.setName(name)
        poller.setServiceParent(root)
        servers.append(poller)
    ocr_figures: tuple = ()
    if settings.ocr:
        ocr = OcrWorker(reactor, store, lambda receipt_id: renderings.get(receipt_id, "png", 576),
                        hub.publish_update, cast(str, shutil.which(settings.ocr_command)),
                        settings.ocr_languages, settings.ocr_queue, settings.ocr_timeout)
        store.on_commit(ocr.receipts_committed)
        ocr.setServiceParent(root)
        ocr_figures = ocr_figure_rows(ocr)
    figures = Figures(Sources(reactor, store, tuple(p.factory for p in printers), hub, forwarder,
                              retention, renderings, limiter, lag, connections,
                              reactor.seconds(), requests, instance=instance,
                              site=settings.site, tailer=tailer),
                      make_registry(store, requests, tailer),
                      FIGURES + epos_figures(epos, servers) + ocr_figures
                      + cloudprnt_figures([p.cloudprnt for p in printers if p.cloudprnt]))
    api = HttpApi([
        HealthRoutes(store, printers, forwarder, authenticator, clock=reactor),
        SessionRoutes(authenticator),
        ReceiptRoutes(store, renderings),
        CommandRoutes(store, printers),
        StreamRoutes(hub, store.database_id),
        PrinterRoutes(printers),
        SampleReceiptRoutes(reactor, printers),
        ForwarderRoutes(reactor, store, forwarder),
        MetricsRoutes(figures),
        IngestRoutes(reactor, store, settings.ingest_secrets),
        PageRoutes(),
        OpenApiRoutes(),
    ], authenticator, limiter, AllowedHosts(settings.http_allowed_hosts), requests,
        cors_origins=settings.cors_origins)
    # ePOS-Print answers on the HTTP listener beside the API, and on its own listener if asked.
    request_class = request_factory(settings.epos_max_body) if settings.epos else PrinterdRequest
    if settings.ingest_secrets:
        # Forwarded receipts come with their raw bytes: larger bodies, from token holders only.
        request_class = ingest_request_class(request_class, settings.ingest_max_bytes,
                                             authenticator)
    # The HTTP share of descriptors covers both listeners: ePOS-Print's own takes a quarter.
    http_cap = http_connection_cap(settings, budget)
    epos_cap = max(1, http_cap // 4) if settings.epos_listen else 0
    proxies = TrustedProxies(settings.trusted_proxies)

    def http_site(resource: Any, max_connections: int,
                  request_class: type[PrinterdRequest]) -> PrinterdSite:
        # Both HTTP listeners: the same timeouts and proxies, one set of connection figures.
        return PrinterdSite(resource, reactor, timeout=settings.http_timeout,
                            request_timeout=settings.http_request_timeout,
                            max_connections=max_connections, proxies=proxies,
                            connections=connections, request_class=request_class)

    http_root = HttpRoot(epos.resource(), api.resource()) if settings.epos else api.resource()
    site = http_site(http_root, max(1, http_cap - epos_cap), request_class)
    http = ListenerService("http_listen", settings.http_listen,
                           serverFromString(reactor, settings.http_listen), site,
                           check=lan_without_tokens(options.tokens, settings.insecure,
                                                    settings.http_listen))
    http.setServiceParent(root)
    listening_services.append(http)
    if settings.epos_listen:
        epos_site = http_site(HttpRoot(epos.resource()), epos_cap,
                              request_factory(settings.epos_max_body))
        epos_listener = ListenerService("epos_listen", settings.epos_listen,
                                        serverFromString(reactor, settings.epos_listen), epos_site)
        epos_listener.setServiceParent(root)
        listening_services.append(epos_listener)
    if advertises_epos(settings):
        # The endpoint as a web service, on its own listener, else on the HTTP one.
        epos_service = epos_listener if settings.epos_listen else http
        AvahiPublisher(reactor, "ePOS-Print", cast(str, shutil.which(settings.mdns_command)),
                       epos_advertised(epos_service), os.environ,
                       name=EPOS_ADVERTISER).setServiceParent(root)
    Banner(__version__, engine.describe(),
           lambda: [service.bound() for service in listening_services]).setServiceParent(root)
    # Last: READY=1 goes out once every listener above is up.
    SystemdNotifier(reactor, os.environ, status=f"printerd {__version__} serving") \
        .setServiceParent(root)
    root.stopping_order()  # every service has its place in the stop order
    return root


EPOS_ADVERTISER = "mdns-epos-print"  # never "mdns:<printer>": the colon keeps them apart


def advertises_epos(settings: Settings) -> bool:
    return settings.mdns and settings.epos


def lan_port(listener: Optional[ListenerService]) -> Optional[int]:
    """The TCP port ``listener`` listens on for other machines; None when it has none or binds
    loopback only (an advertisement of it would send POS apps nowhere)."""
    address = listener.port.getHost() if listener and listener.port is not None else None
    port, host = getattr(address, "port", None), getattr(address, "host", None)
    parsed = parse_address(host) if isinstance(host, str) else None
    if not isinstance(port, int) or parsed is None or parsed.is_loopback:
        return None
    return port


def epos_advertised(listener: ListenerService) -> Callable[[], Optional[Advertisement]]:
    """The ePOS-Print endpoint's advertisement on ``listener`` (see ``lan_port``)."""
    def advertisement() -> Optional[Advertisement]:
        port = lan_port(listener)
        tls = listener.description.lower().startswith("ssl:")
        return epos_advertisement(port, tls) if port is not None else None
    return advertisement


def advertised(printer: RawPrinter) -> Callable[[], Optional[Advertisement]]:
    """The printer's advertisement on its raw listener's port (see ``lan_port``)."""
    def advertisement() -> Optional[Advertisement]:
        port = lan_port(printer.listener)
        return None if port is None else printer_advertisement(
            printer.factory.printer, printer.factory.job_settings.identity, port)
    return advertisement

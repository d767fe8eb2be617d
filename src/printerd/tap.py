"""
The one place that wires printerd together: ``Options`` and ``makeService``.

Used by the twistd plugin (``twistd printerd ...``) and by ``printerd.tac``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import sqlite3
import sys
from typing import Any, Optional

import treq
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.server import Site

from printerd import __version__
from printerd.config import (
    ConfigError, Settings, describe, env_name, load_settings, option_name, setting_fields,
)
from printerd.descriptors import DescriptorBudget, raise_open_file_limit
from printerd.forwarder.service import Forwarder
from printerd.http.api import PrinterdAPI
from printerd.http.auth import Authenticator, LimitedRequest
from printerd.http.ratelimit import RateLimiter
from printerd.http.stream import StreamHub
from printerd.listener import ListenerService, default_backlog, with_backlog
from printerd.metrics import ReactorLag, make_registry
from printerd.rawport.factory import (
    RawPrintFactory, RawPrinter, admission_limits, job_settings,
)
from printerd.retention import Retention
from printerd.store.schema import SchemaTooNew, prepare_database
from printerd.store.service import ReceiptStore
from printerd.store.sqlite import SQLiteConnector
from printerd.store.threads import DatabaseThreads


class Options(usage.Options):
    """``twistd printerd`` options: every setting, plus ``--config`` for a TOML file."""

    synopsis = "[options]"
    longdesc = ("printerd: a network receipt printer stand-in. Settings may also come from "
                "PRINTERD_* environment variables and a TOML file; the command line wins.")
    optParameters = [
        ["config", "c", None, "TOML file of settings (env PRINTERD_CONFIG)"],
    ] + [
        [option_name(f.name), None, None,
         f"{describe(f.name)} [default: {f.default}] (env {env_name(f.name)})"]
        for f in setting_fields()
    ]

    settings: Settings

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
        given = {f.name: self[option_name(f.name)] for f in setting_fields()}
        try:
            self.settings = load_settings(given, os.environ, self["config"])
        except ConfigError as e:
            raise usage.UsageError(str(e)) from None


def fail(message: str, code: int = 1) -> None:
    print(f"printerd: error: {message}", file=sys.stderr)
    raise SystemExit(code)


class SequentialMultiService(MultiService):
    """
    Stops its children one after another, last added first, each after the previous one
    has finished (MultiService stops them all at once): the HTTP and raw listeners close,
    then jobs in flight drain, then the store commits what they produced and closes.
    """

    async def _stop_children(self) -> None:
        for child in reversed(list(self)):
            await maybeDeferred(child.stopService)

    def stopService(self) -> Deferred[None]:
        Service.stopService(self)
        return Deferred.fromCoroutine(self._stop_children())


class DrainJobs(Service):
    """On stop, lets raw jobs in flight finish (up to a deadline) before the store closes."""

    def __init__(self, factory: RawPrintFactory, timeout: float) -> None:
        self.factory = factory
        self.timeout = timeout

    def stopService(self) -> Deferred[None]:
        super().stopService()
        return self.factory.drain(self.timeout)


class StartupLog(Service):
    """Says at start which printerd runs, and where its data goes."""

    log = Logger()

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def startService(self) -> None:
        super().startService()
        self.log.info("printerd {version} starting; database {database}",
                      version=__version__, database=self.settings.database)


def _endpoint(reactor: Any, setting: str, description: str) -> Any:
    try:
        return serverFromString(reactor, description)
    except Exception as e:  # serverFromString raises many kinds for bad strings
        fail(f"{setting}: {description!r} is not a valid endpoint: {e}")


def listens_only_on_loopback(description: str) -> bool:
    """Whether an endpoint string is reachable only from this machine (unix, or loopback IP)."""
    kind = description.split(":", 1)[0].lower()
    if kind == "unix":
        return True
    match = re.search(r"(?:^|:)interface=((?:\\.|[^:])*)", description)
    if match is None:
        return False  # no interface: every interface
    host = match.group(1).replace("\\", "")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def read_tokens(settings: Settings) -> tuple[str, ...]:
    tokens = list(settings.api_tokens)
    if settings.api_tokens_file:
        try:
            with open(settings.api_tokens_file) as f:
                tokens += [line.strip() for line in f if line.strip()
                           and not line.lstrip().startswith("#")]
        except OSError as e:
            fail(f"api_tokens_file: cannot read {settings.api_tokens_file}: {e.strerror}")
    return tuple(tokens)


def makeService(options: Options, reactor: Any = None) -> IService:
    """Build printerd's service tree from parsed options."""
    if reactor is None:
        from twisted.internet import reactor  # the global reactor: only here
    settings = options.settings
    descriptors = DescriptorBudget.for_limit(raise_open_file_limit())
    tokens = read_tokens(settings)
    if not tokens and not settings.insecure and not listens_only_on_loopback(settings.http_listen):
        fail(f"http_listen: {settings.http_listen!r} is reachable from other machines and no "
             "api_tokens are set: add a token, listen on 127.0.0.1, or pass --insecure=true")
    # One printer on raw_listen, or several from the printers setting; endpoints checked first.
    raw_listeners = [(f"printers.{name}", name, description)
                     for name, description in settings.printers] \
        or [("raw_listen", settings.printer_name, settings.raw_listen)]
    backlog = default_backlog()
    raw_endpoints = [_endpoint(reactor, setting, with_backlog(description, backlog))
                     for setting, _, description in raw_listeners]
    http_endpoint = _endpoint(reactor, "http_listen", settings.http_listen)
    try:
        summary = prepare_database(settings.database, settings.synchronous, settings.recent_size)
    except SchemaTooNew as e:
        fail(f"database: {e}")
    except (OSError, sqlite3.Error) as e:
        fail(f"database: cannot open {settings.database} for writing: {e}")

    root = SequentialMultiService()
    StartupLog(settings).setServiceParent(root)
    targets = settings.webhooks
    threads = DatabaseThreads(reactor, SQLiteConnector(settings.database, settings.synchronous),
                              readers=settings.db_readers)
    store = ReceiptStore(reactor, settings.database, summary, threads,
                         commit_delay=settings.commit_delay, recent_size=settings.recent_size,
                         outbox=lambda printer: [t.name for t in targets if t.wants(printer)])
    store.setServiceParent(root)
    retention = Retention(reactor, store, days=settings.retention_days,
                          interval=settings.retention_interval)
    retention.setServiceParent(root)
    forwarder = Forwarder(reactor, store, targets, treq, timeout=settings.webhook_timeout,
                          concurrency=settings.webhook_concurrency)
    store.on_commit(forwarder.wake)
    forwarder.setServiceParent(root)

    hub = StreamHub(reactor, keepalive=settings.sse_keepalive,
                    max_duration=settings.sse_max_duration, max_buffer=settings.sse_max_buffer,
                    max_subscribers=settings.sse_max_subscribers)
    store.on_commit(hub.publish)
    hub.setServiceParent(root)

    printers = []
    for (setting, name, description), endpoint in zip(raw_listeners, raw_endpoints, strict=True):
        limits = admission_limits(settings, max_open=descriptors.raw // len(raw_listeners))
        factory = RawPrintFactory(reactor, store, printer=name, job=job_settings(settings),
                                  limits=limits, allow=settings.raw_allow)
        store.on_write_health(factory.storage_changed)
        DrainJobs(factory, settings.shutdown_timeout).setServiceParent(root)
        raw = ListenerService(setting, description, endpoint, factory,
                              on_listening=factory.set_port)
        raw.setServiceParent(root)
        printers.append(RawPrinter(factory, raw))

    lag = ReactorLag(reactor)
    lag.setServiceParent(root)
    registry = make_registry(store, [p.factory for p in printers], hub, lag, forwarder,
                             retention)
    api = PrinterdAPI(reactor, store, printers, None, hub, registry, forwarder,
                      Authenticator(reactor, tokens),
                      RateLimiter(reactor, settings.api_rate, settings.api_burst))
    site = Site(api.resource(), requestFactory=LimitedRequest, timeout=settings.http_timeout)
    site.displayTracebacks = False
    ListenerService("http_listen", settings.http_listen, http_endpoint, site).setServiceParent(root)
    return root

"""
Discovery: each raw printer advertised on the LAN with mDNS/DNS-SD (Bonjour), as a network
printer advertises its port 9100, so POS apps that browse for printers find printerd's.

A printer is ``_pdl-datastream._tcp`` on its raw port, with the TXT keys of Apple's Bonjour
Printing Specification that printers put there: ``txtvers=1``, ``qtotal=1``, ``ty`` (make and
model, for people), ``product`` (the model in parentheses), ``usb_MFG`` and ``usb_MDL`` (as the
printer's IEEE 1284 device ID says them) and ``note`` (where it is: the printer's name here).

How: the machine's own Avahi daemon publishes it, through Avahi's ``avahi-publish`` command
(Debian's avahi-utils) run as a child process per printer with ``reactor.spawnProcess``; the
advertisement lives as long as that process.  Why not more of our own: Avahi is the mDNS
responder a Linux machine already runs (CUPS uses it): one responder per host owns UDP port
5353, probes, answers, renames on a name conflict ("kitchen #2"), follows address changes and
says goodbye; a responder of our own would have to redo all of that and would compete with
Avahi for the port.  A Python mDNS library (python-zeroconf) runs threads of its own, which the
daemon's fixed thread count rules out, and Avahi's D-Bus API would need a D-Bus library for
Twisted (txdbus, last released in 2020).  A child process adds no thread: Twisted reaps it on
SIGCHLD.  The ePOS-Print endpoint is advertised the same way, as ``_http._tcp`` with its path.

A publisher whose process ends (Avahi not running, restarted...) starts it again after a
backoff (1 s doubling to 60 s); stopping the service ends the process, and Avahi withdraws the
advertisement.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.backoff import Backoff
from printerd.escpos.status import PrinterIdentity

PDL_DATASTREAM = "_pdl-datastream._tcp"
HTTP, HTTPS = "_http._tcp", "_https._tcp"
EPOS_PATH = "/cgi-bin/epos/service.cgi"
MAX_NAME_BYTES = 63  # a DNS label
MAX_OUTPUT = 4096  # of the child's output kept for the log and the API
STOP_TIMEOUT = 5.0  # seconds for the child to end on SIGTERM before SIGKILL


@dataclass(frozen=True)
class Advertisement:
    """One DNS-SD service: its instance name, type, port and TXT strings."""

    name: str
    service_type: str
    port: int
    txt: tuple[str, ...] = ()


def printer_advertisement(printer: str, identity: PrinterIdentity, port: int) -> Advertisement:
    """A raw printer as a network printer advertises its port 9100."""
    name = f"{identity.maker} {identity.model} ({printer})"
    while len(name.encode()) > MAX_NAME_BYTES:
        name = name[:-1]
    return Advertisement(name, PDL_DATASTREAM, port, (
        "txtvers=1", "qtotal=1", f"ty={identity.maker} {identity.model}",
        f"product=({identity.model})", f"usb_MFG={identity.maker}", f"usb_MDL={identity.model}",
        f"note={printer}"))


def epos_advertisement(port: int, tls: bool, name: str = "printerd ePOS-Print") -> Advertisement:
    """The ePOS-Print endpoint as a web service: ``path`` is where a POS posts its documents
    (the DNS-SD convention for ``_http._tcp``)."""
    return Advertisement(name, HTTPS if tls else HTTP, port,
                         ("txtvers=1", f"path={EPOS_PATH}", "ty=printerd ePOS-Print"))


def publish_arguments(command: str, advertisement: Advertisement) -> list[str]:
    """avahi-publish's command line for an advertisement (argv[0] first)."""
    return [command, "--service", advertisement.name, advertisement.service_type,
            str(advertisement.port), *advertisement.txt]


class _Publisher(ProcessProtocol):
    """The avahi-publish child: its output says whether the service is established."""

    def __init__(self, owner: AvahiPublisher) -> None:
        self.owner = owner
        self.output = bytearray()
        self.ended: Deferred[None] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self._keep(data)

    def errReceived(self, data: bytes) -> None:
        self._keep(data)

    def _keep(self, data: bytes) -> None:
        self.output = (self.output + data)[-MAX_OUTPUT:]
        for line in bytes(self.output).decode("utf-8", "replace").splitlines():
            if line.startswith("Established under name '"):
                self.owner.established(line.split("'", 1)[1].rsplit("'", 1)[0])

    def processEnded(self, reason: Failure) -> None:
        self.owner.ended(self, reason, bytes(self.output).decode("utf-8", "replace").strip())
        self.ended.callback(None)


class AvahiPublisher(Service):
    """Keeps one printer advertised through avahi-publish; see the module docstring."""

    log = Logger()

    def __init__(self, reactor: Any, printer: str, command: str,
                 advertisement: Callable[[], Optional[Advertisement]],
                 environ: Mapping[str, str], backoff: Optional[Backoff] = None,
                 name: Optional[str] = None) -> None:
        self.name = name or f"mdns:{printer}"
        self.reactor = reactor  # IReactorProcess and IReactorTime
        self.printer = printer
        self.command = command
        self.advertisement = advertisement
        self.environ = dict(environ)
        self.backoff = backoff if backoff is not None else Backoff(first=1.0, cap=60.0)
        self.state = "stopped"  # starting, published, failed, stopped
        self.published_as: Optional[str] = None  # the name Avahi established (after renames)
        self.last_error: Optional[str] = None
        self.restarts_total = 0
        self.current: Optional[Advertisement] = None
        self._child: Optional[_Publisher] = None
        self._transport: Any = None
        self._retry: Optional[IDelayedCall] = None

    def startService(self) -> None:
        super().startService()
        self._spawn()

    def _spawn(self) -> None:
        self._retry = None
        self.current = self.advertisement()
        if self.current is None:
            self.state = "failed"
            self.last_error = "no TCP port that other machines can reach to advertise"
            self.log.warn("mdns: {printer} not advertised: {error}",
                          printer=self.printer, error=self.last_error)
            return
        self.state = "starting"
        self._child = _Publisher(self)
        self._transport = self.reactor.spawnProcess(
            self._child, self.command, publish_arguments(self.command, self.current),
            env=self.environ)

    def established(self, name: str) -> None:
        if self.state != "published" or name != self.published_as:
            self.log.info("mdns: printer {printer} advertised as {name!r} {type} port {port}",
                          printer=self.printer, name=name, type=self.current.service_type
                          if self.current else "", port=self.current.port if self.current else 0)
        self.state = "published"
        self.published_as = name
        self.last_error = None
        self.backoff.succeeded()

    def ended(self, child: _Publisher, reason: Failure, output: str) -> None:
        if child is not self._child:
            return
        self._child = self._transport = None
        self.published_as = None
        if not self.running:
            self.state = "stopped"
            return
        self.state = "failed"
        self.last_error = output.splitlines()[-1] if output else reason.getErrorMessage()
        delay = self.backoff.failed()
        self.restarts_total += 1
        self.log.warn("mdns: avahi-publish for printer {printer} ended ({error}); again in "
                      "{delay} s", printer=self.printer, error=self.last_error, delay=delay)
        self._retry = self.reactor.callLater(delay, self._spawn)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        child, transport = self._child, self._transport
        if child is None:
            self.state = "stopped"
            return succeed(None)
        try:
            transport.signalProcess(signal.SIGTERM)  # Avahi withdraws the service
        except ProcessExitedAlready:
            pass  # it ended a moment ago: processEnded is on its way
        kill = self.reactor.callLater(STOP_TIMEOUT, self._kill, transport)

        def ended(_: None) -> None:
            if kill.active():
                kill.cancel()
        return child.ended.addCallback(ended)

    def _kill(self, transport: Any) -> None:
        try:
            transport.signalProcess(signal.SIGKILL)
        except ProcessExitedAlready:
            pass

    def to_json(self) -> dict[str, Any]:
        """The advertisement's state for /api/printers."""
        ad = self.current
        return {"type": ad.service_type if ad else None, "name": self.published_as or
                (ad.name if ad else None), "port": ad.port if ad else None,
                "txt": list(ad.txt) if ad else [], "state": self.state,
                "last_error": self.last_error}

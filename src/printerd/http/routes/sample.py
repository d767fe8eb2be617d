"""
``POST /api/printers/<name>/test-receipt``: print a test receipt through the printer's own port.

printerd connects to the printer's raw listener as a POS would and sends a sample job in the
printer's emulation, so the receipt that appears has come the whole way: socket, parser, store,
stream.  Rate limited per printer (each test receipt is a stored receipt).
"""

from __future__ import annotations

import secrets
from typing import Any, Callable, Optional, Sequence

from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.endpoints import (
    TCP4ClientEndpoint, TCP6ClientEndpoint, UNIXClientEndpoint, connectProtocol,
)
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IAddress, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from printerd.banner import lan_addresses
from printerd.http.params import ApiError
from printerd.http.ratelimit import RateLimiter
from printerd.http.responses import json_app, json_body
from printerd.http.routes.printers import printer_addresses
from printerd.rawport.factory import RawPrinter
from printerd.store.receipts import format_time

SEND_TIMEOUT = 10.0  # seconds to connect and hand the job over (it may wait in the backlog)
# Per printer: three at once, then one every five seconds.
SAMPLE_RATE, SAMPLE_BURST = 0.2, 3


def sample_job(emulation: str, printer: str, addresses: Sequence[str], sent_at: str,
               check: str) -> bytes:
    """A short receipt that says where it came from, in the printer's command set."""

    def ascii_line(text: str) -> bytes:
        return text.encode("ascii", "replace") + b"\n"

    body = b"".join(ascii_line(line) for line in (
        f"Printer: {printer}", f"Address: {', '.join(addresses) or 'this machine'}",
        f"Sent:    {sent_at[:19].replace('T', ' ')} UTC", f"Check:   {check}", "",
        "A POS printing to this address", "reaches printerd."))
    if emulation == "star":
        # ESC @ reset, ESC GS a n alignment, ESC E / ESC F bold, ESC d 2 feed and full cut.
        return (b"\x1b@\x1b\x1da\x01\x1bEprinterd\nTest receipt\n\x1bF\x1b\x1da\x00" + body
                + b"\n\x1bd\x02")
    # ESC @ reset, ESC a n alignment, ESC E n bold, GS ! n size, ESC d n feed, GS V 66 0 cut.
    return (b"\x1b@\x1ba\x01\x1bE\x01\x1d!\x11printerd\n\x1d!\x00Test receipt\n\x1bE\x00"
            b"\x1ba\x00" + body + b"\x1bd\x03\x1dVB\x00")


def client_endpoint(reactor: Any, address: IAddress) -> tuple[IStreamClientEndpoint, str]:
    """How a client on this machine reaches a listening address, and that address as text."""
    if isinstance(address, UNIXAddress):
        path = address.name.decode() if isinstance(address.name, bytes) else str(address.name)
        return UNIXClientEndpoint(reactor, path, timeout=SEND_TIMEOUT), path
    host, port = address.host, address.port  # type: ignore[attr-defined]
    if ":" in host:
        host = "::1" if host == "::" else host
        return TCP6ClientEndpoint(reactor, host, port, timeout=SEND_TIMEOUT), f"[{host}]:{port}"
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    return TCP4ClientEndpoint(reactor, host, port, timeout=SEND_TIMEOUT), f"{host}:{port}"


class _SendJob(Protocol):
    """Writes one job, closes, and fires ``done`` when the connection is gone."""

    def __init__(self, job: bytes) -> None:
        self.job = job
        self.done: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.job)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(None)


class SampleReceiptRoutes:
    """Test receipts, sent by printerd to its own printers' raw ports."""

    app = json_app()

    def __init__(self, reactor: Any, printers: Sequence[RawPrinter],
                 limiter: Optional[RateLimiter] = None,
                 lan: Callable[[], list[str]] = lan_addresses) -> None:
        self.reactor = reactor
        self.lan = lan
        self.by_name = {p.factory.printer: p for p in printers}
        self.limiter = limiter or RateLimiter(reactor, SAMPLE_RATE, SAMPLE_BURST)

    @app.route("/api/printers/<name>/test-receipt", methods=["POST"])
    async def print_sample(self, request: IRequest, name: str) -> bytes:
        """Send a test receipt; 202 once the printer's port has taken the whole job."""
        printer = self.by_name.get(name)
        if printer is None:
            raise ApiError(404, f"no printer {name!r}")
        port = printer.listener.port if printer.listener is not None else None
        if port is None:
            raise ApiError(503, f"printer {name!r} is not listening")
        allowed, wait = self.limiter.allow(name)
        if not allowed:
            raise ApiError(429, f"test receipts for {name!r}: retry in {wait} s",
                           {b"Retry-After": str(wait).encode()})
        endpoint, target = client_endpoint(self.reactor, port.getHost())
        check = secrets.token_hex(4)
        job = sample_job(printer.factory.job_settings.emulation.name, name,
                         printer_addresses(printer, self.lan()),
                         format_time(self.reactor.seconds()), check)
        sender = _SendJob(job)
        try:
            await connectProtocol(endpoint, sender)
            await sender.done.addTimeout(SEND_TIMEOUT, self.reactor)
        except ConnectError as e:
            raise ApiError(502, f"could not connect to {target}: {e}") from None
        except TimeoutError:
            raise ApiError(504, f"{target} did not take the job in {SEND_TIMEOUT:g} s") \
                from None
        return json_body(request, {"printer": name, "sent_to": target, "bytes": len(job),
                                   "check": check}, 202)

"""
The HTTP server around the API: Twisted's ``Site`` with the limits a published API needs.

- ``PrinterdRequest``: bodies over ``MAX_BODY`` are dropped (the gate answers 413); the
  client's address is the one a trusted proxy reports (rate limits and the access log follow
  it), and HTTPS at that proxy counts as HTTPS; an error nobody caught is a JSON 500, not
  Twisted's HTML page.
- ``PrinterdChannel``: a request Twisted cannot parse, or whose line or headers pass 16 KiB, is
  answered with a JSON 400; a request whose line, headers and body have not all arrived
  ``request_timeout`` seconds after its first byte is answered 408 (slowloris: the idle timeout
  alone restarts on every byte).  Either way the channel then closes gently: it stops writing
  but reads and discards what the client still sends for a moment, so the client reads the
  answer rather than a reset.
- ``PrinterdSite``: at most ``max_connections`` connections.  At the cap a new connection takes
  the place of the one that has waited longest without a request in progress (idle, or still
  trickling its request); when every connection is busy answering, the new one gets 503.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional, cast

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IAddress, IDelayedCall, IReactorTime, ITCPTransport
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, HTTPChannel, combinedLogFormatter
from twisted.web.http import Request as HTTPRequest
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from printerd.http.proxies import TrustedProxies
from printerd.logwindow import CountedLines

MAX_BODY = 64 * 1024  # the API takes no large bodies
LINGER_SECONDS = 2.0  # how long a refused client may go on sending before it is cut


def error_response(code: int, message: str, **headers: bytes) -> bytes:
    """A whole JSON error answer, for when there is no request object to answer with."""
    body = json.dumps({"error": message}).encode() + b"\n"
    extra = b"".join(b"%s: %s\r\n" % (name.replace("_", "-").encode(), value)
                     for name, value in headers.items())
    return (b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
            b"X-Content-Type-Options: nosniff\r\nContent-Length: %d\r\nConnection: close\r\n"
            b"%s\r\n" % (code, RESPONSES.get(code, b"Error"), len(body), extra)) + body


@dataclass
class HttpConnections:
    """The HTTP listener's connections, and what its limits did to them (the figures read it)."""

    open: int = 0
    evicted_total: int = 0  # closed at the cap to make room for a new connection
    refused_total: int = 0  # answered 503 at the cap: every connection was busy
    timed_out_total: int = 0  # requests not received within request_timeout (408)
    malformed_total: int = 0  # requests answered 400 before they reached a route


class PrinterdRequest(Request):
    """A request of printerd's API; see the module docstring."""

    log = Logger()
    site: PrinterdSite
    body_too_large = False
    max_body = MAX_BODY
    _body_bytes = 0

    def handleContentChunk(self, data: bytes) -> None:
        self._body_bytes += len(data)
        if self._body_bytes > self.max_body:
            self.body_too_large = True
            return
        super().handleContentChunk(data)

    def getClientAddress(self) -> IAddress:
        """The client: the peer, or the address a trusted proxy in front reports."""
        peer = super().getClientAddress()
        site = getattr(self, "site", None)
        host = getattr(peer, "host", None)
        if not isinstance(site, PrinterdSite) or host is None:
            return peer
        client = site.proxies.client(host, self.getHeader)
        if client == host:
            return peer
        kind = IPv6Address if ":" in client else IPv4Address
        return kind("TCP", client, 0)

    def isSecure(self) -> bool:
        if super().isSecure():
            return True
        site = getattr(self, "site", None)
        host = getattr(super().getClientAddress(), "host", None)
        return isinstance(site, PrinterdSite) and host is not None \
            and site.proxies.forwarded_https(host, self.getHeader)

    def processingFailed(self, reason: Failure) -> None:
        # Only reached if the gate itself fails: route errors are answered by their modules.
        self.log.failure("error answering {uri}", reason, uri=self.uri)
        body = json.dumps({"error": "internal error"}).encode() + b"\n"
        self.setResponseCode(500)
        self.setHeader(b"Content-Type", b"application/json")
        self.setHeader(b"Content-Length", b"%d" % len(body))
        self.write(body)
        self.finish()


class PrinterdChannel(HTTPChannel):
    """One HTTP connection; see the module docstring."""

    site: PrinterdSite

    def __init__(self) -> None:
        super().__init__()
        self._deadline: Optional[IDelayedCall] = None
        self._linger: Optional[IDelayedCall] = None
        self._head_bytes = 0
        self.refused = False
        self.awaiting_request = True  # no byte of the next request has arrived yet
        self.busy = False  # a request has arrived and is being answered
        self.waiting_since = 0.0

    @property
    def clock(self) -> IReactorTime:
        return self.site.clock

    @property
    def tcp(self) -> ITCPTransport:
        """The transport (TCP, unix or TLS: each can abort; TCP and unix can half-close)."""
        return cast(ITCPTransport, self.transport)

    def connectionMade(self) -> None:
        super().connectionMade()
        self.waiting_since = self.clock.seconds()
        self.site.connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        if self.refused:
            return  # answered and closing: what the client still sends is dropped
        if self.awaiting_request and data:
            self.awaiting_request = False
            self._head_bytes = 0
            self._deadline = self.clock.callLater(self.site.request_timeout, self._too_slow)
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self.refused:
            return  # lines left in the buffer that held the refused one
        # The same count as Twisted's own cap, checked first so that the answer names it.
        self._head_bytes += len(line)
        if self._head_bytes > self.totalHeadersSize:
            self.site.connections.malformed_total += 1
            self.refuse(400, f"request line and headers over {self.totalHeadersSize} bytes")
            return
        super().lineReceived(line)

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted's LineReceiver would close without a word.
        self.site.connections.malformed_total += 1
        self.refuse(400, f"request line or header over {self.MAX_LENGTH} bytes")

    def _respondToBadRequestAndDisconnect(self) -> None:
        # Twisted's one answer to every request it cannot parse (bad request line, header,
        # length or chunk, too many headers) is a bare 400; ours is JSON like every other.
        self.site.connections.malformed_total += 1
        self.refuse(400, "malformed HTTP request")

    def allContentReceived(self) -> None:
        self._cancel_deadline()
        self.busy = True
        super().allContentReceived()

    def requestDone(self, request: Any) -> None:
        self.busy = False
        self.awaiting_request = True
        self.waiting_since = self.clock.seconds()
        super().requestDone(request)  # may replay pipelined bytes into dataReceived

    def _too_slow(self) -> None:
        self._deadline = None
        self.site.connections.timed_out_total += 1
        self.refuse(408, f"request not received within {self.site.request_timeout:g} s "
                         "of its first byte")

    def refuse(self, code: int, message: str, **headers: bytes) -> None:
        """Answer with a JSON error, stop reading requests, and close gently."""
        if self.refused:
            return
        self.refused = True
        self._cancel_deadline()
        self.setTimeout(None)
        self.tcp.write(error_response(code, message, **headers))
        self.close_gently()

    def close_gently(self) -> None:
        """Stop writing, but drain what the client still sends for a moment, then close."""
        self.refused = True
        lose_write = getattr(self.transport, "loseWriteConnection", None)
        if lose_write is None:
            self.tcp.loseConnection()
            return
        lose_write()
        self._linger = self.clock.callLater(LINGER_SECONDS, self.tcp.abortConnection)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._cancel_deadline()
        if self._linger is not None and self._linger.active():
            self._linger.cancel()
        self._linger = None
        self.site.connection_lost(self)
        super().connectionLost(reason)


ACCESS_LINE_CHARS = 1000  # an access line of a 16 KB URI or User-Agent is cut here


def bounded_access_line(timestamp: str, request: IRequest) -> str:
    """Twisted's combined log line, cut at ``ACCESS_LINE_CHARS``: the URI, referrer and
    User-Agent are the client's, each up to a header's size."""
    line: str = combinedLogFormatter(timestamp, request)
    return line if len(line) <= ACCESS_LINE_CHARS else line[:ACCESS_LINE_CHARS] + "... (cut)"


class PrinterdSite(Site):
    """Twisted's Site with printerd's request, channel and connection cap."""

    protocol = PrinterdChannel  # type: ignore[assignment]
    logger = Logger()  # not "log": Site.log writes the access log

    def __init__(self, resource: IResource, clock: IReactorTime, *, timeout: float,
                 request_timeout: float, max_connections: int,
                 proxies: Optional[TrustedProxies] = None,
                 connections: Optional[HttpConnections] = None,
                 request_class: type[PrinterdRequest] = PrinterdRequest) -> None:
        super().__init__(resource, requestFactory=request_class, timeout=timeout,
                         reactor=clock, logFormatter=bounded_access_line)
        self.displayTracebacks = False
        self.clock = clock
        self.request_timeout = request_timeout
        self.max_connections = max_connections
        self.proxies = proxies or TrustedProxies()
        self.channels: set[PrinterdChannel] = set()
        self.connections = connections or HttpConnections()
        # Site.log writes a line for every request: a client in a loop would grow the log
        # without bound, and formatting the lines would take much of the reactor's time.
        self.access_log = CountedLines(clock, self.logger, "HTTP requests", "status")

    def log(self, request: HTTPRequest) -> None:
        if self.access_log.admit(request.code):
            super().log(request)

    def stopFactory(self) -> None:
        self.access_log.flush()
        super().stopFactory()

    def connection_made(self, channel: PrinterdChannel) -> None:
        if len(self.channels) >= self.max_connections:
            waiting = [c for c in self.channels if not c.busy and not c.refused]
            if not waiting:
                self.connections.refused_total += 1
                channel.refuse(503, f"all {self.max_connections} HTTP connections are answering "
                                    "requests: retry later", Retry_After=b"5")
                return
            oldest = min(waiting, key=lambda c: c.waiting_since)
            self.connections.evicted_total += 1
            if self.connections.evicted_total % 1000 == 1:  # once, then every 1,000th
                self.logger.warn("{n} HTTP connections, the cap: closing the one that waited "
                                 "longest for a new one ({total} so far)", n=len(self.channels),
                                 total=self.connections.evicted_total)
            self._forget(oldest)
            oldest.refused = True
            oldest.tcp.abortConnection()
        self.channels.add(channel)
        self.connections.open += 1  # counted, not set: sites may share their figures

    def connection_lost(self, channel: PrinterdChannel) -> None:
        self._forget(channel)

    def _forget(self, channel: PrinterdChannel) -> None:
        if channel in self.channels:
            self.channels.discard(channel)
            self.connections.open -= 1


def local_host(request: Any) -> Optional[str]:
    """The address a request's connection arrived at (None for a unix socket)."""
    return getattr(request.getHost(), "host", None)


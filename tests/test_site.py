"""
The HTTP server's own limits, byte by byte on in-memory transports and a Clock: slow requests
cut, malformed ones answered in JSON, the connection cap; which Host names are answered; the
client address behind a trusted proxy.
"""

from __future__ import annotations

import io
import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.web.resource import Resource

from printerd.http.hosts import KNOWN_HOSTS, AllowedHosts, host_name
from printerd.http.proxies import TrustedProxies
from printerd.http.site import ACCESS_LINE_CHARS, LINGER_SECONDS, PrinterdSite
from support import capturing_logger


class Echo(Resource):
    """Answers with the client address, whether the request counts as HTTPS, and the body."""

    isLeaf = True

    def render(self, request):
        return json.dumps({"client": request.getClientAddress().host,
                           "secure": request.isSecure(),
                           "body": len(request.content.read())}).encode()


class TCPTransport(StringTransport):
    """A StringTransport that half-closes as a TCP transport does."""

    write_closed = False

    def loseWriteConnection(self):
        self.write_closed = True


class Connection:
    """One HTTP connection to a site, as bytes in and bytes out."""

    def __init__(self, site: PrinterdSite, peer: str = "10.0.0.7") -> None:
        self.transport = TCPTransport(peerAddress=IPv4Address("TCP", peer, 40000),
                                      hostAddress=IPv4Address("TCP", "127.0.0.1", 8000))
        self.channel = site.buildProtocol(self.transport.getPeer())
        self.channel.makeConnection(self.transport)

    def send(self, data: bytes) -> None:
        self.channel.dataReceived(data)

    @property
    def answer(self) -> bytes:
        return self.transport.value()

    def status(self) -> int:
        return int(self.answer.split(b" ", 2)[1]) if self.answer else 0

    def error(self) -> str:
        return json.loads(self.answer.partition(b"\r\n\r\n")[2])["error"]

    @property
    def closed(self) -> bool:
        transport = self.transport
        return transport.disconnecting or transport.disconnected or transport.write_closed


@pytest.fixture
def clock():
    return Clock()


def make_site(clock, **options) -> PrinterdSite:
    options.setdefault("timeout", 30.0)
    options.setdefault("request_timeout", 10.0)
    options.setdefault("max_connections", 100)
    return PrinterdSite(Echo(), clock, **options)


GET = b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def test_a_whole_request_is_answered(clock):
    connection = Connection(make_site(clock))
    connection.send(GET)
    assert connection.status() == 200
    assert b'"client": "10.0.0.7"' in connection.answer


def test_a_request_trickled_byte_by_byte_is_cut_at_the_deadline_with_408(clock):
    """The idle timeout restarts on every byte; the request deadline does not."""
    connection = Connection(make_site(clock, timeout=30.0, request_timeout=10.0))
    for byte in GET[:-4]:  # one byte every 2 s, never silent for the idle timeout
        connection.send(bytes([byte]))
        clock.advance(2)
        if connection.answer:
            break
    assert clock.seconds() <= 12
    assert connection.status() == 408
    assert "within 10 s" in connection.error()
    assert connection.transport.write_closed  # writes ended; reads drained until the linger
    connection.send(b"more bytes after the answer are dropped\r\n\r\n")
    assert connection.status() == 408 and connection.answer.count(b"HTTP/1.1") == 1


def test_a_slow_body_is_cut_too_and_a_prompt_one_is_not(clock):
    connection = Connection(make_site(clock))
    connection.send(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\nabc")
    clock.advance(11)
    assert connection.status() == 408
    prompt = Connection(make_site(clock))
    prompt.send(b"POST /x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n\r\nabc")
    clock.advance(11)
    assert prompt.status() == 200 and b'"body": 3' in prompt.answer


def test_an_idle_keep_alive_connection_is_left_to_the_idle_timeout(clock):
    connection = Connection(make_site(clock, timeout=30.0, request_timeout=10.0))
    connection.send(GET)
    first = connection.answer
    clock.advance(20)  # idle between requests: no deadline runs
    connection.send(GET)
    assert connection.answer.count(b"HTTP/1.1 200") == 2 and connection.answer.startswith(first)


@pytest.mark.parametrize("request_bytes, message", [
    (b"GET /" + b"a" * 17_000 + b" HTTP/1.1\r\n\r\n", "over 16384 bytes"),
    (b"GET /x HTTP/1.1\r\nX-Big: " + b"a" * 17_000 + b"\r\n\r\n", "over 16384 bytes"),
    (b"GET /x HTTP/1.1\r\n" + b"X-Long: %s\r\n" % (b"a" * 100) * 170 + b"\r\n",
     "headers over 16384 bytes"),
    (b"GARBAGE\r\n\r\n", "malformed"),
    (b"GET /x HTTP/1.1\r\nContent-Length: x\r\n\r\n", "malformed"),
    (b"GET /x HTTP/1.1\r\n" + b"X: y\r\n" * 600 + b"\r\n", "malformed"),
])
def test_what_twisted_cannot_parse_is_a_json_400_then_a_gentle_close(clock, request_bytes,
                                                                      message):
    connection = Connection(make_site(clock))
    connection.send(request_bytes)
    assert connection.status() == 400
    assert message in connection.error()
    assert b"Content-Type: application/json" in connection.answer
    assert b"X-Content-Type-Options: nosniff" in connection.answer
    # Half-closed: the client can read the answer while it is still sending; cut later.
    assert connection.transport.write_closed and not connection.transport.disconnected
    clock.advance(LINGER_SECONDS)
    assert connection.transport.disconnected


def test_at_the_cap_a_new_connection_replaces_the_one_waiting_longest(clock):
    site = make_site(clock, max_connections=3)
    slow = []
    for _ in range(3):
        slow.append(Connection(site))
        slow[-1].send(b"GET /x HT")  # a slowloris head
        clock.advance(1)
    newcomer = Connection(site)
    assert slow[0].closed and not slow[1].closed and not slow[2].closed
    newcomer.send(GET)
    assert newcomer.status() == 200
    assert site.connections.evicted_total == 1 and site.connections.open == 3


def test_at_the_cap_with_every_connection_answering_a_new_one_gets_503(clock):
    class Hang(Resource):
        isLeaf = True

        def render(self, request):
            return 1  # NOT_DONE_YET: a stream that never ends

    site = PrinterdSite(Hang(), clock, timeout=30.0, request_timeout=10.0, max_connections=2)
    busy = [Connection(site), Connection(site)]
    for connection in busy:
        connection.send(GET)
    late = Connection(site)
    assert late.status() == 503 and "retry later" in late.error()
    assert b"Retry-After: 5" in late.answer
    assert not any(c.closed for c in busy)


@pytest.mark.parametrize("header, allowed", [
    (None, True), (b"localhost", True), (b"LocalHost:8000", True), (b"127.0.0.1", True),
    (b"127.9.9.9:80", True), (b"[::1]:8000", True), (b"app.localhost", True),
    (b"printer.example.com", True), (b"printer.example.com.", True),
    (b"evil.example", False), (b"127.0.0.1.evil.example", False), (b"localhost.evil", False),
    (b"10.0.0.1", False), (b"192.168.1.5:8000", True),  # the connection's own address
    (b"\xff\xfe", False), (b"", False), (b"a:b:c", False),
])
def test_which_hosts_are_answered(header, allowed):
    hosts = AllowedHosts(["Printer.Example.com"])
    assert hosts.allows(header, "192.168.1.5") is allowed


def test_remembered_host_answers_are_the_same_and_bounded_whatever_hosts_strangers_send():
    hosts = AllowedHosts(["printer.example.com"])
    for _ in range(2):  # the second time from memory
        assert hosts.allows(b"printer.example.com:8080", "192.168.1.5")
        assert hosts.allows(b"192.168.1.5", "192.168.1.5")
        assert not hosts.allows(b"192.168.1.5", "192.168.1.6")  # the same Host, another address
        assert not hosts.allows(b"evil.example", "192.168.1.5")
    for n in range(10_000):
        assert not hosts.allows(b"rebind-%d.example" % n, "192.168.1.5")
    assert hosts.remembered <= KNOWN_HOSTS


def test_a_star_in_allowed_hosts_answers_any_host():
    assert AllowedHosts(["*"]).allows(b"anything.example", "127.0.0.1")
    assert host_name(b"[2001:db8::1]:80") == "2001:db8::1"


@pytest.mark.parametrize("peer, headers, client", [
    # From a stranger, forwarding headers are ignored: it cannot choose its own address.
    ("198.51.100.9", {b"x-forwarded-for": b"203.0.113.5"}, "198.51.100.9"),
    ("198.51.100.9", {b"cf-connecting-ip": b"203.0.113.5"}, "198.51.100.9"),
    # From a trusted proxy they name the client.
    ("127.0.0.1", {b"cf-connecting-ip": b"203.0.113.5",
                   b"x-forwarded-for": b"1.1.1.1"}, "203.0.113.5"),
    ("127.0.0.1", {b"x-forwarded-for": b"203.0.113.5"}, "203.0.113.5"),
    # What the client itself put first is not believed: the last untrusted hop is the client.
    ("127.0.0.1", {b"x-forwarded-for": b"6.6.6.6, 203.0.113.5, 10.0.0.2"}, "203.0.113.5"),
    ("127.0.0.1", {b"forwarded": b'for=6.6.6.6, for="[2001:db8::7]:4711";proto=https'},
     "2001:db8::7"),
    ("127.0.0.1", {b"forwarded": b"for=203.0.113.5:1234"}, "203.0.113.5"),
    ("127.0.0.1", {b"x-forwarded-for": b"not an address"}, "127.0.0.1"),
    ("127.0.0.1", {}, "127.0.0.1"),
])
def test_the_client_behind_a_trusted_proxy(peer, headers, client):
    proxies = TrustedProxies(["127.0.0.0/8", "10.0.0.0/8"])
    assert proxies.client(peer, headers.get) == client


def test_https_at_a_trusted_proxy_makes_the_request_secure_and_the_client_its_own(clock):
    site = make_site(clock, proxies=TrustedProxies(["10.0.0.0/8"]))
    forwarded = b"GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 203.0.113.5\r\n" \
                b"X-Forwarded-Proto: https\r\n\r\n"
    trusted = Connection(site, peer="10.0.0.7")
    trusted.send(forwarded)
    assert b'"client": "203.0.113.5", "secure": true' in trusted.answer
    stranger = Connection(site, peer="198.51.100.9")
    stranger.send(forwarded)
    assert b'"client": "198.51.100.9", "secure": false' in stranger.answer


def test_an_error_nobody_caught_is_a_json_500_not_twisteds_html_page(clock):
    class Broken(Resource):
        isLeaf = True

        def render(self, request):
            raise RuntimeError("a bug in the gate")

    connection = Connection(PrinterdSite(Broken(), clock, timeout=30.0, request_timeout=10.0,
                                         max_connections=10))
    connection.send(GET)
    assert connection.status() == 500
    assert b"Content-Type: application/json" in connection.answer
    assert connection.answer.endswith(b'{"error": "internal error"}\n')


def test_two_sites_sharing_their_figures_count_open_connections_together(clock):
    from printerd.http.site import HttpConnections

    shared = HttpConnections()
    api = make_site(clock, max_connections=2, connections=shared)
    other = make_site(clock, max_connections=2, connections=shared)
    first, second = Connection(api), Connection(other)
    assert shared.open == 2
    for _ in range(3):  # on the full site each newcomer replaces one: still two there
        Connection(api).send(b"GET /x HT")
        clock.advance(1)
    assert shared.open == 3 and shared.evicted_total == 2
    second.channel.connectionLost()
    assert shared.open == 2
    assert first.closed  # the one that waited longest on the full site


class Status(Resource):
    """Answers with the status its path names (``/404``)."""

    isLeaf = True

    def render(self, request):
        request.setResponseCode(int(request.postpath[0]))
        return b""


class LoggedSite(PrinterdSite):
    """A site whose access log file is kept in memory (Twisted's hook for the file)."""

    def _openLogFile(self, path):
        self.access_lines = io.StringIO()
        return self.access_lines


def test_the_access_log_has_a_line_per_request_while_few_and_one_summary_line_while_many(
        clock):
    site = LoggedSite(Status(), clock, timeout=30.0, request_timeout=10.0, max_connections=100)
    site.logPath = "memory"
    site.startFactory()
    site.access_log.log, summaries = capturing_logger()
    clock.advance(1_000)
    for _ in range(25):  # in one second: 10 lines, the other 15 counted
        Connection(site).send(b"GET /200 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert site.access_lines.getvalue().count('"GET /200 HTTP/1.1" 200') == 10
    assert summaries == []
    clock.advance(1)
    assert summaries == ["15 more HTTP requests (by status: 200 x15): over 10 HTTP requests in"
                         " 1.0s, the rest are counted in one line"]
    for code in (200, 404, 200):  # a quiet second: every request has its line again
        Connection(site).send(b"GET /%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % code)
    assert len(site.access_lines.getvalue().splitlines()) == 13
    clock.advance(1)
    for code in [200] * 10 + [404, 429, 200, 429]:
        Connection(site).send(b"GET /%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % code)
    site.stopFactory()  # the summary of a window cut short is not lost
    assert summaries[1].startswith("4 more HTTP requests (by status: 200 x1, 404 x1, 429 x2)")
    clock.advance(2)
    assert len(summaries) == 2  # told once


def test_an_access_line_is_cut_whatever_uri_and_user_agent_a_client_sends(clock):
    site = LoggedSite(Status(), clock, timeout=30.0, request_timeout=10.0, max_connections=100)
    site.logPath = "memory"
    site.startFactory()
    Connection(site).send(b"GET /200?" + b"a" * 7_000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"User-Agent: " + b"b" * 7_000 + b"\r\n\r\n")
    Connection(site).send(b"GET /404 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    long_line, short_line = site.access_lines.getvalue().splitlines()
    assert long_line.startswith('"10.0.0.7" - - [') and long_line.endswith("aaa... (cut)")
    assert len(long_line) == ACCESS_LINE_CHARS + len("... (cut)")
    assert short_line.endswith('"GET /404 HTTP/1.1" 404 - "-" "-"')

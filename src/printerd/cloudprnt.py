"""
Star CloudPRNT: a printer that polls a server for its jobs, as a Star mC-Print / TSP100IV does.

A printer with a ``cloudprnt`` URL (the CloudPRNT "server URL" set on a real printer) speaks
CloudPRNT Version HTTP to it, as Star's CloudPRNT protocol guide describes:

1. Every ``cloudprnt_interval`` seconds it POSTs its status as JSON: ``status`` (its automatic
   status, ASB, in hex), ``printerMAC``, ``statusCode`` (``200 OK``, ``211 Paper Low``,
   ``410 Out of paper``, ``420 Cover open``, URL-encoded as printers send it),
   ``printingInProgress``, ``uniqueID`` once the server set one, and the results of the
   ``clientAction`` requests the server made (``ClientType``, ``ClientVersion``,
   ``Encodings``, ``SetID``, ``GetPollInterval``, ``PageInfo``), which go out in a POST at once.
2. When the answer has ``jobReady: true`` and the printer is online (no paper out, cover
   closed, ``online``: a Star printer that is offline keeps polling and fetches nothing), it
   GETs the job (``jobGetUrl`` if given) with ``type`` = the media type it likes best of the
   ``mediaTypes`` offered (``application/vnd.star.starprnt``, ``application/vnd.star.line``,
   ``text/plain``, ``image/png``, ``image/jpeg``), ``mac`` and the ``jobToken`` as ``token``.
3. It stores the job as receipts of its printer (StarPRNT and Star Line parsed by the Star
   parser; plain text as it reads; images as Star raster bytes, so renderings draw them), then
   confirms with a DELETE (``jobConfirmationUrl`` if given; a GET with ``delete`` when the
   server asks for ``deleteMethod: GET``) carrying ``code``: ``200 OK`` once every receipt is
   committed, ``510`` for a media type it cannot take, ``511`` for a job it cannot decode,
   ``520`` when the GET failed, ``521`` for a job over ``max_job_bytes``.

Failures (server unreachable, an HTTP error, an answer that is not CloudPRNT JSON) are logged
and counted, and the next poll waits longer (the interval doubling, up to 5 minutes); one that
works starts over.  No thread: treq on the reactor; time from the injected clock.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from twisted.application.service import Service
from twisted.internet.defer import (
    CancelledError, Deferred, ensureDeferred, gatherResults, succeed,
)
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.backoff import Backoff
from printerd.escpos.parser import ParsedReceipt
from printerd.escpos.profiles import PrinterProfile
from printerd.escpos.status import PAPER_NEAR_END, PAPER_OUT, PrinterState
from printerd.http_client import treq
from printerd.http_download import BodyTooLarge, read_body
from printerd.metrics import Figure
from printerd.rawport.factory import RawPrintFactory
from printerd.rawport.protocol import EndedJob
from printerd.render.document import ReceiptPrinter, parse_job
from printerd.star.status import automatic_status
from printerd.store.receipts import format_time

STARPRNT = "application/vnd.star.starprnt"
STAR_LINE = "application/vnd.star.line"
TEXT = "text/plain"
PNG, JPEG = "image/png", "image/jpeg"
MEDIA_TYPES = (STARPRNT, STAR_LINE, TEXT, PNG, JPEG)  # best first
CLIENT_VERSION = "1.0.0"
MAX_ANSWER_BYTES = 64 * 1024  # a poll's JSON answer
MAX_IMAGE_PIXELS = 20_000_000  # an image job's pixels, checked before decoding
REQUEST_TIMEOUT = 30.0  # seconds per HTTP request
MAX_BACKOFF = 300.0
MAX_ACTION_ROUNDS = 4  # immediate POSTs answering client actions, per poll (a server may loop)

# Confirmation codes (Star's printer status codes, 5xx: client errors).
OK = "200 OK"
INCOMPATIBLE_MEDIA = "510 Incompatible media type"
DECODING_ERROR = "511 Media decoding error"
DOWNLOAD_FAILED = "520 Timeout"
JOB_TOO_LARGE = "521 Job too large"


class CloudPrntError(Exception):
    """The server's answer is not what CloudPRNT says it is."""


def default_mac(printer: str, serial: str) -> str:
    """A stable, locally administered MAC address for a printer that has none configured."""
    digest = hashlib.sha256(f"{printer}\0{serial}".encode()).digest()
    return ":".join(f"{b:02x}" for b in bytes([0x02]) + digest[:5])


def is_online(state: PrinterState) -> bool:
    """A Star printer prints only online: paper in, cover closed, not switched offline."""
    return state.online and not state.cover_open and state.paper != PAPER_OUT


def status_code(state: PrinterState) -> str:
    """The CloudPRNT printer status code for a state (Star's table of codes)."""
    if state.cover_open:
        return "420 Cover open"
    if state.paper == PAPER_OUT:
        return "410 Out of paper"
    if not state.online:
        return "400 Offline"  # 4xx: a printer error; Star's table has no finer code for it
    if state.paper == PAPER_NEAR_END:
        return "211 Paper Low"
    return OK


def asb_hex(state: PrinterState) -> str:
    """The ASB as CloudPRNT printers put it in ``status``: hex bytes, each followed by a space."""
    return "".join(f"{byte:x} " for byte in automatic_status(state))


def with_query(url: str, **params: str) -> str:
    """``url`` with ``params`` added to its query string (keeping what it had)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def choose_media_type(offered: Any) -> Optional[str]:
    """The media type this printer likes best of those the server offers, or None."""
    if isinstance(offered, str):
        offered = [offered]
    if not isinstance(offered, list):
        return None
    names = {str(m).split(";", 1)[0].strip().lower() for m in offered}
    return next((m for m in MEDIA_TYPES if m in names), None)


def page_info(profile: PrinterProfile) -> dict[str, str]:
    """``PageInfo``: the paper and print widths in mm and the resolution in dots per mm."""
    dots_per_mm = profile.dpi / 25.4
    print_mm = round(profile.dots / dots_per_mm)
    paper_mm = 58 if print_mm <= 48 else 80
    return {"paperWidth": str(paper_mm), "printWidth": str(print_mm),
            "horizontalResolution": str(round(dots_per_mm)),
            "verticalResolution": str(round(dots_per_mm))}


def star_raster(image_data: bytes, max_dots: int, cut: str = "full") -> bytes:
    """
    An image job as the Star raster commands that print it (``ESC * r A``, a ``b n1 n2`` row
    per dot line, ``ESC * r B``), scaled down to the paper; ValueError if it is not an image.
    """
    from PIL import Image, UnidentifiedImageError  # on the first image job, not at start

    try:
        with Image.open(io.BytesIO(image_data)) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise ValueError(f"{image.width} x {image.height} pixels is too large")
            image.load()
            picture = image.convert("L")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise ValueError(f"not an image: {e}") from None
    if picture.width > max_dots:
        height = max(1, round(picture.height * max_dots / picture.width))
        picture = picture.resize((max_dots, height))
    bits = picture.convert("1")  # Floyd-Steinberg dithering; black is 0
    row_bytes = (bits.width + 7) // 8
    eject = {"full": b"9", "partial": b"13", "none": b"1"}[cut]
    out = bytearray(b"\x1b*rA" + b"\x1b*rE" + eject + b"\x00")
    packed = bits.tobytes()  # rows of 1-bit pixels, 1 = white
    for row in range(bits.height):
        line = bytes(b ^ 0xFF for b in packed[row * row_bytes:(row + 1) * row_bytes])
        out += b"b" + row_bytes.to_bytes(2, "little") + line
    return bytes(out + b"\x1b*rB")


def cut_of(headers: Any) -> str:
    """``X-Star-Cut`` of a text or image job: full (the default), partial or none."""
    values = headers.getRawHeaders(b"x-star-cut") or []
    text = values[0].decode("latin-1").strip().lower() if values else ""
    kind = text.split(";", 1)[0].strip()
    return kind if kind in ("full", "partial", "none") else "full"


def receipts_of(media_type: str, body: bytes, headers: Any, two_byte_encoding: str,
                profile: PrinterProfile) -> list[ParsedReceipt]:
    """A job's receipts, as the printer would print them; ValueError if it cannot be read."""
    if media_type == TEXT:
        charset = "utf-8"
        for value in headers.getRawHeaders(b"content-type") or []:
            for param in value.decode("latin-1").split(";")[1:]:
                key, _, given = param.partition("=")
                if key.strip().lower() == "charset" and given.strip():
                    charset = given.strip().strip('"')
        try:
            text = body.decode(charset)
        except (LookupError, UnicodeDecodeError) as e:
            raise ValueError(f"text/plain not in {charset}: {e}") from None
        cut = cut_of(headers)
        return [ParsedReceipt(raw=body, text=text.rstrip("\n"), cut=cut, truncated=False,
                              unknown_commands=0)]
    if media_type in (PNG, JPEG):
        body = star_raster(body, profile.dots, cut_of(headers))
    return parse_job(body, ReceiptPrinter("star", two_byte_encoding, profile),
                     keep_bitmaps=False)


@dataclass(frozen=True)
class CloudPrntConfig:
    """One printer's CloudPRNT settings."""

    url: str
    interval: float = 5.0
    mac: str = ""


@dataclass
class CloudPrntCounters:
    polls_total: int = 0  # POSTs answered with CloudPRNT JSON
    poll_failures_total: int = 0  # POSTs that failed (unreachable, HTTP error, bad answer)
    jobs_printed_total: int = 0  # jobs stored and confirmed 200 OK
    jobs_rejected_total: int = 0  # jobs confirmed with an error code (5xx)
    client_actions_total: int = 0  # clientAction requests answered
    last_error: Optional[str] = None
    last_poll_at: Optional[float] = None


class CloudPrntPrinter(Service):
    """Polls one CloudPRNT server for one printer; see the module docstring."""

    log = Logger()

    def __init__(self, clock: IReactorTime, factory: RawPrintFactory, config: CloudPrntConfig,
                 http: Any = treq, max_job_bytes: int = 64 * 1024 * 1024) -> None:
        self.name = f"cloudprnt:{factory.printer}"
        self.clock = clock
        self.factory = factory
        self.config = config
        self.http = http
        self.max_job_bytes = max_job_bytes
        settings = factory.job_settings
        self.mac = config.mac or default_mac(factory.printer, settings.identity.serial)
        self.counters = CloudPrntCounters()
        self.backoff = Backoff(first=config.interval, cap=max(config.interval, MAX_BACKOFF))
        self.unique_id: Optional[str] = None  # set by the server's SetID
        self._results: list[dict[str, str]] = []  # clientAction results for the next POST
        self._call: Optional[IDelayedCall] = None
        self._running: Optional[Deferred[None]] = None

    @property
    def up(self) -> bool:
        return self.counters.last_error is None and self.counters.polls_total > 0

    # -- the service ---------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self.log.info("printer {printer} polls CloudPRNT server {url} every {interval} s as "
                      "MAC {mac}", printer=self.factory.printer, url=self.config.url,
                      interval=self.config.interval, mac=self.mac)
        self._schedule(0)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        running, self._running = self._running, None
        if running is None:
            return succeed(None)
        running.cancel()  # an HTTP request in flight is abandoned
        return running.addErrback(lambda f: f.trap(CancelledError))

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._call = self.clock.callLater(delay, self._cycle)

    def _cycle(self) -> None:
        self._call = None
        self._running = ensureDeferred(self.poll())
        self._running.addCallbacks(self._polled, self._failed)

    def _polled(self, _: None) -> None:
        self._running = None
        self.counters.last_error = None
        self.backoff.succeeded()
        self._schedule(self.config.interval)

    def _failed(self, failure: Failure) -> None:
        self._running = None
        if failure.check(CancelledError) and not self.running:
            return
        self.counters.poll_failures_total += 1
        error = failure.getErrorMessage() or repr(failure.value)
        self.counters.last_error = error
        delay = self.backoff.failed()
        self.log.warn("printer {printer}: CloudPRNT poll of {url} failed ({error}); next poll "
                      "in {delay} s", printer=self.factory.printer, url=self.config.url,
                      error=error, delay=delay)
        self._schedule(delay)

    # -- one poll ------------------------------------------------------------------------------

    async def poll(self) -> None:
        """POST the status; answer client actions at once; fetch, store and confirm a job."""
        answer = await self._post()
        for _ in range(MAX_ACTION_ROUNDS):
            if not self._results:
                break
            answer = await self._post()  # client actions answered: at once, not at the interval
        if answer.get("jobReady") is True and is_online(self.factory.state):
            await self._print(answer)

    def poll_body(self) -> dict[str, Any]:
        """The JSON a poll POSTs."""
        state = self.factory.state
        body: dict[str, Any] = {"status": asb_hex(state), "printerMAC": self.mac,
                                "statusCode": quote(status_code(state)),
                                "printingInProgress": False, "clientAction": None}
        if self.unique_id is not None:
            body["uniqueID"] = self.unique_id
        if self._results:
            body["clientAction"], self._results = self._results, []
        return body

    async def _post(self) -> dict[str, Any]:
        response = await self.http.request(
            "POST", self.config.url, data=json.dumps(self.poll_body()).encode(),
            headers={"Content-Type": ["application/json"]}, timeout=REQUEST_TIMEOUT)
        body = await read_body(self.http.collect, response, MAX_ANSWER_BYTES)
        if not 200 <= response.code < 300:
            raise CloudPrntError(f"the server answered the poll with HTTP {response.code}")
        try:
            answer = json.loads(body) if body.strip() else {}
        except ValueError:
            raise CloudPrntError("the server's answer to the poll is not JSON") from None
        if not isinstance(answer, dict):
            raise CloudPrntError("the server's answer to the poll is not a JSON object")
        self.counters.polls_total += 1
        self.counters.last_poll_at = self.clock.seconds()
        self._client_actions(answer.get("clientAction"))
        return answer

    def _client_actions(self, requests: Any) -> None:
        if not isinstance(requests, list):
            return
        profile = self.factory.job_settings.profile
        model = self.factory.job_settings.identity.model
        for item in requests[:16]:
            if not isinstance(item, dict):
                continue
            request, options = str(item.get("request", "")), item.get("options")
            result: Optional[str] = {
                "ClientType": f"Star {model}",
                "ClientVersion": CLIENT_VERSION,
                "Encodings": ";".join(MEDIA_TYPES),
                "GetPollInterval": f"{self.config.interval:g}",
                "PageInfo": json.dumps(page_info(profile)),
            }.get(request)
            if request == "SetID" and options is not None:
                self.unique_id = str(options)[:64]
                result = self.unique_id
            if result is not None:
                self.counters.client_actions_total += 1
                self._results.append({"request": request, "result": result})

    def _job_query(self, answer: dict[str, Any]) -> dict[str, str]:
        query = {"mac": self.mac}
        if self.unique_id is not None:
            query = {"uid": self.unique_id, **query}
        if answer.get("jobToken") is not None:
            query["token"] = str(answer["jobToken"])
        return query

    async def _print(self, answer: dict[str, Any]) -> None:
        query = self._job_query(answer)
        media_type = choose_media_type(answer.get("mediaTypes"))
        if media_type is None:
            self.log.warn("printer {printer}: CloudPRNT job offered in {offered}, none of which "
                          "it prints", printer=self.factory.printer,
                          offered=answer.get("mediaTypes"))
            await self._confirm(answer, query, INCOMPATIBLE_MEDIA)
            return
        get_url = str(answer.get("jobGetUrl") or self.config.url)
        try:
            response = await self.http.request(
                "GET", with_query(get_url, **{"type": media_type, **query}),
                timeout=REQUEST_TIMEOUT)
            body = await read_body(self.http.collect, response, self.max_job_bytes)
        except BodyTooLarge:
            await self._confirm(answer, query, JOB_TOO_LARGE)
            return
        if response.code != 200:
            await self._confirm(answer, query, DOWNLOAD_FAILED)
            return
        try:
            receipts = receipts_of(media_type, body, response.headers,
                                   self.factory.job_settings.two_byte_encoding,
                                   self.factory.job_settings.profile)
        except ValueError as e:
            self.log.warn("printer {printer}: CloudPRNT job cannot be read: {error}",
                          printer=self.factory.printer, error=str(e))
            await self._confirm(answer, query, DECODING_ERROR)
            return
        await self._store(receipts, media_type, len(body))
        await self._confirm(answer, query, OK)

    async def _store(self, receipts: list[ParsedReceipt], media_type: str, size: int) -> None:
        """Every receipt of the job, committed before the job is confirmed."""
        peer = "cloudprnt:" + (urlsplit(self.config.url).netloc or self.config.url)
        started = self.clock.seconds()
        job = self.factory.start_job(peer)
        self.factory.received(size)
        stored = []
        for receipt in receipts:
            details = {**receipt.details, "source": "cloudprnt",
                       "cloudprnt": {"media_type": media_type}}
            stored.append(self.factory.receipt(job, peer, replace(receipt, details=details)))
        await gatherResults(stored, consumeErrors=True)
        self.factory.end_job(EndedJob(job, peer, len(receipts), size,
                                      self.clock.seconds() - started))

    async def _confirm(self, answer: dict[str, Any], query: dict[str, str], code: str) -> None:
        if code == OK:
            self.counters.jobs_printed_total += 1
        else:
            self.counters.jobs_rejected_total += 1
        url = str(answer.get("jobConfirmationUrl") or self.config.url)
        params = {**query, "code": code}
        if str(answer.get("deleteMethod", "DELETE")).upper() == "GET":
            method, url = "GET", with_query(url, **params, delete="")
        else:
            method, url = "DELETE", with_query(url, **params)
        response = await self.http.request(method, url, timeout=REQUEST_TIMEOUT)
        await read_body(self.http.collect, response, MAX_ANSWER_BYTES)
        if not 200 <= response.code < 300:
            raise CloudPrntError(f"the server answered the job confirmation with HTTP "
                                 f"{response.code}")

    def to_json(self) -> dict[str, Any]:
        """The poller's state for /api/printers and the web page."""
        c = self.counters
        return {"url": self.config.url, "interval": self.config.interval, "mac": self.mac,
                "unique_id": self.unique_id, "status_code": status_code(self.factory.state),
                "state": "up" if self.up else ("down" if c.last_error else "unknown"),
                "last_error": c.last_error,
                "last_poll": format_time(c.last_poll_at) if c.last_poll_at else None,
                "counters": {"polls": c.polls_total, "poll_failures": c.poll_failures_total,
                             "jobs_printed": c.jobs_printed_total,
                             "jobs_rejected": c.jobs_rejected_total}}


def cloudprnt_figures(pollers: Sequence[CloudPrntPrinter]) -> tuple[Figure, ...]:
    """Rows of the figures table (/api/stats and /metrics) for the CloudPRNT pollers."""

    def each(read: Callable[[CloudPrntPrinter], float]) -> Callable[[Any], Any]:
        return lambda _: [((p.factory.printer,), read(p)) for p in pollers]

    def jobs(_: Any) -> Any:
        return [((p.factory.printer, outcome), count) for p in pollers
                for outcome, count in (("printed", p.counters.jobs_printed_total),
                                       ("rejected", p.counters.jobs_rejected_total))]

    return (
        Figure("cloudprnt_up", "printerd_cloudprnt_up", "CloudPRNT pollers whose last poll "
               "worked (1) or not (0)", "gauge", each(lambda p: int(p.up)), ("printer",)),
        Figure("cloudprnt_polls_total", "printerd_cloudprnt_polls", "CloudPRNT polls answered",
               "counter", each(lambda p: p.counters.polls_total), ("printer",)),
        Figure("cloudprnt_poll_failures_total", "printerd_cloudprnt_poll_failures",
               "CloudPRNT polls that failed", "counter",
               each(lambda p: p.counters.poll_failures_total), ("printer",)),
        Figure("cloudprnt_jobs_total", "printerd_cloudprnt_jobs", "CloudPRNT jobs confirmed, by "
               "outcome", "counter", jobs, ("printer", "outcome"), stats_by="outcome"),
    )

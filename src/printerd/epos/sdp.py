"""
Epson Server Direct Print: printerd polls a POS server for ePOS-Print jobs, as a TM printer does.

Every ``interval`` seconds the printer POSTs ``ConnectionType=GetRequest&ID=..&Name=..``
(``application/x-www-form-urlencoded``) to the server's URL. An answer with no ``<ePOSPrint>``
(an empty body, say) means nothing to print. Otherwise the answer is a ``<PrintRequestInfo>``
holding one ``<ePOSPrint>`` per job (``<Parameter>`` devid, timeout, printjobid; ``<PrintData>``
an ``<epos-print>`` document); each job is printed (stored as receipts, the whole answer as
their raw XML), and the results go back in one POST ``ConnectionType=SetResponse&ID=..&Name=..
&ResponseFile=<PrintResponseInfo ...>``, shaped by the request's ``Version`` as Epson's manual
shows: 1.00 one ``<response>`` per job, 2.00 and 3.00 an ``<ePOSPrint>`` per job with its
``<Parameter>`` and ``<PrintResponse>``, 3.00 with the ``<ServerDirectPrint>`` verdict on the XML
itself (and an error summary instead of jobs when the XML is unusable: over 2 MB, not XML, over
5000 jobs).

A failed exchange (refused, timed out, not 200) is retried after a backoff that doubles up to
``max_backoff``; a result not yet delivered is sent again before the next job is fetched, so the
server learns of every job it handed out. HTTP goes through treq on the reactor: no threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import urlencode, urlsplit
from xml.sax.saxutils import escape

from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from printerd.backoff import Backoff
from printerd.epos.document import Element, SchemaError, find_documents, parse_xml
from printerd.epos.response import DEVICE_NOT_FOUND, PrintResult, response_element
from printerd.epos.service import LOCAL_PRINTER, EposPrinter, EposPrinting
from printerd.http_download import BodyTooLarge, read_body

MAX_REQUEST_BYTES = 2 * 1024 * 1024  # Epson: "The XML obtained with GetRequest exceeds 2MB"
MAX_JOBS = 5000  # Epson: "The number of print data units ... exceeds 5000"
FORM = {b"Content-Type": [b"application/x-www-form-urlencoded"]}


@dataclass(frozen=True)
class ServerDirectPrintConfig:
    """One server a printer polls (the ``server_direct_print`` setting's entries)."""

    printer: str
    url: str
    interval: float = 5.0
    id: str = ""
    name: str = ""


@dataclass
class Job:
    devid: Optional[str]
    printjobid: Optional[str]
    document: Optional[Element]
    index: int  # among the answer's <epos-print> elements


def _child_text(element: Optional[Element], name: str) -> Optional[str]:
    if element is None:
        return None
    for child in element.children:
        if child.name == name:
            return child.text.strip()
    return None


def _child(element: Element, name: str) -> Optional[Element]:
    for child in element.children:
        if child.name == name:
            return child
    return None


def read_jobs(root: Element) -> tuple[str, list[Job], int]:
    """(version, print jobs, customer display jobs) of a ``<PrintRequestInfo>``."""
    if root.name != "PrintRequestInfo":
        raise SchemaError(f"expected PrintRequestInfo, not {root.name}")
    version = root.attributes.get("Version", "1.00")
    jobs, displays = [], 0
    documents = 0
    for element in root.children:
        if element.name == "ePOSDisplay":
            displays += 1
            continue
        if element.name != "ePOSPrint":
            continue
        parameter = _child(element, "Parameter")
        data = _child(element, "PrintData")
        found = find_documents(data) if data is not None else []
        jobs.append(Job(_child_text(parameter, "devid"), _child_text(parameter, "printjobid"),
                        found[0] if found else None, documents))
        documents += len(found)
    return version, jobs, displays


def _result_xml(job: Job, result: PrintResult, version: str) -> str:
    if version == "1.00":
        return response_element(result)
    parameter = f"<devid>{escape(job.devid or '')}</devid>"
    if job.printjobid is not None:
        parameter += f"<printjobid>{escape(job.printjobid)}</printjobid>"
    return (f"<ePOSPrint><Parameter>{parameter}</Parameter>"
            f"<PrintResponse>{response_element(result)}</PrintResponse></ePOSPrint>")


def response_file(version: str, results: list[tuple[Job, PrintResult]],
                  displays: int = 0) -> str:
    """The ``ResponseFile`` of a SetResponse: the printing results, as the version asks."""
    version = version if version in ("1.00", "2.00", "3.00") else "1.00"
    body = "".join(_result_xml(job, result, version) for job, result in results)
    if version == "3.00":
        # No customer display here: each display request fails, as on a printer without one.
        body = '<ServerDirectPrint><Response Success="true"/></ServerDirectPrint>' + body
        body += ("<ePOSDisplay><Parameter><devid>local_display</devid></Parameter>"
                 '<DisplayResponse><response xmlns="http://www.epson-pos.com/schemas/2012/09/'
                 'epos-display" success="false" code="EDSP_NOT_FOUND" status="0"/>'
                 "</DisplayResponse></ePOSDisplay>") * displays
    return (f'<?xml version="1.0" encoding="utf-8"?>\n'
            f'<PrintResponseInfo Version="{version}">{body}</PrintResponseInfo>')


def error_file(summary: str, detail: str) -> str:
    """The ResponseFile for an answer that could not be used (TM-T88VI's format)."""
    return ('<?xml version="1.0" encoding="utf-8"?>\n<PrintResponseInfo Version="3.00">'
            f'<ServerDirectPrint><Response Success="false"><ErrorSummary>{escape(summary)}'
            f'</ErrorSummary><ErrorDetail>{escape(detail)}</ErrorDetail></Response>'
            '</ServerDirectPrint></PrintResponseInfo>')


class ServerDirectPrint(Service):
    """Polls one server for one printer; see the module docstring."""

    log = Logger()

    def __init__(self, clock: IReactorTime, printing: EposPrinting, printer: EposPrinter,
                 config: ServerDirectPrintConfig, http: Any, timeout: float = 30.0,
                 max_backoff: float = 300.0) -> None:
        """``http`` is treq, or a treq-like client (``treq.testing.StubTreq`` in tests)."""
        self.clock = clock
        self.printing = printing
        self.printer = printer
        self.config = config
        self.http = http
        self.timeout = timeout
        # The n-th failure in a row waits interval * 2**n, never less than the interval.
        cap = max(max_backoff, config.interval)
        self.backoff = Backoff(first=min(2 * config.interval, cap), cap=cap)
        self._next_delay = config.interval
        self.name = f"server-direct-print-{printer.name}"
        self.polls_total = 0
        self.jobs_total = 0
        self.errors_total = 0
        self.last_error: Optional[str] = None
        self._pending_response: Optional[str] = None
        self._call: Optional[IDelayedCall] = None
        self._running: Optional[Deferred[None]] = None
        parts = urlsplit(config.url)
        self.peer = parts.netloc or config.url

    # -- lifecycle ---------------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._schedule(0)

    def stopService(self) -> Optional[Deferred[None]]:
        super().stopService()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
        if self._running is not None:
            self._running.cancel()  # an exchange in flight: the server sees a closed connection
        return None

    def _schedule(self, delay: float) -> None:
        if self.running:
            self._call = self.clock.callLater(delay, self._tick)

    def _tick(self) -> None:
        self._call = None
        self._running = Deferred.fromCoroutine(self.poll())
        self._running.addBoth(self._done)

    def _done(self, result: object) -> None:
        # poll() catches its own failures: this only sees a cancellation at stop.
        self._running = None
        self._schedule(self._next_delay)

    # -- one exchange ------------------------------------------------------------------------

    async def poll(self) -> None:
        """Deliver a pending result, fetch jobs, print them, report; never raises."""
        self.polls_total += 1
        try:
            if self._pending_response is not None:
                await self._set_response(self._pending_response)
                self._pending_response = None
            body = await self._get_request()
            response = await self._print(body)
            if response is not None:
                self._pending_response = response
                await self._set_response(response)
                self._pending_response = None
            if self.failures:
                self.log.info("server direct print {url}: reachable again", url=self.config.url)
            self.backoff.succeeded()
            self._next_delay = self.config.interval
            self.last_error = None
        except CancelledError:
            raise
        except Exception as e:  # refused, DNS, TLS, timeout, bad status: all retried
            if not self.running:
                return  # stopped mid-exchange: not the server's failure
            self._next_delay = self.backoff.failed()
            self.errors_total += 1
            self.last_error = f"{e.__class__.__name__}: {e}"
            self.log.warn("server direct print {url}: {error}; retrying in {delay:g} s",
                          url=self.config.url, error=self.last_error, delay=self._next_delay)

    @property
    def failures(self) -> int:
        """Exchanges that failed in a row."""
        return self.backoff.failures

    def _form(self, **fields: str) -> bytes:
        return urlencode({"ConnectionType": fields.pop("connection_type"),
                          "ID": self.config.id, "Name": self.config.name, **fields}).encode()

    async def _post(self, body: bytes) -> bytes:
        request = self.http.post(self.config.url, data=body, headers=FORM)
        response = await request.addTimeout(self.timeout, self.clock)
        try:
            body = await read_body(self.http.collect, response, MAX_REQUEST_BYTES).addTimeout(
                self.timeout, self.clock)
        except BodyTooLarge:
            if response.code != 200:
                raise OSError(f"the server answered {response.code}") from None
            raise
        if response.code != 200:
            raise OSError(f"the server answered {response.code}")
        return body

    async def _get_request(self) -> Optional[bytes]:
        try:
            return await self._post(self._form(connection_type="GetRequest"))
        except BodyTooLarge:
            return None  # answered below with Epson's "Data size is exceeded"

    async def _set_response(self, response: str) -> None:
        await self._post(self._form(connection_type="SetResponse", ResponseFile=response))

    async def _print(self, body: Optional[bytes]) -> Optional[str]:
        """Print the jobs of an answer; the ResponseFile to send back, or None (no jobs)."""
        if body is None:
            return error_file("Data size is exceeded", "Too big print request")
        if not body.strip():
            return None
        try:
            version, jobs, displays = read_jobs(parse_xml(body))
        except SchemaError as e:
            self.log.warn("server direct print {url}: unusable answer: {error}",
                          url=self.config.url, error=e)
            return error_file("Invalid XML format", str(e))
        if len(jobs) > MAX_JOBS:
            return error_file("Data size is exceeded", "Too many job requests")
        if not jobs and not displays:
            return None
        results = []
        for job in jobs:
            results.append((job, await self._print_job(body, job)))
        self.jobs_total += len(jobs)
        return response_file(version, results, displays)

    async def _print_job(self, raw: bytes, job: Job) -> PrintResult:
        if job.devid in (None, "", LOCAL_PRINTER):
            printer: Optional[EposPrinter] = self.printer
        else:
            printer = self.printing.printer(job.devid)
        if printer is None:
            return self.printing.count(PrintResult(False, DEVICE_NOT_FOUND, 0))
        if job.document is None:
            return self.printing.schema_error(SchemaError("ePOSPrint without an epos-print "
                                                          "document"), self.peer)
        parameters: dict[str, str] = {"server_direct_print": self.config.url}
        if job.devid:
            parameters["devid"] = job.devid
        if job.printjobid is not None:
            parameters["printjobid"] = job.printjobid
        return await self.printing.print_documents(printer, raw, [(job.index, job.document)],
                                                   self.peer, parameters)

    def status(self) -> dict[str, Any]:
        """The poller's state, for the API and metrics."""
        return {"url": self.config.url, "printer": self.printer.name,
                "interval": self.config.interval, "polls": self.polls_total,
                "jobs": self.jobs_total, "errors": self.errors_total,
                "failures_in_a_row": self.failures, "last_error": self.last_error}


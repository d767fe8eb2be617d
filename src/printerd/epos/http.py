"""
``POST /cgi-bin/epos/service.cgi``: printerd answers as an Epson ePOS-Print printer does.

Browser POS (Odoo's point of sale, the ePOS SDK for JavaScript) post a SOAP envelope holding an
``<epos-print>`` document, often from another origin: every answer carries CORS headers, and
the preflight (``OPTIONS``) a browser sends first is answered, Private Network Access included.
Every answer is Epson's SOAP ``<response>``, with status 200, whatever went wrong: bad XML is
``SchemaError``, an unknown ``devid`` ``DeviceNotFound``, a body over the cap
``RequestEntityTooLarge`` (each counted by code in ``/metrics``).

The endpoint takes no bearer token (a POS sends none): clients outside the printer's
``raw_allow`` networks get 403, as they could not print on the raw port either.

It is served on the HTTP listener beside the API (``HttpRoot`` routes ``/cgi-bin/epos/`` here)
and, when ``epos_listen`` is set, on a listener of its own (a printer's 80/443 or 8008/8043).
"""

from __future__ import annotations

from typing import Any, Optional

from klein import Klein
from twisted.logger import Logger, LogLevel
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.resource import IResource, Resource
from werkzeug.exceptions import HTTPException

from printerd.epos.document import SchemaError, read_request
from printerd.epos.response import (
    PRINT_SYSTEM_ERROR, TOO_LARGE, PrintResult, failed, soap_response,
)
from printerd.addresses import in_networks
from printerd.epos.service import EposPrinting
from printerd.logwindow import CountedLines
from printerd.http.site import PrinterdRequest

EPOS_PREFIX = b"/cgi-bin/epos/"
SERVICE_PATH = "/cgi-bin/epos/service.cgi"
DEFAULT_MAX_BODY = 2 * 1024 * 1024
XML = b"text/xml; charset=utf-8"
ALLOWED_HEADERS = b"Content-Type, SOAPAction, If-Modified-Since"


def request_factory(max_body: int) -> type[PrinterdRequest]:
    """
    A request class that keeps up to ``max_body`` bytes of an ePOS-Print request's body and
    the API's 64 KiB of any other (past the cap the body is dropped and the request marked).
    """

    class EposAwareRequest(PrinterdRequest):
        def gotLength(self, length: Optional[int]) -> None:
            # Twisted names no public way to see the path before the body arrives: the
            # channel holds the request line it parsed until the body is complete.
            target = getattr(self.channel, "_path", b"") or b""
            if target.startswith(EPOS_PREFIX):
                self.max_body = max_body
            super().gotLength(length)

    return EposAwareRequest


class EposEndpoint:
    """The ePOS-Print service; ``resource()`` serves it."""

    app = Klein()
    log = Logger()

    def __init__(self, printing: EposPrinting) -> None:
        self.printing = printing
        self.forbidden_total = 0
        self.forbidden_lines = CountedLines(printing.clock, self.log, "ePOS-Print requests "
                                            "refused (not in raw_allow)", "host", LogLevel.warn)

    def resource(self) -> Any:
        return self.app.resource()

    # -- CORS ----------------------------------------------------------------------------------

    @staticmethod
    def _cors(request: IRequest) -> None:
        request.setHeader(b"Access-Control-Allow-Origin", b"*")
        request.setHeader(b"Access-Control-Expose-Headers", b"Content-Type")

    @app.route(SERVICE_PATH, methods=["OPTIONS"])
    def preflight(self, request: IRequest) -> bytes:
        """A browser asks whether it may post (text/xml, SOAPAction: not a simple request)."""
        self._cors(request)
        request.setHeader(b"Access-Control-Allow-Methods", b"POST, OPTIONS")
        asked = request.getHeader(b"access-control-request-headers")
        request.setHeader(b"Access-Control-Allow-Headers", asked or ALLOWED_HEADERS)
        request.setHeader(b"Access-Control-Max-Age", b"86400")
        if request.getHeader(b"access-control-request-private-network") == b"true":
            # Chrome's Private Network Access: a public page may reach a printer on the LAN.
            request.setHeader(b"Access-Control-Allow-Private-Network", b"true")
        request.setResponseCode(204)
        return b""

    # -- printing ----------------------------------------------------------------------------

    def _answer(self, request: IRequest, result: PrintResult, devid: Optional[str] = None,
                printjobid: Optional[str] = None) -> bytes:
        self._cors(request)
        request.setHeader(b"Content-Type", XML)
        request.setHeader(b"Cache-Control", b"no-cache")
        return soap_response(result, devid, printjobid)

    @app.route(SERVICE_PATH, methods=["POST"])
    async def service(self, request: IRequest) -> bytes:
        host = getattr(request.getClientAddress(), "host", None)
        peer = _describe_peer(request)
        if getattr(request, "body_too_large", False):
            return self._answer(request, self.printing.count(failed(TOO_LARGE)))
        query_devid = _argument(request, b"devid")
        body = request.content.read() if request.content is not None else b""
        try:
            document = read_request(body)
        except SchemaError as e:
            return self._answer(request, self.printing.schema_error(e, peer), query_devid)
        devid = query_devid if query_devid is not None else document.devid
        printer = self.printing.printer(devid)
        # A Unix socket peer is on this machine; an IP peer must be in the printer's networks.
        if printer is not None and host is not None and not in_networks(host, printer.allow):
            self.forbidden_total += 1
            if self.forbidden_lines.admit(host):
                self.log.warn("refused ePOS-Print request from {host}: not in raw_allow",
                              host=host)
            request.setResponseCode(403)
            self._cors(request)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return b"forbidden: this address may not print here\n"
        if printer is None:
            return self._answer(request, self.printing.unknown_device(devid), devid,
                                document.printjobid)
        parameters = {"devid": devid} if devid else {}
        if document.printjobid is not None:
            parameters["printjobid"] = document.printjobid
        result = await self.printing.print_documents(printer, body, [(0, document.document)],
                                                     peer, parameters)
        return self._answer(request, result, devid, document.printjobid)

    @app.handle_errors(HTTPException)
    def _routing_error(self, request: IRequest, failure: Failure) -> bytes:
        error: HTTPException = failure.value  # type: ignore[assignment]
        request.setResponseCode(error.code or 404)
        self._cors(request)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"method not allowed\n" if error.code == 405 else b"not found\n"

    @app.handle_errors(Exception)
    def _unexpected(self, request: IRequest, failure: Failure) -> bytes:
        # A POS reads the SOAP body whatever happens: it gets Epson's code for a failure of
        # the printing system, and the log gets the traceback.
        self.log.failure("error answering an ePOS-Print request", failure)
        return self._answer(request, self.printing.count(failed(PRINT_SYSTEM_ERROR)))


def _argument(request: IRequest, name: bytes) -> Optional[str]:
    values = (request.args or {}).get(name)
    return values[0].decode("utf-8", "replace") if values else None


def _describe_peer(request: IRequest) -> str:
    address = request.getClientAddress()
    host = getattr(address, "host", None)
    if host is None:
        return str(address)
    port = getattr(address, "port", 0)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HttpRoot(Resource):
    """The HTTP listener's root: ePOS-Print under ``/cgi-bin/epos/``, the API elsewhere."""

    isLeaf = True

    def __init__(self, epos: IResource, api: Optional[IResource] = None) -> None:
        super().__init__()
        self.epos = epos
        self.api = api

    def render(self, request: IRequest) -> bytes:
        if request.path.startswith(EPOS_PREFIX) or self.api is None:
            return self.epos.render(request)
        return self.api.render(request)

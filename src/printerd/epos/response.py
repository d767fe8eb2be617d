"""
What an ePOS-Print printer answers: the ``<response success code status battery>`` element, in a
SOAP envelope (ePOS-Print over HTTP) or a ``<PrintResponseInfo>`` (Server Direct Print).

``status`` is the printer's automatic status back (``GS a``) as one number: byte 1 lowest, the
same bits the raw port's status replies report for the same state (``escpos.status``), plus
ePOS-Print's own "no response" (0x1) and "printing completed" (0x2) bits. Epson's documented
responses carry 0x0F in the fourth byte (``status="251658262"``, 0x0F000016, for a printer that
printed with its drawer shut); ours do too. Pure functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from xml.sax.saxutils import escape, quoteattr

from printerd.epos.document import EPOS_NS, SOAP_NS
from printerd.escpos.status import PAPER_OUT, PrinterState, automatic_status

# Status bits (Epson's ASB_* constants).
ASB_NO_RESPONSE = 0x00000001
ASB_PRINT_SUCCESS = 0x00000002
ASB_DRAWER_KICK = 0x00000004  # drawer kick-out connector pin 3 HIGH
ASB_OFF_LINE = 0x00000008
ASB_COVER_OPEN = 0x00000020
ASB_AUTORECOVER_ERR = 0x00004000
ASB_RECEIPT_NEAR_END = 0x00020000
ASB_RECEIPT_END = 0x00080000
_FOURTH_BYTE = 0x0F000000

# Error codes.
EPTR_AUTOMATICAL = "EPTR_AUTOMATICAL"
EPTR_COVER_OPEN = "EPTR_COVER_OPEN"
EPTR_REC_EMPTY = "EPTR_REC_EMPTY"
SCHEMA_ERROR = "SchemaError"
DEVICE_NOT_FOUND = "DeviceNotFound"
PRINT_SYSTEM_ERROR = "PrintSystemError"
TOO_LARGE = "RequestEntityTooLarge"


@dataclass(frozen=True)
class PrintResult:
    """The outcome of one ePOS-Print document."""

    success: bool
    code: str
    status: int
    battery: int = 0


def printer_status(state: PrinterState) -> int:
    """The ``status`` number for a printer in ``state`` (before any printing bit)."""
    return int.from_bytes(automatic_status(state), "little") | _FOURTH_BYTE


def refusal(state: PrinterState) -> Optional[str]:
    """The error code a printer in ``state`` answers a print with, or None if it prints."""
    if state.cover_open:
        return EPTR_COVER_OPEN
    if state.paper == PAPER_OUT:
        return EPTR_REC_EMPTY
    if not state.online:
        return EPTR_AUTOMATICAL  # printerd's offline is an automatically recoverable error
    return None


def printed(state: PrinterState) -> PrintResult:
    return PrintResult(True, "", printer_status(state) | ASB_PRINT_SUCCESS)


def refused(state: PrinterState, code: str) -> PrintResult:
    return PrintResult(False, code, printer_status(state))


def failed(code: str) -> PrintResult:
    """A request that never reached a printer (bad XML, unknown device, ...)."""
    return PrintResult(False, code, 0)


def response_element(result: PrintResult) -> str:
    return (f'<response success="{"true" if result.success else "false"}" '
            f'code={quoteattr(result.code)} status="{result.status}" '
            f'battery="{result.battery}" xmlns="{EPOS_NS}"></response>')


def soap_response(result: PrintResult, devid: Optional[str] = None,
                  printjobid: Optional[str] = None) -> bytes:
    """The body of the answer to ``POST /cgi-bin/epos/service.cgi``."""
    header = ""
    if printjobid is not None:
        header = (f'<s:Header><parameter xmlns="{EPOS_NS}">'
                  f'<devid>{escape(devid or "")}</devid>'
                  f'<printjobid>{escape(printjobid)}</printjobid></parameter></s:Header>')
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<s:Envelope xmlns:s="{SOAP_NS}">'
            f'{header}<s:Body>{response_element(result)}</s:Body></s:Envelope>').encode()

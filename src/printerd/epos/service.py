"""
Printing ePOS-Print documents: the part shared by the HTTP endpoint and Server Direct Print.

A document is printed by the printer its ``devid`` names (a printer's name; ``local_printer``,
the id every Epson printer answers to, names the first printer unless one is called that). A
printer whose state says it cannot print (cover open, paper out, offline) refuses the document
with Epson's error code, as the real one does, and nothing is stored: the POS keeps the job and
retries. Otherwise the document is translated to ESC/POS (``translate``), parsed into receipts
by the raw port's parser, and each receipt is stored with the document's XML as its raw data and
``"source": "epos-print"`` in its JSON (``epos.document`` and ``epos.part`` tell the renderers
which receipt of which document it is). The answer goes back once the receipts are committed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

from twisted.internet.defer import gatherResults
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

from printerd.addresses import Network, networks
from printerd.compact_json import compact_json
from printerd.config import DEFAULTS
from printerd.escpos.codepages import DEFAULT_TWO_BYTE_ENCODING
from printerd.epos.document import Element, SchemaError
from printerd.epos.response import (
    DEVICE_NOT_FOUND, PRINT_SYSTEM_ERROR, SCHEMA_ERROR, PrintResult, failed, printed, refusal,
    refused,
)
from printerd.epos.translate import parse_translation, translate
from printerd.escpos.profiles import DEFAULT_PROFILE, PrinterProfile
from printerd.escpos.status import PrinterState
from printerd.logwindow import LINE_VALUE_CHARS, CountedLines
from printerd.store.receipts import NewReceipt, format_time
from printerd.store.service import ReceiptStore

LOCAL_PRINTER = "local_printer"
SOURCE = "epos-print"


@dataclass(frozen=True)
class EposPrinter:
    """What ePOS-Print needs to know of one of printerd's printers."""

    name: str
    state: Callable[[], PrinterState]
    two_byte_encoding: str = DEFAULT_TWO_BYTE_ENCODING
    allow: tuple[Network, ...] = networks(DEFAULTS.raw_allow)  # raw_allow: who may print
    profile: PrinterProfile = DEFAULT_PROFILE  # the model's paper, as the raw port parses on


class EposPrinting:
    """Prints documents on printerd's printers; see the module docstring."""

    log = Logger()

    def __init__(self, clock: IReactorTime, store: ReceiptStore,
                 printers: Sequence[EposPrinter]) -> None:
        self.clock = clock
        self.store = store
        self.printers = {p.name: p for p in printers}
        self._default = printers[0] if printers else None
        self.documents_total: Counter[str] = Counter()  # by result code ("" printed)
        self.receipts_total = 0
        # A line each for the first 10 a second, then counted: a client in a loop would grow
        # the log without bound.
        self.job_lines = CountedLines(clock, self.log, "ePOS-Print jobs", "printer")
        self.refused_lines = CountedLines(clock, self.log, "ePOS-Print documents refused",
                                          "error", LogLevel.warn)
        self.unknown_device_lines = CountedLines(
            clock, self.log, "ePOS-Print documents for unknown devices", "devid", LogLevel.warn)

    def printer(self, devid: Optional[str]) -> Optional[EposPrinter]:
        """The printer a device id names, or None."""
        if devid in self.printers:
            return self.printers[devid]
        if devid in (None, "", LOCAL_PRINTER):
            return self._default
        return None

    def count(self, result: PrintResult) -> PrintResult:
        self.documents_total[result.code] += 1
        return result

    def schema_error(self, error: SchemaError, peer: str) -> PrintResult:
        if self.refused_lines.admit(error):
            # What the client sent is cut: a line is never the size of a request.
            self.log.warn("ePOS-Print document from {peer} refused: {error}", peer=peer,
                          error=str(error)[:LINE_VALUE_CHARS])
        return self.count(failed(SCHEMA_ERROR))

    async def print_documents(self, printer: EposPrinter, raw: bytes,
                              documents: Sequence[tuple[int, Element]], peer: str,
                              parameters: Optional[dict] = None) -> PrintResult:
        """
        Print ``documents`` (each with its index among the ``<epos-print>`` elements of
        ``raw``) as one job; the result of the whole job.
        """
        translations = []
        for index, document in documents:
            try:
                translations.append((index, translate(
                    document, printer.two_byte_encoding, printer.profile.two_byte_at_start)))
            except SchemaError as e:
                return self.schema_error(e, peer)
        state = printer.state()
        code = refusal(state)
        if code is not None:
            return self.count(refused(state, code))
        if self.store.write_error is not None:
            # Nothing could be kept: the POS is told, and keeps the job.
            return self.count(failed(PRINT_SYSTEM_ERROR))
        drafts = []
        job = self.store.next_job_id()
        received_at = format_time(self.clock.seconds())
        for index, translation in translations:
            receipts = parse_translation(translation.escpos, printer.two_byte_encoding,
                                         profile=printer.profile)
            for part, parsed in enumerate(receipts):
                epos = {"document": index, "part": part, **(parameters or {})}
                if translation.skipped:
                    epos["skipped"] = dict(translation.skipped)
                if translation.substituted:
                    epos["substituted"] = translation.substituted
                details = {**parsed.details, "source": SOURCE, "epos": epos}
                drafts.append(NewReceipt(
                    printer=printer.name, peer=peer, received_at=received_at, job=job,
                    raw=raw, text=parsed.text, cut=parsed.cut, truncated=parsed.truncated,
                    details=compact_json(details)))
        await gatherResults([self.store.add_receipt(draft) for draft in drafts])
        self.receipts_total += len(drafts)
        if drafts and self.job_lines.admit(printer.name):
            self.log.info("ePOS-Print job {job} printer={printer} peer={peer} receipts={n}",
                          job=job, printer=printer.name, peer=peer, n=len(drafts))
        return self.count(printed(printer.state()))

    def unknown_device(self, devid: Optional[str]) -> PrintResult:
        if self.unknown_device_lines.admit(devid):
            self.log.warn("ePOS-Print document for unknown device {devid!r}: DeviceNotFound",
                          devid=devid if devid is None else devid[:LINE_VALUE_CHARS])
        return self.count(failed(DEVICE_NOT_FOUND))

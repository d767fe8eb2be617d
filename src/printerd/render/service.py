"""
Renders stored receipts on demand, off the reactor thread, and keeps the latest results.

Rendering parses the raw bytes again and draws (Pillow, segno, python-barcode): milliseconds to
a tenth of a second, so it runs on the store's reader threads with the read that fetches the
bytes (no extra threads). Receipts never change, so a rendering is cached by (id, format, size).
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import replace
from typing import Callable, Mapping, Optional

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from printerd.epos.translate import printable_escpos
from printerd.escpos.profiles import PrinterProfile
from printerd.render.budget import release_memory
from printerd.render.document import DEFAULT_PRINTER, PAPER_WIDTHS, ReceiptPrinter
from printerd.render.text import WIDTHS, render_text
from printerd.store.receipts import RawReceipt
from printerd.store.service import ReceiptStore

Render = Callable[[bytes, int, ReceiptPrinter], bytes]


def _text(raw: bytes, width: int, printer: ReceiptPrinter) -> bytes:
    return render_text(raw, width, printer).encode()


# The drawing renderers import Pillow, segno and python-barcode (about 5 MB of a daemon's
# memory): on the first rendering that needs them, not at start.
def _html(raw: bytes, width: int, printer: ReceiptPrinter) -> bytes:
    from printerd.render.html import render_html

    return render_html(raw, width, printer=printer).encode()


def _png(raw: bytes, width: int, printer: ReceiptPrinter) -> bytes:
    from printerd.render.png import render_png

    return render_png(raw, width, printer)


def _pdf(raw: bytes, width: int, printer: ReceiptPrinter) -> bytes:
    from printerd.render.pdf import render_pdf

    return render_pdf(raw, width, printer)


FORMATS: dict[str, tuple[Render, tuple[int, ...], Callable[[PrinterProfile], int], bytes]] = {
    # format: (render(raw, size, printer), allowed sizes, the printer's own size,
    # content type)
    "txt": (_text, WIDTHS, lambda profile: profile.columns, b"text/plain; charset=utf-8"),
    "html": (_html, WIDTHS, lambda profile: profile.columns, b"text/html; charset=utf-8"),
    "png": (_png, PAPER_WIDTHS, lambda profile: profile.dots, b"image/png"),
    "pdf": (_pdf, PAPER_WIDTHS, lambda profile: profile.dots, b"application/pdf"),
}


class Renderings:
    """
    ``get(id, format, size)`` -> the rendering's bytes, or None when there is no such id.
    Each receipt is drawn for the printer that printed it (``printers``: name -> its
    emulation, two-byte encoding and model's profile; a printer not listed is drawn as the
    default one); ``size`` None is that printer's own width.
    """

    def __init__(self, store: ReceiptStore, printers: Mapping[str, ReceiptPrinter],
                 cache_bytes: int = 16 * 1024 * 1024) -> None:
        self.store = store
        self.printers = dict(printers)
        self.cache_bytes = cache_bytes  # the most the cached renderings may take together
        self._cache: OrderedDict[tuple[int, str, Optional[int]], bytes] = OrderedDict()
        self._cached_bytes = 0
        # Renderings under way, and who else waits for them: every open page asks for a new
        # receipt's HTML at the same moment, and it is rendered once.
        self._in_flight: dict[tuple[int, str, Optional[int]],
                              list[Deferred[Optional[bytes]]]] = {}
        self.renders_total = 0

    def printer(self, name: str) -> ReceiptPrinter:
        return self.printers.get(name, DEFAULT_PRINTER)

    def get(self, receipt_id: int, fmt: str,
            size: Optional[int] = None) -> Deferred[Optional[bytes]]:
        key = (receipt_id, fmt, size)
        if key in self._cache:
            self._cache.move_to_end(key)
            return succeed(self._cache[key])
        if key in self._in_flight:
            waiter: Deferred[Optional[bytes]] = Deferred()
            self._in_flight[key].append(waiter)
            return waiter
        self._in_flight[key] = []
        self.renders_total += 1
        render, _, own_size, _ = FORMATS[fmt]

        def render_raw(found: RawReceipt) -> bytes:
            printer, raw, details = self.printer(found.printer), found.raw, found.details
            try:
                if '"source":"epos-print"' in details:
                    # Printed from an ePOS-Print document: draw the ESC/POS it translates to,
                    # whatever the printer's emulation.
                    raw = printable_escpos(raw, json.loads(details), printer)
                    printer = replace(printer, emulation="epson")
                return render(raw, own_size(printer.profile) if size is None else size, printer)
            finally:
                release_memory()

        async def read_and_render() -> Optional[bytes]:
            # The receipt's details say how to read its raw data (ePOS-Print or not).
            return await self.store.with_raw(receipt_id, render_raw)

        def remember(body: Optional[bytes]) -> Optional[bytes]:
            if body is not None and key not in self._cache and len(body) <= self.cache_bytes:
                self._cache[key] = body
                self._cached_bytes += len(body)
                while self._cached_bytes > self.cache_bytes:
                    _, dropped = self._cache.popitem(last=False)  # the least recently used
                    self._cached_bytes -= len(dropped)
            return body

        def answer_waiters(result: Optional[bytes] | Failure) -> Optional[bytes] | Failure:
            for waiter in self._in_flight.pop(key):
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(result)
            return result

        return (Deferred.fromCoroutine(read_and_render())
                .addCallback(remember).addBoth(answer_waiters))

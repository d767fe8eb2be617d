"""
OCR for receipts printed as images (optional, off by default: ``ocr = true``).

Odoo and many drivers send the whole receipt as one raster image, so its ``text`` is empty. Once
such a receipt is committed (no printed text, at least one image), its PNG rendering (the
renderers' cache, on the store's reader threads) is read by Tesseract (Debian's
``tesseract-ocr``), run as a child process through the reactor (``spawnProcess``: no thread is
added), and the text is stored in the receipt's ``ocr_text``; the updated receipt goes out on the
stream as an ``event: receipt.ocr`` and ``q`` searches it.

One receipt is read at a time; the queue holds at most ``queue_size`` receipt ids (past that a
receipt is skipped and counted), so a burst of image receipts never delays ingest nor grows
memory. A run over ``timeout`` seconds is killed. Each run's wall time and CPU time (the child
process's, from ``getrusage``) are logged and summed for ``/metrics``.
"""

from __future__ import annotations

import json
import os
import resource
from collections import deque
from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessDone
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from printerd.store.receipts import Receipt
from printerd.store.service import ReceiptStore

MAX_OUTPUT = 256 * 1024  # characters of text kept from one receipt


def wants_ocr(receipt: Receipt) -> bool:
    """A receipt that printed images and no text."""
    if receipt.text.strip() or '"images"' not in receipt.details:
        return False
    images = json.loads(receipt.details).get("images") or {}
    return bool(images.get("count"))


class OcrFailed(Exception):
    """Tesseract exited with an error, was killed, or could not start."""


class _Tesseract(ProcessProtocol):
    """Feeds one image to tesseract's standard input and collects its standard output."""

    def __init__(self, image: bytes) -> None:
        self.image = image
        self.done: Deferred[str] = Deferred()
        self._out: list[bytes] = []
        self._out_bytes = 0
        self._err = b""

    def connectionMade(self) -> None:
        self.transport.write(self.image)  # type: ignore[union-attr]
        self.transport.closeStdin()  # type: ignore[union-attr]

    def outReceived(self, data: bytes) -> None:
        if self._out_bytes < MAX_OUTPUT:
            self._out.append(data)
            self._out_bytes += len(data)

    def errReceived(self, data: bytes) -> None:
        self._err = (self._err + data)[-2000:]

    def processEnded(self, reason: Failure) -> None:
        if reason.check(ProcessDone):
            text = b"".join(self._out).decode("utf-8", "replace")[:MAX_OUTPUT]
            self.done.callback(text)
        else:
            self.done.errback(OcrFailed(f"{reason.getErrorMessage()}: "
                                        f"{self._err.decode('utf-8', 'replace').strip()}"))


class OcrWorker(Service):
    """Reads image-only receipts one at a time; see the module docstring."""

    log = Logger()
    name = "ocr"

    def __init__(self, reactor: Any, store: ReceiptStore,
                 image: Callable[[int], Deferred[Optional[bytes]]],
                 announce: Callable[[Receipt], None], executable: str,
                 languages: str = "eng", queue_size: int = 100, timeout: float = 60.0) -> None:
        """
        ``reactor`` provides IReactorTime and IReactorProcess; ``image(id)`` gives the
        receipt's PNG (None if it is gone); ``announce`` publishes the updated receipt.
        """
        self.reactor = reactor
        self.store = store
        self.image = image
        self.announce = announce
        self.executable = executable
        self.languages = languages
        self.queue_size = queue_size
        self.timeout = timeout
        self._queue: deque[int] = deque()
        self._working: Optional[Deferred[None]] = None
        self._process: Any = None
        self.read_total = 0
        self.failed_total = 0
        self.skipped_total = 0  # the queue was full
        self.wall_seconds_total = 0.0
        self.cpu_seconds_total = 0.0

    # -- queue -------------------------------------------------------------------------------

    def receipts_committed(self, receipts: list[Receipt]) -> None:
        """Store commit listener: queue the receipts that need reading."""
        for receipt in receipts:
            if wants_ocr(receipt):
                self.enqueue(receipt.id)

    def enqueue(self, receipt_id: int) -> None:
        if len(self._queue) >= self.queue_size:
            self.skipped_total += 1
            self.log.warn("OCR queue full ({size}): receipt {id} is not read",
                          size=self.queue_size, id=receipt_id)
            return
        self._queue.append(receipt_id)
        if self._working is None and self.running:
            self._working = Deferred.fromCoroutine(self._drain())
            self._working.addBoth(self._drained)

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _drained(self, result: object) -> None:
        self._working = None

    async def _drain(self) -> None:
        while self._queue and self.running:
            await self.read(self._queue.popleft())

    # -- one receipt -------------------------------------------------------------------------

    async def read(self, receipt_id: int) -> None:
        """Read one receipt's images and store the text; failures are logged and counted."""
        try:
            png = await self.image(receipt_id)
            if png is None:
                return  # purged meanwhile
            started = self.reactor.seconds()
            cpu_before = _children_cpu()
            text = await self._tesseract(png)
            wall, cpu = self.reactor.seconds() - started, _children_cpu() - cpu_before
            self.wall_seconds_total += wall
            self.cpu_seconds_total += cpu
            receipt = await self.store.set_ocr_text(receipt_id, text.strip())
            self.read_total += 1
            self.log.info("OCR read receipt {id}: {chars} characters in {wall:.2f} s "
                          "({cpu:.2f} s CPU)", id=receipt_id, chars=len(text.strip()),
                          wall=wall, cpu=cpu)
            if receipt is not None:
                self.announce(receipt)
        except Exception:
            self.failed_total += 1
            self.log.failure("OCR of receipt {id} failed", id=receipt_id)

    def _tesseract(self, png: bytes) -> Deferred[str]:
        protocol = _Tesseract(png)
        # "stdin stdout": the image in, the text out; no file is written.
        self._process = self.reactor.spawnProcess(
            protocol, self.executable,
            [self.executable, "stdin", "stdout", "-l", self.languages],
            env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_THREAD_LIMIT": "1"})
        killer = self.reactor.callLater(self.timeout, self._kill)

        def finished(result: Any) -> Any:
            self._process = None
            if killer.active():
                killer.cancel()
            return result

        return protocol.done.addBoth(finished)

    def _kill(self) -> None:
        if self._process is not None:
            self.log.warn("OCR ran over {timeout} s: killing tesseract", timeout=self.timeout)
            try:
                self._process.signalProcess("KILL")
            except OSError:
                pass  # it ended meanwhile

    # -- lifecycle ---------------------------------------------------------------------------

    def stopService(self) -> Optional[Deferred[None]]:
        super().stopService()
        self._queue.clear()
        if self._process is not None:
            self._kill()
        return self._working


def _children_cpu() -> float:
    """User and system CPU seconds of the ended child processes (tesseract, one at a time)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def ocr_figure_rows(worker: OcrWorker) -> tuple[Any, ...]:
    """The OCR worker's rows for the figures table (``/api/stats``, ``/metrics``)."""
    from printerd.metrics import Figure

    return (
        Figure("ocr_read_total", "printerd_ocr_read", "Receipts whose images OCR read",
               "counter", lambda _: worker.read_total),
        Figure("ocr_failed_total", "printerd_ocr_failed", "OCR runs that failed", "counter",
               lambda _: worker.failed_total),
        Figure("ocr_skipped_total", "printerd_ocr_skipped",
               "Receipts not read: the OCR queue was full", "counter",
               lambda _: worker.skipped_total),
        Figure("ocr_queued", "printerd_ocr_queued", "Receipts waiting for OCR", "gauge",
               lambda _: worker.queued),
        Figure("ocr_wall_seconds_total", "printerd_ocr_wall_seconds",
               "Wall time spent in OCR runs", "counter", lambda _: worker.wall_seconds_total),
        Figure("ocr_cpu_seconds_total", "printerd_ocr_cpu_seconds",
               "CPU time of the OCR processes", "counter", lambda _: worker.cpu_seconds_total),
    )

"""
The raw port's job log: one line per job while jobs are few, one line a second while they pour
in (``LogWindow``): the jobs past the window's lines are added up and told in one line when the
window ends (job ids, receipts, bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from printerd.logwindow import LogWindow
from printerd.rawport.protocol import EndedJob


@dataclass
class _Summed:
    """The jobs of one window that were not logged one by one."""

    jobs: int = 0
    first_job: int = 0
    last_job: int = 0
    receipts: int = 0
    received: int = 0  # bytes


class JobLog:
    """Logs ended jobs of one printer; see the module docstring."""

    def __init__(self, clock: IReactorTime, log: Logger, printer: str,
                 lines_per_window: int = 10, window: float = 1.0) -> None:
        self.log = log
        self.printer = printer
        self.window = LogWindow(clock, self._summarize, lines_per_window, window)
        self._summed: Optional[_Summed] = None

    def ended(self, ended: EndedJob) -> None:
        """A job has ended: log its line, or add it to the window's summary."""
        if self.window.admit():
            self.log.info(
                "job {job} printer={printer} peer={peer} receipts={receipts} bytes={bytes} "
                "duration={duration:.3f}s", job=ended.job, printer=self.printer,
                peer=ended.peer, receipts=ended.receipts, bytes=ended.received,
                duration=ended.duration)
            return
        summed = self._summed
        if summed is None:
            summed = self._summed = _Summed(first_job=ended.job)
        summed.jobs += 1
        summed.last_job = ended.job
        summed.receipts += ended.receipts
        summed.received += ended.received

    def flush(self) -> None:
        """Log the summary of the jobs not logged one by one (at the window's end, at stop)."""
        self.window.flush()

    def _summarize(self) -> None:
        summed, self._summed = self._summed, None
        if summed is None:
            return
        self.log.info(
            "{jobs} more jobs printer={printer} (jobs {first_job}-{last_job}) receipts={receipts}"
            " bytes={bytes}: over {lines} jobs in {window}s, the rest are counted in one line",
            jobs=summed.jobs, printer=self.printer, first_job=summed.first_job,
            last_job=summed.last_job, receipts=summed.receipts, bytes=summed.received,
            lines=self.window.lines, window=self.window.window)

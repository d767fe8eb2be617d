"""
The raw port's job log: one line per job while jobs are few, one line a second while they pour in.

A till prints a receipt every few seconds, and an operator wants each job's line.  A storm of
jobs (a busy site, a replaying POS, a stranger on the LAN) would instead spend much of the
reactor's time formatting and writing lines nobody reads, and grow the log without bound.  So
each window of ``window`` seconds logs up to ``lines_per_window`` jobs one by one; the jobs
past that are added up and told in one line when the window ends (job ids, receipts, bytes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

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
        self.clock = clock
        self.log = log
        self.printer = printer
        self.lines_per_window = lines_per_window
        self.window = window
        self._window_ends = 0.0
        self._lines = 0  # jobs logged one by one in this window
        self._summed: Optional[_Summed] = None
        self._summary_call: Optional[IDelayedCall] = None

    def ended(self, ended: EndedJob) -> None:
        """A job has ended: log its line, or add it to the window's summary."""
        now = self.clock.seconds()
        if now >= self._window_ends:
            self._window_ends = now + self.window
            self._lines = 0
        if self._lines < self.lines_per_window:
            self._lines += 1
            self.log.info(
                "job {job} printer={printer} peer={peer} receipts={receipts} bytes={bytes} "
                "duration={duration:.3f}s", job=ended.job, printer=self.printer,
                peer=ended.peer, receipts=ended.receipts, bytes=ended.received,
                duration=ended.duration)
            return
        summed = self._summed
        if summed is None:
            summed = self._summed = _Summed(first_job=ended.job)
            self._summary_call = self.clock.callLater(self._window_ends - now, self.flush)
        summed.jobs += 1
        summed.last_job = ended.job
        summed.receipts += ended.receipts
        summed.received += ended.received

    def flush(self) -> None:
        """Log the summary of the jobs not logged one by one (at the window's end, at stop)."""
        if self._summary_call is not None and self._summary_call.active():
            self._summary_call.cancel()
        self._summary_call = None
        summed, self._summed = self._summed, None
        if summed is None:
            return
        self.log.info(
            "{jobs} more jobs printer={printer} (jobs {first_job}-{last_job}) receipts={receipts}"
            " bytes={bytes}: over {lines} jobs in {window}s, the rest are counted in one line",
            jobs=summed.jobs, printer=self.printer, first_job=summed.first_job,
            last_job=summed.last_job, receipts=summed.receipts, bytes=summed.received,
            lines=self.lines_per_window, window=self.window)

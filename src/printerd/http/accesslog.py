"""
The HTTP access log: Twisted's line per request (combined log format) while requests are few,
one line a second while they pour in (``LogWindow``): the requests past the window's lines are
counted by status and told in one line when the window ends.  A line for every request cost
`/api/recent` a fifth to a third of its rate (2,298-3,101 requests a second against 3,679-3,779
without, 50 clients), and a client in a loop grew the log without bound.
"""

from __future__ import annotations

from collections import Counter

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from printerd.logwindow import LogWindow


class AccessLog:
    """``admit(status)`` for each request: True, write its line; False, counted instead."""

    log = Logger()

    def __init__(self, clock: IReactorTime, lines_per_window: int = 10,
                 window: float = 1.0) -> None:
        self.window = LogWindow(clock, self._summarize, lines_per_window, window)
        self._statuses: Counter[int] = Counter()

    def admit(self, status: int) -> bool:
        if self.window.admit():
            return True
        self._statuses[status] += 1
        return False

    def flush(self) -> None:
        """Log the summary of the requests not logged one by one (at the window's end, at stop)."""
        self.window.flush()

    def _summarize(self) -> None:
        statuses, self._statuses = self._statuses, Counter()
        self.log.info(
            "{requests} more HTTP requests (by status: {statuses}): over {lines} requests in "
            "{window}s, the rest are counted in one line", requests=sum(statuses.values()),
            statuses=", ".join(f"{code} x{n}" for code, n in sorted(statuses.items())),
            lines=self.window.lines, window=self.window.window)

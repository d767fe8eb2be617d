"""
Lines per window: while events are few each has its log line; while they pour in, one line sums
up the rest of each window.

A till prints a receipt every few seconds and a dashboard polls now and then, and an operator
wants each one's line.  A storm (a busy site, a replaying POS, a client in a loop, a stranger on
the LAN or through a tunnel) would instead spend much of the reactor's time formatting and
writing lines nobody reads, and grow the log without bound.  So each window of ``window``
seconds lets up to ``lines`` events have their own line; the rest are counted by their owner,
which writes one summary line when the window ends (``summarize``).
"""

from __future__ import annotations

from collections import Counter
from typing import Callable, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger, LogLevel


KEY_CHARS = 64
KEYS_SHOWN = 5
LINE_VALUE_CHARS = 200  # a value a client chose, in an event's own line


class LogWindow:
    """``admit()`` for each event: True, log its line; False, count it for the summary."""

    def __init__(self, clock: IReactorTime, summarize: Callable[[], None], lines: int = 10,
                 window: float = 1.0) -> None:
        self.clock = clock
        self.summarize = summarize
        self.lines = lines
        self.window = window
        self._window_ends = 0.0
        self._admitted = 0  # events given their own line in this window
        self._summary_call: Optional[IDelayedCall] = None

    def admit(self) -> bool:
        now = self.clock.seconds()
        if now >= self._window_ends:
            self._window_ends = now + self.window
            self._admitted = 0
        if self._admitted < self.lines:
            self._admitted += 1
            return True
        if self._summary_call is None:
            self._summary_call = self.clock.callLater(self._window_ends - now, self.flush)
        return False

    def flush(self) -> None:
        """The window's summary now (at its end, or at stop); nothing when none was counted."""
        if self._summary_call is not None and self._summary_call.active():
            self._summary_call.cancel()
        counted, self._summary_call = self._summary_call is not None, None
        if counted:
            self.summarize()


class CountedLines:
    """
    A ``LogWindow`` whose events past the window's lines are counted under a key (a status, a
    kind, a host) and told in one line: "15 more HTTP requests (by status: 200 x12, 404 x3):
    over 10 HTTP requests in 1.0s, the rest are counted in one line".  A stranger chooses some
    keys (hosts, device names): each is cut to ``KEY_CHARS`` and the line names the
    ``KEYS_SHOWN`` most counted, then how many others.
    """

    def __init__(self, clock: IReactorTime, log: Logger, what: str, key_name: str,
                 level: LogLevel = LogLevel.info, lines: int = 10, window: float = 1.0) -> None:
        self.log = log
        self.what = what
        self.key_name = key_name
        self.level = level
        self.window = LogWindow(clock, self._summarize, lines, window)
        self._counts: Counter[str] = Counter()

    def admit(self, key: object) -> bool:
        """True: log this event's own line; False: it is counted under ``key`` instead."""
        if self.window.admit():
            return True
        self._counts[str(key)[:KEY_CHARS]] += 1
        return False

    def flush(self) -> None:
        """Log the summary of the events not logged one by one (at the window's end, at stop)."""
        self.window.flush()

    def _summarize(self) -> None:
        counts, self._counts = self._counts, Counter()
        shown = sorted(counts.most_common(KEYS_SHOWN))
        others = f", {len(counts) - len(shown)} others" if len(counts) > len(shown) else ""
        self.log.emit(
            self.level, "{n} more {what} (by {key_name}: {counts}): over {lines} {what} in "
            "{window}s, the rest are counted in one line", n=sum(counts.values()),
            what=self.what, key_name=self.key_name, lines=self.window.lines,
            window=self.window.window,
            counts=", ".join(f"{key} x{n}" for key, n in shown) + others)

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

from typing import Callable, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime


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

"""How long to wait before trying again after failures: pure arithmetic, the clock lives elsewhere."""

from __future__ import annotations


class Backoff:
    """
    Delays that grow by ``factor`` after each failure in a row, from ``first`` up to ``cap``
    seconds; a success starts over (as buildbot's ``ExponentialBackoffEngine``).
    """

    def __init__(self, first: float = 1.0, cap: float = 30.0, factor: float = 2.0) -> None:
        if not 0 < first <= cap or factor < 1:
            raise ValueError("need 0 < first <= cap and factor >= 1")
        self.first = first
        self.cap = cap
        self.factor = factor
        self.failures = 0  # in a row

    def failed(self) -> float:
        """One more failure: the seconds to wait before the next try."""
        delay = min(self.cap, self.first * self.factor ** min(self.failures, 64))
        self.failures += 1
        return delay

    def succeeded(self) -> None:
        self.failures = 0

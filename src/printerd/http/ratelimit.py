"""Per-client token buckets for the API: ``rate`` requests a second, bursts up to ``burst``."""

from __future__ import annotations

import math

from twisted.internet.interfaces import IReactorTime

MAX_CLIENTS = 10_000


class RateLimiter:
    """``allow(client)`` spends a token; without one it says how long until the next."""

    def __init__(self, clock: IReactorTime, rate: float, burst: int) -> None:
        self.clock = clock
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, at)
        self.limited_total = 0

    def allow(self, client: str) -> tuple[bool, int]:
        """(allowed, seconds to wait when not)."""
        if self.rate <= 0:
            return True, 0
        now = self.clock.seconds()
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens >= 1:
            self._remember(client, tokens - 1, now)
            return True, 0
        self._remember(client, tokens, now)
        self.limited_total += 1
        return False, max(1, math.ceil((1 - tokens) / self.rate))

    def _remember(self, client: str, tokens: float, now: float) -> None:
        if len(self._buckets) >= MAX_CLIENTS and client not in self._buckets:
            # Forget clients whose buckets have refilled: they are as good as new.
            full = now - self.burst / self.rate
            self._buckets = {c: v for c, v in self._buckets.items() if v[1] > full}
        self._buckets[client] = (tokens, now)

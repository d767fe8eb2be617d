"""When to try a webhook delivery again: pure arithmetic, the clock lives elsewhere."""

from __future__ import annotations

import random
from typing import Optional

# Attempt 1 at once, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts in about a day.
DEFAULT_DELAYS = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_RETRY_AFTER = 36000


class RetrySchedule:
    """Delay before attempt n+1 after n failures, with +-jitter; None once attempts run out."""

    def __init__(self, delays: tuple[float, ...] = DEFAULT_DELAYS, jitter: float = 0.1,
                 rng: Optional[random.Random] = None) -> None:
        self.delays = delays
        self.jitter = jitter
        self.rng = rng or random.Random()

    def delay_after(self, failures: int, retry_after: Optional[float] = None) -> Optional[float]:
        if failures >= len(self.delays):
            return None
        if retry_after is not None:
            # The receiver said when (429 / 503): honour it, within reason.
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        base = self.delays[failures]
        return base * (1 + self.rng.uniform(-self.jitter, self.jitter))


def parse_retry_after(value: Optional[bytes]) -> Optional[float]:
    """Retry-After in delta-seconds (the HTTP-date form is rare for webhooks: ignored)."""
    if value is None:
        return None
    text = value.decode("latin-1").strip()
    return float(text) if text.isdigit() else None

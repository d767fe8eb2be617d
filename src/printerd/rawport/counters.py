"""
One printer's raw-port counters: a plain object that ``/api/stats``, ``/api/printers`` and
``/metrics`` read by attribute name.  The protocol never touches it; the factory (its job sink)
and the admission control count into it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PrinterCounters:
    """Totals since start for one printer's raw port."""

    connections_total: int = 0  # connections accepted from allowed peers
    connections_refused_total: int = 0  # closed at once: the peer is outside raw_allow
    # Closed at once: the port held its share of descriptors, or the peer already had half of
    # them waiting for a slot.
    connections_turned_away_total: int = 0
    connections_expired_total: int = 0  # waited raw_wait_timeout for a slot and were closed
    connections_evicted_total: int = 0  # printed nothing and were ended for a waiting host
    jobs_total: int = 0  # connections that got a slot (each is one job)
    receipts_total: int = 0  # receipts parsed and handed to the store
    bytes_total: int = 0  # job bytes received (up to max_job_bytes per job)
    unknown_commands_total: int = 0  # ESC/POS commands the parser did not know
    status_replies_total: int = 0  # real-time status replies sent
    junk_total: Counter[str] = field(default_factory=Counter)  # other protocols, by kind

"""
How the daemon tunes Python's garbage collector, and why.

printerd holds thousands of objects per open connection for minutes (a stream subscriber's
request, channel, transport, headers...).  CPython's full collection walks every object it
tracks, and runs each time the long-lived objects have grown by a quarter: during a storm of
10,000 stream connections that was eight full collections of up to half a million objects, more
CPU than setting the streams up, and pauses of 0.4-0.6 s in which nothing was accepted (measured
with ``gc.callbacks`` in the daemon; see the README's performance section).  So, once everything
is built, as the daemon starts its services:

- ``gc.freeze()`` moves what start-up made (modules, classes, the service tree: about 100,000
  objects that live as long as the process) out of every later collection;
- the youngest generation's threshold goes from 700 to ``YOUNG_THRESHOLD`` allocations, so that
  the short-lived objects of a request die young instead of being promoted, and the long-lived
  generation grows (and is walked) far less often.

Reference cycles are still found and freed, a little later.  Stopping undoes both.
"""

from __future__ import annotations

import gc
from typing import Optional, Protocol

YOUNG_THRESHOLD = 10_000


class Collector(Protocol):
    """The parts of the ``gc`` module that the tuning uses (tests pass a fake)."""

    def collect(self) -> int: ...

    def freeze(self) -> None: ...

    def unfreeze(self) -> None: ...

    def get_threshold(self) -> tuple[int, int, int]: ...

    def set_threshold(self, threshold0: int, threshold1: int = ..., threshold2: int = ...,
                      /) -> None: ...


class CollectorTuning:
    """``apply()`` as the daemon starts, ``restore()`` when it stops; see the module docstring."""

    def __init__(self, collector: Collector = gc, young: int = YOUNG_THRESHOLD) -> None:
        self.collector = collector
        self.young = young
        self._previous: Optional[tuple[int, int, int]] = None

    def apply(self) -> None:
        if self._previous is not None:
            return
        self._previous = self.collector.get_threshold()
        self.collector.collect()  # what start-up left as garbage is not kept for good
        self.collector.freeze()
        _, older, oldest = self._previous
        self.collector.set_threshold(self.young, older, oldest)

    def restore(self) -> None:
        if self._previous is None:
            return
        self.collector.set_threshold(*self._previous)
        self.collector.unfreeze()
        self._previous = None

"""
Retention: a clock-driven job that purges old receipts and delivered outbox rows.

Deletes in small transactions (``batch`` rows; 100 take about 20 ms of CPU, most of it taking
the receipts out of the search index) so ingest never waits long on the write lock,
keeps receipts whose webhook delivery is still pending, then reclaims space with an
incremental vacuum.  A failing run is logged (``PeriodicJob``); the next one runs as scheduled.
"""

from __future__ import annotations

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from printerd.periodic import PeriodicJob
from printerd.store.receipts import format_time
from printerd.store.service import ReceiptStore

DAY = 86400.0


class Retention(Service):
    """Purges receipts older than ``days``; see the module docstring."""

    log = Logger()
    name = "retention"

    def __init__(self, clock: IReactorTime, store: ReceiptStore, days: float = 30.0,
                 interval: float = 3600.0, batch: int = 100) -> None:
        self.clock = clock
        self.store = store
        self.days = days
        self.batch = batch
        self.deleted_total = 0
        self.runs_total = 0
        # Runs now at start, then every interval; a failed run is logged and counted there.
        self._job = PeriodicJob("retention", clock, interval, self.run)

    @property
    def runs_failed(self) -> int:
        return self._job.failures

    def startService(self) -> None:
        super().startService()
        self._job.startService()

    def stopService(self) -> Deferred[None]:
        """Stop; fires once the run in progress (if any) has finished."""
        super().stopService()
        return self._job.stopService()

    def run(self) -> Deferred[None]:
        """One purge, in short transactions, then a bounded space reclaim."""
        return Deferred.fromCoroutine(self._run())

    async def _run(self) -> None:
        self.runs_total += 1
        cutoff = format_time(self.clock.seconds() - self.days * DAY)
        deleted = 0
        try:
            while True:
                receipts, deliveries = await self.store.purge_batch(cutoff, self.batch)
                deleted += receipts
                if receipts < self.batch and deliveries < self.batch:
                    break
            await self.store.reclaim_space()
        finally:
            self.deleted_total += deleted
            if deleted:
                self.log.info("retention deleted {n} receipts received before {cutoff}",
                              n=deleted, cutoff=cutoff)

"""
One way to run a job every few seconds: a service around a LoopingCall that never dies.

A bare ``LoopingCall`` (or ``TimerService``) stops for good at its first unhandled error, so a
periodic job that fails once would silently never run again.  ``PeriodicJob`` logs a failed
run and runs the next one as scheduled.  Time comes from the injected clock.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure


class PeriodicJob(Service):
    """
    Calls ``job()`` every ``interval`` seconds of ``clock`` while the service runs.

    ``now``: run once at start (else the first run is one interval after start).  A run that
    returns a Deferred is waited for: runs never overlap, and ``stopService`` fires once the
    run in progress (if any) has finished.  A run that raises or fails is logged with the
    service's name; the next run happens on schedule.
    """

    log = Logger()

    def __init__(self, name: str, clock: IReactorTime, interval: float,
                 job: Callable[[], Any], now: bool = True) -> None:
        self.name = name
        self.clock = clock
        self.interval = interval
        self.job = job
        self.now = now
        self.failures = 0  # runs that raised or failed since start
        self._loop: Optional[LoopingCall] = None
        self._stopped: Deferred[Any] = succeed(None)

    def startService(self) -> None:
        super().startService()
        self._loop = LoopingCall(self._run)
        self._loop.clock = self.clock
        self._stopped = self._loop.start(self.interval, now=self.now)

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        return self._stopped.addCallback(lambda _: None)

    def _run(self) -> Deferred[None]:
        return maybeDeferred(self.job).addCallbacks(lambda _: None, self._failed)

    def _failed(self, failure: Failure) -> None:
        self.failures += 1
        self.log.failure("periodic job {name} failed; it runs again in {interval} s", failure,
                         name=self.name, interval=self.interval)

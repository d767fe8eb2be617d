"""PeriodicJob: runs on the injected clock, survives failing runs, waits for a run on stop."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock

from printerd.periodic import PeriodicJob


def test_runs_at_start_and_every_interval_of_the_clock():
    clock, runs = Clock(), []
    job = PeriodicJob("count", clock, 5.0, lambda: runs.append(clock.seconds()))
    job.startService()
    clock.pump([5.0, 5.0, 2.0])
    assert runs == [0.0, 5.0, 10.0]
    job.stopService()
    clock.advance(100)
    assert runs == [0.0, 5.0, 10.0]


def test_without_now_the_first_run_is_one_interval_after_start():
    clock, runs = Clock(), []
    job = PeriodicJob("count", clock, 2.0, lambda: runs.append(clock.seconds()), now=False)
    job.startService()
    assert runs == []
    clock.advance(2.0)
    assert runs == [2.0]


def test_a_run_that_raises_or_fails_is_logged_and_the_next_runs_on_schedule():
    clock, runs = Clock(), []

    def flaky():
        runs.append(clock.seconds())
        if len(runs) == 1:
            raise RuntimeError("disk full")
        if len(runs) == 2:
            return fail(ValueError("bad answer"))

    job = PeriodicJob("flaky", clock, 1.0, flaky)
    job.startService()
    clock.pump([1.0, 1.0, 1.0])
    assert runs == [0.0, 1.0, 2.0, 3.0]
    assert job.failures == 2
    job.stopService()


def test_runs_never_overlap_and_stop_waits_for_the_run_in_progress():
    clock, started = Clock(), []

    def slow() -> Deferred[None]:
        d: Deferred[None] = Deferred()
        started.append(d)
        return d

    job = PeriodicJob("slow", clock, 1.0, slow)
    job.startService()
    clock.advance(5.0)
    assert len(started) == 1  # the first run has not finished: no second one
    stopped = job.stopService()
    assert not stopped.called
    started[0].callback(None)
    assert stopped.called
    clock.advance(5.0)
    assert len(started) == 1

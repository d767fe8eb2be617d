"""The raw port's job log: a line per job while jobs are few, a summary line while they pour in."""

from __future__ import annotations


import pytest_twisted

from twisted.internet.task import Clock

from printerd.rawport.joblog import JobLog
from printerd.rawport.protocol import EndedJob
from support import capturing_logger, connect, hang_up, make_factory


def job_log(lines_per_window: int = 3) -> tuple[JobLog, Clock, list[str]]:
    clock = Clock()
    clock.advance(1_000)
    logger, lines = capturing_logger()
    return JobLog(clock, logger, "kitchen", lines_per_window), clock, lines


def ended(job: int, receipts: int = 2, received: int = 100) -> EndedJob:
    return EndedJob(job=job, peer="10.0.0.7:40000", receipts=receipts, received=received,
                    duration=0.0125)


def test_each_job_has_its_line_while_jobs_are_few():
    log, clock, lines = job_log(lines_per_window=3)
    for job in range(1, 7):
        log.ended(ended(job))
        clock.advance(0.5)  # two jobs a second: under three a second
    assert lines == [f"job {job} printer=kitchen peer=10.0.0.7:40000 receipts=2 bytes=100 "
                     "duration=0.013s" for job in range(1, 7)]
    assert clock.getDelayedCalls() == []


def test_jobs_past_the_window_budget_are_summed_in_one_line_at_the_window_end():
    log, clock, lines = job_log(lines_per_window=3)
    for job in range(1, 101):
        log.ended(ended(job, receipts=job % 3, received=10))
        clock.advance(0.005)  # 100 jobs in half a second
    assert [line.split()[1] for line in lines] == ["1", "2", "3"]
    clock.advance(0.49)
    assert len(lines) == 3  # the window is not over yet
    clock.advance(0.02)
    assert lines[3] == ("97 more jobs printer=kitchen (jobs 4-100) "
                        f"receipts={sum(job % 3 for job in range(4, 101))} bytes=970: "
                        "over 3 jobs in 1.0s, the rest are counted in one line")
    # The next window logs its first jobs one by one again.
    log.ended(ended(101))
    assert lines[4].startswith("job 101 printer=kitchen ")
    assert clock.getDelayedCalls() == []


def test_flush_logs_the_summary_at_once_and_cancels_its_timer():
    log, clock, lines = job_log(lines_per_window=1)
    log.ended(ended(1))
    log.ended(ended(2))
    log.ended(ended(3))
    assert len(lines) == 1 and len(clock.getDelayedCalls()) == 1
    log.flush()
    assert lines[1].startswith("2 more jobs printer=kitchen (jobs 2-3) receipts=4 bytes=200")
    assert clock.getDelayedCalls() == []
    log.flush()
    assert len(lines) == 2


@pytest_twisted.ensureDeferred
async def test_the_factory_logs_its_jobs_through_the_job_log_and_flushes_it_on_drain(store):
    factory, _ = make_factory(store, printer="kitchen")
    factory.job_log.log, lines = capturing_logger()
    for port in range(40000, 40012):
        protocol, _ = connect(factory, port)
        protocol.dataReceived(b"one\n\x1dV\x00")
        hang_up(protocol)
    assert len(lines) == factory.job_log.window.lines == 10
    await factory.drain(5)
    assert lines[10].startswith("2 more jobs printer=kitchen (jobs 11-12) receipts=2 ")


def test_counted_lines_cut_keys_a_stranger_chooses_and_name_only_the_most_counted():
    from printerd.logwindow import KEY_CHARS, KEYS_SHOWN, CountedLines

    clock = Clock()
    logger, lines = capturing_logger()
    counted = CountedLines(clock, logger, "requests", "devid", lines=0)
    for n in range(8):
        for _ in range(n + 1):
            assert not counted.admit(f"device-{n}")
    counted.flush()
    assert lines[0].startswith("36 more requests (by devid: device-3 x4, device-4 x5, device-5 x6,"
                               " device-6 x7, device-7 x8, 3 others): over 0 requests in 1.0s")
    for _ in range(20):
        counted.admit("x" * 10_000)
    counted.flush()
    assert f"(by devid: {'x' * KEY_CHARS} x20)" in lines[1] and KEYS_SHOWN == 5

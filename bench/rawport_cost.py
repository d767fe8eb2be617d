"""
Raw-port scenario: the reactor's Python per print job, without sockets, threads or a database.

The real ``RawPrintFactory``, admission, protocol, parser and job log take the ingest
scenario's jobs (1 and 10 receipts of ~1.5 KB) on a ``StringTransport`` with a fake clock; the
store only counts.  What it leaves out (the kernel's TCP work, the commit and its callbacks, the
stream) is the same for every change of this code, so a figure here moves only when the
per-job path does, and it moves far less with a busy machine than the ingest scenario's.
"""

from __future__ import annotations

import io
import time
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import Logger, textFileLogObserver

from printerd.rawport.factory import RawPrintFactory

from bench.ingest import receipt_bytes


class CountingStore:
    """What the factory asks of the store: job ids and receipts, committed at once."""

    write_error = None

    def __init__(self) -> None:
        self.jobs = 0
        self.receipts = 0

    def next_job_id(self) -> int:
        self.jobs += 1
        return self.jobs

    def add_receipt(self, draft: Any) -> Deferred[None]:
        self.receipts += 1
        return succeed(None)


def cost_per_job(per_connection: int, jobs: int, repeats: int = 5) -> float:
    """Least CPU seconds per job over ``repeats`` rounds of ``jobs`` jobs."""
    clock = Clock()
    clock.advance(1.7e9)
    store = CountingStore()
    factory = RawPrintFactory(clock, store)  # type: ignore[arg-type]
    # Lines are formatted and written as twistd's log file would (to memory here).
    factory.log = Logger(observer=textFileLogObserver(io.StringIO()))
    factory.job_log.log = factory.log
    job = b"".join(receipt_bytes(1, n) for n in range(per_connection))

    def one_round() -> float:
        started = time.process_time()
        for n in range(jobs):
            protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 1024 + n % 60000))
            assert protocol is not None
            protocol.makeConnection(StringTransport())
            protocol.dataReceived(job)
            protocol.connectionLost(None)  # type: ignore[arg-type]
            clock.advance(1 / 3000)  # jobs arrive at 3,000 a second
        return time.process_time() - started

    one_round()  # warm up
    best = min(one_round() for _ in range(repeats))
    assert store.receipts == (repeats + 1) * jobs * per_connection
    return best / jobs


def run(workdir: Any = None) -> dict:
    one = cost_per_job(1, 3000)
    ten = cost_per_job(10, 500)
    return {"us_per_job_1_receipt": round(one * 1e6, 1),
            "us_per_receipt_10_per_job": round(ten / 10 * 1e6, 1)}

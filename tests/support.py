"""
Helpers shared by the tests, in one place: sample jobs, receipts, stores, and ways to wait.

A store runs its database calls on real threads (``make_store``: the store's own tests and the
end-to-end ones) or inline on the calling thread (``make_inline_store``: everything above the
store, driven by a ``task.Clock``; nothing to wait for).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure

from printerd.store.receipts import NewReceipt, format_time
from printerd.store.schema import prepare_database
from printerd.store.service import ReceiptStore
from printerd.store.sqlite import SQLiteConnector
from printerd.store.threads import DatabaseThreads, InlineRunner

T = TypeVar("T")

# Real jobs from public ESC/POS generators, kept in the repository (origin and licence beside them).
SAMPLES = Path(__file__).resolve().parent / "fixtures" / "escpos-samples"


def sample_files() -> list[Path]:
    files = sorted(SAMPLES.glob("*.bin"))
    assert files, f"no ESC/POS samples in {SAMPLES}"
    return files


def draft(text: str = "Table 4\nTotal 9.50", printer: str = "default",
          at: float = 1_700_000_000.0, job: int = 1, raw: Optional[bytes] = None,
          peer: str = "10.0.0.3:7000") -> NewReceipt:
    """A parsed receipt as the raw port hands it to the store."""
    return NewReceipt(printer=printer, peer=peer, received_at=format_time(at), job=job,
                      raw=raw if raw is not None else text.encode() + b"\n\x1dV\x00",
                      text=text, cut="full", truncated=False)


def make_store(path: str, clock: Any = None, readers: int = 2, synchronous: str = "FULL",
               **kwargs: Any) -> ReceiptStore:
    """A store on a real SQLite file and real threads (call startService to start them)."""
    clock = reactor if clock is None else clock
    summary = prepare_database(path, synchronous, kwargs.get("recent_size", 500))
    threads = DatabaseThreads(clock, SQLiteConnector(path, synchronous), readers=readers)
    return ReceiptStore(clock, path, summary, threads, **kwargs)


def make_inline_store(path: str, clock: Clock, **kwargs: Any) -> ReceiptStore:
    """
    A store on a real SQLite file whose calls run at once on the calling thread: its
    Deferreds have fired when they are returned, and a commit happens on ``clock.advance``
    (``commit_delay`` is 0 unless given).
    """
    kwargs.setdefault("commit_delay", 0.0)
    summary = prepare_database(path, "NORMAL", kwargs.get("recent_size", 500))
    return ReceiptStore(clock, path, summary, InlineRunner(SQLiteConnector(path, "NORMAL")),
                        **kwargs)


def result_of(d: Deferred[T]) -> T:
    """The result of a Deferred that has fired already (raises its failure)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, f"{d!r} has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def add_receipts(store: ReceiptStore, clock: Clock, *drafts: NewReceipt) -> list:
    """Add receipts to an inline store and commit them; returns them as stored."""
    pending = [store.add_receipt(d) for d in drafts]
    clock.advance(store.commit_delay)
    return [result_of(d) for d in pending]


def pump(clock: Clock, *stubs: Any, rounds: int = 20) -> None:
    """Run what is due now on the clock and in StubTreq clients until nothing is left."""
    for _ in range(rounds):
        clock.advance(0)
        for stub in stubs:
            stub.flush()


def request_json(stub: Any, url: str, method: str = "GET", clock: Optional[Clock] = None,
                 **kwargs: Any) -> tuple[int, Any]:
    """
    A request through StubTreq to an API over an inline store: (status, decoded JSON body).
    """
    d = stub.request(method, "http://printerd" + url, **kwargs)
    if clock is not None:
        pump(clock, stub)
    stub.flush()
    response = result_of(d)
    body = response.content()
    stub.flush()
    return response.code, json.loads(result_of(body))


async def wait_until(condition: Callable[[], Any], timeout: float = 5.0,
                     interval: float = 0.01) -> Any:
    """
    Wait on the real reactor until ``condition()`` is true; returns its value.  Only for tests
    that run real threads (the store's own and the end-to-end ones).
    """
    for _ in range(int(timeout / interval)):
        value = condition()
        if value:
            return value
        await deferLater(reactor, interval, lambda: None)
    raise AssertionError(f"condition not met within {timeout} s")

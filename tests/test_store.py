"""The receipt store on a real SQLite file: group commit, queries, restart, faults."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import deferLater

from conftest import make_store
from printerd.store.receipts import NewReceipt, ReceiptQuery, format_time
from printerd.store.schema import SCHEMA_VERSION, SchemaTooNew, prepare_database


def draft(text: str, printer: str = "default", job: int = 1, at: float = 1_700_000_000.0,
          raw: bytes | None = None) -> NewReceipt:
    return NewReceipt(printer=printer, peer="127.0.0.1:5000", received_at=format_time(at),
                      job=job, raw=raw if raw is not None else text.encode() + b"\n\x1dV\x00",
                      text=text, cut="full", truncated=False)


@pytest_twisted.ensureDeferred
async def test_group_commit_announces_only_after_commit(store, db_path):
    seen_in_other_connection = []

    def listener(stored):
        # A receipt is announced only once it is visible to every other reader.
        other = sqlite3.connect(db_path)
        (count,) = other.execute("SELECT count(*) FROM receipts").fetchone()
        other.close()
        seen_in_other_connection.append((len(stored), count, stored[-1].id))

    store.on_commit(listener)
    deferreds = [store.add_receipt(draft(f"receipt {i}")) for i in range(200)]
    stored = [await d for d in deferreds]
    assert [r.id for r in stored] == list(range(1, 201))
    assert sum(n for n, _, _ in seen_in_other_connection) == 200
    assert all(count >= last_id for _, count, last_id in seen_in_other_connection)
    # 200 receipts queued at once go in far fewer than 200 transactions.
    assert len(seen_in_other_connection) < 10
    assert store.receipts_total == 200
    assert [r.text for r in list(store.newest)[-2:]] == ["receipt 198", "receipt 199"]
    assert stored[0].sha256 == hashlib.sha256(b"receipt 0\n\x1dV\x00").hexdigest()


@pytest_twisted.ensureDeferred
async def test_queries_filter_and_page(store):
    for i in range(10):
        await store.add_receipt(draft(f"item {i} {'coffee' if i % 3 == 0 else 'tea'}",
                                      printer="bar" if i % 2 else "kitchen", at=1_700_000_000 + i))
    newest = await store.find_receipts(ReceiptQuery(limit=3))
    assert [r.id for r in newest] == [10, 9, 8]
    page2 = await store.find_receipts(ReceiptQuery(limit=3, before=8))
    assert [r.id for r in page2] == [7, 6, 5]
    assert [r.id for r in await store.find_receipts(ReceiptQuery(after=7))] == [10, 9, 8]
    assert {r.printer for r in await store.find_receipts(ReceiptQuery(printer="bar"))} == {"bar"}
    coffee = await store.find_receipts(ReceiptQuery(text="COFFEE"))
    assert [r.id for r in coffee] == [10, 7, 4, 1]
    window = await store.find_receipts(ReceiptQuery(since=format_time(1_700_000_002),
                                                    until=format_time(1_700_000_005)))
    assert [r.id for r in window] == [5, 4, 3]
    # LIKE wildcards in the search text are literal.
    assert await store.find_receipts(ReceiptQuery(text="%")) == []
    assert (await store.get_receipt(3)).text == "item 2 tea"
    assert await store.get_receipt(99) is None
    assert await store.get_raw(3) == b"item 2 tea\n\x1dV\x00"


@pytest_twisted.ensureDeferred
async def test_a_restart_keeps_receipts_ids_and_job_numbers(db_path):
    first = make_store(db_path)
    first.startService()
    assert first.next_job_id() == 1
    await first.add_receipt(draft("kept", job=41))
    await first.stopService()

    second = make_store(db_path)
    second.startService()
    try:
        assert second.receipts_total == 1
        assert [r.text for r in second.newest] == ["kept"]
        assert second.next_job_id() == 42
        new = await second.add_receipt(draft("after restart"))
        assert new.id == 2
    finally:
        await second.stopService()


@pytest_twisted.ensureDeferred
async def test_stop_commits_everything_queued(db_path):
    store = make_store(db_path, commit_delay=10.0)
    store.startService()
    for i in range(5):
        store.add_receipt(draft(f"late {i}"))
    await store.stopService()
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT count(*) FROM receipts").fetchone() == (5,)


async def wait_until(condition, timeout=5.0):
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await deferLater(reactor, 0.01, lambda: None)
    raise AssertionError("condition not met in time")


@pytest_twisted.ensureDeferred
async def test_a_full_disk_loses_nothing_and_recovers_by_itself(db_path):
    store = make_store(db_path, commit_delay=0.001, retry_delay=0.05)
    store.startService()
    try:
        await store.add_receipt(draft("before"))
        pages = await store.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
        await store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
        pending = store.add_receipt(draft("big", raw=b"x" * 200_000))
        await wait_until(lambda: store.write_error is not None)
        assert "full" in store.write_error
        assert not pending.called
        # Receipts already stored stay readable while writing fails.
        assert (await store.get_receipt(1)).text == "before"
        await store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
        stored = await pending
        assert stored.text == "big"
        assert store.write_error is None
    finally:
        await store.stopService()


def test_a_database_newer_than_the_code_refuses_to_open(db_path):
    prepare_database(db_path)
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="newer than this printerd"):
        prepare_database(db_path)


def test_new_database_uses_wal_and_incremental_vacuum(db_path):
    prepare_database(db_path)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)

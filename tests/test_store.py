"""
The receipt store on a real database (each test that takes ``store`` or ``database`` runs on
SQLite and on PostgreSQL): group commit, queries, restart, faults.
"""

from __future__ import annotations

import hashlib
import sqlite3

import threading

import pytest
import pytest_twisted
from twisted.internet import reactor

from printerd.store.receipts import ReceiptQuery, format_time
from printerd.store.engine import SchemaTooNew, open_engine
from printerd.store.postgres import JOB_BLOCK
from printerd.store.sqlite import SQLiteEngine
from printerd.store.sqlite_schema import SCHEMA_VERSION
from printerd.store.threads import DatabaseThreads, InlineRunner
from support import draft, make_store, result_of, wait_until


def count_receipts(database):
    """Receipts in the database, counted on a connection of the test's own."""
    conn = open_engine(database).connect()
    try:
        return conn.execute("SELECT count(*) FROM receipts").fetchone()[0]
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_group_commit_announces_only_after_commit(store, database):
    seen_in_other_connection = []

    def listener(stored):
        # A receipt is announced only once it is visible to every other reader.
        seen_in_other_connection.append((len(stored), count_receipts(database), stored[-1].id))

    store.on_commit(listener)
    deferreds = [store.add_receipt(draft(f"receipt {i}")) for i in range(200)]
    stored = [await d for d in deferreds]
    assert [r.id for r in stored] == list(range(1, 201))
    # On PostgreSQL, announcing is the tailer's read after the commit: it may come later.
    await wait_until(lambda: sum(n for n, _, _ in seen_in_other_connection) == 200)
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
async def test_a_restart_keeps_receipts_ids_and_job_numbers(database):
    first = make_store(database)
    first.startService()
    assert first.next_job_id() == 1
    await first.add_receipt(draft("kept", job=41))
    await first.stopService()

    second = make_store(database)
    second.startService()
    try:
        assert second.receipts_total == 1
        assert [r.text for r in second.newest] == ["kept"]
        # PostgreSQL: each start takes the next block of job numbers (unique across instances).
        assert second.next_job_id() == (JOB_BLOCK + 1 if second.shared else 42)
        new = await second.add_receipt(draft("after restart"))
        assert new.id == 2
    finally:
        await second.stopService()


@pytest_twisted.ensureDeferred
async def test_stop_commits_everything_queued(database):
    store = make_store(database, commit_delay=10.0)
    store.startService()
    for i in range(5):
        store.add_receipt(draft(f"late {i}"))
    await store.stopService()
    assert count_receipts(database) == 5


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
    SQLiteEngine(db_path).prepare()
    conn = sqlite3.connect(db_path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaTooNew, match="newer than this printerd"):
        SQLiteEngine(db_path).prepare()


def test_new_database_uses_wal_and_incremental_vacuum(db_path):
    SQLiteEngine(db_path).prepare()
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA auto_vacuum").fetchone() == (2,)
    assert conn.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)


def thread_and_connection(conn):
    return threading.current_thread().name, id(conn)


@pytest_twisted.ensureDeferred
async def test_database_threads_write_on_one_thread_and_read_on_the_others(db_path):
    SQLiteEngine(db_path).prepare()
    threads = DatabaseThreads(reactor, SQLiteEngine(db_path), readers=3)
    assert threads.thread_count == 4
    threads.start()
    try:
        writes = [await threads.run_write(thread_and_connection) for _ in range(5)]
        reads = [threads.run_read(thread_and_connection) for _ in range(30)]
        reads = [await d for d in reads]
        # One writer thread with one connection, kept from call to call.
        assert len(set(writes)) == 1
        assert "writer" in writes[0][0]
        reader_threads = {name for name, _ in reads}
        assert reader_threads and all("reader" in name for name in reader_threads)
        assert len(reader_threads) <= 3
        # One connection per reader thread.
        assert len({conn for _, conn in reads}) == len(reader_threads)
        assert threading.current_thread().name not in reader_threads | {writes[0][0]}
    finally:
        threads.stop()


class FlakyConnector(SQLiteEngine):
    """Counts connections; a ConnectionError stands for a dropped server connection."""

    opened = 0

    def connect(self):
        self.opened += 1
        return super().connect()

    def is_disconnect(self, error):
        return isinstance(error, ConnectionError)


def test_a_lost_connection_is_opened_again_on_the_next_call(db_path):
    SQLiteEngine(db_path).prepare()
    connector = FlakyConnector(db_path)
    runner = InlineRunner(connector)

    def drop(conn):
        raise ConnectionError("server closed the connection")

    def fails(conn):
        raise ValueError("a statement's own error")

    first = result_of(runner.run_read(thread_and_connection))
    with pytest.raises(ValueError):
        result_of(runner.run_read(fails))
    assert result_of(runner.run_read(thread_and_connection)) == first  # kept
    with pytest.raises(ConnectionError):
        result_of(runner.run_read(drop))
    assert connector.opened == 1
    result_of(runner.run_read(thread_and_connection))
    assert connector.opened == 2  # a new one
    runner.stop()


def test_an_inline_runner_answers_at_once_on_the_calling_thread(db_path):
    SQLiteEngine(db_path).prepare()
    runner = InlineRunner(SQLiteEngine(db_path))
    d = runner.run_write(thread_and_connection)
    assert d.called
    assert result_of(d)[0] == threading.current_thread().name
    runner.stop()


def test_an_inline_store_commits_on_its_clock_and_reads_at_once(inline_store, clock):
    seen = []
    inline_store.on_commit(seen.append)
    first, second = inline_store.add_receipt(draft("a")), inline_store.add_receipt(draft("b"))
    assert not first.called
    clock.advance(0)
    assert [result_of(first).id, result_of(second).id] == [1, 2]
    assert [[r.text for r in group] for group in seen] == [["a", "b"]]  # one group commit
    assert [r.text for r in result_of(inline_store.find_receipts(ReceiptQuery()))] == ["b", "a"]


def test_nothing_above_the_store_knows_the_engine():
    """Only store/ imports a database driver or an engine's module; the rest calls the store."""
    import ast
    from pathlib import Path

    import printerd

    engine_modules = {"sqlite3", "printerd.store.sqlite", "printerd.store.sqlite_schema",
                      "psycopg", "printerd.store.postgres", "printerd.store.postgres_schema"}
    package = Path(printerd.__file__).parent
    offenders = []
    for path in package.rglob("*.py"):
        if path.parent.name == "store":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(package)}: {name}" for name in names
                          if name in engine_modules]
    assert offenders == []

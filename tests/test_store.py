"""
The receipt store on a real database (each test that takes ``store`` or ``database`` runs on
SQLite and on PostgreSQL): group commit, queries, restart, faults.
"""

from __future__ import annotations

import hashlib
import sqlite3

import functools
import itertools
import random
import threading
from datetime import datetime, timezone
from dataclasses import replace
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.task import Clock

from printerd.store.receipts import ReceiptQuery, format_time
from printerd.store.engine import SchemaTooNew, is_postgres_url, open_engine
from printerd.store.postgres import JOB_BLOCK
from printerd.store.sqlite import SQLiteEngine, connect
from printerd.store.sqlite_schema import SCHEMA_VERSION
from printerd.store.threads import DatabaseThreads, InlineRunner
from support import (
    CountingRunner, add_receipts, draft, make_store, result_of, sqlite_database_at_version,
    wait_until,
)


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


# -- search: q, filters and paging -------------------------------------------------------------

WORDS = ["Äpfel", "äpfel", "Здравствуйте", "ЗДРАВ", "ΣΟΦΟΣ", "σοφός", "straße", "STRAẞE",
         "STRASSE", "Crème brûlée", "Total 9.50", "50% off", "a_b", 'say "hi"', "ﬁne", "İstanbul",
         "tea", "TEA", "ab", "x"]


def folded(text: str) -> str:
    from printerd.store.folding import simple_fold

    return "".join(simple_fold(char) for char in text)


def test_q_folds_case_in_every_script_and_keeps_everything_else(inline_store, clock):
    stored = add_receipts(inline_store, clock, *(draft(word) for word in WORDS))
    by_text = {r.text: r.id for r in stored}

    def found(q):
        return {r.text for r in result_of(inline_store.find_receipts(ReceiptQuery(text=q)))}

    assert found("äpfel") == found("ÄPFEL") == {"Äpfel", "äpfel"}
    assert found("здрав") == {"Здравствуйте", "ЗДРАВ"}
    assert found("ΣΤΕ") == set() and found("σοφοσ") == {"ΣΟΦΟΣ"}  # ς is σ; ό keeps its accent
    assert found("straße") == found("STRAẞE") == {"straße", "STRAẞE"}  # ß is not "ss"
    assert found("strasse") == {"STRASSE"}
    assert found("creme") == set() and found("CRÈME") == {"Crème brûlée"}
    assert found("l 9.5") == {"Total 9.50"}  # substrings, spaces included
    assert found("0% o") == {"50% off"} and found("a_b") == {"a_b"} and found("%") == {"50% off"}
    assert found('y "h') == {'say "hi"'}  # quotes are text, not query syntax
    assert found("fine") == set() and found("istanbul") == set()  # no full folding (ﬁ, İ)
    # One or two characters: no trigram holds them; every spelling is looked for.
    assert found("ÄP") == {"Äpfel", "äpfel"}
    assert found("ς") == found("Σ") == {"ΣΟΦΟΣ", "σοφός"}
    assert found("AB") == {"ab"}
    assert found("x") == {"x"}
    assert found("ẞ") == {"straße", "STRAẞE"}
    assert by_text["Äpfel"] < by_text["äpfel"]


def test_search_filters_and_pages_agree_with_a_plain_reading(inline_store, clock):
    """Random receipts, times that sometimes go back, random queries: the store's answer is
    the newest matches of a plain filter over all receipts, and paging covers them once."""
    rng = random.Random(15)
    texts = ["Espresso", "Äpfel", "Борщ", "σουβλάκι", "Tea", "Total", "Brötchen", "ab", "b"]
    at = 1_700_000_000.0
    all_receipts = []
    for went_back in (False, True):  # first in time order; then time goes back once
        drafts = []
        for _ in range(150):
            at += rng.choice([0, 1, 60, 3600])
            drafts.append(draft(" ".join(rng.sample(texts, 3)) + f" #{rng.randint(0, 99)}",
                                printer=rng.choice(["bar", "kitchen", "kitchen", "front"]),
                                at=at))
        all_receipts += add_receipts(inline_store, clock, *drafts)
        ordered = all(a.received_at <= b.received_at
                      for a, b in zip(all_receipts, all_receipts[1:], strict=False))
        assert ordered is not went_back
        for _ in range(100):
            check_query(inline_store, all_receipts, rng)
        at -= 7200


def check_query(store, all_receipts, rng) -> None:
    since = rng.choice([None, *(r.received_at for r in rng.sample(all_receipts, 3))])
    until = rng.choice([None, *(r.received_at for r in rng.sample(all_receipts, 3))])
    query = ReceiptQuery(limit=rng.choice([1, 5, 20]), since=since, until=until,
                         printer=rng.choice([None, "bar", "kitchen"]),
                         text=rng.choice([None, "espresso", "ÄPF", "ОРЩ", "Σ", "B", "#1",
                                          "tea tot", "Ab"]),
                         before=rng.choice([None, rng.randint(1, 320)]),
                         after=rng.choice([None, None, rng.randint(1, 320)]))
    expected = [r for r in reversed(all_receipts)
                if (query.since is None or r.received_at >= query.since)
                and (query.until is None or r.received_at < query.until)
                and (query.printer is None or r.printer == query.printer)
                and (query.text is None or folded(query.text) in folded(r.text))
                and (query.before is None or r.id < query.before)
                and (query.after is None or r.id > query.after)]
    page = result_of(store.find_receipts(query))
    assert [r.id for r in page] == [r.id for r in expected[:query.limit]], query
    # Following "before" from page to page yields every match once, newest first.
    seen, cursor = [], query
    while True:
        page = result_of(store.find_receipts(cursor))
        seen += [r.id for r in page]
        if len(page) < cursor.limit:
            break
        cursor = replace(cursor, before=page[-1].id)
    assert seen == [r.id for r in expected]


def test_search_index_follows_rollbacks_and_retention(db_path, clock):
    import sqlite3 as sqlite

    from support import make_inline_store

    inline_store = make_inline_store(db_path, clock)  # SQLite's FTS5 index
    inline_store.startService()

    add_receipts(inline_store, clock, draft("Tiramisù", at=1_600_000_000), draft("Tiramisù"))
    assert len(result_of(inline_store.find_receipts(ReceiptQuery(text="TIRAMISÙ")))) == 2

    def insert_then_fail(conn):
        from printerd.store.sqlite import write_transaction
        with write_transaction(conn):
            conn.execute("INSERT INTO receipts (printer, peer, received_at, job, bytes, raw, text,"
                         " cut, sha256, truncated) VALUES ('p', 'x', 't', 1, 0, x'', 'Tiramisù',"
                         " 'full', '', 0)")
            raise sqlite.OperationalError("disk I/O error")

    with pytest.raises(sqlite.OperationalError):
        result_of(inline_store.write(insert_then_fail))
    assert len(result_of(inline_store.find_receipts(ReceiptQuery(text="tiramisù")))) == 2
    assert result_of(inline_store.purge_batch(format_time(1_650_000_000), 100)) == (1, 0)
    (left,) = result_of(inline_store.find_receipts(ReceiptQuery(text="tiramisù")))
    assert left.received_at == format_time(1_700_000_000)
    assert result_of(inline_store.read(lambda c: c.execute(
        "SELECT receipts FROM receipt_stats").fetchone())) == (1,)
    # The index holds exactly the stored receipts (FTS5's own consistency check).
    result_of(inline_store.write(lambda c: c.execute(
        "INSERT INTO receipts_text (receipts_text, rank) VALUES ('integrity-check', 1)")))


def test_a_version_5_database_gains_search_and_stats_for_its_receipts(db_path):
    conn = sqlite_database_at_version(db_path, 5)
    for i, (text, at) in enumerate([("Äpfel", 30), ("Birnen", 10), ("Pflaumen", 20)]):
        conn.execute("INSERT INTO receipts (printer, peer, received_at, job, bytes, raw, text,"
                     " cut, sha256, truncated) VALUES ('p', 'x', ?, ?, 0, x'', ?, 'full', '', 0)",
                     (format_time(1_700_000_000 + at), 7 + i, text))
    conn.close()

    summary = SQLiteEngine(db_path).prepare()
    assert (summary.receipts, summary.last_job) == (3, 9)
    conn = connect(db_path)
    assert conn.execute("SELECT receipts, ordered_from_id FROM receipt_stats").fetchone() == (3, 2)
    engine = SQLiteEngine(db_path)
    assert [r.text for r in engine.find_receipts(conn, ReceiptQuery(text="ÄPF"))] == ["Äpfel"]
    # Time went back at id 2, and receipt 1 is still stored: windows are read as predicates.
    window = ReceiptQuery(since=format_time(1_700_000_015), until=format_time(1_700_000_031))
    assert [r.id for r in engine.find_receipts(conn, window)] == [3, 1]
    conn.close()


class SlowClock(Clock):
    """A clock that moves ``step`` seconds each time it is read: time runs out for a search."""

    step = 0.0

    def seconds(self) -> float:
        self.rightNow += self.step
        return self.rightNow


def many_receipts(store, clock) -> list:
    """
    300 receipts that hold "abcabd" and "ù " among 400; the other 100 hold every trigram of
    "abcabd" but not "abcabd" (so the index names them, and reading them shows they are not).
    """
    stored = add_receipts(store, clock, *(
        draft(f"Tiramisù {i} abcabd" if i % 4 else f"Espresso {i} abca xcabd") for i in range(400)))
    return [r.id for r in reversed(stored) if "Tiramisù" in r.text]


def test_a_search_that_runs_out_of_time_says_where_to_go_on(inline_store, clock, database):
    expected = many_receipts(inline_store, clock)
    if is_postgres_url(database):
        from printerd.store.postgres import PostgresEngine

        engine: Any = PostgresEngine(database, search_range=50)  # 400 receipts in 8 ranges
    else:
        engine = SQLiteEngine(database)
    conn = engine.connect()
    for text in ("ABCABD", "Ù "):  # the index, and the text read for a short one
        unhurried = engine.find_receipts(conn, ReceiptQuery(text=text, limit=500))
        assert [r.id for r in unhurried] == expected and unhurried.resume_before is None
        slow_now = functools.partial(next, map((0.03).__mul__, itertools.count()))
        seen, before, cut_short = [], None, 0
        while True:
            page = engine.find_receipts(conn, ReceiptQuery(text=text, limit=200, before=before),
                                        now=slow_now, budget=0.05)
            seen += [r.id for r in page]
            if len(page) == 200:
                before = page[-1].id
            elif page.resume_before is not None:
                assert page.resume_before <= min([r.id for r in page], default=before or 10**9)
                before, cut_short = page.resume_before, cut_short + 1
            else:
                break
        assert seen == expected  # every match once, newest first, over several short answers
        assert cut_short >= 1
    conn.close()


def test_the_api_links_a_search_that_ran_out_of_time_to_where_it_stopped(db_path):
    from support import Api, make_inline_store, request_json

    clock = SlowClock()
    clock.advance(1_700_000_000)
    store = make_inline_store(db_path, clock)
    store.startService()
    expected = many_receipts(store, clock)
    api = Api(store, clock)
    clock.step = 0.03
    seen, url, short_pages = [], "/api/receipts?q=abcabd&limit=200", 0
    while url:
        code, body = request_json(api.stub, url)
        assert code == 200
        seen += [r["id"] for r in body["receipts"]]
        short_pages += len(body["receipts"]) < 200 and body["next"] is not None
        url = body["next"]
    assert seen == expected and short_pages >= 1
    clock.step = 0
    store.stopService()


def test_q_finds_the_text_ocr_read_once_it_is_stored(inline_store, clock, database):
    receipt, _ = add_receipts(inline_store, clock, draft("[image]"), draft("Espresso"))

    def found(q):
        return [r.id for r in result_of(inline_store.find_receipts(ReceiptQuery(text=q)))]

    assert found("KÄSEKUCHEN") == []
    result_of(inline_store.set_ocr_text(receipt.id, "Käsekuchen 4,20"))
    assert found("KÄSEKUCHEN") == found("äs") == [receipt.id]  # the index, and a short read
    result_of(inline_store.set_ocr_text(receipt.id, "Apfelstrudel"))  # read again: replaced
    assert found("käsekuchen") == [] and found("STRUDEL") == [receipt.id]
    if not is_postgres_url(database):  # the FTS5 index holds what is stored, no more
        result_of(inline_store.write(lambda c: c.execute(
            "INSERT INTO receipts_text (receipts_text, rank) VALUES ('integrity-check', 1)")))


def test_a_page_read_again_reuses_its_receipts_until_their_ocr_text_changes(inline_store, clock,
                                                                             database):
    older, _ = add_receipts(inline_store, clock, draft("Espresso"), draft("[image]"))
    first = result_of(inline_store.find_receipts(ReceiptQuery()))
    first_json = [r.json_bytes for r in first]
    again = result_of(inline_store.find_receipts(ReceiptQuery(before=first[0].id + 1)))
    assert all(a is b for a, b in zip(first, again, strict=True))  # JSON encoded once
    # Another instance stores what OCR read: this store's copy no longer stands for the row.
    engine = open_engine(database)
    conn = engine.connect()
    try:
        engine.set_ocr_text(conn, older.id, "Käsekuchen")
    finally:
        conn.close()
    third = result_of(inline_store.find_receipts(ReceiptQuery()))
    assert [r.ocr_text for r in third] == [None, "Käsekuchen"]
    assert b'"ocr_text":"K\\u00e4sekuchen"' in third[1].json_bytes and third[0] is first[0]
    assert first_json[1] != third[1].json_bytes


def test_a_page_of_the_newest_comes_from_memory_and_equals_the_databases(db_path, clock):
    from printerd.store.service import ReceiptStore

    engine = SQLiteEngine(db_path)
    runner = CountingRunner(engine)
    store = ReceiptStore(clock, engine, engine.prepare(20), runner, commit_delay=0.0,
                         recent_size=20)
    store.startService()
    add_receipts(store, clock, *(draft(f"receipt {i}", printer=("bar", "kitchen")[i % 2])
                                 for i in range(1, 31)))
    conn = engine.connect()
    for query, from_memory in [
            (ReceiptQuery(limit=10), True),
            (ReceiptQuery(limit=5, before=25), True),
            (ReceiptQuery(limit=5, printer="bar"), True),
            (ReceiptQuery(after=25), True),  # ids 26-30: the cache reaches below 26
            (ReceiptQuery(limit=50), False),  # 30 stored, 20 in memory
            (ReceiptQuery(limit=5, before=5), False),
            (ReceiptQuery(limit=12, printer="kitchen"), False),  # 10 of them in memory
            (ReceiptQuery(limit=5, text="receipt 2"), False)]:
        reads = runner.reads
        page = result_of(store.find_receipts(query))
        assert [r.id for r in page] == [r.id for r in engine.find_receipts(conn, query)], query
        assert (runner.reads == reads) == from_memory, query
    conn.close()


def test_times_are_formatted_as_strftime_does_across_seconds_and_rounding():
    # format_time keeps each second's text: consecutive and far-apart times, times that
    # round up into the next second and times before 1970 must all read as strftime's.
    rng = random.Random(19)
    times = [1_764_450_000 + i / 7 for i in range(50)]
    times += [1_764_450_000.9999996, 1_764_450_001.0, 0.0, -1.5, 86_399.9999999]
    times += [rng.uniform(-2e9, 4e9) for _ in range(2_000)]
    for seconds in times:
        expected = datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        assert format_time(seconds) == expected, seconds


def test_a_large_batch_of_printed_and_forwarded_receipts_commits_in_order(database):
    # The SQLite writer inserts printed receipts many rows to a statement; forwarded ones go
    # one by one (a retry is the receipt stored before).  Ids, rows and deliveries must agree
    # with inserting one receipt at a time, on each engine.
    engine = open_engine(database)
    engine.prepare()
    conn = engine.connect()
    try:
        first = engine.insert_receipts(conn, [replace(draft("sent before"), origin="site:1")],
                                       lambda printer: ["cloud"])
        drafts = [draft(f"printed {i}", printer=("bar" if i % 3 else "default"), job=i)
                  for i in range(300)]
        drafts[150:150] = [replace(draft("forwarded"), origin="site:2"),
                           replace(draft("sent again"), origin="site:1")]
        stored = engine.insert_receipts(
            conn, drafts, lambda printer: ["cloud", "crm"] if printer == "bar" else ["cloud"])
        assert [r.text for r in stored] == [d.text for d in drafts[:151]] \
            + ["sent before"] + [d.text for d in drafts[152:]]
        new = [r for r in stored if r.text != "sent before"]
        ids = [r.id for r in new]
        assert ids == sorted(set(ids)) and ids[0] > first[0].id
        assert stored[151] == first[0]
        for receipt in new:
            assert engine.get_receipt(conn, receipt.id) == receipt
        wanted = {(first[0].id, "cloud")} | {
            (r.id, target) for r in new
            for target in (["cloud", "crm"] if r.printer == "bar" else ["cloud"])}
        rows = conn.execute("SELECT receipt_id, target FROM deliveries").fetchall()
        assert sorted(tuple(row) for row in rows) == sorted(wanted)
    finally:
        conn.close()

def test_the_start_up_count_of_receipts_follows_inserts_retries_and_purges(database,
                                                                           inline_store, clock):
    """
    Start-up reads a count kept as receipts come and go (SQLite: triggers; PostgreSQL: the
    engine, once per transaction) instead of counting them: it must equal count(*).
    """
    def counts() -> tuple[int, int]:
        return open_engine(database).prepare().receipts, count_receipts(database)

    assert counts() == (0, 0)
    add_receipts(inline_store, clock, *(draft(f"old {i}", at=1_600_000_000 + i)
                                        for i in range(5)))
    forwarded = replace(draft("forwarded"), origin="site:1")
    add_receipts(inline_store, clock, forwarded, draft("new"))
    add_receipts(inline_store, clock, forwarded, draft("newer"))  # sent again: stored once
    assert counts() == (8, 8)
    assert result_of(inline_store.purge_batch(format_time(1_650_000_000), 2)) == (2, 0)
    assert counts() == (6, 6)
    assert result_of(inline_store.purge_batch(format_time(1_650_000_000), 100)) == (3, 0)
    assert counts() == (3, 3)


def test_a_batch_fits_a_sqlite_that_binds_few_parameters(db_path):
    # Older SQLite libraries bind at most 999 parameters to a statement; a group commit must
    # still go in, in smaller statements.
    engine = SQLiteEngine(db_path)
    engine.prepare()
    conn = engine.connect()
    try:
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # 8 rows of 12 values
        stored = engine.insert_receipts(conn, [draft(f"r{i}", job=i) for i in range(300)],
                                        lambda printer: ["cloud"])
        assert [engine.get_receipt(conn, r.id) for r in stored] == stored
        (deliveries,) = conn.execute("SELECT count(*) FROM deliveries").fetchone()
        assert deliveries == 300
    finally:
        conn.close()


def test_retention_forgets_from_memory_exactly_the_receipts_it_deleted(database, inline_store,
                                                                        clock):
    """
    The page of the newest receipts comes from memory: after a purge it must list what the
    database holds, also when the clock stepped back between two receipts (received_at then
    goes down as ids go up) and when a pending delivery keeps an old receipt.
    """
    old, stepped_back, recent = 1_600_000_000, 1_500_000_000, 1_700_000_000
    add_receipts(inline_store, clock, draft("new", at=recent), draft("old", at=old),
                 draft("older, after the clock stepped back", at=stepped_back),
                 draft("new again", at=recent))
    kept = add_receipts(inline_store, clock, draft("old, its webhook pending", at=old))
    result_of(inline_store.write(lambda conn: conn.execute(
        "INSERT INTO deliveries (receipt_id, target, state, attempts, next_attempt_at)"
        f" VALUES ({kept[0].id}, 'cloud', 'pending', 0, 0)")))

    assert result_of(inline_store.purge_batch(format_time(1_650_000_000), 100)) == (2, 0)
    # A page the memory cache fills is served from it; a search always reads the database.
    in_memory = [r.text for r in result_of(inline_store.find_receipts(ReceiptQuery(limit=3)))]
    in_database = [r.text for r in result_of(inline_store.find_receipts(ReceiptQuery(
        limit=3, text="e")))]
    assert in_memory == in_database == ["old, its webhook pending", "new again", "new"]

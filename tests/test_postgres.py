"""
What only the PostgreSQL engine does: migrations under a lock, ids committed in id order by
several writers, the tailer's LISTEN/NOTIFY and catch-up, Unicode search, retention on one
instance at a time, clear start-up errors.  Each test has a database of its own on the server
``PRINTERD_TEST_POSTGRES`` names (skipped without one; CI requires it).
"""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.task import Clock

from printerd.store.engine import DatabaseUnavailable, SchemaTooNew, open_engine
from printerd.store.postgres import (
    COMMIT_LOCK, RETENTION_LOCK, PostgresEngine, folds_every_script, migrate,
)
from printerd.store.postgres_schema import MIGRATIONS, SCHEMA_VERSION
from printerd.store.receipts import ReceiptQuery
from printerd.store.tailer import PostgresNotifications, Tailer
from support import (
    Api, draft, make_lagging_store, make_store, postgres_database, result_of, wait_until,
    with_database,
)


@pytest.fixture
def url():
    """A fresh, migrated database of the test's own."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def blank_url():
    """A fresh, empty database (no printerd schema yet)."""
    with postgres_database(migrated=False) as url:
        yield url


def test_a_postgresql_url_picks_the_postgresql_engine_and_anything_else_sqlite(tmp_path):
    assert open_engine("postgresql://u@/db?host=/tmp/x").name == "postgresql"
    assert open_engine("postgres://u:secret@db.example/printerd?sslmode=require").name \
        == "postgresql"
    assert open_engine(str(tmp_path / "printerd.sqlite3")).name == "sqlite"


def test_a_bad_url_is_refused_without_showing_its_password():
    with pytest.raises(DatabaseUnavailable) as raised:
        open_engine("postgresql://printerd:hunter2@db/printerd?ssl_mode=require")
    message = str(raised.value)
    assert "not a valid PostgreSQL URL" in message and "ssl_mode" in message
    assert "hunter2" not in message and "printerd:***@db" in message


def test_a_server_that_does_not_answer_fails_prepare_with_one_clear_line(tmp_path):
    # A socket folder with no server in it: nothing answers there.
    engine = open_engine(f"postgresql://printerd:hunter2@/printerd?host={tmp_path}")
    with pytest.raises(DatabaseUnavailable) as raised:
        engine.prepare()
    message = str(raised.value)
    assert message.startswith("cannot connect to postgresql://printerd:***@/printerd")
    assert "\n" not in message and "hunter2" not in message


def test_two_instances_starting_together_migrate_once(blank_url):
    results: list[object] = []

    def start() -> None:
        try:
            results.append(PostgresEngine(blank_url).prepare())
        except Exception as e:  # the assertion below shows it
            results.append(e)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [type(r).__name__ for r in results] == ["StoreSummary"] * 4
    with psycopg.connect(blank_url) as conn:
        assert conn.execute("SELECT version FROM printerd_schema").fetchall() \
            == [(SCHEMA_VERSION,)]


def test_a_database_newer_than_the_code_refuses_to_open(url):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE printerd_schema SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNew, match="newer than this printerd"):
        PostgresEngine(url).prepare()


def test_migrating_twice_changes_nothing(url):
    with psycopg.connect(url, autocommit=True) as conn:
        assert migrate(conn) == SCHEMA_VERSION


def test_each_start_takes_its_own_block_of_job_numbers(url):
    first, second = PostgresEngine(url).prepare(), PostgresEngine(url).prepare()
    assert first.last_job == 0
    assert second.last_job == 1_000_000_000


def test_four_writers_commit_in_id_order_and_a_tailer_misses_nothing(url):
    """
    Four instances' writers insert at once while a tailer reads ``id > last`` in a loop, as
    the stream and the tailer do: every id it ever sees must come after every id it saw
    before, and in the end it has seen every receipt.  Without COMMIT_LOCK a third of them
    were missed here (ids handed out before commit become visible out of order).
    """
    writers, batches, batch = 4, 30, 20
    committed: list[int] = []
    done = threading.Event()
    seen: list[int] = []
    errors: list[BaseException] = []

    def write(number: int) -> None:
        engine = PostgresEngine(url, f"writer{number}")
        try:
            with engine.connect() as conn:
                for b in range(batches):
                    stored = engine.insert_receipts(conn, [
                        draft(f"w{number} b{b} r{i}", job=number) for i in range(batch)])
                    committed.extend(r.id for r in stored)
        except BaseException as e:
            errors.append(e)

    def tail() -> None:
        engine = PostgresEngine(url, "tailer")
        last = 0
        with engine.connect() as conn:
            while True:
                finished = done.is_set()
                page = engine.receipts_after(conn, last, 1000)
                seen.extend(r.id for r in page)
                if page:
                    last = page[-1].id
                elif finished:
                    return

    tailer = threading.Thread(target=tail)
    tailer.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    tailer.join()
    assert errors == []
    assert len(committed) == writers * batches * batch
    missed = set(committed) - set(seen)
    assert len(missed) == 0
    assert seen == sorted(seen) and len(seen) == len(set(seen))


def test_search_is_case_insensitive_in_every_script(url):
    engine = PostgresEngine(url)
    engine.prepare()
    texts = ["Äpfel 2 kg", "Здравствуйте", "ΣΟΦΊΑ", "Straße", "tea 50% off", "plain"]
    with engine.connect() as conn:
        assert folds_every_script(conn)
        engine.insert_receipts(conn, [draft(text) for text in texts])
        found = {q: [r.text for r in engine.find_receipts(conn, ReceiptQuery(text=q), lambda: 0.0, 1.0)]
                 for q in ("äpfel", "ЗДРАВ", "σοφία", "STRASSE", "straSSe", "STRAẞE", "50%",
                           "0_", "%")}
        # The trigram index serves the search (the planner may still pick a scan on a
        # table this small, so it is asked to prefer the index).
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in conn.execute(
            "EXPLAIN SELECT id FROM receipts WHERE printerd_fold(text) LIKE"
            " printerd_fold('%здрав%')"))
    assert found == {"äpfel": ["Äpfel 2 kg"], "ЗДРАВ": ["Здравствуйте"], "σοφία": ["ΣΟΦΊΑ"],
                     # lower() maps letters one to one; ß does not become ss
                     "STRASSE": [], "straSSe": [], "STRAẞE": ["Straße"],
                     "50%": ["tea 50% off"], "0_": [], "%": ["tea 50% off"]}
    assert "receipts_text_trigrams" in plan


def test_start_up_reads_the_kept_count_of_receipts_instead_of_counting_them(url):
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE receipt_stats SET receipts = 12345")
    assert PostgresEngine(url).prepare().receipts == 12345


def test_the_count_of_receipts_changes_once_per_transaction_not_once_per_receipt(url):
    """A group commit or a retention batch updates the one row once, whatever its size."""
    engine = PostgresEngine(url)

    def updates(conn: psycopg.Connection) -> int:
        (updated,) = conn.execute("SELECT n_tup_upd FROM pg_stat_xact_user_tables"
                                  " WHERE relname = 'receipt_stats'").fetchone()
        return updated

    with engine.connect() as conn, conn.transaction():  # the engine's own become savepoints
        stored = engine.insert_receipts(conn, [draft(f"r{i}", at=1_600_000_000)
                                               for i in range(50)])
        assert updates(conn) == 1
        stored += engine.insert_receipts(conn, [draft("one more")])
        assert updates(conn) == 2
        assert engine.purge_batch(conn, "2030-01-01", 100) == ([r.id for r in stored], 0)
        assert updates(conn) == 3
        assert engine.purge_batch(conn, "2030-01-01", 100) == ([], 0)  # nothing to change
        assert updates(conn) == 3
        assert conn.execute("SELECT receipts FROM receipt_stats").fetchone() == (0,)


def test_migration_4_counts_the_receipts_a_database_holds_already(blank_url):
    with psycopg.connect(blank_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE printerd_schema (version integer NOT NULL)")
        for migration in MIGRATIONS[:3]:
            conn.execute(migration)
        conn.execute("INSERT INTO printerd_schema (version) VALUES (3)")
        conn.execute("INSERT INTO receipts (printer, peer, received_at, job, bytes, raw, text, cut,"
                     " sha256, truncated) SELECT 'p', 'x', '2023-11-14T22:13:20.000000Z', n, 0,"
                     " '', 'r' || n, 'full', '', false FROM generate_series(1, 250) n")
    engine = PostgresEngine(blank_url)
    assert engine.prepare().receipts == 250
    with engine.connect() as conn:
        assert conn.execute("SELECT version FROM printerd_schema").fetchone() == (SCHEMA_VERSION,)
        engine.insert_receipts(conn, [draft("after the upgrade")])
        assert conn.execute("SELECT count(*) FROM receipts").fetchone() == (251,)
    assert engine.prepare().receipts == 251


def test_retention_purges_on_one_instance_at_a_time(url):
    engine = PostgresEngine(url)
    engine.prepare()
    with engine.connect() as conn, engine.connect() as other:
        (old,) = engine.insert_receipts(conn, [draft("old", at=1_000_000_000)])
        with other.transaction():
            other.execute("SELECT pg_advisory_xact_lock(%s)", (RETENTION_LOCK,))
            assert engine.purge_batch(conn, "2030-01-01", 100) == ([], 0)
        assert engine.purge_batch(conn, "2030-01-01", 100) == ([old.id], 0)


def test_a_commit_waits_for_the_commit_lock(url):
    """The lock is what orders commits: held elsewhere, an insert waits for it."""
    engine = PostgresEngine(url)
    with engine.connect() as conn, engine.connect() as holder:
        holder.execute("SET lock_timeout = '10s'")
        conn.execute("SET lock_timeout = '200ms'")
        with holder.transaction():
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (COMMIT_LOCK,))
            with pytest.raises(psycopg.errors.LockNotAvailable):
                engine.insert_receipts(conn, [draft("waits")])
        assert [r.text for r in engine.insert_receipts(conn, [draft("then goes")])] \
            == ["then goes"]


# -- the tailer, on the real reactor --------------------------------------------------------

@pytest_twisted.async_yield_fixture()
async def tailed(url):
    """A started store with its tailer (listening), and a second instance's engine."""
    store = make_store(url, commit_delay=0.001)
    store.startService()
    tailer = Tailer(reactor, store, PostgresNotifications(reactor, store, store._engine),
                    interval=60)
    tailer.startService()
    await wait_until(lambda: tailer.listening)
    await store.catch_up()  # the first read is over: from now on notifications drive it
    yield store, tailer, PostgresEngine(url, "other")
    await tailer.stopService()
    await store.stopService()


@pytest_twisted.ensureDeferred
async def test_another_instances_commits_are_announced_in_order_on_notify(tailed):
    store, tailer, other = tailed
    announced: list[int] = []
    store.on_commit(lambda receipts: announced.extend(r.id for r in receipts))
    latencies: list[float] = []
    tailer.on_announce_latency(latencies.append)
    with other.connect() as conn:
        for i in range(5):
            other.insert_receipts(conn, [draft(f"from B {i}.{j}") for j in range(3)])
    # The timer runs once a minute: only the notifications can bring these in time.
    await wait_until(lambda: len(announced) == 15)
    assert announced == list(range(1, 16))
    assert tailer.notifications_total >= 1
    assert latencies and all(0 <= s < 5 for s in latencies)
    mine = await store.add_receipt(draft("from A"))
    await wait_until(lambda: len(announced) == 16)
    assert announced[-1] == mine.id
    assert store.receipts_total == 16


@pytest_twisted.ensureDeferred
async def test_a_dropped_listen_connection_is_reopened_and_nothing_is_missed(tailed):
    store, tailer, other = tailed
    announced: list[int] = []
    store.on_commit(lambda receipts: announced.extend(r.id for r in receipts))
    with other.connect() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE query LIKE 'LISTEN%%' AND datname = current_database()")
        # Committed while the tailer is not listening: its catch-up on reconnect reads it.
        other.insert_receipts(conn, [draft("while deaf")])
    await wait_until(lambda: announced == [1], timeout=10)
    await wait_until(lambda: tailer.listening and tailer.reconnects_total == 1)
    with other.connect() as conn:
        other.insert_receipts(conn, [draft("after")])
    await wait_until(lambda: announced == [1, 2])


TAILER_FIGURES = ("notifications", "catch_up_reads", "receipts_from_others", "reconnects")


@pytest_twisted.ensureDeferred
async def test_the_tailers_figures_count_what_another_instance_commits(tailed):
    """/api/stats and /metrics (one reading of FIGURES) show the tailer at work, alike."""
    store, tailer, other = tailed
    figures = Api(store, Clock(), tailer=tailer).figures

    async def read() -> dict[str, int]:
        reading = await figures.read()
        stats = figures.stats(reading)
        metrics = {sample.name: sample.value
                   for family in text_string_to_metric_families(
                       figures.prometheus(reading).decode()) for sample in family.samples}
        found = {name: stats[f"tailer_{name}_total"] for name in TAILER_FIGURES}
        assert found == {name: metrics[f"printerd_tailer_{name}_total"]
                         for name in TAILER_FIGURES}
        return found

    before = await read()
    assert before["receipts_from_others"] == before["reconnects"] == 0
    with other.connect() as conn:
        for i in range(3):
            other.insert_receipts(conn, [draft(f"from B {i}.{j}") for j in range(4)])
    mine = await store.add_receipt(draft("from A"))
    # Four commits, four notifications (the timer runs once a minute: not it).
    await wait_until(lambda: store.last_announced == mine.id
                     and tailer.notifications_total == before["notifications"] + 4)
    after = await read()
    assert after["notifications"] == before["notifications"] + 4
    assert after["receipts_from_others"] == 12  # B's, not A's own
    assert after["catch_up_reads"] >= before["catch_up_reads"] + 2
    assert after["reconnects"] == 0

    with other.connect() as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                     " WHERE query LIKE 'LISTEN%%' AND datname = current_database()")
    await wait_until(lambda: tailer.listening and tailer.reconnects_total == 1, timeout=10)
    assert (await read())["reconnects"] == 1


def test_a_commit_of_its_own_announced_before_its_answer_is_not_counted_as_anothers(url):
    """
    A catch-up read (on a notification) can see this instance's commit before the writer's
    answer arrives: whose receipts it announced is settled when the answer does.
    """
    clock = Clock()
    store = make_lagging_store(url, clock, read_lag=0, write_lag=1)
    store.startService()
    other = PostgresEngine(url, "other")
    with other.connect() as conn:
        other.insert_receipts(conn, [draft("B1"), draft("B2")])
    mine = store.add_receipt(draft("A"))
    clock.advance(0)  # A commits now; the writer's answer comes a second later
    store.catch_up()
    clock.advance(0)
    assert store.last_announced == 3  # B1, B2 and A announced, A's answer not in yet
    assert store.announced_from_others_total == 0  # whose they are: not known yet
    clock.advance(1)
    assert result_of(mine).id == 3
    assert store.announced_from_others_total == 2
    with other.connect() as conn:
        other.insert_receipts(conn, [draft("B3")])
    store.catch_up()
    clock.advance(0)
    assert store.announced_from_others_total == 3
    assert store.committed_total == 1
    store.stopService()
    clock.advance(1)


def test_the_server_clock_rides_on_each_notification(url):
    engine = PostgresEngine(url)
    with engine.connect() as conn, engine.connect() as listener:
        listener.execute("LISTEN printerd_receipts")
        engine.insert_receipts(conn, [draft("a"), draft("b")])
        (note,) = list(listener.notifies(timeout=5, stop_after=1))
    newest, sent_at = note.payload.split(" ")
    assert newest == "2"
    assert abs(float(sent_at) - time.time()) < 60


def test_the_test_helpers_name_a_database_of_their_own_in_the_url():
    assert with_database("postgresql://u@/postgres?host=/tmp/x", "other") \
        == "postgresql://u@/other?host=/tmp/x"


def test_health_is_a_round_trip_and_fails_while_the_server_does_not_answer(url, clock):
    """Nothing is being written, yet health notices the lost connection (and the reopened one)."""
    from support import Api, make_inline_store, request_json

    store = make_inline_store(url, clock)
    store.startService()
    try:
        stub = Api(store, clock).stub
        assert request_json(stub, "/api/health")[0] == 200
        result_of(store.read(lambda conn: conn.close()))  # as when the server went away
        code, body = request_json(stub, "/api/health")
        assert code == 503
        assert body["checks"]["database"].startswith("does not answer: ")
        result_of(store.read(lambda conn: conn.close()))
        assert request_json(stub, "/readyz")[0] == 503
        # The reader thread opened a new connection on its next call.
        assert request_json(stub, "/api/health")[0] == 200
        code, stats = request_json(stub, "/api/stats")
        assert stats["instance"]["engine"] == "postgresql"
        assert stats["db_bytes"] > 1_000_000  # pg_database_size, measured on a reader
    finally:
        store.stopService()


def test_copy_db_moves_a_sqlite_database_keeping_ids(db_path, url, clock, capsys):
    from printerd.cli import main
    from support import add_receipts, make_inline_store

    site = make_inline_store(db_path, clock, outbox=lambda printer: ["cloud"])
    site.startService()
    stored = add_receipts(site, clock, *(
        draft(f"receipt {i}", raw=b"\x1b@receipt %d\n\x00\xff\x1dV\x00" % i, job=i)
        for i in range(1, 8)))
    # The newest receipt purged: SQLite never gives its id out again, nor may PostgreSQL.
    site.write(lambda c: c.execute("DELETE FROM deliveries WHERE receipt_id = 7"))
    site.write(lambda c: c.execute("DELETE FROM receipts WHERE id = 7"))
    site.stopService()

    assert main(["copy-db", db_path, url]) == 0
    out = capsys.readouterr().out
    assert "copied 6 receipts and 6 webhook deliveries" in out and "next receipt is 8" in out

    central = make_inline_store(url, clock)
    central.startService()
    try:
        assert central.receipts_total == 6  # the count start-up read
        copied = result_of(central.receipts_after(0, 100))
        assert copied == stored[:6]  # ids, text, sha256, details: all as they were
        assert central.database_id == site.database_id  # the stream's clients go on
        assert result_of(central.get_raw(3)) == b"\x1b@receipt 3\n\x00\xff\x1dV\x00"
        counts = result_of(central.delivery_counts())
        assert counts == {"cloud": {"pending": 6}}
        (new,) = add_receipts(central, clock, draft("after the move"))
        assert new.id == 8
    finally:
        central.stopService()
    # The copy set the count of receipts that start-up reads (COPY leaves it alone).
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM receipts").fetchone() == (7,)
    assert central.receipts_total == 7
    assert PostgresEngine(url).prepare().receipts == 7
    assert main(["copy-db", db_path, url]) == 1
    assert "holds 7 receipts already" in capsys.readouterr().err


def test_instances_claiming_at_once_take_different_deliveries_without_waiting(url):
    """FOR UPDATE SKIP LOCKED: rows another instance is claiming are skipped, not waited for."""
    engine = PostgresEngine(url)
    engine.prepare()
    with engine.connect() as conn, engine.connect() as other:
        engine.insert_receipts(conn, [draft(f"r{i}") for i in range(6)], lambda p: ["cloud"])
        conn.execute("SET lock_timeout = '1s'")  # waiting on a lock fails the test
        with other.transaction():
            held = [row[0] for row in other.execute(
                engine.CLAIM, ("b", 2e9, "cloud", 1e9, 1e9, 2)).fetchall()]
            claim = engine.claim_deliveries(conn, 1e9, {"cloud": 3}, "a", 2e9)
        assert sorted(held) == [1, 2]
        assert [d.receipt.id for d in claim.deliveries] == [3, 4, 5]
        # Committed, b's claims hold: a takes only what is left.
        rest = engine.claim_deliveries(conn, 1e9, {"cloud": 6}, "a", 2e9)
        assert [d.receipt.id for d in rest.deliveries] == [6]


def test_postgresql_folds_the_characters_lower_leaves_as_the_search_does_in_python():
    from printerd.store.folding import _after_lower
    from printerd.store.postgres_schema import FOLD_AFTER_LOWER

    _, table = _after_lower()
    assert dict(zip(map(ord, FOLD_AFTER_LOWER[0]), FOLD_AFTER_LOWER[1], strict=True)) == table

"""
Crash safety: SIGKILL the daemon again and again while POS clients print and a stream
subscriber listens; after every kill check that the database is intact, that every receipt
announced on the stream before the kill is stored, that every receipt the "printer"
acknowledged (it answered the DLE EOT 1 the POS sent after the cut) is stored, and that
nothing is stored twice.

    python -m bench.crash_test --kills 1000       # the long run (by hand)
    python -m bench.crash_test --kills 100 --postgres postgresql://.../empty_db
    tests/test_crash.py runs a short one in make test (on each engine)
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import socket
import sqlite3
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.daemon import Daemon

_TAG = re.compile(rb"crash-tag-(\d+-\d+-\d+)")


class Printer(threading.Thread):
    """
    A POS client printing tagged receipts, one per connection, until stopped; after each cut
    it asks DLE EOT 1 and records the receipt as acknowledged when the printer answers.
    """

    def __init__(self, port: int, run: int, number: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.run_id, self.number, self.stop = port, run, number, stop
        self.sent = 0
        self.acknowledged: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            tag = f"crash-tag-{self.run_id}-{self.number}-{self.sent}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                    sock.sendall(b"\x1b@" + tag.encode() + b"\nTotal 1.00\n\x1dV\x00\x10\x04\x01")
                    self.sent += 1
                    if sock.recv(1):
                        self.acknowledged.append(tag[len("crash-tag-"):])
            except OSError:
                return  # the daemon was killed


class Listener(threading.Thread):
    """A stream subscriber recording every receipt tag announced to it."""

    def __init__(self, port: int, after: int) -> None:
        super().__init__(daemon=True)
        self.port, self.after = port, after
        self.announced: list[str] = []
        self.ready = threading.Event()

    def run(self) -> None:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
                sock.sendall(b"GET /api/stream?after=%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % self.after)
                buffer = b""
                while True:
                    data = sock.recv(65536)
                    if not data:
                        return
                    self.ready.set()
                    buffer += data
                    *blocks, buffer = buffer.split(b"\n\n")
                    for block in blocks:
                        self.announced += [m.decode() for m in _TAG.findall(block)]
        except OSError:
            return


def tags_since(database: Path | str, after_id: int) -> tuple[str, Counter, int]:
    """
    integrity_check (SQLite; PostgreSQL: amcheck's bt_index_check of the receipts' primary
    key), the tags of receipts with id > after_id, and the largest id.
    """
    if isinstance(database, str):
        import psycopg

        conn = psycopg.connect(database, autocommit=True)
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        conn.execute("SELECT bt_index_check('receipts_pkey', true)")
        integrity = "ok"  # bt_index_check raises on a damaged index
        rows = conn.execute("SELECT id, text FROM receipts WHERE id > %s ORDER BY id",
                            (after_id,))
    else:
        conn = sqlite3.connect(database)  # type: ignore[assignment]
        (integrity,) = conn.execute("PRAGMA integrity_check").fetchone()
        rows = conn.execute("SELECT id, text FROM receipts WHERE id > ? ORDER BY id",
                            (after_id,))
    try:
        tags: Counter = Counter()
        last_id = after_id
        for receipt_id, text in rows:
            tags.update(m.decode() for m in _TAG.findall(text.encode()))
            last_id = receipt_id
    finally:
        conn.close()
    return integrity, tags, last_id


def crash_run(workdir: Path, kills: int, printers: int = 4, seed: int = 1,
              progress: bool = False, recount_every: int = 100,
              postgres: str | None = None) -> dict:
    """``postgres``: the URL of an empty PostgreSQL database to use instead of a SQLite file."""
    rng = random.Random(seed)
    database: Path | str = postgres or workdir / "crash.sqlite3"
    announced: set[str] = set()
    acknowledged: set[str] = set()
    problems: list[str] = []
    # Receipts are only ever appended, so each kill reads only the rows added since the last
    # one (keeps a long run linear); a full recount every `recount_every` kills and at the end
    # checks that nothing earlier went missing or changed.
    stored: Counter = Counter()
    last_id = 0
    for run in range(kills):
        daemon = Daemon(workdir, f"--database={database}", "--api-rate=0")
        # Listen from the last stored id: what this run announces is what must survive.
        listener = Listener(daemon.http_port, last_id)
        listener.start()
        listener.ready.wait(5)
        stop = threading.Event()
        clients = [Printer(daemon.raw_port, run, n, stop) for n in range(printers)]
        for client in clients:
            client.start()
        time.sleep(rng.uniform(0.2, 0.8))
        daemon.stop(signal.SIGKILL)
        stop.set()
        for client in clients:
            client.join(5)
        listener.join(5)
        announced.update(listener.announced)
        run_acknowledged = [tag for client in clients for tag in client.acknowledged]
        acknowledged.update(run_acknowledged)
        integrity, new_tags, last_id = tags_since(database, last_id)
        stored.update(new_tags)
        if integrity != "ok":
            problems.append(f"kill {run + 1}: integrity_check says {integrity}")
        if (run + 1) % recount_every == 0 or run + 1 == kills:
            _, recounted, _ = tags_since(database, 0)
            if recounted != stored:
                problems.append(f"kill {run + 1}: a full recount differs from the running count")
            stored = recounted
        missing = [t for t in listener.announced if stored[t] == 0]
        if missing:
            problems.append(f"kill {run + 1}: {len(missing)} announced receipts missing, e.g. "
                            f"{missing[:3]}")
        unacknowledged = [t for t in run_acknowledged if stored[t] == 0]
        if unacknowledged:
            problems.append(f"kill {run + 1}: {len(unacknowledged)} acknowledged receipts "
                            f"missing, e.g. {unacknowledged[:3]}")
        doubled = [t for t, n in new_tags.items() if stored[t] > 1]
        if doubled:
            problems.append(f"kill {run + 1}: {len(doubled)} receipts stored twice, e.g. "
                            f"{doubled[:3]}")
        if progress:
            # One line per kill, so a run cut short still tells what it checked.
            print(f"kill {run + 1}: stored {sum(stored.values())}, announced {len(announced)}, "
                  f"acknowledged {len(acknowledged)}, problems {len(problems)}", flush=True)
    missing_overall = [t for t in announced if stored[t] == 0]
    if missing_overall:
        problems.append(f"end: {len(missing_overall)} announced receipts missing")
    unacknowledged_overall = [t for t in acknowledged if stored[t] == 0]
    if unacknowledged_overall:
        problems.append(f"end: {len(unacknowledged_overall)} acknowledged receipts missing")
    return {"kills": kills, "receipts_stored": sum(stored.values()), "announced": len(announced),
            "acknowledged": len(acknowledged),
            "engine": "postgresql" if postgres else "sqlite", "problems": problems}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.crash_test")
    parser.add_argument("--kills", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="an empty PostgreSQL database to crash on instead of SQLite")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        result = crash_run(Path(workdir), args.kills, seed=args.seed, progress=True,
                           postgres=args.postgres)
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result, indent=2))
    raise SystemExit(1 if result["problems"] else 0)


if __name__ == "__main__":
    main()

"""
Search scenario: /api/receipts over a database of a million receipts.

The database is built once (``var/bench/search-<n>.sqlite3``, reused while its schema and count
still fit: building a million takes minutes) through the store's own engine, so the search index
and the statistics come from the same triggers as in the daemon.  Receipts are varied (German,
French, Russian, Greek, Japanese items; a unique receipt number and authorisation code each),
about 700 characters, five printers of unequal share, one every ~30 s over a year.

Then the daemon starts on that database (start-up time: from the process's start until
/api/health answers), and one, then four keep-alive clients send a fixed mix of requests in
rounds (four clients on two reader threads: the answer time includes waiting for a thread): ``q`` alone (common, rare, unique, absent words in several scripts and cases), ``q``
with filters, filters alone (printer, time windows near and far, deep ``before`` pages), and
one- and two-character ``q`` (which no trigram holds), each group reported apart; and the
daemon's CPU time per request (the machine's other work moves it less than latency).
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from pathlib import Path
from urllib.parse import urlencode

from bench.common import percentiles, process_figures, read_response
from bench.daemon import Daemon
from printerd.store.receipts import NewReceipt, format_time
from printerd.store.sqlite import SQLiteEngine
from printerd.store.sqlite_schema import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[1]
START = 1_735_689_600.0  # 2025-01-01
SPACING = 31.5  # seconds between receipts: a million take a year
PRINTERS = [("bar", 40), ("kitchen", 25), ("terrace", 20), ("front", 10), ("drive", 5)]
ITEMS = ["Espresso doppio", "Cappuccino", "Latte macchiato", "Croissant", "Äpfel (Bio) 1 kg",
         "Brötchen", "Käsespätzle", "Weißbier 0,5 l", "Straßenkarte", "Crème brûlée",
         "Café au lait", "Pain au chocolat", "Salade niçoise", "Борщ", "Пельмени", "Квас 0,5 л",
         "Здравствуйте!", "Σουβλάκι", "Χωριάτικη σαλάτα", "Φραπέ", "拉麵", "餃子", "ビール",
         "Pizza Margherita", "Spaghetti carbonara", "Tiramisù", "Orange juice",
         "Mineral water 0.5 l", "Club sandwich", "Caesar salad", "Fish & chips",
         "Burger deluxe", "Fries", "Onion rings", "Brownie", "Cheesecake", "Green tea",
         "Chai latte", "Hot chocolate", "Bagel cream cheese"]
SHOPS = ["ACME CAFE", "Bäckerei Müller", "Ресторан Москва", "Ταβέρνα Ζορμπάς",
         "Trattoria Roma", "Le Petit Bistro", "Sushi Bar 寿司"]
SERVERS = ["Anna", "Jürgen", "Ольга", "Νίκος", "Marie"]


def receipt_text(rng: random.Random, number: int) -> str:
    lines = [rng.choice(SHOPS),
             "Hauptstraße %d, %05d Stadt" % (rng.randint(1, 200), rng.randint(10000, 99999)),
             "Receipt %d  Table %d  Server %s" % (number, rng.randint(1, 40),
                                                   rng.choice(SERVERS)),
             "-" * 42]
    total = 0.0
    for _ in range(rng.randint(3, 18)):
        item, quantity, price = rng.choice(ITEMS), rng.randint(1, 4), rng.randint(150, 2500) / 100
        total += quantity * price
        lines.append(f"{quantity} x {item:<28}{quantity * price:>8.2f}")
    lines += ["-" * 42, f"TOTAL{total:>37.2f}",
              f"Card ****{rng.randint(0, 9999):04d}  Auth {rng.randint(0, 999999):06d}",
              "Vielen Dank für Ihren Besuch!" if rng.random() < 0.5 else "Thank you, come again"]
    return "\n".join(lines)


def database_fits(path: Path, receipts: int) -> bool:
    if not path.exists():
        return False
    conn = sqlite3.connect(path)
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version != SCHEMA_VERSION:
            return False
        (count,) = conn.execute("SELECT receipts FROM receipt_stats").fetchone()
        return count == receipts
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def build(path: Path, receipts: int, batch: int = 100) -> float:
    """
    A database of ``receipts`` receipts at ``path``, committed ``batch`` at a time (the search
    index then has the segments a daemon's group commits leave); returns the seconds it took.
    """
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    started = time.perf_counter()
    engine = SQLiteEngine(str(path), synchronous="OFF")  # a benchmark's fixture: no fsync
    engine.prepare()
    conn = engine.connect()
    rng = random.Random(19)
    printers = [name for name, share in PRINTERS for _ in range(share)]
    for first in range(0, receipts, batch):
        drafts = []
        for number in range(first, min(receipts, first + batch)):
            text = receipt_text(rng, number)
            drafts.append(NewReceipt(
                printer=rng.choice(printers), peer="10.0.0.9:4000",
                received_at=format_time(START + number * SPACING), job=number + 1,
                raw=text.encode() + b"\n\x1dV\x00", text=text, cut="full", truncated=False))
        engine.insert_receipts(conn, drafts)
        if first % 100_000 == 0:
            print(f"  search: {first:,} of {receipts:,} receipts stored", flush=True)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def request_mix(receipts: int) -> dict[str, list[str]]:
    """The requests of one round, by group."""
    day, rng = 86400, random.Random(7)
    end = START + receipts * SPACING

    def at(seconds: float) -> str:
        return format_time(seconds)

    def path(**params: object) -> str:
        return "/api/receipts?" + urlencode({"limit": 50, **params})

    unique = rng.sample(range(receipts), 4)
    deep = [str(rng.randint(1, receipts)) for _ in range(4)]
    return {
        "q": [path(q=q) for q in (
            "espresso", "CAPPUCCINO", "tiramisù", "ПЕЛЬМЕНИ", "σουβλάκι", "ΣΟΥΒΛΆΚΙ", "äpfel",
            "STRASSENKARTE", "straßenkarte", "ビール", "Bäckerei Müller", "Thank you",
            f"Receipt {unique[0]} ", f"receipt {unique[1]} ", "Auth 004217", "auth 99999",
            "Card ****12", "zzqqxx", "Brötchenx", "Table 7  Server Ольга", "TOTAL   1")],
        "q_with_filters": [
            path(q="espresso", printer="drive"), path(q="Борщ", printer="front"),
            path(q="tiramisù", since=at(end - 7 * day)),
            path(q="tiramisù", since=at(START + 90 * day), until=at(START + 91 * day)),
            path(q="Σουβλάκι", until=at(START + 30 * day)),
            path(q="espresso", before=deep[0]), path(q="ビール", before=deep[1]),
            path(q="Club sandwich", printer="drive", since=at(START + 200 * day),
                 until=at(START + 230 * day)),
            path(q="auth 12", before=deep[2])],
        "filters": [
            path(printer="drive"), path(printer="bar"), path(printer="nobody"),
            path(since=at(end - 3600)), path(since=at(START + 100 * day),
                                            until=at(START + 101 * day)),
            path(since=at(START + 30 * day), until=at(START + 60 * day)),
            path(until=at(START + 10 * day)), path(until=at(START + 300 * day)),
            path(printer="drive", since=at(START + 120 * day), until=at(START + 150 * day)),
            path(printer="front", until=at(START + 20 * day)),
            path(before=deep[0]), path(before=deep[3], printer="terrace"),
            path(since=at(START + 200 * day), before=deep[1])],
        "short_q": [path(q=q) for q in ("e", "Ä", "σ", "ab", "ЖЯ", "7x", "ß")],
    }


async def client(port: int, paths: list[str], rounds: int, seed: int,
                 latencies: dict[str, list[float]]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    rng, errors = random.Random(seed), 0
    for _ in range(rounds):
        order = paths[:]
        rng.shuffle(order)
        for path in order:
            started = time.perf_counter()
            writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
            if await read_response(reader) != 200:
                errors += 1
            latencies[path].append(time.perf_counter() - started)
    writer.close()
    return errors


async def measure(port: int, receipts: int, clients: int, rounds: int) -> dict:
    mix = request_mix(receipts)
    every = [path for paths in mix.values() for path in paths]
    latencies: dict[str, list[float]] = {path: [] for path in every}
    errors = await asyncio.gather(*(client(port, every, rounds, seed, latencies)
                                    for seed in range(clients)))
    slowest = sorted(every, key=lambda path: max(latencies[path]), reverse=True)[:5]
    return {"errors": sum(errors),
            **{group: percentiles([s for path in paths for s in latencies[path]])
               for group, paths in mix.items()},
            "slowest": {path: round(max(latencies[path]) * 1000, 1) for path in slowest}}


def run(workdir: Path, receipts: int = 1_000_000, clients: tuple[int, ...] = (1, 4),
        rounds: int = 10,
        database: Path | None = None) -> dict:
    # Absolute: the daemon runs in its own folder.
    database = (database or ROOT / "var" / "bench" / f"search-{receipts}.sqlite3").resolve()
    database.parent.mkdir(parents=True, exist_ok=True)
    result: dict = {"receipts": receipts, "database": str(database)}
    if not database_fits(database, receipts):
        result["build_s"] = round(build(database, receipts), 1)
    result["database_mb"] = round(sum(Path(f"{database}{s}").stat().st_size
                                      for s in ("", "-wal") if Path(f"{database}{s}").exists())
                                  / 1e6)
    started = time.perf_counter()
    # Retention off in effect: the receipts are dated 2025, and are to stay.
    daemon = Daemon(workdir, f"--database={database}", "--api-rate=0", "--retention-days=36500",
                    "--http-listen=tcp:0:interface=127.0.0.1:backlog=1024")
    try:
        daemon.wait_for(lambda: daemon.get("/api/health")[0] == 200, timeout=60)
        result["startup_s"] = round(time.perf_counter() - started, 2)
        for count in clients:
            cpu_before = process_figures(daemon.process.pid)["cpu_s"]
            figures = asyncio.run(measure(daemon.http_port, receipts, count, rounds))
            # CPU per request: a figure the other work on a shared machine does not move much.
            requests = sum(group["samples"] for group in figures.values()
                           if isinstance(group, dict) and "samples" in group)
            figures["server_cpu_ms_per_request"] = round(
                (process_figures(daemon.process.pid)["cpu_s"] - cpu_before) * 1000 / requests, 2)
            result[f"clients_{count}"] = figures
        result["server"] = process_figures(daemon.process.pid)
    finally:
        daemon.stop()
    return result

"""
Ingest scenario: P POS clients print ~1.5 KB receipts, one per connection or ten per connection;
receipts per second until every one is committed (printerd) or counted (the bare ceiling,
``bench.ceiling ingest``), and a count of the database to prove none lost.

The POS clients are threads with blocking sockets: connect, one ``sendall``, wait for the
server to close.  That is
the least Python a client can spend on a connection (the socket calls release the GIL), so the
load generator stays a small share of the two cores; its CPU is reported.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import resource
import socket
import sqlite3
import threading
import time
from typing import Any, Union

from bench.ceiling import Ceiling
from bench.common import process_figures, stats
from bench.daemon import Daemon, as_operated

GENERATORS = 2  # load-generator processes, the POS clients shared out between them
ITEM = b"Espresso doppio .......................  2.80\n"


def receipt_bytes(client: int, n: int) -> bytes:
    body = b"\x1b@\x1b!\x30ACME CAFE\x1b!\x00\nClient %d receipt %d\n" % (client, n)
    body += ITEM * 32  # about 1.5 KB
    return body + b"TOTAL 89.60\n\x1dVA\x03"


async def pos_client(port: int, client: int, receipts: int, per_connection: int) -> None:
    """An asyncio POS client (other scenarios fill the database with it)."""
    for job in jobs_for(client, receipts, per_connection):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(job)
        await writer.drain()
        writer.close()
        await writer.wait_closed()


def blocking_pos_client(port: int, jobs: list[bytes]) -> None:
    """
    One POS client thread: each job on a connection of its own, sent, then the end of sending
    signalled and the server's close awaited, so a client has one job in flight at a time (as
    a POS that waits for its printer): one that only closed would race ahead of the server, fill
    the listen backlog, and stall a second on each dropped SYN while the server sits idle.
    """
    for job in jobs:
        with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
            sock.sendall(job)
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(4096):
                pass


def jobs_for(client: int, receipts: int, per_connection: int) -> list[bytes]:
    """``client``'s ``receipts`` receipts, ``per_connection`` to a job (the last may have fewer)."""
    return [b"".join(receipt_bytes(client, n)
                     for n in range(first, min(first + per_connection, receipts)))
            for first in range(0, receipts, per_connection)]


def _generator_process(port: int, jobs: list[list[bytes]], out: Any) -> None:
    """One load-generator process: a thread per POS client; reports its CPU seconds."""
    threads = [threading.Thread(target=blocking_pos_client, args=(port, client_jobs))
               for client_jobs in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.put(usage.ru_utime + usage.ru_stime)


def scenario(server: Union[Daemon, Ceiling], clients: int, receipts: int,
             per_connection: int) -> dict:
    per_client = receipts // clients
    expected = per_client * clients
    jobs = [jobs_for(c, per_client, per_connection) for c in range(clients)]
    idle = process_figures(server.process.pid)
    context = multiprocessing.get_context("fork")
    out: Any = context.Queue()
    # Two processes, so that the clients' Python runs on both cores like the kernel's TCP work
    # (which is most of their CPU: the socket calls' system time).
    procs = [context.Process(target=_generator_process,
                             args=(server.raw_port, jobs[half::GENERATORS], out))
             for half in range(GENERATORS)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    generator_cpu = sum(out.get(timeout=600) for _ in procs)
    for proc in procs:
        proc.join()
    sent_s = time.perf_counter() - started
    during = process_figures(server.process.pid)
    counted = 0
    while time.perf_counter() - started < 300:
        counted = asyncio.run(stats(server.http_port))["receipts_total"]
        if counted >= expected:
            break
        time.sleep(0.01)
    elapsed = time.perf_counter() - started
    done = process_figures(server.process.pid)
    return {"clients": clients, "receipts_per_connection": per_connection,
            "receipts": expected, "counted": counted, "send_s": round(sent_s, 3),
            "elapsed_s": round(elapsed, 3), "receipts_per_s": round(expected / elapsed),
            "server_cpu_s": round(done["cpu_s"] - idle["cpu_s"], 2),
            "generator_cpu_s": round(generator_cpu, 2),
            "generator_cores": round(generator_cpu / elapsed, 2),
            "server_idle": idle, "server_during": during}


def run(workdir: Any, clients: int = 20, receipts: int = 10_000, per_connection: int = 1,
        synchronous: str = "FULL", target: str = "printerd") -> dict:
    """One run against ``target`` ("printerd" or "ceiling"); see the module docstring."""
    server = Ceiling("ingest") if target == "ceiling" else as_operated(
        workdir, "--raw-listen=tcp:0:interface=127.0.0.1:backlog=4096",
        f"--synchronous={synchronous}", "--database=bench.sqlite3")
    try:
        result = scenario(server, clients, receipts, per_connection)
    finally:
        server.stop()
    if target == "ceiling":
        result["lost"] = result["receipts"] - result["counted"]
        return result
    (count,) = sqlite3.connect(workdir / "bench.sqlite3").execute(
        "SELECT count(*) FROM receipts").fetchone()
    result["stored_in_database"] = count
    result["lost"] = result["receipts"] - count
    result["synchronous"] = synchronous
    return result

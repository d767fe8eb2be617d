"""
What the tee costs a POS: ``python -m bench.tee [--jobs N]``.

Starts a "real printer" (a second printerd) and two printerd in front of it, one relaying to it
(``tee``) and one not. For each, N jobs in a row, each as a POS sends one: connect, ask
``DLE EOT 1`` and wait for the answer (through the tee the real printer answers), print one
receipt, close. Prints the median and 95th percentile of the connect-to-answer time and of the
whole job, and the jobs per second, with and without the tee.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from pathlib import Path

from bench.daemon import Daemon

JOB = b"\x1b@Table 12\nSoup       4.50\nBread      1.20\nTotal      5.70\n\x1dV\x00"


def one_job(port: int) -> tuple[float, float]:
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\x10\x04\x01")
        if len(sock.recv(1)) != 1:
            raise RuntimeError("no status answer")
        answered = time.perf_counter()
        sock.sendall(JOB)
    return answered - started, time.perf_counter() - started


def run(port: int, jobs: int) -> dict[str, float]:
    answers, totals = [], []
    started = time.perf_counter()
    for _ in range(jobs):
        answer, total = one_job(port)
        answers.append(answer)
        totals.append(total)
    elapsed = time.perf_counter() - started

    def p95(values: list[float]) -> float:
        return statistics.quantiles(values, n=20)[-1]
    return {"answer_median_ms": statistics.median(answers) * 1000,
            "answer_p95_ms": p95(answers) * 1000,
            "job_median_ms": statistics.median(totals) * 1000, "job_p95_ms": p95(totals) * 1000,
            "jobs_per_s": jobs / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tee")
    parser.add_argument("--jobs", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name in ("real", "tee", "plain"):
            (root / name).mkdir()
        real = Daemon(root / "real")
        tee = Daemon(root / "tee", f"--tee=tcp:127.0.0.1:{real.raw_port}")
        plain = Daemon(root / "plain")
        try:
            for name, daemon in (("without tee", plain), ("with tee", tee)):
                run(daemon.raw_port, 20)  # warm up
                figures = run(daemon.raw_port, args.jobs)
                print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items()))
            relayed = tee.get("/api/printers")[1]["printers"][0]["tee"]["counters"]
            print(f"tee counters: {relayed}")
        finally:
            for daemon in (tee, plain, real):
                daemon.stop()


if __name__ == "__main__":
    main()

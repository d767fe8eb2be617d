"""
printerd's benchmark suite: ``make bench`` (or ``python -m bench [scenario ...]``).

Each scenario starts the daemon on ephemeral ports in a subprocess and drives it from this
process; results go to bench/results/<scenario>-<time>.json and a summary to the terminal.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench import ingest, multi, parser as parser_bench, render, rest, search, soak, stream, webhook
from bench.common import raise_fd_limit

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*",
                        default=["parser", "render", "ingest", "rest", "webhook", "search",
                                 "stream"],
                        help="scenarios to run (default: parser render ingest rest webhook "
                             "search stream; soak and the pg- scenarios run only when named)")
    parser.add_argument("--soak-receipts", type=int, default=1_000_000,
                        help="soak scenario: receipts in all")
    parser.add_argument("--search-receipts", type=int, default=1_000_000,
                        help="search scenario: receipts in its database (built once, kept in "
                             "var/bench/)")
    parser.add_argument("--ingest-receipts", type=int, default=10_000,
                        help="ingest scenario: receipts per run")
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 10000],
                        help="stream scenario: subscriber counts to run")
    parser.add_argument("--stream-receipts", type=int, default=20,
                        help="stream scenario: receipts per POS client")
    parser.add_argument("--stream-pos", type=int, default=5,
                        help="stream scenario: POS clients printing")
    parser.add_argument("--stream-rate", type=float, default=1.0,
                        help="stream scenario: receipts per second per POS client")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="pg-ingest, pg-announce, pg-stream: a PostgreSQL server where the bench may "
                             "create and drop databases (two instances share one)")
    parser.add_argument("--pg-subscribers", type=int, default=5000,
                        help="pg-stream: subscribers on each of the two instances")
    args = parser.parse_args()
    raise_fd_limit()
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for name in args.scenarios:
        if name == "stream":
            for n in args.subscribers:
                with tempfile.TemporaryDirectory() as workdir:
                    result = stream.run(Path(workdir), subscribers=n, printers=args.stream_pos,
                                        receipts=args.stream_receipts, rate=args.stream_rate)
                report(f"stream-{n}", stamp, result)
        elif name == "parser":
            report("parser", stamp, parser_bench.run())
        elif name == "render":
            report("render", stamp, render.run())
        elif name == "ingest":
            for per_connection in (1, 10):
                with tempfile.TemporaryDirectory() as workdir:
                    result = ingest.run(Path(workdir), receipts=args.ingest_receipts,
                                        per_connection=per_connection)
                report(f"ingest-{per_connection}-per-connection", stamp, result)
        elif name == "soak":
            with tempfile.TemporaryDirectory() as workdir:
                report("soak", stamp, soak.run(Path(workdir), receipts=args.soak_receipts))
        elif name == "webhook":
            with tempfile.TemporaryDirectory() as workdir:
                report("webhook", stamp, webhook.run(Path(workdir)))
        elif name == "search":
            with tempfile.TemporaryDirectory() as workdir:
                report("search", stamp, search.run(Path(workdir), receipts=args.search_receipts))
        elif name in ("pg-ingest", "pg-stream", "pg-announce"):
            if not args.postgres:
                parser.error(f"{name} needs --postgres URL")
            with tempfile.TemporaryDirectory() as workdir:
                if name == "pg-announce":
                    report("pg-announce", stamp, multi.announce(Path(workdir), args.postgres))
                    continue
                if name == "pg-stream":
                    report(f"pg-stream-2x{args.pg_subscribers}", stamp, multi.stream(
                        Path(workdir), args.postgres, subscribers=args.pg_subscribers,
                        printers=args.stream_pos, receipts=args.stream_receipts,
                        rate=args.stream_rate))
                    continue
                for per_connection in (1, 10):
                    with tempfile.TemporaryDirectory() as run_dir:
                        report(f"pg-ingest-{per_connection}-per-connection", stamp, multi.ingest(
                            Path(run_dir), args.postgres, per_connection,
                            receipts=args.ingest_receipts))
        elif name == "rest":
            with tempfile.TemporaryDirectory() as workdir:
                report("rest", stamp, rest.run(Path(workdir)))
        else:
            parser.error(f"unknown scenario {name}")


def report(name: str, stamp: str, result: dict) -> None:
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"== {name}  ({path.relative_to(RESULTS.parent.parent)})")
    for key, value in result.items():
        print(f"  {key:24} {value}")


if __name__ == "__main__":
    main()

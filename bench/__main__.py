"""
printerd's benchmark suite: ``make bench`` (or ``python -m bench [scenario ...]``).

Each scenario starts the daemon on ephemeral ports in a subprocess and drives it from this
process (and load-generator processes).  Ingest, REST and stream also run, in the same
invocation and right beside printerd's run, against a bare-Twisted ceiling (``bench.ceiling``)
that does only the same I/O, so that each figure is also a ratio that a noisy machine does not
hide.  Results go to bench/results/<scenario>-<time>.json; the table of every figure, its
ceiling, the ratio and the goal is printed at the end and written to
bench/results/table-<time>.md.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench import (
    ingest, multi, parser as parser_bench, rawport_cost, render, rest, search, soak, storm,
    stream, webhook, writer,
)
from bench.common import raise_fd_limit
from bench.table import Table, delivery_p99_ratio, ingest_share

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT = ["parser", "render", "ingest", "rest", "webhook", "search", "stream", "storm"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("scenarios", nargs="*", default=DEFAULT,
                        help=f"scenarios to run (default: {' '.join(DEFAULT)}; soak, rawport, writer "
                             "and the pg- scenarios run only when named)")
    parser.add_argument("--soak-receipts", type=int, default=1_000_000,
                        help="soak scenario: receipts in all")
    parser.add_argument("--search-receipts", type=int, default=1_000_000,
                        help="search scenario: receipts in its database (built once, kept in "
                             "var/bench/)")
    parser.add_argument("--ingest-receipts", type=int, default=10_000,
                        help="ingest scenario: receipts per run at one per connection "
                             "(n/2 times as many at n per connection)")
    parser.add_argument("--per-connection", type=int, nargs="+", default=[1, 10],
                        help="ingest scenario: receipts per connection, one run each")
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 10000],
                        help="stream scenario: subscriber counts to run")
    parser.add_argument("--stream-receipts", type=int, default=20,
                        help="stream scenario: receipts per POS client")
    parser.add_argument("--stream-pos", type=int, default=20,
                        help="stream scenario: POS clients printing")
    parser.add_argument("--stream-rate", type=float, default=1.0,
                        help="stream scenario: receipts per second per POS client")
    parser.add_argument("--rest-seconds", type=float, default=10.0,
                        help="rest scenario: seconds per path")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the bare-Twisted ceiling runs (no ratios)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="ingest and stream: ceiling-then-printerd rounds, alternating; the "
                             "table shows the round whose ratio is the median, and every "
                             "round's ratio")
    parser.add_argument("--postgres", metavar="URL", default=None,
                        help="pg-ingest, pg-announce, pg-stream, writer: a PostgreSQL server where the bench may "
                             "create and drop databases (two instances share one)")
    parser.add_argument("--pg-subscribers", type=int, default=5000,
                        help="pg-stream: subscribers on each of the two instances")
    args = parser.parse_args()
    raise_fd_limit()
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    table = Table()
    bare_connect: dict[int, float] = {}  # subscribers -> the ceiling's connect storm, seconds

    def paired(name: str, run, **kwargs) -> tuple[dict, dict | None]:
        """printerd's run, and the ceiling's right before it (unless --no-ceiling)."""
        ceiling = None
        if not args.no_ceiling:
            with tempfile.TemporaryDirectory() as workdir:
                ceiling = run(Path(workdir), target="ceiling", **kwargs)
            report(f"{name}-ceiling", stamp, ceiling)
        with tempfile.TemporaryDirectory() as workdir:
            result = run(Path(workdir), **kwargs)
        report(name, stamp, result)
        return result, ceiling

    def rounds(name: str, run, ratio_of, **kwargs) -> tuple[dict, dict | None, list[float]]:
        """
        ``--rounds`` pairs of runs, alternating ceiling and printerd so that both see the
        same machine: the pair whose ratio is the median, and every round's ratio, sorted.
        """
        pairs = [paired(name if args.rounds == 1 else f"{name}-round{n + 1}", run, **kwargs)
                 for n in range(args.rounds)]
        if args.no_ceiling:
            return pairs[0][0], None, []
        ratios = sorted((ratio_of(result, ceiling), n) for n, (result, ceiling) in
                        enumerate(pairs))
        result, ceiling = pairs[ratios[len(ratios) // 2][1]]
        return result, ceiling, [r for r, _ in ratios]

    for name in args.scenarios:
        if name == "stream":
            for n in args.subscribers:
                result, ceiling, ratios = rounds(
                    f"stream-{n}", stream.run, delivery_p99_ratio, subscribers=n,
                    printers=args.stream_pos, receipts=args.stream_receipts,
                    rate=args.stream_rate)
                table.stream(n, result, ceiling, ratios)
                if ceiling:
                    bare_connect[n] = ceiling["connect_s"]
        elif name == "storm":
            for from_memory in (True, False):
                with tempfile.TemporaryDirectory() as workdir:
                    result = storm.run(Path(workdir), subscribers=max(args.subscribers),
                                       from_memory=from_memory)
                report(f"storm-{'memory' if from_memory else 'database'}", stamp, result)
                table.storm(result, bare_connect.get(max(args.subscribers)))
        elif name == "parser":
            report("parser", stamp, parser_bench.run())
        elif name == "rawport":
            report("rawport", stamp, rawport_cost.run())
        elif name == "writer":
            report("writer", stamp, writer.run(postgres=args.postgres))
        elif name == "render":
            report("render", stamp, render.run())
        elif name == "ingest":
            for per_connection in args.per_connection:
                # More receipts when they come ten to a connection, so the run lasts long
                # enough to measure (the ceiling takes 10,000 of them in a third of a second).
                receipts = args.ingest_receipts * max(1, per_connection // 2)
                result, ceiling, ratios = rounds(
                    f"ingest-{per_connection}-per-connection", ingest.run, ingest_share,
                    receipts=receipts, per_connection=per_connection)
                table.ingest(per_connection, result, ceiling, ratios)
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
                result = rest.run(Path(workdir), seconds=args.rest_seconds)
            report("rest", stamp, result)
            ceiling = None
            if not args.no_ceiling:
                with tempfile.TemporaryDirectory() as workdir:
                    ceiling = rest.run(Path(workdir), seconds=args.rest_seconds,
                                       target="ceiling",
                                       body_bytes=result["receipts_page_bytes"])
                report("rest-ceiling", stamp, ceiling)
            table.rest(result, ceiling)
        else:
            parser.error(f"unknown scenario {name}")
    if table.rows:
        text = table.markdown(time.strftime("%Y-%m-%d %H:%M"))
        path = RESULTS / f"table-{stamp}.md"
        path.write_text(text)
        print(f"\n== results table ({path.relative_to(RESULTS.parent.parent)})\n")
        print(text)


def report(name: str, stamp: str, result: dict) -> None:
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"== {name}  ({path.relative_to(RESULTS.parent.parent)})", flush=True)
    for key, value in result.items():
        print(f"  {key:24} {value}", flush=True)


if __name__ == "__main__":
    main()

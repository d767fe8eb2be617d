"""
The results table of one ``make bench`` run: each figure of printerd, its bare-Twisted ceiling
measured in the same run, the ratio of the two, the goal and whether it was met.

Ratios are printerd / ceiling: for rates, the share of the ceiling printerd reaches (higher is
better); for times, how many times the ceiling's time printerd takes (lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

MB = 1024 * 1024


@dataclass
class Row:
    figure: str
    value: str
    ceiling: str = "—"
    ratio: str = "—"
    goal: str = ""
    met: Optional[bool] = None
    generator: str = ""  # CPU the load generator used, in cores
    command: str = ""


def ratio(value: float, ceiling: Optional[float]) -> Optional[float]:
    return value / ceiling if ceiling else None


def _ratio_text(r: Optional[float], percent: bool) -> str:
    if r is None:
        return "—"
    return f"{r:.0%}" if percent else f"{r:.2f}x"


def ingest_share(result: dict, ceiling: Optional[dict]) -> Optional[float]:
    """printerd's receipts per second as a share of the ceiling's (higher is better)."""
    return ratio(result["receipts_per_s"], (ceiling or {}).get("receipts_per_s"))


def delivery_p99_ratio(result: dict, ceiling: Optional[dict]) -> Optional[float]:
    """printerd's stream delivery p99 as a multiple of the ceiling's (lower is better)."""
    bare = ((ceiling or {}).get("delivery_latency") or {}).get("p99_ms")
    return ratio(result["delivery_latency"]["p99_ms"], bare)


def _rounds_text(ratios: Sequence[float], percent: bool) -> str:
    """Every round's ratio, when there was more than one (the row shows the median's)."""
    if len(ratios) < 2:
        return ""
    return (f"; median of {len(ratios)} rounds: "
            + ", ".join(_ratio_text(r, percent) for r in ratios))


def _cores(*results: Optional[dict]) -> str:
    return " / ".join(f"{r['generator_cores']:.2f}" for r in results if r) + " cores"


class Table:
    """Rows added scenario by scenario; ``markdown()`` renders them."""

    def __init__(self) -> None:
        self.rows: list[Row] = []
        self._idle_rss: Optional[int] = None
        self._threads: set[int] = set()

    def _server(self, result: dict) -> None:
        # Under load: the pool threads start on their first call, so an idle daemon that has
        # not read or written yet may show fewer.
        for key in ("server_connected", "server_during", "server"):
            if result.get(key):
                self._threads.add(result[key]["threads"])
        idle = result.get("server_idle")
        if idle and (self._idle_rss is None or idle["rss_bytes"] < self._idle_rss):
            self._idle_rss = idle["rss_bytes"]

    def ingest(self, per_connection: int, result: dict, ceiling: Optional[dict],
               ratios: Sequence[float] = ()) -> None:
        self._server(result)
        rate, bare = result["receipts_per_s"], (ceiling or {}).get("receipts_per_s")
        r = ingest_share(result, ceiling)
        if per_connection == 1:
            goal, met = ">= 3,000/s and >= 30%", rate >= 3000 and (r is None or r >= 0.30)
        else:
            goal, met = ">= 12,000/s", rate >= 12000
        self.rows.append(Row(
            f"ingest, {result['clients']} POS, {per_connection} receipt(s) (1.5 KB) per "
            f"connection: receipts/s ({result['lost']} lost of {result['receipts']}, counted in "
            "the database)", f"{rate:,}", f"{bare:,}" if bare else "—",
            _ratio_text(r, True) + _rounds_text(ratios, True),
            goal, met and result["lost"] == 0, _cores(result, ceiling),
            f"python -m bench ingest --per-connection {per_connection}"))

    def rest(self, result: dict, ceiling: Optional[dict]) -> None:
        self._server(result)
        bare = (ceiling or {}).get("receipts")
        command = "python -m bench rest"
        for name, path, rate_goal in (("receipts", "/api/receipts?limit=50", 2000),
                                      ("recent", "/api/recent?limit=50", 3000)):
            mine = result[name]
            self.rows.append(Row(
                f"`{path}`, {result['concurrency']} keep-alive clients: req/s",
                f"{mine['requests_per_s']:,}",
                f"{bare['requests_per_s']:,}" if bare else "—",
                _ratio_text(ratio(mine["requests_per_s"], bare and bare["requests_per_s"]),
                            True),
                f">= {rate_goal:,}/s", mine["requests_per_s"] >= rate_goal,
                _cores(mine, bare), command))
            self.rows.append(Row(
                f"`{path}`: p99 latency", f"{mine['p99_ms']:.1f} ms",
                f"{bare['p99_ms']:.1f} ms" if bare else "—",
                _ratio_text(ratio(mine["p99_ms"], bare and bare["p99_ms"]), False),
                "<= 50 ms", mine["p99_ms"] <= 50, "", command))
        search = result["receipts_search"]
        self.rows.append(Row(
            "`/api/receipts?q=...`: req/s, p99", f"{search['requests_per_s']:,}/s, "
            f"p99 {search['p99_ms']:.1f} ms", command=command))

    def stream(self, subscribers: int, result: dict, ceiling: Optional[dict],
               ratios: Sequence[float] = ()) -> None:
        self._server(result)
        command = f"python -m bench stream --subscribers {subscribers}"
        what = f"stream, {subscribers:,} subscribers"
        bare_connect = (ceiling or {}).get("connect_s")
        refused = sum(result.get("refused", {}).values())
        self.rows.append(Row(
            f"{what}: opened at once, until all are streaming ({refused} refused)",
            f"{result['connect_s']:.2f} s",
            f"{bare_connect:.2f} s" if bare_connect else "—",
            _ratio_text(ratio(result["connect_s"], bare_connect), False),
            "<= 5 s", result["connect_s"] <= 5 and not refused, "", command))
        latency = result["delivery_latency"]
        bare_latency = (ceiling or {}).get("delivery_latency") or {}
        limit = 1.2 if subscribers <= 1000 else 1.0
        p99_ratio = delivery_p99_ratio(result, ceiling)
        self.rows.append(Row(
            f"{what}, {result['receipts_per_s']:g} receipts/s: delivery p50 / p99 "
            f"({result['events_lost']} lost of {result['receipts'] * subscribers:,})",
            f"{latency['p50_ms']:.0f} / {latency['p99_ms']:.0f} ms",
            f"{bare_latency['p50_ms']:.0f} / {bare_latency['p99_ms']:.0f} ms"
            if bare_latency else "—",
            _ratio_text(p99_ratio, False) + " (p99)" + _rounds_text(ratios, False),
            f"p99 <= {limit:g}x the ceiling",
            p99_ratio is not None and p99_ratio <= limit and result["events_lost"] == 0,
            _cores(result, ceiling), command))
        recent = result["rest_recent_latency"]
        if recent:
            self.rows.append(Row(f"{what}: `/api/recent` p99 during the run",
                                 f"{recent['p99_ms']:.0f} ms", goal="<= 100 ms",
                                 met=recent["p99_ms"] <= 100, command=command))
        rss = result["server_during"]["rss_bytes"]
        if subscribers >= 10_000:
            self.rows.append(Row(f"{what}: RSS", f"{rss / MB:.0f} MB", goal="<= 200 MB",
                                 met=rss <= 200 * MB, command=command))

    def storm(self, result: dict, bare_connect: Optional[float]) -> None:
        self._server(result)
        n, behind = result["subscribers"], result["behind"]
        from_memory = behind <= result["memory_cache"]
        where = "from memory" if from_memory else "from the database"
        done = result["all_replayed_s"]
        self.rows.append(Row(
            f"reconnect storm after a restart: {n:,} subscribers at once with Last-Event-ID "
            f"{behind} behind ({where}), until all are streaming / have every replayed event "
            f"({result['replays_from_memory']:,} replays from memory, "
            f"{result['replay_queries']} queries; {result['events_lost']} lost; "
            f"{sum(result['refused'].values())} refused)",
            f"{result['connect_s']:.2f} / " + (f"{done:.2f} s" if done is not None else "never"),
            f"{bare_connect:.2f} s (no replay)" if bare_connect else "—",
            _ratio_text(ratio(done, bare_connect) if done is not None else None, False),
            "<= 5 s; one query per page", done is not None and done <= 5
            and not result["refused"] and result["events_lost"] == 0
            and (from_memory or result["replay_queries"] == 1), "",
            f"python -m bench stream storm --subscribers {n}"))

    def markdown(self, when: str) -> str:
        rows = list(self.rows)
        if self._idle_rss is not None:
            rows.append(Row("RSS idle (smallest of the scenarios' daemons)",
                            f"{self._idle_rss / MB:.0f} MB", goal="<= 60 MB",
                            met=self._idle_rss <= 60 * MB))
        if self._threads:
            rows.append(Row("threads under load (every scenario)",
                            ", ".join(str(t) for t in sorted(self._threads)), goal="4",
                            met=self._threads == {4}))
        lines = [f"Measured {when}; ratio = printerd / ceiling (rates: share of the ceiling; "
                 "times: multiple of it). Generator: CPU the load generator used "
                 "(printerd's run / the ceiling's).", "",
                 "| figure | printerd | bare Twisted ceiling | ratio | goal | met | generator "
                 "| command |", "|---|---|---|---|---|---|---|---|"]
        for row in rows:
            met = "—" if row.met is None else ("yes" if row.met else "**no**")
            lines.append(f"| {row.figure} | {row.value} | {row.ceiling} | {row.ratio} | "
                         f"{row.goal} | {met} | {row.generator} | "
                         f"{'`' + row.command + '`' if row.command else ''} |")
        return "\n".join(lines) + "\n"

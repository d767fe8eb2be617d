"""ePOS-Print's and Server Direct Print's rows for the figures table (``/api/stats``, ``/metrics``)."""

from __future__ import annotations

from typing import Callable, Sequence

from printerd.epos.http import EposEndpoint
from printerd.epos.sdp import ServerDirectPrint
from printerd.metrics import Figure, Samples


def epos_figures(endpoint: EposEndpoint,
                 pollers: Sequence[ServerDirectPrint] = ()) -> tuple[Figure, ...]:
    """Rows reading the endpoint's and the pollers' counters (the sources are closed over)."""
    printing = endpoint.printing

    def documents(_: object) -> Samples:
        return [((code or "printed",), count)
                for code, count in sorted(printing.documents_total.items())]

    def per_poller(attribute: str) -> Callable[[object], Samples]:
        return lambda _: [((p.printer.name, p.config.url), getattr(p, attribute))
                          for p in pollers]

    by_server = ("printer", "url")
    return (
        Figure("epos_documents_total", "printerd_epos_documents",
               "ePOS-Print documents answered, by result (printed, or Epson's error code)",
               "counter", documents, ("result",), stats_by="result"),
        Figure("epos_receipts_total", "printerd_epos_receipts",
               "Receipts printed from ePOS-Print documents", "counter",
               lambda _: printing.receipts_total),
        Figure("epos_forbidden_total", "printerd_epos_forbidden",
               "ePOS-Print requests refused: address not in raw_allow", "counter",
               lambda _: endpoint.forbidden_total),
        Figure("sdp_polls_total", "printerd_sdp_polls", "Server Direct Print exchanges started",
               "counter", per_poller("polls_total"), by_server),
        Figure("sdp_jobs_total", "printerd_sdp_jobs", "Server Direct Print jobs received",
               "counter", per_poller("jobs_total"), by_server),
        Figure("sdp_errors_total", "printerd_sdp_errors",
               "Server Direct Print exchanges that failed (retried with backoff)", "counter",
               per_poller("errors_total"), by_server),
        Figure("sdp_failures_in_a_row", "printerd_sdp_failures_in_a_row",
               "Server Direct Print exchanges failed since the last good one", "gauge",
               per_poller("failures"), by_server),
    )

"""ePOS-Print's figures for ``GET /metrics``, read at scrape time."""

from __future__ import annotations

from typing import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from printerd.epos.http import EposEndpoint
from printerd.epos.sdp import ServerDirectPrint


class EposCollector:
    """A Prometheus collector over the ePOS-Print endpoint's and Server Direct Print's counters."""

    def __init__(self, endpoint: EposEndpoint, pollers: Sequence[ServerDirectPrint] = ()) -> None:
        self.endpoint = endpoint
        self.pollers = pollers

    def collect(self) -> Iterator[Metric]:
        printing = self.endpoint.printing
        documents = CounterMetricFamily(
            "printerd_epos_documents", "ePOS-Print requests answered, by response code "
            "(empty: printed; SchemaError: bad XML; ...)", labels=["code"])
        for code, count in sorted(printing.documents_total.items()):
            documents.add_metric([code], count)
        yield documents
        yield CounterMetricFamily("printerd_epos_receipts", "receipts printed from ePOS-Print",
                                  value=printing.receipts_total)
        yield CounterMetricFamily("printerd_epos_forbidden",
                                  "ePOS-Print requests refused: address not in raw_allow",
                                  value=self.endpoint.forbidden_total)
        polls = CounterMetricFamily("printerd_sdp_polls", "Server Direct Print exchanges "
                                    "started", labels=["printer", "url"])
        jobs = CounterMetricFamily("printerd_sdp_jobs", "Server Direct Print jobs received",
                                   labels=["printer", "url"])
        errors = CounterMetricFamily("printerd_sdp_errors", "Server Direct Print exchanges "
                                     "that failed (retried with backoff)", labels=["printer", "url"])
        failing = GaugeMetricFamily("printerd_sdp_failures_in_a_row", "failed exchanges since "
                                    "the last good one", labels=["printer", "url"])
        for poller in self.pollers:
            labels = [poller.printer.name, poller.config.url]
            polls.add_metric(labels, poller.polls_total)
            jobs.add_metric(labels, poller.jobs_total)
            errors.add_metric(labels, poller.errors_total)
            failing.add_metric(labels, poller.failures)
        yield from (polls, jobs, errors, failing)

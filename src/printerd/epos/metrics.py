"""ePOS-Print's figures for ``GET /metrics``, read at scrape time."""

from __future__ import annotations

from typing import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from printerd.epos.http import EposEndpoint


class EposCollector:
    """A Prometheus collector over the ePOS-Print endpoint's counters."""

    def __init__(self, endpoint: EposEndpoint) -> None:
        self.endpoint = endpoint

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

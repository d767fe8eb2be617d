"""Metrics that cover what can go wrong: HTTP requests by route and status, latency, build info."""

from __future__ import annotations

import platform

import pytest
import twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel, DummyRequest

import printerd
from printerd.http.measure import RequestMetrics
from support import Api, refuse_writes, request, request_json


def samples(body: bytes) -> dict[tuple[str, frozenset], float]:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(body.decode())
            for sample in family.samples}


@pytest.fixture
def api(inline_store, clock):
    return Api(inline_store, clock, tokens=("t0ken",))


def test_requests_are_counted_by_route_method_and_status_refused_ones_too(api):
    auth = {"Authorization": "Bearer t0ken"}
    request_json(api.stub, "/api/recent", headers=auth)
    request_json(api.stub, "/api/recent", headers=auth)
    request_json(api.stub, "/api/receipts/41", headers=auth)  # 404 from the route
    request_json(api.stub, "/api/receipts")  # 401: refused before any route runs
    request_json(api.stub, "/api/no-such-thing", headers=auth)
    request_json(api.stub, "/api/recent", method="BREW", headers=auth)
    found = samples(request(api.stub, "/metrics", headers=auth)[1])

    def count(route, code, method="GET"):
        return found.get(("printerd_http_requests_total", frozenset(
            {"route": route, "method": method, "code": code}.items())))

    assert count("/api/recent", "200") == 2
    assert count("/api/receipts/<int:receipt_id>", "404") == 1
    assert count("/api/receipts", "401") == 1
    assert count("unmatched", "404") == 1
    # A stranger's method cannot add label values without end.
    assert count("unmatched", "405", method="other") == 1
    code, stats = request_json(api.stub, "/api/stats", headers=auth)
    assert stats["http_requests_total"] == {"200": 3, "404": 2, "401": 1, "405": 1}
    # The latency histogram has one observation per timed request of the route.
    assert found[("printerd_http_request_seconds_count",
                  frozenset({"route": "/api/recent"}.items()))] == 2


def test_latency_is_measured_on_the_injected_clock_until_the_last_byte():
    clock = Clock()
    metrics = RequestMetrics(clock)
    observed = []
    metrics.on_latency(lambda route, seconds: observed.append((route, seconds)))
    request = Request(DummyChannel())
    request.method = b"GET"
    metrics.started(request, "/api/recent")
    clock.advance(0.25)
    request.write(b"{}")
    request.finish()
    assert observed == [("/api/recent", 0.25)]
    assert metrics.counts == {("/api/recent", "GET", "200"): 1}


def test_a_client_leaving_is_counted_and_a_stream_is_not_timed():
    clock = Clock()
    metrics = RequestMetrics(clock)
    observed = []
    metrics.on_latency(lambda route, seconds: observed.append(route))
    stream = DummyRequest([b"api", b"stream"])
    metrics.started(stream, "/api/stream")
    clock.advance(300)
    stream.processingFailed(Exception("connection lost"))
    assert metrics.counts == {("/api/stream", "GET", "disconnected"): 1}
    assert observed == []


def test_build_info_says_which_printerd_python_and_twisted_run(api):
    auth = {"Authorization": "Bearer t0ken"}
    found = samples(request(api.stub, "/metrics", headers=auth)[1])
    assert found[("printerd_build_info", frozenset({
        "version": printerd.__version__, "python": platform.python_version(),
        "twisted": twisted.__version__}.items()))] == 1
    assert request_json(api.stub, "/api/stats", headers=auth)[1]["build_info"] == {
        printerd.__version__: 1}
    code, health = request_json(api.stub, "/api/health", headers=auth)
    assert health["version"] == printerd.__version__


def test_retention_runs_and_failures_are_counted(api, inline_store, clock):
    auth = {"Authorization": "Bearer t0ken"}
    api.retention.startService()  # the first run is at once
    stats = request_json(api.stub, "/api/stats", headers=auth)[1]
    assert (stats["retention_runs_total"], stats["retention_failures_total"]) == (1, 0)
    # The next run fails: the database takes no more writes.
    refuse_writes(inline_store)
    clock.advance(3600)
    refuse_writes(inline_store, False)
    stats = request_json(api.stub, "/api/stats", headers=auth)[1]
    assert (stats["retention_runs_total"], stats["retention_failures_total"]) == (2, 1)
    api.retention.stopService()


def test_a_variable_routes_request_is_matched_once_for_metrics_and_dispatch(api, monkeypatch):
    # werkzeug's matcher is most of a variable route's routing: the metrics' match is reused
    # by the dispatch (Klein's own app then matches within the module, once).
    from werkzeug.routing import MapAdapter

    matched_paths = []
    werkzeug_match = MapAdapter.match

    def counted(adapter, *args, **kwargs):
        matched_paths.append(adapter.path_info)
        return werkzeug_match(adapter, *args, **kwargs)

    monkeypatch.setattr(MapAdapter, "match", counted)
    code, _ = request_json(api.stub, "/api/receipts/41", headers={"Authorization": "Bearer t0ken"})
    assert code == 404  # answered by the route: no such receipt
    assert matched_paths == ["/api/receipts/41"] * 2

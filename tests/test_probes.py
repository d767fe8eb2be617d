"""/livez and /readyz: the probes a supervisor uses, without a token, never rate limited."""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock

from printerd.http.ratelimit import RateLimiter
from printerd.listener import ListenerService
from printerd.rawport.factory import RawPrintFactory, RawPrinter
from support import Api, draft, fill, fill_disk, free_disk, request_json, result_of

TOKEN = "probe-token"


@pytest.fixture
def store(inline_store):
    return inline_store


def fill_the_disk(store, clock):
    """Let no page be added to the database, then queue a receipt: its commit fails."""
    fill(store, clock, 1)
    fill_disk(store)
    pending = store.add_receipt(draft("big", raw=b"x" * 300_000))
    clock.advance(store.commit_delay)
    assert store.write_error is not None
    return pending


def test_both_probes_answer_anyone_when_all_is_well(store, clock):
    stub = Api(store, clock, tokens=(TOKEN,)).stub
    assert request_json(stub, "/livez") == (200, {"status": "alive"})
    assert request_json(stub, "/readyz") == (200, {"status": "ready"})
    assert request_json(stub, "/readyz", headers={"Authorization": f"Bearer {TOKEN}"}) == (
        200, {"status": "ready", "checks": {"database": "ok", "raw_listener": "ok"}})


def test_a_full_disk_makes_printerd_not_ready_but_still_alive(store, clock):
    stub = Api(store, clock).stub
    pending = fill_the_disk(store, clock)
    code, body = request_json(stub, "/readyz")
    assert code == 503 and body["status"] == "not ready"
    assert body["checks"]["database"].startswith("cannot write:")
    # A restart would lose the receipt queued in memory: liveness does not fail.
    assert request_json(stub, "/livez") == (200, {"status": "alive"})
    free_disk(store)
    clock.advance(1.0)  # the store retries every second
    assert result_of(pending).text == "big"
    assert request_json(stub, "/readyz")[0] == 200


def test_a_raw_listener_that_is_not_listening_makes_printerd_not_ready(store, clock):
    factory = RawPrintFactory(MemoryReactorClock(), store)
    down = ListenerService("raw_listen", "tcp:0", None, factory)  # never started
    stub = Api(store, clock, printers=[RawPrinter(factory, down)]).stub
    code, body = request_json(stub, "/readyz")
    assert code == 503 and body["checks"]["raw_listener"] == "not listening: tcp:0"
    assert request_json(stub, "/livez")[0] == 200


def test_probes_are_never_rate_limited(store, clock):
    stub = Api(store, clock, limiter=RateLimiter(clock, rate=1.0, burst=2)).stub
    for _ in range(5):
        assert request_json(stub, "/livez")[0] == 200
        assert request_json(stub, "/readyz")[0] == 200
    assert request_json(stub, "/api/recent")[0] == 200
    assert request_json(stub, "/api/recent")[0] == 200
    assert request_json(stub, "/api/recent")[0] == 429

"""
The webhook forwarder and retention over a real SQLite store whose calls run inline, on a
``task.Clock``; HTTP through treq's StubTreq.  Nothing here waits for a thread or a timer.
"""

from __future__ import annotations

import json

import pytest
from treq.testing import StubTreq
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from printerd.config import ConfigError, WebhookTarget, load_settings
from printerd.forwarder.schedule import DEFAULT_DELAYS, RetrySchedule
from printerd.forwarder.service import Forwarder
from printerd.forwarder.signing import sign, verify
from printerd.retention import Retention
from printerd.store import outbox
from support import (
    add_receipts, draft, make_inline_store, pump, refuse_writes, request_json, result_of,
)

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
TARGET = WebhookTarget(name="cloud", url="http://receiver.test/hook", secret=SECRET)


def test_signature_known_answer_from_the_standard_webhooks_spec():
    signature = sign(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert verify(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}',
                  "v1,bogus " + signature)
    assert not verify(SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265331,
                      b'{"test": 2432232314}', signature)


def test_schedule_defaults_and_retry_after():
    schedule = RetrySchedule(jitter=0)
    assert [schedule.delay_after(n) for n in range(8)] == list(DEFAULT_DELAYS)
    assert schedule.delay_after(8) is None
    assert schedule.delay_after(1, retry_after=120) == 120
    jittery = RetrySchedule(jitter=0.1)
    assert all(270 <= jittery.delay_after(2) <= 330 for _ in range(50))


def test_webhook_settings_from_json_and_errors():
    settings = load_settings({}, {"PRINTERD_WEBHOOKS": json.dumps(
        [{"url": "https://x.test/h", "secret": SECRET, "printers": ["bar"]}])})
    (target,) = settings.webhooks
    assert (target.name, target.printers, target.wants("bar"), target.wants("kitchen")) == (
        "webhook1", ("bar",), True, False)
    with pytest.raises(ConfigError, match="PRINTERD_WEBHOOKS"):
        load_settings({}, {"PRINTERD_WEBHOOKS": '[{"url": "ftp://x", "secret": "s"}]'})


class Receiver(Resource):
    """A webhook receiver: answers each POST with the next code, records what it got."""

    isLeaf = True

    def __init__(self, codes: list[int], headers: dict | None = None, hang: bool = False):
        super().__init__()
        self.codes = codes
        self.headers = headers or {}
        self.hang = hang
        self.requests: list[tuple[dict, bytes]] = []

    def render_POST(self, request):
        self.requests.append(({k.decode().lower(): v[0].decode() for k, v in
                               request.requestHeaders.getAllRawHeaders()},
                              request.content.read()))
        if self.hang:
            return NOT_DONE_YET
        request.setResponseCode(self.codes.pop(0) if len(self.codes) > 1 else self.codes[0])
        for name, value in self.headers.items():
            request.setHeader(name, value)
        return b"ok"


class Harness:
    """An inline store with an outbox for ``targets``, and a forwarder posting to ``receiver``."""

    def __init__(self, database: str, clock, receiver: Receiver, targets=(TARGET,),
                 **options) -> None:
        self.clock = clock
        self.store = make_inline_store(
            database, clock, outbox=lambda printer: [t.name for t in targets if t.wants(printer)])
        self.store.startService()
        self.receiver = receiver
        self.stub = StubTreq(receiver)
        self.forwarder = Forwarder(clock, self.store, targets, self.stub,
                                   schedule=RetrySchedule(jitter=0), **options)
        self.store.on_commit(self.forwarder.wake)

    def print(self, *drafts):
        return add_receipts(self.store, self.clock, *(drafts or (draft(),)))

    def pump(self) -> None:
        pump(self.clock, self.stub)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.pump()

    def rows(self) -> list[tuple]:
        return result_of(self.store.read(lambda c: c.execute(
            "SELECT receipt_id, target, state, attempts, next_attempt_at, last_error"
            " FROM deliveries ORDER BY id").fetchall()))

    def stop(self) -> None:
        self.forwarder.stopService()
        assert result_of(self.store.stopService()) is None

    @property
    def target(self):
        return self.forwarder.targets["cloud"]


@pytest.fixture
def harness(database, clock):
    """Makes harnesses on a fresh database, once per engine."""
    made = []

    def make(receiver, **options):
        made.append(Harness(database, clock, receiver, **options))
        return made[-1]

    yield make
    for harness in made:
        harness.stop()


def test_delivery_posts_signed_receipt_json_once(harness):
    receiver = Receiver([204])
    h = harness(receiver)
    h.forwarder.startService()
    (stored,) = h.print()
    h.pump()
    (headers, body), = receiver.requests
    assert json.loads(body)["receipt"]["text"] == "Table 4\nTotal 9.50"
    assert headers["webhook-id"] == f"msg_cloud_{stored.id}"
    assert headers["content-type"] == "application/json"
    assert verify(SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), body,
                  headers["webhook-signature"])
    assert h.target.delivered == 1
    assert h.rows()[0][2:4] == ("delivered", 1)
    h.advance(60)
    assert len(receiver.requests) == 1


def test_failures_follow_the_schedule_then_dead_letter_and_retry(harness):
    receiver = Receiver([500])
    h = harness(receiver)
    h.forwarder.startService()
    h.print()
    h.pump()
    for attempt, delay in enumerate(DEFAULT_DELAYS[1:] + (None,), start=1):
        assert len(receiver.requests) == attempt
        ((receipt_id, target, state, attempts, next_at, error),) = h.rows()
        assert (attempts, error) == (attempt, "HTTP 500")
        if delay is None:
            assert state == "dead"
        else:
            assert state == "pending" and next_at == h.clock.seconds() + delay
            h.advance(delay - 0.5)
            assert len(receiver.requests) == attempt  # not early
            h.advance(1)
    assert len(receiver.requests) == 8
    dead = result_of(h.store.dead_letters(10))
    assert [d["attempts"] for d in dead] == [8]
    receiver.codes[:] = [200]
    assert result_of(h.store.retry_dead(h.clock.seconds(), dead[0]["id"])) == 1
    h.forwarder.wake()
    h.pump()
    assert h.target.delivered == 1
    assert len(receiver.requests) == 9


def test_429_retry_after_is_honoured(harness):
    receiver = Receiver([429, 200], headers={b"Retry-After": b"120"})
    h = harness(receiver)
    h.forwarder.startService()
    h.print()
    h.pump()
    assert h.target.failed == 1
    (row,) = h.rows()
    assert row[4] == h.clock.seconds() + 120  # not the schedule's 5 s
    h.advance(119)
    assert len(receiver.requests) == 1
    h.advance(1)
    assert h.target.delivered == 1 and len(receiver.requests) == 2


def test_410_gone_disables_the_target_and_keeps_the_delivery(harness):
    receiver = Receiver([410])
    h = harness(receiver)
    h.forwarder.startService()
    h.print()
    h.pump()
    assert h.target.disabled
    h.print(draft("another"))
    h.advance(10)
    assert len(receiver.requests) == 1
    assert [row[2] for row in h.rows()] == ["pending", "pending"]
    assert h.forwarder.problems() == [f"cloud disabled ({h.target.disabled})"]


def test_a_receiver_that_never_answers_times_out(harness):
    receiver = Receiver([200], hang=True)
    h = harness(receiver, timeout=15)
    h.forwarder.startService()
    h.print()
    h.pump()
    assert len(receiver.requests) == 1 and h.target.failed == 0
    h.advance(14.9)
    assert h.target.failed == 0
    h.advance(0.1)
    assert h.target.failed == 1
    assert h.target.last_error == "TimeoutError: no answer within 15 s"


def test_printer_filter_writes_no_delivery_for_other_printers(harness):
    bar_only = WebhookTarget(name="bar", url="http://r.test/", secret="s", printers=("bar",))
    h = harness(Receiver([200]), targets=(bar_only,))
    h.print(draft(printer="kitchen"), draft(printer="bar"))
    assert result_of(h.store.read(lambda c: c.execute(
        "SELECT receipt_id, target FROM deliveries").fetchall())) == [(2, "bar")]


def test_pending_deliveries_survive_a_restart_and_go_exactly_once(harness):
    first = harness(Receiver([200]))
    first.print(*(draft(f"receipt {i}") for i in range(5)))  # no forwarder running
    first.stop()

    receiver = Receiver([200])
    second = harness(receiver)
    second.forwarder.startService()
    second.pump()
    assert second.target.delivered == 5
    second.advance(60)
    ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert sorted(ids) == sorted(f"msg_cloud_{i}" for i in range(1, 6))


def test_retention_purges_old_receipts_but_keeps_undelivered_ones(harness):
    h = harness(Receiver([200]))
    day = 86400
    now = 1_800_000_000
    old_delivered, old_pending, recent = h.print(
        draft("old, delivered", at=now - 40 * day), draft("old, pending", at=now - 40 * day),
        draft("recent", at=now - 2 * day))
    result_of(h.store.record_attempt(1, now, outbox.DELIVERED, None, None))
    h.clock.advance(now - h.clock.seconds())
    retention = Retention(h.clock, h.store, days=30, interval=3600, batch=1)
    result_of(retention.run())
    remaining = result_of(h.store.read(lambda c: [r[0] for r in c.execute(
        "SELECT id FROM receipts ORDER BY id")]))
    assert remaining == [old_pending.id, recent.id]
    assert retention.deleted_total == 1 and h.store.receipts_total == 2
    deliveries = result_of(h.store.read(lambda c: [tuple(row) for row in c.execute(
        "SELECT receipt_id, state FROM deliveries ORDER BY id")]))
    assert deliveries == [(old_pending.id, "pending"), (recent.id, "pending")]


def test_a_failing_retention_run_logs_and_the_job_keeps_running(harness):
    h = harness(Receiver([200]))
    refuse_writes(h.store)  # writes now fail
    retention = Retention(h.clock, h.store, days=30, interval=3600)
    retention.startService()
    assert retention.runs_failed == 1
    h.clock.advance(3600)
    assert retention.runs_failed == 2  # the LoopingCall survived the failure
    refuse_writes(h.store, False)
    h.clock.advance(3600)
    assert retention.runs_failed == 2
    retention.stopService()


def test_forwarder_api_lists_targets_dead_letters_and_retries_them(harness):
    from support import Api

    receiver = Receiver([500])
    h = harness(receiver)
    h.forwarder.schedule = RetrySchedule(delays=(0,), jitter=0)  # one attempt, then dead
    h.forwarder.startService()
    api = Api(h.store, h.clock, forwarder=h.forwarder).stub
    h.print(draft(), draft("second"))
    h.pump()
    assert h.target.failed == 2

    code, body = request_json(api, "/api/forwarder")
    (target,) = body["targets"]
    assert (target["name"], target["dead"], target["pending"]) == ("cloud", 2, 0)
    assert target["last_error"] == "HTTP 500"
    code, health = request_json(api, "/api/health")
    assert (code, health["status"]) == (200, "degraded")
    code, body = request_json(api, "/api/forwarder/dead")
    assert [d["receipt_id"] for d in body["dead"]] == [2, 1]

    receiver.codes[:] = [200]
    assert request_json(api, "/api/forwarder/dead/999/retry", method="POST")[0] == 404
    code, body = request_json(api, f"/api/forwarder/dead/{body['dead'][0]['id']}/retry",
                              method="POST")
    assert (code, body) == (200, {"retried": 1})
    h.pump()
    assert h.target.delivered == 1
    code, body = request_json(api, "/api/forwarder/dead/retry", method="POST")
    assert body == {"retried": 1}
    h.pump()
    assert h.target.delivered == 2
    code, health = request_json(api, "/api/health")
    assert health["status"] == "ok"

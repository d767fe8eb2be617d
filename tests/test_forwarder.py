"""The webhook forwarder and retention over a real store; HTTP through treq's StubTreq."""

from __future__ import annotations

import json
import sqlite3

import pytest
import pytest_twisted
from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import Clock, deferLater
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from conftest import make_store
from printerd.config import ConfigError, WebhookTarget, load_settings
from printerd.forwarder import outbox
from printerd.forwarder.schedule import DEFAULT_DELAYS, RetrySchedule
from printerd.forwarder.service import Forwarder
from printerd.forwarder.signing import sign, verify
from printerd.retention import Retention
from printerd.store.receipts import NewReceipt, format_time

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
        [{"url": "https://x.test/h", "secret": "s", "printers": ["bar"]}])})
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


class Setup:
    def __init__(self, store, receiver: Receiver, targets=(TARGET,), **options):
        self.store = store
        self.clock = Clock()
        self.clock.advance(1_700_000_000)
        self.stub = StubTreq(receiver)
        self.forwarder = Forwarder(self.clock, store, targets, self.stub,
                                   schedule=RetrySchedule(jitter=0), **options)
        store.on_commit(self.forwarder.wake)

    async def pump(self, condition, timeout: float = 5.0):
        for _ in range(int(timeout / 0.005)):
            self.stub.flush()
            self.clock.advance(0)
            if condition():
                return
            await deferLater(reactor, 0.005, lambda: None)
        raise AssertionError("condition not met in time")

    async def rows(self):
        return await self.store.read(lambda c: c.execute(
            "SELECT receipt_id, target, state, attempts, next_attempt_at, last_error"
            " FROM deliveries ORDER BY id").fetchall())


def outbox_store(db_path: str, targets=(TARGET,)):
    return make_store(db_path, commit_delay=0.001,
                      outbox=lambda printer: [t.name for t in targets if t.wants(printer)])


def draft(text: str = "Table 4\nTotal 9.50", printer: str = "default", at: float = 1.7e9):
    return NewReceipt(printer=printer, peer="10.0.0.3:7", received_at=format_time(at), job=1,
                      raw=text.encode() + b"\x1dV\x00", text=text, cut="full", truncated=False)


@pytest.fixture
def ostore(db_path):
    store = outbox_store(db_path)
    store.startService()
    yield store
    pytest_twisted.blockon(store.stopService())


@pytest_twisted.ensureDeferred
async def test_delivery_posts_signed_receipt_json_once(ostore):
    receiver = Receiver([204])
    setup = Setup(ostore, receiver)
    setup.forwarder.startService()
    stored = await ostore.add_receipt(draft())
    await setup.pump(lambda: receiver.requests)
    await setup.pump(lambda: setup.forwarder.targets["cloud"].delivered == 1)
    (headers, body), = receiver.requests
    assert json.loads(body)["receipt"]["text"] == "Table 4\nTotal 9.50"
    assert headers["webhook-id"] == f"msg_cloud_{stored.id}"
    assert headers["content-type"] == "application/json"
    assert verify(SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), body,
                  headers["webhook-signature"])
    assert (await setup.rows())[0][2:4] == ("delivered", 1)
    setup.forwarder.stopService()


@pytest_twisted.ensureDeferred
async def test_failures_follow_the_schedule_then_dead_letter_and_retry(ostore):
    receiver = Receiver([500])
    setup = Setup(ostore, receiver)
    setup.forwarder.startService()
    await ostore.add_receipt(draft())
    for attempt, delay in enumerate(DEFAULT_DELAYS[1:] + (None,), start=1):
        await setup.pump(lambda attempt=attempt: len(receiver.requests) == attempt)
        for _ in range(200):
            rows = await setup.rows()
            if rows[0][3] == attempt:
                break
            await deferLater(reactor, 0.005, lambda: None)
        receipt_id, target, state, attempts, next_at, error = rows[0]
        assert error == "HTTP 500"
        if delay is None:
            assert state == "dead"
        else:
            assert state == "pending" and next_at == setup.clock.seconds() + delay
            setup.clock.advance(delay - 0.5)
            await deferLater(reactor, 0.02, lambda: None)
            setup.stub.flush()
            assert len(receiver.requests) == attempt  # not early
            setup.clock.advance(1)
    assert len(receiver.requests) == 8
    dead = await ostore.read(outbox.dead_letters, 10)
    assert [d["attempts"] for d in dead] == [8]
    receiver.codes[:] = [200]
    assert await ostore.write(outbox.retry_dead, setup.clock.seconds(), dead[0]["id"]) == 1
    setup.forwarder.wake()
    await setup.pump(lambda: setup.forwarder.targets["cloud"].delivered == 1)
    setup.forwarder.stopService()


@pytest_twisted.ensureDeferred
async def test_429_retry_after_is_honoured(ostore):
    receiver = Receiver([429, 200], headers={b"Retry-After": b"120"})
    setup = Setup(ostore, receiver)
    setup.forwarder.startService()
    await ostore.add_receipt(draft())
    await setup.pump(lambda: setup.forwarder.targets["cloud"].failed == 1)
    await deferLater(reactor, 0.05, lambda: None)
    (row,) = await setup.rows()
    assert row[4] == setup.clock.seconds() + 120  # not the schedule's 5 s
    setup.clock.advance(119)
    await deferLater(reactor, 0.02, lambda: None)
    assert len(receiver.requests) == 1
    setup.clock.advance(1)
    await setup.pump(lambda: setup.forwarder.targets["cloud"].delivered == 1)
    setup.forwarder.stopService()


@pytest_twisted.ensureDeferred
async def test_410_gone_disables_the_target_and_keeps_the_delivery(ostore):
    receiver = Receiver([410])
    setup = Setup(ostore, receiver)
    setup.forwarder.startService()
    await ostore.add_receipt(draft())
    await setup.pump(lambda: setup.forwarder.targets["cloud"].disabled)
    await ostore.add_receipt(draft("another"))
    setup.clock.advance(10)
    await deferLater(reactor, 0.05, lambda: None)
    setup.stub.flush()
    assert len(receiver.requests) == 1
    assert [row[2] for row in await setup.rows()] == ["pending", "pending"]
    assert setup.forwarder.problems() == [f"cloud disabled ({setup.forwarder.targets['cloud'].disabled})"]
    setup.forwarder.stopService()


@pytest_twisted.ensureDeferred
async def test_a_receiver_that_never_answers_times_out(ostore):
    receiver = Receiver([200], hang=True)
    setup = Setup(ostore, receiver, timeout=15)
    setup.forwarder.startService()
    await ostore.add_receipt(draft())
    await setup.pump(lambda: receiver.requests)
    setup.clock.advance(15)
    await setup.pump(lambda: setup.forwarder.targets["cloud"].failed == 1)
    assert setup.forwarder.targets["cloud"].last_error == "TimeoutError: no answer within 15 s"
    setup.forwarder.stopService()


@pytest_twisted.ensureDeferred
async def test_printer_filter_writes_no_delivery_for_other_printers(db_path):
    bar_only = WebhookTarget(name="bar", url="http://r.test/", secret="s", printers=("bar",))
    store = outbox_store(db_path, (bar_only,))
    store.startService()
    try:
        await store.add_receipt(draft(printer="kitchen"))
        await store.add_receipt(draft(printer="bar"))
        rows = await store.read(lambda c: c.execute(
            "SELECT receipt_id, target FROM deliveries").fetchall())
        assert rows == [(2, "bar")]
    finally:
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_pending_deliveries_survive_a_restart_and_go_exactly_once(db_path):
    first = outbox_store(db_path)
    first.startService()
    for i in range(5):
        await first.add_receipt(draft(f"receipt {i}"))  # no forwarder running: target "down"
    await first.stopService()

    second = outbox_store(db_path)
    second.startService()
    try:
        receiver = Receiver([200])
        setup = Setup(second, receiver)
        setup.forwarder.startService()
        await setup.pump(lambda: setup.forwarder.targets["cloud"].delivered == 5)
        setup.clock.advance(60)
        await deferLater(reactor, 0.05, lambda: None)
        setup.stub.flush()
        ids = [h["webhook-id"] for h, _ in receiver.requests]
        assert sorted(ids) == sorted(f"msg_cloud_{i}" for i in range(1, 6))
        setup.forwarder.stopService()
    finally:
        await second.stopService()


@pytest_twisted.ensureDeferred
async def test_retention_purges_old_receipts_but_keeps_undelivered_ones(db_path):
    store = outbox_store(db_path)
    store.startService()
    try:
        day = 86400
        now = 1_800_000_000
        old_delivered = await store.add_receipt(draft("old, delivered", at=now - 40 * day))
        old_pending = await store.add_receipt(draft("old, pending", at=now - 40 * day))
        recent = await store.add_receipt(draft("recent", at=now - 2 * day))
        await store.write(outbox.record_attempt, 1, now, outbox.DELIVERED, None, None)
        clock = Clock()
        clock.advance(now)
        retention = Retention(clock, store, days=30, interval=3600, batch=1)
        await retention.run()
        remaining = await store.read(lambda c: [r[0] for r in c.execute(
            "SELECT id FROM receipts ORDER BY id")])
        assert remaining == [old_pending.id, recent.id]
        assert old_delivered.id not in remaining
        assert retention.deleted_total == 1 and store.receipts_total == 2
        conn = sqlite3.connect(db_path)
        assert conn.execute("SELECT receipt_id, state FROM deliveries ORDER BY id").fetchall() \
            == [(old_pending.id, "pending"), (recent.id, "pending")]
    finally:
        await store.stopService()


@pytest_twisted.ensureDeferred
async def test_a_failing_retention_run_logs_and_the_job_keeps_running(ostore):
    await ostore.write(lambda c: c.execute("PRAGMA query_only = ON"))  # writes now fail
    clock = Clock()
    retention = Retention(clock, ostore, days=30, interval=3600)
    retention.startService()
    await deferLater(reactor, 0.05, lambda: None)
    assert retention.runs_failed == 1
    clock.advance(3600)
    await deferLater(reactor, 0.05, lambda: None)
    assert retention.runs_failed == 2  # the LoopingCall survived the failure
    await ostore.write(lambda c: c.execute("PRAGMA query_only = OFF"))
    clock.advance(3600)
    await deferLater(reactor, 0.05, lambda: None)
    assert retention.runs_failed == 2
    retention.stopService()


@pytest_twisted.ensureDeferred
async def test_forwarder_api_lists_targets_dead_letters_and_retries_them(ostore):
    from helpers import Api, get_json

    receiver = Receiver([500])
    setup = Setup(ostore, receiver)
    setup.forwarder.schedule = RetrySchedule(delays=(0,), jitter=0)  # one attempt, then dead
    setup.forwarder.startService()
    api = Api(ostore, setup.clock, forwarder=setup.forwarder).stub
    await ostore.add_receipt(draft())
    await ostore.add_receipt(draft("second"))
    await setup.pump(lambda: setup.forwarder.targets["cloud"].failed == 2)

    code, body = await get_json(api, "/api/forwarder")
    (target,) = body["targets"]
    assert (target["name"], target["dead"], target["pending"]) == ("cloud", 2, 0)
    assert target["last_error"] == "HTTP 500"
    code, health = await get_json(api, "/api/health")
    assert (code, health["status"]) == (200, "degraded")
    code, body = await get_json(api, "/api/forwarder/dead")
    assert [d["receipt_id"] for d in body["dead"]] == [2, 1]

    receiver.codes[:] = [200]
    assert (await get_json(api, "/api/forwarder/dead/999/retry", method="POST"))[0] == 404
    code, body = await get_json(api, f"/api/forwarder/dead/{body['dead'][0]['id']}/retry",
                                method="POST")
    assert (code, body) == (200, {"retried": 1})
    await setup.pump(lambda: setup.forwarder.targets["cloud"].delivered == 1)
    code, body = await get_json(api, "/api/forwarder/dead/retry", method="POST")
    assert body == {"retried": 1}
    await setup.pump(lambda: setup.forwarder.targets["cloud"].delivered == 2)
    code, health = await get_json(api, "/api/health")
    assert health["status"] == "ok"
    setup.forwarder.stopService()

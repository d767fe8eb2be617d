"""
The webhook forwarder and retention over a real store (SQLite and PostgreSQL in turn, where a
test takes ``database`` or ``harness``) whose calls run inline, on a ``task.Clock``; HTTP
through treq's StubTreq.  Nothing here waits for a thread or a timer, but for the tests with a
real receiver on a socket.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from types import SimpleNamespace

import pytest
import pytest_twisted
from twisted.internet.defer import maybeDeferred
from twisted.internet.task import Clock, deferLater
from treq.testing import StubTreq
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from printerd.config import ConfigError, WebhookTarget, load_settings
from printerd.forwarder.schedule import DEFAULT_DELAYS, RetrySchedule
from printerd.forwarder.service import Forwarder
from printerd.forwarder.signing import sign, verify
from printerd.retention import Retention
from support import (
    WebhookReceiver, add_receipts, draft, make_inline_store, make_lagging_store, make_store, pump,
    refuse_writes, request_json, result_of, run_clock_until, sqlite_database_at_version,
    wait_until,
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


class Harness:
    """An inline store with an outbox for ``targets``, and a forwarder posting to ``receiver``."""

    def __init__(self, database: str, clock, receiver: WebhookReceiver, targets=(TARGET,),
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
    receiver = WebhookReceiver([204])
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


def test_a_receipt_for_several_targets_is_encoded_once_and_posted_to_each(harness, monkeypatch):
    from printerd.store.receipts import Receipt

    encoded = []
    to_json = Receipt.to_json

    def counted(receipt):
        encoded.append(receipt.id)
        return to_json(receipt)

    receiver = WebhookReceiver([204, 204, 204])
    targets = tuple(WebhookTarget(name=name, url=f"http://{name}.test/hook", secret=SECRET)
                    for name in ("cloud", "backup", "audit"))
    h = harness(receiver, targets=targets)
    h.forwarder.startService()
    monkeypatch.setattr(Receipt, "to_json", counted)
    (stored,) = h.print()
    h.pump()
    assert encoded == [stored.id]  # once for the three targets (three times before)
    bodies = [body for _, body in receiver.requests]
    assert len(bodies) == 3 and len(set(bodies)) == 1
    assert json.loads(bodies[0]) == {"type": "receipt.printed", "site": "",
                                     "receipt": stored.to_json()}


def test_failures_follow_the_schedule_then_dead_letter_and_retry(harness):
    receiver = WebhookReceiver([500])
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
    receiver = WebhookReceiver([429, 200], headers={b"Retry-After": b"120"})
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
    receiver = WebhookReceiver([410])
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
    receiver = WebhookReceiver([200], hang=True)
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
    h = harness(WebhookReceiver([200]), targets=(bar_only,))
    h.print(draft(printer="kitchen"), draft(printer="bar"))
    assert result_of(h.store.read(lambda c: c.execute(
        "SELECT receipt_id, target FROM deliveries").fetchall())) == [(2, "bar")]


def test_pending_deliveries_survive_a_restart_and_go_exactly_once(harness):
    first = harness(WebhookReceiver([200]))
    first.print(*(draft(f"receipt {i}") for i in range(5)))  # no forwarder running
    first.stop()

    receiver = WebhookReceiver([200])
    second = harness(receiver)
    second.forwarder.startService()
    second.pump()
    assert second.target.delivered == 5
    second.advance(60)
    ids = [headers["webhook-id"] for headers, _ in receiver.requests]
    assert sorted(ids) == sorted(f"msg_cloud_{i}" for i in range(1, 6))


def test_retention_purges_old_receipts_but_keeps_undelivered_ones(harness):
    h = harness(WebhookReceiver([200]))
    day = 86400
    now = 1_800_000_000
    old_delivered, old_pending, recent = h.print(
        draft("old, delivered", at=now - 40 * day), draft("old, pending", at=now - 40 * day),
        draft("recent", at=now - 2 * day))
    # (No parameter: SQLite's marker is ?, PostgreSQL's %s.)
    result_of(h.store.write(lambda c: c.execute(
        f"UPDATE deliveries SET state = 'delivered' WHERE receipt_id = {old_delivered.id:d}")))
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
    h = harness(WebhookReceiver([200]))
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

    receiver = WebhookReceiver([500])
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


# -- exactly once: a real receiver on a real socket, the store on real threads ------------------

class CountingReceiver(Resource):
    """
    A webhook receiver on a real socket: counts POSTs and 2xx answers per ``webhook-id``, and
    answers each POST after ``delay()`` seconds with ``answer(receipt_id, nth_post)``.
    """

    isLeaf = True

    def __init__(self, clock, delay, answer) -> None:
        super().__init__()
        self.clock = clock
        self.delay = delay
        self.answer = answer
        self.posts: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()

    def render_POST(self, request):
        message_id = request.getHeader("webhook-id")
        self.posts[message_id] += 1
        code, headers = self.answer(int(message_id.rsplit("_", 1)[1]), self.posts[message_id])
        gone = []
        request.notifyFinish().addErrback(gone.append)

        def answer() -> None:
            if gone:
                return
            request.setResponseCode(code)
            for name, value in headers.items():
                request.setHeader(name, value)
            request.write(b"ok")
            request.finish()
            if 200 <= code < 300:
                self.accepted[message_id] += 1

        self.clock.callLater(self.delay(), answer)
        return NOT_DONE_YET


def mixed_answers(receipt_id: int, nth_post: int) -> tuple[int, dict]:
    """The first 5 receipts' first POSTs get 503, every 7th's 429 + Retry-After: 0; else 200."""
    if nth_post == 1 and receipt_id <= 5:
        return 503, {}
    if nth_post == 1 and receipt_id % 7 == 0:
        return 429, {b"Retry-After": b"0"}
    return 200, {}


async def deliver_through_a_real_receiver(database, receipts: int, per_commit: int,
                                          concurrency: int, delay, answer=mixed_answers):
    """Store ``receipts`` (``per_commit`` at a time), forward them, return the receiver."""
    from twisted.internet import reactor
    from twisted.internet.endpoints import TCP4ServerEndpoint
    from twisted.web.client import Agent, HTTPConnectionPool
    from twisted.web.server import Site
    from treq.client import HTTPClient
    import treq

    receiver = CountingReceiver(reactor, delay, answer)
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(Site(receiver))
    target = WebhookTarget(name="cloud", url=f"http://127.0.0.1:{port.getHost().port}/",
                           secret=SECRET)
    pool = HTTPConnectionPool(reactor)
    pool.maxPersistentPerHost = concurrency
    client = HTTPClient(Agent(reactor, pool=pool))
    # synchronous=NORMAL: durability is not what these tests are about, and it halves their time.
    store = make_store(database, commit_delay=0.001, synchronous="NORMAL",
                       outbox=lambda printer: [target.name])
    forwarder = Forwarder(reactor, store, (target,), SimpleNamespace(post=client.post,
                                                                     content=treq.content),
                          concurrency=concurrency, poll_interval=0.1,
                          schedule=RetrySchedule(delays=(0,) + (0.05,) * 7, jitter=0))
    store.on_commit(forwarder.wake)
    store.startService()
    forwarder.startService()
    try:
        for first in range(0, receipts, per_commit):
            group = [store.add_receipt(draft(f"receipt {n}"))
                     for n in range(first, min(receipts, first + per_commit))]
            if per_commit == 1:
                await group[0]  # one receipt per commit, as one per connection
        await wait_until(lambda: len(receiver.accepted) == receipts, timeout=60)
        await wait_until(lambda: forwarder.targets["cloud"].in_flight == 0)
        await deferLater(reactor, 0.3, lambda: None)  # room for a stray POST to arrive
    finally:
        try:
            await maybeDeferred(forwarder.stopService)
        finally:
            await store.stopService()  # its threads would keep the process alive
            await pool.closeCachedConnections()
            await port.stopListening()
    return receiver


def assert_one_accepted_post_per_receipt(receiver, receipts: int) -> None:
    expected = {f"msg_cloud_{n}" for n in range(1, receipts + 1)}
    assert set(receiver.posts) == expected
    duplicates = {i: n for i, n in receiver.accepted.items() if n != 1}
    assert duplicates == {}, f"{len(duplicates)} receipts were accepted more than once"
    # Each receipt was posted once more than it was refused: no POST after its 2xx.
    refused = {f"msg_cloud_{n}" for n in range(1, receipts + 1)
               if mixed_answers(n, 1)[0] != 200}
    extra = {i: n for i, n in receiver.posts.items() if n != (2 if i in refused else 1)}
    assert extra == {}, f"{len(extra)} receipts were posted more often than refused + 1"


@pytest.mark.parametrize("per_commit", [1, 10])
@pytest.mark.parametrize("concurrency", [1, 4])
def test_one_post_per_receipt_when_the_store_answers_late(database, per_commit, concurrency):
    """
    Issue 20, its mechanism on a clock: 1,000 receipts in a burst, a receiver answering after
    20-200 ms (with 503 and 429 + Retry-After mixed in), and a store whose answers arrive a few
    ms after its reads ran, as from busy threads.  A delivery read as due before its previous
    attempt was recorded must not be sent again.
    """
    clock = Clock()
    clock.advance(1_700_000_000)
    rng = random.Random(20)
    receiver = CountingReceiver(clock, lambda: rng.uniform(0.02, 0.2), mixed_answers)
    stub = StubTreq(receiver)
    store = make_lagging_store(database, clock, read_lag=0.005, write_lag=0.002,
                               outbox=lambda printer: ["cloud"])
    forwarder = Forwarder(clock, store, (TARGET,), stub, concurrency=concurrency,
                          schedule=RetrySchedule(jitter=0))
    store.on_commit(forwarder.wake)
    store.startService()
    forwarder.startService()
    for first in range(0, 1000, per_commit):
        for n in range(first, first + per_commit):
            store.add_receipt(draft(f"receipt {n}"))
        clock.advance(0.0005)  # the next connection's receipts arrive half a millisecond later
        stub.flush()
    run_clock_until(clock, lambda: len(receiver.accepted) == 1000
                    and forwarder.targets["cloud"].in_flight == 0, stub)
    clock.advance(60)  # anything still to be sent would go now
    pump(clock, stub)
    forwarder.stopService()
    store.stopService()
    assert_one_accepted_post_per_receipt(receiver, 1000)


@pytest_twisted.ensureDeferred
@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_healthy_slow_receiver_gets_one_post_per_receipt(database, concurrency):
    """Issue 20: 200 receipts, one per commit, a receiver answering after 20 ms."""
    receiver = await deliver_through_a_real_receiver(
        database, receipts=200, per_commit=1, concurrency=concurrency, delay=lambda: 0.02)
    assert_one_accepted_post_per_receipt(receiver, 200)


@pytest_twisted.ensureDeferred
async def test_a_burst_of_1000_at_10_per_commit_gets_one_post_per_receipt(database):
    receiver = await deliver_through_a_real_receiver(
        database, receipts=1000, per_commit=10, concurrency=4, delay=lambda: 0.02)
    assert_one_accepted_post_per_receipt(receiver, 1000)


# -- claims, engine-neutral: only store methods ----------------------------------------------

def test_a_claim_is_exclusive_until_its_lease_ends_then_comes_back(harness):
    h = harness(WebhookReceiver([200]))
    (receipt,) = h.print()
    now = h.clock.seconds()
    first = result_of(h.store.claim_deliveries(now, {"cloud": 4}, "a", now + 60))
    assert [d.receipt.id for d in first.deliveries] == [receipt.id]
    assert first.due == 1
    # Another instance, and the same one again, find nothing to claim while the lease runs.
    assert result_of(h.store.claim_deliveries(now + 59, {"cloud": 4}, "b", now + 119)).deliveries \
        == []
    assert result_of(h.store.claim_deliveries(now + 59, {"cloud": 4}, "a", now + 119)).deliveries \
        == []
    # Instance a died: when its lease ends, b takes the same delivery (same webhook-id).
    again = result_of(h.store.claim_deliveries(now + 60, {"cloud": 4}, "b", now + 120))
    assert [d.id for d in again.deliveries] == [d.id for d in first.deliveries]
    # Only the claimant records; a's late result is refused and changes nothing.
    delivery_id = first.deliveries[0].id
    assert not result_of(h.store.record_delivery(delivery_id, "a", now + 61, "delivered",
                                                 None, None))
    assert h.rows()[0][2:4] == ("pending", 0)
    assert result_of(h.store.record_delivery(delivery_id, "b", now + 61, "delivered",
                                             None, None))
    assert h.rows()[0][2:4] == ("delivered", 1)
    assert result_of(h.store.claim_deliveries(now + 500, {"cloud": 4}, "a", now + 560)) \
        .deliveries == []


def test_claims_take_at_most_the_room_given_oldest_due_first(harness):
    h = harness(WebhookReceiver([200]))
    h.print(*(draft(f"r{i}") for i in range(6)))
    now = h.clock.seconds()
    claim = result_of(h.store.claim_deliveries(now, {"cloud": 4}, "a", now + 60))
    assert [d.receipt.id for d in claim.deliveries] == [1, 2, 3, 4]
    assert claim.due == 6  # pending and due, claimed or not
    rest = result_of(h.store.claim_deliveries(now, {"cloud": 4}, "b", now + 60))
    assert [d.receipt.id for d in rest.deliveries] == [5, 6]
    assert result_of(h.store.release_claims([5, 6], "a")) == 0  # not a's to release
    assert result_of(h.store.release_claims([5, 6], "b")) == 2
    assert [d.receipt.id for d in result_of(h.store.claim_deliveries(
        now, {"cloud": 4}, "a", now + 60)).deliveries] == [5, 6]


def test_a_delivery_left_in_flight_by_a_dead_instance_is_sent_again_after_the_lease(
        harness, database, clock):
    """At-least-once: a POST in flight when the process died is sent again, same webhook-id."""
    frozen = Clock()  # the dead process's time: it never moves again
    frozen.advance(clock.seconds())
    dead = Harness(database, frozen, WebhookReceiver([200], hang=True), lease=60)
    dead.forwarder.startService()
    dead.print()
    dead.pump()
    assert len(dead.receiver.requests) == 1  # posted; the process dies before any answer

    receiver = WebhookReceiver([200])
    survivor = harness(receiver, lease=60)
    survivor.forwarder.instance = dead.forwarder.instance  # restarted under the same name
    survivor.forwarder.startService()
    survivor.advance(59)
    assert receiver.requests == []  # the lease still runs
    survivor.advance(1)
    (headers, _), = receiver.requests
    assert headers["webhook-id"] == dead.receiver.requests[0][0]["webhook-id"]
    assert survivor.target.delivered == 1


def test_stopping_waits_for_posts_in_flight_and_records_them(harness):
    receiver = WebhookReceiver([200], hang=True)
    h = harness(receiver, timeout=15)
    h.forwarder.startService()
    h.print()
    h.pump()
    stopped = h.forwarder.stopService()
    assert not stopped.called  # the POST is still out
    h.print(draft("after stop"))
    h.advance(15)
    assert stopped.called and len(receiver.requests) == 1  # nothing claimed after stop
    assert [row[2:4] for row in h.rows()] == [("pending", 1), ("pending", 0)]
    assert result_of(h.store.read(lambda c: c.execute(
        "SELECT count(*) FROM deliveries WHERE claimed_by IS NOT NULL").fetchone())) == (0,)


def test_a_version_3_database_gains_claims_and_its_deliveries_still_go(db_path, clock):
    conn = sqlite_database_at_version(db_path, 3)
    conn.execute("INSERT INTO receipts (printer, peer, received_at, job, bytes, raw, text, cut,"
                 " sha256, truncated) VALUES ('default', 'x', '2023-11-14T22:13:20.000000Z', 1,"
                 " 3, x'41420a', 'AB', 'full', '', 0)")
    conn.execute("INSERT INTO deliveries (receipt_id, target, next_attempt_at) VALUES (1, 'cloud', 0)")
    conn.close()

    receiver = WebhookReceiver([200])
    h = Harness(db_path, clock, receiver)
    try:
        h.forwarder.startService()
        h.pump()
        assert [headers["webhook-id"] for headers, _ in receiver.requests] == ["msg_cloud_1"]
        assert h.rows()[0][2] == "delivered"
    finally:
        h.stop()

"""
The webhook forwarder: posts each receipt to every target that wants it, from a durable outbox.

Delivery rows are written with the receipt (same transaction), so the outbox survives crashes
and restarts.  A commit wakes the forwarder at once; a one-second periodic poll picks up retries
as they fall due.  Each POST carries Standard Webhooks headers; 2xx is delivered, anything else
(timeout and refused connection included) is a failure retried on ``RetrySchedule``; 410 Gone
disables the target; after the last attempt a delivery is dead-lettered, never dropped.

Each delivery is claimed in the database before it is posted (``store.claim_deliveries``: a
write, so never from a stale read), for at most ``concurrency`` at a time per target, with a
lease; the result is recorded only while the claim is still this forwarder's.  A receiver that
answers 2xx therefore gets one POST per receipt.  Duplicates remain possible only where
at-least-once cannot avoid them: a POST in flight when the process dies (its claim comes back
when the lease ends) and a 2xx that arrived after the attempt timed out.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from printerd.compact_json import compact_json
from printerd.config import WebhookTarget
from printerd.forwarder.schedule import RetrySchedule, parse_retry_after
from printerd.forwarder.signing import sign
from printerd.periodic import PeriodicJob
from printerd.store import outbox
from printerd.store.receipts import format_time
from printerd.store.service import ReceiptStore


@dataclass
class TargetState:
    """What the forwarder knows about a target between database reads."""

    target: WebhookTarget
    in_flight: int = 0
    disabled: Optional[str] = None
    last_error: Optional[str] = None
    last_error_at: Optional[str] = None
    delivered: int = 0
    failed: int = 0
    failing: bool = False  # the last attempt failed


class Forwarder(Service):
    """Delivers the outbox; see the module docstring."""

    log = Logger()
    name = "forwarder"

    def __init__(self, clock: IReactorTime, store: ReceiptStore, targets: tuple[WebhookTarget, ...],
                 http: Any, timeout: float = 15.0, concurrency: int = 4,
                 schedule: Optional[RetrySchedule] = None, poll_interval: float = 1.0,
                 instance: str = "printerd", lease: Optional[float] = None) -> None:
        """
        ``http`` is treq, or a treq-like client (``treq.testing.StubTreq`` in tests).
        ``instance`` names this forwarder's claims; ``lease`` is how long a claim lasts
        (default: twice the timeout plus 30 s, well past an attempt's end), after which a
        claim left by a dead instance is taken again.
        """
        self.clock = clock
        self.store = store
        self.http = http
        self.timeout = timeout
        self.concurrency = concurrency
        self.schedule = schedule or RetrySchedule()
        self.targets = {t.name: TargetState(t) for t in targets}
        self.instance = instance
        self.lease = 2 * timeout + 30 if lease is None else lease
        self._polling = False
        self._poll_again = False
        self._deliveries: set[Deferred[None]] = set()
        self._job = PeriodicJob("forwarder", clock, poll_interval, self.poll)
        self.due = 0  # deliveries due at the last poll, at most outbox.DUE_LIMIT (metrics)

    def startService(self) -> None:
        super().startService()
        if self.targets:
            self._job.startService()

    def stopService(self) -> Deferred[None]:
        """Stop claiming; fires once the POSTs in flight have been answered and recorded."""
        super().stopService()
        stopped = self._job.stopService() if self._job.running else succeed(None)
        in_flight = DeferredList([stopped, *self._deliveries])
        return in_flight.addCallback(lambda _: None)

    def wake(self, receipts: object = None) -> None:
        """Store commit listener: new deliveries are due now."""
        if self.running and self.targets:
            self.clock.callLater(0, self.poll)

    # -- polling -----------------------------------------------------------------------------

    def poll(self) -> Deferred[None]:
        """Claim and send every due delivery a target has room for; never raises."""
        return Deferred.fromCoroutine(self._poll())

    async def _poll(self) -> None:
        if self._polling:
            self._poll_again = True
            return
        self._polling = True
        try:
            while True:
                self._poll_again = False
                await self._send_due()
                if not self._poll_again:
                    break
        except Exception:
            self.log.failure("forwarder poll failed; will try again")
        finally:
            self._polling = False

    async def _send_due(self) -> None:
        # Polls run one at a time and only deliveries finishing change in_flight meanwhile
        # (downwards), so what is claimed here always fits within concurrency.
        room = {name: self.concurrency - state.in_flight for name, state in self.targets.items()
                if state.disabled is None and state.in_flight < self.concurrency}
        if not room or not self.running:
            return
        now = self.clock.seconds()
        claim = await self.store.claim_deliveries(now, room, self.instance, now + self.lease)
        self.due = claim.due
        unsent = []
        for delivery in claim.deliveries:
            state = self.targets[delivery.target]
            if state.disabled is not None or not self.running:
                unsent.append(delivery.id)  # disabled or stopped while the claim was taken
                continue
            state.in_flight += 1
            delivering = Deferred.fromCoroutine(self._deliver(delivery, state))
            self._deliveries.add(delivering)
            delivering.addBoth(self._delivered, delivering)
        if unsent:
            await self.store.release_claims(unsent, self.instance)

    def _delivered(self, result: None, delivering: Deferred[None]) -> None:
        self._deliveries.discard(delivering)

    # -- one delivery ------------------------------------------------------------------------

    async def _body(self, delivery: outbox.Delivery, target: WebhookTarget) -> bytes:
        """
        ``{"type": "receipt.printed", "site": ..., "receipt": {...}}``, the receipt's JSON
        encoded once for every target (``Receipt.json_bytes``), its raw bytes added for a
        target that wants them.
        """
        receipt = delivery.receipt
        encoded = receipt.json_bytes
        if target.include_raw:
            raw = await self.store.get_raw(receipt.id)
            encoded = b'%s,"raw_base64":"%s"}' % (encoded[:-1], base64.b64encode(raw or b""))
        site = compact_json(receipt.site).encode()
        return b'{"type":"receipt.printed","site":%s,"receipt":%s}' % (site, encoded)

    async def _deliver(self, delivery: outbox.Delivery, state: TargetState) -> None:
        target = state.target
        try:
            body = await self._body(delivery, target)
            message_id = f"msg_{target.name}_{delivery.receipt.id}"  # stable: receivers dedupe
            timestamp = int(self.clock.seconds())
            headers = {
                "Content-Type": ["application/json"],
                "webhook-id": [message_id],
                "webhook-timestamp": [str(timestamp)],
                "webhook-signature": [sign(target.secret, message_id, timestamp, body)],
            }
            if target.token:  # a central printerd's ingest takes API tokens
                headers["Authorization"] = [f"Bearer {target.token}"]
            try:
                request = self.http.post(target.url, data=body, headers=headers)
                response = await request.addTimeout(self.timeout, self.clock,
                                                    onTimeoutCancel=_timed_out)
                await self.http.content(response)  # drain, so the connection can be reused
                code, retry_after = response.code, parse_retry_after(
                    response.headers.getRawHeaders(b"retry-after", [None])[0])
                error = None if 200 <= code < 300 else f"HTTP {code}"
            except Exception as e:  # timeout, refused, DNS, TLS: all failures to retry
                code, retry_after = None, None
                error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            await self._record(delivery, state, code, retry_after, error)
        except Exception:
            self.log.failure("delivery {id} to {target} could not be recorded",
                             id=delivery.id, target=target.name)
        finally:
            state.in_flight -= 1
        if state.disabled is None:
            self.wake()

    async def _record(self, delivery: outbox.Delivery, state: TargetState, code: Optional[int],
                      retry_after: Optional[float], error: Optional[str]) -> None:
        """Write the attempt's outcome, then count it (counters follow the database)."""
        now = self.clock.seconds()
        name = state.target.name
        next_attempt_at: Optional[float] = None
        counted = True
        if error is None:
            result = outbox.DELIVERED
        elif code == 410:
            # The receiver says it is gone for good: stop sending, keep the deliveries.
            result, counted = outbox.PENDING, False
        else:
            delay = self.schedule.delay_after(
                delivery.attempts + 1, retry_after if code in (429, 503) else None)
            result = outbox.DEAD if delay is None else outbox.PENDING
            next_attempt_at = None if delay is None else now + delay
        if not await self.store.record_delivery(delivery.id, self.instance, now, result,
                                                next_attempt_at, error, counted):
            # The lease ran out and another claim owns the delivery now: its result counts.
            self.log.warn("delivery {id} of receipt {receipt} to {target}: the claim was lost "
                          "before the result could be recorded", id=delivery.id,
                          receipt=delivery.receipt.id, target=name)
            return
        if error is None:
            state.delivered += 1
            state.failing = False
            return
        if code == 410:
            state.disabled = f"{format_time(now)}: 410 Gone"
            self.log.error("webhook {target} answered 410 Gone: target disabled", target=name)
        elif result == outbox.DEAD:
            self.log.warn("delivery of receipt {receipt} to {target} is dead after {n} "
                          "attempts: {error}", receipt=delivery.receipt.id, target=name,
                          n=delivery.attempts + 1, error=error)
        state.failed += 1
        state.failing = True
        state.last_error, state.last_error_at = error, format_time(now)

    # -- reporting ---------------------------------------------------------------------------

    async def report(self) -> list[dict[str, Any]]:
        counts = await self.store.delivery_counts()
        return [{
            "name": name, "url": state.target.url, "printers": list(state.target.printers),
            "disabled": state.disabled, "in_flight": state.in_flight,
            "pending": counts.get(name, {}).get(outbox.PENDING, 0),
            "delivered": counts.get(name, {}).get(outbox.DELIVERED, 0),
            "dead": counts.get(name, {}).get(outbox.DEAD, 0),
            "failed_attempts": state.failed, "last_error": state.last_error,
            "last_error_at": state.last_error_at,
        } for name, state in self.targets.items()]

    def problems(self) -> list[str]:
        """Targets that are disabled or whose last attempt failed (health: degraded)."""
        found = []
        for name, state in self.targets.items():
            if state.disabled:
                found.append(f"{name} disabled ({state.disabled})")
            elif state.failing:
                found.append(f"{name} failing: {state.last_error}")
        return found


def _timed_out(result: object, timeout: float) -> None:
    raise TimeoutError(f"no answer within {timeout:g} s")

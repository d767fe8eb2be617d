"""
The webhook forwarder: posts each receipt to every target that wants it, from a durable outbox.

Delivery rows are written with the receipt (same transaction), so the outbox survives crashes
and restarts.  A commit wakes the forwarder at once; a one-second LoopingCall picks up retries
as they fall due.  Each POST carries Standard Webhooks headers; 2xx is delivered, anything else
(timeout and refused connection included) is a failure retried on ``RetrySchedule``; 410 Gone
disables the target; after the last attempt a delivery is dead-lettered, never dropped.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from printerd.config import WebhookTarget
from printerd.forwarder.schedule import RetrySchedule, parse_retry_after
from printerd.forwarder.signing import sign
from printerd.store import outbox
from printerd.store.receipts import format_time
from printerd.store.service import ReceiptStore

FETCH_LIMIT = 200


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
                 schedule: Optional[RetrySchedule] = None, poll_interval: float = 1.0) -> None:
        """``http`` is treq, or a treq-like client (``treq.testing.StubTreq`` in tests)."""
        self.clock = clock
        self.store = store
        self.http = http
        self.timeout = timeout
        self.concurrency = concurrency
        self.schedule = schedule or RetrySchedule()
        self.targets = {t.name: TargetState(t) for t in targets}
        self._in_flight: set[int] = set()
        self._polling = False
        self._poll_again = False
        self._loop = LoopingCall(self.poll)
        self._loop.clock = clock
        self._poll_interval = poll_interval
        self.due = 0  # deliveries due at the last poll, at most FETCH_LIMIT (metrics)

    def startService(self) -> None:
        super().startService()
        if self.targets:
            self._loop.start(self._poll_interval, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def wake(self, receipts: object = None) -> None:
        """Store commit listener: new deliveries are due now."""
        if self.running and self.targets:
            self.clock.callLater(0, self.poll)

    # -- polling -----------------------------------------------------------------------------

    def poll(self) -> Deferred[None]:
        """Send every due delivery a target has room for; never raises (LoopingCall body)."""
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
        open_targets = [name for name, state in self.targets.items()
                        if state.disabled is None and state.in_flight < self.concurrency]
        if not open_targets:
            return
        due = await self.store.due_deliveries(self.clock.seconds(), open_targets, FETCH_LIMIT)
        self.due = len(due)
        for delivery in due:
            state = self.targets[delivery.target]
            if delivery.id in self._in_flight or state.in_flight >= self.concurrency:
                continue
            self._in_flight.add(delivery.id)
            state.in_flight += 1
            Deferred.fromCoroutine(self._deliver(delivery, state))

    # -- one delivery ------------------------------------------------------------------------

    async def _body(self, delivery: outbox.Delivery, target: WebhookTarget) -> bytes:
        receipt = delivery.receipt.to_json()
        if target.include_raw:
            raw = await self.store.get_raw(delivery.receipt.id)
            receipt["raw_base64"] = base64.b64encode(raw or b"").decode()
        payload = {"type": "receipt.printed", "site": receipt["site"], "receipt": receipt}
        return json.dumps(payload, separators=(",", ":")).encode()

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
            self._in_flight.discard(delivery.id)
            state.in_flight -= 1
        if state.disabled is None:
            self.wake()

    async def _record(self, delivery: outbox.Delivery, state: TargetState, code: Optional[int],
                      retry_after: Optional[float], error: Optional[str]) -> None:
        """Write the attempt's outcome, then count it (counters follow the database)."""
        now = self.clock.seconds()
        name = state.target.name
        if error is None:
            await self.store.record_attempt(delivery.id, now, outbox.DELIVERED,
                                   None, None)
            state.delivered += 1
            state.failing = False
            return
        if code == 410:
            # The receiver says it is gone for good: stop sending, keep the deliveries.
            await self.store.record_attempt(delivery.id, now, outbox.PENDING,
                                   None, error, False)
            state.disabled = f"{format_time(now)}: 410 Gone"
            self.log.error("webhook {target} answered 410 Gone: target disabled", target=name)
        else:
            delay = self.schedule.delay_after(
                delivery.attempts + 1, retry_after if code in (429, 503) else None)
            if delay is None:
                self.log.warn("delivery of receipt {receipt} to {target} is dead after {n} "
                              "attempts: {error}", receipt=delivery.receipt.id, target=name,
                              n=delivery.attempts + 1, error=error)
                await self.store.record_attempt(delivery.id, now, outbox.DEAD,
                                       None, error)
            else:
                await self.store.record_attempt(delivery.id, now,
                                       outbox.PENDING, now + delay, error)
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

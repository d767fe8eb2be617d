"""
Live receipts as Server-Sent Events: one hub, thousands of subscribers, no gap on resume.

The hub listens to the store's commits.  Each receipt's event is encoded once and the same
bytes go to every subscriber.  A subscriber that resumes (``Last-Event-ID`` or ``?after=``)
first replays what it missed while live events are held back; then the held events newer than
the last replayed id follow, so nothing is missed and nothing repeats.  The replay comes from
the store's memory cache of the newest receipts when it holds everything after the resume point
(a reconnect storm after a restart costs no query), else from the database a page at a time, and
subscribers resuming from the same point share each page's query.

A subscriber is a push producer registered on its request: while the client's socket is
backed up, events queue in the subscriber, and past ``max_buffer`` bytes it is disconnected
(it reconnects and replays), so one slow client costs bounded memory and delays no one.

An open stream costs as few objects as it can: thousands are held at once, and every object
they keep is one the garbage collector walks in each full collection.  So a subscriber has no
timer of its own: the keepalive job, which visits every subscriber anyway, also ends the streams
that have reached ``max_duration`` (at the first keepalive after it).
"""

from __future__ import annotations

from collections import Counter, deque
from functools import partial
from typing import Callable, Optional, Sequence, cast

from twisted.application.service import Service
from twisted.internet.abstract import FileDescriptor
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest
from twisted.web.server import Request
from zope.interface import implementer

from printerd.config import DEFAULTS
from printerd.periodic import PeriodicJob
from printerd.store.receipts import Receipt

KEEPALIVE = b": keepalive\n\n"
REPLAY_PAGE = 500  # receipts read per replay query
REPLAY_SLICE = 50  # replayed events written before waiting for the client's socket
PAGES_KEPT = 16  # replay pages kept for subscribers resuming from the same point
ENCODED_CACHE = 1024  # replayed receipts' events kept encoded

# The store's receipts_after(after_id, limit, printer): committed receipts in id order.
ReadAfter = Callable[[int, int, Optional[str]], Deferred[list[Receipt]]]
# One receipt's event for the fan-out: (id, printer, event, event framed as an HTTP chunk).
Event = tuple[int, str, bytes, bytes]


def encode_event(receipt: Receipt) -> bytes:
    """The SSE event for one committed receipt."""
    return b"id: %d\nevent: receipt\ndata: %s\n\n" % (receipt.id, receipt.json_bytes)


def _send_now(transport: FileDescriptor, data: bytes) -> None:
    """
    Write ``data`` and send it at once, in the fan-out's slice, rather than in a later reactor
    turn that would send every subscriber's write of a commit before serving anything else.
    A send that fails leaves the data buffered and the socket watched for writing, so the
    reactor meets the error on its next turn and closes the connection as for any write;
    one closing after its buffer empties is left to the reactor.
    """
    transport.write(data)
    if not transport.disconnecting:
        transport.doWrite()


def http_chunk(data: bytes) -> bytes:
    """data framed as one HTTP/1.1 chunk, as Request.write would frame it."""
    return b"%x\r\n%s\r\n" % (len(data), data)


KEEPALIVE_CHUNK = http_chunk(KEEPALIVE)


@implementer(IPushProducer)
class Subscriber:
    """One open stream; see the module docstring."""

    def __init__(self, hub: StreamHub, request: IRequest, printer: Optional[str],
                 last_id: int, replaying: bool, opened_at: float = 0.0) -> None:
        self.hub = hub
        self.request = request
        self.printer = printer
        self.client = ""  # its address, for the per-client cap
        self.last_id = last_id
        self.opened_at = opened_at
        self.live = not replaying
        # Made when first needed: most subscribers never need them.
        # (id, event, chunk) of live events held during a replay; id None: an update event.
        self._held: Optional[list[tuple[Optional[int], bytes, Optional[bytes]]]] = None
        self._held_bytes = 0
        self._queue: Optional[deque[bytes]] = None
        self._queued_bytes = 0
        self._paused = False
        self._writable: Optional[list[Deferred[None]]] = None
        # The socket's write, once the stream is chunked and live (see ``write_directly``).
        self._send_chunk: Optional[Callable[[bytes], None]] = None
        self.closed = False
        # Bytes went out since the last keepalive pass: the stream is not quiet, and needs no
        # keepalive comment (a pass writing to 10,000 busy streams at once stalled the reactor).
        self.spoke = False

    # -- events in ---------------------------------------------------------------------------

    def deliver_commit(self, events: list[Event], first_id: int, last_id: int,
                       chunks: bytes) -> None:
        """
        A commit's live events from the hub; ``chunks``: all of them framed, joined.

        The fan-out to thousands calls this for every subscriber, so the common case (a live,
        unfiltered stream whose socket takes more, lacking all of the commit) is one socket
        write, the bytes shared by every subscriber.
        """
        if (self._send_chunk is not None and self.printer is None and self.live
                and not self._paused and not self._queue and self.last_id < first_id):
            self.last_id = last_id
            self.spoke = True
            self._send_chunk(chunks)
            return
        mine = [(receipt_id, event, chunk) for receipt_id, printer, event, chunk in events
                if self.printer is None or printer == self.printer]
        if self.live:
            self.send_events(mine)
            return
        for receipt_id, event, chunk in mine:
            self._hold(receipt_id, event, chunk)

    def write_directly(self) -> None:
        """
        The headers are out: write live events' chunks to the socket itself, skipping
        ``Request.write``'s framing (when the response is chunked, as HTTP/1.1's are).
        """
        channel = getattr(self.request, "channel", None)
        transport = getattr(channel, "transport", None)
        if transport is None or not getattr(self.request, "chunked", False):
            return
        if isinstance(transport, FileDescriptor):  # a socket of the reactor's
            self._send_chunk = partial(_send_now, transport)
        else:  # TLS, or a test's transport: written when the reactor gets to it
            self._send_chunk = transport.write

    def update(self, printer: str, event: bytes, chunk: Optional[bytes] = None) -> None:
        """A stored receipt changed: sent now, or after the replay if one is running."""
        if self.printer is not None and printer != self.printer:
            return
        if not self.live:
            self._hold(None, event, chunk)
            return
        self.write(event, chunk)

    def _hold(self, receipt_id: Optional[int], event: bytes, chunk: Optional[bytes]) -> None:
        if self._held is None:
            self._held = []
        self._held.append((receipt_id, event, chunk))
        self._held_bytes += len(event)
        if self._held_bytes > self.hub.max_buffer:
            self.hub.drop_slow(self)

    def send(self, receipt_id: int, event: bytes, chunk: Optional[bytes] = None) -> None:
        """Send an event unless the client already has it (ids only grow)."""
        if receipt_id <= self.last_id:
            return
        self.last_id = receipt_id
        self.write(event, chunk)

    def send_events(self, events: Sequence[tuple[int, bytes, bytes]]) -> None:
        """
        Events (id, event, chunk) in id order, replayed or live: those the client lacks, in
        one socket send when it takes them now (a send per event would be 200,000 sends for a
        reconnect storm of 10,000 streams twenty events behind).
        """
        lacking = [chunk for receipt_id, _, chunk in events if receipt_id > self.last_id]
        if (lacking and self._send_chunk is not None and not self.closed and not self._paused
                and not self._queue):
            self.last_id = events[-1][0]
            self.spoke = True
            self._send_chunk(b"".join(lacking))
            return
        for receipt_id, event, chunk in events:
            self.send(receipt_id, event, chunk)

    def go_live(self) -> None:
        """
        Replay is over: send the held live events the replay did not cover, each run of
        receipts between updates in one send.
        """
        held, self._held, self._held_bytes = self._held or [], None, 0
        self.live = True
        receipts: list[tuple[int, bytes, bytes]] = []
        for receipt_id, event, chunk in held:
            if receipt_id is None:  # an update: after the receipts held before it
                if receipts:
                    self.send_events(receipts)
                    receipts = []
                self.write(event, chunk)
            else:  # a receipt's event comes from the hub framed (deliver_commit)
                receipts.append((receipt_id, event, chunk or http_chunk(event)))
        if receipts:
            self.send_events(receipts)

    # -- bytes out ---------------------------------------------------------------------------

    def write(self, data: bytes, chunk: Optional[bytes] = None) -> None:
        if self.closed:
            return
        self.spoke = True
        if self._paused or self._queue:
            if self._queue is None:
                self._queue = deque()
            self._queue.append(data)
            self._queued_bytes += len(data)
            if self._queued_bytes > self.hub.max_buffer:
                self.hub.drop_slow(self)
            return
        if chunk is not None and self._send_chunk is not None:
            # The same framed bytes for every subscriber: skips Request.write's per-call
            # framing, which dominates the cost of a fan-out to thousands.
            self._send_chunk(chunk)
        else:
            self.request.write(data)

    def writable(self) -> Deferred[None]:
        """Fires once the client's socket accepts more (at once if it does now)."""
        d: Deferred[None] = Deferred()
        if self._paused:
            if self._writable is None:
                self._writable = []
            self._writable.append(d)
        else:
            d.callback(None)
        return d

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        while self._queue and not self._paused and not self.closed:
            data = self._queue.popleft()
            self._queued_bytes -= len(data)
            self.request.write(data)
        if not self._paused and self._writable:
            waiting, self._writable = self._writable, None
            for d in waiting:
                d.callback(None)

    def stopProducing(self) -> None:
        self.close()

    # -- ending ------------------------------------------------------------------------------

    def end(self) -> None:
        """End the stream cleanly (maximum duration, shutdown); the client reconnects."""
        if self.closed:
            return
        self.close()
        request = cast(Request, self.request)
        if getattr(request, "channel", None) is not None:  # gone if the client left
            request.unregisterProducer()
            request.finish()

    def close(self) -> None:
        """Forget this subscriber (the client left, was dropped, or the stream ended)."""
        if self.closed:
            return
        self.closed = True
        self._send_chunk = None
        self._queue = None
        self._held = None
        self.hub.remove(self)


class SubscriberLimit(Exception):
    """The hub is full, or this client has its share of it; the message says which."""


Commit = tuple[list[Event], int, int, bytes]  # events, first id, last id, their chunks joined


def _joined(first: Commit, then: Commit) -> Commit:
    """Two commits' events as one delivery, in id order."""
    return first[0] + then[0], first[1], then[2], first[3] + then[3]


class StreamHub(Service):
    """Fans committed receipts out to every stream subscriber; see the module docstring."""

    log = Logger()
    name = "stream-hub"

    def __init__(self, clock: IReactorTime, read_after: ReadAfter,
                 keepalive: float = DEFAULTS.sse_keepalive,
                 max_duration: float = DEFAULTS.sse_max_duration,
                 max_buffer: int = DEFAULTS.sse_max_buffer,
                 max_subscribers: int = DEFAULTS.sse_max_subscribers,
                 max_per_client: int = DEFAULTS.sse_max_per_client, retry_ms: int = 3000,
                 slice_size: int = 1000, newest: Sequence[Receipt] = ()) -> None:
        """
        ``newest``: the store's memory cache of the newest receipts in id order (every receipt
        from its first on), which replays read instead of the database when they can.
        """
        self.clock = clock
        self.read_after = read_after
        self.newest = newest
        self.keepalive = keepalive
        self.max_duration = max_duration
        self.max_buffer = max_buffer
        self.max_subscribers = max_subscribers
        self.max_per_client = max_per_client
        self._per_client: Counter[str] = Counter()  # client address -> open streams
        self.retry_ms = retry_ms
        self.slice_size = slice_size
        # (a commit, or commits joined; the subscribers still to get it), in commit order:
        # every entry's list of subscribers is non-empty.
        self._fanout: deque[tuple[Commit, list[Subscriber]]] = deque()
        self._fanout_call: Optional[IDelayedCall] = None
        self.subscribers: set[Subscriber] = set()
        self.events_total = 0
        self.dropped_slow_total = 0
        self.replays_from_memory_total = 0
        self.replay_queries_total = 0
        self._reads: dict[tuple[int, Optional[str]], list[Deferred[list[Receipt]]]] = {}
        self._pages: dict[tuple[int, Optional[str]], list[Receipt]] = {}
        # Receipt id -> (the receipt, its id, event and chunk).  Kept for the receipt object
        # itself: an update (OCR) or a new read of a changed row is another object.
        self._encoded: dict[int, tuple[Receipt, tuple[int, bytes, bytes]]] = {}
        self._keepalive = PeriodicJob("stream-keepalive", clock, keepalive, self._send_keepalive,
                                      now=False)

    def startService(self) -> None:
        super().startService()
        self._keepalive.startService()

    def stopService(self) -> None:
        super().stopService()
        self._keepalive.stopService()
        for subscriber in list(self.subscribers):
            subscriber.end()

    def subscribe(self, request: IRequest, printer: Optional[str],
                  after: Optional[int], client: str = "") -> Subscriber:
        """
        A new subscriber, live at once or (with ``after``) replaying first; ``client`` (its
        address) may hold at most ``max_per_client`` of the ``max_subscribers`` streams.
        """
        if len(self.subscribers) >= self.max_subscribers:
            raise SubscriberLimit(f"the stream has its maximum of {self.max_subscribers} "
                                  "subscribers")
        if self._per_client[client] >= self.max_per_client:
            raise SubscriberLimit(f"this client has its maximum of {self.max_per_client} streams")
        subscriber = Subscriber(self, request, printer, after or 0, replaying=after is not None,
                                opened_at=self.clock.seconds())
        subscriber.client = client
        self._per_client[client] += 1
        self.subscribers.add(subscriber)
        return subscriber

    def begin(self, subscriber: Subscriber) -> None:
        """
        Start a new subscriber's stream: a live one has nothing to do; a resuming one replays
        what it missed, then goes live (see ``_replay``).
        """
        subscriber.write_directly()
        if subscriber.live:
            return
        replay = Deferred.fromCoroutine(self._replay(subscriber))
        replay.addErrback(self._replay_failed, subscriber)

    async def _replay(self, subscriber: Subscriber) -> None:
        """
        Replay a page at a time, from memory when the cache covers it, else from the database;
        a page goes out ``REPLAY_SLICE`` events at a time as the client's socket takes them,
        each event the bytes every subscriber shares (a replay to thousands at once copies
        nothing per subscriber).  With nothing to wait for, it is all done before ``begin``
        returns.
        """
        first = True
        while not subscriber.closed:
            page = self._from_memory(subscriber.last_id, subscriber.printer)
            if page is not None:
                self.replays_from_memory_total += first
                more = False  # the cache runs to the newest receipt
            else:
                page = await self._read_page(subscriber.last_id, subscriber.printer)
                more = len(page) >= REPLAY_PAGE
            first = False
            for start in range(0, len(page), REPLAY_SLICE):
                subscriber.send_events([self._encoded_event(r)
                                        for r in page[start:start + REPLAY_SLICE]])
                await subscriber.writable()
            if not more:
                break
        if not subscriber.closed:
            subscriber.go_live()

    def _from_memory(self, after: int, printer: Optional[str]) -> Optional[list[Receipt]]:
        """The receipts after ``after`` from the memory cache, if it holds every one of them."""
        newest = self.newest
        # The cache holds every receipt from its first on, so it covers everything after
        # ``after`` when its first is no later than the one that comes next.  An empty cache
        # proves nothing: retention may have emptied it and left receipts a webhook waits for.
        if not newest or newest[0].id > after + 1:
            return None
        missed = []
        for receipt in reversed(newest):
            if receipt.id <= after:
                break
            if printer is None or receipt.printer == printer:
                missed.append(receipt)
        missed.reverse()
        return missed

    def _read_page(self, after: int, printer: Optional[str]) -> Deferred[list[Receipt]]:
        """
        A replay page from the database; subscribers resuming from the same point share one
        query: the one in flight, or its result until a commit may have added to it.
        """
        key = (after, printer)
        page: Deferred[list[Receipt]] = Deferred()
        if key in self._pages:
            page.callback(self._pages[key])
            return page
        waiting = self._reads.get(key)
        if waiting is not None:
            waiting.append(page)
            return page
        self._reads[key] = [page]  # before the read: a read may fire at once
        self.replay_queries_total += 1
        self.read_after(after, REPLAY_PAGE, printer).addBoth(self._page_read, key)
        return page

    def _page_read(self, result: list[Receipt] | Failure, key: tuple[int, Optional[str]]) -> None:
        if not isinstance(result, Failure):
            if len(self._pages) >= PAGES_KEPT:
                self._pages.clear()
            self._pages[key] = result
        for page in self._reads.pop(key):
            if isinstance(result, Failure):
                page.errback(result)
            else:
                page.callback(result)

    def _forget_pages(self, keep_full: bool) -> None:
        # A page that was not full may lack a receipt committed since; a full page is followed
        # by a read of the next one, which finds it.
        if self._pages:
            self._pages = {key: page for key, page in self._pages.items()
                           if keep_full and len(page) >= REPLAY_PAGE}

    def _replay_failed(self, failure: Failure, subscriber: Subscriber) -> None:
        self.log.failure("stream replay failed: ending the stream", failure)
        subscriber.end()

    def _encoded_event(self, receipt: Receipt) -> tuple[int, bytes, bytes]:
        """A receipt's (id, event, chunk), encoded once for every subscriber."""
        cached = self._encoded.get(receipt.id)
        if cached is not None and cached[0] is receipt:
            return cached[1]
        if len(self._encoded) >= ENCODED_CACHE:
            self._encoded.clear()
        event = encode_event(receipt)
        encoded = (receipt.id, event, http_chunk(event))
        self._encoded[receipt.id] = (receipt, encoded)
        return encoded

    def remove(self, subscriber: Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.discard(subscriber)
            self._per_client[subscriber.client] -= 1
            if self._per_client[subscriber.client] <= 0:
                del self._per_client[subscriber.client]

    def publish(self, receipts: list[Receipt]) -> None:
        """
        Store commit listener: one encoded event per receipt, the same bytes for all.

        Deliveries go out in slices of ``slice_size`` subscribers per reactor turn, in order,
        so a fan-out to thousands never holds the reactor long enough to stall the REST API.
        Each subscriber in a slice gets all of the commit's events at once: its socket then
        takes them in one send, not one per event.  When the fan-out is behind, the subscribers
        still waiting for the previous commit get this one in the same send: the busier the
        reactor, the fewer sends a receipt costs, where a send per commit would only fall
        further behind.
        """
        self._forget_pages(keep_full=True)
        self.events_total += len(receipts)
        if not receipts or not self.subscribers:
            return  # nobody to encode for (a replay encodes what it sends itself)
        events = []
        for receipt in receipts:
            _, event, chunk = self._encoded_event(receipt)  # a replay from memory reuses it
            events.append((receipt.id, receipt.printer, event, chunk))
        commit = (events, events[0][0], events[-1][0], b"".join(e[3] for e in events))
        subscribers = list(self.subscribers)
        if self._fanout:
            (previous, waiting) = self._fanout[-1]
            self._fanout[-1] = (_joined(previous, commit), waiting)
            still_waiting = set(waiting)
            subscribers = [s for s in subscribers if s not in still_waiting]
        if subscribers:
            self._fanout.append((commit, subscribers))
        if self._fanout_call is None:
            self._fanout_call = self.clock.callLater(0, self._fan_out)

    def publish_update(self, receipt: Receipt, kind: bytes = b"receipt.ocr") -> None:
        """
        A receipt changed after its commit (OCR read its images): an event of its own type
        (``event: receipt.ocr``) with the receipt's whole JSON. It has no ``id:`` line: ids are
        receipt ids in commit order, the point a client resumes from, and an update must not
        move it (a client that missed the update reads ``ocr_text`` in the receipt itself).
        """
        self._forget_pages(keep_full=False)  # they hold the receipt as it was
        event = b"event: %s\ndata: %s\n\n" % (kind, receipt.json_bytes)
        chunk = http_chunk(event)
        self.events_total += 1
        for subscriber in list(self.subscribers):
            try:
                subscriber.update(receipt.printer, event, chunk)
            except Exception:
                self.log.failure("update to a stream subscriber failed: dropping it")
                subscriber.close()

    def _fan_out(self) -> None:
        budget = self.slice_size
        while self._fanout and budget > 0:
            (events, first_id, last_id, chunks), pending = self._fanout[0]
            batch = pending[-budget:]  # from the end: taking them off costs no copying
            del pending[-budget:]
            for subscriber in batch:
                # One subscriber's failure ends its stream only, never the fan-out to the
                # others.  (In the loop rather than a method per subscriber: this runs
                # hundreds of thousands of times a second with 10,000 streams.)
                try:
                    subscriber.deliver_commit(events, first_id, last_id, chunks)
                except Exception:
                    self.log.failure("delivery to a stream subscriber failed: dropping it")
                    subscriber.close()
            budget -= len(batch)
            if not pending:
                self._fanout.popleft()
        self._fanout_call = self.clock.callLater(0, self._fan_out) if self._fanout else None

    def drop_slow(self, subscriber: Subscriber) -> None:
        self.dropped_slow_total += 1
        self.log.warn("stream subscriber fell {limit} bytes behind: disconnecting it",
                      limit=self.max_buffer)
        subscriber.close()
        transport = getattr(subscriber.request, "transport", None)
        if transport is not None:
            transport.abortConnection()

    def _send_keepalive(self) -> None:
        # Keeps proxies (Cloudflare's idle timeout is 100 s) from closing quiet streams, and
        # ends those that have reached their maximum duration.  A stream that got bytes since
        # the last pass is not quiet.
        ending = self.clock.seconds() - self.max_duration
        for subscriber in list(self.subscribers):
            try:
                if subscriber.opened_at <= ending:
                    subscriber.end()
                    continue
                if not subscriber.spoke:
                    subscriber.write(KEEPALIVE, KEEPALIVE_CHUNK)
                subscriber.spoke = False
            except Exception:
                self.log.failure("keepalive to a subscriber failed")
                subscriber.close()

    def stats(self) -> dict[str, int]:
        return {"sse_subscribers": len(self.subscribers),
                "sse_events_total": self.events_total,
                "sse_dropped_slow_total": self.dropped_slow_total}

"""The SSE stream: formatting, resume without gap or duplicate, keepalive, limits, cleanup."""

from __future__ import annotations

import json

import pytest
import pytest_twisted
import treq
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.web import http
from twisted.web.test.requesthelper import DummyRequest

from printerd.http.stream import KEEPALIVE, StreamHub, encode_event
from printerd.store.receipts import NewReceipt, Receipt, format_time
from support import StreamHarness, add_receipts, request_json, result_of


def nothing_stored(after, limit, printer):
    """A hub's history when no receipt was stored before its subscribers came."""
    return succeed([])


def draft(i: int, printer: str = "default") -> NewReceipt:
    return NewReceipt(printer=printer, peer="10.0.0.2:999", received_at=format_time(1e9 + i),
                      job=1, raw=b"r\n", text=f"receipt {i}", cut="full", truncated=False)


def parse_events(body: bytes) -> list[dict]:
    events = []
    for block in body.decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line
                      and not line.startswith(":"))
        if "id" in fields:
            events.append({"id": int(fields["id"]), "event": fields["event"],
                           "data": json.loads(fields["data"])})
    return events


@pytest.fixture
def store(inline_store):
    return inline_store


def events_in(chunks) -> list[dict]:
    return parse_events(b"".join(chunks))


def test_headers_retry_line_and_one_event_per_committed_receipt(store, clock):
    harness = StreamHarness(store, clock)
    response, chunks = harness.open()
    assert response.headers.getRawHeaders("content-type") == ["text/event-stream"]
    assert response.headers.getRawHeaders("cache-control") == ["no-cache"]
    assert chunks[0] == (b'retry: 3000\n\nevent: database\ndata: {"database_id":"%s"}\n\n'
                         % store.database_id.encode())
    stored = [harness.commit(draft(i))[0] for i in range(3)]
    events = events_in(chunks)
    assert [e["id"] for e in events] == [r.id for r in stored]
    assert {e["event"] for e in events} == {"receipt"}
    assert events[1]["data"] == stored[1].to_json()
    assert harness.hub.stats()["sse_events_total"] == 3


def test_an_event_is_encoded_once_as_the_spec_says():
    receipt = Receipt(7, "bar", "p", "t", 1, 2, "two\nlines", "full", False, "ab")
    event = encode_event(receipt)
    lines = event.split(b"\n")
    assert lines[:2] == [b"id: 7", b"event: receipt"]
    assert json.loads(lines[2][len(b"data: "):])["text"] == "two\nlines"  # one data line
    assert event.endswith(b"\n\n") and event.count(b"\n") == 4


def test_resume_replays_then_goes_live_without_gap_or_duplicate(store, clock):
    add_receipts(store, clock, *(draft(i) for i in range(1201)))  # more than two replay pages
    pages_read_after = []

    def one_page_per_clock_turn(after, limit, printer):
        # Each replay page is read on the next turn of the clock: receipts committed between
        # turns land while the replay runs.
        pages_read_after.append(after)
        return deferLater(clock, 0, lambda: result_of(store.receipts_after(after, limit, printer)))

    harness = StreamHarness(store, clock, read_after=one_page_per_clock_turn)
    d = harness.stub.get("http://printerd/api/stream", headers={"Last-Event-ID": ["150"]})
    harness.stub.flush()
    chunks: list[bytes] = []
    treq.collect(result_of(d), chunks.append)
    for i in range(300):  # a commit per clock turn, replay pages meanwhile
        add_receipts(store, clock, draft(2000 + i))
        harness.stub.flush()
    last = harness.commit(*(draft(3000 + i) for i in range(5)))[-1].id
    assert pages_read_after[:3] == [150, 650, 1150]  # the replay overlapped the commits
    assert [e["id"] for e in events_in(chunks)] == list(range(151, last + 1))


def test_after_parameter_and_printer_filter(store, clock):
    add_receipts(store, clock, *(draft(i, printer="bar" if i % 2 else "kitchen")
                                 for i in range(6)))
    harness = StreamHarness(store, clock)
    response, chunks = harness.open("/api/stream?after=2&printer=bar")
    harness.commit(draft(7, printer="kitchen"))
    harness.commit(draft(8, printer="bar"))
    events = events_in(chunks)
    assert [(e["id"], e["data"]["printer"]) for e in events] == [(4, "bar"), (6, "bar"), (8, "bar")]


def test_only_quiet_streams_get_a_keepalive_comment():
    clock = Clock()
    hub = StreamHub(clock, nothing_stored, keepalive=15)
    hub.startService()
    busy_request, quiet_request = DummyRequest([b""]), DummyRequest([b""])
    hub.subscribe(busy_request, None, None)
    hub.subscribe(quiet_request, "other-printer", None)
    clock.advance(10)
    hub.publish([plain_receipt(1)])
    clock.advance(5)  # the first pass: the busy stream got receipt 1 within it
    assert busy_request.written.count(KEEPALIVE) == 0
    assert quiet_request.written == [KEEPALIVE]
    clock.advance(15)  # nothing printed since: both are quiet now
    assert busy_request.written.count(KEEPALIVE) == 1
    assert quiet_request.written == [KEEPALIVE] * 2
    hub.stopService()


def test_keepalive_and_maximum_duration_follow_the_clock(store, clock):
    harness = StreamHarness(store, clock, keepalive=15, max_duration=300)
    response, chunks = harness.open()
    clock.advance(15)
    harness.pump()
    assert b"".join(chunks).count(KEEPALIVE) == 1
    done = treq.content(response)
    clock.advance(285)
    harness.pump()
    assert done.called
    assert harness.hub.subscribers == set()


def test_subscriber_limit_answers_503_with_retry_after(store, clock):
    harness = StreamHarness(store, clock, max_subscribers=2)
    harness.open()
    harness.open()
    response, _ = harness.open()
    assert response.code == 503
    assert response.headers.getRawHeaders("retry-after") == ["30"]
    body = treq.content(response)
    harness.pump()
    assert "maximum of 2" in json.loads(result_of(body))["error"]


@pytest.mark.parametrize("headers, query", [({"Last-Event-ID": ["abc"]}, ""), ({}, "?after=-1"),
                                            ({}, "?since=1")])
def test_bad_resume_points_are_400(store, clock, headers, query):
    harness = StreamHarness(store, clock)
    response, _ = harness.open("/api/stream" + query, headers=headers)
    assert response.code == 400
    assert harness.hub.subscribers == set()


def test_a_slow_subscriber_is_dropped_at_its_cap_and_others_are_not_delayed():
    clock = Clock()
    hub = StreamHub(clock, nothing_stored, max_buffer=1000)
    slow_request, fast_request = DummyRequest([b""]), DummyRequest([b""])
    slow_request.transport = StringTransport()
    slow = hub.subscribe(slow_request, None, None)
    hub.subscribe(fast_request, None, None)
    slow.pauseProducing()  # the client's socket is full
    receipts = [Receipt(i, "p", "x", "t", 1, 1, "y" * 200, "full", False, "s") for i in range(1, 6)]
    hub.publish(receipts)
    clock.advance(0)
    assert slow not in hub.subscribers
    assert slow_request.transport.disconnected or slow_request.transport.disconnecting
    assert hub.dropped_slow_total == 1
    assert len(fast_request.written) == 5


def test_a_paused_subscriber_catches_up_in_order_when_resumed():
    clock = Clock()
    hub = StreamHub(clock, nothing_stored, max_buffer=10_000)
    request = DummyRequest([b""])
    subscriber = hub.subscribe(request, None, None)
    subscriber.pauseProducing()
    hub.publish([plain_receipt(i) for i in (1, 2, 3)])
    clock.advance(0)
    assert request.written == []
    subscriber.resumeProducing()
    assert ids_written(request) == [1, 2, 3]


def test_stats_include_stream_counters(store, clock):
    harness = StreamHarness(store, clock)
    harness.open()
    code, body = request_json(harness.stub, "/api/stats")
    assert (body["sse_subscribers"], body["sse_events_total"], body["sse_dropped_slow_total"]) \
        == (1, 0, 0)


def hub_with_subscribers(clock: Clock, count: int, slice_size: int):
    """A hub fanning out ``slice_size`` at a time, and ``count`` live subscribers' requests."""
    hub = StreamHub(clock, nothing_stored, slice_size=slice_size)
    requests = [DummyRequest([b""]) for _ in range(count)]
    for request in requests:
        hub.subscribe(request, None, None)
    return hub, requests


def plain_receipt(receipt_id: int) -> Receipt:
    return Receipt(receipt_id, "p", "x", "t", 1, 1, "y", "full", False, "s")


def ids_written(request) -> list[int]:
    """The ids of the events written to a request, in order."""
    return [int(w.split(b"\n")[0][4:]) for w in request.written]


def test_fan_out_goes_in_slices_and_keeps_event_order():
    clock = Clock()
    hub, requests = hub_with_subscribers(clock, 5, slice_size=3)
    hub.publish([plain_receipt(i) for i in (1, 2)])

    # A slice is 3 subscribers, each given both events of the commit at once (one send each).
    one_reactor_turn(clock)
    assert sorted(len(r.written) for r in requests) == [0, 0, 2, 2, 2]
    one_reactor_turn(clock)
    assert sorted(len(r.written) for r in requests) == [2] * 5
    clock.advance(0)  # any further turn sends nothing more
    assert sorted(len(r.written) for r in requests) == [2] * 5
    ids = [ids_written(r) for r in requests]
    assert ids == [[1, 2]] * 5


def test_a_fan_out_that_is_behind_gives_the_waiting_subscribers_the_next_commit_with_it():
    clock = Clock()
    hub, requests = hub_with_subscribers(clock, 5, slice_size=3)
    late_request = DummyRequest([b""])

    hub.publish([plain_receipt(1)])
    one_reactor_turn(clock)  # three of the five have receipt 1
    waiting = [r for r in requests if not r.written]
    assert len(waiting) == 2
    hub.subscribe(late_request, None, None)  # live from now: receipt 2 on, not 1
    hub.publish([plain_receipt(2)])
    one_reactor_turn(clock)
    # The two still waiting for receipt 1 got receipt 2 with it, in the same slice (one
    # subscriber more of the three in a slice got receipt 2 alone).
    assert [ids_written(r) for r in waiting] == [[1, 2], [1, 2]]
    assert sum(len(ids_written(r)) for r in [*requests, late_request]) == 3 + 2 * 2 + 1
    one_reactor_turn(clock)
    clock.advance(0)
    assert [ids_written(r) for r in requests] == [[1, 2]] * 5
    assert ids_written(late_request) == [2]
    assert not hub._fanout


def one_reactor_turn(clock: Clock) -> None:
    """
    Run the calls due now, as one turn of a reactor does (Clock.advance would also run the
    calls they schedule, which a reactor runs on its next turn, after other I/O).
    """
    due = [c for c in clock.getDelayedCalls() if c.getTime() <= clock.seconds()]
    for call in due:
        clock.calls.remove(call)
        call.func(*call.args, **call.kw)


def test_one_subscriber_whose_delivery_raises_does_not_stop_the_stream_for_the_others():
    class BrokenRequest(DummyRequest):
        def write(self, data):
            raise RuntimeError("Request.write called on a request after Request.finish")

    clock = Clock()
    hub = StreamHub(clock, nothing_stored)
    broken = hub.subscribe(BrokenRequest([b""]), None, None)
    healthy_request = DummyRequest([b""])
    hub.subscribe(healthy_request, None, None)
    hub.publish([plain_receipt(1)])
    clock.advance(0)
    hub.publish([plain_receipt(2)])
    clock.advance(0)
    assert ids_written(healthy_request) == [1, 2]
    assert broken not in hub.subscribers  # dropped, as the keepalive loop drops it


def test_a_resume_within_the_memory_cache_replays_from_it_without_a_query(store, clock):
    stored = add_receipts(store, clock, *(draft(i) for i in range(510)))  # the cache keeps 500
    queries = []

    def read_after(after, limit, printer):
        queries.append(after)
        return store.receipts_after(after, limit, printer)

    harness = StreamHarness(store, clock, read_after=read_after, newest=store.newest)
    response, chunks = harness.open(headers={"Last-Event-ID": [str(stored[-6].id)]})
    live = harness.commit(draft(999))
    assert [e["id"] for e in events_in(chunks)] == [r.id for r in stored[-5:] + live]
    assert queries == []
    assert harness.hub.replays_from_memory_total == 1
    # The cache keeps the newest 500, from the 12th on now: a resume from the 5th asks the
    # database.
    assert store.newest[0].id == stored[11].id
    response, chunks = harness.open(headers={"Last-Event-ID": [str(stored[4].id)]})
    assert queries == [stored[4].id]  # one page of 500; the cache holds the rest
    assert [e["id"] for e in events_in(chunks)] == [r.id for r in stored[5:] + live]


def test_a_printers_resume_from_memory_gets_only_that_printers_receipts(store, clock):
    stored = add_receipts(store, clock, *(draft(i, printer="bar" if i % 2 else "kitchen")
                                          for i in range(10)))
    harness = StreamHarness(store, clock, read_after=nothing_stored, newest=store.newest)
    response, chunks = harness.open(f"/api/stream?after={stored[3].id}&printer=bar")
    assert [e["id"] for e in events_in(chunks)] == [r.id for r in stored[4:] if r.printer == "bar"]


def test_streams_resuming_from_the_same_point_share_one_query(store, clock):
    stored = add_receipts(store, clock, *(draft(i) for i in range(30)))
    queries = []

    def next_turn(after, limit, printer):
        queries.append(after)
        return deferLater(clock, 0, lambda: result_of(store.receipts_after(after, limit, printer)))

    # No memory cache: every resume reads.
    harness = StreamHarness(store, clock, read_after=next_turn)
    opened = [harness.stub.get("http://printerd/api/stream",
                               headers={"Last-Event-ID": [str(stored[9].id)]}) for _ in range(3)]
    harness.stub.flush()
    bodies: list[list[bytes]] = []
    for d in opened:
        bodies.append([])
        treq.collect(result_of(d), bodies[-1].append)
    harness.pump()
    assert queries == [stored[9].id]
    assert harness.hub.replay_queries_total == 1
    for chunks in bodies:
        assert [e["id"] for e in events_in(chunks)] == [r.id for r in stored[10:]]
    # Its result serves those that come later too, until a commit may have added to it.
    resume = {"Last-Event-ID": [str(stored[9].id)]}
    response, chunks = harness.open(headers=resume)
    assert queries == [stored[9].id]
    assert [e["id"] for e in events_in(chunks)] == [r.id for r in stored[10:]]
    live = harness.commit(draft(99))
    response, chunks = harness.open(headers=resume)
    assert queries == [stored[9].id] * 2
    assert [e["id"] for e in events_in(chunks)] == [r.id for r in stored[10:] + live]


def test_open_streams_hold_no_timer_each_and_still_end_at_their_maximum_duration(store, clock):
    harness = StreamHarness(store, clock, keepalive=15, max_duration=60)
    harness.open()
    timers_for_one = len(clock.getDelayedCalls())
    responses = [harness.open()[0] for _ in range(50)]
    assert len(clock.getDelayedCalls()) == timers_for_one
    ended = [treq.content(response) for response in responses]
    clock.advance(45)
    harness.pump()
    assert not any(d.called for d in ended)
    clock.advance(15)
    harness.pump()
    assert all(d.called for d in ended)
    assert harness.hub.subscribers == set()


def test_head_of_the_stream_answers_its_headers_and_opens_nothing(store, clock):
    harness = StreamHarness(store, clock)
    d = harness.stub.head("http://printerd/api/stream")
    harness.stub.flush()
    response = result_of(d)
    assert response.code == 200
    assert response.headers.getRawHeaders("content-type") == ["text/event-stream"]
    assert harness.hub.subscribers == set()


class CountingTransport(StringTransport):
    """A socket that counts the writes it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


def http11_request() -> tuple[http.Request, CountingTransport]:
    """A real Request on an HTTP/1.1 channel, its headers sent; writes counted from here."""
    transport = CountingTransport()
    channel = http.HTTPChannel()
    channel.makeConnection(transport)
    request = http.Request(channel)
    request.method, request.clientproto, request.uri = b"GET", b"HTTP/1.1", b"/api/stream"
    request.write(b"retry: 3000\n\n")  # the headers go out, chunked
    transport.writes = 0
    transport.clear()
    return request, transport


def open_http11_stream(hub: StreamHub, after=None):
    """``http11_request``'s request subscribed and begun; writes counted from here."""
    request, transport = http11_request()
    subscriber = hub.subscribe(request, None, after)
    hub.begin(subscriber)
    transport.writes = 0
    transport.clear()
    return subscriber, transport


def chunked_ids(framed: bytes) -> list[int]:
    """The event ids in HTTP chunks as written to the socket."""
    return [e["id"] for e in parse_events(b"".join(framed.split(b"\r\n")[1::2]))]


def test_a_commit_reaches_a_live_stream_in_one_socket_write_and_never_twice():
    clock = Clock()
    hub = StreamHub(clock, nothing_stored)
    subscriber, transport = open_http11_stream(hub)
    receipts = [plain_receipt(i) for i in (1, 2, 3)]
    hub.publish(receipts)
    clock.advance(0)
    assert transport.writes == 1
    framed = transport.value()
    assert framed == b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in map(encode_event, receipts))
    # A commit it already has in part (a replay got there first) goes event by event: only
    # the receipts it lacks.
    subscriber.last_id = 4
    transport.clear()
    hub.publish([plain_receipt(i) for i in (4, 5)])
    clock.advance(0)
    assert chunked_ids(transport.value()) == [5]


def test_a_printers_stream_gets_its_receipts_of_a_commit_in_one_socket_write():
    from dataclasses import replace as replaced

    clock = Clock()
    hub = StreamHub(clock, nothing_stored)
    request, transport = http11_request()
    hub.begin(hub.subscribe(request, "bar", None))
    hub.publish([replaced(plain_receipt(i), printer="bar" if i != 2 else "kitchen")
                 for i in (1, 2, 3)])
    clock.advance(0)
    assert transport.writes == 1 and chunked_ids(transport.value()) == [1, 3]


def test_a_replay_reaches_the_stream_in_one_socket_write_per_slice():
    # A reconnect storm of 10,000 streams twenty events behind was 200,000 sends, one per
    # event, and took 5 s instead of 2.
    clock = Clock()
    hub = StreamHub(clock, nothing_stored, newest=[plain_receipt(i) for i in range(1, 121)])
    request, transport = http11_request()
    hub.begin(hub.subscribe(request, None, 10))
    assert transport.writes == 3  # 110 events, REPLAY_SLICE (50) at a time
    assert chunked_ids(transport.value()) == list(range(11, 121))
    hub.publish([plain_receipt(121)])
    clock.advance(0)
    assert transport.writes == 4 and chunked_ids(transport.value())[-1] == 121


def test_live_events_held_during_a_replay_go_out_one_send_per_run_between_updates():
    clock = Clock()
    page: Deferred[list[Receipt]] = Deferred()
    hub = StreamHub(clock, lambda after, limit, printer: page)
    request, transport = http11_request()
    hub.begin(hub.subscribe(request, None, 10))  # waits for the database's page
    for receipt_id in (13, 14, 15):
        hub.publish([plain_receipt(receipt_id)])
        clock.advance(0)
    hub.publish_update(plain_receipt(14))
    hub.publish([plain_receipt(16)])
    clock.advance(0)
    assert transport.writes == 0  # all held
    page.callback([plain_receipt(i) for i in (11, 12, 13)])
    # The replay's slice, then 14 and 15 (13 came in the replay), the update, then 16.
    assert transport.writes == 4
    framed = transport.value()
    assert chunked_ids(framed) == [11, 12, 13, 14, 15, 16]
    assert framed.index(b"event: receipt.ocr") > framed.index(b"id: 15\n")
    assert framed.index(b"event: receipt.ocr") < framed.index(b"id: 16\n")


def test_a_replay_after_an_ocr_update_sends_the_receipt_as_updated():
    # The hub keeps replayed receipts' events encoded; an update must not leave the old event
    # to the next replay.
    from dataclasses import replace as replaced

    clock = Clock()
    before = plain_receipt(1)
    newest = [before]
    hub = StreamHub(clock, nothing_stored, newest=newest)
    first = DummyRequest([b""])
    hub.begin(hub.subscribe(first, None, 0))
    assert b'"ocr_text":null' in b"".join(first.written)
    after = replaced(before, ocr_text="Total 9.50")
    newest[0] = after
    hub.publish_update(after)
    second = DummyRequest([b""])
    hub.begin(hub.subscribe(second, None, 0))
    replayed = [w for w in second.written if w.startswith(b"id: 1\n")]
    assert len(replayed) == 1 and b'"ocr_text":"Total 9.50"' in replayed[0]


@pytest_twisted.ensureDeferred
async def test_a_commit_is_sent_on_a_real_socket_within_the_fan_outs_slice():
    """
    On a reactor's socket the fan-out sends each subscriber's chunk in its slice, not in a
    later reactor turn (which would send every subscriber's write before serving anything
    else). A subscriber whose client is gone is closed by the reactor on its next turn.
    """
    import socket

    from twisted.internet import reactor
    from twisted.web.resource import Resource
    from twisted.web.server import NOT_DONE_YET, Site

    clock = Clock()  # the hub's slices; the sockets are the real reactor's
    hub = StreamHub(clock, nothing_stored)
    streams = []

    class Stream(Resource):
        isLeaf = True

        def render_GET(self, request):
            request.write(b"retry: 3000\n\n")  # the headers, chunked from here on
            subscriber = hub.subscribe(request, None, None)
            hub.begin(subscriber)
            request.notifyFinish().addBoth(lambda _: subscriber.close())
            streams.append(subscriber)
            return NOT_DONE_YET

    clients = []
    for _ in range(2):
        ours, theirs = socket.socketpair()
        reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX, Site(Stream()))
        ours.close()  # the reactor holds a descriptor of its own
        theirs.sendall(b"GET /api/stream HTTP/1.1\r\nHost: printerd\r\n\r\n")
        theirs.setblocking(False)
        clients.append(theirs)
    for _ in range(50):
        await deferLater(reactor, 0.01, lambda: None)
        if len(streams) == 2:
            break
    await deferLater(reactor, 0.05, lambda: None)  # the headers reach the clients
    for client in clients:
        assert client.recv(65536).startswith(b"HTTP/1.1 200")

    clients[1].close()  # this client leaves without a word
    hub.publish([plain_receipt(1)])
    clock.advance(0)  # the fan-out, without letting the reactor run
    sent = clients[0].recv(65536)
    assert [e["id"] for e in parse_events(sent.split(b"\r\n")[1])] == [1]
    assert len(hub.subscribers) == 2
    for _ in range(50):  # the reactor meets the failed send and closes that connection
        await deferLater(reactor, 0.01, lambda: None)
        if len(hub.subscribers) == 1:
            break
    assert len(hub.subscribers) == 1  # the other client's stream goes on
    hub.publish([plain_receipt(2)])
    clock.advance(0)
    sent = clients[0].recv(65536)
    assert [e["id"] for e in parse_events(sent.split(b"\r\n")[1])] == [2]
    clients[0].close()
    await deferLater(reactor, 0.01, lambda: None)

"""Admission control on its own: slots, fair share, waiting, descriptors, port pausing, drain."""

from __future__ import annotations

from typing import Optional

from twisted.internet.testing import MemoryReactorClock

from printerd.rawport.admission import EVICT_AFTER, STALLED_AFTER, Admission, AdmissionLimits
from printerd.rawport.counters import PrinterCounters


class FakeConnection:
    """An admitted connection as admission sees it: records what it was told to do."""

    def __init__(self, host: str = "10.0.0.7", clock: Optional[MemoryReactorClock] = None) -> None:
        self.host = host
        self.job: Optional[int] = None
        self.last_printed_at = clock.seconds() if clock is not None else 0.0
        self.events: list[str] = []

    def start_job(self) -> None:
        self.job = 1
        self.events.append("started")

    def wait_for_slot(self) -> None:
        self.events.append("waiting")

    def hang_up(self) -> None:
        self.events.append("hung up")

    def end_and_close(self, abort: bool = False) -> None:
        self.events.append("aborted" if abort else "closed")

    @property
    def state(self) -> str:
        return self.events[-1]


class RecordingPort:
    """Stands in for the listening port: records pause / resume."""

    def __init__(self) -> None:
        self.changes: list[str] = []

    def stopReading(self) -> None:
        self.changes.append("paused")

    def startReading(self) -> None:
        self.changes.append("resumed")

    def getHost(self):
        return object()  # not a TCP address: no backlog to read


def make_admission(max_connections: int = 2, max_per_peer: int = 0, wait_timeout: float = 60,
                   max_open: int = 1000):
    clock = MemoryReactorClock()
    counters = PrinterCounters()
    admission: Admission[FakeConnection] = Admission(clock, AdmissionLimits(
        max_connections=max_connections, max_per_peer=max_per_peer, wait_timeout=wait_timeout,
        max_open=max_open), counters)
    port = RecordingPort()
    admission.set_port(port)  # type: ignore[arg-type]
    return admission, port, clock, counters


def arrive(admission: Admission, host: str = "10.0.0.7", clock=None) -> FakeConnection:
    connection = FakeConnection(host, clock)
    assert admission.accepts(host)
    admission.admit(connection)
    return connection


def test_over_the_limit_connections_wait_and_the_oldest_starts_next():
    admission, port, _, _ = make_admission(max_connections=2)
    first, second, third, fourth = (arrive(admission) for _ in range(4))
    assert [c.events for c in (first, second, third, fourth)] == [
        ["started"], ["started"], ["waiting"], ["waiting"]]
    assert (admission.connections_active, admission.connections_waiting) == (2, 2)
    admission.release(first)
    assert third.state == "started" and fourth.state == "waiting"
    admission.release(second)
    assert fourth.state == "started"
    assert (admission.connections_active, admission.connections_waiting) == (2, 0)
    assert port.changes == []  # the port is paused only for descriptors or storage


def test_a_waiting_connection_that_hangs_up_leaves_the_queue():
    admission, _, _, _ = make_admission(max_connections=1)
    busy, gone, next_one = (arrive(admission) for _ in range(3))
    admission.release(gone)
    assert admission.connections_waiting == 1
    admission.release(busy)
    assert next_one.events == ["waiting", "started"]
    assert gone.events == ["waiting"]


def test_a_connection_that_waits_past_the_wait_timeout_is_closed_and_counted():
    admission, _, clock, counters = make_admission(max_connections=1, wait_timeout=60)
    busy = arrive(admission)
    early = arrive(admission)
    clock.advance(30)
    late = arrive(admission)
    clock.advance(30)
    assert early.state == "hung up" and late.state == "waiting"
    assert counters.connections_expired_total == 1
    admission.release(early)  # its connection closes
    admission.release(busy)
    assert late.state == "started"
    clock.advance(60)
    assert late.state == "started"  # a started job has no wait deadline


def test_the_per_peer_cap_queues_a_busy_peer_and_lets_others_start():
    admission, port, _, _ = make_admission(max_connections=10, max_per_peer=2)
    busy = [arrive(admission, "10.0.0.7") for _ in range(3)]
    other = arrive(admission, "10.0.0.8")
    assert [c.events for c in busy] == [["started"], ["started"], ["waiting"]]
    assert other.events == ["started"]
    admission.release(busy[0])
    assert busy[2].state == "started"


def test_a_burst_at_a_hosts_cap_waits_in_the_backlog_while_its_queue_moves():
    admission, port, clock, counters = make_admission(max_connections=2, max_open=16)
    burst = [arrive(admission, "10.0.0.7", clock) for _ in range(14)]  # 16 - 16 // 8
    assert port.changes == ["paused"]  # the rest of the burst waits in the kernel, not closed
    # Accepted in the same batch as the pause: they wait here too, up to the port's share.
    burst += [arrive(admission, "10.0.0.7", clock) for _ in range(2)]
    assert not admission.accepts("10.0.0.7") and not admission.accepts("10.0.0.8")  # full
    clock.advance(STALLED_AFTER - 1)
    for connection in burst[:3]:  # jobs end, waiting ones start: the queue moves
        admission.release(connection)
    assert port.changes == ["paused", "resumed"]  # below the cap again
    clock.advance(STALLED_AFTER)
    assert counters.connections_turned_away_total == 2  # the two asked while full
    assert [c.state for c in burst[3:]] == ["started", "started"] + ["waiting"] * 11


def test_a_host_that_holds_its_cap_without_printing_has_its_excess_closed():
    admission, port, clock, counters = make_admission(max_connections=2, max_open=16)
    hoard = [arrive(admission, "10.0.0.7", clock) for _ in range(16)]  # a batch overshot
    assert port.changes == ["paused"]
    clock.advance(STALLED_AFTER)  # none of its waiting connections started
    assert [c.state for c in hoard[-2:]] == ["hung up", "hung up"]  # the newest, past its cap
    assert hoard[-3].state == "waiting"
    assert counters.connections_turned_away_total == 2
    for connection in hoard[-2:]:
        admission.release(connection)
    assert port.changes == ["paused", "resumed"]  # so others can be accepted and seen
    assert not admission.accepts("10.0.0.7")
    assert counters.connections_turned_away_total == 3
    assert admission.accepts("10.0.0.8")


def test_at_its_share_of_descriptors_the_port_pauses_and_turns_away_the_rest():
    admission, port, _, counters = make_admission(max_connections=2, max_open=6)
    connections = [arrive(admission, f"10.0.0.{n}") for n in range(6)]
    assert port.changes == ["paused"]
    assert not admission.accepts("10.0.0.99")  # accepted in the same batch as the pause
    assert counters.connections_turned_away_total == 1
    admission.release(connections[0])
    assert port.changes == ["paused", "resumed"]


def test_a_host_holding_every_slot_loses_its_longest_silent_one_to_a_waiting_host():
    admission, _, clock, counters = make_admission(max_connections=4)
    hoard = []
    for _ in range(4):
        hoard.append(arrive(admission, "10.0.0.7", clock))
        clock.advance(0.1)
    hoard[0].last_printed_at = clock.seconds()  # the first one printed just now
    clock.advance(EVICT_AFTER)
    job = arrive(admission, "10.0.0.8", clock)
    assert job.state == "started"
    assert [c.state for c in hoard] == ["started", "aborted", "started", "started"]
    assert counters.connections_evicted_total == 1
    assert admission.connections_active == 4  # the evicted one no longer holds a slot
    admission.release(hoard[1])  # its connection closes later
    assert admission.connections_active == 4


def test_a_connection_that_printed_within_evict_after_is_ended_only_once_it_stops():
    admission, _, clock, _ = make_admission(max_connections=2)
    hoard = [arrive(admission, "10.0.0.7", clock) for _ in range(2)]
    job = arrive(admission, "10.0.0.8", clock)
    assert job.state == "waiting"
    clock.advance(EVICT_AFTER / 2)
    hoard[0].last_printed_at = clock.seconds()
    clock.advance(EVICT_AFTER / 2)
    assert job.state == "started" and hoard[1].state == "aborted"
    assert hoard[0].state == "started"


def test_a_host_within_its_share_keeps_its_connection_whatever_it_prints():
    """A POS polling the status on one open connection: one slot is within any host's share."""
    admission, _, clock, counters = make_admission(max_connections=4)
    pos = arrive(admission, "10.0.0.5", clock)
    hoard = [arrive(admission, "10.0.0.7", clock) for _ in range(3)]
    clock.advance(3600)
    for n in range(10):
        arrive(admission, f"10.0.1.{n}", clock)
        clock.advance(EVICT_AFTER)
    # 12 hosts for 4 slots: a share of 1 each. The hoarder is cut down to its share, the POS
    # keeps its one connection, and the other hosts wait for slots to free.
    assert pos.state == "started"
    assert sorted(c.state for c in hoard) == ["aborted", "aborted", "started"]
    assert counters.connections_evicted_total == 2


def test_a_freed_slot_goes_to_the_waiting_host_that_holds_fewest():
    admission, _, clock, _ = make_admission(max_connections=3)
    busy = [arrive(admission, "10.0.0.7", clock) for _ in range(2)]
    other = arrive(admission, "10.0.0.8", clock)
    # Both hosts are within their share (3 // 2 = 1 for .8, .7 over it but printing):
    for connection in busy:
        connection.last_printed_at = 10**9
    more_from_busy = arrive(admission, "10.0.0.7", clock)
    from_other = arrive(admission, "10.0.0.8", clock)
    admission.release(other)
    assert from_other.state == "started" and more_from_busy.state == "waiting"


def test_the_port_pauses_while_storage_is_blocked():
    admission, port, _, _ = make_admission(max_connections=5)
    admission.set_storage_blocked(True)
    admission.set_storage_blocked(False)
    assert port.changes == ["paused", "resumed"]


def test_drain_starts_the_waiting_and_ends_what_is_open_at_the_deadline():
    admission, _, clock, _ = make_admission(max_connections=1, wait_timeout=5)
    busy, waiting = arrive(admission), arrive(admission)
    drained = admission.drain(10)
    assert waiting.events == ["waiting", "started"]  # its bytes are ours to keep
    clock.advance(9)
    assert not drained.called
    clock.advance(1)
    assert busy.state == "aborted" and waiting.state == "aborted"
    admission.release(busy)
    assert not drained.called
    admission.release(waiting)
    assert drained.called


def test_drain_with_nothing_open_is_done_at_once():
    admission, _, clock, _ = make_admission()
    assert admission.drain(10).called
    assert clock.getDelayedCalls() == []

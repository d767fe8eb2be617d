"""Admission control on its own: slots, per-peer caps, the queue, port pausing, drain."""

from __future__ import annotations

from typing import Optional

from twisted.internet.testing import MemoryReactorClock

from printerd.rawport.admission import Admission, AdmissionLimits


class FakeConnection:
    """An admitted connection as admission sees it: records what it was told to do."""

    def __init__(self, host: str = "10.0.0.7") -> None:
        self.host = host
        self.job: Optional[int] = None
        self.events: list[str] = []

    def start_job(self) -> None:
        self.job = 1
        self.events.append("started")

    def wait_for_slot(self) -> None:
        self.events.append("waiting")

    def end_and_close(self, abort: bool = False) -> None:
        self.events.append("aborted" if abort else "closed")


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


def make_admission(max_connections: int = 2, max_per_peer: int = 0):
    clock = MemoryReactorClock()
    admission: Admission[FakeConnection] = Admission(
        clock, AdmissionLimits(max_connections=max_connections, max_per_peer=max_per_peer))
    port = RecordingPort()
    admission.set_port(port)  # type: ignore[arg-type]
    return admission, port, clock


def test_at_the_limit_the_port_pauses_and_the_oldest_waiting_starts_next():
    admission, port, _ = make_admission(max_connections=2)
    first, second, third, fourth = (FakeConnection() for _ in range(4))
    for connection in (first, second, third, fourth):
        admission.admit(connection)
    assert [c.events for c in (first, second, third, fourth)] == [
        ["started"], ["started"], ["waiting"], ["waiting"]]
    assert port.changes == ["paused"]
    assert (admission.connections_active, admission.connections_waiting) == (2, 2)
    admission.release(first)
    assert third.events == ["waiting", "started"] and fourth.events == ["waiting"]
    assert port.changes == ["paused"]  # still at the limit
    admission.release(second)
    admission.release(third)
    assert fourth.events == ["waiting", "started"]
    assert port.changes == ["paused", "resumed"]
    assert (admission.connections_active, admission.connections_waiting) == (1, 0)


def test_a_waiting_connection_that_hangs_up_leaves_the_queue():
    admission, _, _ = make_admission(max_connections=1)
    busy, gone, next_one = FakeConnection(), FakeConnection(), FakeConnection()
    for connection in (busy, gone, next_one):
        admission.admit(connection)
    admission.release(gone)
    assert admission.connections_waiting == 1
    admission.release(busy)
    assert next_one.events == ["waiting", "started"]
    assert gone.events == ["waiting"]


def test_the_per_peer_cap_queues_a_busy_peer_and_lets_others_start():
    admission, port, _ = make_admission(max_connections=10, max_per_peer=2)
    busy = [FakeConnection("10.0.0.7") for _ in range(3)]
    for connection in busy:
        admission.admit(connection)
    other = FakeConnection("10.0.0.8")
    admission.admit(other)
    assert [c.events for c in busy] == [["started"], ["started"], ["waiting"]]
    assert other.events == ["started"]
    assert port.changes == []  # far from the overall limit
    admission.release(busy[0])
    assert busy[2].events == ["waiting", "started"]


def test_the_port_pauses_while_storage_is_blocked():
    admission, port, _ = make_admission(max_connections=5)
    admission.set_storage_blocked(True)
    admission.set_storage_blocked(False)
    assert port.changes == ["paused", "resumed"]


def test_drain_starts_the_waiting_and_ends_what_is_open_at_the_deadline():
    admission, _, clock = make_admission(max_connections=1)
    busy, waiting = FakeConnection(), FakeConnection()
    admission.admit(busy)
    admission.admit(waiting)
    drained = admission.drain(10)
    assert waiting.events == ["waiting", "started"]  # its bytes are ours to keep
    clock.advance(9)
    assert not drained.called
    clock.advance(1)
    assert busy.events[-1] == "aborted" and waiting.events[-1] == "aborted"
    admission.release(busy)
    assert not drained.called
    admission.release(waiting)
    assert drained.called


def test_drain_with_nothing_open_is_done_at_once():
    admission, _, clock = make_admission()
    assert admission.drain(10).called
    assert clock.getDelayedCalls() == []

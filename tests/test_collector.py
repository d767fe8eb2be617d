"""The daemon's garbage collector tuning: applied once the daemon has started, undone on stop."""

from __future__ import annotations

from twisted.application.service import Service

from printerd.collector import YOUNG_THRESHOLD, CollectorTuning
from printerd.tap import DaemonService


class FakeCollector:
    """Records what the tuning asks of the ``gc`` module."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.threshold = (700, 10, 10)
        self.frozen = False

    def collect(self) -> int:
        self.calls.append("collect")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")
        self.frozen = True

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")
        self.frozen = False

    def get_threshold(self) -> tuple[int, int, int]:
        return self.threshold

    def set_threshold(self, *threshold: int) -> None:
        self.calls.append(f"threshold {threshold}")
        self.threshold = threshold  # type: ignore[assignment]


class Child(Service):
    def __init__(self, name: str, collector: FakeCollector) -> None:
        self.setName(name)
        self.collector = collector

    def startService(self) -> None:
        super().startService()
        self.collector.calls.append(f"start {self.name}")


def test_the_daemon_freezes_what_start_up_built_and_raises_the_young_threshold_until_it_stops():
    collector = FakeCollector()
    root = DaemonService(stop_order=("listener",), collector=CollectorTuning(collector))
    Child("listener", collector).setServiceParent(root)
    root.startService()
    assert collector.calls == ["collect", "freeze", f"threshold {(YOUNG_THRESHOLD, 10, 10)}",
                               "start listener"]
    assert collector.frozen
    root.stopService()
    assert collector.threshold == (700, 10, 10) and not collector.frozen


def test_tuning_twice_changes_nothing_more_and_restoring_untuned_changes_nothing():
    collector = FakeCollector()
    tuning = CollectorTuning(collector, young=5000)
    tuning.restore()
    assert collector.calls == []
    tuning.apply()
    tuning.apply()
    assert collector.calls.count("freeze") == 1 and collector.threshold == (5000, 10, 10)
    tuning.restore()
    tuning.restore()
    assert collector.calls.count("unfreeze") == 1 and collector.threshold == (700, 10, 10)

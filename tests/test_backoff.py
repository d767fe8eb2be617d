"""The backoff between tries: pure arithmetic."""

import pytest

from printerd.backoff import Backoff


def test_delays_double_up_to_the_cap_and_a_success_starts_over():
    backoff = Backoff(first=1.0, cap=30.0)
    assert [backoff.failed() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    backoff.succeeded()
    assert backoff.failed() == 1


def test_many_failures_never_overflow():
    backoff = Backoff(first=0.5, cap=10.0)
    for _ in range(10_000):
        delay = backoff.failed()
    assert delay == 10.0


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        Backoff(first=0, cap=1)
    with pytest.raises(ValueError):
        Backoff(first=2, cap=1)

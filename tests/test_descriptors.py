"""The descriptor limit is raised at start and shared out with a reserve."""

from __future__ import annotations

import resource

from printerd.descriptors import UNLIMITED, DescriptorBudget, raise_open_file_limit


class Limits:
    """getrlimit / setrlimit over a pair of numbers, optionally refusing to change."""

    def __init__(self, soft: int, hard: int, refuse: bool = False) -> None:
        self.soft, self.hard, self.refuse = soft, hard, refuse

    def get(self, which: int) -> tuple[int, int]:
        assert which == resource.RLIMIT_NOFILE
        return self.soft, self.hard

    def set(self, which: int, limits: tuple[int, int]) -> None:
        if self.refuse:
            raise ValueError("not allowed")
        self.soft, self.hard = limits


def test_the_soft_limit_is_raised_to_the_hard_one():
    limits = Limits(1024, 524288)
    assert raise_open_file_limit(limits.get, limits.set) == 524288
    assert (limits.soft, limits.hard) == (524288, 524288)


def test_a_limit_already_at_the_hard_one_is_left_alone():
    limits = Limits(4096, 4096, refuse=True)
    assert raise_open_file_limit(limits.get, limits.set) == 4096


def test_an_unlimited_hard_limit_is_taken_as_a_large_number():
    limits = Limits(256, resource.RLIM_INFINITY)
    assert raise_open_file_limit(limits.get, limits.set) == UNLIMITED


def test_a_refused_raise_keeps_the_soft_limit():
    limits = Limits(1024, 4096, refuse=True)
    assert raise_open_file_limit(limits.get, limits.set) == 1024


def test_the_real_limit_can_be_raised_in_this_process():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert raise_open_file_limit() == (UNLIMITED if hard == resource.RLIM_INFINITY else hard)


def test_the_budget_keeps_a_reserve_and_splits_the_rest():
    budget = DescriptorBudget.for_limit(1024)
    assert budget.reserve == 128
    assert (budget.raw, budget.http) == (448, 448)
    assert budget.reserve + budget.raw + budget.http == 1024
    small = DescriptorBudget.for_limit(100)
    assert small.reserve == 64 and small.raw + small.http == 36

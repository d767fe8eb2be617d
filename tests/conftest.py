"""Fixtures shared by the tests; the helpers behind them live in ``support``."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import Clock

# Re-exported for test modules that import them from here.
from support import SAMPLES, make_store, sample_files  # noqa: F401
from support import make_inline_store
from bench.daemon import Daemon
from openapi_check import check_response

# Every answer an end-to-end test reads through Daemon.get is checked against the OpenAPI document.
Daemon.response_check = staticmethod(check_response)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "db" / "printerd.sqlite3")


@pytest_twisted.async_yield_fixture()
async def store(db_path: str):
    """A started store on real threads and the real reactor."""
    store = make_store(db_path, commit_delay=0.001)
    store.startService()
    yield store
    await store.stopService()


@pytest.fixture
def clock() -> Clock:
    """A clock that starts at a plausible time (14 November 2023)."""
    clock = Clock()
    clock.advance(1_700_000_000)
    return clock


@pytest.fixture
def inline_store(db_path: str, clock: Clock):
    """A started store whose database calls run inline; it commits on ``clock.advance(0)``."""
    store = make_inline_store(db_path, clock)
    store.startService()
    yield store
    result = store.stopService()
    assert result.called, "an inline store stops at once"

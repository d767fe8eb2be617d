"""Fixtures shared by the tests; the helpers behind them live in ``support``."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet.task import Clock

from support import drop_template, make_inline_store, make_store, postgres_database
from bench.daemon import Daemon
from openapi_check import check_response

# Every answer an end-to-end test reads through Daemon.get is checked against the OpenAPI document.
Daemon.response_check = staticmethod(check_response)


def pytest_sessionfinish(session: pytest.Session) -> None:
    drop_template()


@pytest.fixture
def daemon(tmp_path: Path):
    """
    The real daemon (twistd in a subprocess) on ephemeral ports with a SQLite database under
    ``tmp_path``, stopped after the test.  Modules that need other options define their own.
    """
    running = Daemon(tmp_path, "--database=var/printerd.sqlite3", "--shutdown-timeout=2")
    yield running
    running.stop()


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    """A SQLite database's path (tests of what only SQLite does)."""
    return str(tmp_path / "db" / "printerd.sqlite3")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, db_path: str):
    """
    The ``database`` setting of a fresh database, once per engine: a SQLite path, then a
    PostgreSQL URL (a database of its own; skipped without PRINTERD_TEST_POSTGRES).
    """
    if request.param == "sqlite":
        yield db_path
    else:
        with postgres_database() as url:
            yield url


@pytest_twisted.async_yield_fixture()
async def store(database: str):
    """A started store on real threads and the real reactor, on each engine."""
    store = make_store(database, commit_delay=0.001)
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
def inline_store(database: str, clock: Clock):
    """
    A started store whose database calls run inline, on each engine; it commits on
    ``clock.advance(0)``.
    """
    store = make_inline_store(database, clock)
    store.startService()
    yield store
    result = store.stopService()
    assert result.called, "an inline store stops at once"

"""Shared helpers: sample jobs, a store on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor

from printerd.store.schema import prepare_database
from printerd.store.service import ReceiptStore

# Real jobs from public ESC/POS generators, kept in the repository (origin and licence beside them).
SAMPLES = Path(__file__).resolve().parent / "fixtures" / "escpos-samples"


def sample_files() -> list[Path]:
    files = sorted(SAMPLES.glob("*.bin"))
    assert files, f"no ESC/POS samples in {SAMPLES}"
    return files


def make_store(path: str, clock=reactor, **kwargs) -> ReceiptStore:
    summary = prepare_database(path, kwargs.get("synchronous", "FULL"),
                               kwargs.get("recent_size", 500))
    return ReceiptStore(clock, path, summary, **kwargs)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "db" / "printerd.sqlite3")


@pytest_twisted.async_yield_fixture()
async def store(db_path: str):
    store = make_store(db_path, commit_delay=0.001)
    store.startService()
    yield store
    await store.stopService()

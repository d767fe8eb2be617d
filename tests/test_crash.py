"""A short crash-safety run: SIGKILL while printing and streaming loses nothing announced or
acknowledged."""

import pytest

from bench.crash_test import crash_run

pytestmark = pytest.mark.e2e


def test_sigkill_loses_no_announced_or_acknowledged_receipt_and_stores_none_twice(tmp_path):
    result = crash_run(tmp_path, kills=5, printers=4, seed=7, recount_every=2)
    assert result["problems"] == []
    assert result["announced"] > 0  # the run did print and announce receipts
    assert result["acknowledged"] > 0  # ...and the printer answered after their cuts
    assert result["receipts_stored"] >= max(result["announced"], result["acknowledged"])


def test_sigkill_on_postgresql_loses_no_announced_receipt_and_stores_none_twice(tmp_path):
    from support import postgres_database

    with postgres_database(migrated=False) as url:
        result = crash_run(tmp_path, kills=4, printers=4, seed=7, recount_every=2, postgres=url)
    assert result["problems"] == [] and result["engine"] == "postgresql"
    assert result["announced"] > 0 and result["acknowledged"] > 0
    assert result["receipts_stored"] >= max(result["announced"], result["acknowledged"])

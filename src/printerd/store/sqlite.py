"""
SQLite: opening connections with printerd's settings, and the one write-transaction helper.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Iterator


def connect(path: str, synchronous: str = "FULL") -> sqlite3.Connection:
    """
    Open the database with printerd's connection settings.

    ``check_same_thread`` is off because the store closes its pool threads' connections
    from the reactor thread once those threads have stopped; each connection is still
    used by one thread at a time.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """
    One write transaction: takes the write lock at once (BEGIN IMMEDIATE, so what it reads is
    what it writes over), commits when the block ends, rolls back if it raises.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SQLiteConnector:
    """Opens connections to one SQLite file (a ``threads.Connector``)."""

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous

    def connect(self) -> sqlite3.Connection:
        return connect(self.path, self.synchronous)

    def is_disconnect(self, error: BaseException) -> bool:
        # A file has no connection to lose; errors (a full disk, a lock) are the statement's.
        return False

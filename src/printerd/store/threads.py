"""
Where the store's thread functions run.

A thread function takes a database connection as its first argument and returns plain data
(never a cursor).  The store hands each one to its ``ThreadRunner``:

- ``DatabaseThreads`` is the daemon's: a fixed pool of one writer thread and ``readers`` reader
  threads, each holding one connection of its own, opened on first use.  Writes are serialised on
  the writer; reads run side by side.  Nothing runs on the reactor thread.
- ``InlineRunner`` runs each call at once on the calling thread and returns a Deferred that has
  already fired (as buildbot's ``NonThreadPool``): tests drive the store with a ``Clock`` and
  never wait for a thread.

Connections come from a ``Connector`` (the store's engine); a connection that the engine says
was lost is dropped, and the thread opens a new one on its next call.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Protocol, TypeVar, cast

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorFromThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

T = TypeVar("T")


class Connector(Protocol):
    """Opens the database connections the runner's threads hold (implemented by the engine)."""

    def connect(self) -> Any:
        """A new connection, configured for printerd; it must have ``close()``."""

    def is_disconnect(self, error: BaseException) -> bool:
        """Whether ``error`` means the connection is gone and must be opened again."""


class ThreadRunner(Protocol):
    """The store's threads: runs ``fn(connection, *args)`` for writes and for reads."""

    thread_count: int  # threads this runner adds to the process, fixed while it runs

    def start(self) -> None:
        """Start the threads (from the store's ``startService``)."""

    def stop(self) -> None:
        """Stop the threads once the calls in flight have finished, then close the connections."""

    def run_write(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        """Run ``fn(connection, *args)`` where writes run: one at a time, in call order."""

    def run_read(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        """Run ``fn(connection, *args)`` where reads run."""


class _ConnectionHolder:
    """One connection per calling thread, opened on first use; all closed together."""

    def __init__(self, connector: Connector) -> None:
        self._connector = connector
        self._local = threading.local()
        self._all: list[Any] = []
        self._lock = threading.Lock()

    def call(self, fn: Callable[..., T], args: tuple) -> T:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connector.connect()
            with self._lock:
                self._all.append(conn)
        try:
            return fn(conn, *args)
        except BaseException as error:
            if self._connector.is_disconnect(error):
                self._local.conn = None
                with self._lock:
                    self._all.remove(conn)
                _close_quietly(conn)
            raise

    def close(self) -> None:
        """Close every connection; call once no thread uses them any more."""
        with self._lock:
            for conn in self._all:
                _close_quietly(conn)
            self._all.clear()
        self._local = threading.local()


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # closing a broken connection may fail; it is being dropped anyway
        pass


class DatabaseThreads:
    """The daemon's ``ThreadRunner``: one writer thread and ``readers`` reader threads."""

    def __init__(self, reactor: Any, connector: Connector, readers: int = 2) -> None:
        # deferToThreadPool needs the reactor as IReactorFromThreads.
        self._reactor = cast(IReactorFromThreads, reactor)
        self.thread_count = 1 + readers
        self._writer = ThreadPool(minthreads=1, maxthreads=1, name="printerd-db-writer")
        self._readers = ThreadPool(minthreads=readers, maxthreads=readers,
                                   name="printerd-db-reader")
        self._writer_connections = _ConnectionHolder(connector)
        self._reader_connections = _ConnectionHolder(connector)

    def start(self) -> None:
        self._writer.start()
        self._readers.start()

    def stop(self) -> None:
        # ThreadPool.stop lets queued calls finish, then joins the threads.
        self._writer.stop()
        self._readers.stop()
        self._writer_connections.close()
        self._reader_connections.close()

    def run_write(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._writer, self._writer_connections.call,
                                 fn, args)

    def run_read(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        return deferToThreadPool(self._reactor, self._readers, self._reader_connections.call,
                                 fn, args)


class InlineRunner:
    """A ``ThreadRunner`` for tests: each call runs at once on the calling thread."""

    thread_count = 0

    def __init__(self, connector: Connector) -> None:
        # Separate connections, as in the daemon: a read sees only what has committed.
        self._writer_connection = _ConnectionHolder(connector)
        self._reader_connection = _ConnectionHolder(connector)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        self._writer_connection.close()
        self._reader_connection.close()

    def run_write(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        return _fired(self._writer_connection, fn, args)

    def run_read(self, fn: Callable[..., T], *args: object) -> Deferred[T]:
        return _fired(self._reader_connection, fn, args)


def _fired(holder: _ConnectionHolder, fn: Callable[..., T], args: tuple) -> Deferred[T]:
    try:
        return succeed(holder.call(fn, args))
    except Exception:
        return fail()

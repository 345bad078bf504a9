"""Own the SQLite store's file: its connections (WAL mode, one per thread), write transactions,
the translation of sqlite3's errors, and `in_thread`, which runs a blocking method in a worker
thread so that a wait on the file's lock (another worker process writing) never stops the event
loop."""

from __future__ import annotations

import asyncio
import functools
import logging
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from chatproxy.errors import StoreError, StoreUnavailable
from chatproxy.store.sqlite_schema import migrate

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
CLOSE_WAIT_SECONDS = 60.0  # the longest a close waits for calls still running in threads


class OnFile(Protocol):
    """What `in_thread` runs methods of: an object on an SQLite file."""

    file: SqliteFile


S = TypeVar("S", bound=OnFile)


def in_thread(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Make a blocking method a coroutine method that runs it in a worker thread, counted as
    a use of the object's file (`SqliteFile.close` waits for it to end)."""

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        def counted() -> R:
            with self.file.in_use():
                return method(self, *args, **kwargs)

        return await asyncio.to_thread(counted)

    return run


class SqliteFile:
    """One SQLite file, migrated on opening; safe to share between threads."""

    def __init__(self, path: str):
        self._path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._users = 0  # calls using the file now, in any thread
        self._idle = threading.Condition()
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self.transaction() as db:
            migrate(db)

    def connection(self) -> sqlite3.Connection:
        """This thread's connection to the file (for reads outside a transaction)."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Used by this thread only; other threads touch it just to close it in close().
            connection = sqlite3.connect(
                self._path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @contextmanager
    def in_use(self) -> Iterator[None]:
        """Count the block as a use of the file: closing it waits for the block to end (a
        coroutine cancelled while its call runs in a thread does not stop the call, and a
        connection closed under a running statement crashes the process)."""
        with self._idle:
            self._users += 1
        try:
            yield
        finally:
            with self._idle:
                self._users -= 1
                if not self._users:
                    self._idle.notify_all()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block as one `BEGIN IMMEDIATE` transaction: all of it or none of it."""
        with self.in_use(), translated():
            db = self.connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection once the calls using the file have ended; a call
        that starts meanwhile waits for the close, then opens a connection of its own. Calls
        still running after CLOSE_WAIT_SECONDS keep their connections (a warning says so)."""
        with self._idle:
            if not self._idle.wait_for(lambda: not self._users, timeout=CLOSE_WAIT_SECONDS):
                log.warning("sqlite: calls still run after %.0f s: left open", CLOSE_WAIT_SECONDS)
                return
            with self._lock:
                for connection in self._connections:
                    connection.close()
                self._connections.clear()
            self._local = threading.local()


@contextmanager
def translated() -> Iterator[None]:
    """Turn sqlite3's exceptions into the proxy's store errors."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreUnavailable("the chat store is busy; try again shortly") from exc
        raise StoreError(f"the chat store failed: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"the chat store failed: {exc}") from exc

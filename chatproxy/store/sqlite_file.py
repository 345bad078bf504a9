"""Own the SQLite store's file: its connections (WAL mode, one per thread), write transactions,
the translation of sqlite3's errors, and `in_thread`, which runs a blocking method in a worker
thread so that a wait on the file's lock (another worker process writing) never stops the event
loop."""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from chatproxy.errors import StoreError, StoreUnavailable
from chatproxy.store.sqlite_schema import migrate

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S")


def in_thread(
    method: Callable[Concatenate[S, P], R],
) -> Callable[Concatenate[S, P], Coroutine[Any, Any, R]]:
    """Make a blocking method a coroutine method that runs it in a worker thread."""

    @functools.wraps(method)
    async def run(self: S, /, *args: P.args, **kwargs: P.kwargs) -> R:
        return await asyncio.to_thread(method, self, *args, **kwargs)

    return run


class SqliteFile:
    """One SQLite file, migrated on opening; safe to share between threads."""

    def __init__(self, path: str):
        self._path = path
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
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
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block as one `BEGIN IMMEDIATE` transaction: all of it or none of it."""
        with translated():
            db = self.connection()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def close(self) -> None:
        """Close every thread's connection."""
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

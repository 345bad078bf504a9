"""Own the rate-limit counters of the embedded store: a `limits.aio` storage on the SQLite file.

With SQLite as the chat store, the rate limits and token budgets live in the same file, so every
worker process of a local server shares them (process memory would give each worker its own).
It supports the fixed window (token budgets) and the moving window (request limits). Each
operation is one `BEGIN IMMEDIATE` transaction, run in a worker thread like the chat store's own
calls: a wait on the file lock (another worker process writing) never stops the event loop.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from limits.aio.storage import MovingWindowSupport, Storage

from chatproxy.errors import StoreError
from chatproxy.store.sqlite_base import SqliteBase

T = TypeVar("T")


class SqliteLimitsStorage(Storage, MovingWindowSupport):
    """`limits` counters in the tables `limit_counters` and `limit_entries`, for coroutines."""

    STORAGE_SCHEME = None  # built directly, never from a URI

    def __init__(self, store: SqliteBase, longest_window: float = 0.0):
        super().__init__()
        self._store = store
        store.keep_limit_entries(longest_window)  # the store's sweep must not forget them

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return StoreError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        return await self._run(_incr, key, expiry, amount)

    async def get(self, key: str) -> int:
        return await self._run(_get, key)

    async def get_expiry(self, key: str) -> float:
        return await self._run(_get_expiry, key)

    async def check(self) -> bool:
        try:
            await self._store.ping()
        except StoreError:
            return False
        return True

    async def reset(self) -> int | None:
        return await self._run(_reset)

    async def clear(self, key: str) -> None:
        await self._run(_clear, key)

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        return await self._run(_acquire_entry, key, limit, expiry, amount)

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        return await self._run(_get_moving_window, key, expiry)

    async def _run(self, step: Callable[..., T], *args: Any) -> T:
        """Run `step(db, *args)` as one write transaction on the file, in a worker thread."""

        def in_transaction() -> T:
            with self._store.transaction() as db:
                return step(db, *args)

        return await asyncio.to_thread(in_transaction)


def _incr(db: sqlite3.Connection, key: str, expiry: int, amount: int) -> int:
    now = time.time()
    db.execute("DELETE FROM limit_counters WHERE key = ? AND expires_at <= ?", (key, now))
    db.execute(
        "INSERT INTO limit_counters (key, value, expires_at) VALUES (?, ?, ?)"
        " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
        (key, amount, now + expiry),
    )
    (value,) = db.execute("SELECT value FROM limit_counters WHERE key = ?", (key,)).fetchone()
    return int(value)


def _get(db: sqlite3.Connection, key: str) -> int:
    row = db.execute(
        "SELECT value FROM limit_counters WHERE key = ? AND expires_at > ?", (key, time.time())
    ).fetchone()
    return int(row[0]) if row else 0


def _get_expiry(db: sqlite3.Connection, key: str) -> float:
    row = db.execute("SELECT expires_at FROM limit_counters WHERE key = ?", (key,)).fetchone()
    return float(row[0]) if row else time.time()


def _reset(db: sqlite3.Connection) -> int:
    counters = db.execute("DELETE FROM limit_counters").rowcount
    db.execute("DELETE FROM limit_entries")
    return int(counters)


def _clear(db: sqlite3.Connection, key: str) -> None:
    db.execute("DELETE FROM limit_counters WHERE key = ?", (key,))
    db.execute("DELETE FROM limit_entries WHERE key = ?", (key,))


def _acquire_entry(db: sqlite3.Connection, key: str, limit: int, expiry: int, amount: int) -> bool:
    now = time.time()
    db.execute("DELETE FROM limit_entries WHERE key = ? AND at <= ?", (key, now - expiry))
    (count,) = db.execute("SELECT COUNT(*) FROM limit_entries WHERE key = ?", (key,)).fetchone()
    if count + amount > limit:
        return False
    db.executemany("INSERT INTO limit_entries (key, at) VALUES (?, ?)", [(key, now)] * amount)
    return True


def _get_moving_window(db: sqlite3.Connection, key: str, expiry: int) -> tuple[float, int]:
    now = time.time()
    oldest, count = db.execute(
        "SELECT MIN(at), COUNT(*) FROM limit_entries WHERE key = ? AND at > ?",
        (key, now - expiry),
    ).fetchone()
    return (float(oldest), int(count)) if count else (now, 0)

"""Own the rate-limit counters of the embedded store: a `limits` storage on the SQLite file.

With SQLite as the chat store, the rate limits and token budgets live in the same file, so every
worker process of a local server shares them (process memory would give each worker its own).
It supports the fixed window (token budgets) and the moving window (request limits), each
operation one `BEGIN IMMEDIATE` transaction.
"""

from __future__ import annotations

import time

from limits.storage import MovingWindowSupport, Storage

from chatproxy.store.sqlite import SqliteStore


class SqliteLimitsStorage(Storage, MovingWindowSupport):
    """`limits` counters in the tables `limit_counters` and `limit_entries`."""

    STORAGE_SCHEME = None  # built directly, never from a URI

    def __init__(self, store: SqliteStore):
        super().__init__()
        self._store = store

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return Exception

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._store.transaction() as db:
            db.execute("DELETE FROM limit_counters WHERE key = ? AND expires_at <= ?", (key, now))
            db.execute(
                "INSERT INTO limit_counters (key, value, expires_at) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = value + excluded.value",
                (key, amount, now + expiry),
            )
            (value,) = db.execute(
                "SELECT value FROM limit_counters WHERE key = ?", (key,)
            ).fetchone()
        return int(value)

    def get(self, key: str) -> int:
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT value FROM limit_counters WHERE key = ? AND expires_at > ?",
                (key, time.time()),
            ).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        with self._store.transaction() as db:
            row = db.execute(
                "SELECT expires_at FROM limit_counters WHERE key = ?", (key,)
            ).fetchone()
        return float(row[0]) if row else time.time()

    def check(self) -> bool:
        try:
            self._store.ping()
        except Exception:
            return False
        return True

    def reset(self) -> int | None:
        with self._store.transaction() as db:
            counters = db.execute("DELETE FROM limit_counters").rowcount
            db.execute("DELETE FROM limit_entries")
        return int(counters)

    def clear(self, key: str) -> None:
        with self._store.transaction() as db:
            db.execute("DELETE FROM limit_counters WHERE key = ?", (key,))
            db.execute("DELETE FROM limit_entries WHERE key = ?", (key,))

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        with self._store.transaction() as db:
            db.execute("DELETE FROM limit_entries WHERE key = ? AND at <= ?", (key, now - expiry))
            (count,) = db.execute(
                "SELECT COUNT(*) FROM limit_entries WHERE key = ?", (key,)
            ).fetchone()
            if count + amount > limit:
                return False
            db.executemany(
                "INSERT INTO limit_entries (key, at) VALUES (?, ?)", [(key, now)] * amount
            )
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        with self._store.transaction() as db:
            oldest, count = db.execute(
                "SELECT MIN(at), COUNT(*) FROM limit_entries WHERE key = ? AND at > ?",
                (key, now - expiry),
            ).fetchone()
        return (float(oldest), int(count)) if count else (now, 0)

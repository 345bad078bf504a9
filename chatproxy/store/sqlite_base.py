"""Own what the SQLite store stands on (`SqliteBase`, which `SqliteStore` builds on): its file,
its settings (TTL, most messages kept), the global prompt, and a write transaction for the rate
limits."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from contextlib import AbstractContextManager

from chatproxy.store.sqlite_chat import global_system_of
from chatproxy.store.sqlite_file import SqliteFile, in_thread, translated
from chatproxy.store.sqlite_rows import DAY_SECONDS


class SqliteBase:
    """An SQLite file as the store uses it."""

    def __init__(self, path: str, ttl_seconds: int | None, max_messages: int = 0):
        self.file = SqliteFile(path)
        self._ttl = ttl_seconds
        self._max_messages = max_messages
        self._next_sweep = 0.0
        self._limit_entries_kept = DAY_SECONDS  # see `keep_limit_entries`

    def keep_limit_entries(self, seconds: float) -> None:
        """Keep the rate limits' moving-window entries for at least `seconds` (their longest
        window) from the sweep, which would otherwise forget them after a day."""
        self._limit_entries_kept = max(self._limit_entries_kept, seconds)

    @in_thread
    def ping(self) -> None:
        with translated():
            self.file.connection().execute("SELECT 1").fetchone()

    @in_thread
    def get_global_system(self) -> str | None:
        with translated():
            return global_system_of(self.file.connection())

    @in_thread
    def set_global_system(self, content: str) -> None:
        with self.file.transaction() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES ('system', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (content,),
            )

    async def close(self) -> None:
        """Close the file once the calls still running on it end (not itself one of them)."""
        await asyncio.to_thread(self.file.close)

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Run a block as one write transaction on this store's file (for the rate limits)."""
        return self.file.transaction()

    def _expiry(self, now: float | None = None) -> float | None:
        if self._ttl is None:
            return None
        return (now or time.time()) + self._ttl

"""Own the choice of chat store: Redis when configured, else the embedded SQLite file; blocking
(`open_store`) or for coroutines (`open_async_store`)."""

from __future__ import annotations

from chatproxy.config import Settings
from chatproxy.store.base import (
    OPEN_TENANT,
    AsyncStore,
    ChatInfo,
    ChatRef,
    ChatState,
    IdempotencyClaim,
    IdempotentResult,
    Message,
    Store,
)

__all__ = [
    "OPEN_TENANT",
    "AsyncStore",
    "ChatInfo",
    "ChatRef",
    "ChatState",
    "IdempotencyClaim",
    "IdempotentResult",
    "Message",
    "Store",
    "open_async_store",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    """Build the store the settings ask for (no network I/O happens here)."""
    if settings.redis is not None:
        from chatproxy.store.redis import RedisStore, connect

        return RedisStore(connect(settings.redis), settings.ttl_seconds, settings.max_chat_messages)
    from chatproxy.store.sqlite import SqliteStore

    return SqliteStore(settings.store_path, settings.ttl_seconds, settings.max_chat_messages)


def open_async_store(settings: Settings) -> AsyncStore:
    """Build the store the settings ask for, for coroutines: Redis over redis.asyncio, or the
    SQLite file with its calls in worker threads (no network I/O happens here)."""
    if settings.redis is not None:
        from chatproxy.store.redis_aio import AsyncRedisStore

        return AsyncRedisStore.from_settings(
            settings.redis, settings.ttl_seconds, settings.max_chat_messages
        )
    from chatproxy.store.threaded import ThreadedStore

    return ThreadedStore(open_store(settings))

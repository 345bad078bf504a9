"""Own the choice of chat store: Redis when configured, else the embedded SQLite file.

The types and the `Store` protocol are `store/base.py`'s (an Idempotency-Key's are
`idempotency.py`'s); importing this package loads neither backend (each is imported when
chosen)."""

from __future__ import annotations

from chatproxy.config import Settings
from chatproxy.store.base import Store
from chatproxy.store.idempotency import IdempotencyClaim, IdempotentResult
from chatproxy.store.items import OPEN_TENANT, ChatInfo, ChatRef, ChatState, Message

__all__ = [
    "OPEN_TENANT",
    "ChatInfo",
    "ChatRef",
    "ChatState",
    "IdempotencyClaim",
    "IdempotentResult",
    "Message",
    "Store",
    "open_store",
]


def open_store(settings: Settings) -> Store:
    """Build the store the settings ask for: Redis over redis.asyncio, or the SQLite file with
    its calls in worker threads (no network I/O happens here)."""
    if settings.redis is not None:
        from chatproxy.store.redis import RedisStore

        return RedisStore.from_settings(
            settings.redis, settings.ttl_seconds, settings.max_chat_messages
        )
    from chatproxy.store.sqlite import SqliteStore

    return SqliteStore(settings.store_path, settings.ttl_seconds, settings.max_chat_messages)

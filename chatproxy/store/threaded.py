"""Own the bridge from a blocking store to coroutines: `ThreadedStore` runs each call of a
`Store` (the embedded SQLite one) in a worker thread, so a wait on its file lock (another
worker process writing) never stops the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from chatproxy.store.base import (
    ChatInfo,
    ChatRef,
    ChatState,
    IdempotencyClaim,
    IdempotentResult,
    Message,
    Store,
)


class ThreadedStore:
    """An `AsyncStore` over a blocking `Store` that is safe to share between threads."""

    def __init__(self, store: Store):
        self.blocking = store
        self.kind = store.kind

    async def ping(self) -> None:
        await asyncio.to_thread(self.blocking.ping)

    async def load_window(self, chat: ChatRef, limit: int) -> ChatState:
        return await asyncio.to_thread(self.blocking.load_window, chat, limit)

    async def load_history(self, chat: ChatRef) -> ChatState:
        return await asyncio.to_thread(self.blocking.load_history, chat)

    async def load_page(self, chat: ChatRef, limit: int, before: int | None) -> ChatState:
        return await asyncio.to_thread(self.blocking.load_page, chat, limit, before)

    async def begin_turn(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> ChatState | None:
        return await asyncio.to_thread(self.blocking.begin_turn, chat, token, lease_seconds, limit)

    async def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        return await asyncio.to_thread(self.blocking.chat_info, chat)

    async def list_chats(self, tenant: str, limit: int, before: float | None) -> list[ChatInfo]:
        return await asyncio.to_thread(self.blocking.list_chats, tenant, limit, before)

    async def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
        release: bool = False,
    ) -> bool:
        return await asyncio.to_thread(
            self.blocking.save_turn,
            chat,
            turn_id,
            messages,
            lock_token=lock_token,
            idempotent=idempotent,
            release=release,
        )

    async def acquire_turn(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        return await asyncio.to_thread(self.blocking.acquire_turn, chat, token, lease_seconds)

    async def release_turn(self, chat: ChatRef, token: str) -> None:
        await asyncio.to_thread(self.blocking.release_turn, chat, token)

    async def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        return await asyncio.to_thread(
            self.blocking.claim_idempotency, chat, key, fingerprint, lease_seconds
        )

    async def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        await asyncio.to_thread(self.blocking.release_idempotency, chat, key, fingerprint)

    async def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        await asyncio.to_thread(self.blocking.set_chat_system, chat, content)

    async def set_chat_settings(self, chat: ChatRef, settings: dict[str, Any]) -> None:
        await asyncio.to_thread(self.blocking.set_chat_settings, chat, settings)

    async def get_global_system(self) -> str | None:
        return await asyncio.to_thread(self.blocking.get_global_system)

    async def set_global_system(self, content: str) -> None:
        await asyncio.to_thread(self.blocking.set_global_system, content)

    async def delete_chat(self, chat: ChatRef) -> bool:
        return await asyncio.to_thread(self.blocking.delete_chat, chat)

    async def close(self) -> None:
        await asyncio.to_thread(self.blocking.close)

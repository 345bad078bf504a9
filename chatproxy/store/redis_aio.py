"""Own the Redis backend for coroutines: the redis.asyncio client, and `AsyncRedisStore`, which
runs the store's steps (`redis_steps.py`, shared with the blocking `RedisStore`) on it.

Its methods are `Store`'s, as coroutines (`AsyncStore` in `store/base.py`), with the same
answers and errors: the store contract suite runs against it too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import MaxConnectionsError

from chatproxy.config import RedisSettings
from chatproxy.store.base import (
    ChatInfo,
    ChatRef,
    ChatState,
    IdempotencyClaim,
    IdempotentResult,
    Message,
)
from chatproxy.store.redis import translated
from chatproxy.store.redis_scripts import SCRIPTS
from chatproxy.store.redis_steps import Batch, Call, RedisSteps, Script, Steps

T = TypeVar("T")

AsyncClient = aioredis.Redis | RedisCluster


def connect_async(settings: RedisSettings) -> AsyncClient:
    """Create the process's redis.asyncio client, with the timeouts and the one quick retry of
    `redis.connect` (no network I/O happens here).

    Its pools hold up to REDIS_MAX_CONNECTIONS (per node on a cluster); `AsyncRedisStore` keeps
    its calls within that many, so a burst waits for a connection instead of failing.
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        "max_connections": settings.max_connections,
    }
    if settings.ca_cert:
        options["ssl_ca_certs"] = settings.ca_cert
    if settings.cluster:
        return RedisCluster.from_url(settings.url, **options)
    return aioredis.Redis.from_url(settings.url, health_check_interval=30, **options)


class AsyncRedisStore(RedisSteps):
    """Chats in Redis, for coroutines of one event loop."""

    def __init__(
        self,
        client: AsyncClient,
        ttl_seconds: int | None,
        max_messages: int = 0,
        *,
        max_calls: int = 100,
        wait_seconds: float = 2.0,
    ):
        """`max_calls` bounds the calls in flight (REDIS_MAX_CONNECTIONS: the pool's size); a
        call beyond them waits up to `wait_seconds` (REDIS_TIMEOUT) for one to finish. The
        pools of redis.asyncio fail such a call at once instead."""
        super().__init__(isinstance(client, RedisCluster), ttl_seconds, max_messages)
        self._redis = client
        self._scripts = {name: client.register_script(lua) for name, lua in SCRIPTS.items()}
        self._calls = asyncio.Semaphore(max_calls)
        self._wait = wait_seconds

    @classmethod
    def from_settings(
        cls, settings: RedisSettings, ttl_seconds: int | None, max_messages: int = 0
    ) -> AsyncRedisStore:
        """Build the store and its client from the Redis settings."""
        return cls(
            connect_async(settings),
            ttl_seconds,
            max_messages,
            max_calls=settings.max_connections,
            wait_seconds=settings.socket_timeout,
        )

    async def ping(self) -> None:
        await self._run(self.ping_steps())

    async def load_window(self, chat: ChatRef, limit: int) -> ChatState:
        return await self._run(self.read_steps(chat, limit, None))

    async def load_history(self, chat: ChatRef) -> ChatState:
        return await self._run(self.read_steps(chat, -1, None))

    async def load_page(self, chat: ChatRef, limit: int, before: int | None) -> ChatState:
        return await self._run(self.read_steps(chat, limit, before))

    async def begin_turn(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> ChatState | None:
        return await self._run(self.begin_turn_steps(chat, token, lease_seconds, limit))

    async def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        return await self._run(self.chat_info_steps(chat))

    async def list_chats(self, tenant: str, limit: int, before: float | None) -> list[ChatInfo]:
        return await self._run(self.list_chats_steps(tenant, limit, before))

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
        steps = self.save_turn_steps(
            chat, turn_id, messages, lock_token=lock_token, idempotent=idempotent, release=release
        )
        return await self._run(steps)

    async def acquire_turn(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        return await self._run(self.acquire_turn_steps(chat, token, lease_seconds))

    async def release_turn(self, chat: ChatRef, token: str) -> None:
        await self._run(self.release_turn_steps(chat, token))

    async def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        return await self._run(self.claim_idempotency_steps(chat, key, fingerprint, lease_seconds))

    async def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        await self._run(self.release_idempotency_steps(chat, key, fingerprint))

    async def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        await self._run(self.set_chat_system_steps(chat, content))

    async def set_chat_settings(self, chat: ChatRef, settings: dict[str, Any]) -> None:
        await self._run(self.set_chat_settings_steps(chat, settings))

    async def get_global_system(self) -> str | None:
        return await self._run(self.get_global_system_steps())

    async def set_global_system(self, content: str) -> None:
        await self._run(self.set_global_system_steps(content))

    async def delete_chat(self, chat: ChatRef) -> bool:
        return await self._run(self.delete_chat_steps(chat))

    async def close(self) -> None:
        await self._redis.aclose()

    async def _run(self, steps: Steps[T]) -> T:
        """Make each call the steps ask for and send them its answer; return their result."""
        with translated():
            try:
                call = next(steps)
                while True:
                    call = steps.send(await self._call(call))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    async def _call(self, call: Call) -> Any:
        await self._take_call()
        try:
            if isinstance(call, Script):
                return await self._scripts[call.name](keys=call.keys, args=call.args)
            if not isinstance(call, Batch):
                return await getattr(self._redis, call.name)(*call.args, **call.kwargs)
            pipe = self._redis.pipeline(transaction=call.transaction)
            for queued in call.commands:
                getattr(pipe, queued.name)(*queued.args, **queued.kwargs)
            return await pipe.execute()
        finally:
            self._calls.release()

    async def _take_call(self) -> None:
        """Take one of the calls in flight, waiting up to `wait_seconds` when all are taken (a
        free one is taken without the timer, as on almost every call)."""
        if not self._calls.locked():
            await self._calls.acquire()
            return
        try:
            async with asyncio.timeout(self._wait):
                await self._calls.acquire()
        except TimeoutError:
            raise MaxConnectionsError("no Redis connection came free in time") from None

"""Own the rate-limit counters in Redis: a `limits.aio` storage beside the chats.

On a single Redis the counters run on the chat store's own client: its connections, TLS and
timeouts, and its call slots (`RedisStore.limits_storage`), so the chats and the counters
together hold at most REDIS_MAX_CONNECTIONS connections, and a burst waits up to REDIS_TIMEOUT for
a free one instead of failing. On a Redis Cluster `limits` builds the cluster client itself, with
its own pools per node (`open_cluster_limits`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

from limits.aio.storage import MovingWindowSupport, RedisClusterStorage, RedisStorage, Storage
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from chatproxy.config import RedisSettings
from chatproxy.errors import StoreError
from chatproxy.store.redis_client import CallSlots

Close = Callable[[], Awaitable[None]]


class SharedRedisStorage(Storage, MovingWindowSupport):
    """limits' Redis storage on the chat store's connection pool, each call within one of the
    store's call slots. Its failures are the store's (`StoreError`), which `limits` wraps."""

    STORAGE_SCHEME = None  # built from the store, never from a URI

    def __init__(self, client: Redis, slots: CallSlots):
        super().__init__(wrap_exceptions=True)
        pool = client.connection_pool
        where = pool.connection_kwargs  # the address only names it: the pool's connections serve
        url = f"async+redis://{where.get('host', 'localhost')}:{where.get('port', 6379)}"
        shared: dict[str, Any] = {"connection_pool": pool}
        self._inner = RedisStorage(url, wrap_exceptions=True, implementation="redispy", **shared)
        self._slots = slots

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return StoreError

    async def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        async with self._slots.call():
            return await self._inner.incr(key, expiry, amount)

    async def get(self, key: str) -> int:
        async with self._slots.call():
            return await self._inner.get(key)

    async def get_expiry(self, key: str) -> float:
        async with self._slots.call():
            return await self._inner.get_expiry(key)

    async def check(self) -> bool:
        async with self._slots.call():
            return await self._inner.check()

    async def reset(self) -> int | None:
        async with self._slots.call():
            return await self._inner.reset()

    async def clear(self, key: str) -> None:
        async with self._slots.call():
            await self._inner.clear(key)

    async def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        async with self._slots.call():
            return await self._inner.acquire_entry(key, limit, expiry, amount)

    async def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        async with self._slots.call():
            return await self._inner.get_moving_window(key, limit, expiry)


def open_cluster_limits(redis: RedisSettings) -> tuple[RedisClusterStorage, Close]:
    """Build the counters' storage on a Redis Cluster and the coroutine that closes its
    connections (no network I/O happens here). A storage error reaches the caller as
    `limits.errors.StorageError`."""
    options: dict[str, Any] = {
        "socket_timeout": redis.socket_timeout,
        "socket_connect_timeout": redis.socket_timeout,
    }
    if redis.ca_cert:
        options["ssl_ca_certs"] = redis.ca_cert
    if redis.ssl:
        options["ssl"] = True
    cluster = RedisClusterStorage(
        f"async+redis+cluster://{urlsplit(redis.url).netloc}",
        wrap_exceptions=True,
        implementation="redispy",
        **options,
    )
    # limits has no close of its own: the cluster client it built is closed here.
    client = cluster.bridge.get_connection()  # type: ignore[attr-defined]
    return cluster, cast(RedisCluster, client).aclose

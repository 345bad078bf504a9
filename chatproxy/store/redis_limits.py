"""Own the rate-limit counters in Redis: a `limits.aio` storage on the chats' Redis.

The counters go through redis.asyncio on the event loop (limits' "redispy" implementation), with
the chats' TLS, CA and timeouts. On a single Redis they share a waiting pool of
REDIS_MAX_CONNECTIONS connections: a burst waits up to REDIS_TIMEOUT for a free one instead of
failing (redis.asyncio's default pool fails a call beyond its size at once). On a Redis Cluster
`limits` builds the cluster client itself, with its own pools per node.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast
from urllib.parse import urlsplit

from limits.aio.storage import RedisClusterStorage, RedisStorage
from redis.asyncio import BlockingConnectionPool
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from chatproxy.config import RedisSettings

Close = Callable[[], Awaitable[None]]


def open_redis_limits(redis: RedisSettings) -> tuple[RedisStorage, Close]:
    """Build the counters' storage and the coroutine that closes its connections (no network
    I/O happens here). A storage error reaches the caller as `limits.errors.StorageError`."""
    options: dict[str, Any] = {
        "socket_timeout": redis.socket_timeout,
        "socket_connect_timeout": redis.socket_timeout,
    }
    if redis.ca_cert:
        options["ssl_ca_certs"] = redis.ca_cert
    if redis.cluster:
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
    pool = BlockingConnectionPool.from_url(
        redis.url,
        max_connections=redis.max_connections,
        timeout=redis.socket_timeout,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        **options,
    )
    shared: dict[str, Any] = {"connection_pool": pool}
    storage = RedisStorage(
        f"async+{redis.url}", wrap_exceptions=True, implementation="redispy", **shared
    )
    return storage, pool.aclose

"""Own the Redis store's client: redis.asyncio with bounded timeouts and one quick retry, the
bound on calls in flight, and the translation of redis-py's errors into the proxy's store
errors."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import redis.asyncio as aioredis
from redis import exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from chatproxy.config import RedisSettings
from chatproxy.errors import StoreError, StoreUnavailable

Client = aioredis.Redis | RedisCluster


def connect(settings: RedisSettings) -> Client:
    """Create the process's redis.asyncio client (no network I/O happens here).

    The retry reconnects a pooled connection that a Redis restart broke; it is safe for writes
    because every write here is idempotent (a turn is keyed by its turn id). Its pools hold up to
    REDIS_MAX_CONNECTIONS (per node on a cluster); `CallSlots` keeps the store's calls within
    that many, so a burst waits for a connection instead of failing.
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


class CallSlots:
    """A bound on the calls in flight (REDIS_MAX_CONNECTIONS: the pool's size): a call beyond
    them waits up to `wait_seconds` (REDIS_TIMEOUT) for one to finish. The pools of
    redis.asyncio fail such a call at once instead."""

    def __init__(self, max_calls: int, wait_seconds: float):
        self._calls = asyncio.Semaphore(max_calls)
        self._wait = wait_seconds

    @asynccontextmanager
    async def call(self) -> AsyncIterator[None]:
        """Hold one slot for the block, with redis-py's errors translated."""
        with translated():
            await self._take()
            try:
                yield
            finally:
                self._calls.release()

    async def _take(self) -> None:
        """Take a slot, waiting up to `wait_seconds` when all are taken (a free one is taken
        without the timer, as on almost every call)."""
        if not self._calls.locked():
            await self._calls.acquire()
            return
        try:
            async with asyncio.timeout(self._wait):
                await self._calls.acquire()
        except TimeoutError:
            raise exceptions.MaxConnectionsError("no Redis connection came free in time") from None


@contextmanager
def translated() -> Iterator[None]:
    """Turn redis-py's exceptions into the proxy's store errors."""
    try:
        yield
    except (exceptions.ConnectionError, exceptions.TimeoutError) as exc:
        if _is_certificate_error(exc):
            raise StoreError(
                "the chat store's TLS certificate could not be verified (check REDIS_CA_CERT)"
            ) from exc
        raise StoreUnavailable() from exc
    except exceptions.RedisError as exc:
        raise StoreError(f"the chat store failed: {type(exc).__name__}") from exc


def _is_certificate_error(exc: BaseException) -> bool:
    """Tell a TLS verification failure (a setup error) from an outage (worth a retry)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)

"""Own the Redis store's client: redis.asyncio with bounded timeouts and one quick retry, the
bound on calls in flight, the scripts' short way to a single node, and the translation of
redis-py's errors into the proxy's store errors."""

from __future__ import annotations

import asyncio
import functools
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Self

import hiredis
import redis.asyncio as aioredis
from redis import exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.commands.core import AsyncScript
from redis.maint_notifications import MaintNotificationsConfig

from chatproxy.config import RedisSettings
from chatproxy.errors import StoreError, StoreUnavailable

Client = aioredis.Redis | RedisCluster


def connect(settings: RedisSettings) -> Client:
    """Create the process's redis.asyncio client (no network I/O happens here).

    The retry reconnects a pooled connection that a Redis restart broke; it is safe for writes
    because every write here is idempotent (a turn is keyed by its turn id). Its pools hold up to
    REDIS_MAX_CONNECTIONS (per node on a cluster; a single node's scripts have connections of
    their own, `ScriptRunner`'s); `CallSlots` keeps the store's calls within that many, so a
    burst waits for a connection instead of failing.
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
    redis.asyncio fail such a call at once instead.

    `async with slots.call():` holds one slot for the block, with redis-py's errors translated
    (a class rather than a generator: a turn's two store calls each pass through it)."""

    def __init__(self, max_calls: int, wait_seconds: float):
        self._calls = asyncio.Semaphore(max_calls)
        self._wait = wait_seconds

    def call(self) -> Self:
        return self

    async def __aenter__(self) -> None:
        if not self._calls.locked():  # a free slot is taken without the timer, as almost always
            await self._calls.acquire()
            return
        with translated():
            await self._take()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: TracebackType | None
    ) -> None:
        self._calls.release()
        if isinstance(error, exceptions.RedisError):
            with translated():
                raise error

    async def _take(self) -> None:
        """Take a slot when all are taken, waiting up to `wait_seconds`."""
        try:
            async with asyncio.timeout(self._wait):
                await self._calls.acquire()
        except TimeoutError:
            raise exceptions.MaxConnectionsError("no Redis connection came free in time") from None


class ScriptRunner:
    """Run a registered script on a single node: one EVALSHA packed by hiredis (as redis-py's
    blocking client packs every command, where its asyncio client packs in Python; for text and
    numbers, all the scripts are given, both pack alike), retried by the client's own `Retry`,
    as `execute_command` does, without the rest of its bookkeeping. A script Redis has lost (a
    restart, SCRIPT FLUSH) is loaded and run again, as redis-py's `Script` does.

    Its connections are its own, as many as calls have run at once (`CallSlots` bounds them),
    kept in a list rather than redis-py's pool, whose locks, checks and metrics cost a call as
    much as its send. They have no socket timeout: each attempt (connecting if need be, its
    handshake, sending, the reply) is bounded as a whole by the client's `socket_timeout`
    (REDIS_TIMEOUT) instead, and an attempt that runs out drops its connection and is tried
    once more, as redis-py does for a read that times out. redis.asyncio bounds each send by
    running it as a task of its own: with that task spared, a turn's two calls cost the proxy
    about 190K fewer instructions (`bench.instructions`: 2.12M to 1.93M a turn). A connection
    whose exchange was cut short (a failure, a cancel, in its handshake too) is closed, by
    redis-py or by the retry's `failed`, and the next call on it connects again."""

    def __init__(self, client: aioredis.Redis):
        self._client = client
        shared = client.connection_pool
        self._timeout: float | None = shared.connection_kwargs.get("socket_timeout")
        self._retry: Retry = shared.connection_kwargs.get("retry") or Retry(NoBackoff(), 0)
        # Without maintenance notifications (the client's pool acts on them for its own
        # connections; on these they would set a socket timeout for a while) and the settings
        # its pool keeps for them (`orig_*`, its handler). Without an idle health check either:
        # a connection Redis closed while it sat idle fails its attempt at once, and the retry
        # makes a new one (so such a call has no retry left for a second failure).
        kwargs = {
            k: v
            for k, v in shared.connection_kwargs.items()
            if not k.startswith(("orig_", "maint_notifications"))
        }
        kwargs.update(
            socket_timeout=None,
            health_check_interval=0,
            maint_notifications_config=MaintNotificationsConfig(enabled=False),
        )
        self._make = functools.partial(shared.connection_class, **kwargs)
        self._idle: list[Any] = []  # connections free for a call, the newest last
        self._made: set[Any] = set()

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await self._evalsha(script.sha, keys, args)
        except exceptions.NoScriptError:
            script.sha = await self._client.script_load(script.script)
            return await self._evalsha(script.sha, keys, args)

    async def aclose(self) -> None:
        closing = [connection.disconnect() for connection in self._made]
        await asyncio.gather(*closing, return_exceptions=True)

    async def _evalsha(self, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            packed = hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))
        except TypeError as exc:  # a value neither can send (None, a bool): as redis-py says
            raise exceptions.DataError(str(exc)) from exc
        connection = self._idle.pop() if self._idle else self._new()

        async def attempt() -> Any:  # connecting (its handshake too) if need be, sending, the reply
            try:
                async with asyncio.timeout(self._timeout):
                    await connection.send_packed_command(packed, check_health=False)
                    return await connection.read_response()
            except TimeoutError:  # redis-py dropped the connection when it was cancelled
                raise exceptions.TimeoutError("Redis did not answer in time") from None

        async def failed(error: Exception) -> None:
            await connection.disconnect(error=error)

        try:
            return await self._retry.call_with_retry(attempt, failed)
        finally:  # whole: redis-py closes a connection whose exchange it did not finish
            self._idle.append(connection)

    def _new(self) -> Any:
        connection = self._make()
        self._made.add(connection)
        return connection


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

"""Own the Redis store's client: redis.asyncio with bounded timeouts and one quick retry, the
bound on calls in flight, the scripts' short way to a single node, and the translation of
redis-py's errors into the proxy's store errors."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import hiredis
import redis.asyncio as aioredis
from redis import exceptions
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript

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
    # A single node's calls are each bounded as a whole by `CallSlots` (REDIS_TIMEOUT), not per
    # socket operation: redis.asyncio bounds each send with `asyncio.wait_for`, a task per call.
    options["socket_timeout"] = None
    return aioredis.Redis.from_url(settings.url, health_check_interval=30, **options)


class CallSlots:
    """A bound on the calls in flight (REDIS_MAX_CONNECTIONS: the pool's size) and, on a single
    node, on each call's time. A call beyond the slots waits up to `wait_seconds` (REDIS_TIMEOUT)
    for one to finish; the pools of redis.asyncio fail such a call at once instead. A call given
    `call_seconds` is cut off after that long (an outage: `StoreUnavailable`).

    `async with slots.call():` holds one slot for the block, with redis-py's errors translated
    (classes rather than generators: a turn's two store calls each pass through here)."""

    def __init__(self, max_calls: int, wait_seconds: float, call_seconds: float | None = None):
        self._calls = asyncio.Semaphore(max_calls)
        self._wait = wait_seconds
        self.call_seconds = call_seconds

    def call(self) -> SlotCall:
        return SlotCall(self)

    async def take(self) -> None:
        """Take a slot, waiting up to `wait_seconds` when all are taken (a free one is taken
        without the timer, as on almost every call)."""
        if not self._calls.locked():
            await self._calls.acquire()
            return
        with translated():
            try:
                async with asyncio.timeout(self._wait):
                    await self._calls.acquire()
            except TimeoutError:
                raise exceptions.MaxConnectionsError("no Redis connection came free") from None

    def release(self) -> None:
        self._calls.release()


class SlotCall:
    """One call within `CallSlots`: its slot and its deadline."""

    __slots__ = ("_deadline", "_slots")

    def __init__(self, slots: CallSlots):
        self._slots = slots
        self._deadline: asyncio.Timeout | None = None

    async def __aenter__(self) -> None:
        await self._slots.take()
        if self._slots.call_seconds is not None:
            self._deadline = asyncio.timeout(self._slots.call_seconds)
            await self._deadline.__aenter__()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: TracebackType | None
    ) -> None:
        try:
            if self._deadline is not None:
                await self._deadline.__aexit__(kind, error, _)
        except TimeoutError as expired:  # the deadline cut the call off
            error = expired
        finally:
            self._slots.release()
        if isinstance(error, exceptions.RedisError | TimeoutError):
            with translated():
                raise error


class ScriptRunner:
    """Run a registered script on a single node: one EVALSHA packed by hiredis (as redis-py's
    blocking client packs every command, where its asyncio client packs in Python; for text and
    numbers, all the scripts are given, both pack alike), sent on a connection of the client's
    pool and retried by the client's own `Retry`, as `execute_command` does, without the rest
    of its bookkeeping. A turn makes two such calls; this way they cost about 0.1 ms less
    (`make bench`, row 1). A script Redis has lost (a restart, SCRIPT FLUSH) is loaded and run
    again, as redis-py's `Script` does."""

    def __init__(self, client: aioredis.Redis):
        self._client = client
        self._pool = client.connection_pool

    async def run(self, script: AsyncScript, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            return await self._evalsha(script.sha, keys, args)
        except exceptions.NoScriptError:
            script.sha = await self._client.script_load(script.script)
            return await self._evalsha(script.sha, keys, args)

    async def _evalsha(self, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        try:
            packed = hiredis.pack_command(("EVALSHA", sha, len(keys), *keys, *args))
        except TypeError as exc:  # a value neither can send (None, a bool): as redis-py says
            raise exceptions.DataError(str(exc)) from exc
        connection = await self._pool.get_connection()  # type: ignore[no-untyped-call]
        try:

            async def send() -> Any:
                await connection.send_packed_command(packed)
                return await connection.read_response()

            async def failed(error: Exception) -> None:
                await connection.disconnect(error=error)

            return await connection.retry.call_with_retry(send, failed)
        finally:
            await self._pool.release(connection)


@contextmanager
def translated() -> Iterator[None]:
    """Turn redis-py's exceptions into the proxy's store errors."""
    try:
        yield
    except (exceptions.ConnectionError, exceptions.TimeoutError, TimeoutError) as exc:
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

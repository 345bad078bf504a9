"""Own the Redis backend (Upstash in production) for blocking callers: the client and its pool,
and `RedisStore`, which runs the store's steps (`redis_steps.py`: keys, scripts, answers) with
redis-py, translating its errors into the proxy's store errors."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from queue import Empty, LifoQueue
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import MaxConnectionsError
from redis.retry import Retry

from chatproxy.config import RedisSettings
from chatproxy.errors import StoreError, StoreUnavailable
from chatproxy.store.base import (
    ChatInfo,
    ChatRef,
    ChatState,
    IdempotencyClaim,
    IdempotentResult,
    Message,
)
from chatproxy.store.redis_scripts import SCRIPTS
from chatproxy.store.redis_steps import GLOBAL_SYSTEM_KEY, Batch, Call, RedisSteps, Script, Steps

__all__ = ["GLOBAL_SYSTEM_KEY", "RedisStore", "WaitingQueue", "connect"]

T = TypeVar("T")

Client = redis.Redis | RedisCluster


class WaitingQueue(LifoQueue[Any]):
    """The free connections of a blocking pool. A wait for one that times out raises
    MaxConnectionsError, as redis-py's own pool does when full: the plain ConnectionError a
    BlockingConnectionPool raises instead makes a cluster client take the node for failed,
    drop its connections and read the cluster's topology again, on every such wait."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        try:
            return super().get(block, timeout)
        except Empty:
            if not block:
                raise
            raise MaxConnectionsError("no Redis connection came free in time") from None


def connect(settings: RedisSettings) -> Client:
    """Create the process's Redis client with bounded timeouts and one quick retry.

    The retry reconnects a pooled connection that a Redis restart broke; it is safe for writes
    because every write here is idempotent (a turn is keyed by its turn id).

    Connections come from a blocking pool of REDIS_MAX_CONNECTIONS (per node on a cluster): a
    call beyond them waits up to REDIS_TIMEOUT for one to come back. Every store call is one
    short round trip, so a few connections serve many threads; redis-py's own pool instead
    failed every call beyond its 100 connections at once (a 503 in a burst of turns).
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
        "max_connections": settings.max_connections,
        "timeout": settings.socket_timeout,  # the wait for a free connection
        "queue_class": WaitingQueue,
    }
    if settings.ca_cert:
        options["ssl_ca_certs"] = settings.ca_cert
    if settings.cluster:
        return RedisCluster.from_url(
            settings.url, connection_pool_class=redis.BlockingConnectionPool, **options
        )
    pool = redis.BlockingConnectionPool.from_url(settings.url, health_check_interval=30, **options)
    return redis.Redis.from_pool(pool)


class RedisStore(RedisSteps):
    """Chats in Redis; safe to share between threads."""

    def __init__(self, client: Client, ttl_seconds: int | None, max_messages: int = 0):
        super().__init__(isinstance(client, RedisCluster), ttl_seconds, max_messages)
        self._redis = client
        self._scripts = {name: client.register_script(lua) for name, lua in SCRIPTS.items()}

    def ping(self) -> None:
        self._run(self.ping_steps())

    def load_window(self, chat: ChatRef, limit: int) -> ChatState:
        return self._run(self.read_steps(chat, limit, None))

    def load_history(self, chat: ChatRef) -> ChatState:
        return self._run(self.read_steps(chat, -1, None))

    def load_page(self, chat: ChatRef, limit: int, before: int | None) -> ChatState:
        return self._run(self.read_steps(chat, limit, before))

    def begin_turn(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> ChatState | None:
        return self._run(self.begin_turn_steps(chat, token, lease_seconds, limit))

    def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        return self._run(self.chat_info_steps(chat))

    def list_chats(self, tenant: str, limit: int, before: float | None) -> list[ChatInfo]:
        return self._run(self.list_chats_steps(tenant, limit, before))

    def save_turn(
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
        return self._run(steps)

    def acquire_turn(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        return self._run(self.acquire_turn_steps(chat, token, lease_seconds))

    def release_turn(self, chat: ChatRef, token: str) -> None:
        self._run(self.release_turn_steps(chat, token))

    def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        return self._run(self.claim_idempotency_steps(chat, key, fingerprint, lease_seconds))

    def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        self._run(self.release_idempotency_steps(chat, key, fingerprint))

    def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        self._run(self.set_chat_system_steps(chat, content))

    def set_chat_settings(self, chat: ChatRef, settings: dict[str, Any]) -> None:
        self._run(self.set_chat_settings_steps(chat, settings))

    def get_global_system(self) -> str | None:
        return self._run(self.get_global_system_steps())

    def set_global_system(self, content: str) -> None:
        self._run(self.set_global_system_steps(content))

    def delete_chat(self, chat: ChatRef) -> bool:
        return self._run(self.delete_chat_steps(chat))

    def close(self) -> None:
        self._redis.close()

    def _run(self, steps: Steps[T]) -> T:
        """Make each call the steps ask for and send them its answer; return their result."""
        with translated():
            try:
                call = next(steps)
                while True:
                    call = steps.send(self._call(call))
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]

    def _call(self, call: Call) -> Any:
        if isinstance(call, Script):
            return self._scripts[call.name](keys=call.keys, args=call.args)
        if not isinstance(call, Batch):
            return getattr(self._redis, call.name)(*call.args, **call.kwargs)
        pipe = self._redis.pipeline(transaction=call.transaction)
        for queued in call.commands:
            getattr(pipe, queued.name)(*queued.args, **queued.kwargs)
        return pipe.execute()


@contextmanager
def translated() -> Iterator[None]:
    """Turn redis-py's exceptions into the proxy's store errors."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        if _is_certificate_error(exc):
            raise StoreError(
                "the chat store's TLS certificate could not be verified (check REDIS_CA_CERT)"
            ) from exc
        raise StoreUnavailable() from exc
    except redis.RedisError as exc:
        raise StoreError(f"the chat store failed: {type(exc).__name__}") from exc


def _is_certificate_error(exc: BaseException) -> bool:
    """Tell a TLS verification failure (a setup error) from an outage (worth a retry)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc)

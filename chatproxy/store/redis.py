"""Own the Redis backend (Upstash in production).

Keys of one chat share a hash tag, so a Redis Cluster keeps them on one slot:

    chat:{<tenant>:<chat_id>}:msgs       list of JSON messages, oldest first
    chat:{<tenant>:<chat_id>}:meta       hash: system, created, updated, messages, appended,
                                         last_turn, title, prompt/completion/total_tokens
    chats:{<tenant>}                     sorted set of the tenant's chat ids by last activity
    chat:{<tenant>:<chat_id>}:lock       the turn lock: the holder's random token, PX lease
    chat:{<tenant>:<chat_id>}:idem:<k>   idempotency record: state, fingerprint, response (24 h)
    system                               the global default system prompt (never expires)

A turn is saved by one Lua script (check the lock token, append both messages, update meta,
record the idempotent answer, refresh TTLs), which ignores a turn id it has already saved, so a
retried save cannot store a turn twice. Reads are one script too, which also refreshes the
chat's TTL. On a single node each of these is one call, with the global prompt and the tenant's
listing in it; a cluster, which refuses keys of other slots in one script, reads or updates those
in a second. The scripts' Lua source is in `redis_scripts.py`. A turn of a chat whose last save
was this process's own is not sent its window again (`windows.py`).
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from queue import Empty, LifoQueue
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import MaxConnectionsError
from redis.retry import Retry

from chatproxy.config import RedisSettings
from chatproxy.errors import StoreError, StoreUnavailable, TurnLeaseLost
from chatproxy.store.base import (
    DECODED,
    IDEMPOTENCY_TTL_SECONDS,
    ChatInfo,
    ChatRef,
    ChatState,
    IdempotencyClaim,
    IdempotentResult,
    Message,
    title_of,
    usage_of,
)
from chatproxy.store.redis_scripts import (
    BEGIN_TURN,
    CLAIM_IDEMPOTENCY,
    READ_CHAT,
    RELEASE_IDEMPOTENCY,
    RELEASE_TURN,
    SAVE_TURN,
)
from chatproxy.store.windows import KnownWindows
from chatproxy.tokens import USAGE_FIELDS

GLOBAL_SYSTEM_KEY = "system"

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


class RedisStore:
    """Chats in Redis; safe to share between threads."""

    kind = "redis"

    def __init__(self, client: Client, ttl_seconds: int | None, max_messages: int = 0):
        self._redis = client
        self._cluster = isinstance(client, RedisCluster)
        self._ttl = ttl_seconds
        self._max_messages = max_messages
        self._windows = KnownWindows(max_chats=1024, max_chars=2_000_000)
        self._save_turn = client.register_script(SAVE_TURN)
        self._read_chat = client.register_script(READ_CHAT)
        self._begin_turn = client.register_script(BEGIN_TURN)
        self._release_turn = client.register_script(RELEASE_TURN)
        self._claim_idempotency = client.register_script(CLAIM_IDEMPOTENCY)
        self._release_idempotency = client.register_script(RELEASE_IDEMPOTENCY)

    def ping(self) -> None:
        with _translated():
            self._redis.ping()

    def load_window(self, chat: ChatRef, limit: int) -> ChatState:
        return self._read(chat, limit, None)

    def load_history(self, chat: ChatRef) -> ChatState:
        return self._read(chat, -1, None)

    def load_page(self, chat: ChatRef, limit: int, before: int | None) -> ChatState:
        return self._read(chat, limit, before)

    def begin_turn(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> ChatState | None:
        known = self._windows.get(chat)
        args = [limit, self._ttl or 0, token, _millis(lease_seconds)]
        args += [known.turn or "", len(known.raws)] if known else ["", 0]
        keys = [*_keys(chat), _lock_key(chat)]
        with _translated():
            read = self._script(self._begin_turn, keys, [GLOBAL_SYSTEM_KEY], args)
            if read is not None and self._cluster:
                read[5] = self._redis.get(GLOBAL_SYSTEM_KEY)
        if read is None:
            return None
        if isinstance(read[3], int):  # the newest read[3] of the window this process knows
            assert known is not None
            read[3] = known.raws[len(known.raws) - read[3] :]
        self._windows.read(chat, token, read[3], limit)
        return _state(read, keep=True)

    def _read(self, chat: ChatRef, limit: int, before: int | None) -> ChatState:
        """Read the chat (and refresh its TTL) atomically, and the global prompt."""
        args = [limit, -1 if before is None else before, self._ttl or 0]
        with _translated():
            read = self._script(self._read_chat, list(_keys(chat)), [GLOBAL_SYSTEM_KEY], args)
            if self._cluster:
                read[5] = self._redis.get(GLOBAL_SYSTEM_KEY)
        return _state(read)

    def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        _, meta = _keys(chat)
        with _translated():
            pipe = self._redis.pipeline(transaction=False)
            pipe.hgetall(meta)
            self._touch(pipe, chat)
            fields = pipe.execute()[0]
        return _info(chat.chat_id, fields) if fields else None

    def list_chats(self, tenant: str, limit: int, before: float | None) -> list[ChatInfo]:
        index = _index_key(tenant)
        top = f"({before!r}" if before is not None else "+inf"
        with _translated():
            found = self._redis.zrevrangebyscore(index, top, "-inf", start=0, num=limit)
            ids = [str(chat_id) for chat_id in found]
            pipe = self._redis.pipeline(transaction=False)
            for chat_id in ids:
                pipe.hgetall(_keys(ChatRef(tenant, chat_id))[1])
            metas = pipe.execute()
            gone = [chat_id for chat_id, fields in zip(ids, metas, strict=True) if not fields]
            if gone:  # expired chats leave the index when a listing finds them
                self._redis.zrem(index, *gone)
        return [
            _info(chat_id, fields) for chat_id, fields in zip(ids, metas, strict=True) if fields
        ]

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
        msgs, meta = _keys(chat)
        idem_key = _idem_key(chat, idempotent.key if idempotent else "")
        fenced = 0 if lock_token is None else 2 if release else 1
        args: list[str | int] = [turn_id, repr(time.time()), self._ttl or 0, fenced]
        args.append(lock_token or "")
        if idempotent:
            args += [idempotent.fingerprint, idempotent.response, IDEMPOTENCY_TTL_SECONDS]
        else:
            args += ["", "", 0]
        args.append(self._max_messages)
        args += [*usage_of(messages).values(), title_of(messages) or "", chat.chat_id]
        raws = [m.dumps() for m in messages]
        args += raws
        keys = [msgs, meta, _lock_key(chat), idem_key]
        with _translated():
            saved = int(self._script(self._save_turn, keys, [_index_key(chat.tenant)], args))
            if saved == 1 and self._cluster:
                index = self._redis.pipeline(transaction=False)
                self._index(index, chat, float(args[1]))
                index.execute()
        if saved < 0:
            raise TurnLeaseLost()
        if saved == 1:
            DECODED.put_many(raws, messages)  # the next turn reads them back in its window
            if lock_token is not None:
                self._windows.saved(chat, lock_token, turn_id, raws)
        return saved == 1

    def acquire_turn(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        with _translated():
            return bool(self._redis.set(_lock_key(chat), token, nx=True, px=_millis(lease_seconds)))

    def release_turn(self, chat: ChatRef, token: str) -> None:
        with _translated():
            self._release_turn(keys=[_lock_key(chat)], args=[token])

    def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        with _translated():
            answer = self._claim_idempotency(
                keys=[_idem_key(chat, key)], args=[fingerprint, _millis(lease_seconds)]
            )
        state = answer[0]
        return IdempotencyClaim(state, answer[1] if state == "done" else None)

    def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        with _translated():
            self._release_idempotency(keys=[_idem_key(chat, key)], args=[fingerprint])

    def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        _, meta = _keys(chat)
        now = repr(time.time())
        with _translated():
            pipe = self._redis.pipeline(transaction=True)
            if content is None:
                pipe.hdel(meta, "system")
            else:
                pipe.hset(meta, mapping={"system": content, "updated": now})
                pipe.hsetnx(meta, "created", now)
            self._touch(pipe, chat)
            pipe.execute()
            if content is not None:
                index = self._redis.pipeline(transaction=False)
                self._index(index, chat, float(now))
                index.execute()

    def set_chat_settings(self, chat: ChatRef, settings: dict[str, Any]) -> None:
        _, meta = _keys(chat)
        now = repr(time.time())
        with _translated():
            pipe = self._redis.pipeline(transaction=True)
            if settings:
                pipe.hset(meta, mapping={"settings": json.dumps(settings), "updated": now})
                pipe.hsetnx(meta, "created", now)
            else:
                pipe.hdel(meta, "settings")
            self._touch(pipe, chat)
            pipe.execute()

    def get_global_system(self) -> str | None:
        with _translated():
            value = self._redis.get(GLOBAL_SYSTEM_KEY)
        return None if value is None else str(value)

    def set_global_system(self, content: str) -> None:
        with _translated():
            self._redis.set(GLOBAL_SYSTEM_KEY, content)

    def delete_chat(self, chat: ChatRef) -> bool:
        self._windows.forget(chat)
        with _translated():
            pipe = self._redis.pipeline(transaction=False)
            for key in _keys(chat):  # one DEL each: a cluster pipeline refuses multi-key DEL
                pipe.delete(key)
            pipe.zrem(_index_key(chat.tenant), chat.chat_id)
            deleted = pipe.execute()
        return int(deleted[0]) + int(deleted[1]) > 0

    def close(self) -> None:
        self._redis.close()

    def _script(self, script: Any, keys: list[str], beside: list[str], args: list[Any]) -> Any:
        """Run a script on the chat's `keys`, and on a single node also on the keys `beside` the
        chat's slot that it reads or writes when given them (a cluster refuses those in one
        script: its caller handles them in another call).

        One EVALSHA (redis-py loads the script only when Redis answers NOSCRIPT): the pipeline
        of a script and a command this replaced cost the client 40% more CPU than one call, and
        its pipelined script asked SCRIPT EXISTS first, a round trip of its own.
        """
        if not self._cluster:
            keys = [*keys, *beside]
        return script(keys=keys, args=args)

    def _index(self, pipe: Any, chat: ChatRef, now: float) -> None:
        """Queue the chat's entry in its tenant's listing (by last activity)."""
        index = _index_key(chat.tenant)
        pipe.zadd(index, {chat.chat_id: now})
        if self._ttl is not None:
            pipe.expire(index, self._ttl)

    def _touch(self, pipe: redis.client.Pipeline, chat: ChatRef) -> None:
        """Queue the TTL refresh of every key of the chat."""
        if self._ttl is None:
            return
        for key in _keys(chat):
            pipe.expire(key, self._ttl)


def _state(read: list[Any], *, keep: bool = False) -> ChatState:
    """Turn READ_CHAT's answer into a ChatState; with `keep`, the decoded messages are kept for
    the next read (a turn's window: see `DecodedMessages`)."""
    exists, chat_system, first_id, raw_messages, settings, global_system = read
    return ChatState(
        exists=bool(exists),
        chat_system=chat_system,
        global_system=global_system,
        messages=Message.loads_many(raw_messages, keep=keep),
        first_id=int(first_id),
        settings=json.loads(settings) if settings else {},
    )


def _keys(chat: ChatRef) -> tuple[str, str]:
    return f"chat:{chat.slot}:msgs", f"chat:{chat.slot}:meta"


def _index_key(tenant: str) -> str:
    return f"chats:{{{tenant}}}"


def _info(chat_id: str, fields: dict[str, str]) -> ChatInfo:
    return ChatInfo(
        chat_id=chat_id,
        created=float(fields.get("created", 0)),
        updated=float(fields.get("updated", 0)),
        messages=int(fields.get("messages", 0)),
        title=fields.get("title"),
        tokens={name: int(fields.get(name, 0)) for name in USAGE_FIELDS},
    )


def _lock_key(chat: ChatRef) -> str:
    return f"chat:{chat.slot}:lock"


def _idem_key(chat: ChatRef, key: str) -> str:
    return f"chat:{chat.slot}:idem:{key}"


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))


@contextmanager
def _translated() -> Iterator[None]:
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

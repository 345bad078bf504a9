"""Own the Redis backend (Upstash in production).

Keys of one chat share a hash tag, so a Redis Cluster keeps them on one slot:

    chat:{<tenant>:<chat_id>}:msgs       list of JSON messages, oldest first
    chat:{<tenant>:<chat_id>}:meta       hash: system, created, updated, messages, last_turn
    chat:{<tenant>:<chat_id>}:lock       the turn lock: the holder's random token, PX lease
    chat:{<tenant>:<chat_id>}:idem:<k>   idempotency record: state, fingerprint, response (24 h)
    system                               the global default system prompt (never expires)

A turn is saved by one Lua script (check the lock token, append both messages, update meta,
record the idempotent answer, refresh TTLs), which ignores a turn id it has already saved, so a
retried save cannot store a turn twice. Reads are one pipelined round trip that also refreshes
the chat's TTL.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from chatproxy.config import RedisSettings
from chatproxy.errors import StoreError, StoreUnavailable, TurnLeaseLost
from chatproxy.store.base import (
    IDEMPOTENCY_TTL_SECONDS,
    ChatRef,
    ChatState,
    IdempotencyClaim,
    IdempotentResult,
    Message,
)

GLOBAL_SYSTEM_KEY = "system"

SAVE_TURN = """
-- KEYS: msgs, meta, lock, idem
-- ARGV: turn_id, now, ttl (0 = none), fenced (1/0), lock token, idem fingerprint ('' = none),
--       idem response, idem ttl, most messages kept (0 = all), message JSON...
if redis.call('HGET', KEYS[2], 'last_turn') == ARGV[1] then
  return 0
end
if ARGV[4] == '1' and redis.call('GET', KEYS[3]) ~= ARGV[5] then
  return -1
end
for i = 10, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
local kept = redis.call('LLEN', KEYS[1])
local most = tonumber(ARGV[9])
if most > 0 and kept > most then
  redis.call('LTRIM', KEYS[1], -most, -1)
  kept = most
end
redis.call('HSETNX', KEYS[2], 'created', ARGV[2])
redis.call('HSET', KEYS[2], 'updated', ARGV[2], 'last_turn', ARGV[1], 'messages', kept)
local ttl = tonumber(ARGV[3])
for i = 1, 2 do
  if ttl > 0 then redis.call('EXPIRE', KEYS[i], ttl) else redis.call('PERSIST', KEYS[i]) end
end
if ARGV[6] ~= '' then
  redis.call('HSET', KEYS[4], 'state', 'done', 'fingerprint', ARGV[6], 'response', ARGV[7])
  redis.call('EXPIRE', KEYS[4], ARGV[8])
end
return 1
"""

RELEASE_TURN = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

CLAIM_IDEMPOTENCY = """
-- KEYS: idem   ARGV: fingerprint, pending lease (ms)
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('HSET', KEYS[1], 'state', 'pending', 'fingerprint', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'new'}
end
if redis.call('HGET', KEYS[1], 'fingerprint') ~= ARGV[1] then
  return {'mismatch'}
end
if state == 'pending' then
  return {'pending'}
end
return {'done', redis.call('HGET', KEYS[1], 'response')}
"""

RELEASE_IDEMPOTENCY = """
if redis.call('HGET', KEYS[1], 'state') == 'pending'
   and redis.call('HGET', KEYS[1], 'fingerprint') == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


Client = redis.Redis | RedisCluster


def connect(settings: RedisSettings) -> Client:
    """Create the process's Redis client with bounded timeouts and one quick retry.

    The retry reconnects a pooled connection that a Redis restart broke; it is safe for writes
    because every write here is idempotent (a turn is keyed by its turn id).
    """
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": settings.socket_timeout,
        "socket_connect_timeout": settings.socket_timeout,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    }
    if settings.ca_cert:
        options["ssl_ca_certs"] = settings.ca_cert
    if settings.cluster:
        return RedisCluster.from_url(settings.url, **options)
    return redis.Redis.from_url(settings.url, health_check_interval=30, **options)


class RedisStore:
    """Chats in Redis; safe to share between threads."""

    kind = "redis"

    def __init__(self, client: Client, ttl_seconds: int | None, max_messages: int = 0):
        self._redis = client
        self._ttl = ttl_seconds
        self._max_messages = max_messages
        self._save_turn = client.register_script(SAVE_TURN)
        self._release_turn = client.register_script(RELEASE_TURN)
        self._claim_idempotency = client.register_script(CLAIM_IDEMPOTENCY)
        self._release_idempotency = client.register_script(RELEASE_IDEMPOTENCY)

    def ping(self) -> None:
        with _translated():
            self._redis.ping()

    def load_window(self, chat: ChatRef, limit: int) -> ChatState:
        return self._load(chat, -limit if limit > 0 else None)

    def load_history(self, chat: ChatRef) -> ChatState:
        return self._load(chat, 0)

    def _load(self, chat: ChatRef, start: int | None) -> ChatState:
        msgs, meta = _keys(chat)
        with _translated():
            pipe = self._redis.pipeline(transaction=False)
            pipe.exists(meta)
            pipe.hget(meta, "system")
            pipe.get(GLOBAL_SYSTEM_KEY)
            if start is not None:
                pipe.lrange(msgs, start, -1)
            self._touch(pipe, chat)
            results: list[Any] = pipe.execute()
        raw_messages: list[str] = results[3] if start is not None else []
        return ChatState(
            exists=bool(results[0]),
            chat_system=results[1],
            global_system=results[2],
            messages=[Message.loads(raw) for raw in raw_messages],
        )

    def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
    ) -> bool:
        msgs, meta = _keys(chat)
        idem_key = _idem_key(chat, idempotent.key if idempotent else "")
        fenced = 0 if lock_token is None else 1
        args: list[str | int] = [turn_id, repr(time.time()), self._ttl or 0, fenced]
        args.append(lock_token or "")
        if idempotent:
            args += [idempotent.fingerprint, idempotent.response, IDEMPOTENCY_TTL_SECONDS]
        else:
            args += ["", "", 0]
        args.append(self._max_messages)
        args += [m.dumps() for m in messages]
        with _translated():
            saved = int(self._save_turn(keys=[msgs, meta, _lock_key(chat), idem_key], args=args))
        if saved < 0:
            raise TurnLeaseLost()
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

    def get_global_system(self) -> str | None:
        with _translated():
            value = self._redis.get(GLOBAL_SYSTEM_KEY)
        return None if value is None else str(value)

    def set_global_system(self, content: str) -> None:
        with _translated():
            self._redis.set(GLOBAL_SYSTEM_KEY, content)

    def delete_chat(self, chat: ChatRef) -> bool:
        with _translated():
            return int(self._redis.delete(*_keys(chat))) > 0

    def close(self) -> None:
        self._redis.close()

    def _touch(self, pipe: redis.client.Pipeline, chat: ChatRef) -> None:
        """Queue the TTL refresh of every key of the chat."""
        if self._ttl is None:
            return
        for key in _keys(chat):
            pipe.expire(key, self._ttl)


def _keys(chat: ChatRef) -> tuple[str, str]:
    return f"chat:{chat.slot}:msgs", f"chat:{chat.slot}:meta"


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

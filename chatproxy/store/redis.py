"""Own the Redis backend (Upstash in production).

Keys of one chat share a hash tag, so a Redis Cluster keeps them on one slot:

    chat:{<tenant>:<chat_id>}:msgs   list of JSON messages, oldest first
    chat:{<tenant>:<chat_id>}:meta   hash: system, created, updated, messages, last_turn
    system                           the global default system prompt (never expires)

A turn is saved by one Lua script (append both messages, update meta, refresh TTLs), which refuses
a turn id it has already saved, so a retried save cannot store a turn twice. Reads are one
pipelined round trip that also refreshes the chat's TTL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from chatproxy.config import RedisSettings
from chatproxy.errors import StoreError, StoreUnavailable
from chatproxy.store.base import ChatRef, ChatState, Message

GLOBAL_SYSTEM_KEY = "system"

SAVE_TURN = """
-- KEYS: msgs, meta   ARGV: turn_id, now, ttl (0 = none), message JSON...
if redis.call('HGET', KEYS[2], 'last_turn') == ARGV[1] then
  return 0
end
for i = 4, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
redis.call('HSETNX', KEYS[2], 'created', ARGV[2])
redis.call('HSET', KEYS[2], 'updated', ARGV[2], 'last_turn', ARGV[1])
redis.call('HINCRBY', KEYS[2], 'messages', #ARGV - 3)
local ttl = tonumber(ARGV[3])
for _, key in ipairs(KEYS) do
  if ttl > 0 then redis.call('EXPIRE', key, ttl) else redis.call('PERSIST', key) end
end
return 1
"""


def connect(settings: RedisSettings) -> redis.Redis:
    """Create the process's Redis client with bounded timeouts and one quick retry."""
    return redis.Redis.from_url(
        settings.url,
        decode_responses=True,
        socket_timeout=settings.socket_timeout,
        socket_connect_timeout=settings.socket_timeout,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries=1),
    )


class RedisStore:
    """Chats in Redis; safe to share between threads."""

    kind = "redis"

    def __init__(self, client: redis.Redis, ttl_seconds: int | None):
        self._redis = client
        self._ttl = ttl_seconds
        self._save_turn = client.register_script(SAVE_TURN)

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

    def save_turn(self, chat: ChatRef, turn_id: str, messages: Sequence[Message]) -> bool:
        msgs, meta = _keys(chat)
        args: list[str | int] = [turn_id, repr(time.time()), self._ttl or 0]
        args += [m.dumps() for m in messages]
        with _translated():
            return bool(self._save_turn(keys=[msgs, meta], args=args))

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


@contextmanager
def _translated() -> Iterator[None]:
    """Turn redis-py's exceptions into the proxy's store errors."""
    try:
        yield
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise StoreUnavailable() from exc
    except redis.RedisError as exc:
        raise StoreError(f"the chat store failed: {type(exc).__name__}") from exc

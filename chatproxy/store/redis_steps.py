"""Own what the Redis backend asks Redis and what it makes of the answers, without doing I/O.

Each operation of the store is a generator: it yields the calls it needs (a script, a command, a
pipeline) and is sent each one's answer, then returns the operation's result. `RedisStore`
(`redis.py`) runs them with blocking redis-py, `AsyncRedisStore` (`redis_aio.py`) with
redis.asyncio, so both speak to Redis the same way and neither repeats the other's logic.

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
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chatproxy.errors import TurnLeaseLost
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
from chatproxy.store.windows import KnownWindows
from chatproxy.tokens import USAGE_FIELDS

GLOBAL_SYSTEM_KEY = "system"

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Script:
    """Run the store's Lua script `name` (one of `redis_scripts.SCRIPTS`)."""

    name: str
    keys: list[str]
    args: list[Any]


@dataclass(frozen=True, slots=True)
class Command:
    """Send one command, by its redis-py method name."""

    name: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Batch:
    """Send commands in one pipeline (a MULTI/EXEC one with `transaction`); the answer is
    the list of theirs."""

    commands: list[Command]
    transaction: bool = False


Call = Script | Command | Batch
Steps = Generator[Call, Any, T]


def command(name: str, *args: Any, **kwargs: Any) -> Command:
    """Build a Command as the redis-py method would be called."""
    return Command(name, args, kwargs)


class RedisSteps:
    """The store's operations as steps, over one client's topology (single node or cluster)."""

    kind = "redis"

    def __init__(self, cluster: bool, ttl_seconds: int | None, max_messages: int = 0):
        self._cluster = cluster
        self._ttl = ttl_seconds
        self._max_messages = max_messages
        self._windows = KnownWindows(max_chats=1024, max_chars=2_000_000)

    def ping_steps(self) -> Steps[None]:
        yield command("ping")

    def read_steps(self, chat: ChatRef, limit: int, before: int | None) -> Steps[ChatState]:
        """Read the chat (and refresh its TTL) atomically, and the global prompt."""
        args = [limit, -1 if before is None else before, self._ttl or 0]
        read = yield self._script("read_chat", list(_keys(chat)), [GLOBAL_SYSTEM_KEY], args)
        if self._cluster:
            read[5] = yield command("get", GLOBAL_SYSTEM_KEY)
        return _state(read)

    def begin_turn_steps(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> Steps[ChatState | None]:
        known = self._windows.get(chat)
        args = [limit, self._ttl or 0, token, _millis(lease_seconds)]
        args += [known.turn or "", len(known.raws)] if known else ["", 0]
        keys = [*_keys(chat), _lock_key(chat)]
        read = yield self._script("begin_turn", keys, [GLOBAL_SYSTEM_KEY], args)
        if read is None:
            return None
        if self._cluster:
            read[5] = yield command("get", GLOBAL_SYSTEM_KEY)
        if isinstance(read[3], int):  # the newest read[3] of the window this process knows
            assert known is not None
            read[3] = known.raws[len(known.raws) - read[3] :]
        self._windows.read(chat, token, read[3], limit)
        return _state(read, keep=True)

    def chat_info_steps(self, chat: ChatRef) -> Steps[ChatInfo | None]:
        _, meta = _keys(chat)
        answers = yield Batch([command("hgetall", meta), *self._touch(chat)])
        fields = answers[0]
        return _info(chat.chat_id, fields) if fields else None

    def list_chats_steps(
        self, tenant: str, limit: int, before: float | None
    ) -> Steps[list[ChatInfo]]:
        index = _index_key(tenant)
        top = f"({before!r}" if before is not None else "+inf"
        found = yield command("zrevrangebyscore", index, top, "-inf", start=0, num=limit)
        ids = [str(chat_id) for chat_id in found]
        if not ids:
            return []
        metas = yield Batch([command("hgetall", _keys(ChatRef(tenant, i))[1]) for i in ids])
        gone = [chat_id for chat_id, fields in zip(ids, metas, strict=True) if not fields]
        if gone:  # expired chats leave the index when a listing finds them
            yield command("zrem", index, *gone)
        return [
            _info(chat_id, fields) for chat_id, fields in zip(ids, metas, strict=True) if fields
        ]

    def save_turn_steps(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
        release: bool = False,
    ) -> Steps[bool]:
        msgs, meta = _keys(chat)
        idem_key = _idem_key(chat, idempotent.key if idempotent else "")
        fenced = 0 if lock_token is None else 2 if release else 1
        now = time.time()
        args: list[str | int] = [turn_id, repr(now), self._ttl or 0, fenced, lock_token or ""]
        if idempotent:
            args += [idempotent.fingerprint, idempotent.response, IDEMPOTENCY_TTL_SECONDS]
        else:
            args += ["", "", 0]
        args.append(self._max_messages)
        args += [*usage_of(messages).values(), title_of(messages) or "", chat.chat_id]
        raws = [m.dumps() for m in messages]
        args += raws
        keys = [msgs, meta, _lock_key(chat), idem_key]
        saved = int((yield self._script("save_turn", keys, [_index_key(chat.tenant)], args)))
        if saved < 0:
            raise TurnLeaseLost()
        if saved == 0:
            return False
        if self._cluster:
            yield Batch(self._index(chat, now))
        DECODED.put_many(raws, messages)  # the next turn reads them back in its window
        if lock_token is not None:
            self._windows.saved(chat, lock_token, turn_id, raws)
        return True

    def acquire_turn_steps(self, chat: ChatRef, token: str, lease_seconds: float) -> Steps[bool]:
        taken = yield command("set", _lock_key(chat), token, nx=True, px=_millis(lease_seconds))
        return bool(taken)

    def release_turn_steps(self, chat: ChatRef, token: str) -> Steps[None]:
        yield Script("release_turn", [_lock_key(chat)], [token])

    def claim_idempotency_steps(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> Steps[IdempotencyClaim]:
        args = [fingerprint, _millis(lease_seconds)]
        answer = yield Script("claim_idempotency", [_idem_key(chat, key)], args)
        state = answer[0]
        return IdempotencyClaim(state, answer[1] if state == "done" else None)

    def release_idempotency_steps(self, chat: ChatRef, key: str, fingerprint: str) -> Steps[None]:
        yield Script("release_idempotency", [_idem_key(chat, key)], [fingerprint])

    def set_chat_system_steps(self, chat: ChatRef, content: str | None) -> Steps[None]:
        _, meta = _keys(chat)
        now = time.time()
        if content is None:
            changes = [command("hdel", meta, "system")]
        else:
            changes = [
                command("hset", meta, mapping={"system": content, "updated": repr(now)}),
                command("hsetnx", meta, "created", repr(now)),
            ]
        yield Batch([*changes, *self._touch(chat)], transaction=True)
        if content is not None:
            yield Batch(self._index(chat, now))

    def set_chat_settings_steps(self, chat: ChatRef, settings: dict[str, Any]) -> Steps[None]:
        _, meta = _keys(chat)
        now = repr(time.time())
        if settings:
            changes = [
                command("hset", meta, mapping={"settings": json.dumps(settings), "updated": now}),
                command("hsetnx", meta, "created", now),
            ]
        else:
            changes = [command("hdel", meta, "settings")]
        yield Batch([*changes, *self._touch(chat)], transaction=True)

    def get_global_system_steps(self) -> Steps[str | None]:
        value = yield command("get", GLOBAL_SYSTEM_KEY)
        return None if value is None else str(value)

    def set_global_system_steps(self, content: str) -> Steps[None]:
        yield command("set", GLOBAL_SYSTEM_KEY, content)

    def delete_chat_steps(self, chat: ChatRef) -> Steps[bool]:
        self._windows.forget(chat)
        # One DEL each: a cluster pipeline refuses a DEL of several keys.
        deletes = [command("delete", key) for key in _keys(chat)]
        deleted = yield Batch([*deletes, command("zrem", _index_key(chat.tenant), chat.chat_id)])
        return int(deleted[0]) + int(deleted[1]) > 0

    def _script(self, name: str, keys: list[str], beside: list[str], args: list[Any]) -> Script:
        """Run a script on the chat's `keys`, and on a single node also on the keys `beside` the
        chat's slot that it reads or writes when given them (a cluster refuses those in one
        script: its caller handles them in another call).

        One EVALSHA (redis-py loads the script only when Redis answers NOSCRIPT): the pipeline
        of a script and a command this replaced cost the client 40% more CPU than one call, and
        its pipelined script asked SCRIPT EXISTS first, a round trip of its own.
        """
        return Script(name, keys if self._cluster else [*keys, *beside], args)

    def _index(self, chat: ChatRef, now: float) -> list[Command]:
        """The update of the chat's entry in its tenant's listing (by last activity)."""
        index = _index_key(chat.tenant)
        commands = [command("zadd", index, {chat.chat_id: now})]
        if self._ttl is not None:
            commands.append(command("expire", index, self._ttl))
        return commands

    def _touch(self, chat: ChatRef) -> list[Command]:
        """The TTL refresh of every key of the chat."""
        if self._ttl is None:
            return []
        return [command("expire", key, self._ttl) for key in _keys(chat)]


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

"""Own the Redis backend (Upstash in production): `RedisStore`, each operation's calls to Redis
and what it makes of the answers, for coroutines of one event loop. The operations on chats as
records (a chat's info and own fields, the tenant's listing, a chat's deletion, the global
prompt) are `redis_chats.py`'s (`RedisChats`, which this store builds on beside `RedisCalls`),
those on a chat's items beyond a turn's (its children and leaf, given items)
`redis_items.py`'s (`RedisItems`, likewise), those on summaries `redis_summaries.py`'s
(`RedisSummaries`, likewise).

A turn is saved by one Lua script (check the lock token, append both messages, update meta,
record the idempotent answer, refresh TTLs), which ignores a turn id it has already saved, so a
retried save cannot store a turn twice; it is run again only when its trim drops the records of
turns it was not given (`RedisCalls._declaring`). Reads are one script too, which also refreshes
the chat's TTL and its tenant's listing's (a listing outlives the chats it lists, those that only
reads keep alive too). On a single node each of these is one call, with the global prompt and
the tenant's listing in it; a cluster, which refuses keys of other slots in one script, reads or
updates those in a second. The keys are `redis_keys.py`'s, the scripts' Lua source
`redis_scripts.py`'s (and `redis_read_scripts.py`'s, for a path's reads;
`redis_branches.py`'s, for a chat's branches; `redis_item_scripts.py`'s, for given items;
`redis_export.py`'s, for whole chats; `redis_idem_scripts.py`'s, for idempotency keys' claims;
`redis_summaries.py`'s, for summaries), the calls
`redis_calls.py`'s (`RedisCalls`, which this store builds on: the client, the scripts by name,
the bound on calls in flight). A turn of a chat whose last save was this process's own is not
sent its window again (`windows.py`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from redis.asyncio.cluster import RedisCluster

from chatproxy.errors import NotFound, TurnLeaseLost
from chatproxy.jsontext import compact
from chatproxy.store.chat_tree import ChatTree
from chatproxy.store.idempotency import (
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyClaim,
    IdempotentResult,
)
from chatproxy.store.items import (
    ChatRef,
    ChatState,
    Message,
    title_of,
    usage_of,
)
from chatproxy.store.redis_branches import path_children
from chatproxy.store.redis_calls import RedisCalls
from chatproxy.store.redis_chats import RedisChats
from chatproxy.store.redis_export import TREE_SCRIPTS, load_tree, save_tree
from chatproxy.store.redis_idem_scripts import CLAIM_SCRIPTS
from chatproxy.store.redis_items import RedisItems
from chatproxy.store.redis_keys import (
    GLOBAL_SYSTEM_KEY,
    chat_keys,
    idem_key,
    idems_key,
    index_key,
    lock_key,
    millis,
    raise_if_missing,
    start_arg,
    state_of,
)
from chatproxy.store.redis_read_scripts import READ_SCRIPTS
from chatproxy.store.redis_scripts import SCRIPTS
from chatproxy.store.redis_summaries import RedisSummaries
from chatproxy.store.windows import item_id

if TYPE_CHECKING:
    from chatproxy.store.redis_limits import SharedRedisStorage


class RedisStore(RedisCalls, RedisChats, RedisItems, RedisSummaries):
    """Chats in Redis, for coroutines of one event loop."""

    kind = "redis"
    LUA: ClassVar[Mapping[str, str]] = {
        **SCRIPTS,
        **CLAIM_SCRIPTS,
        **READ_SCRIPTS,
        **RedisItems.LUA,
        **TREE_SCRIPTS,
        **RedisChats.LUA,
        **RedisSummaries.LUA,
    }

    async def load_window(self, chat: ChatRef, limit: int, leaf: int | None = None) -> ChatState:
        return await self._read(chat, limit, None, leaf, False, False)

    async def load_history(
        self,
        chat: ChatRef,
        leaf: int | None = None,
        *,
        children: bool = False,
        summaries: bool = False,
    ) -> ChatState:
        return await self._read(chat, -1, None, leaf, children, summaries)

    async def load_page(
        self,
        chat: ChatRef,
        limit: int,
        before: int | None,
        leaf: int | None = None,
        *,
        children: bool = False,
        summaries: bool = False,
    ) -> ChatState:
        return await self._read(chat, limit, before, leaf, children, summaries)

    async def _read(
        self, chat: ChatRef, limit: int, before: int | None, at: int | None, kids: bool, sums: bool
    ) -> ChatState:
        """Read the chat (and refresh its TTL) atomically, and the global prompt; with `kids`,
        the versions of the messages read (`ChatState.children`), with `sums` their summaries
        (`ChatState.summaries`), in the same script."""
        args = [limit, "" if before is None else before, self._ttl or 0, start_arg(at)]
        args += ["1" if kids else "", "1" if sums else ""]
        beside = [GLOBAL_SYSTEM_KEY, index_key(chat.tenant)]
        read = await self._script("read_chat", list(chat_keys(chat)), beside, args)
        raise_if_missing(read)
        if self._cluster:
            read[4] = await self._command("get", GLOBAL_SYSTEM_KEY)
            await self._listed_beside(chat)
        state = state_of(read, self.decoded)
        return replace(state, children=path_children(read[9])) if kids else state

    async def begin_turn(
        self,
        chat: ChatRef,
        token: str,
        lease_seconds: float,
        limit: int,
        at: int | None = None,
        reserve: int = 0,
    ) -> ChatState | None:
        known = self._windows.usable(chat, limit, at)
        args = [limit, self._ttl or 0, token, millis(lease_seconds)]
        args += [known.turn or "", len(known.raws)] if known else ["", 0]
        args.append(start_arg(at))
        args.append(item_id(known.raws[-1]) if known and known.raws else "")
        args.append(reserve)
        keys = [*chat_keys(chat), lock_key(chat)]
        beside = [GLOBAL_SYSTEM_KEY, index_key(chat.tenant)]
        read = await self._script("begin_turn", keys, beside, args)
        if read is None:
            return None
        raise_if_missing(read)
        if self._cluster:  # the listing's TTL is refreshed by the turn's save
            read[4] = await self._command("get", GLOBAL_SYSTEM_KEY)
        if isinstance(read[2], int):  # the newest read[2] of the window this process knows
            assert known is not None
            read[2] = known.raws[len(known.raws) - read[2] :]
        self._windows.read(chat, token, read[2], limit, seen=read[8] or None)
        return state_of(read, self.decoded, keep=True)

    async def load_tree(self, chat: ChatRef) -> ChatTree | None:
        keys, listing = [*chat_keys(chat)], index_key(chat.tenant)
        tree = await load_tree(self._script, keys, listing, chat.chat_id, self._ttl, self.decoded)
        await self._listed_beside(chat)
        return tree

    async def save_tree(self, chat: ChatRef, tree: ChatTree, *, replace: bool = False) -> bool:
        self._windows.forget(chat)
        keys = [*chat_keys(chat), lock_key(chat), idems_key(chat)]
        args = (keys, index_key(chat.tenant), chat.chat_id, tree)
        saved = await save_tree(
            self._declaring, *args, replace=replace, ttl=self._ttl, most=self._max_messages
        )
        if saved:
            await self._index_beside(chat, tree.updated)
        return saved

    async def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
        release: bool = False,
        metadata: dict[str, str] | None = None,
        existed: bool = False,
    ) -> bool:
        fenced = 0 if lock_token is None else 2 if release else 1
        now = time.time()
        args: list[str | int] = [turn_id, repr(now), self._ttl or 0, fenced, lock_token or ""]
        if idempotent:
            args += [idempotent.fingerprint, idempotent.response, IDEMPOTENCY_TTL_SECONDS]
        else:
            args += ["", "", 0]
        args.append(self._max_messages)
        args += [*usage_of(messages).values(), title_of(messages) or "", chat.chat_id]
        args.append("" if metadata is None else compact(metadata))
        args.append("1" if existed else "0")
        raws = [m.dumps() if m.id is not None else "" for m in messages]
        args += [raw or compact(m.to_json()) for m, raw in zip(messages, raws, strict=True)]
        record = idem_key(chat, idempotent.key if idempotent else "")
        # and the links of the chat's records, which a record joins and a trim reads
        keys = [*chat_keys(chat), lock_key(chat), record, idems_key(chat)]
        saved = await self._declaring("save_turn", keys, [index_key(chat.tenant)], args)
        if saved == -1:
            raise TurnLeaseLost()
        if saved == -2:
            raise NotFound("the message this turn goes under was deleted")
        if saved == 0:
            return False
        await self._index_beside(chat, now)
        if all(raws):  # every message placed: stored as its own text
            self.decoded.remember(raws, messages)  # the next turn reads them back in its window
            parent, first = messages[0].parent if messages else None, int(saved[1])
            if lock_token is not None:
                self._windows.saved(chat, lock_token, turn_id, raws, parent=parent, first=first)
            else:  # a fork's: its window is known if nothing was written since its read
                previous = saved[2] or None
                self._windows.forked(
                    chat, turn_id, raws, parent=parent, first=first, previous=previous
                )
        else:
            self._windows.forget(chat)
        return True

    async def release_turn(self, chat: ChatRef, token: str) -> None:
        await self._script("release_turn", [lock_key(chat)], [], [token])

    async def turn_held(self, chat: ChatRef) -> bool:
        return bool(await self._command("exists", lock_key(chat)))  # a lease expires the key

    async def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        args = [fingerprint, millis(lease_seconds)]
        answer = await self._script("claim_idempotency", [idem_key(chat, key)], [], args)
        state = answer[0]
        return IdempotencyClaim(state, answer[1] if state == "done" else None)

    async def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        await self._script("release_idempotency", [idem_key(chat, key)], [], [fingerprint])

    def limits_storage(self) -> SharedRedisStorage | None:
        """A `limits.aio` storage for the rate-limit counters on this store's own connections and
        call slots, or None on a Redis Cluster (whose counters `limits` connects itself)."""
        if isinstance(self._redis, RedisCluster):
            return None
        from chatproxy.store.redis_limits import SharedRedisStorage  # loads `limits`

        return SharedRedisStorage(self._redis, self._slots)

"""Own the Redis side of chats as records beside their messages (`RedisChats`, which `RedisStore`
builds on): a chat's record (`chat_info`) and its own fields (`set_chat_system`,
`update_chat_settings`, `set_chat_metadata`), the tenant's listing (`list_chats`) and a chat's
entry in it, a chat's deletion (with its finished idempotency records), and the global prompt.
The Lua scripts it runs are `redis_listing.py`'s, `redis_meta_scripts.py`'s and
`redis_idem_scripts.py`'s.

It stands on `RedisCalls` (the client, the TTL, the calls), which `RedisStore` builds on beside
it. It declares what it uses of it rather than subclass it, so that `redis.py` stays one import
above `redis_calls.py` (tests/test_layers.py: eight floors at most); mypy checks each
declaration against `RedisCalls` where `RedisStore` joins the two.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from chatproxy.errors import Conflict, NotFound
from chatproxy.jsontext import compact
from chatproxy.store.items import ChatInfo, ChatRef, changed_settings
from chatproxy.store.redis_idem_scripts import IDEM_SCRIPTS
from chatproxy.store.redis_keys import (
    GLOBAL_SYSTEM_KEY,
    chat_keys,
    idems_key,
    index_key,
    info_of,
)
from chatproxy.store.redis_listing import LISTING_SCRIPTS
from chatproxy.store.redis_meta_scripts import META_SCRIPTS

# How often a change of a chat's settings is made again on the settings another change wrote
# after it read them, before it gives up (409).
SETTINGS_TRIES = 8

if TYPE_CHECKING:
    from chatproxy.store.redis_calls import Pipeline, Run
    from chatproxy.store.redis_client import Client
    from chatproxy.store.windows import KnownWindows


class RedisChats:
    """Chats in Redis as records and listing entries, on the calls of `RedisCalls`."""

    LUA: ClassVar[Mapping[str, str]] = {**LISTING_SCRIPTS, **META_SCRIPTS, **IDEM_SCRIPTS}

    # What it uses of `RedisCalls`, which `RedisStore` builds on beside it.
    _redis: Client
    _cluster: bool
    _ttl: int | None
    _windows: KnownWindows
    _script: Run
    _declaring: Run
    _command: Callable[..., Awaitable[Any]]
    _execute: Callable[[Pipeline], Awaitable[list[Any]]]

    async def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(chat_keys(chat)[1])
        self._touch(pipe, chat)
        fields = (await self._execute(pipe))[0]
        return info_of(chat.chat_id, fields) if fields else None

    def _touch(self, pipe: Pipeline, chat: ChatRef) -> None:
        """Refresh the TTL of every key of the chat (an old layout's list too, until a script
        upgrades it: else a chat's record could outlive its messages)."""
        if self._ttl is not None:
            for key in chat_keys(chat):
                pipe.expire(key, self._ttl)

    async def list_chats(
        self,
        tenant: str,
        limit: int,
        before: float | None,
        after: str | None = None,
        before_id: str = "",
    ) -> list[ChatInfo]:
        index = index_key(tenant)
        cursor = ["+inf" if before is None else repr(before), before_id]
        if after is not None:
            score = await self._command("zscore", index, after)
            if score is None:
                raise NotFound(f"no chat {after!r} in the listing")
            cursor = [repr(float(score)), after]
        live: list[ChatInfo] = []
        gone: list[str] = []
        while len(live) < limit:  # past expired chats, until the page is full or none follow
            want = limit - len(live)
            found = await self._script("list_chats", [index], [], [*cursor, want])
            ids = [str(chat_id) for chat_id in found[::2]]
            metas = await self._metas(tenant, ids)
            live += [info_of(i, fields) for i, fields in zip(ids, metas, strict=True) if fields]
            gone += [i for i, fields in zip(ids, metas, strict=True) if not fields]
            if len(ids) < want:
                break
            cursor = [str(found[-1]), ids[-1]]
        if gone:  # expired chats leave the index when a listing finds them
            await self._command("zrem", index, *gone)
        return live

    async def _metas(self, tenant: str, ids: list[str]) -> list[dict[str, str]]:
        """The meta hashes of the tenant's chats `ids` ({} for each that expired)."""
        if not ids:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for chat_id in ids:
            pipe.hgetall(chat_keys(ChatRef(tenant, chat_id))[1])
        return await self._execute(pipe)

    async def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        await self._set_field(chat, "system", content)

    async def update_chat_settings(self, chat: ChatRef, changes: Mapping[str, Any]) -> None:
        keys = list(chat_keys(chat))
        system = changes.get("system")
        mode = "keep" if "system" not in changes else "remove" if system is None else "set"
        current = await self._command("hget", keys[1], "settings") or ""
        for _ in range(SETTINGS_TRIES):  # each try another change's write came first
            now = time.time()
            merged = changed_settings(current, changes) or ""
            args = [current, merged, mode, system or "", repr(now), self._ttl or 0, chat.chat_id]
            done = await self._script("set_settings", keys, [index_key(chat.tenant)], args)
            if not isinstance(done, list):
                if done:
                    await self._index_beside(chat, now)
                return
            current = done[0]
        raise Conflict("the chat's settings are being changed by other requests; try again")

    async def set_chat_metadata(self, chat: ChatRef, metadata: dict[str, str] | None) -> bool:
        text = None if metadata is None else compact(metadata)
        return await self._set_field(chat, "metadata", text, create=False)

    async def _set_field(
        self, chat: ChatRef, name: str, value: str | None, *, create: bool = True
    ) -> bool:
        """Set (or with None remove) a field of the chat's meta hash, as the chat's latest
        activity, in one step; with `create`, a value set makes a chat that does not exist.
        Return whether the chat exists (and so was changed)."""
        now = time.time()
        remove, made = "1" if value is None else "0", "1" if create else "0"
        args = [name, value or "", remove, repr(now), self._ttl or 0, made, chat.chat_id]
        done = await self._script(
            "set_field", list(chat_keys(chat)), [index_key(chat.tenant)], args
        )
        if done:
            await self._index_beside(chat, now)
        return bool(done)

    async def delete_chat(self, chat: ChatRef) -> bool:
        self._windows.forget(chat)
        keys, listing = [*chat_keys(chat), idems_key(chat)], index_key(chat.tenant)
        found = await self._declaring("delete_chat", keys, [listing], [chat.chat_id])
        if self._cluster:
            await self._command("zrem", listing, chat.chat_id)
        return int(found) > 0

    async def get_global_system(self) -> str | None:
        value = await self._command("get", GLOBAL_SYSTEM_KEY)
        return None if value is None else str(value)

    async def set_global_system(self, content: str) -> None:
        await self._command("set", GLOBAL_SYSTEM_KEY, content)

    def _index(self, pipe: Pipeline, chat: ChatRef, now: float) -> None:
        """Update the chat's entry in its tenant's listing (by last activity)."""
        index = index_key(chat.tenant)
        pipe.zadd(index, {chat.chat_id: now})
        if self._ttl is not None:
            pipe.expire(index, self._ttl)

    async def _listed_beside(self, chat: ChatRef) -> None:
        """On a cluster, refresh the TTL of the chat's tenant's listing beside a read that
        refreshed the chat's, which a script on a single node refreshed itself: the listing
        outlives every chat it lists, those that reads keep alive too."""
        if self._cluster and self._ttl:
            await self._command("expire", index_key(chat.tenant), self._ttl)

    async def _index_beside(self, chat: ChatRef, now: float) -> None:
        """On a cluster, update the chat's entry in its tenant's listing, which a script on a
        single node updated itself."""
        if self._cluster:
            pipe = self._redis.pipeline(transaction=False)
            self._index(pipe, chat, now)
            await self._execute(pipe)

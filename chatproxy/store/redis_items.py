"""Own the Redis side of a chat's items beyond a turn's (`RedisItems`, which `RedisStore` builds
on): a chat's children and its leaf (`children`, `first_messages`, `set_leaf`), and given items
read or removed (`load_items`, `delete_items`). The Lua scripts it runs are
`redis_branches.py`'s and `redis_item_scripts.py`'s.

It declares what it uses of `RedisCalls` and `RedisChats`, which `RedisStore` builds on beside
it, as `RedisChats` does, rather than subclass them; mypy checks each declaration where
`RedisStore` joins them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, ClassVar

from chatproxy.errors import ChatBusy
from chatproxy.store.items import ChatRef, Message
from chatproxy.store.redis_branches import BRANCH_SCRIPTS, children, set_leaf
from chatproxy.store.redis_item_scripts import ITEM_SCRIPTS
from chatproxy.store.redis_keys import chat_keys, idems_key, index_key, lock_key

if TYPE_CHECKING:
    from chatproxy.store.decoding import DecodedMessages
    from chatproxy.store.redis_calls import Run
    from chatproxy.store.windows import KnownWindows


class RedisItems:
    """A chat's items in Redis beyond a turn's, on the calls of `RedisCalls`."""

    LUA: ClassVar[Mapping[str, str]] = {**BRANCH_SCRIPTS, **ITEM_SCRIPTS}

    # What it uses of `RedisCalls` and `RedisChats`, which `RedisStore` builds on beside it.
    _ttl: int | None
    _windows: KnownWindows
    decoded: DecodedMessages
    _script: Run
    _declaring: Run
    _listed_beside: Callable[[ChatRef], Awaitable[None]]
    _index_beside: Callable[[ChatRef, float], Awaitable[None]]

    async def children(
        self, chat: ChatRef, parents: Sequence[int | None], *, strict: bool = False
    ) -> list[list[int]]:
        keys, listing = [*chat_keys(chat)], index_key(chat.tenant)
        found, _ = await children(self._script, keys, listing, parents, self._ttl or 0, strict)
        await self._listed_beside(chat)
        return found

    async def first_messages(self, chat: ChatRef) -> tuple[list[int], int]:
        keys, listing = [*chat_keys(chat)], index_key(chat.tenant)
        (found,), count = await children(self._script, keys, listing, [None], self._ttl or 0)
        await self._listed_beside(chat)
        return found, count

    async def load_items(self, chat: ChatRef, ids: Sequence[int]) -> list[Message | None]:
        if not ids:
            return []
        args = [self._ttl or 0, *ids]
        raws = await self._script(
            "load_items", list(chat_keys(chat)), [index_key(chat.tenant)], args
        )
        await self._listed_beside(chat)
        found = iter(self.decoded.decode([raw for raw in raws if raw]))
        return [next(found) if raw else None for raw in raws]

    async def delete_items(self, chat: ChatRef, ids: Sequence[int]) -> list[int]:
        if not ids:
            return []
        now = time.time()
        args = [repr(now), self._ttl or 0, chat.chat_id, *ids]
        keys = [*chat_keys(chat), lock_key(chat), idems_key(chat)]
        gone = await self._declaring("delete_items", keys, [index_key(chat.tenant)], args)
        if gone == -1:
            raise ChatBusy()
        if gone:
            self._windows.forget(chat)
            await self._index_beside(chat, now)
        return sorted(int(item) for item in gone)

    async def set_leaf(self, chat: ChatRef, item: int, *, descend: bool = False) -> int | None:
        keys, listing = [*chat_keys(chat), lock_key(chat)], index_key(chat.tenant)
        leaf = await set_leaf(self._script, keys, listing, item, descend, self._ttl or 0)
        self._windows.forget(chat)
        if leaf is not None:
            await self._listed_beside(chat)
        return leaf

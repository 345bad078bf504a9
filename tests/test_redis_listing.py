"""A tenant's listing of chats on Redis lives as long as the chats it lists: every read that
refreshes a chat's TTL refreshes the listing's too, so a chat that only reads keep alive is
still listed (and exported) after the TTL of its last write has passed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import redis

from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef, Message
from chatproxy.store.redis_keys import index_key
from tests.conftest import MakeStore

pytestmark = pytest.mark.anyio
CHAT = ChatRef("public", "kept-by-reads")
LISTING = index_key("public")
Read = Callable[[Store], Awaitable[object]]
READS: dict[str, Read] = {
    "window": lambda s: s.load_window(CHAT, 5),
    "history": lambda s: s.load_history(CHAT),
    "page": lambda s: s.load_page(CHAT, 2, None),
    "items": lambda s: s.load_items(CHAT, [1]),
    "tree": lambda s: s.load_tree(CHAT),
    "turn's lock": lambda s: s.begin_turn(CHAT, "token", 30, 5),
}


@pytest.fixture
def store_kind() -> str:
    """Override conftest's parametrized fixture: the listing is Redis's."""
    return "redis"


@pytest.mark.parametrize("read", READS.values(), ids=READS.keys())
async def test_a_read_refreshes_the_listing_with_the_chat(
    make_store: MakeStore, admin: redis.Redis, read: Read
) -> None:
    store = make_store(ttl_seconds=3600)
    await store.save_turn(CHAT, "t0", [Message("user", "q"), Message("assistant", "a")])
    admin.expire(LISTING, 5)  # as if the chat's last write were nearly an hour ago

    await read(store)

    assert admin.ttl(LISTING) > 3000
    assert [info.chat_id for info in await store.list_chats("public", 10, None)] == [CHAT.chat_id]

"""The storage contract of a tenant's listing (`Store.list_chats`), run against every backend:
most recent activity first, equal activity by chat id, pages that walk every live chat once
whatever expired in between, and a cursor that agrees with the order."""

from __future__ import annotations

import pytest
import redis

from chatproxy.errors import NotFound
from chatproxy.store import ChatRef, Message, Store
from chatproxy.store.items import ChatInfo
from chatproxy.store.redis import RedisStore
from chatproxy.store.redis_keys import chat_keys, index_key
from chatproxy.store.sqlite import SqliteStore

TENANT = "public"


def chat(n: int) -> ChatRef:
    return ChatRef(TENANT, f"chat-{n}")


async def start(store: Store, n: int) -> None:
    await store.save_turn(chat(n), f"t{n}", [Message("user", f"question {n}")])


def set_activity(store: Store, redis_url: str, chats: list[ChatRef], when: float) -> None:
    """Make the chats' last activity `when`, all alike (as two writes in one clock tick do)."""
    if isinstance(store, RedisStore):
        with redis.Redis.from_url(redis_url) as client:
            for one in chats:
                client.hset(chat_keys(one)[1], "updated", repr(when))
                client.zadd(index_key(one.tenant), {one.chat_id: when})
    else:
        update_rows(store, chats, "updated", when)


def expire(store: Store, redis_url: str, chats: list[ChatRef]) -> None:
    """Let the chats' TTL run out: Redis drops their keys and leaves the listing's entries."""
    if isinstance(store, RedisStore):
        with redis.Redis.from_url(redis_url) as client:
            for one in chats:
                client.delete(*chat_keys(one))
    else:
        update_rows(store, chats, "expires_at", 1.0)


def update_rows(store: Store, chats: list[ChatRef], column: str, value: float) -> None:
    assert isinstance(store, SqliteStore)
    with store.transaction() as db:
        for one in chats:
            db.execute(
                f"UPDATE chats SET {column} = ? WHERE tenant = ? AND chat_id = ?",  # noqa: S608
                (value, one.tenant, one.chat_id),
            )


async def walk(store: Store, limit: int) -> list[str]:
    """Every chat of the listing, page after page, each page after the last chat of the one
    before (as `GET /v1/conversations?after=` pages)."""
    walked: list[str] = []
    while True:
        after = walked[-1] if walked else None
        page = [info.chat_id for info in await store.list_chats(TENANT, limit, None, after)]
        walked += page
        if len(page) < limit:
            return walked


@pytest.fixture
def redis_url_or_none(store_kind: str, request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue("redis_url")) if store_kind == "redis" else ""


@pytest.mark.anyio
async def test_chats_of_equal_activity_are_listed_by_id_and_each_paged_once(
    store: Store, redis_url_or_none: str
) -> None:
    for n in range(7):
        await start(store, n)
    set_activity(store, redis_url_or_none, [chat(n) for n in (1, 2, 3, 4, 5)], 2000.0)

    listed = [info.chat_id for info in await store.list_chats(TENANT, 10, None)]
    walked = {limit: await walk(store, limit) for limit in (1, 2, 3)}

    order = ["chat-6", "chat-0", "chat-5", "chat-4", "chat-3", "chat-2", "chat-1"]
    assert listed == order
    assert walked == {1: order, 2: order, 3: order}


@pytest.mark.anyio
async def test_a_page_past_expired_chats_is_still_full(
    store: Store, redis_url_or_none: str
) -> None:
    for n in range(8):
        await start(store, n)
    expire(store, redis_url_or_none, [chat(n) for n in (7, 6, 4, 3, 1)])

    first = [info.chat_id for info in await store.list_chats(TENANT, 2, None)]
    walked = await walk(store, 2)
    before = await store.list_chats(TENANT, 2, (await info_of(store, chat(5))).updated)

    assert first == ["chat-5", "chat-2"]
    assert walked == ["chat-5", "chat-2", "chat-0"]
    assert [info.chat_id for info in before] == ["chat-2", "chat-0"]


@pytest.mark.anyio
async def test_a_settings_change_is_activity_in_the_order_and_the_cursor_alike(
    store: Store,
) -> None:
    for n in range(4):
        await start(store, n)
    await store.update_chat_settings(chat(1), {"model": "m-2"})

    listed = [info.chat_id for info in await store.list_chats(TENANT, 10, None)]
    walked = await walk(store, 1)
    pages = await store.list_chats(TENANT, 1, None)
    next_page = await store.list_chats(TENANT, 10, pages[-1].updated)  # the seed route's cursor

    assert listed == walked == ["chat-1", "chat-3", "chat-2", "chat-0"]
    assert [info.chat_id for info in next_page] == ["chat-3", "chat-2", "chat-0"]


@pytest.mark.anyio
async def test_a_cursor_the_tenant_does_not_list_is_not_found(store: Store) -> None:
    await start(store, 1)

    with pytest.raises(NotFound):
        await store.list_chats(TENANT, 10, None, "chat-9")
    with pytest.raises(NotFound):
        await store.list_chats("other", 10, None, "chat-1")


async def info_of(store: Store, one: ChatRef) -> ChatInfo:
    found = await store.chat_info(one)
    assert found is not None
    return found

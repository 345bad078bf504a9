"""The storage contract of given items, run against every backend: items read by id, and items
removed from a chat's tree, their children moved up to the nearest ancestor that stays."""

from __future__ import annotations

import asyncio

import pytest
import redis

from chatproxy.errors import ChatBusy
from chatproxy.store import ChatRef, Message, Store
from chatproxy.store.items import chained
from chatproxy.store.redis import RedisStore
from tests.conftest import MakeStore, take_lock

CHAT = ChatRef("public", "items-1")
TOKENS = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


def ask(text: str) -> Message:
    return Message("user", text, created_at=1000.0)


def reply(text: str) -> Message:
    return Message("assistant", text, created_at=1000.5, model="m-1", usage=TOKENS)


async def linear(store: Store, turns: int) -> list[Message]:
    """Save `turns` turns q0/a0, q1/a1, ... on one path (items 0 .. 2 * turns - 1)."""
    saved: list[Message] = []
    for n in range(turns):
        pair = [ask(f"q{n}"), reply(f"a{n}")]
        await store.save_turn(CHAT, f"t{n}", pair)
        saved += pair
    return chained(saved, 0, None)


async def shape(store: Store, chat: ChatRef = CHAT) -> list[tuple[int | None, int | None]]:
    """The (id, parent) of every item on the chat's current path."""
    return [(m.id, m.parent) for m in (await store.load_history(chat)).messages]


# --- load_items ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_items_are_loaded_by_id_in_the_order_asked_none_where_missing(store: Store) -> None:
    saved = await linear(store, 2)
    await store.save_turn(CHAT, "side", chained([ask("side")], 4, 1))  # a branch off the path

    found = await store.load_items(CHAT, [4, 0, 99, 3, 0, -1])

    assert found == [chained([ask("side")], 4, 1)[0], saved[0], None, saved[3], saved[0], None]
    assert await store.load_items(CHAT, []) == []
    assert await store.load_items(ChatRef("web", CHAT.chat_id), [0, 1]) == [None, None]
    assert await store.load_items(ChatRef("public", "nothing"), [0]) == [None]


@pytest.mark.anyio
async def test_loading_items_refreshes_the_ttl(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=1)
    await linear(store, 1)

    for _ in range(3):  # 1.8 s in all: longer than the TTL, but never 1 s without a read
        await asyncio.sleep(0.6)
        assert [m.content for m in await store.load_items(CHAT, [1]) if m] == ["a0"]


# --- delete_items --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_removed_item_s_child_moves_under_its_parent(store: Store) -> None:
    saved = await linear(store, 2)  # 0 1 2 3

    assert await store.delete_items(CHAT, [2, 40]) == [2]  # 40: not held, ignored

    assert await shape(store) == [(0, None), (1, 0), (3, 1)]
    assert await store.load_items(CHAT, [2, 3]) == [None, saved[3].placed(3, 1)]
    assert await store.children(CHAT, [1, 2]) == [[3], []]
    assert (await store.load_window(CHAT, 0)).leaf == 3
    assert await store.delete_items(CHAT, [2]) == []  # gone already


@pytest.mark.anyio
async def test_children_of_removed_items_join_their_new_parent_s_in_id_order(
    store: Store,
) -> None:
    await linear(store, 2)  # 0 1 2 3
    await store.save_turn(CHAT, "e", chained([ask("e"), reply("ae")], 4, 1))  # 4 -> 1, 5 -> 4
    await store.save_turn(CHAT, "f", chained([ask("f")], 6, 0))  # 6 -> 0

    assert await store.delete_items(CHAT, [4, 1]) == [1, 4]

    assert await store.children(CHAT, [0, None]) == [[2, 5, 6], [0]]
    assert await shape(store) == [(0, None), (6, 0)]  # the leaf, 6, stays
    assert await store.set_leaf(CHAT, 5) == 5
    assert await shape(store) == [(0, None), (5, 0)]
    assert await store.set_leaf(CHAT, 0, descend=True) == 6  # the newest child
    assert [(m.id, m.parent) for m in await store.load_items(CHAT, [2, 3]) if m] == [
        (2, 0),
        (3, 2),
    ]


@pytest.mark.anyio
async def test_a_removed_first_message_leaves_its_children_first_messages(store: Store) -> None:
    await linear(store, 1)  # 0 1
    await store.save_turn(CHAT, "r", chained([ask("again")], 2, None))  # another root
    await store.save_turn(CHAT, "k", chained([reply("other")], 3, 0))  # 3 -> 0

    assert await store.delete_items(CHAT, [0]) == [0]

    assert await store.children(CHAT, [None]) == [[1, 2, 3]]
    assert await shape(store) == [(3, None)]


@pytest.mark.anyio
async def test_a_removed_leaf_moves_to_its_nearest_ancestor_that_stays(store: Store) -> None:
    await linear(store, 3)  # 0 .. 5

    assert await store.delete_items(CHAT, [5, 4, 3]) == [3, 4, 5]

    state = await store.load_history(CHAT)
    assert [(m.id, m.parent) for m in state.messages] == [(0, None), (1, 0), (2, 1)]
    assert (state.leaf, state.next_id) == (2, 6)
    await store.save_turn(CHAT, "next", [ask("next")])  # under the new leaf, numbered on
    assert (await shape(store))[-1] == (6, 2)


@pytest.mark.anyio
async def test_removing_every_item_keeps_the_chat_and_its_record(store: Store) -> None:
    await store.set_chat_system(CHAT, "Be brief.")
    await linear(store, 2)
    before = await store.chat_info(CHAT)
    assert before is not None

    assert await store.delete_items(CHAT, [3, 2, 1, 0]) == [0, 1, 2, 3]

    state = await store.load_history(CHAT)
    assert (state.exists, state.messages, state.leaf, state.next_id) == (True, [], None, 4)
    assert state.chat_system == "Be brief."
    info = await store.chat_info(CHAT)
    assert info is not None
    assert (info.messages, info.title, info.tokens) == (0, "q0", before.tokens)
    assert info.updated >= before.updated
    await store.save_turn(CHAT, "again", [ask("again")])
    assert await shape(store) == [(4, None)]
    assert await store.children(CHAT, [None]) == [[4]]


@pytest.mark.anyio
async def test_deleting_items_counts_what_is_kept_and_forgets_the_last_turn(
    store: Store,
) -> None:
    await linear(store, 2)  # turns t0, t1

    await store.delete_items(CHAT, [1])

    info = await store.chat_info(CHAT)
    assert info is not None
    assert (info.messages, info.title) == (3, "q0")
    assert info.tokens == {name: 2 * n for name, n in TOKENS.items()}  # what the turns used
    # the last turn is forgotten: a save of its id stores again
    assert await store.save_turn(CHAT, "t1", [ask("q2")]) is True
    assert len((await store.load_history(CHAT)).messages) == 4


@pytest.mark.anyio
async def test_items_are_not_deleted_while_a_turn_holds_the_chat(store: Store) -> None:
    saved = await linear(store, 2)
    assert await take_lock(store, CHAT, "turn", 60.0)

    with pytest.raises(ChatBusy):
        await store.delete_items(CHAT, [2, 3])
    assert await store.delete_items(CHAT, [40]) == []  # none held: nothing to refuse

    assert (await store.load_history(CHAT)).messages == saved
    await store.release_turn(CHAT, "turn")
    assert await store.delete_items(CHAT, [2, 3]) == [2, 3]
    assert await shape(store) == [(0, None), (1, 0)]


@pytest.mark.anyio
async def test_deleting_items_of_an_unknown_chat_creates_nothing(store: Store) -> None:
    assert await store.delete_items(CHAT, [0, 1]) == []
    assert await store.delete_items(CHAT, []) == []

    assert await store.chat_info(CHAT) is None
    assert await store.list_chats("public", 10, None) == []


@pytest.mark.anyio
async def test_a_moved_item_keeps_every_field(store: Store) -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    items = chained(
        [
            ask("q ✓"),
            Message("assistant", None, created_at=2.5, tool_calls=calls, usage=TOKENS),
            Message("tool", "1", created_at=3.25, tool_call_id="c1", name="f"),
        ],
        0,
        None,
    )
    await store.save_turn(CHAT, "t", items)

    await store.delete_items(CHAT, [1])

    assert (await store.load_history(CHAT)).messages == [items[0], items[2].placed(2, 0)]


# --- Redis only ----------------------------------------------------------------------------------

ITEMS, KIDS = "chat:{public:items-1}:items", "chat:{public:items-1}:kids"


@pytest.fixture
def redis_store(make_store: MakeStore) -> Store:
    """A Redis store (the parametrized fixture's Redis runs)."""
    store = make_store()
    assert isinstance(store, RedisStore)
    return store


@pytest.mark.anyio
@pytest.mark.parametrize("store_kind", ["redis"])
async def test_a_moved_item_s_stored_text_starts_with_its_new_parent(
    redis_store: Store, admin: redis.Redis
) -> None:
    await linear(redis_store, 2)  # 0 1 2 3: no branches, no `:kids`
    assert admin.exists(KIDS) == 0

    await redis_store.delete_items(CHAT, [1, 2])

    assert admin.hget(ITEMS, "3").startswith('{"id":3,"parent":0,"role":"assistant",')
    assert admin.hgetall(KIDS) == {"0": "3"}  # not the one numbered right after its parent
    assert admin.hget("chat:{public:items-1}:meta", "messages") == "2"


@pytest.mark.anyio
@pytest.mark.parametrize("store_kind", ["redis"])
async def test_a_tree_whose_kids_list_every_child_deletes_the_same(
    redis_store: Store, admin: redis.Redis
) -> None:
    """The first release of trees listed every child in `:kids`, the one numbered right after
    its parent too: removing items from such a tree keeps each child listed once."""
    await linear(redis_store, 2)  # 0 1 2 3
    await redis_store.save_turn(CHAT, "e", chained([ask("e"), reply("ae")], 4, 1))  # 4, 5
    admin.delete(KIDS)
    admin.hset(KIDS, mapping={"root": "0", "0": "1", "1": "2,4", "2": "3", "4": "5"})

    assert await redis_store.delete_items(CHAT, [1, 4]) == [1, 4]

    assert await redis_store.children(CHAT, [None, 0, 2, 5]) == [[0], [2, 5], [3], []]
    assert await redis_store.set_leaf(CHAT, 0, descend=True) == 5
    assert await shape(redis_store) == [(0, None), (5, 0)]
    assert await redis_store.delete_items(CHAT, [0]) == [0]
    assert await redis_store.children(CHAT, [None]) == [[2, 5]]
    assert await shape(redis_store) == [(5, None)]

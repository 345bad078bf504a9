"""The storage contract of a chat's tree, run against every backend: placing items, paths from
any leaf, children, moving the leaf, and every field of an item kept as sent."""

from __future__ import annotations

import asyncio

import pytest

from chatproxy.errors import ChatBusy, NotFound, TurnLeaseLost
from chatproxy.store import ChatRef, Message, Store
from chatproxy.store.items import ROOT, chained
from tests.conftest import MakeStore, take_lock

CHAT = ChatRef("public", "tree-1")


def ask(text: str) -> Message:
    return Message("user", text, created_at=1000.0)


def reply(text: str) -> Message:
    return Message("assistant", text, created_at=1000.5, model="m-1")


def texts(messages: list[Message]) -> list[object]:
    return [m.content for m in messages]


async def linear(store: Store, turns: int) -> None:
    """Save `turns` turns q0/a0, q1/a1, ... on one path (items 0 .. 2 * turns - 1)."""
    for n in range(turns):
        await store.save_turn(CHAT, f"t{n}", [ask(f"q{n}"), reply(f"a{n}")])


@pytest.mark.anyio
async def test_items_unplaced_get_the_next_ids_chained_under_the_leaf(store: Store) -> None:
    await linear(store, 2)

    state = await store.load_history(CHAT)

    assert [(m.id, m.parent) for m in state.messages] == [(0, None), (1, 0), (2, 1), (3, 2)]
    assert (state.leaf, state.next_id) == (3, 4)


@pytest.mark.anyio
async def test_an_edit_starts_a_branch_and_the_path_follows_the_new_leaf(store: Store) -> None:
    await linear(store, 2)  # q0 a0 q1 a1
    edit = chained([ask("q1 again"), reply("a1 again")], 4, 1)  # a sibling of q1

    await store.save_turn(CHAT, "edit", edit)

    state = await store.load_history(CHAT)
    assert texts(state.messages) == ["q0", "a0", "q1 again", "a1 again"]
    assert state.leaf == 5
    assert texts((await store.load_history(CHAT, leaf=3)).messages) == ["q0", "a0", "q1", "a1"]
    assert await store.children(CHAT, [1, None, 5]) == [[2, 4], [0], []]


@pytest.mark.anyio
async def test_windows_and_pages_walk_the_path_not_the_tree(store: Store) -> None:
    await linear(store, 3)  # items 0..5
    await store.save_turn(CHAT, "b", chained([ask("b"), reply("ab")], 6, 3))  # 6, 7 under 3

    assert texts((await store.load_window(CHAT, 3)).messages) == ["a1", "b", "ab"]
    assert texts((await store.load_window(CHAT, 2, leaf=5)).messages) == ["q2", "a2"]
    page = await store.load_page(CHAT, 2, 6)  # the two items above item 6 on its path
    assert [m.id for m in page.messages] == [2, 3]
    assert [m.id for m in (await store.load_page(CHAT, 10, 2)).messages] == [0, 1]
    assert (await store.load_page(CHAT, 10, 0)).messages == []


@pytest.mark.anyio
async def test_a_page_below_an_id_the_chat_does_not_hold_counts_ids(store: Store) -> None:
    await linear(store, 3)  # items 0..5

    page = await store.load_page(CHAT, 2, 100)

    assert [m.id for m in page.messages] == [4, 5]
    assert [m.id for m in (await store.load_page(CHAT, 10, 3, leaf=5)).messages] == [0, 1, 2]


@pytest.mark.anyio
async def test_a_page_of_a_given_path_before_an_item_off_it_holds_that_paths_items(
    store: Store,
) -> None:
    await linear(store, 3)  # items 0..5
    await store.save_turn(CHAT, "b", chained([ask("b"), reply("ab")], 6, 3))  # 6, 7 under 3

    page = await store.load_page(CHAT, 10, 5, leaf=7)  # 5 is on the other branch

    assert [m.id for m in page.messages] == [0, 1, 2, 3]  # those numbered below it, not 4
    assert [m.id for m in (await store.load_page(CHAT, 2, 6, leaf=7)).messages] == [2, 3]
    assert [m.id for m in (await store.load_page(CHAT, 10, 5)).messages] == [0, 1, 2, 3, 4]


@pytest.mark.anyio
async def test_a_path_from_an_unknown_item_is_not_found(store: Store) -> None:
    await linear(store, 1)

    with pytest.raises(NotFound):
        await store.load_history(CHAT, leaf=7)
    with pytest.raises(NotFound):
        await store.load_window(ChatRef("web", CHAT.chat_id), 5, leaf=0)  # another tenant


@pytest.mark.anyio
async def test_begin_turn_reads_the_path_ending_at_the_given_item(store: Store) -> None:
    await linear(store, 2)

    state = await store.begin_turn(CHAT, "tok", 60.0, 10, 1)

    assert state is not None
    assert texts(state.messages) == ["q0", "a0"]
    assert (state.leaf, state.next_id) == (3, 4)
    await store.release_turn(CHAT, "tok")
    root = await store.begin_turn(CHAT, "tok", 60.0, 10, ROOT)
    assert root is not None
    assert root.messages == []


@pytest.mark.anyio
async def test_begin_turn_at_an_unknown_item_takes_no_lock(store: Store) -> None:
    await linear(store, 1)

    with pytest.raises(NotFound):
        await store.begin_turn(CHAT, "tok", 60.0, 10, 9)

    assert await store.begin_turn(CHAT, "other", 60.0, 10) is not None  # the lock was free


@pytest.mark.anyio
async def test_a_new_first_message_is_another_root(store: Store) -> None:
    await linear(store, 1)

    await store.save_turn(CHAT, "r", chained([ask("again"), reply("r")], 2, None))

    assert texts((await store.load_history(CHAT)).messages) == ["again", "r"]
    assert await store.children(CHAT, [None]) == [[0, 2]]


@pytest.mark.anyio
async def test_strict_children_are_not_found_for_an_item_the_chat_does_not_hold(
    make_store: MakeStore,
) -> None:
    store = make_store(max_messages=4)
    await linear(store, 3)  # 0..5: 0 and 1 dropped

    assert await store.children(CHAT, [None, 2], strict=True) == [[2], [3]]
    assert await store.children(CHAT, [1, 9]) == [[], []]
    for chat, parents in ((CHAT, [2, 9]), (CHAT, [None, 1]), (ChatRef("public", "none"), [0])):
        with pytest.raises(NotFound):
            await store.children(chat, parents, strict=True)
    assert await store.children(ChatRef("public", "none"), [None], strict=True) == [[]]


@pytest.mark.anyio
async def test_a_trimmed_chats_first_messages_come_with_what_it_holds(
    make_store: MakeStore,
) -> None:
    store = make_store(max_messages=4)
    await linear(store, 2)  # 0..3
    await store.save_turn(CHAT, "e", chained([ask("e"), reply("ae")], 4, 1))  # 0 and 1 dropped

    assert await store.first_messages(CHAT) == ([2, 4], 4)
    info = await store.chat_info(CHAT)
    assert info is not None
    assert info.messages == 4  # counted as the listing counts them
    assert await store.delete_items(CHAT, [5]) == [5]
    assert await store.first_messages(CHAT) == ([2, 4], 3)
    assert await store.first_messages(ChatRef("public", "none")) == ([], 0)
    assert await store.first_messages(ChatRef("web", CHAT.chat_id)) == ([], 0)


@pytest.mark.anyio
async def test_setting_the_leaf_moves_the_path_and_can_descend(store: Store) -> None:
    await linear(store, 2)  # 0..3
    await store.save_turn(CHAT, "e", chained([ask("e"), reply("ae")], 4, 1))  # 4, 5 under 1

    assert await store.set_leaf(CHAT, 2, descend=True) == 3
    assert texts((await store.load_history(CHAT)).messages) == ["q0", "a0", "q1", "a1"]
    assert await store.set_leaf(CHAT, 4) == 4
    assert (await store.load_history(CHAT)).leaf == 4
    assert await store.set_leaf(CHAT, 40) is None
    assert await store.set_leaf(ChatRef("web", CHAT.chat_id), 1) is None
    await store.save_turn(CHAT, "after", [ask("next")])  # continues from the leaf set
    assert [(m.id, m.parent) for m in (await store.load_window(CHAT, 1)).messages] == [(6, 4)]


@pytest.mark.anyio
async def test_every_field_of_an_item_is_kept_as_sent(store: Store) -> None:
    calls = [
        {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
        {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": "{}"}},
    ]
    parts = [
        {"type": "text", "text": "see"},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-1"}},
    ]
    items = chained(
        [
            Message("user", parts, created_at=1.0, name="ann"),
            Message(
                "assistant",
                None,
                created_at=2.0,
                tool_calls=calls,
                finish_reason="tool_calls",
                model="m-2",
                usage={"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
            ),
            Message("tool", "1", created_at=3.0, tool_call_id="call_1"),
            Message("tool", "2", created_at=3.0, tool_call_id="call_2"),
        ],
        0,
        None,
    )
    await store.save_turn(CHAT, "t", items)

    assert (await store.load_history(CHAT)).messages == items
    assert [m.for_upstream() for m in items][1:3] == [
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "content": "1", "tool_call_id": "call_1"},
    ]


@pytest.mark.anyio
async def test_a_deep_path_is_read_from_its_leaf_as_far_as_the_window(
    make_store: MakeStore,
) -> None:
    store = make_store()
    await store.save_turn(CHAT, "deep", chained([ask(f"m{n}") for n in range(1500)], 0, None))
    await store.save_turn(CHAT, "side", chained([ask("side")], 1500, 999))

    window = await store.load_window(CHAT, 3)

    assert texts(window.messages) == ["m998", "m999", "side"]
    assert len((await store.load_history(CHAT)).messages) == 1001


@pytest.mark.anyio
async def test_a_fenced_save_under_a_given_parent_needs_the_lock(store: Store) -> None:
    await linear(store, 1)
    edit = chained([ask("e")], 2, None)
    with pytest.raises(TurnLeaseLost):
        await store.save_turn(CHAT, "e", edit, lock_token="tok")
    assert await take_lock(store, CHAT, "tok", 60.0)

    await store.save_turn(CHAT, "e", edit, lock_token="tok", release=True)

    assert texts((await store.load_history(CHAT)).messages) == ["e"]


@pytest.mark.anyio
async def test_the_leaf_does_not_move_while_a_turn_holds_the_chat(store: Store) -> None:
    await linear(store, 2)
    assert await take_lock(store, CHAT, "turn", 60.0)

    with pytest.raises(ChatBusy):
        await store.set_leaf(CHAT, 1)

    assert (await store.load_window(CHAT, 0)).leaf == 3
    await store.release_turn(CHAT, "turn")
    assert await store.set_leaf(CHAT, 1) == 1


@pytest.mark.anyio
async def test_forks_set_ids_aside_and_take_no_lock(
    store: Store,
) -> None:
    await linear(store, 2)  # items 0-3, leaf 3

    # Two forks from item 1 read and set ids aside; neither takes the lock.
    first = await store.begin_turn(CHAT, "fork-1", 30, 10, at=1, reserve=2)
    second = await store.begin_turn(CHAT, "fork-2", 30, 10, at=1, reserve=2)
    assert first is not None
    assert second is not None
    assert (first.next_id, second.next_id) == (4, 6)
    assert texts(first.messages) == texts(second.messages) == ["q0", "a0"]

    # A turn at the leaf meanwhile gets ids after them, though neither fork has saved.
    leaf = await store.begin_turn(CHAT, "leaf", 30, 10)
    assert leaf is not None
    assert leaf.next_id == 8
    # While it holds the lock, a fork waits: that turn read the next id and places on it.
    assert await store.begin_turn(CHAT, "fork-3", 30, 10, at=1, reserve=2) is None
    assert await store.save_turn(
        CHAT, "t-leaf", chained([ask("q2"), reply("a2")], 8, 3), lock_token="leaf", release=True
    )
    # The forks save last, the second first, each on its own ids, without the lock.
    assert await store.save_turn(CHAT, "t-fork-2", chained([ask("f2"), reply("g2")], 6, 1))
    assert await store.save_turn(CHAT, "t-fork-1", chained([ask("f1"), reply("g1")], 4, 1))

    assert await store.children(CHAT, [1]) == [[2, 4, 6]]
    for leaf_id, tail in ((9, ["q1", "a1", "q2", "a2"]), (5, ["f1", "g1"]), (7, ["f2", "g2"])):
        path = (await store.load_history(CHAT, leaf=leaf_id)).messages
        assert texts(path) == ["q0", "a0", *tail]
    after = await store.load_window(CHAT, 1)
    assert (after.leaf, after.next_id) == (5, 10)  # the last save's reply; ids go on after all


@pytest.mark.anyio
async def test_a_forks_save_lands_once_and_only_under_an_item_still_there(store: Store) -> None:
    await linear(store, 2)  # items 0-3
    fork = await store.begin_turn(CHAT, "fork", 30, 10, at=1, reserve=2)
    gone = await store.begin_turn(CHAT, "gone", 30, 10, at=3, reserve=2)
    assert fork is not None
    assert gone is not None
    turn = chained([ask("f"), reply("g")], fork.next_id, 1)
    assert await store.save_turn(CHAT, "t-fork", turn)
    assert await store.save_turn(CHAT, "t-other", [ask("q2"), reply("a2")])  # at the leaf

    # The fork's save, retried after its reply was lost and another turn saved, stores nothing.
    assert await store.save_turn(CHAT, "t-fork", turn) is False
    assert await store.children(CHAT, [1]) == [[2, fork.next_id]]
    info = await store.chat_info(CHAT)
    assert info is not None
    assert info.messages == 8

    # A fork whose item was deleted while it ran stores nothing.
    assert await store.delete_items(CHAT, [3]) == [3]
    with pytest.raises(NotFound):
        await store.save_turn(CHAT, "t-gone", chained([ask("x"), reply("y")], gone.next_id, 3))
    assert (await store.load_items(CHAT, [gone.next_id])) == [None]


@pytest.mark.anyio
async def test_a_trimmed_chats_first_messages_are_those_that_start_its_paths(
    make_store: MakeStore,
) -> None:
    store = make_store(max_messages=4)
    await linear(store, 2)  # q0 a0 q1 a1
    await store.save_turn(CHAT, "e", chained([ask("e"), reply("ae")], 4, 1))  # 0 and 1 dropped

    # 2 and 4 start the paths now (their parent was dropped); a dropped item has no children.
    assert await store.children(CHAT, [None, 1, 2, 4]) == [[2, 4], [], [3], [5]]
    copy = ChatRef(CHAT.tenant, "tree-copy")  # a trimmed chat's tree, imported as it is
    tree = await store.load_tree(CHAT)
    assert tree is not None
    assert await store.save_tree(copy, tree)
    assert await store.children(copy, [None, 1]) == [[2, 4], []]
    assert await store.delete_items(CHAT, [4]) == [4]  # its child goes to the top
    assert await store.children(CHAT, [None]) == [[2, 5]]
    await store.save_turn(CHAT, "n", chained([ask("n"), reply("an")], 6, 3))  # 2 dropped
    assert await store.children(CHAT, [None, 2]) == [[3, 5], []]


@pytest.mark.anyio
async def test_a_path_read_with_children_has_its_messages_versions_as_children_lists_them(
    make_store: MakeStore,
) -> None:
    store = make_store(max_messages=6)
    await linear(store, 2)  # q0 a0 q1 a1
    await store.save_turn(CHAT, "e", chained([ask("e"), reply("ae")], 4, 1))
    await store.save_turn(CHAT, "r", chained([reply("a0 again")], 6, 0))  # 0 dropped

    history = await store.load_history(CHAT, children=True)
    page = await store.load_page(CHAT, 1, 2, leaf=3, children=True)
    plain = await store.load_page(CHAT, 1, 2, leaf=3)

    assert [m.id for m in history.messages] == [6]
    assert history.children == {None: [1, 6], 0: []}  # 0 dropped: no children
    assert [m.id for m in page.messages] == [1]
    assert page.children == {None: [1, 6], 0: []}
    assert (await store.load_history(CHAT, leaf=5, children=True)).children == {
        None: [1, 6],
        0: [],
        1: [2, 4],
        4: [5],
    }
    assert plain.children is None
    assert (await store.load_history(ChatRef(CHAT.tenant, "none"), children=True)).children == {
        None: []
    }


@pytest.mark.anyio
async def test_moving_the_leaf_and_listing_children_refresh_the_ttl(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=1)
    await linear(store, 1)

    for _ in range(2):  # 2.4 s in all: longer than the TTL, but never 1 s without a call
        await asyncio.sleep(0.6)
        assert await store.set_leaf(CHAT, 1) == 1
        await asyncio.sleep(0.6)
        assert await store.children(CHAT, [0]) == [[1]]

    assert texts((await store.load_history(CHAT)).messages) == ["q0", "a0"]

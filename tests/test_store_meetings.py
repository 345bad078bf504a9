"""What the stores keep when a chat's turns, forks, imports and trimming meet, on both stores:
trimming drops the lowest ids whatever order they were saved in, a trimmed chat's export
imports back, and an import over a chat leaves a running fork its ids. (A save whose reply was
lost, after a fork moved the leaf: `test_turns.py`.)"""

from __future__ import annotations

import pytest

from chatproxy.errors import NotFound
from chatproxy.service.transfer import Transfer
from chatproxy.store import ChatRef, Message, Store
from chatproxy.store.items import chained
from tests.conftest import MakeStore

pytestmark = pytest.mark.anyio
CHAT = ChatRef("public", "met")


def turn(n: str) -> list[Message]:
    return [Message("user", f"q{n}", created_at=1.0), Message("assistant", f"a{n}", created_at=2.0)]


async def ids(store: Store) -> list[int | None]:
    tree = await store.load_tree(CHAT)
    assert tree is not None
    return [item.id for item in tree.items]


async def test_trimming_drops_the_lowest_ids_after_a_late_fork(make_store: MakeStore) -> None:
    store = make_store(max_messages=3)
    await store.save_turn(CHAT, "t0", turn("0"))  # items 0, 1
    fork = await store.begin_turn(CHAT, "fork", 30, 10, at=1, reserve=2)  # ids 2, 3 set aside
    assert fork is not None
    assert fork.next_id == 2
    await store.save_turn(CHAT, "t1", turn("1"))  # items 4, 5

    await store.save_turn(CHAT, "tf", chained(turn("f"), 2, 1))  # the fork, saved last

    assert await ids(store) == [3, 4, 5]


async def test_a_trimmed_chats_export_imports_back(make_store: MakeStore) -> None:
    store = make_store(max_messages=3)
    for n in range(3):
        await store.save_turn(CHAT, f"t{n}", turn(str(n)))
    transfer = Transfer(store)
    text = await transfer.export_chat(CHAT)  # items 3, 4, 5: item 3's parent was dropped

    report = await transfer.import_document("other", text)

    assert report.imported == ["met"]
    assert await transfer.export_chat(ChatRef("other", "met")) == text


async def test_an_import_over_a_chat_leaves_a_running_fork_its_ids(store: Store) -> None:
    await store.save_turn(CHAT, "t0", turn("0"))  # items 0, 1
    fork = await store.begin_turn(CHAT, "fork", 30, 5, at=1, reserve=2)  # ids 2, 3
    assert fork is not None
    assert fork.next_id == 2
    tree = await store.load_tree(CHAT)
    assert tree is not None
    assert await store.save_tree(CHAT, tree, replace=True)  # an import with on_conflict=replace
    await store.save_turn(CHAT, "t1", turn("1"))  # a turn at the leaf: ids 4, 5

    saved = await store.save_turn(CHAT, "tf", chained(turn("f"), fork.next_id, 1))

    assert saved
    assert [m and m.content for m in await store.load_items(CHAT, [3, 5])] == ["af", "a1"]


async def test_a_fork_whose_ids_were_taken_by_a_new_chat_is_not_called_stored(
    store: Store,
) -> None:
    await store.save_turn(CHAT, "t0", turn("0"))  # items 0, 1
    fork = await store.begin_turn(CHAT, "fork", 30, 5, at=1, reserve=2)  # ids 2, 3
    assert fork is not None
    assert await store.delete_chat(CHAT)  # and made again: its turns take ids 0 to 3
    await store.save_turn(CHAT, "t1", turn("1"))
    await store.save_turn(CHAT, "t2", turn("2"))

    with pytest.raises(NotFound):
        await store.save_turn(CHAT, "tf", chained(turn("f"), fork.next_id, 1))

    assert [m and m.content for m in await store.load_items(CHAT, [2, 3])] == ["q2", "a2"]


@pytest.mark.parametrize("release", [False, True])
async def test_a_chat_deleted_while_its_turn_ran_is_not_brought_back(
    make_store: MakeStore, release: bool
) -> None:
    store = make_store()
    await store.save_turn(CHAT, "t0", turn("0"))  # items 0, 1
    read = await store.begin_turn(CHAT, "lock", 30, 10)
    assert read is not None
    assert await store.delete_chat(CHAT)

    with pytest.raises(NotFound):
        await store.save_turn(
            CHAT, "t1", chained(turn("1"), 2, 1), lock_token="lock", release=release
        )

    assert await store.load_tree(CHAT) is None
    assert await store.list_chats("public", 10, None) == []


async def test_a_turn_whose_parent_a_fork_trimmed_away_is_still_saved(
    make_store: MakeStore,
) -> None:
    store = make_store(max_messages=4)
    await store.save_turn(CHAT, "t0", turn("0"))  # items 0, 1
    await store.save_turn(CHAT, "t1", turn("1"))  # items 2, 3: the chat is full
    fork = await store.begin_turn(CHAT, "fork", 30, 10, at=3, reserve=2)  # ids 4, 5 set aside
    assert fork is not None
    regenerate = await store.begin_turn(CHAT, "lock", 30, 10)  # another reply to q0
    assert regenerate is not None
    reply = Message("assistant", "a0 again", id=regenerate.next_id, parent=0, created_at=3.0)
    await store.save_turn(CHAT, "tf", chained(turn("f"), 4, 3))  # the fork lands: 0, 1 trimmed

    saved = await store.save_turn(
        CHAT, "tr", [reply], lock_token="lock", release=True, existed=regenerate.exists
    )

    assert saved
    assert await store.load_items(CHAT, [reply.id]) == [reply]  # type: ignore[list-item]

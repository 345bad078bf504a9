"""Pages of a conversation's path over a real store (both kinds): newest first, a page reads only
its own messages, from the leaf or from deep in the path alike; oldest first reads the path once
and cuts the page; pages follow the current path, not other branches, but newest first the pages
after a cursor finish its own path when the leaf moves meanwhile; a cursor whose message was
removed goes on from where it was."""

from __future__ import annotations

from typing import Any

import pytest

from chatproxy.config import load_settings
from chatproxy.service.conversations import Conversations
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef, ChatState, Message, chained

CHAT = ChatRef("public", "conv_pages")


class Reads:
    """A real store that notes how many messages each path read returned."""

    def __init__(self, store: Store):
        self._store = store
        self.read: list[tuple[str, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def load_page(self, *args: Any) -> ChatState:
        return self._noted("load_page", await self._store.load_page(*args))

    async def load_history(self, *args: Any) -> ChatState:
        return self._noted("load_history", await self._store.load_history(*args))

    def _noted(self, name: str, state: ChatState) -> ChatState:
        self.read.append((name, len(state.messages)))
        return state


async def seed(store: Store, count: int) -> None:
    """A path of `count` messages, ids 0 to count - 1."""
    turn = [Message("user" if n % 2 == 0 else "assistant", f"m{n}") for n in range(count)]
    await store.save_turn(CHAT, "seed", chained(turn, 0, None))


def ids(messages: list[Message]) -> list[int | None]:
    return [m.id for m in messages]


@pytest.mark.anyio
async def test_a_newest_first_page_reads_only_its_messages_however_deep_it_is(
    store: Store,
) -> None:
    await seed(store, 1000)
    reads = Reads(store)
    conversations = Conversations(load_settings({}), reads)  # type: ignore[arg-type]

    first = await conversations.path(CHAT, descending=True, count=21)
    deep = await conversations.path(CHAT, descending=True, after=100, count=21)
    inside = await conversations.path(CHAT, descending=True, after=50, with_after=True, count=3)

    assert ids(first) == list(range(999, 978, -1))
    assert ids(deep) == list(range(99, 78, -1))
    assert ids(inside) == [50, 49, 48, 47]  # the cursor's own message, then 3 more
    assert reads.read == [("load_page", 21), ("load_page", 21), ("load_page", 3)]


@pytest.mark.anyio
async def test_an_oldest_first_page_is_cut_from_the_path_read_once(store: Store) -> None:
    await seed(store, 1000)
    reads = Reads(store)
    conversations = Conversations(load_settings({}), reads)  # type: ignore[arg-type]

    first = await conversations.path(CHAT, descending=False, count=3)
    later = await conversations.path(CHAT, descending=False, after=500, count=3)
    inside = await conversations.path(CHAT, descending=False, after=500, with_after=True, count=3)
    last = await conversations.path(CHAT, descending=False, after=998, count=3)

    assert (ids(first), ids(later), ids(inside), ids(last)) == (
        [0, 1, 2],
        [501, 502, 503],
        [500, 501, 502, 503],
        [999],
    )
    assert reads.read == [("load_history", 1000)] * 4


@pytest.mark.anyio
async def test_pages_follow_the_current_path_and_not_other_branches(store: Store) -> None:
    await seed(store, 6)
    edit = Message("user", "an edit of 3").placed(6, 2)
    await store.save_turn(CHAT, "edit", [edit])  # the new leaf: the path 0, 1, 2, 6
    conversations = Conversations(load_settings({}), store)

    assert ids(await conversations.path(CHAT, descending=False, count=10)) == [0, 1, 2, 6]
    assert ids(await conversations.path(CHAT, descending=True, count=10)) == [6, 2, 1, 0]
    assert ids(await conversations.path(CHAT, descending=False, after=2, count=10)) == [6]
    await store.set_leaf(CHAT, 5)
    assert ids(await conversations.path(CHAT, descending=False, count=10)) == list(range(6))


@pytest.mark.anyio
async def test_newest_first_pages_after_a_cursor_finish_its_path_when_the_leaf_moves(
    store: Store,
) -> None:
    await seed(store, 8)
    conversations = Conversations(load_settings({}), store)
    first = await conversations.path(CHAT, descending=True, count=3)  # 7, 6, 5: the cursor is 5
    edit = Message("user", "an edit of 4").placed(8, 3)
    await store.save_turn(CHAT, "edit", [edit])  # the new leaf: the path 0, 1, 2, 3, 8

    rest = await conversations.path(CHAT, descending=True, after=first[-1].id, count=10)
    oldest_first = await conversations.path(CHAT, descending=False, after=3, count=10)

    assert (ids(first), ids(rest)) == ([7, 6, 5], [4, 3, 2, 1, 0])  # the path it began on
    assert ids(oldest_first) == [8]  # cut from the current path


@pytest.mark.anyio
async def test_a_cursor_whose_message_was_removed_goes_on_from_where_it_was(
    store: Store,
) -> None:
    await seed(store, 10)
    conversations = Conversations(load_settings({}), store)
    await store.delete_items(CHAT, [5])

    newer = await conversations.path(CHAT, descending=False, after=5, with_after=True, count=2)
    older = await conversations.path(CHAT, descending=True, after=5, with_after=True, count=2)

    assert (ids(newer), ids(older)) == ([6, 7], [4, 3])

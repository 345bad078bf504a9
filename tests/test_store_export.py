"""Whole chats in and out of a store (`Store.load_tree`, `Store.save_tree`), run against both
backends, and from one backend into the other."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatproxy.config import RedisSettings
from chatproxy.errors import ChatBusy, ValidationFailed
from chatproxy.store.base import Store
from chatproxy.store.chat_tree import ChatTree
from chatproxy.store.items import ChatRef, Message, chained
from chatproxy.store.redis import RedisStore
from chatproxy.store.sqlite import SqliteStore
from chatproxy.store.summary import Summary
from tests.conftest import MakeStore, take_lock
from tests.test_store_contract import turn

SUMMARY = Summary(0, 1, "question 1, answered", model="m-s", created_at=8.0)
CHAT = ChatRef("public", "source")
COPY = ChatRef("public", "copy")


async def branched_chat(store: Store, chat: ChatRef = CHAT) -> None:
    """A chat with two turns (0-3), a fork under 1 (4, 5), a new first message (6), its own
    prompt, settings and metadata, its leaf moved back to 3."""
    await store.save_turn(chat, "t1", turn(1))
    await store.save_turn(chat, "t2", turn(2))
    await store.save_turn(chat, "fork", chained(turn(3), 4, 1))
    again = [Message("user", "again", created_at=9.0)]
    await store.save_turn(chat, "edit", chained(again, 6, None))
    await store.set_leaf(chat, 3)
    await store.set_chat_system(chat, "Be brief.")
    await store.update_chat_settings(chat, {"temperature": 0.5, "model": "m-2"})
    await store.set_chat_metadata(chat, {"topic": "tests"})
    fence = (await store.load_unsummarized(chat, 3, 100)).fence
    assert await store.save_summary(chat, SUMMARY, fence)


@pytest.mark.anyio
async def test_a_whole_chat_is_read_with_every_branch_and_its_record(store: Store) -> None:
    await branched_chat(store)

    tree = await store.load_tree(CHAT)

    assert tree is not None
    assert [(m.id, m.parent) for m in tree.items] == [
        (0, None), (1, 0), (2, 1), (3, 2), (4, 1), (5, 4), (6, None)
    ]  # fmt: skip
    assert tree.items[5] == chained(turn(3), 4, 1)[1]
    assert (tree.chat_id, tree.leaf, tree.title) == ("source", 3, "question 1")
    assert (tree.system, tree.settings) == ("Be brief.", {"temperature": 0.5, "model": "m-2"})
    assert tree.metadata == {"topic": "tests"}
    assert tree.summaries == [SUMMARY]
    assert tree.tokens == {"prompt_tokens": 6, "completion_tokens": 6, "total_tokens": 12}
    info = await store.chat_info(CHAT)
    assert info is not None
    assert (tree.created, tree.updated) == (info.created, info.updated)
    assert await store.load_tree(ChatRef("public", "nobody")) is None


@pytest.mark.anyio
async def test_a_chat_written_whole_reads_back_and_goes_on_like_the_original(store: Store) -> None:
    await branched_chat(store)
    tree = await store.load_tree(CHAT)
    assert tree is not None

    assert await store.save_tree(COPY, dataclasses.replace(tree, chat_id="copy")) is True

    copied = await store.load_tree(COPY)
    assert copied == dataclasses.replace(tree, chat_id="copy")
    parents = [None, 0, 1, 4]
    assert await store.children(COPY, parents) == await store.children(CHAT, parents)
    assert (await store.load_history(COPY)).messages == (await store.load_history(CHAT)).messages
    info = await store.chat_info(COPY)
    assert info is not None
    assert (info.messages, info.updated) == (7, tree.updated)
    assert await store.save_turn(COPY, "next", turn(4))
    after = await store.load_history(COPY)
    assert [(m.id, m.parent) for m in after.messages[-2:]] == [(7, 3), (8, 7)]
    assert await store.set_leaf(COPY, 1, descend=True) == 5  # the fork is still its newest


@pytest.mark.anyio
async def test_an_existing_chat_is_kept_unless_replaced(store: Store) -> None:
    await branched_chat(store)
    small = ChatTree("source", 5.0, 6.0, chained(turn(9), 0, None), leaf=1)
    before = await store.load_tree(CHAT)

    assert await store.save_tree(CHAT, small) is False
    assert await store.load_tree(CHAT) == before

    assert await store.save_tree(CHAT, small, replace=True) is True
    assert await store.load_tree(CHAT) == small
    assert await store.children(CHAT, [None, 1]) == [[0], []]
    assert (await store.load_history(CHAT)).chat_system is None


@pytest.mark.anyio
async def test_a_chat_a_turn_holds_is_not_written(store: Store) -> None:
    assert await take_lock(store, COPY, "tok", 30)
    tree = ChatTree("copy", 5.0, 6.0, chained(turn(1), 0, None), leaf=1)

    with pytest.raises(ChatBusy):
        await store.save_tree(COPY, tree, replace=True)

    assert await store.load_tree(COPY) is None


@pytest.mark.anyio
async def test_a_chat_larger_than_the_store_keeps_is_refused_whole(make_store: MakeStore) -> None:
    store = make_store(max_messages=3)
    tree = ChatTree("copy", 5.0, 6.0, chained(turn(1) + turn(2), 0, None), leaf=3)

    with pytest.raises(ValidationFailed, match="4 items, more than MAX_CHAT_MESSAGES"):
        await store.save_tree(COPY, tree)

    assert await store.load_tree(COPY) is None


@pytest.mark.anyio
async def test_chats_written_whole_are_listed_by_their_own_activity(store: Store) -> None:
    for n, chat_id in enumerate(["a", "b", "c"]):
        tree = ChatTree(chat_id, 1.0, 100.0 - n, chained(turn(n), 0, None), leaf=1)
        assert await store.save_tree(ChatRef("public", chat_id), tree)

    listed = await store.list_chats("public", 10, None)

    assert [(info.chat_id, info.updated, info.messages) for info in listed] == [
        ("a", 100.0, 2),
        ("b", 99.0, 2),
        ("c", 98.0, 2),
    ]


@pytest.fixture
async def both(
    redis_url: str, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[tuple[Store, Store]]:
    redis_store = RedisStore.from_settings(RedisSettings(redis_url, False, 2.0), 3600)
    sqlite_store = SqliteStore(str(tmp_path / "chats.sqlite3"), 3600)
    yield redis_store, sqlite_store
    await redis_store.close()
    await sqlite_store.close()


@pytest.mark.anyio
@pytest.mark.parametrize("direction", ["redis-to-sqlite", "sqlite-to-redis"])
async def test_a_whole_chat_moves_between_the_stores_unchanged(
    both: tuple[Store, Store], direction: str
) -> None:
    source, target = both if direction == "redis-to-sqlite" else both[::-1]
    await branched_chat(source)
    tree = await source.load_tree(CHAT)
    assert tree is not None

    assert await target.save_tree(CHAT, tree)

    assert await target.load_tree(CHAT) == tree
    assert (await target.load_window(CHAT, 2)).summary == SUMMARY  # 2, 3 read; 1 above
    parents = [None, 0, 1, 4]
    assert await target.children(CHAT, parents) == await source.children(CHAT, parents)


@pytest.mark.anyio
async def test_a_replace_fences_off_a_summary_being_written_of_the_chat_before(
    store: Store,
) -> None:
    await branched_chat(store)
    tree = await store.load_tree(CHAT)
    assert tree is not None
    fence = (await store.load_unsummarized(CHAT, 3, 100)).fence

    assert await store.save_tree(CHAT, dataclasses.replace(tree, summaries=[]), replace=True)

    assert not await store.save_summary(CHAT, SUMMARY, fence)  # of the items replaced
    assert (await store.load_tree(CHAT)) == dataclasses.replace(tree, summaries=[])


@pytest.mark.anyio
async def test_a_chat_with_thousands_of_summaries_is_written_whole(store: Store) -> None:
    items = chained([Message("user", f"q{n}", created_at=1.0) for n in range(5000)], 0, None)
    summaries = [Summary(0, n, f"up to {n}", created_at=2.0) for n in range(5000)]
    tree = ChatTree("many", 1.0, 2.0, items, leaf=4999, summaries=summaries)

    assert await store.save_tree(ChatRef("public", "many"), tree)

    assert await store.load_tree(ChatRef("public", "many")) == tree


@pytest.mark.anyio
async def test_trimming_a_chat_whose_ids_lie_far_apart_skips_the_gap(
    make_store: MakeStore,
) -> None:
    # An imported chat may hold any ids (a chat's export keeps them); the turn that trims it must
    # not walk every number between its oldest kept item and the next.
    store = make_store(max_messages=3)
    chat, far = ChatRef("public", "gaps"), 2_000_000
    first = Message("user", "question 0", created_at=999.0).placed(0, None)
    tree = ChatTree("gaps", 1.0, 2.0, [first, *chained(turn(1), far, 0)], leaf=far + 1)
    assert await store.save_tree(chat, tree)

    started = time.monotonic()
    assert await store.save_turn(chat, "t2", chained(turn(2), far + 2, far + 1))

    assert time.monotonic() - started < 0.5
    kept = await store.load_tree(chat)
    assert kept is not None
    assert [m.id for m in kept.items] == [far + 1, far + 2, far + 3]

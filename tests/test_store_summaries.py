"""The storage contract of summaries (compaction), run against every backend: a summary is kept
by the last item it covers, found by a window's read on any path through that item and never on
one that does not pass it, walked to by `load_unsummarized`, fenced by removals and deletion,
and dropped with what it may tell of; and the claim that makes a chat's summaries one at a time
across processes."""

from __future__ import annotations

import asyncio

import pytest

from chatproxy.errors import NotFound
from chatproxy.store import ChatRef, Message, Store
from chatproxy.store.items import chained
from chatproxy.store.summary import Summary
from tests.conftest import MakeStore, take_lock

CHAT = ChatRef("public", "summaries-1")


def ask(text: str) -> Message:
    return Message("user", text, created_at=1000.0)


def reply(text: str) -> Message:
    return Message("assistant", text, created_at=1000.5, model="m-1")


async def linear(store: Store, turns: int, chat: ChatRef = CHAT) -> None:
    """Save `turns` turns q0/a0, q1/a1, ... on one path (items 0 .. 2 * turns - 1)."""
    for n in range(turns):
        await store.save_turn(chat, f"t{n}", [ask(f"q{n}"), reply(f"a{n}")])


def summary(last: int, text: str = "earlier: the user is Ada", first: int = 0) -> Summary:
    return Summary(first, last, text, model="m-sum", usage={"total_tokens": 9}, created_at=5.0)


async def summarize(store: Store, last: int, text: str = "earlier: the user is Ada") -> None:
    fence = (await store.load_unsummarized(CHAT, last, 1000)).fence
    assert await store.save_summary(CHAT, summary(last, text), fence)


@pytest.mark.anyio
async def test_a_window_finds_the_newest_summary_of_an_item_it_read_or_the_one_above(
    store: Store,
) -> None:
    await linear(store, 5)  # items 0..9
    assert (await store.load_window(CHAT, 4)).summary is None

    await summarize(store, 3)
    await summarize(store, 5, "later")

    assert (await store.load_window(CHAT, 4)).summary == summary(5, "later")  # items 6..9 read
    assert (await store.load_window(CHAT, 5)).summary == summary(5, "later")
    assert (await store.load_window(CHAT, 3)).summary is None  # 7..9 read, 6 above: none there
    assert (await store.load_window(CHAT, 4, leaf=5)).summary == summary(5, "later")
    assert (await store.load_window(CHAT, 2, leaf=4)).summary == summary(3)  # 3, 4 read
    assert (await store.load_window(CHAT, 1, leaf=4)).summary == summary(3)  # 4 read; 3 above
    assert (await store.load_history(CHAT)).summary is None  # not a window's read
    assert (await store.load_page(CHAT, 4, before=8)).summary is None


@pytest.mark.anyio
async def test_a_summary_holds_on_a_branch_below_it_and_never_on_one_above(store: Store) -> None:
    await linear(store, 3)  # items 0..5
    await summarize(store, 3)
    below = chained([ask("q2 again"), reply("a2 again")], 6, 3)  # a sibling of q2 (item 4)
    above = chained([ask("q1 again"), reply("a1 again")], 8, 1)  # a sibling of q1 (item 2)

    await store.save_turn(CHAT, "below", below)
    assert (await store.load_window(CHAT, 2)).summary == summary(3)

    await store.save_turn(CHAT, "above", above)
    assert (await store.load_window(CHAT, 10)).summary is None
    assert (await store.load_window(CHAT, 2, leaf=7)).summary == summary(3)


@pytest.mark.anyio
async def test_a_turn_s_window_finds_it_too_even_one_the_process_knew(store: Store) -> None:
    await linear(store, 4)  # items 0..7
    assert await store.begin_turn(CHAT, "token-1", 30.0, 4) is not None
    saved = [ask("q4"), reply("a4")]
    await store.save_turn(CHAT, "t4", saved, lock_token="token-1", release=True)
    await summarize(store, 5)  # after the save this process knows the window of

    began = await store.begin_turn(CHAT, "token-2", 30.0, 4)

    assert began is not None
    assert [m.id for m in began.messages] == [6, 7, 8, 9]
    assert began.summary == summary(5)


@pytest.mark.anyio
async def test_load_unsummarized_walks_up_to_the_newest_summary(store: Store) -> None:
    await linear(store, 4)  # items 0..7
    found = await store.load_unsummarized(CHAT, 5, 1000)
    assert found.summary is None
    assert [m.id for m in found.messages] == [0, 1, 2, 3, 4, 5]

    assert await store.save_summary(CHAT, summary(3), found.fence)

    after = await store.load_unsummarized(CHAT, 7, 1000)
    assert after.summary == summary(3)
    assert [m.content for m in after.messages] == ["q2", "a2", "q3", "a3"]
    assert (await store.load_unsummarized(CHAT, 3, 1000)).messages == []
    assert [m.id for m in (await store.load_unsummarized(CHAT, 7, 2)).messages] == [6, 7]
    with pytest.raises(NotFound):
        await store.load_unsummarized(CHAT, 99, 10)
    with pytest.raises(NotFound):
        await store.load_unsummarized(ChatRef("public", "no-such-chat"), 0, 10)


@pytest.mark.anyio
async def test_load_unsummarized_goes_on_up_to_a_summary_above_what_it_reads_within_reach(
    store: Store,
) -> None:
    await linear(store, 6)  # items 0..11
    assert (await store.load_unsummarized(CHAT, 11, 2, reach=20)).above is None  # none to find
    await summarize(store, 3)

    far = await store.load_unsummarized(CHAT, 11, 2, reach=20)
    near = await store.load_unsummarized(CHAT, 11, 8, reach=20)  # 4..11: 3 is just above
    short = await store.load_unsummarized(CHAT, 11, 2, reach=3)  # passes 9, 8, 7: not 6

    assert [m.id for m in far.messages] == [10, 11]
    assert (far.summary, far.unread, far.above) == (summary(3), True, None)
    assert [m.id for m in near.messages] == list(range(4, 12))
    assert (near.summary, near.unread, near.above) == (summary(3), False, None)
    assert [m.id for m in short.messages] == [10, 11]
    assert (short.summary, short.unread, short.above) == (None, False, 6)
    on = await store.load_unsummarized(CHAT, 6, 0, reach=3)  # from where it stopped
    assert (on.messages, on.summary, on.unread, on.above) == ([], summary(3), True, None)
    assert (await store.load_unsummarized(CHAT, 11, 2)).above == 9  # no reach: it goes on there


@pytest.mark.anyio
async def test_load_unsummarized_never_goes_on_to_a_summary_off_its_path(store: Store) -> None:
    await linear(store, 3)  # items 0..5
    await store.save_turn(CHAT, "above", chained([ask("q1 again"), reply("a1 again")], 6, 1))
    await summarize(store, 7)  # on the branch off item 1
    await store.save_turn(CHAT, "below", chained([ask("q3"), reply("a3")], 8, 5))

    found = await store.load_unsummarized(CHAT, 9, 1, reach=20)

    assert [m.id for m in found.messages] == [9]
    assert (found.summary, found.unread, found.above) == (None, False, None)


@pytest.mark.anyio
async def test_load_summaries_by_their_last_items(store: Store) -> None:
    await linear(store, 3)
    await summarize(store, 1, "one")
    await summarize(store, 3, "three")

    found = await store.load_summaries(CHAT, [0, 1, 2, 3, 4])

    assert found == {1: summary(1, "one"), 3: summary(3, "three")}
    assert await store.load_summaries(CHAT, []) == {}
    assert await store.load_summaries(ChatRef("public", "none"), [1]) == {}


@pytest.mark.anyio
async def test_a_history_read_asked_for_summaries_has_those_of_the_items_it_read(
    store: Store,
) -> None:
    await linear(store, 3)  # items 0..5
    await summarize(store, 1, "one")
    await summarize(store, 3, "three")
    await store.save_turn(CHAT, "b", chained([ask("b"), reply("ab")], 6, 2))  # 6, 7 under 2

    found = await store.load_history(CHAT, 5, summaries=True)

    assert found.summaries == {1: summary(1, "one"), 3: summary(3, "three")}
    current = await store.load_history(CHAT, summaries=True)  # 0, 1, 2, 6, 7: 3 is not on it
    assert current.summaries == {1: summary(1, "one")}
    page = await store.load_page(CHAT, 2, 5, 5, children=True, summaries=True)  # items 3, 4
    assert page.summaries == {3: summary(3, "three")}
    assert page.children == {None: [0], 2: [3, 6], 3: [4]}  # asked for both: both, in one read
    assert (await store.load_page(CHAT, 2, 2, summaries=True)).summaries == {1: summary(1, "one")}
    assert (await store.load_history(CHAT)).summaries is None  # not asked for
    empty = await store.load_history(ChatRef("public", "none"), summaries=True)
    assert empty.summaries == {}


@pytest.mark.anyio
async def test_a_removal_of_items_drops_every_summary_and_fences_one_being_written(
    store: Store,
) -> None:
    await linear(store, 4)
    await summarize(store, 3)
    fence = (await store.load_unsummarized(CHAT, 5, 1000)).fence

    await store.delete_items(CHAT, [6])

    assert await store.load_summaries(CHAT, [3]) == {}
    assert (await store.load_window(CHAT, 3)).summary is None
    assert not await store.save_summary(CHAT, summary(5), fence)  # it may tell of item 6
    assert await store.load_summaries(CHAT, [5]) == {}
    fresh = (await store.load_unsummarized(CHAT, 5, 1000)).fence
    assert await store.save_summary(CHAT, summary(5), fresh)


@pytest.mark.anyio
async def test_a_summary_is_not_kept_for_an_item_or_chat_that_is_gone(store: Store) -> None:
    await linear(store, 2)
    fence = (await store.load_unsummarized(CHAT, 3, 1000)).fence

    assert not await store.save_summary(CHAT, summary(9), fence)  # no such item

    await store.delete_chat(CHAT)
    await linear(store, 2)  # the same id again: a new chat, items 0..3 again
    assert not await store.save_summary(CHAT, summary(3), fence)
    assert await store.load_summaries(CHAT, [3]) == {}


@pytest.mark.anyio
async def test_a_deleted_chat_takes_its_summaries_along(store: Store) -> None:
    await linear(store, 2)
    await summarize(store, 1)

    await store.delete_chat(CHAT)

    assert await store.load_summaries(CHAT, [1]) == {}
    await linear(store, 2)
    assert (await store.load_window(CHAT, 1)).summary is None


@pytest.mark.anyio
async def test_trimming_drops_the_summaries_of_the_items_it_drops(make_store: MakeStore) -> None:
    store = make_store(max_messages=6)
    await linear(store, 3)  # items 0..5
    await summarize(store, 1, "of 0 and 1")
    await summarize(store, 3, "of 0 to 3")

    await linear_more(store)  # items 6, 7: 0 and 1 are dropped

    assert await store.load_summaries(CHAT, [1, 3]) == {3: summary(3, "of 0 to 3")}
    assert (await store.load_window(CHAT, 4)).summary == summary(3, "of 0 to 3")


async def linear_more(store: Store) -> None:
    await store.save_turn(CHAT, "more", [ask("q3"), reply("a3")])


# --- The summary claim: one summary of a chat made at a time, across processes ---------------


@pytest.mark.anyio
async def test_a_summary_claim_has_one_holder_until_released(make_store: MakeStore) -> None:
    one, other = make_store(), make_store()  # two processes' stores over one database
    assert await one.claim_summary(CHAT, "a", 30) is True
    assert await other.claim_summary(CHAT, "b", 30) is False
    assert await other.claim_summary(ChatRef("public", "summaries-2"), "b", 30) is True
    assert await other.claim_summary(ChatRef("other", CHAT.chat_id), "b", 30) is True
    assert await one.claim_summary(CHAT, "a", 30) is True  # its holder takes it again

    await other.release_summary(CHAT, "b")  # not its holder: nothing is released
    assert await other.claim_summary(CHAT, "b", 30) is False
    await one.release_summary(CHAT, "a")
    assert await other.claim_summary(CHAT, "b", 30) is True


@pytest.mark.anyio
async def test_a_summary_claim_ends_with_its_lease_unless_its_holder_renews_it(
    store: Store,
) -> None:
    assert await store.claim_summary(CHAT, "crashed", 0.2)
    assert await store.claim_summary(ChatRef("public", "summaries-2"), "renewed", 0.2)
    assert await store.claim_summary(ChatRef("public", "summaries-2"), "renewed", 30)
    await asyncio.sleep(0.3)  # the first holder died without releasing its claim

    assert await store.claim_summary(CHAT, "next", 30) is True
    assert await store.claim_summary(CHAT, "crashed", 30) is False  # not its own any more
    assert await store.claim_summary(ChatRef("public", "summaries-2"), "next", 30) is False


@pytest.mark.anyio
async def test_a_summary_claim_and_the_turn_lock_are_apart(store: Store) -> None:
    assert await take_lock(store, CHAT, "turn", 30)
    assert await store.claim_summary(CHAT, "turn", 30) is True  # a token of its own kind

    await store.release_turn(CHAT, "turn")
    assert await store.claim_summary(CHAT, "fold", 30) is False
    assert await take_lock(store, CHAT, "another turn", 30) is True
    await store.release_summary(CHAT, "turn")
    assert await take_lock(store, CHAT, "a third turn", 30) is False
    assert await store.claim_summary(CHAT, "fold", 30) is True

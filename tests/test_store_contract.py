"""The storage contract (`Store`), run against every backend: what one passes, the other
must pass too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis
from redis.exceptions import MaxConnectionsError

from chatproxy.config import RedisSettings, load_settings
from chatproxy.errors import NotFound, StoreUnavailable, TurnLeaseLost
from chatproxy.store import (
    ChatRef,
    IdempotencyClaim,
    IdempotentResult,
    Message,
    Store,
    open_store,
)
from chatproxy.store.chat_tree import ChatTree
from chatproxy.store.items import ChatState, chained
from chatproxy.store.redis import RedisStore
from chatproxy.store.redis_client import connect
from tests.conftest import MakeStore, take_lock

CHAT = ChatRef("public", "chat-1")


def turn(n: int) -> list[Message]:
    return [
        Message("user", f"question {n}", created_at=1000.0 + n),
        Message(
            "assistant",
            f"answer {n}",
            created_at=1000.5 + n,
            usage={"prompt_tokens": n, "completion_tokens": 2, "total_tokens": n + 2},
            model="m-1",
        ),
    ]


def contents(messages: list[Message]) -> list[object]:
    return [m.content for m in messages]


@pytest.mark.anyio
async def test_unknown_chat_is_empty_and_does_not_exist(store: Store) -> None:
    state = await store.load_history(CHAT)
    assert (state.exists, state.chat_system, state.messages) == (False, None, [])
    assert (await store.load_window(CHAT, 10)).messages == []


@pytest.mark.anyio
async def test_saved_turns_come_back_in_order_with_every_field(store: Store) -> None:
    assert await store.save_turn(CHAT, "t1", turn(1))
    assert await store.save_turn(CHAT, "t2", turn(2))

    state = await store.load_history(CHAT)

    assert state.exists
    assert state.messages == chained(turn(1) + turn(2), 0, None)
    assert (state.leaf, state.next_id) == (3, 4)


@pytest.mark.anyio
async def test_a_turn_of_thousands_of_messages_is_stored_whole(store: Store) -> None:
    # A client that resends a long history starts a chat with all of it in one save (Redis:
    # written 1,000 at a time).
    history = [m for n in range(2250) for m in turn(n)]
    assert await store.save_turn(CHAT, "long", history)

    state = await store.load_history(CHAT)

    assert state.messages == chained(history, 0, None)
    assert (state.leaf, state.next_id) == (4499, 4500)


@pytest.mark.anyio
async def test_window_holds_only_the_newest_messages_oldest_first(store: Store) -> None:
    for n in range(5):
        await store.save_turn(CHAT, f"t{n}", turn(n))

    assert contents((await store.load_window(CHAT, 3)).messages) == [
        "answer 3",
        "question 4",
        "answer 4",
    ]
    assert (await store.load_window(CHAT, 0)).messages == []
    assert len((await store.load_window(CHAT, 1000)).messages) == 10


@pytest.mark.anyio
async def test_saving_the_same_turn_id_twice_stores_it_once(store: Store) -> None:
    assert await store.save_turn(CHAT, "same", turn(1)) is True
    assert await store.save_turn(CHAT, "same", turn(1)) is False

    assert (await store.load_history(CHAT)).messages == chained(turn(1), 0, None)


@pytest.mark.anyio
async def test_chats_and_tenants_are_separate(store: Store) -> None:
    other_chat = ChatRef("public", "chat-2")
    other_tenant = ChatRef("web", "chat-1")
    await store.save_turn(CHAT, "t1", turn(1))
    await store.save_turn(other_chat, "t2", turn(2))
    await store.set_chat_system(other_tenant, "tenant prompt")

    assert (await store.load_history(CHAT)).messages == chained(turn(1), 0, None)
    assert (await store.load_history(other_chat)).messages == chained(turn(2), 0, None)
    assert (await store.load_history(other_tenant)).messages == []
    assert (await store.load_history(CHAT)).chat_system is None
    assert (await store.load_history(other_tenant)).chat_system == "tenant prompt"


@pytest.mark.anyio
async def test_content_parts_and_unicode_round_trip(store: Store) -> None:
    parts = [
        {"type": "text", "text": 'Что на картинке? 🖼️ "quoted" \\ back'},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    await store.save_turn(CHAT, "t1", [Message("user", parts), Message("assistant", "猫 🐱")])

    assert contents((await store.load_history(CHAT)).messages) == [parts, "猫 🐱"]


@pytest.mark.anyio
async def test_chat_system_prompt_is_set_replaced_and_removed(store: Store) -> None:
    await store.set_chat_system(CHAT, "first")
    state = await store.load_window(CHAT, 5)
    assert (state.exists, state.chat_system, state.messages) == (True, "first", [])

    await store.set_chat_system(CHAT, "second")
    await store.save_turn(CHAT, "t1", turn(1))
    assert (await store.load_window(CHAT, 5)).chat_system == "second"

    await store.set_chat_system(CHAT, None)
    state = await store.load_window(CHAT, 5)
    assert state.chat_system is None
    assert state.messages == chained(turn(1), 0, None)


@pytest.mark.anyio
async def test_chat_metadata_is_set_replaced_and_removed(store: Store) -> None:
    await store.save_turn(CHAT, "t0", [])  # a chat of no messages (a bare conversation)
    assert await store.set_chat_metadata(CHAT, {"topic": "cats ✓", "n": "1"}) is True
    info = await store.chat_info(CHAT)
    assert info is not None
    assert (info.messages, info.metadata) == (0, {"topic": "cats ✓", "n": "1"})
    assert (await store.load_history(CHAT)).exists
    assert [c.metadata for c in await store.list_chats("public", 10, None)] == [info.metadata]

    await store.save_turn(CHAT, "t1", turn(1))
    assert await store.set_chat_metadata(CHAT, {}) is True
    emptied = await store.chat_info(CHAT)
    assert emptied is not None
    assert emptied.metadata == {}
    await store.set_chat_metadata(CHAT, None)
    info = await store.chat_info(CHAT)
    assert info is not None
    assert (info.metadata, info.messages) == (None, 2)
    assert info.to_json()["metadata"] is None
    await store.save_turn(ChatRef("public", "other"), "t2", turn(2))
    assert [c.metadata for c in await store.list_chats("public", 10, None)] == [None, None]


@pytest.mark.anyio
async def test_metadata_is_never_set_on_a_chat_that_does_not_exist(store: Store) -> None:
    nothing, deleted = ChatRef("public", "nothing"), ChatRef("public", "deleted")
    await store.save_turn(deleted, "t1", turn(1), metadata={"n": "1"})
    assert await store.delete_chat(deleted)

    assert await store.set_chat_metadata(nothing, {"topic": "cats"}) is False
    assert await store.set_chat_metadata(nothing, None) is False
    assert await store.set_chat_metadata(deleted, {"n": "2"}) is False  # a delete came first

    assert await store.chat_info(nothing) is None
    assert await store.chat_info(deleted) is None
    assert not (await store.load_history(deleted)).exists
    assert await store.list_chats("public", 10, None) == []
    await store.update_chat_settings(nothing, {"model": "m-2"})  # the chat routes' settings do
    assert (await store.load_window(nothing, 5)).settings == {"model": "m-2"}


@pytest.mark.anyio
async def test_a_save_sets_the_chats_metadata_in_the_same_step(store: Store) -> None:
    bare = ChatRef("public", "bare")
    assert await store.save_turn(CHAT, "t1", turn(1), metadata={"topic": "cats"})
    assert await store.save_turn(bare, "t0", [], metadata={})  # a conversation without items

    made, empty = await store.chat_info(CHAT), await store.chat_info(bare)
    assert made is not None
    assert empty is not None
    assert (made.messages, made.metadata) == (2, {"topic": "cats"})
    assert (empty.messages, empty.metadata) == (0, {})
    assert (await store.load_history(bare)).exists
    assert {c.chat_id for c in await store.list_chats("public", 10, None)} == {"chat-1", "bare"}
    assert await store.save_turn(CHAT, "t2", turn(2))  # without it, the metadata stays
    kept = await store.chat_info(CHAT)
    assert kept is not None
    assert (kept.messages, kept.metadata) == (4, {"topic": "cats"})


@pytest.mark.anyio
async def test_global_system_prompt_is_stored_beside_the_chats(store: Store) -> None:
    assert await store.get_global_system() is None
    await store.set_global_system("Be brief.")
    assert await store.get_global_system() == "Be brief."
    assert (await store.load_window(CHAT, 1)).global_system == "Be brief."
    await store.set_global_system("")
    assert await store.get_global_system() == ""


@pytest.mark.anyio
async def test_delete_removes_the_whole_chat_and_nothing_else(store: Store) -> None:
    other = ChatRef("public", "keep-me")
    await store.save_turn(CHAT, "t1", turn(1))
    await store.set_chat_system(CHAT, "mine")
    await store.save_turn(other, "t2", turn(2))
    await store.set_global_system("global")

    assert await store.delete_chat(CHAT) is True
    assert await store.delete_chat(CHAT) is False

    state = await store.load_history(CHAT)
    assert (state.exists, state.chat_system, state.messages) == (False, None, [])
    assert (await store.load_history(other)).messages == chained(turn(2), 0, None)
    assert await store.get_global_system() == "global"


@pytest.mark.anyio
async def test_a_deleted_chat_starts_again_empty_even_with_a_reused_turn_id(
    store: Store,
) -> None:
    await store.save_turn(CHAT, "t1", turn(1))
    await store.delete_chat(CHAT)

    assert await store.save_turn(CHAT, "t1", turn(2)) is True
    assert (await store.load_history(CHAT)).messages == chained(turn(2), 0, None)  # from 0 again


@pytest.mark.anyio
async def test_a_chat_expires_after_its_ttl(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=1)
    await store.save_turn(CHAT, "t1", turn(1))
    await store.set_global_system("survives")

    await asyncio.sleep(1.3)

    state = await store.load_history(CHAT)
    assert (state.exists, state.messages) == (False, [])
    assert await store.get_global_system() == "survives"


@pytest.mark.anyio
async def test_every_read_refreshes_the_ttl(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=2)
    await store.save_turn(CHAT, "t1", turn(1))

    for _ in range(3):  # 3.3 s in all: longer than the TTL, but never 2 s without a read
        await asyncio.sleep(1.1)
        assert (await store.load_window(CHAT, 5)).messages == chained(turn(1), 0, None)


@pytest.mark.anyio
async def test_concurrent_turns_are_each_stored_whole(make_store: MakeStore) -> None:
    stores = [make_store() for _ in range(2)]  # two "processes"
    writers_per_store, turns_each = 4, 15

    async def writer(store: Store, worker: int) -> None:
        for n in range(turns_each):
            tag = f"w{worker}-{n}"
            pair = [Message("user", f"q {tag}"), Message("assistant", f"a {tag}")]
            assert await store.save_turn(CHAT, tag, pair)

    await asyncio.gather(
        *(
            writer(store, i * writers_per_store + j)
            for i, store in enumerate(stores)
            for j in range(writers_per_store)
        )
    )

    messages = (await stores[0].load_history(CHAT)).messages
    assert len(messages) == 2 * writers_per_store * len(stores) * turns_each
    # one chain: each save was placed under the leaf the one before it left
    assert [(m.id, m.parent) for m in messages] == [
        (n, n - 1 if n else None) for n in range(len(messages))
    ]
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        assert question.role == "user"
        assert answer.role == "assistant"
        assert str(answer.content) == "a " + str(question.content)[2:]


# --- Turn lock and fencing -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_turn_lock_has_one_holder_until_released(store: Store) -> None:
    assert await take_lock(store, CHAT, "a", 30) is True
    assert await take_lock(store, CHAT, "b", 30) is False
    assert await take_lock(store, ChatRef("public", "other"), "b", 30) is True

    await store.release_turn(CHAT, "b")  # not the holder: nothing happens
    assert await take_lock(store, CHAT, "b", 30) is False

    await store.release_turn(CHAT, "a")
    assert await take_lock(store, CHAT, "b", 30) is True


@pytest.mark.anyio
async def test_an_expired_lease_lets_another_holder_in(store: Store) -> None:
    assert await take_lock(store, CHAT, "slow", 0.2)
    await asyncio.sleep(0.3)
    assert await take_lock(store, CHAT, "next", 30) is True


@pytest.mark.anyio
async def test_turn_held_says_whether_a_turn_holds_the_lock(store: Store) -> None:
    assert await store.turn_held(CHAT) is False
    await take_lock(store, CHAT, "a", 30)
    assert await store.turn_held(CHAT) is True
    assert await store.turn_held(ChatRef("public", "other")) is False

    await store.release_turn(CHAT, "a")
    assert await store.turn_held(CHAT) is False
    await take_lock(store, CHAT, "slow", 0.2)
    await asyncio.sleep(0.3)
    assert await store.turn_held(CHAT) is False  # an expired lease holds nothing


@pytest.mark.anyio
async def test_save_is_fenced_by_the_lock_token(store: Store) -> None:
    await take_lock(store, CHAT, "holder", 30)

    with pytest.raises(TurnLeaseLost):
        await store.save_turn(CHAT, "t1", turn(1), lock_token="intruder")
    assert (await store.load_history(CHAT)).messages == []

    assert await store.save_turn(CHAT, "t1", turn(1), lock_token="holder") is True
    assert (await store.load_history(CHAT)).messages == chained(turn(1), 0, None)


@pytest.mark.anyio
async def test_a_holder_whose_lease_ran_out_cannot_append(store: Store) -> None:
    await take_lock(store, CHAT, "paused", 0.2)
    await asyncio.sleep(0.3)  # the holder "pauses" past its lease; nobody else took the lock

    with pytest.raises(TurnLeaseLost):
        await store.save_turn(CHAT, "t1", turn(1), lock_token="paused")

    await take_lock(store, CHAT, "next", 30)
    with pytest.raises(TurnLeaseLost):
        await store.save_turn(CHAT, "t1", turn(1), lock_token="paused")
    assert (await store.load_history(CHAT)).messages == []


@pytest.mark.anyio
async def test_a_retried_save_that_already_landed_is_not_refused_after_the_lease(
    store: Store,
) -> None:
    await take_lock(store, CHAT, "holder", 0.2)
    assert await store.save_turn(CHAT, "t1", turn(1), lock_token="holder") is True
    await asyncio.sleep(0.3)

    assert await store.save_turn(CHAT, "t1", turn(1), lock_token="holder") is False
    assert (await store.load_history(CHAT)).messages == chained(turn(1), 0, None)


@pytest.mark.anyio
async def test_beginning_a_turn_takes_the_lock_and_reads_the_window(store: Store) -> None:
    for n in range(1, 4):
        await store.save_turn(CHAT, f"t{n}", turn(n))
    await store.set_chat_system(CHAT, "Be kind.")

    state = await store.begin_turn(CHAT, "a", 30, 3)
    assert state == await store.load_window(CHAT, 3)
    assert state is not None
    assert contents(state.messages) == ["answer 2", "question 3", "answer 3"]
    assert state.chat_system == "Be kind."
    assert state.messages == chained(turn(2)[1:] + turn(3), 3, 2)
    assert (state.leaf, state.next_id) == (5, 6)

    assert await store.begin_turn(CHAT, "b", 30, 3) is None  # held: nothing is read
    assert await store.begin_turn(CHAT, "a", 30, 3) == state  # the holder again: a re-sent call
    assert await take_lock(store, CHAT, "b", 30) is False
    await store.release_turn(CHAT, "a")
    fresh = await store.begin_turn(ChatRef("public", "new"), "c", 30, 5)
    assert fresh is not None
    assert not fresh.exists
    assert fresh.messages == []


@pytest.mark.anyio
async def test_a_save_can_release_the_lock_in_the_same_step(store: Store) -> None:
    await store.begin_turn(CHAT, "holder", 30, 5)

    assert await store.save_turn(CHAT, "t1", turn(1), lock_token="holder", release=True) is True
    assert (await store.load_history(CHAT)).messages == chained(turn(1), 0, None)
    # retried after it landed: nothing stored, nothing refused, though the lock is gone
    assert await store.save_turn(CHAT, "t1", turn(1), lock_token="holder", release=True) is False

    assert await store.begin_turn(CHAT, "next", 30, 5) is not None
    with pytest.raises(TurnLeaseLost):  # an old holder neither saves nor frees the new one's lock
        await store.save_turn(CHAT, "t2", turn(2), lock_token="holder", release=True)
    assert await take_lock(store, CHAT, "third", 30) is False
    assert (await store.load_history(CHAT)).messages == chained(turn(1), 0, None)


# --- Idempotency records -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_idempotency_key_is_claimed_once_then_pending(store: Store) -> None:
    assert await store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("new")
    assert await store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("pending")
    assert await store.claim_idempotency(CHAT, "k", "body-2", 30) == IdempotencyClaim("mismatch")
    other_chat = ChatRef("public", "chat-2")
    assert await store.claim_idempotency(other_chat, "k", "body-2", 30) == IdempotencyClaim("new")


@pytest.mark.anyio
async def test_a_saved_turn_completes_its_idempotency_record(store: Store) -> None:
    await store.claim_idempotency(CHAT, "k", "body-1", 30)
    answer = IdempotentResult("k", "body-1", '{"content": "the reply"}')

    await store.save_turn(CHAT, "t1", turn(1), idempotent=answer)

    done = IdempotencyClaim("done", '{"content": "the reply"}')
    assert await store.claim_idempotency(CHAT, "k", "body-1", 30) == done
    assert await store.claim_idempotency(CHAT, "k", "body-2", 30) == IdempotencyClaim("mismatch")
    await store.release_idempotency(CHAT, "k", "body-1")  # a finished record is kept
    assert await store.claim_idempotency(CHAT, "k", "body-1", 30) == done


@pytest.mark.anyio
async def test_a_released_claim_can_be_claimed_again(store: Store) -> None:
    await store.claim_idempotency(CHAT, "k", "body-1", 30)
    await store.release_idempotency(CHAT, "k", "other-body")  # not ours: kept
    assert await store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("pending")

    await store.release_idempotency(CHAT, "k", "body-1")

    assert await store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("new")


@pytest.mark.anyio
async def test_a_pending_claim_ends_with_its_lease(store: Store) -> None:
    await store.claim_idempotency(CHAT, "k", "body-1", 0.2)
    await asyncio.sleep(0.3)

    assert await store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("new")


async def keyed_turn(store: Store, chat: ChatRef, key: str, messages: list[Message]) -> None:
    """Claim `key` and save `messages` as its turn, recording its answer."""
    assert await store.claim_idempotency(chat, key, "body", 30) == IdempotencyClaim("new")
    answer = IdempotentResult(key, "body", f'{{"content": "{key}"}}')
    assert await store.save_turn(chat, f"turn-{key}", messages, idempotent=answer)


@pytest.mark.anyio
async def test_deleting_a_chat_removes_its_finished_idempotency_records(store: Store) -> None:
    other = ChatRef("public", "chat-2")
    await keyed_turn(store, CHAT, "k1", turn(1))
    await keyed_turn(store, CHAT, "k2", turn(2))
    await keyed_turn(store, other, "k1", turn(1))
    assert await store.claim_idempotency(CHAT, "running", "body", 30) == IdempotencyClaim("new")

    assert await store.delete_chat(CHAT) is True

    for key in ("k1", "k2"):  # a retry is a new request: nothing of the deleted text replays
        assert await store.claim_idempotency(CHAT, key, "body", 30) == IdempotencyClaim("new")
    assert await store.claim_idempotency(CHAT, "running", "body", 30) == IdempotencyClaim("pending")
    kept = IdempotencyClaim("done", '{"content": "k1"}')
    assert await store.claim_idempotency(other, "k1", "body", 30) == kept


@pytest.mark.anyio
async def test_deleting_items_removes_the_records_of_the_turns_that_stored_them(
    store: Store,
) -> None:
    await keyed_turn(store, CHAT, "k1", turn(1))  # items 0, 1
    await keyed_turn(store, CHAT, "k2", [*turn(2), Message("user", "more")])  # items 2, 3, 4
    await keyed_turn(store, CHAT, "k3", turn(3))  # items 5, 6
    assert await store.save_turn(CHAT, "plain", turn(4))  # items 7, 8: no key
    await keyed_turn(store, CHAT, "k5", turn(5))  # items 9, 10

    assert await store.delete_items(CHAT, [3, 6]) == [3, 6]  # inside k2's turn; k3's reply
    assert await store.delete_items(CHAT, [7, 8]) == [7, 8]  # no record stored them

    for key, state in [("k1", "done"), ("k2", "new"), ("k3", "new"), ("k5", "done")]:
        found = await store.claim_idempotency(CHAT, key, "body", 30)
        assert found.state == state, key
    assert await store.claim_idempotency(CHAT, "k5", "body", 30) == IdempotencyClaim(
        "done", '{"content": "k5"}'
    )


@pytest.mark.anyio
async def test_replacing_a_chat_by_import_removes_its_finished_idempotency_records(
    store: Store,
) -> None:
    other = ChatRef("public", "chat-2")
    await keyed_turn(store, CHAT, "k1", turn(1))
    await keyed_turn(store, CHAT, "k2", turn(2))
    await keyed_turn(store, other, "k1", turn(1))
    assert await store.claim_idempotency(CHAT, "running", "body", 30) == IdempotencyClaim("new")
    tree = ChatTree("chat-1", 2000.0, 2001.0, chained(turn(9), 0, None), leaf=1)

    assert await store.save_tree(CHAT, tree) is False  # not replaced: its records stay
    done = IdempotencyClaim("done", '{"content": "k1"}')
    assert await store.claim_idempotency(CHAT, "k1", "body", 30) == done
    assert await store.save_tree(CHAT, tree, replace=True) is True

    for key in ("k1", "k2"):  # a retry is a new request: nothing of the replaced text replays
        assert await store.claim_idempotency(CHAT, key, "body", 30) == IdempotencyClaim("new")
    assert await store.claim_idempotency(CHAT, "running", "body", 30) == IdempotencyClaim("pending")
    assert await store.claim_idempotency(other, "k1", "body", 30) == done
    assert contents((await store.load_history(CHAT)).messages) == ["question 9", "answer 9"]


@pytest.mark.anyio
async def test_trimming_removes_the_records_of_the_turns_whose_items_all_went(
    make_store: MakeStore,
) -> None:
    """MAX_CHAT_MESSAGES drops the oldest items in the save: a record goes in the same step
    once its turn's last item is dropped; one with an item kept still replays, and so does
    one whose turn stored no items (a conversation made with a key)."""
    store = make_store(max_messages=5)

    async def states() -> dict[str, str]:
        """Each key's state, a claim of one found new released again."""
        found = {}
        for key in ("made", "k1", "k2", "k3"):
            found[key] = (await store.claim_idempotency(CHAT, key, "body", 30)).state
            if found[key] == "new":
                await store.release_idempotency(CHAT, key, "body")
        return found

    await keyed_turn(store, CHAT, "made", [])  # no items
    await keyed_turn(store, CHAT, "k1", turn(1))  # items 0, 1
    await keyed_turn(store, CHAT, "k2", [*turn(2), Message("user", "more")])  # items 2, 3, 4
    assert await store.save_turn(CHAT, "p1", turn(3))  # items 5, 6: 0, 1 dropped

    assert await states() == {"made": "done", "k1": "new", "k2": "done", "k3": "new"}

    await keyed_turn(store, CHAT, "k3", turn(4))  # items 7, 8: 2, 3 dropped, 4 kept
    assert await store.claim_idempotency(CHAT, "k2", "body", 30) == IdempotencyClaim(
        "done", '{"content": "k2"}'
    )
    assert await store.save_turn(CHAT, "p2", turn(5))  # items 9, 10: 4, 5 dropped

    assert await states() == {"made": "done", "k1": "new", "k2": "new", "k3": "done"}
    assert [m.id for m in (await store.load_history(CHAT)).messages] == [6, 7, 8, 9, 10]


@pytest.mark.anyio
async def test_a_turn_saved_after_its_chat_was_deleted_records_no_answer(store: Store) -> None:
    """A claim still pending when its chat is deleted stays pending; the turn's save then finds
    no chat, stores nothing and records nothing, and the claim's release lets a retry in."""
    await store.save_turn(CHAT, "t1", turn(1))
    assert await store.claim_idempotency(CHAT, "k", "body", 30) == IdempotencyClaim("new")
    assert await store.delete_chat(CHAT) is True
    assert await store.claim_idempotency(CHAT, "k", "body", 30) == IdempotencyClaim("pending")

    answer = IdempotentResult("k", "body", '{"content": "deleted"}')
    with pytest.raises(NotFound):
        await store.save_turn(CHAT, "t2", turn(2), idempotent=answer, existed=True)

    assert await store.claim_idempotency(CHAT, "k", "body", 30) == IdempotencyClaim("pending")
    await store.release_idempotency(CHAT, "k", "body")
    assert await store.claim_idempotency(CHAT, "k", "body", 30) == IdempotencyClaim("new")
    assert not (await store.load_history(CHAT)).exists


# --- Redis only ----------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("store_kind", ["redis"])
async def test_redis_store_loads_its_scripts_again_after_redis_forgets_them(
    make_store: MakeStore, redis_url: str
) -> None:
    store = make_store()
    client = redis.Redis.from_url(redis_url)
    try:
        await store.save_turn(CHAT, "t1", turn(1))
        client.script_flush()  # what a restarted Redis without persistence looks like

        assert await store.begin_turn(CHAT, "a", 30, 5) == await store.load_window(CHAT, 5)
        client.script_flush()
        assert await store.save_turn(CHAT, "t2", turn(2), lock_token="a", release=True) is True
        assert (await store.load_history(CHAT)).messages == chained(turn(1) + turn(2), 0, None)
        chats = await store.list_chats("public", 10, None)
        assert [info.chat_id for info in chats] == ["chat-1"]
    finally:
        client.close()


def commands(admin: redis.Redis) -> dict[str, int]:
    """How many of each command Redis has run (in scripts too), by name."""
    stats = admin.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(stat["calls"]) for name, stat in stats.items()}


async def counted_save(store: Store, admin: redis.Redis, n: int, key: str | None) -> dict[str, int]:
    """The commands a fenced turn's save runs, with an Idempotency-Key's answer or without."""
    assert await store.begin_turn(CHAT, "tok", 30, 5) is not None
    answer = None if key is None else IdempotentResult(key, "body", '{"content": "x"}')
    before = commands(admin)
    saved = await store.save_turn(
        CHAT, f"t{n}", turn(n), lock_token="tok", release=True, idempotent=answer
    )
    assert saved
    ran = {name: calls - before.get(name, 0) for name, calls in commands(admin).items()}
    return {name: calls for name, calls in ran.items() if calls and name != "info"}


@pytest.mark.anyio
@pytest.mark.parametrize("store_kind", ["redis"])
async def test_a_redis_save_links_its_record_and_a_save_without_a_key_runs_as_it_did(
    make_store: MakeStore, admin: redis.Redis
) -> None:
    store = make_store()
    await store.save_turn(CHAT, "t0", turn(0))  # items 0, 1

    plain = await counted_save(store, admin, 1, None)  # items 2, 3
    keyed = await counted_save(store, admin, 2, "k")  # items 4, 5

    assert plain == {
        "evalsha": 1,
        "get": 1,  # the lock
        "del": 1,  # released
        "llen": 1,  # the layout before trees (UPGRADE)
        "hmget": 1,
        "hset": 2,  # the items, the meta
        "hincrby": 3,
        "expire": 4,  # the chat's three keys, the listing
        "zadd": 1,  # the listing
    }
    more = {name: calls - plain.get(name, 0) for name, calls in keyed.items()}
    assert {name: n for name, n in more.items() if n} == {
        "hset": 1,  # the record
        "expire": 2,  # the record, its links
        "zremrangebyscore": 1,  # the links of records expired
        "zadd": 1,  # its link
    }
    links = f"chat:{CHAT.slot}:idems"
    assert admin.zrange(links, 0, -1) == [f"4 5 chat:{CHAT.slot}:idem:k"]
    assert admin.ttl(f"chat:{CHAT.slot}:idem:k") < admin.ttl(links) <= 25 * 3600


@pytest.mark.anyio
@pytest.mark.parametrize("store_kind", ["redis"])
async def test_a_redis_save_that_trims_is_run_again_only_for_a_record_it_drops(
    make_store: MakeStore, admin: redis.Redis
) -> None:
    """A record's key is found in its link, and a script touches only the keys it is given:
    a save that drops a record's last item asks for it first and is run again with it."""
    store = make_store(max_messages=4)
    await store.save_turn(CHAT, "t0", turn(0))  # items 0, 1

    untrimmed = await counted_save(store, admin, 1, None)  # items 2, 3
    keyed = await counted_save(store, admin, 2, "k")  # items 4, 5: 0, 1 dropped
    kept = await counted_save(store, admin, 3, None)  # items 6, 7: 2, 3 dropped; k's kept
    dropped = await counted_save(store, admin, 4, None)  # items 8, 9: k's 4, 5 dropped

    assert untrimmed == {  # as a save without MAX_CHAT_MESSAGES runs
        "evalsha": 1, "get": 1, "del": 1, "llen": 1, "hmget": 1, "hset": 2, "hincrby": 3,
        "expire": 4, "zadd": 1,
    }  # fmt: skip
    assert (keyed["evalsha"], kept["evalsha"], dropped["evalsha"]) == (1, 1, 2)
    assert "zrange" not in untrimmed
    assert admin.exists(f"chat:{CHAT.slot}:idem:k", f"chat:{CHAT.slot}:idems") == 0
    assert admin.exists(f"chat:{CHAT.slot}:lock") == 0  # released by the run that saved
    assert [m.id for m in (await store.load_history(CHAT)).messages] == [6, 7, 8, 9]


@pytest.mark.anyio
async def test_redis_store_holds_a_burst_beyond_its_connections_until_one_comes_free(
    redis_url: str,
) -> None:
    """redis.asyncio's pool fails a call beyond its connections at once (a 503 to the client);
    the store waits for one."""
    settings = RedisSettings(redis_url, False, 2.0, max_connections=3)
    store = RedisStore.from_settings(settings, 3600)
    calls = 60

    async def turn_in_own_chat(n: int) -> bool:
        chat = ChatRef("public", f"burst-{n}")
        state = await store.begin_turn(chat, f"token-{n}", 30, 5)
        assert state is not None
        return await store.save_turn(chat, f"t{n}", turn(n), lock_token=f"token-{n}", release=True)

    try:
        saved = await asyncio.gather(*(turn_in_own_chat(n) for n in range(calls)))
    finally:
        await store.close()
    assert saved == [True] * calls
    check = redis.Redis.from_url(redis_url)
    assert check.zcard("chats:{public}") == calls
    check.close()


@pytest.mark.anyio
async def test_a_redis_call_that_waits_too_long_for_a_connection_is_a_full_pool(
    redis_url: str,
) -> None:
    """Not a plain ConnectionError: a cluster client takes that for a failed node, drops its
    connections and reads the topology again, on every such wait."""
    settings = RedisSettings(redis_url, False, 2.0, max_connections=1)
    store = RedisStore(connect(settings), 3600, max_calls=1, wait_seconds=0.1)
    pauser = redis.Redis.from_url(redis_url)
    try:
        pauser.execute_command("CLIENT", "PAUSE", "400", "ALL")  # the first call waits in Redis
        first = asyncio.ensure_future(store.load_window(CHAT, 5))
        await asyncio.sleep(0.02)
        second = store.load_window(CHAT, 5)
        second_answer, first_answer = await asyncio.gather(second, first, return_exceptions=True)
    finally:
        await store.close()
        pauser.close()
    assert isinstance(first_answer, ChatState)
    assert first_answer.messages == []
    assert isinstance(second_answer, StoreUnavailable)
    assert isinstance(second_answer.__cause__, MaxConnectionsError)


@pytest.mark.anyio
async def test_one_save_of_many_messages_stores_them_all_in_order(store: Store) -> None:
    many = [Message("user", f"part {n}", created_at=1000.0 + n) for n in range(250)]

    assert await store.save_turn(CHAT, "t1", many)

    assert (await store.load_history(CHAT)).messages == chained(many, 0, None)
    window = await store.load_window(CHAT, 3)
    assert contents(window.messages) == ["part 247", "part 248", "part 249"]
    assert window.messages == chained(many[247:], 247, 246)


@pytest.mark.anyio
@pytest.mark.parametrize("backend", ["redis", "sqlite"])
async def test_the_store_of_the_settings_is_its_backend_and_shares_its_chats(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    environ = {"GPT_API_KEY": "sk-test", "STORE_PATH": str(tmp_path / "chats.sqlite3")}
    if backend == "redis":
        environ["REDIS_URL"] = request.getfixturevalue("redis_url")
    settings = load_settings(environ)
    one, other = open_store(settings), open_store(settings)  # two "processes"
    try:
        assert await one.save_turn(CHAT, "t1", turn(1))
        saved = chained(turn(1), 0, None)
        assert (one.kind, (await one.load_history(CHAT)).messages) == (backend, saved)
        assert (await other.load_history(CHAT)).messages == saved
    finally:
        await one.close()
        await other.close()

"""The storage contract, run against every backend, blocking and as coroutines (`AsyncStore`):
what one passes, the others must pass too."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
from redis.exceptions import MaxConnectionsError

from chatproxy.config import RedisSettings, load_settings
from chatproxy.errors import StoreUnavailable, TurnLeaseLost
from chatproxy.store import (
    ChatRef,
    IdempotencyClaim,
    IdempotentResult,
    Message,
    Store,
    open_async_store,
    open_store,
)
from chatproxy.store.base import ChatState
from chatproxy.store.redis import RedisStore, connect
from chatproxy.store.redis_aio import AsyncRedisStore, connect_async
from tests.conftest import MakeStore
from tests.event_loop import run_on_own_loop

CHAT = ChatRef("public", "chat-1")


@pytest.fixture(params=["redis", "sqlite", "redis-aio", "sqlite-aio"])
def store_kind(request: pytest.FixtureRequest) -> str:
    """Every backend, blocking and as coroutines."""
    return str(request.param)


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


def test_unknown_chat_is_empty_and_does_not_exist(store: Store) -> None:
    state = store.load_history(CHAT)
    assert (state.exists, state.chat_system, state.messages) == (False, None, [])
    assert store.load_window(CHAT, 10).messages == []


def test_saved_turns_come_back_in_order_with_every_field(store: Store) -> None:
    assert store.save_turn(CHAT, "t1", turn(1))
    assert store.save_turn(CHAT, "t2", turn(2))

    state = store.load_history(CHAT)

    assert state.exists
    assert state.messages == turn(1) + turn(2)


def test_window_holds_only_the_newest_messages_oldest_first(store: Store) -> None:
    for n in range(5):
        store.save_turn(CHAT, f"t{n}", turn(n))

    assert contents(store.load_window(CHAT, 3).messages) == ["answer 3", "question 4", "answer 4"]
    assert store.load_window(CHAT, 0).messages == []
    assert len(store.load_window(CHAT, 1000).messages) == 10


def test_saving_the_same_turn_id_twice_stores_it_once(store: Store) -> None:
    assert store.save_turn(CHAT, "same", turn(1)) is True
    assert store.save_turn(CHAT, "same", turn(1)) is False

    assert store.load_history(CHAT).messages == turn(1)


def test_chats_and_tenants_are_separate(store: Store) -> None:
    other_chat = ChatRef("public", "chat-2")
    other_tenant = ChatRef("web", "chat-1")
    store.save_turn(CHAT, "t1", turn(1))
    store.save_turn(other_chat, "t2", turn(2))
    store.set_chat_system(other_tenant, "tenant prompt")

    assert store.load_history(CHAT).messages == turn(1)
    assert store.load_history(other_chat).messages == turn(2)
    assert store.load_history(other_tenant).messages == []
    assert store.load_history(CHAT).chat_system is None
    assert store.load_history(other_tenant).chat_system == "tenant prompt"


def test_content_parts_and_unicode_round_trip(store: Store) -> None:
    parts = [
        {"type": "text", "text": 'Что на картинке? 🖼️ "quoted" \\ back'},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    store.save_turn(CHAT, "t1", [Message("user", parts), Message("assistant", "猫 🐱")])

    assert contents(store.load_history(CHAT).messages) == [parts, "猫 🐱"]


def test_chat_system_prompt_is_set_replaced_and_removed(store: Store) -> None:
    store.set_chat_system(CHAT, "first")
    state = store.load_window(CHAT, 5)
    assert (state.exists, state.chat_system, state.messages) == (True, "first", [])

    store.set_chat_system(CHAT, "second")
    store.save_turn(CHAT, "t1", turn(1))
    assert store.load_window(CHAT, 5).chat_system == "second"

    store.set_chat_system(CHAT, None)
    state = store.load_window(CHAT, 5)
    assert state.chat_system is None
    assert state.messages == turn(1)


def test_global_system_prompt_is_stored_beside_the_chats(store: Store) -> None:
    assert store.get_global_system() is None
    store.set_global_system("Be brief.")
    assert store.get_global_system() == "Be brief."
    assert store.load_window(CHAT, 1).global_system == "Be brief."
    store.set_global_system("")
    assert store.get_global_system() == ""


def test_delete_removes_the_whole_chat_and_nothing_else(store: Store) -> None:
    other = ChatRef("public", "keep-me")
    store.save_turn(CHAT, "t1", turn(1))
    store.set_chat_system(CHAT, "mine")
    store.save_turn(other, "t2", turn(2))
    store.set_global_system("global")

    assert store.delete_chat(CHAT) is True
    assert store.delete_chat(CHAT) is False

    state = store.load_history(CHAT)
    assert (state.exists, state.chat_system, state.messages) == (False, None, [])
    assert store.load_history(other).messages == turn(2)
    assert store.get_global_system() == "global"


def test_a_deleted_chat_starts_again_empty_even_with_a_reused_turn_id(store: Store) -> None:
    store.save_turn(CHAT, "t1", turn(1))
    store.delete_chat(CHAT)

    assert store.save_turn(CHAT, "t1", turn(2)) is True
    assert store.load_history(CHAT).messages == turn(2)


def test_a_chat_expires_after_its_ttl(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=1)
    store.save_turn(CHAT, "t1", turn(1))
    store.set_global_system("survives")

    time.sleep(1.3)

    state = store.load_history(CHAT)
    assert (state.exists, state.messages) == (False, [])
    assert store.get_global_system() == "survives"


def test_every_read_refreshes_the_ttl(make_store: MakeStore) -> None:
    store = make_store(ttl_seconds=2)
    store.save_turn(CHAT, "t1", turn(1))

    for _ in range(3):  # 3.3 s in all: longer than the TTL, but never 2 s without a read
        time.sleep(1.1)
        assert store.load_window(CHAT, 5).messages == turn(1)


def test_concurrent_turns_are_each_stored_whole(make_store: MakeStore) -> None:
    stores = [make_store() for _ in range(2)]  # two "processes"
    threads_per_store, turns_each = 4, 15

    def writer(store: Store, worker: int) -> None:
        for n in range(turns_each):
            tag = f"w{worker}-{n}"
            pair = [Message("user", f"q {tag}"), Message("assistant", f"a {tag}")]
            assert store.save_turn(CHAT, tag, pair)

    threads = [
        threading.Thread(target=writer, args=(store, i * threads_per_store + j))
        for i, store in enumerate(stores)
        for j in range(threads_per_store)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    messages = stores[0].load_history(CHAT).messages
    assert len(messages) == 2 * threads_per_store * len(stores) * turns_each
    for question, answer in zip(messages[::2], messages[1::2], strict=True):
        assert question.role == "user"
        assert answer.role == "assistant"
        assert str(answer.content) == "a " + str(question.content)[2:]


# --- Turn lock and fencing -----------------------------------------------------------------------


def test_turn_lock_has_one_holder_until_released(store: Store) -> None:
    assert store.acquire_turn(CHAT, "a", 30) is True
    assert store.acquire_turn(CHAT, "b", 30) is False
    assert store.acquire_turn(ChatRef("public", "other"), "b", 30) is True

    store.release_turn(CHAT, "b")  # not the holder: nothing happens
    assert store.acquire_turn(CHAT, "b", 30) is False

    store.release_turn(CHAT, "a")
    assert store.acquire_turn(CHAT, "b", 30) is True


def test_an_expired_lease_lets_another_holder_in(store: Store) -> None:
    assert store.acquire_turn(CHAT, "slow", 0.2)
    time.sleep(0.3)
    assert store.acquire_turn(CHAT, "next", 30) is True


def test_save_is_fenced_by_the_lock_token(store: Store) -> None:
    store.acquire_turn(CHAT, "holder", 30)

    with pytest.raises(TurnLeaseLost):
        store.save_turn(CHAT, "t1", turn(1), lock_token="intruder")
    assert store.load_history(CHAT).messages == []

    assert store.save_turn(CHAT, "t1", turn(1), lock_token="holder") is True
    assert store.load_history(CHAT).messages == turn(1)


def test_a_holder_whose_lease_ran_out_cannot_append(store: Store) -> None:
    store.acquire_turn(CHAT, "paused", 0.2)
    time.sleep(0.3)  # the holder "pauses" past its lease; nobody else took the lock

    with pytest.raises(TurnLeaseLost):
        store.save_turn(CHAT, "t1", turn(1), lock_token="paused")

    store.acquire_turn(CHAT, "next", 30)
    with pytest.raises(TurnLeaseLost):
        store.save_turn(CHAT, "t1", turn(1), lock_token="paused")
    assert store.load_history(CHAT).messages == []


def test_a_retried_save_that_already_landed_is_not_refused_after_the_lease(store: Store) -> None:
    store.acquire_turn(CHAT, "holder", 0.2)
    assert store.save_turn(CHAT, "t1", turn(1), lock_token="holder") is True
    time.sleep(0.3)

    assert store.save_turn(CHAT, "t1", turn(1), lock_token="holder") is False
    assert store.load_history(CHAT).messages == turn(1)


def test_beginning_a_turn_takes_the_lock_and_reads_the_window(store: Store) -> None:
    for n in range(1, 4):
        store.save_turn(CHAT, f"t{n}", turn(n))
    store.set_chat_system(CHAT, "Be kind.")

    state = store.begin_turn(CHAT, "a", 30, 3)
    assert state == store.load_window(CHAT, 3)
    assert state is not None
    assert contents(state.messages) == ["answer 2", "question 3", "answer 3"]
    assert state.chat_system == "Be kind."
    assert state.first_id == 3

    assert store.begin_turn(CHAT, "b", 30, 3) is None  # held: nothing is read
    assert store.begin_turn(CHAT, "a", 30, 3) == state  # the holder again: a re-sent call
    assert store.acquire_turn(CHAT, "b", 30) is False
    store.release_turn(CHAT, "a")
    fresh = store.begin_turn(ChatRef("public", "new"), "c", 30, 5)
    assert fresh is not None
    assert not fresh.exists
    assert fresh.messages == []


def test_a_save_can_release_the_lock_in_the_same_step(store: Store) -> None:
    store.begin_turn(CHAT, "holder", 30, 5)

    assert store.save_turn(CHAT, "t1", turn(1), lock_token="holder", release=True) is True
    assert store.load_history(CHAT).messages == turn(1)
    # retried after it landed: nothing stored, nothing refused, though the lock is gone
    assert store.save_turn(CHAT, "t1", turn(1), lock_token="holder", release=True) is False

    assert store.begin_turn(CHAT, "next", 30, 5) is not None
    with pytest.raises(TurnLeaseLost):  # an old holder neither saves nor frees the new one's lock
        store.save_turn(CHAT, "t2", turn(2), lock_token="holder", release=True)
    assert store.acquire_turn(CHAT, "third", 30) is False
    assert store.load_history(CHAT).messages == turn(1)


# --- Idempotency records -------------------------------------------------------------------------


def test_idempotency_key_is_claimed_once_then_pending(store: Store) -> None:
    assert store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("new")
    assert store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("pending")
    assert store.claim_idempotency(CHAT, "k", "body-2", 30) == IdempotencyClaim("mismatch")
    other_chat = ChatRef("public", "chat-2")
    assert store.claim_idempotency(other_chat, "k", "body-2", 30) == IdempotencyClaim("new")


def test_a_saved_turn_completes_its_idempotency_record(store: Store) -> None:
    store.claim_idempotency(CHAT, "k", "body-1", 30)
    answer = IdempotentResult("k", "body-1", '{"content": "the reply"}')

    store.save_turn(CHAT, "t1", turn(1), idempotent=answer)

    done = IdempotencyClaim("done", '{"content": "the reply"}')
    assert store.claim_idempotency(CHAT, "k", "body-1", 30) == done
    assert store.claim_idempotency(CHAT, "k", "body-2", 30) == IdempotencyClaim("mismatch")
    store.release_idempotency(CHAT, "k", "body-1")  # a finished record is kept
    assert store.claim_idempotency(CHAT, "k", "body-1", 30) == done


def test_a_released_claim_can_be_claimed_again(store: Store) -> None:
    store.claim_idempotency(CHAT, "k", "body-1", 30)
    store.release_idempotency(CHAT, "k", "other-body")  # not ours: kept
    assert store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("pending")

    store.release_idempotency(CHAT, "k", "body-1")

    assert store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("new")


def test_a_pending_claim_ends_with_its_lease(store: Store) -> None:
    store.claim_idempotency(CHAT, "k", "body-1", 0.2)
    time.sleep(0.3)

    assert store.claim_idempotency(CHAT, "k", "body-1", 30) == IdempotencyClaim("new")


# --- Redis only ----------------------------------------------------------------------------------


def test_more_calls_at_once_than_redis_connections_wait_for_one(redis_url: str) -> None:
    """A burst beyond the pool waits for a connection instead of failing: redis-py's default
    pool raised MaxConnectionsError (a 503 to the client) beyond its 100 connections."""
    client = connect(RedisSettings(redis_url, False, 2.0, max_connections=3))
    store = RedisStore(client, 3600)
    calls = 60
    barrier = threading.Barrier(calls)

    def turn_in_own_chat(n: int) -> bool:
        chat = ChatRef("public", f"burst-{n}")
        barrier.wait()
        state = store.begin_turn(chat, f"token-{n}", 30, 5)
        assert state is not None
        return store.save_turn(chat, f"t{n}", turn(n), lock_token=f"token-{n}", release=True)

    try:
        with ThreadPoolExecutor(calls) as pool:
            saved = list(pool.map(turn_in_own_chat, range(calls)))
    finally:
        store.close()
    assert all(saved)  # with a non-blocking pool of 3, most would raise MaxConnectionsError


def test_a_wait_for_a_redis_connection_that_times_out_is_a_full_pool(redis_url: str) -> None:
    """Not a plain ConnectionError: a cluster client takes that for a failed node, drops its
    connections and reads the topology again, on every such wait."""
    client = cast(Any, connect(RedisSettings(redis_url, False, 0.1, max_connections=1)))
    store = RedisStore(client, 3600)
    held = client.connection_pool.get_connection()  # the only connection, in use elsewhere
    try:
        with pytest.raises(StoreUnavailable) as waited:
            store.load_window(CHAT, 5)
    finally:
        client.connection_pool.release(held)
        store.close()
    assert isinstance(waited.value.__cause__, MaxConnectionsError)


@pytest.mark.parametrize("store_kind", ["redis", "redis-aio"])
def test_redis_store_loads_its_scripts_again_after_redis_forgets_them(
    make_store: MakeStore, redis_url: str
) -> None:
    store = make_store()
    client = connect(RedisSettings(redis_url, False, 2.0))
    try:
        store.save_turn(CHAT, "t1", turn(1))
        client.script_flush()  # what a restarted Redis without persistence looks like

        assert store.begin_turn(CHAT, "a", 30, 5) == store.load_window(CHAT, 5)
        client.script_flush()
        assert store.save_turn(CHAT, "t2", turn(2), lock_token="a", release=True) is True
        assert store.load_history(CHAT).messages == turn(1) + turn(2)
        assert [info.chat_id for info in store.list_chats("public", 10, None)] == ["chat-1"]
    finally:
        client.close()


def test_async_store_holds_a_burst_beyond_its_connections_until_one_comes_free(
    redis_url: str,
) -> None:
    """redis.asyncio's pool fails a call beyond its connections at once; the store waits."""
    settings = RedisSettings(redis_url, False, 2.0, max_connections=3)
    store = AsyncRedisStore.from_settings(settings, 3600)
    calls = 60

    async def turn_in_own_chat(n: int) -> bool:
        chat = ChatRef("public", f"burst-{n}")
        state = await store.begin_turn(chat, f"token-{n}", 30, 5)
        assert state is not None
        return await store.save_turn(chat, f"t{n}", turn(n), lock_token=f"token-{n}", release=True)

    async def burst() -> list[bool]:
        try:
            return list(await asyncio.gather(*(turn_in_own_chat(n) for n in range(calls))))
        finally:
            await store.close()

    assert run_on_own_loop(burst()) == [True] * calls
    check = connect(settings)
    assert check.zcard("chats:{public}") == calls
    check.close()


def test_async_store_call_that_waits_too_long_for_a_connection_is_a_full_pool(
    redis_url: str,
) -> None:
    settings = RedisSettings(redis_url, False, 2.0, max_connections=1)
    store = AsyncRedisStore(connect_async(settings), 3600, max_calls=1, wait_seconds=0.1)
    pauser = connect(settings)

    async def two_calls() -> tuple[ChatState | BaseException, ...]:
        pauser.execute_command("CLIENT", "PAUSE", "400", "ALL")  # the first call waits in Redis
        first = asyncio.ensure_future(store.load_window(CHAT, 5))
        await asyncio.sleep(0.02)
        try:
            second = store.load_window(CHAT, 5)
            return tuple(await asyncio.gather(second, first, return_exceptions=True))
        finally:
            await store.close()

    try:
        second, first = run_on_own_loop(two_calls())
    finally:
        pauser.close()
    assert isinstance(first, ChatState)
    assert first.messages == []
    assert isinstance(second, StoreUnavailable)
    assert isinstance(second.__cause__, MaxConnectionsError)


def test_one_save_of_many_messages_stores_them_all_in_order(store: Store) -> None:
    many = [Message("user", f"part {n}", created_at=1000.0 + n) for n in range(250)]

    assert store.save_turn(CHAT, "t1", many)

    assert store.load_history(CHAT).messages == many
    window = store.load_window(CHAT, 3)
    assert contents(window.messages) == ["part 247", "part 248", "part 249"]
    assert window.first_id == 247


def test_a_redis_chat_stored_before_messages_were_numbered_is_numbered_from_its_first(
    redis_url: str,
) -> None:
    store = RedisStore(connect(RedisSettings(redis_url, False, 2.0)), None)
    client = connect(RedisSettings(redis_url, False, 2.0))
    try:  # an older version kept the list and a meta hash without `appended`
        client.rpush("chat:{public:chat-1}:msgs", *(m.dumps() for m in turn(1)))
        client.hset("chat:{public:chat-1}:meta", mapping={"created": "1000.0", "messages": 2})

        assert store.save_turn(CHAT, "t2", turn(2))

        assert store.load_history(CHAT).messages == turn(1) + turn(2)
        assert store.load_window(CHAT, 1).first_id == 3
        assert store.load_page(CHAT, 2, 3).first_id == 1
    finally:
        store.close()
        client.close()


@pytest.mark.parametrize("backend", ["redis", "sqlite"])
def test_async_store_of_the_settings_shares_its_chats_with_the_blocking_one(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    environ = {"GPT_API_KEY": "sk-test", "STORE_PATH": str(tmp_path / "chats.sqlite3")}
    if backend == "redis":
        environ["REDIS_URL"] = request.getfixturevalue("redis_url")
    settings = load_settings(environ)
    blocking = open_store(settings)
    aio = open_async_store(settings)

    async def save_and_read() -> ChatState:
        try:
            assert await aio.save_turn(CHAT, "t1", turn(1))
            return await aio.load_history(CHAT)
        finally:
            await aio.close()

    try:
        assert (aio.kind, run_on_own_loop(save_and_read()).messages) == (backend, turn(1))
        assert blocking.load_history(CHAT).messages == turn(1)
    finally:
        blocking.close()

"""The turn guard over a real store: a save whose reply was lost is not called lost."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from chatproxy.config import load_settings
from chatproxy.errors import StoreUnavailable, TurnLeaseLost
from chatproxy.service.guard import TurnGuard
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef, Message, chained

CHAT = ChatRef("public", "chat-1")


class LostReply:
    """A real store whose first save lands but answers as if the store were away; before that
    answer comes, `meanwhile` writes to the chat (by default, the chat's next turn: another
    client takes the free lock and saves `next_turn`)."""

    def __init__(
        self,
        store: Store,
        next_turn: list[Message],
        meanwhile: Callable[[Store], Awaitable[object]] | None = None,
    ):
        self._store = store
        self._next_turn = next_turn
        self._meanwhile = meanwhile or self._next_client
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def save_turn(self, chat: ChatRef, turn_id: str, *args: Any, **kwargs: Any) -> bool:
        saved = await self._store.save_turn(chat, turn_id, *args, **kwargs)
        if not self.lost:
            self.lost = True
            await self._meanwhile(self._store)
            raise StoreUnavailable()
        return saved

    async def _next_client(self, store: Store) -> None:
        assert await store.begin_turn(CHAT, "next-client", 30, 5) is not None
        await store.save_turn(CHAT, "next", self._next_turn, lock_token="next-client")


def turn(n: int) -> list[Message]:
    return [Message("user", f"question {n}"), Message("assistant", f"answer {n}")]


@pytest.mark.anyio
async def test_a_save_that_landed_but_lost_its_reply_is_not_reported_lost(
    store: Store,
) -> None:
    mine, theirs = turn(1), turn(2)
    flaky = LostReply(store, theirs)
    guard = TurnGuard(load_settings({}), flaky)  # type: ignore[arg-type]
    lease = await guard.begin(CHAT, 5)
    # placed as the service places a turn: under the leaf it read, from the next id
    placed = chained(mine, lease.state.next_id, lease.state.leaf)

    await guard.save(CHAT, "mine", placed, lease, None)  # the retry is refused, yet it landed

    assert flaky.lost
    assert lease.released
    stored = (await store.load_history(CHAT)).messages
    assert stored == chained(mine + theirs, 0, None)  # each turn stored once


@pytest.mark.anyio
async def test_a_save_that_landed_is_found_after_a_fork_moved_the_leaf(store: Store) -> None:
    await store.save_turn(CHAT, "t0", turn(0))  # items 0, 1
    fork = await store.begin_turn(CHAT, "fork", 30, 5, at=1, reserve=2)  # ids 2, 3
    assert fork is not None
    forked = chained(turn(9), fork.next_id, 1)
    flaky = LostReply(store, [], lambda s: s.save_turn(CHAT, "fork", forked))
    guard = TurnGuard(load_settings({}), flaky)  # type: ignore[arg-type]
    lease = await guard.begin(CHAT, 5)
    mine = chained(turn(1), lease.state.next_id, lease.state.leaf)  # 4, 5 under 1

    await guard.save(CHAT, "mine", mine, lease, None)  # the fork moved the leaf: found by id

    assert flaky.lost
    assert await store.load_items(CHAT, [5]) == [mine[1]]
    assert [m.id for m in (await store.load_history(CHAT)).messages] == [0, 1, 2, 3]


@pytest.mark.anyio
async def test_a_save_refused_after_an_outage_is_lost_when_it_did_not_land(
    store: Store,
) -> None:
    guard = TurnGuard(load_settings({}), store)
    lease = await guard.begin(CHAT, 5)
    await store.release_turn(CHAT, lease.token)  # the lease ran out meanwhile
    assert await store.begin_turn(CHAT, "next-client", 30, 5) is not None

    with pytest.raises(TurnLeaseLost):
        await guard.save(CHAT, "mine", turn(1), lease, None)
    assert (await store.load_history(CHAT)).messages == []


class LostBeginReply:
    """A real store whose first `begin_turn` takes the lock but answers as if the store were
    away (Redis dying right after it ran the command)."""

    def __init__(self, store: Store):
        self._store = store
        self.lost = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def begin_turn(self, chat: ChatRef, token: str, *args: Any) -> Any:
        state = await self._store.begin_turn(chat, token, *args)
        if not self.lost:
            self.lost = True
            raise StoreUnavailable()
        return state


@pytest.mark.anyio
async def test_a_lock_taken_by_a_begin_whose_reply_was_lost_is_released(
    store: Store,
) -> None:
    guard = TurnGuard(load_settings({}), LostBeginReply(store))  # type: ignore[arg-type]

    with pytest.raises(StoreUnavailable):
        await guard.begin(CHAT, 5)

    assert await store.begin_turn(CHAT, "next-client", 30, 5) is not None  # not held for a lease

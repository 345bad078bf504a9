"""The Redis store does not read again a window it already has (store/windows.py): when that
holds, and that a chat changed by anyone else is always read from Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from chatproxy.config import RedisSettings
from chatproxy.errors import NotFound
from chatproxy.store.items import ChatRef, Message, chained
from chatproxy.store.redis import RedisStore
from chatproxy.store.windows import KnownWindows

CHAT = ChatRef("public", "chat-1")
LIMIT = 4


def turn(label: str) -> list[Message]:
    return [
        Message("user", f"question {label}", created_at=1000.0),
        Message("assistant", f"answer {label}", created_at=1000.5),
    ]


def hgets(admin: redis.Redis) -> int:
    """How many HGETs Redis has run (in scripts too): a read walks a path with one per item."""
    stats = admin.info("commandstats")
    return int(stats.get("cmdstat_hget", {}).get("calls", 0))


class Process:
    """One process's Redis store, and the turns it runs as the service does."""

    def __init__(self, url: str, admin: redis.Redis, max_messages: int = 0) -> None:
        self.store = RedisStore.from_settings(RedisSettings(url, False, 2.0), 3600, max_messages)
        self.admin = admin
        self.items_read = 0  # how many items Redis read for the last turn's window

    async def run_turn(self, label: str, chat: ChatRef = CHAT) -> list[Message]:
        """Begin a turn, save it placed under the leaf it read (fenced, releasing the lock), and
        return the window it read."""
        token = uuid.uuid4().hex
        before = hgets(self.admin)
        state = await self.store.begin_turn(chat, token, 30, LIMIT)
        self.items_read = hgets(self.admin) - before
        assert state is not None
        placed = chained(turn(label), state.next_id, state.leaf)
        await self.store.save_turn(chat, uuid.uuid4().hex, placed, lock_token=token, release=True)
        return state.messages

    async def run_fork(self, label: str, at: int, chat: ChatRef = CHAT) -> list[Message]:
        """Begin a fork under `at` (ids set aside, no lock: a response that continues another),
        save it there, and return the window it read."""
        before = hgets(self.admin)
        state = await self.store.begin_turn(chat, uuid.uuid4().hex, 30, LIMIT, at, reserve=2)
        self.items_read = hgets(self.admin) - before
        assert state is not None
        await self.store.save_turn(chat, uuid.uuid4().hex, chained(turn(label), state.next_id, at))
        return state.messages


@pytest.fixture
async def process(
    redis_url: str, admin: redis.Redis, anyio_backend: str
) -> AsyncIterator[Callable[..., Process]]:
    """`process(max_messages=0)`: a new process's store on the test's Redis, closed after."""
    made: list[Process] = []

    def start(max_messages: int = 0) -> Process:
        made.append(Process(redis_url, admin, max_messages))
        return made[-1]

    yield start
    for one in made:
        await one.store.close()


@pytest.mark.anyio
async def test_a_chat_s_next_turn_in_the_same_process_is_not_sent_its_window(
    process: Callable[..., Process],
) -> None:
    one = process()
    await one.run_turn("0")
    assert one.items_read == 0  # an empty chat
    await one.run_turn("1")
    await one.run_turn("2")

    window = await one.run_turn("3")

    assert one.items_read == 0
    assert window == chained(turn("1") + turn("2"), 2, 1)
    everything = turn("0") + turn("1") + turn("2") + turn("3")
    assert (await one.store.load_window(CHAT, 10)).messages == chained(everything, 0, None)


@pytest.mark.anyio
async def test_a_chat_another_process_changed_is_read_again(
    process: Callable[..., Process],
) -> None:
    one, two = process(), process()
    await one.run_turn("a")
    await one.run_turn("b")
    await two.run_turn("c")

    assert await one.run_turn("d") == chained(turn("b") + turn("c"), 2, 1)
    assert one.items_read == LIMIT

    await two.store.delete_chat(CHAT)
    await two.run_turn("e")
    assert await one.run_turn("f") == chained(turn("e"), 0, None)
    assert one.items_read == 2
    assert await one.run_turn("g") == chained(turn("e") + turn("f"), 0, None)
    assert one.items_read == 0


@pytest.mark.anyio
async def test_a_leaf_another_process_moved_is_read_again(
    process: Callable[..., Process],
) -> None:
    one, two = process(), process()
    await one.run_turn("a")  # items 0, 1
    await one.run_turn("b")  # items 2, 3; `one` knows the window by this turn

    assert await two.store.set_leaf(CHAT, 1) == 1  # the last turn stays the same

    assert await one.run_turn("c") == chained(turn("a"), 0, None)
    assert one.items_read == 2
    window = chained(turn("a"), 0, None) + chained(turn("c"), 4, 1)
    assert await one.run_turn("d") == window  # known again, by turn c
    assert one.items_read == 0


@pytest.mark.anyio
async def test_a_window_that_held_an_item_another_process_deleted_is_read_again(
    process: Callable[..., Process],
) -> None:
    one, two = process(), process()
    await one.run_turn("a")  # items 0, 1
    await one.run_turn("b")  # items 2, 3; `one` knows the window by this turn

    assert await two.store.delete_items(CHAT, [1]) == [1]  # inside it; the leaf stays

    kept = [turn("a")[0].placed(0, None), *chained(turn("b"), 2, 0)]
    assert await one.run_turn("c") == kept
    assert one.items_read == 3
    assert await one.run_turn("d") == kept[1:] + chained(turn("c"), 4, 3)
    assert one.items_read == 0  # known again, by turn c


@pytest.mark.anyio
async def test_a_window_that_held_an_item_its_own_process_deleted_is_read_again(
    process: Callable[..., Process],
) -> None:
    one = process()
    await one.run_turn("a")
    await one.run_turn("b")

    assert await one.store.delete_items(CHAT, [2]) == [2]

    assert await one.run_turn("c") == [*chained(turn("a"), 0, None), turn("b")[1].placed(3, 1)]
    assert one.items_read == 3


@pytest.mark.anyio
async def test_a_save_without_the_lock_or_a_turn_that_failed_leave_no_stale_window(
    process: Callable[..., Process],
) -> None:
    one = process()
    await one.run_turn("a")
    await one.store.save_turn(CHAT, "unlocked", turn("b"))  # placed by the store, without a lock
    assert await one.run_turn("c") == chained(turn("a") + turn("b"), 0, None)
    assert one.items_read == LIMIT

    token = uuid.uuid4().hex
    assert await one.store.begin_turn(CHAT, token, 30, LIMIT) is not None
    await one.store.release_turn(CHAT, token)  # the model call failed: nothing saved
    assert await one.run_turn("d") == chained(turn("b") + turn("c"), 2, 1)
    assert one.items_read == LIMIT


@pytest.mark.anyio
async def test_a_known_window_follows_trimming_and_a_longer_window(
    process: Callable[..., Process], admin: redis.Redis
) -> None:
    one = process(max_messages=3)
    await one.run_turn("a")
    await one.run_turn("b")  # 4 messages saved, the oldest dropped: 3 kept
    assert await one.run_turn("c") == chained([turn("a")[1], *turn("b")], 1, 0)
    assert one.items_read == 0

    sent = hgets(admin)
    state = await one.store.begin_turn(CHAT, "longer", 30, 10)  # more than the turns read...
    assert hgets(admin) == sent  # ...but trimming left no more than the process knows
    assert state is not None
    assert state.messages == chained([turn("b")[1], *turn("c")], 3, 2)
    assert state == await one.store.load_window(CHAT, 10)

    untrimmed, other = process(), ChatRef("public", "untrimmed")
    for label in "abc":
        await untrimmed.run_turn(label, other)
    sent = hgets(admin)
    state = await untrimmed.store.begin_turn(other, "longer", 30, 10)  # more than it knows: read
    assert hgets(admin) == sent + 6
    assert state is not None
    assert state.messages == chained(turn("a") + turn("b") + turn("c"), 0, None)
    assert state == await untrimmed.store.load_window(other, 10)


@pytest.mark.anyio
async def test_a_known_window_begins_with_the_same_state_as_a_read(
    process: Callable[..., Process], admin: redis.Redis
) -> None:
    one = process()
    await one.store.set_chat_system(CHAT, "Be brief.")
    for n in range(4):
        await one.run_turn(f"{n}")
    sent = hgets(admin)

    known = await one.store.begin_turn(CHAT, "next", 30, LIMIT)
    assert hgets(admin) == sent
    assert known == await one.store.load_window(CHAT, LIMIT)
    assert known is not None
    assert (known.chat_system, known.leaf, known.next_id) == ("Be brief.", 7, 8)
    assert known.messages == chained(turn("2") + turn("3"), 4, 3)
    await one.store.release_turn(CHAT, "next")

    longer = await one.store.begin_turn(CHAT, "longer", 30, LIMIT + 2)  # more than it knows: read
    assert longer == await one.store.load_window(CHAT, LIMIT + 2)
    assert longer is not None
    assert longer.messages == chained(turn("1") + turn("2") + turn("3"), 2, 1)


def test_known_windows_are_bounded_by_chats_and_by_characters() -> None:
    windows = KnownWindows(max_chats=2, max_chars=10)
    chats = [ChatRef("public", f"c{n}") for n in range(3)]
    windows.read(chats[0], "t", ["abc"], 5)
    windows.read(chats[1], "t", ["def"], 5)

    windows.read(chats[2], "t", ["ghi"], 5)  # a third chat: the others are forgotten
    assert (windows.get(chats[0]), windows.get(chats[1])) == (None, None)
    assert len(windows) == 1

    windows.read(chats[2], "t", ["0123456789"], 5)  # replaces its own: 10 characters fit
    assert len(windows) == 1
    windows.read(chats[0], "t", ["x"], 5)  # 11 in all: everything goes first
    assert (windows.get(chats[2]), len(windows)) == (None, 1)

    windows.read(chats[1], "t", ["y" * 11], 5)  # larger than the bound: not kept at all
    assert len(windows) == 0

    windows.read(chats[0], "t", ["abc"], 5)
    windows.forget(chats[0])  # a deleted chat's window goes, and its characters with it
    windows.read(chats[1], "t", ["0123456789"], 5)
    assert (windows.get(chats[0]), len(windows)) == (None, 1)
    windows.forget(chats[2])  # one never kept


def stored(*ids: int) -> tuple[str, ...]:
    """The stored texts of items `ids`, each under the one numbered before it."""
    return tuple(Message("user", "q", created_at=1.0).placed(n, n - 1).dumps() for n in ids)


def test_a_save_only_continues_the_window_read_under_its_own_lock() -> None:
    windows = KnownWindows(max_chats=10, max_chars=1000)
    windows.read(CHAT, "mine", stored(1, 2, 3), 3)
    assert windows.usable(CHAT, 3) is None  # a read alone is not trusted

    windows.saved(CHAT, "someone-else", "t1", stored(4, 5), parent=3, first=1)
    unchanged = windows.get(CHAT)
    assert unchanged is not None
    assert (unchanged.raws, unchanged.turn) == (stored(1, 2, 3), None)

    windows.saved(CHAT, "mine", "t1", stored(4, 5), parent=3, first=1)
    known = windows.get(CHAT)
    assert known is not None
    assert (known.raws, known.turn, known.token, known.whole) == (
        stored(3, 4, 5),
        "t1",
        None,
        False,
    )
    assert windows.usable(CHAT, 3) == known
    assert windows.usable(CHAT, 4) is None  # more than it holds of a longer path


def test_a_save_that_trimmed_the_window_knows_the_whole_path() -> None:
    windows = KnownWindows(max_chats=10, max_chars=1000)
    windows.read(CHAT, "mine", stored(3, 4, 5), 3)

    windows.saved(CHAT, "mine", "t2", stored(6, 7), parent=5, first=5)  # below 5: dropped

    known = windows.get(CHAT)
    assert known is not None
    assert (known.raws, known.turn, known.whole) == (stored(5, 6, 7), "t2", True)
    assert windows.usable(CHAT, 10) == known


@pytest.mark.parametrize("parent", [1, 2, None])
def test_a_save_under_another_item_than_the_windows_last_forgets_the_window(
    parent: int | None,
) -> None:
    # A /v1 edit: the lock read the leaf's path, the turn went under a message inside it.
    windows = KnownWindows(max_chats=10, max_chars=1000)
    windows.read(CHAT, "mine", stored(1, 2, 3), 3)

    windows.saved(CHAT, "mine", "t1", stored(4, 5), parent=parent, first=1)

    assert windows.get(CHAT) is None
    assert windows.usable(CHAT, 3) is None


def test_a_trimmed_window_longer_than_its_limit_is_not_the_whole_path() -> None:
    windows = KnownWindows(max_chats=10, max_chars=1000)
    windows.read(CHAT, "mine", stored(3, 4, 5), 3)

    windows.saved(CHAT, "mine", "t2", stored(6, 7), parent=5, first=4)  # 4..7 kept: 4 > 3

    known = windows.get(CHAT)
    assert known is not None
    assert (known.raws, known.whole) == (stored(5, 6, 7), False)
    assert windows.usable(CHAT, 4) is None


@pytest.mark.anyio
async def test_a_chat_deleted_during_a_turn_is_not_known_from_before(
    process: Callable[..., Process],
) -> None:
    one, two = process(), process()
    await one.run_turn("a")
    token = uuid.uuid4().hex
    state = await one.store.begin_turn(CHAT, token, 30, LIMIT)
    assert state is not None
    await two.store.delete_chat(CHAT)  # deletes take no lock
    placed = chained(turn("b"), state.next_id, state.leaf)  # under an item now gone
    with pytest.raises(NotFound):  # nothing brings the chat back
        await one.store.save_turn(CHAT, "after-delete", placed, lock_token=token, release=True)

    assert await one.run_turn("c") == []
    assert (await one.store.load_history(CHAT)).messages == chained(turn("c"), 0, None)


def test_a_fork_continues_the_window_it_read_only_when_nothing_was_written_since() -> None:
    windows = KnownWindows(max_chats=10, max_chars=1000)
    windows.read(CHAT, "fork", stored(1, 2, 3), 3, seen="t0")

    windows.forked(CHAT, "t1", stored(4, 5), parent=3, first=1, previous="t0")

    known = windows.get(CHAT)
    assert known is not None
    assert (known.raws, known.turn, known.token) == (stored(3, 4, 5), "t1", None)
    assert windows.usable(CHAT, 3) == known


@pytest.mark.parametrize(
    ("seen", "previous", "parent"),
    [
        ("t0", "t-other", 3),  # another save came between the read and this one
        ("t0", None, 3),  # a delete of items came between (it removes the last turn)
        (None, None, 3),  # the read saw no last turn: a delete would not show
        ("t0", "t0", 2),  # under another item than the read's last
    ],
)
def test_a_fork_whose_read_may_be_stale_forgets_the_window(
    seen: str | None, previous: str | None, parent: int
) -> None:
    windows = KnownWindows(max_chats=10, max_chars=1000)
    windows.read(CHAT, "fork", stored(1, 2, 3), 3, seen=seen)

    windows.forked(CHAT, "t1", stored(4, 5), parent=parent, first=1, previous=previous)

    assert windows.get(CHAT) is None


def test_a_fork_after_a_known_window_it_did_not_read_forgets_it() -> None:
    windows = KnownWindows(max_chats=10, max_chars=1000)
    windows.read(CHAT, "mine", stored(1, 2, 3), 3)
    windows.saved(CHAT, "mine", "t1", stored(4, 5), parent=3, first=1)

    windows.forked(CHAT, "t2", stored(6, 7), parent=5, first=1, previous="t1")

    assert windows.get(CHAT) is None


@pytest.mark.anyio
async def test_a_chain_of_forks_in_one_process_is_not_sent_its_window(
    process: Callable[..., Process],
) -> None:
    one, fresh = process(), process()
    await one.run_turn("a")  # items 0, 1
    await one.run_turn("b")  # items 2, 3

    assert await one.run_fork("c", 3) == chained(turn("a") + turn("b"), 0, None)
    assert one.items_read == 0  # the turn's own window, continued at its last item
    window = await one.run_fork("d", 5)  # under the reply the fork before saved

    assert one.items_read == 0
    assert window == chained(turn("b") + turn("c"), 2, 1)
    assert window == (await fresh.store.load_window(CHAT, LIMIT, 5)).messages


@pytest.mark.anyio
async def test_a_fork_chain_that_another_process_wrote_into_is_read_again(
    process: Callable[..., Process],
) -> None:
    one, two = process(), process()
    await one.run_turn("a")  # items 0, 1
    await one.run_fork("b", 1)  # items 2, 3
    await two.run_fork("c", 1)  # items 4, 5: a sibling branch, saved by another process

    window = await one.run_fork("d", 3)

    assert one.items_read == LIMIT
    assert window == chained(turn("a") + turn("b"), 0, None)


@pytest.mark.anyio
async def test_a_fork_whose_path_lost_an_item_while_it_ran_is_read_again(
    process: Callable[..., Process],
) -> None:
    one, two = process(), process()
    await one.run_turn("a")  # items 0, 1
    await one.run_turn("b")  # items 2, 3
    token = uuid.uuid4().hex
    state = await one.store.begin_turn(CHAT, token, 30, LIMIT, 3, reserve=2)
    assert state is not None
    assert await two.store.delete_items(CHAT, [0]) == [0]  # forks take no lock: it goes on
    await one.store.save_turn(CHAT, "fork", chained(turn("c"), state.next_id, 3))

    window = await one.run_fork("d", 5)

    assert one.items_read > 0
    assert window == (await two.store.load_window(CHAT, LIMIT, 5)).messages
    assert all(m.id != 0 for m in window)


@pytest.mark.anyio
async def test_a_turn_at_the_known_windows_last_item_named_is_not_sent_it(
    process: Callable[..., Process],
) -> None:
    one = process()
    await one.run_turn("a")
    await one.run_turn("b")  # items 2, 3: the leaf
    token = uuid.uuid4().hex
    before = hgets(one.admin)

    state = await one.store.begin_turn(CHAT, token, 30, LIMIT, 3)  # the leaf, named

    assert hgets(one.admin) == before
    assert state is not None
    assert state.messages == chained(turn("a") + turn("b"), 0, None)
    await one.store.release_turn(CHAT, token)

"""Chats stored before chats were trees are read as trees: each a chain of items numbered from its
first kept message, the newest its leaf.

Redis upgrades a chat kept as a list (`chat:{...}:msgs`) in place, in whichever script touches it
first; SQLite upgrades the whole file at opening (migration 6). Each old layout is written here
by hand, as the release before wrote it. A SQLite file of the release before chats had metadata
(migration 7) keeps its chats and takes metadata. Idempotency records written before they were
linked to their turns' items (`:idems`; SQLite's migration 12) still replay.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from chatproxy.config import RedisSettings
from chatproxy.store.base import Store
from chatproxy.store.idempotency import IdempotencyClaim, IdempotentResult
from chatproxy.store.items import ChatInfo, ChatRef, Message, chained
from chatproxy.store.redis import RedisStore
from chatproxy.store.sqlite import SqliteStore
from chatproxy.store.sqlite_schema import MIGRATIONS
from chatproxy.store.sqlite_tree import children_of, newest_descendant

CHAT = ChatRef("public", "x")
OTHER = ChatRef("public", "y")
LIST, META = "chat:{public:x}:msgs", "chat:{public:x}:meta"
ITEMS, KIDS = "chat:{public:x}:items", "chat:{public:x}:kids"
TOKENS = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
# The messages of an old chat, oldest first, as the release before stored them: no id, no parent.
OLD = [
    {"role": "user", "content": "q1", "created_at": 1000.0},
    {"role": "assistant", "content": "a1", "created_at": 1000.5, "tokens": TOKENS, "model": "m"},
    {"role": "user", "content": "q2 ✓", "created_at": 1001.0},
    {"role": "assistant", "content": "a2", "created_at": 1001.5, "tokens": TOKENS, "model": "m"},
]
# What the old chat's record said of it.
OLD_META = {
    "created": "900.0",
    "updated": "1001.5",
    "messages": "4",
    "last_turn": "old-turn",
    "title": "q1",
    "prompt_tokens": "6",
    "completion_tokens": "4",
    "total_tokens": "10",
}
OLD_TTL = 1000  # seconds, on the old chat's keys
OLD_INFO = ChatInfo("x", 900.0, 1001.5, 4, "q1", {name: 2 * n for name, n in TOKENS.items()})


def old_text(data: dict[str, Any]) -> str:
    """A message's stored text in the release before: compact JSON starting with its role."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def old_messages() -> list[Message]:
    """The old chat's messages as read back, before they are placed."""
    return [Message.from_json(data) for data in OLD]


def new_turn() -> list[Message]:
    return [
        Message("user", "q3", created_at=2000.0),
        Message("assistant", "a3", created_at=2000.5, usage=TOKENS, model="m"),
    ]


# -- Redis: each chat upgraded in place by the first script that touches it ------------------


@pytest.fixture
async def open_redis(redis_url: str, anyio_backend: str) -> AsyncIterator[Callable[..., Store]]:
    """`open_redis(ttl_seconds)`: a Redis store on the test's Redis, closed after."""
    made: list[Store] = []

    def make(ttl_seconds: int | None) -> Store:
        made.append(RedisStore.from_settings(RedisSettings(redis_url, False, 2.0), ttl_seconds))
        return made[-1]

    yield make
    for store in made:
        await store.close()


def write_old_chat(admin: redis.Redis, chat: ChatRef, appended: int | None) -> None:
    """Write `OLD` as the release before kept a chat: a list and a meta hash (with `appended`
    since messages were numbered, without it before), both with a TTL."""
    msgs, meta = f"chat:{chat.slot}:msgs", f"chat:{chat.slot}:meta"
    admin.rpush(msgs, *(old_text(data) for data in OLD))
    fields = dict(OLD_META) if appended is None else {**OLD_META, "appended": str(appended)}
    admin.hset(meta, mapping=fields)
    admin.expire(msgs, OLD_TTL)
    admin.expire(meta, OLD_TTL)


def first_of(appended: int | None) -> int:
    """The id the old chat's first kept message gets: its number among all it ever had."""
    return (appended or len(OLD)) - len(OLD)


def assert_upgraded(admin: redis.Redis, first: int) -> None:
    """The old list is gone, and its messages are items `first`... chained, in the new keys."""
    assert admin.exists(LIST) == 0
    items = admin.hgetall(ITEMS)
    ids = [first + n for n in range(len(OLD))]
    assert sorted(items, key=int) == [str(n) for n in ids]
    for n, data in zip(ids, OLD, strict=True):
        parent = n - 1 if n > first else None
        assert items[str(n)].startswith(f'{{"id":{n},"parent":{json.dumps(parent)},"role":')
        assert json.loads(items[str(n)]) == {"id": n, "parent": parent, **data}
    # Each child numbered right after its parent (the first messages': 0) is found by its own
    # parent; `:kids` lists only the others.
    assert admin.hgetall(KIDS) == ({} if first == 0 else {"root": str(first)})
    leaf, kept_from, appended, count = admin.hmget(META, "leaf", "first", "appended", "messages")
    assert (leaf, kept_from, appended, count) == tuple(map(str, (ids[-1], first, ids[-1] + 1, 4)))


def kept_keys(first: int) -> tuple[str, ...]:
    """The keys an upgraded chat has: `:kids` only if a first message is not item 0."""
    return (ITEMS, META, KIDS) if first else (ITEMS, META)


def assert_upgraded_then_grown(admin: redis.Redis, first: int) -> None:
    """The old list is gone and the new turn hangs under the old newest message."""
    assert admin.exists(LIST) == 0
    assert admin.hlen(ITEMS) == len(OLD) + 2
    assert admin.hget(KIDS, str(first + 3)) is None  # the next number: found by its parent
    new_ids = (first + 4, first + 5)
    assert admin.hmget(META, "leaf", "appended", "messages") == [
        str(new_ids[1]),
        str(new_ids[1] + 1),
        "6",
    ]


async def touch_first(store: Store, how: str, placed: list[Message]) -> None:
    """Touch the old chat one way, checking what that answers."""
    if how == "load_history":
        assert (await store.load_history(CHAT)).messages == placed
    elif how == "load_window":
        assert (await store.load_window(CHAT, 3)).messages == placed[-3:]
    elif how == "load_page":
        assert (await store.load_page(CHAT, 2, placed[-1].id)).messages == placed[1:3]
    elif how == "begin_turn":
        state = await store.begin_turn(CHAT, "tok", 30, 2)
        assert state is not None
        assert (state.messages, state.leaf) == (placed[-2:], placed[-1].id)
    elif how == "children":
        first = placed[0].id
        assert await store.children(CHAT, [None, first]) == [[first], [placed[1].id]]
    elif how == "load_items":
        assert await store.load_items(CHAT, [m.id or 0 for m in placed]) == placed
    elif how == "load_tree":
        tree = await store.load_tree(CHAT)
        assert tree is not None
        assert (tree.items, tree.leaf) == (placed, placed[-1].id)
    else:  # a retry of the old chat's last turn is still known
        assert await store.save_turn(CHAT, "old-turn", new_turn()) is False


@pytest.mark.anyio
@pytest.mark.parametrize(
    "how",
    [
        "load_history",
        "load_window",
        "load_page",
        "begin_turn",
        "children",
        "load_items",
        "load_tree",
        "save_turn",
    ],
)
@pytest.mark.parametrize("appended", [None, 7], ids=["unnumbered", "numbered"])
async def test_an_old_redis_chat_is_upgraded_by_the_first_script_that_touches_it(
    open_redis: Callable[..., Store], admin: redis.Redis, how: str, appended: int | None
) -> None:
    store = open_redis(None)  # no TTL of its own: the old chat's is kept
    write_old_chat(admin, CHAT, appended)
    write_old_chat(admin, OTHER, appended)
    first = first_of(appended)
    placed = chained(old_messages(), first, None)

    await touch_first(store, how, placed)

    assert_upgraded(admin, first)
    for key in kept_keys(first):
        assert 0 < admin.ttl(key) <= OLD_TTL
    assert admin.exists("chat:{public:y}:msgs") == 1  # each chat is upgraded on its own
    state = await store.load_history(CHAT)
    assert (state.exists, state.messages) == (True, placed)
    assert (state.leaf, state.next_id) == (first + 3, first + 4)
    assert await store.chat_info(CHAT) == OLD_INFO


@pytest.mark.anyio
@pytest.mark.parametrize("appended", [None, 7], ids=["unnumbered", "numbered"])
async def test_a_turn_on_an_old_redis_chat_continues_it_under_its_newest_message(
    open_redis: Callable[..., Store], admin: redis.Redis, appended: int | None
) -> None:
    store = open_redis(3600)
    write_old_chat(admin, CHAT, appended)
    first = first_of(appended)
    placed = chained(old_messages(), first, None)

    state = await store.begin_turn(CHAT, "tok", 30, 3)
    assert state is not None
    assert (state.messages, state.leaf, state.next_id) == (placed[-3:], first + 3, first + 4)
    assert await store.save_turn(CHAT, "t-new", new_turn(), lock_token="tok", release=True)

    assert_upgraded_then_grown(admin, first)
    history = placed + chained(new_turn(), first + 4, first + 3)
    assert (await store.load_history(CHAT)).messages == history
    assert (await store.load_page(CHAT, 2, first + 4)).messages == placed[2:]
    assert (await store.load_page(CHAT, 5, first + 1)).messages == placed[:1]
    info = await store.chat_info(CHAT)
    assert info is not None
    tokens = {name: 3 * n for name, n in TOKENS.items()}
    assert (info.created, info.messages, info.title, info.tokens) == (900.0, 6, "q1", tokens)
    assert info.updated > 1001.5
    for key in kept_keys(first):  # the store's own TTL from now on
        assert OLD_TTL < admin.ttl(key) <= 3600


@pytest.mark.anyio
async def test_a_tree_whose_kids_list_every_child_reads_each_child_once(
    open_redis: Callable[..., Store], admin: redis.Redis
) -> None:
    """The first release of trees listed every child in `:kids`, the one numbered right after
    its parent too; this one leaves that child out. A tree written the first way reads the same."""
    store = open_redis(None)
    chain = [Message("user", "q1"), Message("assistant", "a1"), Message("user", "q2")]
    assert await store.save_turn(CHAT, "t1", chain)
    regenerated = Message("assistant", "a1 again").placed(3, 0)
    assert await store.save_turn(CHAT, "t2", [regenerated])
    admin.delete(KIDS)
    admin.hset(KIDS, mapping={"root": "0", "0": "1,3", "1": "2"})  # as that release wrote it

    assert await store.children(CHAT, [None, 0, 1, 2, 3]) == [[0], [1, 3], [2], [], []]
    assert await store.set_leaf(CHAT, 0, descend=True) == 3  # the newest child
    assert await store.set_leaf(CHAT, 1, descend=True) == 2
    edit = Message("user", "q1 edited").placed(4, None)
    assert await store.save_turn(CHAT, "t3", [edit])
    assert await store.children(CHAT, [None]) == [[0, 4]]
    assert admin.hget(KIDS, "root") == "0,4"


@pytest.mark.anyio
@pytest.mark.parametrize("appended", [None, 7], ids=["unnumbered", "numbered"])
async def test_items_deleted_from_an_old_redis_chat_are_deleted_from_its_upgrade(
    open_redis: Callable[..., Store], admin: redis.Redis, appended: int | None
) -> None:
    store = open_redis(None)
    write_old_chat(admin, CHAT, appended)
    first = first_of(appended)
    placed = chained(old_messages(), first, None)

    assert await store.delete_items(CHAT, [first + 1, first + 3]) == [first + 1, first + 3]

    assert admin.exists(LIST) == 0
    state = await store.load_history(CHAT)
    assert state.messages == [placed[0], placed[2].placed(first + 2, first)]
    assert (state.leaf, state.next_id) == (first + 2, first + 4)
    assert await store.children(CHAT, [None, first]) == [[first], [first + 2]]
    assert admin.hmget(META, "messages", "last_turn") == ["2", None]


@pytest.mark.anyio
async def test_what_the_release_before_writes_to_an_upgraded_chat_continues_its_path(
    open_redis: Callable[..., Store], admin: redis.Redis
) -> None:
    # A rolling deploy: an instance of the release before appends to a chat already upgraded,
    # to a list of its own (it saw none), counting on from the meta's `appended`.
    store = open_redis(None)
    await store.save_turn(CHAT, "t1", new_turn())  # items 0, 1
    admin.rpush(LIST, *(old_text(data) for data in OLD[:2]))
    admin.hset(META, mapping={"appended": "4", "messages": "2", "last_turn": "old"})

    history = (await store.load_history(CHAT)).messages

    assert [(m.id, m.parent) for m in history] == [(0, None), (1, 0), (2, 1), (3, 2)]
    assert [m.content for m in history[2:]] == [data["content"] for data in OLD[:2]]
    assert await store.children(CHAT, [None, 1]) == [[0], [2]]
    assert admin.hmget(META, "first", "messages", "leaf") == ["0", "4", "3"]
    assert admin.exists(LIST) == 0


@pytest.mark.anyio
async def test_an_old_redis_chat_is_listed_refreshed_and_deleted_whole_before_its_upgrade(
    open_redis: Callable[..., Store], admin: redis.Redis
) -> None:
    store = open_redis(3600)
    write_old_chat(admin, CHAT, 7)

    assert await store.chat_info(CHAT) == OLD_INFO  # its record is as it was
    assert admin.exists(LIST) == 1
    assert OLD_TTL < admin.ttl(LIST) <= 3600  # read: every key of the chat is refreshed

    assert await store.delete_chat(CHAT) is True
    assert admin.keys("chat:*") == []
    assert (await store.load_history(CHAT)).exists is False


# -- Redis: a chat trimmed before trimming listed the paths it starts ----------------------------


def hvals(admin: redis.Redis) -> int:
    """How many HVALS Redis has run (in scripts too): a read of every item of a chat."""
    return int(admin.info("commandstats").get("cmdstat_hvals", {}).get("calls", 0))


@pytest.mark.anyio
async def test_a_chat_trimmed_before_trimming_listed_its_first_messages_lists_them_all(
    open_redis: Callable[..., Store], admin: redis.Redis
) -> None:
    """Until trimming (MAX_CHAT_MESSAGES) listed under `:kids` 'root' the children it kept of the
    items it dropped, it deleted those items' `:kids` with them: of their children only the
    lowest id kept was still found (by itself), the others were no one's. Such a chat lists
    them all once read, with a single look at every item."""
    store = open_redis(3600)
    asked = [Message("user", "q0"), Message("assistant", "a0")]
    asked += [Message("user", "q1"), Message("assistant", "a1")]
    assert await store.save_turn(CHAT, "t1", chained(asked, 0, None))
    edit = [Message("user", "q1 edited"), Message("assistant", "a1 again")]
    assert await store.save_turn(CHAT, "t2", chained(edit, 4, 1))  # `:kids` 1 -> 4
    # That release's trim of the turn that left 4 items of 6: the two lowest and their `:kids`
    # deleted, the lowest id kept noted.
    admin.hdel(ITEMS, "0", "1")
    admin.hdel(KIDS, "0", "s0", "1", "s1")
    admin.hset(META, mapping={"first": "2", "messages": "4"})
    assert admin.exists(KIDS) == 0
    looked = hvals(admin)

    assert await store.children(CHAT, [None, 1, 2, 4]) == [[2, 4], [], [3], [5]]

    assert hvals(admin) == looked + 1
    assert admin.hget(KIDS, "root") == "4"
    assert 3000 < admin.ttl(KIDS) <= 3600  # made with the chat's TTL
    assert await store.children(CHAT, [None]) == [[2, 4]]
    assert hvals(admin) == looked + 1  # once for the chat
    fresh = ChatRef("public", "fresh")  # never trimmed: no item below the first is looked for
    assert await store.save_turn(fresh, "t1", chained(asked, 0, None))
    assert await store.children(fresh, [None, 1]) == [[0], [2]]
    assert hvals(admin) == looked + 1


# -- SQLite: the file is upgraded at opening (migration 6) -------------------------------------


def file_at(path: Path, version: int) -> sqlite3.Connection:
    """A new file at schema `version`, as the release that went no further made it."""
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:version]:
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {version}")
    return db


def old_file(path: Path, expires_at: float) -> None:
    """Build a file at schema version 5 with the rows the release before wrote: the old chat
    (trimmed: its messages 3-6 kept of 7), a chat of two messages, one with only a prompt."""
    db = file_at(path, 5)
    chats = [
        ("x", None, "old-turn", 4, 7, "q1", 6, 4, 10),
        ("y", None, "y-turn", 2, 2, "q1", 3, 2, 5),
        ("z", "Be brief.", None, 0, 0, None, 0, 0, 0),
    ]
    db.executemany(
        "INSERT INTO chats (tenant, chat_id, system, created, updated, expires_at, last_turn,"
        " message_count, appended, title, prompt_tokens, completion_tokens, total_tokens)"
        " VALUES ('public', ?, ?, 900.0, 1001.5, ?, ?, ?, ?, ?, ?, ?, ?)",
        [(chat_id, system, expires_at, *rest) for chat_id, system, *rest in chats],
    )
    rows = []  # the two chats' messages written in turns, interleaved
    for n in range(len(OLD)):
        rows.append(("x", 3 + n, old_text(OLD[n])))
        if n < 2:
            rows.append(("y", n, old_text(OLD[n])))
    db.executemany(
        "INSERT INTO messages (tenant, chat_id, seq, body) VALUES ('public', ?, ?, ?)", rows
    )
    db.commit()
    db.close()


@pytest.fixture
async def old_sqlite(tmp_path: Path, anyio_backend: str) -> AsyncIterator[tuple[Store, Path]]:
    """An old file (see `old_file`), opened by the store; and its path."""
    path = tmp_path / "chats.sqlite3"
    old_file(path, expires_at=time.time() + OLD_TTL)
    store = SqliteStore(str(path), 3600)
    yield store, path
    await store.close()


def test_the_sqlite_upgrade_numbers_each_chat_from_its_first_kept_message(
    old_sqlite: tuple[Store, Path],
) -> None:
    _, path = old_sqlite
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        rows = db.execute(
            "SELECT chat_id, seq, parent, body FROM messages ORDER BY chat_id, seq"
        ).fetchall()
        chats = db.execute("SELECT chat_id, leaf, appended, expires_at FROM chats").fetchall()
    finally:
        db.close()
    firsts = {"x": 3, "y": 0}
    assert [(chat_id, seq, parent) for chat_id, seq, parent, _ in rows] == [
        ("x", 3, None),
        ("x", 4, 3),
        ("x", 5, 4),
        ("x", 6, 5),
        ("y", 0, None),
        ("y", 1, 0),
    ]
    for chat_id, seq, parent, body in rows:
        data = OLD[seq - firsts[chat_id]]
        assert json.loads(body) == {"id": seq, "parent": parent, **data}
    assert sorted((chat_id, leaf, appended) for chat_id, leaf, appended, _ in chats) == [
        ("x", 6, 7),
        ("y", 1, 2),
        ("z", None, 0),
    ]
    assert all(0 < expires - time.time() <= OLD_TTL for *_, expires in chats)  # TTL kept


@pytest.mark.anyio
async def test_an_old_sqlite_chat_is_read_and_continued_under_its_newest_message(
    old_sqlite: tuple[Store, Path],
) -> None:
    store, _ = old_sqlite
    placed = chained(old_messages(), 3, None)
    assert await store.chat_info(CHAT) == OLD_INFO
    state = await store.load_history(CHAT)
    assert (state.exists, state.messages, state.leaf, state.next_id) == (True, placed, 6, 7)
    assert (await store.load_page(CHAT, 2, 6)).messages == placed[1:3]
    assert (await store.load_page(CHAT, 5, 2)).messages == []  # below the first kept
    assert await store.children(CHAT, [None, 3]) == [[3], [4]]
    assert (await store.load_history(OTHER)).messages == chained(old_messages()[:2], 0, None)
    only_prompt = await store.load_history(ChatRef("public", "z"))
    assert (only_prompt.exists, only_prompt.chat_system) == (True, "Be brief.")
    assert (only_prompt.messages, only_prompt.leaf, only_prompt.next_id) == ([], None, 0)

    assert await store.save_turn(CHAT, "old-turn", new_turn()) is False  # still known
    begun = await store.begin_turn(CHAT, "tok", 30, 3)
    assert begun is not None
    assert (begun.messages, begun.leaf) == (placed[-3:], 6)
    assert await store.save_turn(CHAT, "t-new", new_turn(), lock_token="tok", release=True)

    history = placed + chained(new_turn(), 7, 6)
    assert (await store.load_history(CHAT)).messages == history
    info = await store.chat_info(CHAT)
    assert info is not None
    tokens = {name: 3 * n for name, n in TOKENS.items()}
    assert (info.created, info.messages, info.title, info.tokens) == (900.0, 6, "q1", tokens)


def assert_latest_schema(path: Path) -> None:
    """The file at `path` has seen every migration."""
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
    finally:
        db.close()


# -- SQLite: a file of the release before metadata (migration 7) --------------------------------


def file_before_metadata(path: Path) -> None:
    """Build a file at schema version 6 with one chat of two items, as that release wrote it."""
    db = file_at(path, 6)
    db.execute(
        "INSERT INTO chats (tenant, chat_id, system, created, updated, last_turn, message_count,"
        " appended, title, prompt_tokens, completion_tokens, total_tokens, leaf)"
        " VALUES ('public', 'x', 'Be brief.', 900.0, 1001.5, 'old-turn', 2, 2, 'q1', 3, 2, 5, 1)"
    )
    items = chained(old_messages()[:2], 0, None)
    db.executemany(
        "INSERT INTO messages (tenant, chat_id, seq, parent, body) VALUES ('public', 'x', ?, ?, ?)",
        [(m.id, m.parent, m.dumps()) for m in items],
    )
    db.commit()
    db.close()


@pytest.mark.anyio
async def test_a_sqlite_file_before_metadata_keeps_its_chats_and_takes_metadata(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chats.sqlite3"
    file_before_metadata(path)
    store = SqliteStore(str(path), None)
    try:
        info = await store.chat_info(CHAT)
        assert info == ChatInfo("x", 900.0, 1001.5, 2, "q1", TOKENS, None)
        state = await store.load_history(CHAT)
        assert (state.chat_system, state.messages) == (
            "Be brief.",
            chained(old_messages()[:2], 0, None),
        )
        assert await store.save_turn(CHAT, "old-turn", new_turn()) is False  # still known

        await store.set_chat_metadata(CHAT, {"topic": "old"})

        info = await store.chat_info(CHAT)
        assert info is not None
        assert (info.metadata, info.messages, info.title) == ({"topic": "old"}, 2, "q1")
    finally:
        await store.close()
    assert_latest_schema(path)


# -- SQLite: a file of the release before messages_by_parent_and_seq (migration 10) --------------


def branched_file(path: Path) -> None:
    """Build a file at schema version 9 with one chat of a first message and two answers to it,
    as that release wrote it."""
    db = file_at(path, 9)
    db.execute(
        "INSERT INTO chats (tenant, chat_id, created, updated, message_count, appended, leaf)"
        " VALUES ('public', 'x', 900.0, 1001.5, 3, 3, 2)"
    )
    first, answer = chained(old_messages()[:2], 0, None)
    again = Message("assistant", "a1 again", id=2, parent=0)
    db.executemany(
        "INSERT INTO messages (tenant, chat_id, seq, parent, body) VALUES ('public', 'x', ?, ?, ?)",
        [(m.id, m.parent, m.dumps()) for m in (first, answer, again)],
    )
    db.commit()
    db.close()


@pytest.mark.anyio
async def test_a_sqlite_file_before_the_children_index_finds_a_messages_children_by_it(
    tmp_path: Path,
) -> None:
    """A message's children are asked for by parent: each such query of the store searches an
    index by the parent, where one ordered by seq read the whole chat for each parent."""
    path = tmp_path / "chats.sqlite3"
    branched_file(path)
    store = SqliteStore(str(path), None)
    try:
        assert await store.children(CHAT, [None, 0]) == [[0], [1, 2]]
        assert (await store.load_history(CHAT)).messages[-1].content == "a1 again"
    finally:
        await store.close()
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone() == (len(MIGRATIONS),)
        ran: list[str] = []
        db.set_trace_callback(ran.append)
        assert children_of(db, CHAT, 0) == [1, 2]
        assert newest_descendant(db, CHAT, 0) == 2
        db.set_trace_callback(None)
        by_parent = [query for query in ran if "parent = " in query]
        assert len(by_parent) >= 2
        for query in by_parent:
            plan = " ".join(row[3] for row in db.execute(f"EXPLAIN QUERY PLAN {query}"))
            assert "parent=?" in plan, (query, plan)
    finally:
        db.close()


# -- Idempotency records written before they were linked to their turns' items -----------------


def keyed(key: str, content: str) -> tuple[IdempotencyClaim, IdempotentResult]:
    """The claim a finished record answers with `content`, and the answer that records it."""
    response = json.dumps({"content": content})
    return IdempotencyClaim("done", response), IdempotentResult(key, "body", response)


@pytest.mark.anyio
async def test_an_old_redis_idempotency_record_still_replays_and_outlives_its_chat(
    open_redis: Callable[..., Store], admin: redis.Redis
) -> None:
    """The release before kept no links (`:idems`): its records answer as they did, and deleting
    their chat cannot find them, so they stay until their 24 hours end; a record written now is
    deleted with its items beside them."""
    store = open_redis(3600)
    assert await store.save_turn(CHAT, "t1", new_turn())  # items 0, 1
    old, _ = keyed("old", "old answer")
    record = "chat:{public:x}:idem:old"
    admin.hset(record, mapping={"state": "done", "fingerprint": "body", "response": old.response})
    admin.expire(record, 24 * 3600)
    fresh, answer = keyed("new", "new answer")
    assert await store.claim_idempotency(CHAT, "new", "body", 30) == IdempotencyClaim("new")
    assert await store.save_turn(CHAT, "t2", new_turn(), idempotent=answer)  # items 2, 3

    assert await store.claim_idempotency(CHAT, "old", "body", 30) == old
    assert await store.claim_idempotency(CHAT, "new", "body", 30) == fresh
    assert await store.delete_items(CHAT, [0, 3]) == [0, 3]
    assert await store.claim_idempotency(CHAT, "new", "body", 30) == IdempotencyClaim("new")
    assert await store.claim_idempotency(CHAT, "old", "body", 30) == old

    assert await store.delete_chat(CHAT) is True
    assert await store.claim_idempotency(CHAT, "old", "body", 30) == old
    assert 0 < admin.ttl(record) <= 24 * 3600


def file_before_links(path: Path) -> None:
    """Build a file at schema version 10 with a chat of two items, a finished record of its
    turn, a claim still pending, and a finished record of another chat, as that release wrote
    them."""
    db = file_at(path, 10)
    db.executemany(
        "INSERT INTO chats (tenant, chat_id, created, updated, message_count, appended, leaf)"
        " VALUES ('public', ?, 900.0, 1001.5, 2, 2, 1)",
        [("x",), ("y",)],
    )
    items = chained(old_messages()[:2], 0, None)
    db.executemany(
        "INSERT INTO messages (tenant, chat_id, seq, parent, body) VALUES (?, ?, ?, ?, ?)",
        [("public", chat, m.id, m.parent, m.dumps()) for chat in "xy" for m in items],
    )
    old, _ = keyed("old", "old answer")
    expires = time.time() + 24 * 3600
    db.executemany(
        "INSERT INTO idempotency VALUES ('public', ?, ?, 'body', ?, ?, ?)",
        [
            ("x", "old", "done", old.response, expires),
            ("x", "running", "pending", None, time.time() + 30),
            ("y", "old", "done", old.response, expires),
        ],
    )
    db.commit()
    db.close()


@pytest.mark.anyio
async def test_an_old_sqlite_idempotency_record_still_replays_and_goes_with_its_chat(
    tmp_path: Path,
) -> None:
    """A record of a file before links (migration 12) answers as it did; deleting items cannot
    tell whether its turn stored them, so it stays then, but deleting its chat finds it by the
    chat and deletes it; a pending claim stays with its running turn."""
    path = tmp_path / "chats.sqlite3"
    file_before_links(path)
    store = SqliteStore(str(path), None)
    try:
        old, _ = keyed("old", "old answer")
        fresh, answer = keyed("new", "new answer")
        assert await store.claim_idempotency(CHAT, "old", "body", 30) == old
        assert await store.claim_idempotency(CHAT, "new", "body", 30) == IdempotencyClaim("new")
        assert await store.save_turn(CHAT, "t2", new_turn(), idempotent=answer)  # items 2, 3
        assert await store.claim_idempotency(CHAT, "new", "body", 30) == fresh

        assert await store.delete_items(CHAT, [0, 2]) == [0, 2]
        assert await store.claim_idempotency(CHAT, "new", "body", 30) == IdempotencyClaim("new")
        assert await store.claim_idempotency(CHAT, "old", "body", 30) == old

        assert await store.delete_chat(CHAT) is True
        assert await store.claim_idempotency(CHAT, "old", "body", 30) == IdempotencyClaim("new")
        pending = IdempotencyClaim("pending")
        assert await store.claim_idempotency(CHAT, "running", "body", 30) == pending
        assert await store.claim_idempotency(OTHER, "old", "body", 30) == old
    finally:
        await store.close()
    assert_latest_schema(path)

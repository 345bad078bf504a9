"""Own the SQL of a chat's tree in the SQLite store: placing a turn's items, reading a path by
walking parents up from its last item (one recursive query on the chat's index, as far as the
window reaches), children, moving the leaf, and reading or removing given items. A message's
`seq` is its item id."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from chatproxy.errors import NotFound
from chatproxy.jsontext import compact
from chatproxy.store.items import ROOT, ChatRef, Message, chained

# A chat's items among a JSON array of ids.
GIVEN = "tenant = ? AND chat_id = ? AND seq IN (SELECT value FROM json_each(?))"

# The items that start a path: without a parent, or under one trimming dropped.
FIRST_MESSAGES = (
    "SELECT seq FROM messages WHERE tenant = ? AND chat_id = ? AND parent IS NULL UNION"
    " SELECT seq FROM messages WHERE tenant = ? AND chat_id = ? AND parent <"
    " (SELECT MIN(seq) FROM messages WHERE tenant = ? AND chat_id = ?) ORDER BY seq"
)

# Walks from one item up its parents; the outer query stops the walk once it has its rows.
PATH = (
    "WITH RECURSIVE up(seq, parent, body) AS ("
    " SELECT seq, parent, body FROM messages WHERE tenant = ? AND chat_id = ? AND seq = ?"
    " UNION ALL"
    " SELECT m.seq, m.parent, m.body FROM messages AS m JOIN up"
    " ON m.tenant = ? AND m.chat_id = ? AND m.seq = up.parent)"
    " SELECT seq, body FROM up WHERE seq < ? LIMIT ?"
)


# The ids of a path, walking up from one item: as `PATH`, without reading the items.
PATH_IDS = (
    "WITH RECURSIVE up(seq, parent) AS ("
    " SELECT seq, parent FROM messages WHERE tenant = ? AND chat_id = ? AND seq = ?"
    " UNION ALL"
    " SELECT m.seq, m.parent FROM messages AS m JOIN up"
    " ON m.tenant = ? AND m.chat_id = ? AND m.seq = up.parent)"
    " SELECT seq FROM up LIMIT ?"
)

# Whether an item is on the path ending at another: a walk up from it, no higher than its id.
ON_PATH = (
    "WITH RECURSIVE up(seq, parent) AS ("
    " SELECT seq, parent FROM messages WHERE tenant = ? AND chat_id = ? AND seq = ?"
    " UNION ALL"
    " SELECT m.seq, m.parent FROM messages AS m JOIN up"
    " ON m.tenant = ? AND m.chat_id = ? AND m.seq = up.parent WHERE up.seq > ?)"
    " SELECT 1 FROM up WHERE seq = ?"
)


def placed_before(
    db: sqlite3.Connection, chat: ChatRef, messages: Sequence[Message], *, fork: bool
) -> bool:
    """Whether a save of placed `messages` landed before (a `fork`'s, retried); raise
    `NotFound` if their first's id holds another item (a fork's: the chat was replaced while it
    ran), or the item it goes under is gone: deleted while the turn ran, or for a fork trimmed
    away too (a locked turn's path may start below the lowest id kept)."""
    head = messages[0] if messages and messages[0].id is not None else None
    if head is None:
        return False
    if fork:
        found = stored_text(db, chat, head.id)  # type: ignore[arg-type]
        if found == head.dumps():
            return True
        if found is not None:
            raise NotFound("the message this turn goes under was deleted")
    if head.parent is not None and not has_item(db, chat, head.parent):
        lowest = db.execute(
            "SELECT MIN(seq) FROM messages WHERE tenant = ? AND chat_id = ?",
            (chat.tenant, chat.chat_id),
        ).fetchone()[0]
        if fork or lowest is None or head.parent >= lowest:
            raise NotFound("the message this turn goes under was deleted")
    return False


def has_item(db: sqlite3.Connection, chat: ChatRef, item_id: int) -> bool:
    """Whether the chat holds the item."""
    row = db.execute(
        "SELECT 1 FROM messages WHERE tenant = ? AND chat_id = ? AND seq = ?",
        (chat.tenant, chat.chat_id, item_id),
    ).fetchone()
    return row is not None


def stored_text(db: sqlite3.Connection, chat: ChatRef, item_id: int) -> str | None:
    """The item's stored text (`Message.dumps`), or None if the chat does not hold it."""
    row = db.execute(
        "SELECT body FROM messages WHERE tenant = ? AND chat_id = ? AND seq = ?",
        (chat.tenant, chat.chat_id, item_id),
    ).fetchone()
    return None if row is None else str(row[0])


def parent_of(db: sqlite3.Connection, chat: ChatRef, item_id: int) -> int | bool | None:
    """The item's parent (None for a first message), or False if the chat does not hold it."""
    row = db.execute(
        "SELECT parent FROM messages WHERE tenant = ? AND chat_id = ? AND seq = ?",
        (chat.tenant, chat.chat_id, item_id),
    ).fetchone()
    return False if row is None else row[0]


def on_path(db: sqlite3.Connection, chat: ChatRef, end: int, item_id: int) -> bool:
    """Whether the item is on the path that ends at `end` (`ROOT`: none), walking up from `end`
    no further than the item's id (ids grow down a path)."""
    if end == ROOT:
        return False
    ids = (chat.tenant, chat.chat_id)
    row = db.execute(ON_PATH, (*ids, end, *ids, item_id, item_id)).fetchone()
    return row is not None


def path_bodies(
    db: sqlite3.Connection,
    chat: ChatRef,
    start: int | None,
    limit: int | None,
    below: int | None = None,
) -> list[str]:
    """The stored texts of the newest `limit` items (None: all) of the path that ends at
    `start`, oldest first, leaving out items numbered `below` or above."""
    if start is None or start == ROOT or limit == 0:
        return []
    params = (chat.tenant, chat.chat_id, start, chat.tenant, chat.chat_id)
    bound = below if below is not None else 2**62
    rows = db.execute(PATH, (*params, bound, -1 if limit is None else limit)).fetchall()
    return [body for _, body in reversed(rows)]


def path_ids(db: sqlite3.Connection, chat: ChatRef, start: int, limit: int) -> list[int]:
    """The ids of the first `limit` items of the path walking up from `start` (none if the chat
    does not hold it), newest first."""
    ids = (chat.tenant, chat.chat_id)
    return [seq for (seq,) in db.execute(PATH_IDS, (*ids, start, *ids, limit)).fetchall()]


def place(messages: Sequence[Message], next_id: int, leaf: int | None) -> list[Message]:
    """Give the messages that have no id the chat's next ids, chained under the leaf (see
    `Store.save_turn`)."""
    if all(message.id is not None for message in messages):
        return list(messages)
    return chained(messages, next_id, leaf)


def children_of(db: sqlite3.Connection, chat: ChatRef, parent: int | None) -> list[int]:
    """The ids of the item's children in the order they were added (none for an item the chat
    no longer holds: trimming dropped it); for None, the items that start a path: those without
    a parent, and those whose parent trimming dropped (numbered below every item kept)."""
    if parent is not None and not has_item(db, chat, parent):
        return []
    if parent is None:
        rows = db.execute(FIRST_MESSAGES, (chat.tenant, chat.chat_id) * 3).fetchall()
    else:
        query = "SELECT seq FROM messages WHERE tenant = ? AND chat_id = ? AND parent = ?"
        rows = db.execute(query + " ORDER BY seq", (chat.tenant, chat.chat_id, parent)).fetchall()
    return [seq for (seq,) in rows]


def newest_descendant(db: sqlite3.Connection, chat: ChatRef, item_id: int) -> int:
    """Follow the newest child down from the item to a leaf."""
    while True:
        row = db.execute(
            "SELECT MAX(seq) FROM messages WHERE tenant = ? AND chat_id = ? AND parent = ?",
            (chat.tenant, chat.chat_id, item_id),
        ).fetchone()
        if row is None or row[0] is None:
            return item_id
        item_id = row[0]


def item_bodies(db: sqlite3.Connection, chat: ChatRef, ids: Sequence[int]) -> dict[int, str]:
    """The stored texts of those of the items `ids` the chat holds, by id."""
    query = f"SELECT seq, body FROM messages WHERE {GIVEN}"  # noqa: S608 (a constant)
    return dict(db.execute(query, (chat.tenant, chat.chat_id, compact(list(ids)))).fetchall())


def parents_of(db: sqlite3.Connection, chat: ChatRef, ids: Sequence[int]) -> dict[int, int | None]:
    """The parents of those of the items `ids` the chat holds, by id."""
    query = f"SELECT seq, parent FROM messages WHERE {GIVEN}"  # noqa: S608 (a constant)
    return dict(db.execute(query, (chat.tenant, chat.chat_id, compact(list(ids)))).fetchall())


def remove_items(
    db: sqlite3.Connection, chat: ChatRef, parents: dict[int, int | None]
) -> dict[int, int | None]:
    """Delete the items of `parents` (id: its parent); each child of one that stays goes under
    the removed item's nearest ancestor that stays (None if none does), in its stored text too.
    Return that ancestor of each item removed."""
    survivors: dict[int, int | None] = {}
    for item, parent in parents.items():
        while parent in parents:
            parent = parents[parent]
        survivors[item] = parent if parent is None or has_item(db, chat, parent) else None
    for item, survivor in survivors.items():
        db.execute(
            "UPDATE messages SET parent = ?, body = json_set(body, '$.parent', ?)"
            " WHERE tenant = ? AND chat_id = ? AND parent = ?",
            (survivor, survivor, chat.tenant, chat.chat_id, item),
        )
    db.execute(
        f"DELETE FROM messages WHERE {GIVEN}",  # noqa: S608 (a constant)
        (chat.tenant, chat.chat_id, compact(list(parents))),
    )
    return survivors

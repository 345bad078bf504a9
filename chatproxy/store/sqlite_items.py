"""Own the SQLite store's operations on given items of a chat, each in the caller's transaction
over `sqlite_tree.py`'s SQL: reading them (`Store.load_items`), removing them
(`Store.delete_items`: their children moved up, the chat's summaries dropped) and moving the leaf
to one (`Store.set_leaf`). An edit is refused while a turn holds the chat, whose save would undo
it."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatproxy.errors import ChatBusy
from chatproxy.store.sqlite_chat import live_chat, lock_holder, touch
from chatproxy.store.sqlite_summaries import drop_summaries
from chatproxy.store.sqlite_tree import (
    has_item,
    item_bodies,
    newest_descendant,
    parents_of,
    remove_items,
)

if TYPE_CHECKING:
    from chatproxy.store.items import ChatRef


def live_item_bodies(
    db: sqlite3.Connection, chat: ChatRef, ids: Sequence[int], expires_at: float | None
) -> dict[int, str]:
    """The stored texts of those of the items `ids` the chat holds, by id, its TTL refreshed
    (none if the chat does not exist)."""
    if live_chat(db, chat) is None:
        return {}
    touch(db, chat, expires_at)
    return item_bodies(db, chat, ids)


def delete_given(
    db: sqlite3.Connection, chat: ChatRef, ids: Sequence[int], now: float, expires_at: float | None
) -> list[int]:
    """Remove those of the items `ids` the chat holds, as its latest activity (the leaf, if
    removed, goes to its nearest ancestor kept); return their ids in order."""
    row = live_chat(db, chat)
    parents = parents_of(db, chat, ids) if row is not None and ids else {}
    if row is None or not parents:
        return []
    if lock_holder(db, chat, now) is not None:
        raise ChatBusy()  # the turn's save would go under an item removed
    survivors = remove_items(db, chat, parents)
    drop_summaries(db, chat)
    leaf = row.leaf
    if leaf is not None and leaf in survivors:  # removed: its nearest ancestor kept
        leaf = survivors[leaf]
    db.execute(
        "UPDATE chats SET leaf = ?, last_turn = NULL, message_count = message_count - ?,"
        " updated = ?, expires_at = ? WHERE tenant = ? AND chat_id = ?",
        (leaf, len(parents), now, expires_at, chat.tenant, chat.chat_id),
    )
    return sorted(parents)


def move_leaf(
    db: sqlite3.Connection, chat: ChatRef, item_id: int, *, descend: bool, expires_at: float | None
) -> int | None:
    """Make the item (with `descend`, its newest descendant) the chat's leaf, refreshing the
    chat's TTL; return the new leaf, None if the chat does not hold the item."""
    if live_chat(db, chat) is None or not has_item(db, chat, item_id):
        return None
    if lock_holder(db, chat, time.time()) is not None:
        raise ChatBusy()  # the turn's save would move the leaf again
    leaf = newest_descendant(db, chat, item_id) if descend else item_id
    db.execute(
        "UPDATE chats SET leaf = ? WHERE tenant = ? AND chat_id = ?",
        (leaf, chat.tenant, chat.chat_id),
    )
    touch(db, chat, expires_at)
    return leaf

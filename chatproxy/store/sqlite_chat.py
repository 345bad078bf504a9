"""Own how every operation of the SQLite store first finds a chat's row: alive, or expired (and
then deleted with its items); its TTL refreshed on a read, and who holds its turn lock; and the
global prompt. Beneath
`sqlite_rows.py`, for the modules that need only these (`sqlite_export.py`, `sqlite_items.py`,
`sqlite_paths.py`)."""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from chatproxy.store.items import ChatRef


def lock_holder(db: sqlite3.Connection, chat: ChatRef, now: float) -> str | None:
    """The token that holds the chat's unexpired turn lock, if one does."""
    row = db.execute(
        "SELECT token, expires_at FROM turn_locks WHERE tenant = ? AND chat_id = ?",
        (chat.tenant, chat.chat_id),
    ).fetchone()
    return str(row[0]) if row is not None and row[1] > now else None


def delete_rows(db: sqlite3.Connection, chat: ChatRef) -> None:
    """Delete the chat's messages and record (its lock and idempotency records stay)."""
    params = (chat.tenant, chat.chat_id)
    db.execute("DELETE FROM messages WHERE tenant = ? AND chat_id = ?", params)
    db.execute("DELETE FROM summaries WHERE tenant = ? AND chat_id = ?", params)
    db.execute("DELETE FROM chats WHERE tenant = ? AND chat_id = ?", params)


class LiveChat(NamedTuple):
    """What a chat's row says of it."""

    system: str | None
    last_turn: str | None
    next_id: int
    leaf: int | None
    settings: str | None


def live_chat(db: sqlite3.Connection, chat: ChatRef) -> LiveChat | None:
    """Return the row of an unexpired chat; delete an expired one."""
    row = db.execute(
        "SELECT system, last_turn, appended, leaf, settings, expires_at FROM chats"
        " WHERE tenant = ? AND chat_id = ?",
        (chat.tenant, chat.chat_id),
    ).fetchone()
    if row is None:
        return None
    if row[5] is not None and row[5] <= time.time():
        delete_rows(db, chat)
        return None
    return LiveChat(*row[:5])


def touch(db: sqlite3.Connection, chat: ChatRef, expires_at: float | None) -> None:
    """Refresh the chat's TTL on a read."""
    db.execute(
        "UPDATE chats SET expires_at = ? WHERE tenant = ? AND chat_id = ?",
        (expires_at, chat.tenant, chat.chat_id),
    )


def global_system_of(db: sqlite3.Connection) -> str | None:
    """The stored global system prompt, None if never set."""
    row = db.execute("SELECT value FROM settings WHERE key = 'system'").fetchone()
    return None if row is None else str(row[0])

"""Own the SQL of summaries (compaction) in the SQLite store: the `summaries` table, by the last
item each covers, the fence a summary being written is checked against (the chat's creation
and its `pruned` count of removals of items), and the claim under which one is made, a row of
`summary_claims` with its holder's token and an expiry."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatproxy.jsontext import compact
from chatproxy.store.summary import Summary

if TYPE_CHECKING:  # named in annotations only, which keeps the SQLite store's floors low
    from chatproxy.store.items import ChatRef, Message


def fence_of(db: sqlite3.Connection, chat: ChatRef) -> str | None:
    """The chat's fence now (None: no such chat)."""
    query = "SELECT created, pruned FROM chats WHERE tenant = ? AND chat_id = ?"
    found = db.execute(query, chat_params(chat)).fetchone()
    return None if found is None else f"{found[0]!r}:{found[1]}"


def chat_params(chat: ChatRef) -> tuple[str, str]:
    return chat.tenant, chat.chat_id


def summaries_at(db: sqlite3.Connection, chat: ChatRef, ids: Sequence[int]) -> dict[int, Summary]:
    """The chat's summaries that end at any of the items `ids`, by that item."""
    rows = db.execute(
        "SELECT last_id, body FROM summaries WHERE tenant = ? AND chat_id = ?"
        " AND last_id IN (SELECT value FROM json_each(?))",
        (*chat_params(chat), compact(list(ids))),
    ).fetchall()
    return {last: Summary.from_json(json.loads(body)) for last, body in rows}


def newest_summary(db: sqlite3.Connection, chat: ChatRef, ids: Sequence[int]) -> Summary | None:
    """The summary that ends at the newest of the items `ids` (ids grow along a path)."""
    found = summaries_at(db, chat, ids)
    return found[max(found)] if found else None


def summarized_up_to(db: sqlite3.Connection, chat: ChatRef, item_id: int) -> bool:
    """Whether the chat has a summary that ends at the item or at one numbered below it."""
    query = "SELECT 1 FROM summaries WHERE tenant = ? AND chat_id = ? AND last_id <= ? LIMIT 1"
    return db.execute(query, (*chat_params(chat), item_id)).fetchone() is not None


def keep_summary(db: sqlite3.Connection, chat: ChatRef, summary: Summary) -> None:
    """Write the summary, in place of one that ends at the same item."""
    db.execute(
        "INSERT OR REPLACE INTO summaries (tenant, chat_id, last_id, body) VALUES (?, ?, ?, ?)",
        (*chat_params(chat), summary.last, compact(summary.to_json())),
    )


def drop_summaries(db: sqlite3.Connection, chat: ChatRef) -> None:
    """Remove every summary of the chat and move its fence (items were removed)."""
    params = chat_params(chat)
    db.execute("DELETE FROM summaries WHERE tenant = ? AND chat_id = ?", params)
    db.execute("UPDATE chats SET pruned = pruned + 1 WHERE tenant = ? AND chat_id = ?", params)


def window_summary(
    db: sqlite3.Connection, chat: ChatRef, messages: Sequence[Message]
) -> Summary | None:
    """The newest summary of an item a window read, or of the one just above them."""
    if not messages:
        return None
    ids = [message.id for message in messages] + [messages[0].parent]
    return newest_summary(db, chat, [item for item in ids if item is not None])


def unsummarized(
    db: sqlite3.Connection, chat: ChatRef, messages: Sequence[Message]
) -> tuple[Summary | None, list[Message]]:
    """The newest summary of an item of the path `messages`, and those after it."""
    summary = newest_summary(db, chat, [m.id for m in messages if m.id is not None])
    return summary, [m for m in messages if summary is None or (m.id or 0) > summary.last]


def claim(db: sqlite3.Connection, chat: ChatRef, token: str, lease_seconds: float) -> bool:
    """`Store.claim_summary` in the transaction `db`: taken if no other token holds it
    unexpired, renewed if `token` does."""
    now = time.time()
    taken = db.execute(
        "INSERT INTO summary_claims (tenant, chat_id, token, expires_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (tenant, chat_id) DO UPDATE"
        " SET token = excluded.token, expires_at = excluded.expires_at"
        " WHERE summary_claims.token = excluded.token OR summary_claims.expires_at <= ?",
        (*chat_params(chat), token, now + lease_seconds, now),
    )
    return taken.rowcount == 1


def release(db: sqlite3.Connection, chat: ChatRef, token: str) -> None:
    """`Store.release_summary` in the transaction `db`."""
    query = "DELETE FROM summary_claims WHERE tenant = ? AND chat_id = ? AND token = ?"
    db.execute(query, (*chat_params(chat), token))

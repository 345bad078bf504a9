"""Own the SQL that several operations of the SQLite store share: a chat's row (created,
trimmed; alive or expired, touched and deleted in `sqlite_chat.py`), its own columns, the
tenant's listing, its turn lock, Idempotency-Key claims, the global prompt, and the sweep of
expired rows."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from chatproxy.errors import NotFound
from chatproxy.store.idempotency import IdempotencyClaim, IdempotentResult
from chatproxy.store.items import ChatInfo, ChatRef, Message, title_of, usage_of
from chatproxy.store.sqlite_chat import delete_rows, lock_holder
from chatproxy.tokens import USAGE_FIELDS

SWEEP_BATCH = 200
DAY_SECONDS = 86_400.0  # rate-limit entries kept at least this long (a window of a day)

# A constant column list (never user input) for the chat listing queries.
INFO_COLUMNS = (
    "chat_id, created, updated, message_count, title, metadata,"
    " prompt_tokens, completion_tokens, total_tokens"
)


def info_of(row: tuple[Any, ...]) -> ChatInfo:
    """Build a listing entry from a row of `INFO_COLUMNS`."""
    chat_id, created, updated, messages, title, metadata, *tokens = row
    usage = dict(zip(USAGE_FIELDS, tokens, strict=True))
    own = None if metadata is None else json.loads(metadata)
    return ChatInfo(chat_id, created, updated, messages, title, usage, own)


def listed_chats(
    db: sqlite3.Connection,
    tenant: str,
    limit: int,
    before: tuple[float | None, str],
    after: str | None,
) -> list[ChatInfo]:
    """A page of the tenant's listing (`Store.list_chats`): by last activity, then chat id;
    `before`: the activity and id of the last chat of the page before."""
    updated, last = math.inf if before[0] is None else before[0], before[1]
    if after is not None:
        found = db.execute(
            "SELECT updated FROM chats WHERE tenant = ? AND chat_id = ?", (tenant, after)
        ).fetchone()
        if found is None:
            raise NotFound(f"no chat {after!r} in the listing")
        updated, last = found[0], after
    rows = db.execute(
        f"SELECT {INFO_COLUMNS} FROM chats WHERE tenant = ?"  # noqa: S608
        " AND (expires_at IS NULL OR expires_at > ?)"
        " AND (updated, chat_id) < (?, ?) ORDER BY updated DESC, chat_id DESC LIMIT ?",
        (tenant, time.time(), updated, last, limit),
    ).fetchall()
    return [info_of(row) for row in rows]


def take_lock(db: sqlite3.Connection, chat: ChatRef, token: str, lease_seconds: float) -> bool:
    """Take the chat's turn lock unless another token holds an unexpired one; its holder may
    take it again (a call re-sent after a lost reply)."""
    now = time.time()
    row = db.execute(
        "SELECT token, expires_at FROM turn_locks WHERE tenant = ? AND chat_id = ?",
        (chat.tenant, chat.chat_id),
    ).fetchone()
    if row is not None and row[1] > now and row[0] != token:
        return False
    db.execute(
        "INSERT OR REPLACE INTO turn_locks VALUES (?, ?, ?, ?)",
        (chat.tenant, chat.chat_id, token, now + lease_seconds),
    )
    return True


def release_lock(db: sqlite3.Connection, chat: ChatRef, token: str) -> None:
    """Release the chat's turn lock if `token` holds it."""
    db.execute(
        "DELETE FROM turn_locks WHERE tenant = ? AND chat_id = ? AND token = ?",
        (chat.tenant, chat.chat_id, token),
    )


def holds_lock(db: sqlite3.Connection, chat: ChatRef, token: str, now: float) -> bool:
    """Whether `token` holds the chat's unexpired turn lock."""
    return lock_holder(db, chat, now) == token


def set_aside(db: sqlite3.Connection, chat: ChatRef, next_id: int) -> None:
    """Make `next_id` the chat's next id, the ids below it set aside for a turn."""
    db.execute(
        "UPDATE chats SET appended = MAX(appended, ?) WHERE tenant = ? AND chat_id = ?",
        (next_id, chat.tenant, chat.chat_id),
    )


def ensure_chat(
    db: sqlite3.Connection, chat: ChatRef, now: float, expires_at: float | None
) -> None:
    """Create the chat's row unless it has one."""
    db.execute(
        "INSERT INTO chats (tenant, chat_id, created, updated, expires_at)"
        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, chat_id) DO NOTHING",
        (chat.tenant, chat.chat_id, now, now, expires_at),
    )


def set_column(db: sqlite3.Connection, chat: ChatRef, column: str, value: str | None) -> None:
    """Set (or with None clear) one of the chat's own columns: its system prompt, settings or
    metadata."""
    if column not in ("system", "settings", "metadata"):
        raise ValueError(f"not a chat's own column: {column}")
    db.execute(
        f"UPDATE chats SET {column} = ? WHERE tenant = ? AND chat_id = ?",  # noqa: S608
        (value, chat.tenant, chat.chat_id),
    )


def trim(db: sqlite3.Connection, chat: ChatRef, most: int) -> None:
    """Keep only the newest `most` messages of the chat (MAX_CHAT_MESSAGES): those of the
    highest item ids (`seq`), as Redis keeps them, whatever order they were written in (a fork
    saves its messages, numbered below a later turn's, after it). The finished idempotency
    records of the turns whose items all went (the last below the first kept) go with them."""
    params = (chat.tenant, chat.chat_id)
    dropped = db.execute(
        "DELETE FROM messages WHERE tenant = ? AND chat_id = ? AND seq <= ("
        " SELECT seq FROM messages WHERE tenant = ? AND chat_id = ?"
        " ORDER BY seq DESC LIMIT 1 OFFSET ?)",
        (*params, *params, most),
    ).rowcount
    if dropped:
        db.execute(
            "DELETE FROM idempotency WHERE tenant = ? AND chat_id = ? AND state = 'done'"
            " AND last_item < (SELECT MIN(seq) FROM messages WHERE tenant = ? AND chat_id = ?)",
            (*params, *params),
        )
    db.execute(
        "UPDATE chats SET message_count = MIN(message_count, ?) WHERE tenant = ? AND chat_id = ?",
        (most, *params),
    )
    db.execute(  # and the summaries that end at an item dropped
        "DELETE FROM summaries WHERE tenant = ? AND chat_id = ? AND last_id < ("
        " SELECT MIN(seq) FROM messages WHERE tenant = ? AND chat_id = ?)",
        (*params, *params),
    )


def sweep(db: sqlite3.Connection, now: float, entries_kept: float = DAY_SECONDS) -> None:
    """Delete expired chats (a batch), records, locks and claims, and the rate-limit entries
    older than `entries_kept` seconds (the longest moving window counted in the file)."""
    expired = db.execute(
        "SELECT tenant, chat_id FROM chats WHERE expires_at <= ? LIMIT ?", (now, SWEEP_BATCH)
    ).fetchall()
    for tenant, chat_id in expired:
        delete_rows(db, ChatRef(tenant, chat_id))
    db.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,))
    db.execute("DELETE FROM turn_locks WHERE expires_at <= ?", (now,))
    db.execute("DELETE FROM summary_claims WHERE expires_at <= ?", (now,))
    db.execute("DELETE FROM limit_counters WHERE expires_at <= ?", (now,))
    db.execute("DELETE FROM limit_entries WHERE at <= ?", (now - entries_kept,))


def append_turn(
    db: sqlite3.Connection,
    chat: ChatRef,
    turn_id: str,
    messages: Sequence[Message],
    now: float,
    expires_at: float | None,
) -> None:
    """Add a turn's items (placed: each with its id and parent), make the last the leaf, and
    count them, their tokens and the turn id in the chat's row (the title too, if it has none
    yet)."""
    db.executemany(
        "INSERT INTO messages (tenant, chat_id, seq, parent, body) VALUES (?, ?, ?, ?, ?)",
        [(chat.tenant, chat.chat_id, m.id, m.parent, m.dumps()) for m in messages],
    )
    last = messages[-1].id if messages else None
    db.execute(
        "UPDATE chats SET updated = ?, expires_at = ?, last_turn = ?,"
        " message_count = message_count + ?, appended = MAX(appended, ?),"
        " leaf = COALESCE(?, leaf),"
        " title = COALESCE(title, ?), prompt_tokens = prompt_tokens + ?,"
        " completion_tokens = completion_tokens + ?, total_tokens = total_tokens + ?"
        " WHERE tenant = ? AND chat_id = ?",
        (
            now,
            expires_at,
            turn_id,
            len(messages),
            -1 if last is None else last + 1,
            last,
            title_of(messages),
            *usage_of(messages).values(),
            chat.tenant,
            chat.chat_id,
        ),
    )


def record_answer(
    db: sqlite3.Connection,
    chat: ChatRef,
    idempotent: IdempotentResult,
    expires_at: float,
    stored: Sequence[Message],
) -> None:
    """Keep the answer of a finished turn under its idempotency key until `expires_at`, linked
    to the items the turn `stored` (placed: their ids are consecutive)."""
    ids = [m.id for m in stored if m.id is not None]
    db.execute(
        "INSERT OR REPLACE INTO idempotency (tenant, chat_id, key, fingerprint, state, response,"
        " expires_at, first_item, last_item) VALUES (?, ?, ?, ?, 'done', ?, ?, ?, ?)",
        (
            chat.tenant,
            chat.chat_id,
            idempotent.key,
            idempotent.fingerprint,
            idempotent.response,
            expires_at,
            min(ids, default=None),
            max(ids, default=None),
        ),
    )


def forget_answers(db: sqlite3.Connection, chat: ChatRef, ids: Sequence[int] | None) -> None:
    """Delete the chat's finished idempotency records of the turns that stored one of the items
    `ids` (None: every one, those written before they were linked too); a pending claim stays
    with its running turn."""
    params = (chat.tenant, chat.chat_id)
    if ids is None:
        db.execute(
            "DELETE FROM idempotency WHERE tenant = ? AND chat_id = ? AND state = 'done'", params
        )
        return
    db.executemany(
        "DELETE FROM idempotency WHERE tenant = ? AND chat_id = ? AND state = 'done'"
        " AND first_item <= ? AND last_item >= ?",
        [(*params, item, item) for item in ids],
    )


def claim(
    db: sqlite3.Connection, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
) -> IdempotencyClaim:
    """`Store.claim_idempotency` in the transaction `db`."""
    now = time.time()
    row = db.execute(
        "SELECT fingerprint, state, response FROM idempotency"
        " WHERE tenant = ? AND chat_id = ? AND key = ? AND expires_at > ?",
        (chat.tenant, chat.chat_id, key, now),
    ).fetchone()
    if row is None:
        db.execute(
            "INSERT OR REPLACE INTO idempotency (tenant, chat_id, key, fingerprint, state,"
            " expires_at) VALUES (?, ?, ?, ?, 'pending', ?)",
            (chat.tenant, chat.chat_id, key, fingerprint, now + lease_seconds),
        )
        return IdempotencyClaim("new")
    if row[0] != fingerprint:
        return IdempotencyClaim("mismatch")
    if row[1] == "pending":
        return IdempotencyClaim("pending")
    return IdempotencyClaim("done", row[2])


def release_claim(db: sqlite3.Connection, chat: ChatRef, key: str, fingerprint: str) -> None:
    """`Store.release_idempotency` in the transaction `db`."""
    db.execute(
        "DELETE FROM idempotency WHERE tenant = ? AND chat_id = ? AND key = ?"
        " AND fingerprint = ? AND state = 'pending'",
        (chat.tenant, chat.chat_id, key, fingerprint),
    )

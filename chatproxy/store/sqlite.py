"""Own the embedded SQLite backend, used when no Redis is configured.

Same behaviour as Redis, TTL included: a chat whose `expires_at` has passed is treated as gone and
deleted on its next access, and expired chats are swept from time to time. Turn locks and
idempotency records are rows with an expiry, checked inside the same `BEGIN IMMEDIATE`
transactions as the writes they guard. WAL mode, one connection per thread, schema changes as
numbered migrations.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from chatproxy.errors import StoreError, StoreUnavailable, TurnLeaseLost
from chatproxy.store.base import (
    IDEMPOTENCY_TTL_SECONDS,
    ChatInfo,
    ChatRef,
    ChatState,
    IdempotencyClaim,
    IdempotentResult,
    Message,
    title_of,
    usage_of,
)
from chatproxy.tokens import USAGE_FIELDS

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE chats (
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        system TEXT,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        expires_at REAL,
        last_turn TEXT,
        message_count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (tenant, chat_id)
    );
    CREATE INDEX chats_expiry ON chats (expires_at) WHERE expires_at IS NOT NULL;
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        body TEXT NOT NULL
    );
    CREATE INDEX messages_by_chat ON messages (tenant, chat_id, id);
    CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
    """
    CREATE TABLE turn_locks (
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        token TEXT NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (tenant, chat_id)
    );
    CREATE TABLE idempotency (
        tenant TEXT NOT NULL,
        chat_id TEXT NOT NULL,
        key TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        state TEXT NOT NULL,
        response TEXT,
        expires_at REAL NOT NULL,
        PRIMARY KEY (tenant, chat_id, key)
    );
    CREATE INDEX idempotency_expiry ON idempotency (expires_at);
    """,
    """
    CREATE TABLE limit_counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL);
    CREATE TABLE limit_entries (key TEXT NOT NULL, at REAL NOT NULL);
    CREATE INDEX limit_entries_by_key ON limit_entries (key, at);
    """,
    """
    ALTER TABLE chats ADD COLUMN appended INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN title TEXT;
    ALTER TABLE chats ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE chats ADD COLUMN total_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN seq INTEGER NOT NULL DEFAULT 0;
    UPDATE messages SET seq = (
        SELECT COUNT(*) FROM messages AS earlier
        WHERE earlier.tenant = messages.tenant AND earlier.chat_id = messages.chat_id
        AND earlier.id < messages.id);
    UPDATE chats SET appended = (
        SELECT COUNT(*) FROM messages WHERE messages.tenant = chats.tenant
        AND messages.chat_id = chats.chat_id);
    CREATE INDEX messages_by_seq ON messages (tenant, chat_id, seq);
    CREATE INDEX chats_by_activity ON chats (tenant, updated);
    """,
    """
    ALTER TABLE chats ADD COLUMN settings TEXT;
    """,
)

SWEEP_EVERY_SECONDS = 60.0
SWEEP_BATCH = 200


class SqliteStore:
    """Chats in one SQLite file; safe to share between threads."""

    kind = "sqlite"

    def __init__(self, path: str, ttl_seconds: int | None, max_messages: int = 0):
        self._path = path
        self._ttl = ttl_seconds
        self._max_messages = max_messages
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._next_sweep = 0.0
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        with self._write() as db:
            _migrate(db)

    def ping(self) -> None:
        with _translated():
            self._db().execute("SELECT 1").fetchone()

    def load_window(self, chat: ChatRef, limit: int) -> ChatState:
        with self._write() as db:
            return self._load(db, chat, limit, None)

    def load_history(self, chat: ChatRef) -> ChatState:
        with self._write() as db:
            return self._load(db, chat, None, None)

    def load_page(self, chat: ChatRef, limit: int, before: int | None) -> ChatState:
        with self._write() as db:
            return self._load(db, chat, limit, before)

    def _load(
        self,
        db: sqlite3.Connection,
        chat: ChatRef,
        limit: int | None,
        before: int | None,
        *,
        keep: bool = False,
    ) -> ChatState:
        row = self._live_chat(db, chat)
        global_system = _global_system(db)
        if row is None:
            return ChatState(False, None, global_system, [])
        self._touch(db, chat)
        query = "SELECT seq, body FROM messages WHERE tenant = ? AND chat_id = ?"
        params: tuple[object, ...] = (chat.tenant, chat.chat_id)
        if before is not None:
            query += " AND seq < ?"
            params += (before,)
        query += " ORDER BY seq DESC"
        if limit is not None:
            query += " LIMIT ?"
            params += (limit,)
        rows = db.execute(query, params).fetchall()
        rows.reverse()
        first_id = rows[0][0] if rows else (before if before is not None else row[2])
        messages = Message.loads_many([body for _, body in rows], keep=keep)
        (settings,) = db.execute(
            "SELECT settings FROM chats WHERE tenant = ? AND chat_id = ?",
            (chat.tenant, chat.chat_id),
        ).fetchone()
        own = json.loads(settings) if settings else {}
        return ChatState(True, row[0], global_system, messages, first_id, own)

    def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        with self._write() as db:
            if self._live_chat(db, chat) is None:
                return None
            self._touch(db, chat)
            found = db.execute(
                f"SELECT {INFO_COLUMNS} FROM chats WHERE tenant = ? AND chat_id = ?",  # noqa: S608
                (chat.tenant, chat.chat_id),
            ).fetchone()
        return _info(found)

    def list_chats(self, tenant: str, limit: int, before: float | None) -> list[ChatInfo]:
        with _translated():
            rows = (
                self._db()
                .execute(
                    f"SELECT {INFO_COLUMNS} FROM chats WHERE tenant = ?"  # noqa: S608
                    " AND (expires_at IS NULL OR expires_at > ?) AND updated < ?"
                    " ORDER BY updated DESC LIMIT ?",
                    (tenant, time.time(), math.inf if before is None else before, limit),
                )
                .fetchall()
            )
        return [_info(row) for row in rows]

    def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
        release: bool = False,
    ) -> bool:
        now = time.time()
        with self._write() as db:
            holds = lock_token is not None and _holds_lock(db, chat, lock_token, now)
            if holds and release:
                _release_lock(db, chat, lock_token or "")
            row = self._live_chat(db, chat)
            if row is not None and row[1] == turn_id:
                return False
            if lock_token is not None and not holds:
                raise TurnLeaseLost()
            self._ensure_chat(db, chat, now)
            (appended,) = db.execute(
                "SELECT appended FROM chats WHERE tenant = ? AND chat_id = ?",
                (chat.tenant, chat.chat_id),
            ).fetchone()
            db.executemany(
                "INSERT INTO messages (tenant, chat_id, seq, body) VALUES (?, ?, ?, ?)",
                [
                    (chat.tenant, chat.chat_id, appended + n, m.dumps())
                    for n, m in enumerate(messages)
                ],
            )
            usage = usage_of(messages)
            db.execute(
                "UPDATE chats SET updated = ?, expires_at = ?, last_turn = ?,"
                " message_count = message_count + ?, appended = appended + ?,"
                " title = COALESCE(title, ?), prompt_tokens = prompt_tokens + ?,"
                " completion_tokens = completion_tokens + ?, total_tokens = total_tokens + ?"
                " WHERE tenant = ? AND chat_id = ?",
                (
                    now,
                    self._expiry(now),
                    turn_id,
                    len(messages),
                    len(messages),
                    title_of(messages),
                    *usage.values(),
                    chat.tenant,
                    chat.chat_id,
                ),
            )
            if self._max_messages:
                self._trim(db, chat)
            if idempotent is not None:
                db.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, 'done', ?, ?)",
                    (
                        chat.tenant,
                        chat.chat_id,
                        idempotent.key,
                        idempotent.fingerprint,
                        idempotent.response,
                        now + IDEMPOTENCY_TTL_SECONDS,
                    ),
                )
            self._maybe_sweep(db, now)
        return True

    def acquire_turn(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        with self._write() as db:
            return _take_lock(db, chat, token, lease_seconds, again=False)

    def begin_turn(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> ChatState | None:
        with self._write() as db:
            if not _take_lock(db, chat, token, lease_seconds, again=True):
                return None
            return self._load(db, chat, limit, None, keep=True)

    def release_turn(self, chat: ChatRef, token: str) -> None:
        with self._write() as db:
            _release_lock(db, chat, token)

    def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        now = time.time()
        with self._write() as db:
            row = db.execute(
                "SELECT fingerprint, state, response FROM idempotency"
                " WHERE tenant = ? AND chat_id = ? AND key = ? AND expires_at > ?",
                (chat.tenant, chat.chat_id, key, now),
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, 'pending', NULL, ?)",
                    (chat.tenant, chat.chat_id, key, fingerprint, now + lease_seconds),
                )
                return IdempotencyClaim("new")
        if row[0] != fingerprint:
            return IdempotencyClaim("mismatch")
        if row[1] == "pending":
            return IdempotencyClaim("pending")
        return IdempotencyClaim("done", row[2])

    def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        with self._write() as db:
            db.execute(
                "DELETE FROM idempotency WHERE tenant = ? AND chat_id = ? AND key = ?"
                " AND fingerprint = ? AND state = 'pending'",
                (chat.tenant, chat.chat_id, key, fingerprint),
            )

    def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        now = time.time()
        with self._write() as db:
            if content is None and self._live_chat(db, chat) is None:
                return
            self._ensure_chat(db, chat, now)
            db.execute(
                "UPDATE chats SET system = ?, updated = ?, expires_at = ?"
                " WHERE tenant = ? AND chat_id = ?",
                (content, now, self._expiry(now), chat.tenant, chat.chat_id),
            )

    def set_chat_settings(self, chat: ChatRef, settings: dict[str, Any]) -> None:
        now = time.time()
        with self._write() as db:
            if not settings and self._live_chat(db, chat) is None:
                return
            self._ensure_chat(db, chat, now)
            db.execute(
                "UPDATE chats SET settings = ?, updated = ?, expires_at = ?"
                " WHERE tenant = ? AND chat_id = ?",
                (
                    json.dumps(settings) if settings else None,
                    now,
                    self._expiry(now),
                    chat.tenant,
                    chat.chat_id,
                ),
            )

    def get_global_system(self) -> str | None:
        with _translated():
            return _global_system(self._db())

    def set_global_system(self, content: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES ('system', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (content,),
            )

    def delete_chat(self, chat: ChatRef) -> bool:
        with self._write() as db:
            existed = self._live_chat(db, chat) is not None
            _delete(db, chat)
        return existed

    def close(self) -> None:
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def _live_chat(
        self, db: sqlite3.Connection, chat: ChatRef
    ) -> tuple[str | None, str, int] | None:
        """Return (system, last_turn, appended) of an unexpired chat; delete an expired one."""
        row = db.execute(
            "SELECT system, last_turn, appended, expires_at FROM chats"
            " WHERE tenant = ? AND chat_id = ?",
            (chat.tenant, chat.chat_id),
        ).fetchone()
        if row is None:
            return None
        if row[3] is not None and row[3] <= time.time():
            _delete(db, chat)
            return None
        return row[0], row[1], row[2]

    def _touch(self, db: sqlite3.Connection, chat: ChatRef) -> None:
        """Refresh the chat's TTL on a read."""
        db.execute(
            "UPDATE chats SET expires_at = ? WHERE tenant = ? AND chat_id = ?",
            (self._expiry(), chat.tenant, chat.chat_id),
        )

    def _ensure_chat(self, db: sqlite3.Connection, chat: ChatRef, now: float) -> None:
        db.execute(
            "INSERT INTO chats (tenant, chat_id, created, updated, expires_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant, chat_id) DO NOTHING",
            (chat.tenant, chat.chat_id, now, now, self._expiry(now)),
        )

    def _trim(self, db: sqlite3.Connection, chat: ChatRef) -> None:
        """Keep only the newest MAX_CHAT_MESSAGES messages of the chat."""
        params = (chat.tenant, chat.chat_id)
        db.execute(
            "DELETE FROM messages WHERE tenant = ? AND chat_id = ? AND id <= ("
            " SELECT id FROM messages WHERE tenant = ? AND chat_id = ?"
            " ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (*params, *params, self._max_messages),
        )
        db.execute(
            "UPDATE chats SET message_count = MIN(message_count, ?)"
            " WHERE tenant = ? AND chat_id = ?",
            (self._max_messages, *params),
        )

    def _expiry(self, now: float | None = None) -> float | None:
        if self._ttl is None:
            return None
        return (now or time.time()) + self._ttl

    def _maybe_sweep(self, db: sqlite3.Connection, now: float) -> None:
        """Delete expired chats (a batch), records and locks, at most once a minute per process."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_EVERY_SECONDS
        expired = db.execute(
            "SELECT tenant, chat_id FROM chats WHERE expires_at <= ? LIMIT ?", (now, SWEEP_BATCH)
        ).fetchall()
        for tenant, chat_id in expired:
            _delete(db, ChatRef(tenant, chat_id))
        db.execute("DELETE FROM idempotency WHERE expires_at <= ?", (now,))
        db.execute("DELETE FROM turn_locks WHERE expires_at <= ?", (now,))
        db.execute("DELETE FROM limit_counters WHERE expires_at <= ?", (now,))
        db.execute("DELETE FROM limit_entries WHERE at <= ?", (now - 86_400,))

    def _db(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            # Used by this thread only; other threads touch it just to close it in close().
            connection = sqlite3.connect(
                self._path, timeout=5.0, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """Run a block as one write transaction on this store's file (for the rate limits)."""
        return self._write()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """Run the block as one `BEGIN IMMEDIATE` transaction: all of it or none of it."""
        with _translated():
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


def _migrate(db: sqlite3.Connection) -> None:
    """Apply the numbered migrations this file has not seen yet."""
    (version,) = db.execute("PRAGMA user_version").fetchone()
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in filter(str.strip, script.split(";")):
            db.execute(statement)
        db.execute(f"PRAGMA user_version = {number}")


# A constant column list (never user input) for the chat listing queries.
INFO_COLUMNS = (
    "chat_id, created, updated, message_count, title,"
    " prompt_tokens, completion_tokens, total_tokens"
)


def _info(row: tuple[Any, ...]) -> ChatInfo:
    chat_id, created, updated, messages, title, *tokens = row
    return ChatInfo(
        chat_id, created, updated, messages, title, dict(zip(USAGE_FIELDS, tokens, strict=True))
    )


def _take_lock(
    db: sqlite3.Connection, chat: ChatRef, token: str, lease_seconds: float, *, again: bool
) -> bool:
    """Take the chat's turn lock unless another token holds an unexpired one; with `again`, the
    holder may take it again (as `begin_turn` allows a call re-sent after a lost reply)."""
    now = time.time()
    row = db.execute(
        "SELECT token, expires_at FROM turn_locks WHERE tenant = ? AND chat_id = ?",
        (chat.tenant, chat.chat_id),
    ).fetchone()
    if row is not None and row[1] > now and not (again and row[0] == token):
        return False
    db.execute(
        "INSERT OR REPLACE INTO turn_locks VALUES (?, ?, ?, ?)",
        (chat.tenant, chat.chat_id, token, now + lease_seconds),
    )
    return True


def _release_lock(db: sqlite3.Connection, chat: ChatRef, token: str) -> None:
    db.execute(
        "DELETE FROM turn_locks WHERE tenant = ? AND chat_id = ? AND token = ?",
        (chat.tenant, chat.chat_id, token),
    )


def _holds_lock(db: sqlite3.Connection, chat: ChatRef, token: str, now: float) -> bool:
    row = db.execute(
        "SELECT token, expires_at FROM turn_locks WHERE tenant = ? AND chat_id = ?",
        (chat.tenant, chat.chat_id),
    ).fetchone()
    return row is not None and row[0] == token and row[1] > now


def _global_system(db: sqlite3.Connection) -> str | None:
    row = db.execute("SELECT value FROM settings WHERE key = 'system'").fetchone()
    return None if row is None else str(row[0])


def _delete(db: sqlite3.Connection, chat: ChatRef) -> None:
    params = (chat.tenant, chat.chat_id)
    db.execute("DELETE FROM messages WHERE tenant = ? AND chat_id = ?", params)
    db.execute("DELETE FROM chats WHERE tenant = ? AND chat_id = ?", params)


@contextmanager
def _translated() -> Iterator[None]:
    """Turn sqlite3's exceptions into the proxy's store errors."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreUnavailable("the chat store is busy; try again shortly") from exc
        raise StoreError(f"the chat store failed: {exc}") from exc
    except sqlite3.Error as exc:
        raise StoreError(f"the chat store failed: {exc}") from exc

"""Own the embedded SQLite backend, used when no Redis is configured.

Same behaviour as Redis, TTL included: a chat whose `expires_at` has passed is treated as gone and
deleted on its next access, and expired chats are swept from time to time. Turn locks,
idempotency records and the claims under which summaries are made are rows with an expiry,
checked inside the same `BEGIN IMMEDIATE` transactions as the writes they guard. Each operation
is written once, blocking, and runs in a worker thread (`in_thread`); the file, its connections
and schema are `sqlite_file.py`'s and `sqlite_schema.py`'s; reading a path (a window, a page,
the history) is `sqlite_paths.py`'s, reading and removing given items and moving the leaf
`sqlite_items.py`'s, whole chats' reads and writes `sqlite_export.py`'s, and the operations on
chats as records (info, own fields, the listing, deletion) `sqlite_chats.py`'s (`SqliteChats`,
which this store builds on).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence

from chatproxy.errors import NotFound, TurnLeaseLost
from chatproxy.jsontext import compact
from chatproxy.store.chat_tree import ChatTree
from chatproxy.store.decoding import DecodedMessages
from chatproxy.store.idempotency import (
    IDEMPOTENCY_TTL_SECONDS,
    IdempotencyClaim,
    IdempotentResult,
)
from chatproxy.store.items import (
    ROOT,
    ChatRef,
    ChatState,
    Message,
    Unsummarized,
)
from chatproxy.store.sqlite_base import SqliteBase
from chatproxy.store.sqlite_chat import live_chat, lock_holder, touch
from chatproxy.store.sqlite_chats import SqliteChats
from chatproxy.store.sqlite_export import read_tree, write_tree
from chatproxy.store.sqlite_file import in_thread
from chatproxy.store.sqlite_items import delete_given, live_item_bodies, move_leaf
from chatproxy.store.sqlite_paths import read_path, read_unsummarized, with_extras
from chatproxy.store.sqlite_rows import (
    append_turn,
    claim,
    ensure_chat,
    forget_answers,
    holds_lock,
    record_answer,
    release_claim,
    release_lock,
    set_aside,
    set_column,
    sweep,
    take_lock,
    trim,
)
from chatproxy.store.sqlite_summaries import claim as claim_summary
from chatproxy.store.sqlite_summaries import fence_of, keep_summary, release, summaries_at
from chatproxy.store.sqlite_tree import children_of, has_item, place, placed_before
from chatproxy.store.summary import Summary

SWEEP_EVERY_SECONDS = 60.0


class SqliteStore(SqliteBase, SqliteChats):
    """Chats in one SQLite file, for coroutines; its file may be shared by worker processes."""

    kind = "sqlite"

    def __init__(self, path: str, ttl_seconds: int | None, max_messages: int = 0):
        super().__init__(path, ttl_seconds, max_messages)
        self.decoded = DecodedMessages()

    @in_thread
    def load_window(self, chat: ChatRef, limit: int, leaf: int | None = None) -> ChatState:
        with self.file.transaction() as db:
            return read_path(db, chat, limit, None, leaf, self._expiry(), self.decoded)

    @in_thread
    def load_history(
        self,
        chat: ChatRef,
        leaf: int | None = None,
        *,
        children: bool = False,
        summaries: bool = False,
    ) -> ChatState:
        with self.file.transaction() as db:
            state = read_path(db, chat, None, None, leaf, self._expiry(), self.decoded)
            return with_extras(db, chat, state, children=children, summaries=summaries)

    @in_thread
    def load_page(
        self,
        chat: ChatRef,
        limit: int,
        before: int | None,
        leaf: int | None = None,
        *,
        children: bool = False,
        summaries: bool = False,
    ) -> ChatState:
        with self.file.transaction() as db:
            state = read_path(db, chat, limit, before, leaf, self._expiry(), self.decoded)
            return with_extras(db, chat, state, children=children, summaries=summaries)

    @in_thread
    def children(
        self, chat: ChatRef, parents: Sequence[int | None], *, strict: bool = False
    ) -> list[list[int]]:
        with self.file.transaction() as db:
            live = live_chat(db, chat) is not None
            held = [p for p in parents if p is not None]
            if strict and held and not (live and all(has_item(db, chat, p) for p in held)):
                raise NotFound("no such message in this chat")
            if live:
                touch(db, chat, self._expiry())
            return [children_of(db, chat, parent) for parent in parents]

    @in_thread
    def first_messages(self, chat: ChatRef) -> tuple[list[int], int]:
        with self.file.transaction() as db:
            if live_chat(db, chat) is None:
                return [], 0
            touch(db, chat, self._expiry())
            (count,) = db.execute(
                "SELECT message_count FROM chats WHERE tenant = ? AND chat_id = ?",
                (chat.tenant, chat.chat_id),
            ).fetchone()
            return children_of(db, chat, None), count

    @in_thread
    def load_items(self, chat: ChatRef, ids: Sequence[int]) -> list[Message | None]:
        if not ids:
            return []
        with self.file.transaction() as db:
            bodies = live_item_bodies(db, chat, ids, self._expiry())
        found = iter(self.decoded.decode([bodies[item] for item in ids if item in bodies]))
        return [next(found) if item in bodies else None for item in ids]

    @in_thread
    def delete_items(self, chat: ChatRef, ids: Sequence[int]) -> list[int]:
        now = time.time()
        with self.file.transaction() as db:
            removed = delete_given(db, chat, ids, now, self._expiry(now))
            forget_answers(db, chat, removed)  # the answers their turns recorded
            return removed

    @in_thread
    def load_unsummarized(self, chat: ChatRef, at: int, limit: int, reach: int = 0) -> Unsummarized:
        with self.file.transaction() as db:
            return read_unsummarized(db, chat, (at, limit, reach), self.decoded)

    @in_thread
    def save_summary(self, chat: ChatRef, summary: Summary, fence: str) -> bool:
        with self.file.transaction() as db:
            live = live_chat(db, chat) is not None and fence_of(db, chat) == fence
            if not live or not has_item(db, chat, summary.last):
                return False
            keep_summary(db, chat, summary)
            touch(db, chat, self._expiry())
        return True

    @in_thread
    def load_summaries(self, chat: ChatRef, ids: Sequence[int]) -> dict[int, Summary]:
        with self.file.transaction() as db:
            return summaries_at(db, chat, ids) if ids and live_chat(db, chat) else {}

    @in_thread
    def claim_summary(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        with self.file.transaction() as db:
            return claim_summary(db, chat, token, lease_seconds)

    @in_thread
    def release_summary(self, chat: ChatRef, token: str) -> None:
        with self.file.transaction() as db:
            release(db, chat, token)

    @in_thread
    def set_leaf(self, chat: ChatRef, item_id: int, *, descend: bool = False) -> int | None:
        with self.file.transaction() as db:
            return move_leaf(db, chat, item_id, descend=descend, expires_at=self._expiry())

    @in_thread
    def load_tree(self, chat: ChatRef) -> ChatTree | None:
        return read_tree(self.file, chat, self._expiry(), self.decoded)

    @in_thread
    def save_tree(self, chat: ChatRef, tree: ChatTree, *, replace: bool = False) -> bool:
        expires_at, most = self._expiry(), self._max_messages
        return write_tree(self.file, chat, tree, replace=replace, expires_at=expires_at, most=most)

    @in_thread
    def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
        release: bool = False,
        metadata: dict[str, str] | None = None,
        existed: bool = False,
    ) -> bool:
        now = time.time()
        with self.file.transaction() as db:
            holds = lock_token is not None and holds_lock(db, chat, lock_token, now)
            if holds and release:
                release_lock(db, chat, lock_token or "")
            row = live_chat(db, chat)
            if row is not None and row.last_turn == turn_id:
                return False
            if lock_token is not None and not holds:
                raise TurnLeaseLost()
            if existed and row is None:
                raise NotFound("the chat was deleted while this turn ran")
            if placed_before(db, chat, messages, fork=lock_token is None):
                return False
            ensure_chat(db, chat, now, self._expiry(now))
            next_id, leaf = (row.next_id, row.leaf) if row else (0, None)
            placed = place(messages, next_id, leaf)
            append_turn(db, chat, turn_id, placed, now, self._expiry(now))
            if metadata is not None:
                set_column(db, chat, "metadata", compact(metadata))
            if idempotent is not None:
                record_answer(db, chat, idempotent, now + IDEMPOTENCY_TTL_SECONDS, placed)
            if self._max_messages:  # (and the records of the turns whose items all go)
                trim(db, chat, self._max_messages)
            self._maybe_sweep(db, now)
        return True

    @in_thread
    def begin_turn(
        self,
        chat: ChatRef,
        token: str,
        lease_seconds: float,
        limit: int,
        at: int | None = None,
        reserve: int = 0,
    ) -> ChatState | None:
        with self.file.transaction() as db:
            if at is not None and at != ROOT and not has_item(db, chat, at):
                raise NotFound("no such message in this chat")
            if reserve:  # a fork: no turn that read the next id may be on its way
                if lock_holder(db, chat, time.time()) is not None:
                    return None
            elif not take_lock(db, chat, token, lease_seconds):
                return None
            state = read_path(db, chat, limit, None, at, self._expiry(), self.decoded, keep=True)
            if reserve:
                set_aside(db, chat, state.next_id + reserve)
            return state

    @in_thread
    def release_turn(self, chat: ChatRef, token: str) -> None:
        with self.file.transaction() as db:
            release_lock(db, chat, token)

    @in_thread
    def turn_held(self, chat: ChatRef) -> bool:
        with self.file.transaction() as db:
            return lock_holder(db, chat, time.time()) is not None

    @in_thread
    def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        with self.file.transaction() as db:
            return claim(db, chat, key, fingerprint, lease_seconds)

    @in_thread
    def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        with self.file.transaction() as db:
            release_claim(db, chat, key, fingerprint)

    def _maybe_sweep(self, db: sqlite3.Connection, now: float) -> None:
        """Sweep expired rows at most once a minute per process."""
        if now >= self._next_sweep:
            self._next_sweep = now + SWEEP_EVERY_SECONDS
            sweep(db, now, self._limit_entries_kept)

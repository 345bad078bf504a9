"""Own the SQLite side of chats as records beside their messages (`SqliteChats`, which
`SqliteStore` builds on): a chat's record (`chat_info`) and its own fields (`set_chat_system`,
`update_chat_settings`, `set_chat_metadata`), the tenant's listing (`list_chats`) and a chat's
deletion (with its finished idempotency records), as `redis_chats.py` is the Redis store's.

It stands on `SqliteBase` (the file, the TTL, the global prompt), which `SqliteStore` builds on
beside it. It declares what it uses of it rather than subclass it, so that `sqlite.py` stays one
import above `sqlite_base.py` (tests/test_layers.py: eight floors at most); mypy checks each
declaration against `SqliteBase` where `SqliteStore` joins the two.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from chatproxy.jsontext import compact
from chatproxy.store.items import ChatInfo, ChatRef, changed_settings
from chatproxy.store.sqlite_chat import delete_rows, live_chat, touch
from chatproxy.store.sqlite_file import in_thread, translated
from chatproxy.store.sqlite_rows import (
    INFO_COLUMNS,
    ensure_chat,
    forget_answers,
    info_of,
    listed_chats,
    set_column,
)

if TYPE_CHECKING:
    from chatproxy.store.sqlite_file import SqliteFile


class SqliteChats:
    """Chats in SQLite as records and listing entries, on the file of `SqliteBase`."""

    # What it uses of `SqliteBase`, which `SqliteStore` builds on beside it.
    file: SqliteFile
    _expiry: Callable[..., float | None]

    @in_thread
    def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        with self.file.transaction() as db:
            if live_chat(db, chat) is None:
                return None
            touch(db, chat, self._expiry())
            found = db.execute(
                f"SELECT {INFO_COLUMNS} FROM chats WHERE tenant = ? AND chat_id = ?",  # noqa: S608
                (chat.tenant, chat.chat_id),
            ).fetchone()
        return info_of(found)

    @in_thread
    def list_chats(
        self,
        tenant: str,
        limit: int,
        before: float | None,
        after: str | None = None,
        before_id: str = "",
    ) -> list[ChatInfo]:
        with translated():
            return listed_chats(self.file.connection(), tenant, limit, (before, before_id), after)

    @in_thread
    def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        self._set_column(chat, "system", content)

    @in_thread
    def update_chat_settings(self, chat: ChatRef, changes: Mapping[str, Any]) -> None:
        now = time.time()
        with self.file.transaction() as db:
            found = live_chat(db, chat)
            merged = changed_settings(found.settings if found else None, changes)
            if found is None:
                if merged is None and changes.get("system") is None:
                    return
                ensure_chat(db, chat, now, self._expiry(now))
            set_column(db, chat, "settings", merged)
            if "system" in changes:
                set_column(db, chat, "system", changes["system"])
            self._changed(db, chat, now)

    @in_thread
    def set_chat_metadata(self, chat: ChatRef, metadata: dict[str, str] | None) -> bool:
        text = None if metadata is None else compact(metadata)
        return self._set_column(chat, "metadata", text, create=False)

    def _set_column(
        self, chat: ChatRef, column: str, value: str | None, *, create: bool = True
    ) -> bool:
        """Set (or with None clear) one of the chat's own columns, as its latest activity; with
        `create`, a value set makes a chat that does not exist. Return whether the chat exists
        (and so was changed)."""
        now = time.time()
        with self.file.transaction() as db:
            if live_chat(db, chat) is None:
                if value is None or not create:
                    return False
                ensure_chat(db, chat, now, self._expiry(now))
            set_column(db, chat, column, value)
            self._changed(db, chat, now)
        return True

    def _changed(self, db: sqlite3.Connection, chat: ChatRef, now: float) -> None:
        """Make a change of the chat's own columns its latest activity."""
        db.execute(
            "UPDATE chats SET updated = ?, expires_at = ? WHERE tenant = ? AND chat_id = ?",
            (now, self._expiry(now), chat.tenant, chat.chat_id),
        )

    @in_thread
    def delete_chat(self, chat: ChatRef) -> bool:
        with self.file.transaction() as db:
            existed = live_chat(db, chat) is not None
            delete_rows(db, chat)
            forget_answers(db, chat, None)
        return existed

"""Own the SQLite side of whole chats (`Store.load_tree`, `Store.save_tree`): one transaction
each, on the chat's row and its items' rows (an item's `seq` is its id). A chat written over
takes its finished idempotency records with it, as its deletion does: a retry must not replay
what it no longer holds."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from chatproxy.errors import ChatBusy
from chatproxy.jsontext import compact
from chatproxy.store.chat_tree import ChatTree, check_size
from chatproxy.store.sqlite_chat import delete_rows, live_chat, lock_holder, touch
from chatproxy.store.sqlite_rows import forget_answers
from chatproxy.store.sqlite_summaries import keep_summary
from chatproxy.store.summary import Summary
from chatproxy.tokens import USAGE_FIELDS

if TYPE_CHECKING:  # named in annotations only, which keeps the SQLite store's floors low
    from chatproxy.store.decoding import DecodedMessages
    from chatproxy.store.items import ChatRef
    from chatproxy.store.sqlite_file import SqliteFile

RECORD = (
    "created, updated, leaf, title, system, settings, metadata,"
    " prompt_tokens, completion_tokens, total_tokens"
)


def read_tree(
    file: SqliteFile, chat: ChatRef, expires_at: float | None, decoded: DecodedMessages
) -> ChatTree | None:
    """Read the whole chat in one transaction (refreshing its TTL); None if it does not exist."""
    with file.transaction() as db:
        if live_chat(db, chat) is None:
            return None
        touch(db, chat, expires_at)
        params = (chat.tenant, chat.chat_id)
        row = db.execute(
            f"SELECT {RECORD} FROM chats WHERE tenant = ? AND chat_id = ?",  # noqa: S608
            params,
        ).fetchone()
        bodies = db.execute(
            "SELECT body FROM messages WHERE tenant = ? AND chat_id = ? ORDER BY seq", params
        ).fetchall()
        sums = db.execute(
            "SELECT body FROM summaries WHERE tenant = ? AND chat_id = ? ORDER BY last_id", params
        ).fetchall()
    created, updated, leaf, title, system, settings, metadata, *tokens = row
    return ChatTree(
        chat_id=chat.chat_id,
        created=created,
        updated=updated,
        items=decoded.decode([body for (body,) in bodies]),
        leaf=leaf,
        title=title,
        system=system,
        settings=json.loads(settings) if settings else {},
        metadata=None if metadata is None else json.loads(metadata),
        tokens=dict(zip(USAGE_FIELDS, tokens, strict=True)),
        summaries=[Summary.from_json(json.loads(body)) for (body,) in sums],
    )


def write_tree(
    file: SqliteFile,
    chat: ChatRef,
    tree: ChatTree,
    *,
    replace: bool,
    expires_at: float | None,
    most: int,
) -> bool:
    """Write the whole chat in one transaction (see `Store.save_tree`); whether it was."""
    check_size(tree, most)
    with file.transaction() as db:
        if live_chat(db, chat) is not None and not replace:
            return False
        if lock_holder(db, chat, time.time()) is not None:
            raise ChatBusy()
        before = db.execute(  # a summary being written of the chat replaced is fenced off,
            # and ids handed out stay handed out (a fork that set some aside saves on them later)
            "SELECT pruned + 1, appended FROM chats WHERE tenant = ? AND chat_id = ?",
            (chat.tenant, chat.chat_id),
        ).fetchone()
        pruned = None if before is None else before[0]
        appended = tree.next_id if before is None else max(tree.next_id, before[1])
        delete_rows(db, chat)
        forget_answers(db, chat, None)
        db.execute(
            "INSERT INTO chats (tenant, chat_id, system, created, updated, expires_at,"
            " message_count, appended, title, prompt_tokens, completion_tokens, total_tokens,"
            " settings, leaf, metadata) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                chat.tenant,
                chat.chat_id,
                tree.system,
                tree.created,
                tree.updated,
                expires_at,
                len(tree.items),
                appended,
                tree.title,
                *(tree.tokens.get(name, 0) for name in USAGE_FIELDS),
                compact(tree.settings) if tree.settings else None,
                tree.leaf,
                None if tree.metadata is None else compact(tree.metadata),
            ),
        )
        db.executemany(
            "INSERT INTO messages (tenant, chat_id, seq, parent, body) VALUES (?, ?, ?, ?, ?)",
            [(chat.tenant, chat.chat_id, m.id, m.parent, m.dumps()) for m in tree.items],
        )
        for summary in tree.summaries:
            keep_summary(db, chat, summary)
        if pruned is not None:
            db.execute(
                "UPDATE chats SET pruned = ? WHERE tenant = ? AND chat_id = ?",
                (pruned, chat.tenant, chat.chat_id),
            )
    return True

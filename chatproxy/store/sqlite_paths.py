"""Own how the SQLite store reads a path of a chat's tree, in the caller's transaction over
`sqlite_tree.py`'s SQL: the window, page or history ending at the leaf or at a given item
(`Store.load_window`, `load_page`, `load_history`, and the window `begin_turn` reads under its
lock), with the chat's record and the summary a window carries; and the part of a path compaction
reads, with the summary above it (`Store.load_unsummarized`); the versions and the summaries of
a path's messages, read with it."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from typing import TYPE_CHECKING

from chatproxy.errors import NotFound
from chatproxy.store.items import ROOT, ChatState, Unsummarized
from chatproxy.store.sqlite_chat import global_system_of, live_chat, touch
from chatproxy.store.sqlite_summaries import (
    fence_of,
    newest_summary,
    summaries_at,
    summarized_up_to,
    unsummarized,
    window_summary,
)
from chatproxy.store.sqlite_tree import (
    children_of,
    has_item,
    on_path,
    parent_of,
    path_bodies,
    path_ids,
)

if TYPE_CHECKING:
    from chatproxy.store.decoding import DecodedMessages
    from chatproxy.store.items import ChatRef
    from chatproxy.store.summary import Summary


def read_path(
    db: sqlite3.Connection,
    chat: ChatRef,
    limit: int | None,
    before: int | None,
    at: int | None,
    expires_at: float | None,
    decoded: DecodedMessages,
    *,
    keep: bool = False,
) -> ChatState:
    """Read the path ending at `at` (None: the leaf; see `Store.load_page` for `before`),
    refreshing the chat's TTL; with `keep`, remember the messages decoded."""
    row = live_chat(db, chat)
    global_system = global_system_of(db)
    if row is None:
        if at is not None and at != ROOT:
            raise NotFound("no such message in this chat")
        return ChatState(False, None, global_system, [])
    touch(db, chat, expires_at)
    start = row.leaf if at is None else at
    if at is not None and at != ROOT and not has_item(db, chat, at):
        raise NotFound("no such message in this chat")
    below = None
    if before is not None:
        above = parent_of(db, chat, before)
        if above is not False and at is not None and not on_path(db, chat, at, before):
            above = False  # a given path's page before an item off it: as for an id not held
        if above is False:
            below = before
        else:
            start = above if above is not None else ROOT
    bodies = path_bodies(db, chat, start, limit, below)
    messages = decoded.decode(bodies, keep=keep)
    own = json.loads(row.settings) if row.settings else {}
    window = limit is not None and before is None  # a window's read: see ChatState
    summary = window_summary(db, chat, messages) if window else None
    return ChatState(True, row.system, global_system, messages, own, row.leaf, row.next_id, summary)


def with_extras(
    db: sqlite3.Connection, chat: ChatRef, state: ChatState, *, children: bool, summaries: bool
) -> ChatState:
    """`state` with what a history's read asks for besides its path, read in the transaction
    `db` that read it: its `children` (those of each message's parent and the chat's first
    messages) and its `summaries` (those that end at its messages)."""
    if children:
        parents = dict.fromkeys([None, *(m.parent for m in state.messages)])
        state = replace(state, children={p: children_of(db, chat, p) for p in parents})
    if summaries:
        ids = [m.id for m in state.messages if m.id is not None]
        state = replace(state, summaries=summaries_at(db, chat, ids) if ids else {})
    return state


def read_unsummarized(
    db: sqlite3.Connection, chat: ChatRef, walk: tuple[int, int, int], decoded: DecodedMessages
) -> Unsummarized:
    """`Store.load_unsummarized` in the transaction `db`, `walk` its `at`, `limit`, `reach`."""
    at, limit, reach = walk
    fence = fence_of(db, chat) if live_chat(db, chat) else None
    if fence is None or not has_item(db, chat, at):
        raise NotFound("no such message in this chat")
    messages = decoded.decode(path_bodies(db, chat, at, limit))
    summary, after = unsummarized(db, chat, messages)
    start = messages[0].parent if messages else at
    if summary is not None or len(messages) < limit or start is None:
        return Unsummarized(summary, after, fence)
    found, unread, above = summary_above(db, chat, start, reach)
    return Unsummarized(found, after, fence, unread, above)


def summary_above(
    db: sqlite3.Connection, chat: ChatRef, start: int, reach: int
) -> tuple[Summary | None, bool, int | None]:
    """The newest summary on the path walking up from the item `start`, within `reach` items
    more (by their ids, none read), whether the walk passed items to meet it, and the item a
    walk that met none stopped short of; none of these for a chat without a summary there."""
    if not summarized_up_to(db, chat, start):
        return None, False, None
    ids = path_ids(db, chat, start, reach + 1)
    found = newest_summary(db, chat, ids)
    if found is not None:
        return found, found.last != start, None
    return None, False, ids[-1] if len(ids) > reach else None

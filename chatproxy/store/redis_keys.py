"""Own the Redis store's keys and what it makes of Redis's answers.

Keys of one chat share a hash tag, so a Redis Cluster keeps them on one slot:

    chat:{<tenant>:<chat_id>}:items      hash: item id -> the item's JSON, which starts
                                         `{"id":<id>,"parent":<id or null>,` (Message.dumps)
    chat:{<tenant>:<chat_id>}:kids       hash: item id (or `root`) -> its children's ids, in
                                         id order (the order they were added), comma
                                         separated, but the child numbered right after it
                                         (id + 1; for `root`, the lowest id kept), found by
                                         its own parent: a chat without branches has no
                                         `:kids`; `root` also lists the items under one
                                         trimming dropped; and
                                         `s<id>` -> the summary (JSON) of the path ending
                                         at that item (compaction), which so shares the
                                         chat's TTL, deletion and slot
    chat:{<tenant>:<chat_id>}:meta       hash: system, created, updated, messages (items kept),
                                         appended (the next item's id), first (no id below it
                                         is kept), leaf, last_turn (none after a delete of
                                         items), title, prompt/completion/total_tokens,
                                         settings, metadata (JSON, a conversation's), sums
                                         (set while the chat has a summary), pruned (how
                                         many removals of items: a summary's fence), starts
                                         (set once `root` was checked to list every item
                                         under one trimming dropped: redis_branches.py)
    chats:{<tenant>}                     sorted set of the tenant's chat ids by last activity
    chat:{<tenant>:<chat_id>}:lock       the turn lock: the holder's random token, PX lease
    chat:{<tenant>:<chat_id>}:summarizing
                                         the summary claim (compaction: one summary of the
                                         chat made at a time, across processes): the holder's
                                         random token, PX lease
    chat:{<tenant>:<chat_id>}:idem:<k>   idempotency record: state, fingerprint, response (24 h)
    chat:{<tenant>:<chat_id>}:idems      sorted set: the finished records' links, each
                                         `<first> <last> <record's key>` (the ids of the items
                                         its turn stored, consecutive; -1 -1: none), scored
                                         by when the record expires; what deleting the chat
                                         or its items, an import replacing the chat or a
                                         save trimming its items removes with them
                                         (redis_idem_scripts.py)
    system                               the global default system prompt (never expires)

The release before chats were trees kept a chat's messages in a list, `chat:{...}:msgs`, oldest
first. Every script that touches a chat first upgrades such a list in place (`UPGRADE` in
redis_scripts.py): message `n` becomes item `first + n` under the one before it, the newest is
the leaf, and the list is deleted, all in the same atomic step.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from chatproxy.errors import NotFound
from chatproxy.store.items import ROOT, ChatInfo, ChatRef, ChatState
from chatproxy.store.summary import Summary
from chatproxy.tokens import USAGE_FIELDS

if TYPE_CHECKING:  # for annotations: at run time it would lengthen the store's import chain
    from chatproxy.store.decoding import DecodedMessages

GLOBAL_SYSTEM_KEY = "system"


def chat_keys(chat: ChatRef) -> tuple[str, str, str, str]:
    """The chat's items, meta and children hashes, and the message list of the layout before
    (which the scripts upgrade)."""
    slot = chat.slot
    return f"chat:{slot}:items", f"chat:{slot}:meta", f"chat:{slot}:kids", f"chat:{slot}:msgs"


def index_key(tenant: str) -> str:
    """The tenant's listing of chats by last activity."""
    return f"chats:{{{tenant}}}"


def lock_key(chat: ChatRef) -> str:
    """The chat's turn lock."""
    return f"chat:{chat.slot}:lock"


def claim_key(chat: ChatRef) -> str:
    """The chat's summary claim."""
    return f"chat:{chat.slot}:summarizing"


def idem_key(chat: ChatRef, key: str) -> str:
    """The chat's idempotency record of `key`."""
    return f"chat:{chat.slot}:idem:{key}"


def idems_key(chat: ChatRef) -> str:
    """The chat's links of its finished idempotency records to the items their turns stored."""
    return f"chat:{chat.slot}:idems"


def millis(seconds: float) -> int:
    """A lease in whole milliseconds, at least one."""
    return max(1, round(seconds * 1000))


def state_of(read: list[Any], decoded: DecodedMessages, *, keep: bool = False) -> ChatState:
    """Turn the read scripts' answer into a ChatState; with `keep`, the decoded messages are
    kept for the next read (a turn's window)."""
    exists, chat_system, raw_messages, settings, global_system, leaf, next_id, summary, *_ = read
    sums = read[10]  # the summaries of the items read (None: not asked for)
    return ChatState(
        exists=bool(exists),
        chat_system=chat_system,
        global_system=global_system,
        messages=decoded.decode(raw_messages, keep=keep),
        settings=json.loads(settings) if settings else {},
        leaf=int(leaf) if leaf else None,
        next_id=int(next_id),
        summary=Summary.from_json(json.loads(summary)) if summary else None,
        summaries=None if sums is None else path_summaries(sums),
    )


def path_summaries(found: list[str]) -> dict[int, Summary]:
    """The summaries a path's read found, by the item each ends at (it answers that item's id,
    then the summary, for each)."""
    pairs = zip(found[::2], found[1::2], strict=True)
    return {int(item): Summary.from_json(json.loads(raw)) for item, raw in pairs}


def info_of(chat_id: str, fields: dict[str, str]) -> ChatInfo:
    """Build a listing entry from a chat's meta hash."""
    return ChatInfo(
        chat_id=chat_id,
        created=float(fields.get("created", 0)),
        updated=float(fields.get("updated", 0)),
        messages=int(fields.get("messages", 0)),
        title=fields.get("title"),
        tokens={name: int(fields.get(name, 0)) for name in USAGE_FIELDS},
        metadata=json.loads(fields["metadata"]) if "metadata" in fields else None,
    )


def start_arg(item_id: int | None) -> str | int:
    """Where a path read starts, as the scripts take it: '' for the leaf, 'root' for before
    the first message (`ROOT`), else the item's id."""
    if item_id is None:
        return ""
    return "root" if item_id == ROOT else item_id


def raise_if_missing(read: list[Any]) -> None:
    """Raise `NotFound` if a script answered that the chat holds no such item."""
    if read and read[0] == "missing":
        raise NotFound("no such message in this chat")

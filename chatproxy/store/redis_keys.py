"""Own the Redis store's keys and what it makes of Redis's answers.

Keys of one chat share a hash tag, so a Redis Cluster keeps them on one slot:

    chat:{<tenant>:<chat_id>}:msgs       list of JSON messages, oldest first
    chat:{<tenant>:<chat_id>}:meta       hash: system, created, updated, messages, appended,
                                         last_turn, title, prompt/completion/total_tokens,
                                         settings
    chats:{<tenant>}                     sorted set of the tenant's chat ids by last activity
    chat:{<tenant>:<chat_id>}:lock       the turn lock: the holder's random token, PX lease
    chat:{<tenant>:<chat_id>}:idem:<k>   idempotency record: state, fingerprint, response (24 h)
    system                               the global default system prompt (never expires)
"""

from __future__ import annotations

import json
from typing import Any

from chatproxy.store.base import ChatInfo, ChatRef, ChatState
from chatproxy.store.decoding import DecodedMessages
from chatproxy.tokens import USAGE_FIELDS

GLOBAL_SYSTEM_KEY = "system"


def chat_keys(chat: ChatRef) -> tuple[str, str]:
    """The chat's message list and meta hash."""
    return f"chat:{chat.slot}:msgs", f"chat:{chat.slot}:meta"


def index_key(tenant: str) -> str:
    """The tenant's listing of chats by last activity."""
    return f"chats:{{{tenant}}}"


def lock_key(chat: ChatRef) -> str:
    """The chat's turn lock."""
    return f"chat:{chat.slot}:lock"


def idem_key(chat: ChatRef, key: str) -> str:
    """The chat's idempotency record of `key`."""
    return f"chat:{chat.slot}:idem:{key}"


def millis(seconds: float) -> int:
    """A lease in whole milliseconds, at least one."""
    return max(1, round(seconds * 1000))


def state_of(read: list[Any], decoded: DecodedMessages, *, keep: bool = False) -> ChatState:
    """Turn the read scripts' answer into a ChatState; with `keep`, the decoded messages are
    kept for the next read (a turn's window)."""
    exists, chat_system, first_id, raw_messages, settings, global_system = read
    return ChatState(
        exists=bool(exists),
        chat_system=chat_system,
        global_system=global_system,
        messages=decoded.decode(raw_messages, keep=keep),
        first_id=int(first_id),
        settings=json.loads(settings) if settings else {},
    )


def info_of(chat_id: str, fields: dict[str, str]) -> ChatInfo:
    """Build a listing entry from a chat's meta hash."""
    return ChatInfo(
        chat_id=chat_id,
        created=float(fields.get("created", 0)),
        updated=float(fields.get("updated", 0)),
        messages=int(fields.get("messages", 0)),
        title=fields.get("title"),
        tokens={name: int(fields.get(name, 0)) for name in USAGE_FIELDS},
    )

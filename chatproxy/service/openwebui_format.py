"""Own how a chat of Open WebUI's export ("Export chat" or "Export All Chats": a JSON array of
chats) becomes a chat of ours (`openwebui_tree`, pure: no I/O).

A chat: `{"id", "user_id", "title", "chat": {"title", "models", "params", "history":
{"messages": {id: message}, "currentId"}, "messages": [...]}, "created_at", "updated_at", ...}`,
a message being `{"id", "parentId", "childrenIds", "role", "content", "timestamp", "model",
"files", "usage", ...}`. What becomes of it:

- The chat's `id` (else `chat.id`) is the chat's id (1-128 of `A-Z a-z 0-9 . _ @ : -`), its
  `title` (else `chat.title`) the title, `created_at` and `updated_at` its times (read as
  seconds: a number past 10^11 is divided by 1000 until it is not, so milli-, micro- and
  nanoseconds read right), and `chat.params.system`, when set, its system prompt.
- `chat.history` is the tree: every branch kept, numbered depth first in `childrenIds` order
  (`foreign_tree.py`), `currentId` the leaf. `chat.messages` (the current path again) is not
  read.
- Roles `user`, `assistant` and `system` stay. `content` is the text (a list of content parts:
  their texts, an image as `[image]`); each attached file adds a line after it, `[image]` for an
  image and `[file: <name>]` for another. An assistant's `model` and its `usage` (the
  `prompt_tokens`, `completion_tokens`, `total_tokens` it names) are kept; `timestamp` is the
  item's time (a message without one takes its parent's). Anything else (an error shown
  instead of a reply, sources, ratings, statuses) is not.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from chatproxy.service.foreign_tree import (
    Names,
    Node,
    Time,
    chat_id_of,
    number_nodes,
    validated,
)
from chatproxy.store.chat_tree import ChatTree, DocumentError
from chatproxy.store.items import usage_of
from chatproxy.tokens import MAX_TOKEN_COUNT, USAGE_FIELDS

NAMES = Names(
    node="message",
    parent="parentId",
    where="chat.history.messages",
    path=("chat", "history", "messages"),
)
ROLES = ("user", "assistant", "system")


class _Lax(BaseModel):
    model_config = ConfigDict(extra="ignore")


class WebMessage(_Lax):
    parentId: str | None = None
    childrenIds: list[str] = []
    role: str
    content: str | list[Any] | None = None
    timestamp: Time | None = None
    model: str | None = None
    files: list[Any] | None = None
    usage: dict[str, Any] | None = None


class History(_Lax):
    messages: dict[str, WebMessage]
    currentId: str


class WebChat(_Lax):
    id: str | None = None
    title: str | None = None
    history: History
    params: dict[str, Any] | None = None
    timestamp: Time | None = None


class Entry(_Lax):
    id: str | None = None
    title: str | None = None
    chat: WebChat
    created_at: Time | None = None
    updated_at: Time | None = None


def openwebui_tree(data: Any) -> ChatTree:
    """The chat of one chat of an Open WebUI export; raise `DocumentError` naming the place
    (`message 'abc': role: Field required`)."""
    entry = validated(Entry, data, NAMES)
    chat = entry.chat
    chat_id = chat_id_of(entry.id or chat.id)
    created = seconds(entry.created_at or chat.timestamp or 0.0)
    nodes = {key: _node(key, message) for key, message in chat.history.messages.items()}
    items, leaf = number_nodes(nodes, chat.history.currentId, NAMES, created)
    system = (chat.params or {}).get("system")
    return ChatTree(
        chat_id=chat_id,
        created=created,
        updated=seconds(entry.updated_at or 0.0) or max(item.created_at for item in items),
        items=items,
        leaf=leaf,
        title=entry.title or chat.title,
        system=system if isinstance(system, str) and system.strip() else None,
        tokens=usage_of(items),
    )


def seconds(time: float) -> float:
    """A time in seconds, from seconds, milli-, micro- or nanoseconds since 1970."""
    for _ in range(3):  # at most nanoseconds (a time is finite: `Time`)
        if time <= 1e11:
            break
        time /= 1000
    return time


def _node(key: str, message: WebMessage) -> Node:
    """What the message `key` of the history becomes."""
    if message.role not in ROLES:
        raise DocumentError(
            f"message {key!r}: role: {message.role!r} is not user, assistant or system"
        )
    lines = [_text(message.content), *map(_file, message.files or [])]
    usage = {
        name: value
        for name, value in (message.usage or {}).items()
        if name in USAGE_FIELDS
        and isinstance(value, int)
        and not isinstance(value, bool)
        and 0 <= value <= MAX_TOKEN_COUNT
    }
    return Node(
        message.parentId,
        message.childrenIds,
        message.role,
        "\n".join(line for line in lines if line),
        None if message.timestamp is None else seconds(message.timestamp),
        message.model if message.role == "assistant" else None,
        usage or None,
    )


def _text(content: str | list[Any] | None) -> str:
    """The message's text; of content parts, their texts and `[image]` for an image."""
    if not isinstance(content, list):
        return content or ""
    texts = []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, dict) and "image" in str(part.get("type", "")):
            texts.append("[image]")
    return "\n".join(texts)


def _file(file: Any) -> str:
    """The line an attached file adds to its message."""
    if not isinstance(file, dict):
        return ""
    if file.get("type") == "image":
        return "[image]"
    name = file.get("name")
    return f"[file: {name}]" if isinstance(name, str) and name else "[file]"

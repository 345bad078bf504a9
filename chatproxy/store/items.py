"""The data every store speaks: a chat's address (`ChatRef`), its items (`Message`), what a read
returns (`ChatState`) and what a listing shows (`ChatInfo`), with the ids' rules.

A chat is addressed by a `ChatRef` (tenant + chat id). Its messages are a tree of items, each
under its parent, and the chat has a current leaf. The protocol over these is `store/base.py`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from chatproxy.jsontext import compact
from chatproxy.store.summary import Summary
from chatproxy.tokens import USAGE_FIELDS, estimate_message_tokens

Content = str | list[dict[str, Any]]

OPEN_TENANT = "public"
# Where a turn that starts a chat's path anew is placed: before its first message.
ROOT = -1


TENANT = re.compile(r"[A-Za-z0-9_-]{1,64}")
CHAT_ID = re.compile(r"[A-Za-z0-9._@:-]{1,128}")


def valid_chat_id(chat_id: str) -> bool:
    """Whether `chat_id` is 1-128 of `A-Z a-z 0-9 . _ @ : -`, not dots only (a path segment of
    dots means "this folder" or "the one above" to browsers and HTTP clients)."""
    return CHAT_ID.fullmatch(chat_id) is not None and chat_id.strip(".") != ""


def changed_settings(current: str | None, changes: Mapping[str, Any]) -> str | None:
    """Return the JSON of a chat's own settings (`current`, None for none) with `changes` made
    (a None value removes that setting; `system`, the chat's own prompt, is not one), or None
    when none are left."""
    merged = {**(json.loads(current) if current else {}), **changes}
    kept = {name: value for name, value in merged.items() if value is not None}
    kept.pop("system", None)
    return json.dumps(kept) if kept else None


@dataclass(frozen=True)
class ChatRef:
    """The address of one chat: whose it is and its id.

    A tenant is an API key's name and never contains `:`, so `{tenant:chat_id}` is unambiguous
    even for chat ids that contain colons.
    """

    tenant: str
    chat_id: str

    def __post_init__(self) -> None:
        if not TENANT.fullmatch(self.tenant):
            raise ValueError(f"invalid tenant name {self.tenant!r}")

    @property
    def slot(self) -> str:
        """Return the Redis Cluster hash tag shared by every key of this chat."""
        return f"{{{self.tenant}:{self.chat_id}}}"


@dataclass(frozen=True)
class Message:
    """One item of a chat's tree: a message, its place (`id`, `parent`), and what the API it
    came through said with it: an assistant's `tool_calls`, a tool result's `tool_call_id`, a
    `name`; for replies also the model, why it stopped and its token usage, and for a reply
    made through `POST /v1/responses` the request's settings that its Response echoes
    (`response`: instructions, metadata, tools, ...; see `http/responses_request.py`), and
    where its turn's input starts (`input_first`, which a reply of another API may keep alone:
    `service/placing.py`).

    Ids are numbers per chat, given in the order items are added, so a child's id is always
    above its parent's. `parent` is None for a first message (a chat may have several: an edit
    of its first message is another).
    """

    role: str
    content: Content | None
    created_at: float = field(default_factory=time.time)
    usage: dict[str, Any] | None = None
    model: str | None = None
    id: int | None = None
    parent: int | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    finish_reason: str | None = None
    response: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the stored and client-facing form (fields that are unset are left out).

        `id` and `parent` come first: the Redis scripts read a parent from the start of the
        stored text (`{"id":3,"parent":2,...`) without decoding the rest."""
        data: dict[str, Any] = {}
        if self.id is not None:
            data["id"] = self.id
            data["parent"] = self.parent
        data["role"] = self.role
        data["content"] = self.content
        data["created_at"] = self.created_at
        fields = self.__dict__
        for name in OPTIONAL_FIELDS:
            value = fields[name]
            if value is not None:
                data["tokens" if name == "usage" else name] = value
        return data

    def dumps(self) -> str:
        """Serialize for storage (a stored message always has its id)."""
        if self.id is None:
            raise ValueError("a message is stored with its id")
        return compact(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """Build a message from its stored form (`to_json`)."""
        return cls(
            role=data["role"],
            content=data.get("content"),
            created_at=float(data.get("created_at", 0.0)),
            usage=data.get("tokens"),
            model=data.get("model"),
            id=data.get("id"),
            parent=data.get("parent"),
            tool_calls=data.get("tool_calls"),
            tool_call_id=data.get("tool_call_id"),
            name=data.get("name"),
            finish_reason=data.get("finish_reason"),
            response=data.get("response"),
        )

    def for_upstream(self) -> dict[str, Any]:
        """Return the message as the chat completion API expects it."""
        sent: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.name is not None:
            sent["name"] = self.name
        if self.tool_calls is not None:
            sent["tool_calls"] = self.tool_calls
        if self.tool_call_id is not None:
            sent["tool_call_id"] = self.tool_call_id
        return sent

    @cached_property
    def estimated_tokens(self) -> int:
        """The estimated tokens of its content, its text and other parts (`tokens.py`), counted
        once: a turn counts its whole window, whose messages the store keeps decoded. Tool
        calls are text sent too: a call a client sent (no exact count) counts as written."""
        return estimate_message_tokens(self.content, self.tool_calls)

    def placed(self, item_id: int, parent: int | None) -> Message:
        """This message as the item `item_id` under `parent`.

        A copy of its fields with two changed: a turn places each message it stores, and a
        frozen dataclass's `__init__` (or `dataclasses.replace`) sets each field through
        `object.__setattr__`, several times the cost."""
        copy = object.__new__(Message)
        copy.__dict__.update(self.__dict__, id=item_id, parent=parent)
        return copy


# The fields `to_json` writes after the content, when they are set.
OPTIONAL_FIELDS = (
    "usage",
    "model",
    "finish_reason",
    "tool_calls",
    "tool_call_id",
    "name",
    "response",
)


def chained(messages: Sequence[Message], first_id: int, parent: int | None) -> list[Message]:
    """Place `messages` as a chain: the first under `parent`, each next under the one before,
    numbered from `first_id`."""
    placed = []
    for n, message in enumerate(messages):
        placed.append(message.placed(first_id + n, parent))
        parent = first_id + n
    return placed


@dataclass(frozen=True)
class Unsummarized:
    """What `Store.load_unsummarized` found: the newest summary on a path (None: none), the
    messages of the path after it (oldest first), and the fence `Store.save_summary` checks;
    `unread`: the summary lies further up than the messages read, past items not read; `above`:
    the item a walk that found none stopped short of (the path goes on up from it)."""

    summary: Summary | None
    messages: list[Message]
    fence: str
    unread: bool = False
    above: int | None = None


@dataclass(frozen=True)
class ChatState:
    """What a read of one chat returns: its own system prompt, the global one, and the newest
    messages of one path through its tree, oldest first.

    `exists` says the chat has a record: a turn or its own system prompt was saved since it was
    created or last deleted. `leaf` is the chat's current leaf (None before its first message),
    `next_id` the id its next message will get. A window's read (`Store.load_window`,
    `Store.begin_turn`) also finds the newest `summary` of an item it read or of the one just
    above them, if the chat has one. A read asked for `children` (`Store.load_history`,
    `Store.load_page`) has them by parent, for the parent of each message and for None (the
    chat's first messages), as `Store.children` answers them; one asked for `summaries`, the
    summaries that end at its messages, by that message's id.
    """

    exists: bool
    chat_system: str | None
    global_system: str | None
    messages: list[Message]
    settings: dict[str, Any] = field(default_factory=dict)
    leaf: int | None = None
    next_id: int = 0
    summary: Summary | None = None
    children: dict[int | None, list[int]] | None = None
    summaries: dict[int, Summary] | None = None


@dataclass(frozen=True)
class ChatInfo:
    """One chat in a listing: its activity, size, token totals, title and metadata."""

    chat_id: str
    created: float
    updated: float
    messages: int
    title: str | None
    tokens: dict[str, int]
    metadata: dict[str, str] | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.chat_id,
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "messages": self.messages,
            "tokens": self.tokens,
            "metadata": self.metadata,
        }


TITLE_CHARS = 60


def title_of(messages: Sequence[Message]) -> str | None:
    """Return the first user message's text, cut short, as a chat's title."""
    for message in messages:
        if message.role != "user":
            continue
        content = message.content or ""
        if isinstance(content, list):
            content = " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        text = " ".join(content.split())
        if text:
            return text if len(text) <= TITLE_CHARS else text[: TITLE_CHARS - 1] + "…"
    return None


def usage_of(messages: Sequence[Message]) -> dict[str, int]:
    """Add up the token usage the messages of a turn carry."""
    totals = dict.fromkeys(USAGE_FIELDS, 0)
    for message in messages:
        for name in USAGE_FIELDS:
            value = (message.usage or {}).get(name)
            if isinstance(value, int):
                totals[name] += value
    return totals

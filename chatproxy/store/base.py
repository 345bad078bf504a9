"""Own the storage contract: the `Store` protocol and the data types every backend speaks.

A chat is addressed by a `ChatRef` (tenant + chat id). Its messages are a tree of items, each
under its parent, and the chat has a current leaf: a read returns the path from a first message
to a leaf (the newest part of it, walked up from the leaf, never the whole tree). A turn is saved
in one atomic, idempotent step keyed by a turn id. Every read and write of a chat refreshes its
TTL. The global system prompt lives beside the chats.

Turns on one chat are serialized by a turn lock held in the store: a random token with a lease.
The save checks the token inside its atomic step (fencing), so a holder whose lease ran out can
never append. Idempotency records (per chat, by key) make a repeated request replay its answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from chatproxy.jsontext import compact
from chatproxy.store.idempotency import IdempotencyClaim, IdempotentResult
from chatproxy.tokens import USAGE_FIELDS, content_text, estimate_tokens

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
    (`response`: instructions, metadata, tools, ...; see `http/responses_request.py`).

    Ids are numbers per chat, given in the order items are added, so a child's id is always
    above its parent's. `parent` is None for a first message (a chat may have several: an edit
    of its first message is another).
    """

    role: str
    content: Content | None
    created_at: float = field(default_factory=time.time)
    usage: dict[str, int] | None = None
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
    def text_tokens(self) -> tuple[int, int]:
        """The estimated tokens of its text, and its number of images (`tokens.py`), counted
        once: a turn counts its whole window, whose messages the store keeps decoded."""
        text, images = content_text(self.content)
        return estimate_tokens(text), images

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
class ChatState:
    """What a read of one chat returns: its own system prompt, the global one, and the newest
    messages of one path through its tree, oldest first.

    `exists` says the chat has a record: a turn or its own system prompt was saved since it was
    created or last deleted. `leaf` is the chat's current leaf (None before its first message),
    `next_id` the id its next message will get.
    """

    exists: bool
    chat_system: str | None
    global_system: str | None
    messages: list[Message]
    settings: dict[str, Any] = field(default_factory=dict)
    leaf: int | None = None
    next_id: int = 0


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


class Store(Protocol):
    """The one interface both backends implement, for coroutines; see
    tests/test_store_contract.py."""

    kind: str

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the store cannot be reached."""

    async def load_window(self, chat: ChatRef, limit: int, leaf: int | None = None) -> ChatState:
        """Return the system prompts and the newest `limit` messages of the path that ends at
        `leaf` (None: the chat's current leaf), in one round trip. Raise `NotFound` for a leaf
        the chat does not hold."""

    async def load_history(self, chat: ChatRef, leaf: int | None = None) -> ChatState:
        """Return the system prompts and every message of the path ending at `leaf`, oldest
        first."""

    async def load_page(
        self, chat: ChatRef, limit: int, before: int | None, leaf: int | None = None
    ) -> ChatState:
        """Return up to `limit` messages of the path ending at `leaf` that come before the item
        `before` on it (None: the newest); for an id the chat does not hold, those numbered
        below it."""

    async def children(self, chat: ChatRef, parents: Sequence[int | None]) -> list[list[int]]:
        """Return the ids of each item's children in the order of their ids, which is the
        order they were added in but for forks that saved after a later turn (None: the
        messages that start a path)."""

    async def load_items(self, chat: ChatRef, ids: Sequence[int]) -> list[Message | None]:
        """Return the chat's items `ids`, in that order, None for each it does not hold, in one
        round trip that refreshes the chat's TTL like every read."""

    async def set_leaf(self, chat: ChatRef, item_id: int, *, descend: bool = False) -> int | None:
        """Make `item_id` the chat's current leaf (with `descend`, its newest descendant, always
        taking the newest child); return the new leaf, or None if the chat does not hold it.
        Raise `ChatBusy` while a turn holds the chat's lock (its save moves the leaf)."""

    async def delete_items(self, chat: ChatRef, ids: Sequence[int]) -> list[int]:
        """Remove the items `ids` the chat holds, in one atomic step; return them, lowest first.

        A removed item's children that stay, and a removed leaf, move to its nearest ancestor
        that stays (None if none does). The message count drops; the title and token totals
        (what the turns used) stay; the last saved turn is forgotten (a save of its id stores
        again, a window Redis knew is read again). Raise `ChatBusy` while a turn holds the
        chat's lock, unless the chat holds none of `ids`."""

    async def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        """Return a chat's activity and token totals, or None if it does not exist."""

    async def list_chats(self, tenant: str, limit: int, before: float | None) -> list[ChatInfo]:
        """Return a tenant's live chats, most recent activity first, updated before `before`."""

    async def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
        release: bool = False,
    ) -> bool:
        """Add `messages` to the tree and record `idempotent`, all in one atomic step; the last
        becomes the chat's leaf.

        A message with an id is stored as it is placed (`Message.placed`, `chained`); one
        without is given the chat's next id and placed under the message before it, the first
        under the current leaf.

        Return False (and change nothing) if `turn_id` is the chat's last saved turn: a save that
        is retried after it landed (turn ids are fresh per turn, so only the last can repeat).
        Without `lock_token`, placed messages (a fork's, on ids set aside for it) are not saved
        again if their first id is taken (a retry after another turn saved), and raise
        `NotFound` if the item they go under is gone (deleted while the fork ran).
        With `lock_token`, raise `TurnLeaseLost` unless that token still holds the chat's turn
        lock, and with `release` also release that lock in the same step (a repeated save
        releases it too). With a message limit, the oldest items beyond it (the lowest ids) are
        dropped in the same step.
        """

    async def begin_turn(
        self,
        chat: ChatRef,
        token: str,
        lease_seconds: float,
        limit: int,
        at: int | None = None,
        reserve: int = 0,
    ) -> ChatState | None:
        """Take the chat's turn lock and read the window of the path ending at `at` (None: the
        leaf; `ROOT`: none) as `load_window` does, in one step; return None, reading nothing,
        while another token holds the lock, and raise `NotFound` (taking nothing) for an item
        the chat does not hold. Taking it again with the same token renews the lease: a call
        re-sent after its reply was lost succeeds.

        With `reserve` (a fork: a turn under a given message, which moves no other turn's
        place), no lock is taken: the turn waits (None) while another holds it, as a turn that
        read the next id may be on its way, and `reserve` ids are set aside for it
        (`ChatState.next_id` is the first), on which it places its messages and which no other
        turn gets; its save is not fenced."""

    async def release_turn(self, chat: ChatRef, token: str) -> None:
        """Release the turn lock if `token` still holds it."""

    async def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        """Claim `key` for a request (pending for `lease_seconds`), or report its state."""

    async def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        """Forget a pending claim (the request failed), so the client may retry."""

    async def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        """Set (or with None remove) one chat's own system prompt."""

    async def set_chat_settings(self, chat: ChatRef, settings: dict[str, Any]) -> None:
        """Replace a chat's own settings (model, temperature, max_tokens); {} removes them."""

    async def set_chat_metadata(self, chat: ChatRef, metadata: dict[str, str] | None) -> None:
        """Set (or with None remove) a chat's metadata (a conversation's; `ChatInfo.metadata`);
        setting it creates the chat's record, as a system prompt does."""

    async def get_global_system(self) -> str | None:
        """Return the stored global system prompt ("" = explicitly none, None = never set)."""

    async def set_global_system(self, content: str) -> None:
        """Store the global system prompt ("" = explicitly none)."""

    async def delete_chat(self, chat: ChatRef) -> bool:
        """Delete a chat's messages, system prompt and record; return whether it existed.

        A running turn's lock is left to its holder, and idempotency records stay for their
        24 hours, so a retried request still gets the answer it was given.
        """

    async def close(self) -> None:
        """Release connections."""

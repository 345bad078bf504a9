"""Own the storage contract: the `Store` protocol and the data types every backend speaks.

A chat is addressed by a `ChatRef` (tenant + chat id). Its messages are kept oldest first; a turn
(user message + reply) is saved in one atomic, idempotent step keyed by a turn id. Every read and
write of a chat refreshes its TTL. The global system prompt lives beside the chats.

Turns on one chat are serialized by a turn lock held in the store: a random token with a lease.
The save checks the token inside its atomic step (fencing), so a holder whose lease ran out can
never append. Idempotency records (per chat, by key) make a repeated request replay its answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chatproxy.jsontext import compact
from chatproxy.tokens import USAGE_FIELDS

Content = str | list[dict[str, Any]]

OPEN_TENANT = "public"
IDEMPOTENCY_TTL_SECONDS = 24 * 3600


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
    """One stored chat message; replies also carry the model and its token usage."""

    role: str
    content: Content
    created_at: float = field(default_factory=time.time)
    usage: dict[str, int] | None = None
    model: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Return the stored and client-facing form (fields that are unset are left out)."""
        data: dict[str, Any] = {"role": self.role, "content": self.content}
        data["created_at"] = self.created_at
        if self.usage is not None:
            data["tokens"] = self.usage
        if self.model is not None:
            data["model"] = self.model
        return data

    def dumps(self) -> str:
        """Serialize for storage."""
        return compact(self.to_json())

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """Build a message from its stored form (`to_json`)."""
        return cls(
            role=data["role"],
            content=data["content"],
            created_at=float(data.get("created_at", 0.0)),
            usage=data.get("tokens"),
            model=data.get("model"),
        )

    def for_upstream(self) -> dict[str, Any]:
        """Return the message as the chat completion API expects it."""
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class ChatState:
    """What a read of one chat returns: its own system prompt, the global one, messages.

    `exists` says the chat has a record: a turn or its own system prompt was saved since it was
    created or last deleted. Messages are numbered per chat from 0 in the order they were added;
    `first_id` is the number of `messages[0]` (numbers stay put when old messages are dropped).
    """

    exists: bool
    chat_system: str | None
    global_system: str | None
    messages: list[Message]
    first_id: int = 0
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatInfo:
    """One chat in a listing: its activity, size, token totals and a title."""

    chat_id: str
    created: float
    updated: float
    messages: int
    title: str | None
    tokens: dict[str, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.chat_id,
            "title": self.title,
            "created": self.created,
            "updated": self.updated,
            "messages": self.messages,
            "tokens": self.tokens,
        }


TITLE_CHARS = 60


def title_of(messages: Sequence[Message]) -> str | None:
    """Return the first user message's text, cut short, as a chat's title."""
    for message in messages:
        if message.role != "user":
            continue
        content = message.content
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


@dataclass(frozen=True)
class IdempotencyClaim:
    """What a store knows of an idempotency key: new (now claimed), pending, done or mismatch."""

    state: Literal["new", "pending", "done", "mismatch"]
    response: str | None = None


@dataclass(frozen=True)
class IdempotentResult:
    """The answer to record with a turn, under its (hashed) key and request fingerprint."""

    key: str
    fingerprint: str
    response: str

    def __post_init__(self) -> None:
        if not self.key or not self.fingerprint:
            raise ValueError("an idempotent answer needs a key and a fingerprint")


class Store(Protocol):
    """The one interface both backends implement, for coroutines; see
    tests/test_store_contract.py."""

    kind: str

    async def ping(self) -> None:
        """Raise `StoreUnavailable` when the store cannot be reached."""

    async def load_window(self, chat: ChatRef, limit: int) -> ChatState:
        """Return the system prompts and the newest `limit` messages (one round trip)."""

    async def load_history(self, chat: ChatRef) -> ChatState:
        """Return the system prompts and every message, oldest first."""

    async def load_page(self, chat: ChatRef, limit: int, before: int | None) -> ChatState:
        """Return up to `limit` messages numbered below `before` (None: newest), oldest first."""

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
        """Append `messages` and record `idempotent`, all in one atomic step.

        Return False (and change nothing) if `turn_id` is the chat's last saved turn: a save that
        is retried after it landed (turn ids are fresh per turn, so only the last can repeat).
        With `lock_token`, raise `TurnLeaseLost` unless that token still holds the chat's turn
        lock, and with `release` also release that lock in the same step (a repeated save
        releases it too). With a message limit, the oldest messages beyond it are dropped in the
        same step.
        """

    async def begin_turn(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> ChatState | None:
        """Take the chat's turn lock and read its window (as `load_window`) in one step;
        return None, reading nothing, while another token holds the lock. Taking it again with
        the same token renews the lease: a call re-sent after its reply was lost succeeds."""

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

"""Own the storage contract: the `Store` protocol and the data types every backend speaks.

A chat is addressed by a `ChatRef` (tenant + chat id). Its messages are kept oldest first; a turn
(user message + reply) is saved in one atomic, idempotent step keyed by a turn id. Every read and
write of a chat refreshes its TTL. The global system prompt lives beside the chats.

Turns on one chat are serialized by a turn lock held in the store: a random token with a lease.
The save checks the token inside its atomic step (fencing), so a holder whose lease ran out can
never append. Idempotency records (per chat, by key) make a repeated request replay its answer.
"""

from __future__ import annotations

import json
import re
import threading
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
    def loads_many(cls, raws: Sequence[str], *, keep: bool = False) -> list[Message]:
        """Parse stored messages, those decoded before taken from `DECODED` (see there), the
        rest with one JSON parse; with `keep`, remember the ones parsed here.

        Entries are written by `dumps`, one JSON object each. One parse of the joined entries
        costs less than one per entry (20 messages: 31 us against 53). If the joined parse is
        not one object per entry, the entries are parsed one by one, which names the damaged
        one. (Entries crafted to parse differently together than apart need write access to the
        store, which could write any messages anyway.)"""
        found = DECODED.get_many(raws)
        missing = [raw for raw, message in zip(raws, found, strict=True) if message is None]
        if not missing:
            return found  # type: ignore[return-value]  # no None in it
        try:
            parsed = json.loads(f"[{','.join(missing)}]")
        except ValueError:
            parsed = None
        if (
            not isinstance(parsed, list)
            or len(parsed) != len(missing)
            or not all(isinstance(data, dict) for data in parsed)
        ):
            parsed = [_stored_object(raw, raws.index(raw)) for raw in missing]
        new = [cls.from_json(data) for data in parsed]
        if keep:
            DECODED.put_many(missing, new)
        fill = iter(new)
        return [message or next(fill) for message in found]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Message:
        """Build a message from its stored form (`to_json`).

        Every turn decodes its whole window, and a history read every message it returns, so
        the fields go into the new instance's `__dict__` at once: a frozen dataclass's own
        `__init__` sets them one `object.__setattr__` call at a time, which made decoding a
        third slower (20 messages: 37 us against 27; 10,000: 20 ms against 15). The result is
        the same object (the tests compare)."""
        message = object.__new__(cls)
        message.__dict__.update(
            role=data["role"],
            content=data["content"],
            created_at=float(data.get("created_at", 0.0)),
            usage=data.get("tokens"),
            model=data.get("model"),
        )
        return message

    def for_upstream(self) -> dict[str, Any]:
        """Return the message as the chat completion API expects it."""
        return {"role": self.role, "content": self.content}


class DecodedMessages:
    """Messages already decoded, by their stored text (thread-safe).

    A turn reads its chat's newest messages (MESSAGES_LENGTH) on every turn, and all but the
    last turn's two it decoded the turn before: decoding 20 took 27-80 us of a turn's CPU, a
    look-up here 3-8 us. A stored entry never changes once written, and the key is the whole
    entry, so a hit is always the entry's own decoding; messages are frozen and never modified
    after decoding, so sharing one is safe. Bounded by entries and by characters: when either
    would pass its bound, everything is forgotten at once (the next reads decode again).
    """

    def __init__(self, max_entries: int, max_chars: int):
        self._max_entries = max_entries
        self._max_chars = max_chars
        self._entries: dict[str, Message] = {}
        self._chars = 0
        self._lock = threading.Lock()

    def get_many(self, raws: Sequence[str]) -> list[Message | None]:
        """The decoded message of each entry, None for those not kept."""
        get = self._entries.get
        return [get(raw) for raw in raws]

    def put_many(self, raws: Sequence[str], messages: Sequence[Message]) -> None:
        """Keep `messages` as the decodings of `raws` (the same length)."""
        chars = sum(map(len, raws))
        with self._lock:
            if (
                len(self._entries) + len(raws) > self._max_entries
                or self._chars + chars > self._max_chars
            ):
                self._entries.clear()
                self._chars = 0
                if len(raws) > self._max_entries or chars > self._max_chars:
                    return
            self._entries.update(zip(raws, messages, strict=True))
            self._chars += chars

    def clear(self) -> None:
        """Forget everything."""
        with self._lock:
            self._entries.clear()
            self._chars = 0

    def __len__(self) -> int:
        return len(self._entries)


# 200 chats' windows of 20 messages; about 5 MB at a few hundred characters a message.
DECODED = DecodedMessages(max_entries=4096, max_chars=2_000_000)


def _stored_object(raw: str, n: int) -> dict[str, Any]:
    """Parse entry `n` of a chat's stored messages, which must be one JSON object."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"stored message {n} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"stored message {n} is not a JSON object")
    return data


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
    """The one interface both backends implement; see tests/test_store_contract.py."""

    kind: str

    def ping(self) -> None:
        """Raise `StoreUnavailable` when the store cannot be reached."""

    def load_window(self, chat: ChatRef, limit: int) -> ChatState:
        """Return the system prompts and the newest `limit` messages (one round trip)."""

    def load_history(self, chat: ChatRef) -> ChatState:
        """Return the system prompts and every message, oldest first."""

    def load_page(self, chat: ChatRef, limit: int, before: int | None) -> ChatState:
        """Return up to `limit` messages numbered below `before` (None: newest), oldest first."""

    def chat_info(self, chat: ChatRef) -> ChatInfo | None:
        """Return a chat's activity and token totals, or None if it does not exist."""

    def list_chats(self, tenant: str, limit: int, before: float | None) -> list[ChatInfo]:
        """Return a tenant's live chats, most recent activity first, updated before `before`."""

    def save_turn(
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

    def acquire_turn(self, chat: ChatRef, token: str, lease_seconds: float) -> bool:
        """Take the chat's turn lock for `lease_seconds` unless someone else holds it."""

    def begin_turn(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> ChatState | None:
        """Take the chat's turn lock and read its window (as `load_window`) in one step;
        return None, reading nothing, while another token holds the lock. Taking it again with
        the same token renews the lease: a call re-sent after its reply was lost succeeds."""

    def release_turn(self, chat: ChatRef, token: str) -> None:
        """Release the turn lock if `token` still holds it."""

    def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim:
        """Claim `key` for a request (pending for `lease_seconds`), or report its state."""

    def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None:
        """Forget a pending claim (the request failed), so the client may retry."""

    def set_chat_system(self, chat: ChatRef, content: str | None) -> None:
        """Set (or with None remove) one chat's own system prompt."""

    def set_chat_settings(self, chat: ChatRef, settings: dict[str, Any]) -> None:
        """Replace a chat's own settings (model, temperature, max_tokens); {} removes them."""

    def get_global_system(self) -> str | None:
        """Return the stored global system prompt ("" = explicitly none, None = never set)."""

    def set_global_system(self, content: str) -> None:
        """Store the global system prompt ("" = explicitly none)."""

    def delete_chat(self, chat: ChatRef) -> bool:
        """Delete a chat's messages, system prompt and record; return whether it existed.

        A running turn's lock is left to its holder, and idempotency records stay for their
        24 hours, so a retried request still gets the answer it was given.
        """

    def close(self) -> None:
        """Release connections."""


class AsyncStore(Protocol):
    """`Store` for coroutines: the same methods, answers and errors, awaited (the contract
    suite runs against both kinds)."""

    kind: str

    async def ping(self) -> None: ...

    async def load_window(self, chat: ChatRef, limit: int) -> ChatState: ...

    async def load_history(self, chat: ChatRef) -> ChatState: ...

    async def load_page(self, chat: ChatRef, limit: int, before: int | None) -> ChatState: ...

    async def chat_info(self, chat: ChatRef) -> ChatInfo | None: ...

    async def list_chats(self, tenant: str, limit: int, before: float | None) -> list[ChatInfo]: ...

    async def save_turn(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        *,
        lock_token: str | None = None,
        idempotent: IdempotentResult | None = None,
        release: bool = False,
    ) -> bool: ...

    async def acquire_turn(self, chat: ChatRef, token: str, lease_seconds: float) -> bool: ...

    async def begin_turn(
        self, chat: ChatRef, token: str, lease_seconds: float, limit: int
    ) -> ChatState | None: ...

    async def release_turn(self, chat: ChatRef, token: str) -> None: ...

    async def claim_idempotency(
        self, chat: ChatRef, key: str, fingerprint: str, lease_seconds: float
    ) -> IdempotencyClaim: ...

    async def release_idempotency(self, chat: ChatRef, key: str, fingerprint: str) -> None: ...

    async def set_chat_system(self, chat: ChatRef, content: str | None) -> None: ...

    async def set_chat_settings(self, chat: ChatRef, settings: dict[str, Any]) -> None: ...

    async def get_global_system(self) -> str | None: ...

    async def set_global_system(self, content: str) -> None: ...

    async def delete_chat(self, chat: ChatRef) -> bool: ...

    async def close(self) -> None: ...

"""Own the Conversations API's operations on chats: a conversation is a chat (the same id, the
same store, no copy), and its items are the messages of the chat's current path.

A conversation made here gets a fresh id (`conv_<48 hex digits>`); any chat of the caller's
tenant is a conversation, whichever route made it. What this module reads and writes:

- creating one stores its first messages and its metadata in one atomic save (nothing
  half-stored; a save of no messages makes the chat's record);
- adding messages takes the chat's turn lock as a turn does (waiting up to
  TURN_WAIT_SECONDS, else `ChatBusy`), places them under the leaf and saves them fenced by
  the lock, releasing it in the same step;
- a page of the path: newest first, walked up from the leaf or from the message of the
  cursor only as far as the page reaches (`load_page`), so any page costs what the first
  does; oldest first, the whole path is read (`load_history`, one round trip) and the page
  cut from it: the store walks a path up from its end only, and the first page needs its
  start, so an ascending walk of N messages reads N / page size paths;
- removing a message (`delete_items`: its children move up to its parent), refused with
  `ChatBusy` while a turn holds the chat.

Messages are checked before anything is stored: each within MAX_CONTENT_CHARS, and tool
results answering the calls left waiting at the end of the path (or made earlier in the same
request), each once and before any other message, so the path stays one a chat completion
model takes. Calls may be left waiting at the end: their results come in a later request.
"""

from __future__ import annotations

import bisect
import secrets
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from chatproxy.config import Settings
from chatproxy.errors import NotFound, ValidationFailed
from chatproxy.service.guard import TurnGuard
from chatproxy.store.base import Store
from chatproxy.store.items import ChatInfo, ChatRef, ChatState, Message, chained
from chatproxy.tokens import content_text

ID_PREFIX = "conv_"
LOOKBACK = 32  # newest messages read to find the tool calls still waiting for results


class Conversations:
    """The Conversations API over one store; never calls the model."""

    def __init__(self, settings: Settings, store: Store):
        self._settings = settings
        self._store = store
        self._guard = TurnGuard(settings, store)

    async def create(
        self, tenant: str, messages: Sequence[Mapping[str, Any]], metadata: dict[str, str] | None
    ) -> ChatInfo:
        """Make a conversation holding `messages` (a path from its first message) and
        `metadata`; return it."""
        self._check_lengths(messages)
        new = _checked(messages, [])
        chat = ChatRef(tenant, ID_PREFIX + secrets.token_hex(24))
        kept = metadata or ({} if not new else None)  # a chat of no items: its metadata shows
        await self._store.save_turn(chat, uuid.uuid4().hex, new, metadata=kept)
        return await self.get(chat)

    async def get(self, chat: ChatRef) -> ChatInfo:
        """Return the conversation, or raise `NotFound`."""
        info = await self._store.chat_info(chat)
        if info is None:
            raise _no_conversation(chat)
        return info

    async def update(self, chat: ChatRef, metadata: dict[str, str] | None) -> ChatInfo:
        """Replace the conversation's metadata (None: none); return it."""
        if not await self._store.set_chat_metadata(chat, metadata or {}):
            raise _no_conversation(chat)  # never made, or deleted: not made again
        return await self.get(chat)

    async def delete(self, chat: ChatRef) -> None:
        """Delete the conversation, or raise `NotFound`."""
        if not await self._store.delete_chat(chat):
            raise _no_conversation(chat)

    async def listing(
        self, tenant: str, limit: int, after: str | None
    ) -> tuple[list[ChatInfo], bool]:
        """A page of the tenant's conversations in the store's listing order (most recent
        activity first), after the conversation `after`; and whether more follow."""
        try:
            found = await self._store.list_chats(tenant, limit + 1, None, after)
        except NotFound:
            raise ValidationFailed(f"after: no conversation {after!r}", param="after") from None
        return found[:limit], len(found) > limit

    async def append(self, chat: ChatRef, messages: Sequence[Mapping[str, Any]]) -> list[Message]:
        """Add `messages` under the conversation's leaf, under its turn lock; return them
        stored (with their ids)."""
        self._check_lengths(messages)  # before the lock: a refusal holds nothing
        async with self._guard.locked(chat, LOOKBACK) as lease:
            state = lease.state
            if not state.exists:
                raise _no_conversation(chat)
            path = await self._since_calls(chat, state.messages, state.leaf)
            new = chained(_checked(messages, path), state.next_id, state.leaf)
            if new:
                await self._guard.save(chat, uuid.uuid4().hex, new, lease, None)
        return new

    async def _since_calls(
        self, chat: ChatRef, path: Sequence[Message], leaf: int | None
    ) -> Sequence[Message]:
        """`path` (the newest messages), read further back while it holds only tool results
        and more came before them: the calls they answer are in the message above."""
        limit = len(path)
        while limit >= LOOKBACK and path and all(m.role == "tool" for m in path):
            limit *= 4
            path = (await self._store.load_window(chat, limit, leaf)).messages
            if len(path) < limit:
                break
        return path

    async def message(self, chat: ChatRef, message_id: int) -> Message | None:
        """The conversation's stored message `message_id`, if it holds it."""
        (found,) = await self._store.load_items(chat, [message_id])
        return found

    async def delete_message(self, chat: ChatRef, message_id: int, *, tool: bool) -> ChatInfo:
        """Remove the stored message `message_id`, a tool result (`tool`) or not, or raise
        `NotFound`; its children move up to its parent. Return the conversation."""
        found = await self.message(chat, message_id)
        held = found is not None and (found.role == "tool") == tool
        if not held or not await self._store.delete_items(chat, [message_id]):
            raise NotFound(f"no such item in conversation {chat.chat_id!r}")
        return await self.get(chat)

    async def path(
        self,
        chat: ChatRef,
        *,
        descending: bool,
        after: int | None = None,
        with_after: bool = False,
        count: int,
    ) -> list[Message]:
        """Up to `count` messages of the conversation's current path after the message
        `after` (oldest first, or newest first when `descending`); with `with_after`, that
        message first too, if the chat holds it. A cursor the chat no longer holds (removed)
        goes on from where it was: the ids along a path grow."""
        if descending:
            state = await self._store.load_page(chat, count, after)
            _exists(chat, state)
            newest = state.messages[::-1]
            if after is not None and with_after:
                cursor = await self.message(chat, after)
                newest[:0] = [cursor] if cursor is not None else []
            return newest
        state = await self._store.load_history(chat)
        _exists(chat, state)
        path = state.messages
        if after is None:
            return path[:count]
        start = bisect.bisect_right(path, after, key=_id)  # the first message after it
        if with_after and start and path[start - 1].id == after:
            start, count = start - 1, count + 1
        return path[start : start + count]

    def _check_lengths(self, messages: Sequence[Mapping[str, Any]]) -> None:
        limit = self._settings.max_content_chars
        if any(len(content_text(m.get("content"))[0]) > limit for m in messages):
            raise ValidationFailed(
                f"items: an item's text is longer than {limit} characters (MAX_CONTENT_CHARS)",
                param="items",
            )


def _checked(messages: Sequence[Mapping[str, Any]], path: Sequence[Message]) -> list[Message]:
    """The messages to store after `path` (the newest part of the path they go under),
    refused as the module's docstring says."""
    waiting = _waiting(path)
    new = []
    for message in messages:
        role = message["role"]
        if role == "tool":
            call = message.get("tool_call_id")
            if call not in waiting:
                raise ValidationFailed(
                    f"items: the function_call_output for call_id {call!r:.80} answers no"
                    " function_call waiting for its output",
                    param="items",
                )
            waiting.remove(call)
        elif waiting:
            raise ValidationFailed(
                f"items: no function_call_output yet for call_id {sorted(waiting)[0]!r:.80};"
                " the outputs of a message's calls come before any other item",
                param="items",
            )
        else:
            waiting = {str(call.get("id")) for call in message.get("tool_calls") or []}
        new.append(_stored(message))
    return new


def _waiting(path: Sequence[Message]) -> set[str]:
    """The ids of the tool calls left without results at the end of `path`."""
    answered: set[str] = set()
    for message in reversed(path):
        if message.role != "tool":
            calls = message.tool_calls if message.role == "assistant" else None
            return {str(call.get("id")) for call in calls or []} - answered
        answered.add(str(message.tool_call_id))
    return set()


def _stored(message: Mapping[str, Any]) -> Message:
    """A message as the store keeps it."""
    return Message(
        role=message["role"],
        content=message.get("content"),
        tool_calls=message.get("tool_calls") or None,
        tool_call_id=message.get("tool_call_id"),
    )


def _id(message: Message) -> int:
    assert message.id is not None  # a stored message has its id
    return message.id


def _exists(chat: ChatRef, state: ChatState) -> None:
    if not state.exists:
        raise _no_conversation(chat)


def _no_conversation(chat: ChatRef) -> NotFound:
    return NotFound(f"conversation with id {chat.chat_id!r} not found")

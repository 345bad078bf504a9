"""Own what a chat turn is, and the other operations on chats and system prompts.

A turn: load the chat's window (system prompt + newest messages) in one store round trip, send
system + window + the new user message upstream, then save the user message and the reply together
in one atomic, idempotent step. Nothing is stored unless the upstream answered. This module never
touches HTTP; handlers never touch the store or the upstream.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from chatproxy.config import Settings
from chatproxy.errors import StoreUnavailable
from chatproxy.store import ChatRef, ChatState, Message, Store
from chatproxy.upstream import Upstream

SAVE_ATTEMPTS = 3
SAVE_RETRY_DELAY = 0.2


class ChatService:
    """Turns, histories, system prompts and moderation, over one store and one upstream."""

    def __init__(self, settings: Settings, store: Store, upstream: Upstream):
        self._settings = settings
        self._store = store
        self._upstream = upstream

    def turn(self, chat: ChatRef, content: str) -> Message:
        """Send a text message in `chat` and return the stored reply."""
        return self._turn(chat, content, model=self._settings.model)

    def image_turn(self, chat: ChatRef, text: str, image_url: str) -> Message:
        """Send a message that carries an image to the vision model."""
        parts: list[dict[str, Any]] = [
            {"type": "text", "text": text},
            {"type": "image_url", "image_url": {"url": image_url}},
        ]
        return self._turn(chat, parts, model=self._settings.vision_model)

    def _turn(self, chat: ChatRef, content: str | list[dict[str, Any]], *, model: str) -> Message:
        user = Message("user", content)
        state = self._store.load_window(chat, self._settings.messages_length)
        can_see = model == self._settings.vision_model
        outgoing = [m.for_upstream() for m in state.messages] + [user.for_upstream()]
        if not can_see:
            outgoing = [_without_images(m) for m in outgoing]
        system = self._system_prompt(state)
        if system:
            outgoing.insert(0, {"role": "system", "content": system})
        completion = self._upstream.complete(
            outgoing, model=model, max_tokens=self._settings.max_tokens
        )
        reply = Message(
            "assistant",
            completion.content,
            usage=completion.usage,
            model=completion.model,
        )
        self._save(chat, uuid.uuid4().hex, [user, reply])
        return reply

    def _save(self, chat: ChatRef, turn_id: str, messages: list[Message]) -> None:
        """Save the turn, retrying a store outage: the upstream's answer is already paid for.

        The save is idempotent by `turn_id`, so a retry after a save that did land stores nothing.
        """
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                self._store.save_turn(chat, turn_id, messages)
                return
            except StoreUnavailable:
                if attempt == SAVE_ATTEMPTS:
                    raise
                time.sleep(SAVE_RETRY_DELAY * attempt)

    def history(self, chat: ChatRef) -> list[dict[str, Any]]:
        """Return the chat's messages oldest first, its system prompt first when it has one."""
        state = self._store.load_history(chat)
        messages = [m.to_json() for m in state.messages]
        system = self._system_prompt(state)
        if state.exists and system:
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def chat_system(self, chat: ChatRef) -> dict[str, Any]:
        """Return the system prompt that applies to `chat` and where it comes from."""
        state = self._store.load_window(chat, 0)
        if state.chat_system:
            return {"role": "system", "content": state.chat_system, "source": "chat"}
        return {
            "role": "system",
            "content": self._global_system(state.global_system) or None,
            "source": "global",
        }

    def set_chat_system(self, chat: ChatRef, content: str | None) -> dict[str, Any]:
        """Set or (with None) remove the chat's own system prompt; return what now applies."""
        self._store.set_chat_system(chat, content)
        return self.chat_system(chat)

    def global_system(self) -> dict[str, Any]:
        """Return the global default system prompt."""
        content = self._global_system(self._store.get_global_system())
        return {"role": "system", "content": content or None}

    def set_global_system(self, content: str | None) -> dict[str, Any]:
        """Set the global default system prompt; None removes it (SYSTEM_PROMPT included)."""
        self._store.set_global_system(content or "")
        return self.global_system()

    def clear(self, chat: ChatRef) -> bool:
        """Delete the chat; return whether it existed."""
        return self._store.delete_chat(chat)

    def moderate(self, text: str) -> dict[str, Any]:
        """Run the upstream moderation model on `text`."""
        return self._upstream.moderate(text, model=self._settings.moderation_model)

    def ping_store(self) -> None:
        """Raise `StoreUnavailable` if the store cannot be reached."""
        self._store.ping()

    def close(self) -> None:
        """Release the store's and the upstream's connections."""
        self._store.close()
        self._upstream.close()

    def _system_prompt(self, state: ChatState) -> str | None:
        """Pick the chat's own prompt, else the global one; never an empty one."""
        return state.chat_system or self._global_system(state.global_system) or None

    def _global_system(self, stored: str | None) -> str | None:
        """The stored global prompt wins; SYSTEM_PROMPT applies until one is stored."""
        return self._settings.system_prompt if stored is None else stored


def _without_images(message: dict[str, Any]) -> dict[str, Any]:
    """Flatten image parts to text for a model that cannot see them."""
    content = message["content"]
    if isinstance(content, str):
        return message
    words = []
    for part in content:
        if part.get("type") == "text":
            words.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            url = str(part.get("image_url", {}).get("url", ""))
            words.append("[image]" if url.startswith("data:") else f"[image: {url}]")
    return {"role": message["role"], "content": " ".join(words)}

"""Own the operations on chats besides turns: histories and their pages, the listing, usage,
system prompts, per-chat settings, deleting a chat. Turns are `turns.py`'s."""

from __future__ import annotations

from typing import Any

from chatproxy.config import Settings
from chatproxy.errors import NotFound
from chatproxy.service.defaults import NO_OPTIONS, Defaults, TurnOptions
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef

DEFAULT_PAGE = 50


class Chats:
    """Reads and changes chats in one store; never calls the model."""

    def __init__(self, settings: Settings, store: Store):
        self._settings = settings
        self._store = store
        self._defaults = Defaults(settings)

    async def chat_settings(self, chat: ChatRef) -> dict[str, Any]:
        """Return what a text turn in `chat` would use, and which of it the chat sets itself."""
        state = await self._store.load_window(chat, 0)
        call = self._defaults.call(state.settings, False, NO_OPTIONS)
        return {
            "model": call.model,
            "temperature": call.temperature,
            "max_tokens": call.max_tokens,
            "system": self._defaults.system_prompt(state),
            "compaction": state.settings.get("compaction") or self._settings.compaction.mode,
            "own": {**state.settings, "system": state.chat_system},
            "allowed_models": list(self._settings.allowed_models),
        }

    async def update_chat_settings(self, chat: ChatRef, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some of a chat's settings; a None value removes that setting."""
        self._defaults.check(
            TurnOptions(model=changes.get("model"), max_tokens=changes.get("max_tokens"))
        )
        if changes:
            await self._store.update_chat_settings(chat, changes)
        return await self.chat_settings(chat)

    async def history(
        self,
        chat: ChatRef,
        *,
        limit: int | None = None,
        before: int | None = None,
        leaf: int | None = None,
        summaries: bool = False,
    ) -> list[dict[str, Any]]:
        """Return the path from the chat's first message to its current leaf (or to `leaf`),
        oldest first, each message with its `id`, `parent` and `siblings` (the ids of its
        parent's children, itself among them, oldest first; the chat's first messages for one
        whose parent trimming dropped); with `summaries`, each summary of the path
        (compaction) right after the last message it covers.

        Without `limit` and `before`: the whole path, the system prompt first when the chat
        has one. With them: a page of at most `limit` messages before the message `before` on
        its own path (without `leaf`, one off the current path pages the path it is on: see
        `Store.load_page`).
        """
        if limit is None and before is None:
            state = await self._store.load_history(chat, leaf, children=True, summaries=summaries)
        else:
            page = limit or DEFAULT_PAGE
            state = await self._store.load_page(
                chat, page, before, leaf, children=True, summaries=summaries
            )
        kids = state.children or {}
        # A parent MAX_CHAT_MESSAGES dropped lists none: its children start paths, as first ones.
        messages = [
            {**m.to_json(), "siblings": kids.get(m.parent) or kids.get(None) or [m.id]}
            for m in state.messages
        ]
        if state.summaries:
            found = {item: summary.to_json() for item, summary in state.summaries.items()}
            messages = [shown for m in messages for shown in (m, found.get(m["id"])) if shown]
        system = self._defaults.system_prompt(state)
        if state.exists and system and limit is None and before is None:
            messages.insert(0, {"role": "system", "content": system})
        return messages

    async def children(self, chat: ChatRef, parent: int | None) -> dict[str, Any]:
        """Return the ids of a message's children; for None, those of the chat's first
        messages and how many messages the chat holds: what a turn's save left of it (trimming,
        MAX_CHAT_MESSAGES, drops the oldest), read in one step."""
        if parent is None:
            kids, count = await self._store.first_messages(chat)
            return {"parent": None, "children": kids, "messages": count}
        (kids,) = await self._store.children(chat, [parent], strict=True)
        return {"parent": parent, "children": kids}

    async def set_leaf(self, chat: ChatRef, item_id: int, *, descend: bool) -> dict[str, Any]:
        """Make a message (or, with `descend`, its newest descendant) the chat's current leaf."""
        leaf = await self._store.set_leaf(chat, item_id, descend=descend)
        if leaf is None:
            raise NotFound("no such message in this chat")
        return {"leaf": leaf}

    async def chats(
        self, tenant: str, *, limit: int, before: float | None, before_id: str = ""
    ) -> dict[str, Any]:
        """List a tenant's chats, newest activity first, with the cursor of the next page (the
        last chat's activity and id)."""
        found = await self._store.list_chats(tenant, limit, before, before_id=before_id)
        last = found[-1] if len(found) == limit else None
        return {
            "chats": [info.to_json() for info in found],
            "next_before": last.updated if last else None,
            "next_before_id": last.chat_id if last else None,
        }

    async def usage(self, chat: ChatRef) -> dict[str, Any]:
        """Return the chat's token totals and size."""
        info = await self._store.chat_info(chat)
        if info is None:
            raise NotFound("no such chat")
        return info.to_json()

    async def chat_system(self, chat: ChatRef) -> dict[str, Any]:
        """Return the system prompt that applies to `chat` and where it comes from."""
        state = await self._store.load_window(chat, 0)
        if state.chat_system:
            return {"role": "system", "content": state.chat_system, "source": "chat"}
        return {
            "role": "system",
            "content": self._defaults.global_system(state.global_system) or None,
            "source": "global",
        }

    async def set_chat_system(self, chat: ChatRef, content: str | None) -> dict[str, Any]:
        """Set or (with None) remove the chat's own system prompt; return what now applies."""
        await self._store.set_chat_system(chat, content)
        return await self.chat_system(chat)

    async def global_system(self) -> dict[str, Any]:
        """Return the global default system prompt."""
        stored = await self._store.get_global_system()
        content = self._defaults.global_system(stored)
        return {"role": "system", "content": content or None}

    async def set_global_system(self, content: str | None) -> dict[str, Any]:
        """Set the global default system prompt; None removes it (SYSTEM_PROMPT included)."""
        await self._store.set_global_system(content or "")
        return await self.global_system()

    async def clear(self, chat: ChatRef) -> bool:
        """Delete the chat; return whether it existed."""
        return await self._store.delete_chat(chat)

    async def ping_store(self) -> None:
        """Raise `StoreUnavailable` if the store cannot be reached."""
        await self._store.ping()

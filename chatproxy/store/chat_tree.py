"""Own the whole of one chat as the stores read and write it at once (`ChatTree`): every item
of its tree, every branch, its summaries (compaction), and its record (leaf, system prompt,
settings, metadata, title, times and token totals). Export and import move chats as these
(`Store.load_tree`, `Store.save_tree`); a turn never reads one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chatproxy.errors import ValidationFailed
from chatproxy.tokens import USAGE_FIELDS

if TYPE_CHECKING:  # named in annotations only: the SQLite store's modules stand on this one
    from chatproxy.store.items import Message
    from chatproxy.store.summary import Summary


class DocumentError(ValueError):
    """Why a chat cannot be imported (a chat document, a chat of another tool's export),
    naming the place (`items[3] (id 7): ...`, `node 'abc': ...`)."""


@dataclass(frozen=True)
class ChatTree:
    """One chat whole: its items in the order of their ids, each with its id and parent, and
    what its record holds. `tokens` are the chat's totals (what its turns used, which items
    removed since still count in), not a sum over `items`."""

    chat_id: str
    created: float
    updated: float
    items: list[Message]
    leaf: int | None = None
    title: str | None = None
    system: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, str] | None = None
    tokens: dict[str, int] = field(default_factory=lambda: dict.fromkeys(USAGE_FIELDS, 0))
    summaries: list[Summary] = field(default_factory=list)  # by the last item each covers

    @property
    def next_id(self) -> int:
        """The id the chat's next item gets: one above its highest."""
        return max((item.id for item in self.items if item.id is not None), default=-1) + 1


def check_size(tree: ChatTree, most: int) -> None:
    """Refuse (`ValidationFailed`) a tree of more than `most` items (0: no bound): a store
    trims a chat to its newest `most`, which an import must not do silently."""
    if most and len(tree.items) > most:
        raise ValidationFailed(
            f"chat {tree.chat_id!r} holds {len(tree.items)} items,"
            f" more than MAX_CHAT_MESSAGES ({most})"
        )

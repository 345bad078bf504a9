"""Own what compaction keeps beside a chat's tree: a `Summary`. A floor of the store: it stands
on nothing of ours, so every store module may use it (the SQLite store's modules are deep)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Summary:
    """A readable summary of the path from a first message to the item `last`, made when its
    messages no longer fitted a window (compaction). A tree has one path to an item, so the
    summary holds for every path through `last`: a branch below it shares it, a branch above it
    never sees it. `first` is the oldest item it covers; `model` and `usage` are the call that
    wrote it."""

    first: int
    last: int
    content: str
    model: str | None = None
    usage: dict[str, int] | None = None
    created_at: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        """The stored and client-facing form."""
        return {
            "type": "summary",
            "covers": [self.first, self.last],
            "content": self.content,
            "model": self.model,
            "tokens": self.usage,
            "created_at": self.created_at,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        first, last = data["covers"]
        return cls(
            first=int(first),
            last=int(last),
            content=str(data["content"]),
            model=data.get("model"),
            usage=data.get("tokens"),
            created_at=float(data.get("created_at", 0.0)),
        )

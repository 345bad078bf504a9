"""Own the original project's Redis layout and how its values parse.

Each chat was a Redis list `user-<chat_id>` of JSON messages (`{"role": ..., "content": ...}`,
oldest first, the chat's system message first when it had one), and the global system prompt
the string key `system`. `parse_legacy` reads one chat's list into its system message and the
rest, `legacy_text` a key or value as text; both raise `LegacyProblem` naming what does not fit,
which the import (`legacy.py`) reports for that chat before it goes on to the next.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from chatproxy.store.items import Content, Message

KEY_PREFIX = "user-"
GLOBAL_SYSTEM_KEY = "system"


class LegacyProblem(Exception):
    """Why one legacy chat (or the global prompt) cannot be imported."""


@dataclass(frozen=True)
class LegacyChat:
    """One legacy chat, parsed: its leading system message and the rest."""

    system: str | None
    messages: list[Message]


def parse_legacy(entries: Sequence[Any]) -> LegacyChat:
    """Parse a legacy list; raise `LegacyProblem` naming the first element that does not fit."""
    system: str | None = None
    messages: list[Message] = []
    for index, raw in enumerate(entries):
        where = f"element {index}"
        try:
            data = json.loads(legacy_text(raw))
        except LegacyProblem as problem:
            raise LegacyProblem(f"{where}: {problem}") from None
        except (json.JSONDecodeError, RecursionError):
            raise LegacyProblem(f"{where} is not JSON") from None
        if not isinstance(data, dict):
            raise LegacyProblem(f"{where} is not a JSON object")
        role, content = data.get("role"), data.get("content")
        if not _is_content(content):
            raise LegacyProblem(f"{where} has no text or content parts")
        if role == "system" and index == 0 and isinstance(content, str):
            system = content
        elif role == "system":
            raise LegacyProblem(f"{where} is a system message that does not open the chat")
        elif role in ("user", "assistant"):
            messages.append(Message(role, content))
        else:
            raise LegacyProblem(f"{where} has the role {role!r} (only user and assistant import)")
    return LegacyChat(system, messages)


def _is_content(content: object) -> TypeGuard[Content]:
    """Tell text or a list of content parts, storable as UTF-8, from anything else."""
    if not isinstance(content, str) and not (
        isinstance(content, list) and all(isinstance(part, dict) for part in content)
    ):
        return False
    try:
        json.dumps(content, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        return False
    return True


def legacy_text(value: object) -> str:
    """Return a key or value of the source as text: a client without `decode_responses` gives
    bytes, which must be UTF-8."""
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise LegacyProblem("not UTF-8") from None
    if isinstance(value, str):
        return value
    raise LegacyProblem(f"unexpected {type(value).__name__}")

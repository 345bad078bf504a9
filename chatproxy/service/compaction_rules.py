"""Own the rules of compaction that count no tokens (`compaction.py` owns the rest): which
summary a path may use, what a window sends beside it, and the text a summary is written from.
Pure, and low in the import chain: it stands on `tokens.py` alone."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chatproxy.tokens import content_text

if TYPE_CHECKING:  # pure functions of messages and summaries: they only read them
    from chatproxy.store.items import Message
    from chatproxy.store.summary import Summary

SUMMARY_HEADING = "Summary of the earlier conversation:"
UNREAD = "(Messages between the summary so far and the new messages were not read.)"


def summary_on(summary: Summary | None, path: Sequence[Message]) -> Summary | None:
    """`summary`, if it ends at an item of `path` (oldest first) or at the one above it."""
    if summary is None or not path:
        return None
    on = summary.last == path[0].parent or any(m.id == summary.last for m in path)
    return summary if on else None


def after_summary(path: Sequence[Message], summary: Summary | None) -> list[Message]:
    """The messages of `path` that `summary` does not cover (ids grow along a path)."""
    if summary is None:
        return list(path)
    return [m for m in path if (m.id or 0) > summary.last]


def with_summary(system: str | None, summary: Summary | None) -> str | None:
    """The system prompt a window sends: the chat's, then the summary."""
    if summary is None:
        return system
    block = f"{SUMMARY_HEADING}\n{summary.content}"
    return f"{system}\n\n{block}" if system else block


def transcript(
    summary: Summary | None,
    messages: Sequence[Message],
    most_chars: int,
    unread: bool = False,
    summary_chars: int | None = None,
) -> str:
    """The text a summary is written from: the summary so far (cut to `summary_chars`) and the
    new messages, each cut to `most_chars` characters (`unread`: saying that messages between
    them were not read; none: the summary so far is written again)."""
    so_far = summary.content[:summary_chars] if summary else "(none)"
    lines = [f"Summary so far:\n{so_far}", ""]
    if unread:
        lines += [UNREAD, ""]
    lines.append("New messages:")
    if not messages:
        lines.append("(none)")
    for message in messages:
        text = content_text(message.content)[0][:most_chars]
        if message.tool_calls:
            calls = ", ".join(_called(call) for call in message.tool_calls)
            text = f"{text} (calls {calls})".strip()
        lines.append(f"[{message.role}] {text}")
    return "\n".join(lines)


def _called(call: Any) -> str:
    """The name a stored tool call calls (kept as the model wrote it: checked for nothing)."""
    body = call.get(call.get("type") or "function") if isinstance(call, dict) else None
    return str(body.get("name")) if isinstance(body, dict) else "?"

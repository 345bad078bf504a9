"""Own which tool calls of a chat's path wait for results, and whether a request's tool results
answer them: each pending call once, before anything else comes, and none left waiting at the
request's end (the model must see every call answered). Used by the placement of a request's
messages (`placement.py`); a refusal names the message at fault as `message_rules.Names` does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chatproxy.errors import ValidationFailed
from chatproxy.service.message_rules import Names
from chatproxy.store.items import Message


def waiting_after(path: Sequence[Message], end: int) -> dict[str, str]:
    """The calls left waiting for results after `path[:end]`, each with where it was made: the
    calls above the results that end it but those answered (items may bring them in parts)."""
    answered = set()
    for message in reversed(path[:end]):
        if message.role != "tool":
            calls = message.tool_calls if message.role == "assistant" else None
            made = f"the chat's message {message.id}"
            return {str(c.get("id")): made for c in calls or [] if str(c.get("id")) not in answered}
        answered.add(str(message.tool_call_id))
    return {}


def check_answers(
    waiting: dict[str, str], messages: Sequence[Mapping[str, Any]], first: int, names: Names
) -> None:
    """Check that tool results answer pending calls, each once, before anything else comes
    (`messages` start at the request's message `first`)."""
    answered: set[str] = set()
    for n, message in enumerate(messages, first):
        if message["role"] == "tool":
            call = message["tool_call_id"]
            if call in waiting:
                del waiting[call]
                answered.add(call)
                continue
            problem = "is answered twice" if call in answered else "answers no pending tool call"
            where = names.of(n, "tool_call_id")
            raise ValidationFailed(f"{where}: {call!r:.80} {problem}", param=where)
        if waiting:
            where = names.of(n)
            unanswered = _unanswered(waiting, names)
            raise ValidationFailed(f"{where}: no result yet for {unanswered}", param=where)
        answered = set()
        calls = message.get("tool_calls") or []
        waiting = {call["id"]: names.of(n) for call in calls}
    if waiting:
        unanswered = _unanswered(waiting, names)
        raise ValidationFailed(f"{names.whole}: no result for {unanswered}", param=names.whole)


def _unanswered(waiting: dict[str, str], names: Names) -> str:
    calls = ", ".join(f"{call!r:.80} (made in {origin})" for call, origin in waiting.items())
    return f"{calls}; send one {names.result} per call first"

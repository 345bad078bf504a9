"""Own the choice of what history goes upstream: the newest messages that fit a token budget.

The budget is `CONTEXT_TOKENS - MAX_TOKENS` (the reply needs room too). The system prompt, the
request's tool definitions (sent beside the messages, each call again) and the new message always
go; then the newest messages of the window (at most `MESSAGES_LENGTH`, read from the tail of the
chat, so the cost does not grow with the chat) while they fit.

Token counts: a reply's is exact (the upstream's `completion_tokens`, stored with it); other
messages are estimated as characters / 4, plus 4 tokens of overhead per message, and their
images, files and audio by `tokens.part_tokens`'s rules. No tokenizer files are needed, so this
works offline and at cold start. The tools are counted as their JSON text is, characters / 4
(`TurnOptions.tool_tokens`).

What is sent of the window is what a model accepts (`upstream_messages`): a path may hold
results whose calls were deleted, calls whose results were, or an import's such items, which
OpenAI refuses (400). Those are left out of what is sent, never of the chat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatproxy.errors import ContextLengthExceeded
from chatproxy.tokens import TOKENS_PER_MESSAGE, estimate_tokens

if TYPE_CHECKING:  # a pure function of messages: it only reads them
    from chatproxy.store.items import Message


def message_tokens(message: Message) -> int:
    """Count a stored message's tokens: exact for replies, estimated otherwise."""
    usage = message.usage or {}
    exact = usage.get("completion_tokens") if message.role == "assistant" else None
    if isinstance(exact, int):
        return exact + TOKENS_PER_MESSAGE
    return message.estimated_tokens + TOKENS_PER_MESSAGE


def fit_window(
    system: str | None,
    history: Sequence[Message],
    new: Message | Sequence[Message],
    *,
    budget: int,
    whole: bool = False,
    tools: int = 0,
) -> list[Message]:
    """Return the newest messages of `history` that fit `budget` beside the system prompt, the
    `tools` (the tokens of the tool definitions sent) and the new message (or messages: tool
    results, a user message), oldest first; refuse new messages that cannot fit at all, and
    with `whole` a history that does not fit whole (a Responses request with
    `truncation: disabled`: `ContextLengthExceeded`).

    Tool results go up with the message that made their calls, or a model refuses them: new
    results need the newest message of `history` (their calls), and the window never starts
    with results whose calls were left out."""
    asked = list(new) if isinstance(new, Sequence) else [new]
    needed = len(history) if asked and asked[0].role == "tool" and history else None
    if needed is not None:
        asked, history = [history[-1], *asked], history[:-1]
    used = tools + sum(message_tokens(message) for message in asked)
    if system:
        used += estimate_tokens(system) + TOKENS_PER_MESSAGE
    if used > budget:  # context_length_exceeded, as OpenAI answers a request too long
        beside = f" and the tool definitions (about {tools})" if tools else ""
        raise ContextLengthExceeded(
            f"content: the message needs about {used} tokens with the system prompt{beside},"
            f" more than the {budget} this chat may send (CONTEXT_TOKENS - MAX_TOKENS)"
        )
    kept: list[Message] = []
    for message in reversed(history):
        used += message_tokens(message)
        if used > budget:
            break
        kept.append(message)
    kept.reverse()
    if whole and len(kept) < len(history):
        raise ContextLengthExceeded(
            f"input: the conversation needs more than the {budget} tokens this model may be sent"
            " (CONTEXT_TOKENS - MAX_TOKENS); send truncation: auto to leave its oldest items out",
            param="input",
        )
    while kept and kept[0].role == "tool":  # their calls did not fit
        kept.pop(0)
    return kept + asked[:1] if needed is not None else kept


def upstream_messages(window: list[Message], asked: Sequence[Message]) -> list[dict[str, Any]]:
    """The chat completion messages of a turn: its window of the path, as a model accepts it
    (`answered_window`), then the messages it asks (checked when placed), as they are."""
    return [m.for_upstream() for m in [*answered_window(window, asked), *asked]]


def answered_window(window: list[Message], asked: Sequence[Message]) -> list[Message]:
    """`window` without what a model refuses before `asked`: a tool result whose call is not in
    the assistant message above its run of results (its call's message was deleted), and the
    calls of a message that its results do not all answer when another message follows them
    (their results were deleted); such a message goes with its text and the calls answered,
    or not at all when it has neither. The calls of the window's last message, when `asked`
    starts with results (they answer them now), wait as they are. A window without tool
    messages or calls is returned as it is, after one pass."""
    for message in window:
        if message.tool_calls or message.role == "tool":
            break
    else:
        return window  # the plain turn's: nothing to leave out
    answering = bool(asked) and asked[0].role == "tool"
    kept: list[Message] = []
    n, end = 0, len(window)
    while n < end:
        message, n = window[n], n + 1
        if message.role == "tool":
            continue  # no call above its run of results (its message was deleted): left out
        calls = message.tool_calls if message.role == "assistant" else None
        if not calls:
            kept.append(message)
            continue
        made = {call.get("id") for call in calls}
        results, answered = [], set()  # each call's first result
        while n < end and window[n].role == "tool":
            result, n = window[n], n + 1
            call = result.tool_call_id
            if call is not None and call in made and call not in answered:
                results.append(result)
                answered.add(call)
        if len(answered) < len(calls) and not (n == end and answering):
            left = [call for call in calls if call.get("id") in answered]
            if not (left or message.content):
                continue  # nothing of it is left to send
            message = replace(message, tool_calls=left or None)
        kept += [message, *results]
    return kept

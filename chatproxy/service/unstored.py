"""Own what a Responses request with `store: false` sends the model (`responses.py`): nothing of
it is written, so it goes through the pass-through with the system prompt (the request's
instructions and its input's leading system or developer messages, as a stored turn's, else the
chat's), the newest messages of the path it continues (at most
MESSAGES_LENGTH) that fit CONTEXT_TOKENS beside its input (`window.py`), then its input."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from chatproxy.service.content import leading_system
from chatproxy.service.window import fit_window
from chatproxy.store.items import Message

if TYPE_CHECKING:  # named in annotations only, which keeps `responses.py` four floors up
    from chatproxy.config import Settings
    from chatproxy.service.defaults import Defaults, TurnOptions
    from chatproxy.store.items import ChatState
    from chatproxy.store.summary import Summary

    Summarized = Callable[
        [ChatState, str | None, Sequence[Message], int, Sequence[Message], int, TurnOptions],
        tuple[str | None, list[Message], Summary | None],
    ]


def build_unstored(
    settings: Settings,
    defaults: Defaults,
    state: ChatState,
    sent: list[dict[str, Any]],
    instructions: str | None,
    options: TurnOptions,
    summarized: Summarized,
) -> list[dict[str, Any]]:
    """Return the messages a response that is not stored sends: the system prompt
    (`instructions` and `sent`'s leading system messages, joined by a blank line as a stored
    turn's are; else the chat's), the newest messages of `state`'s path that fit, and the rest
    of `sent` (its input as chat messages); a compacted chat's with its summary (`summarized`:
    `Outgoing.summarized`, as a stored turn's)."""
    prompts, first = leading_system(sent)
    own = [instructions, *prompts] if instructions else prompts
    sent = sent[first:]
    system = "\n\n".join(own) or defaults.system_prompt(state)
    call = defaults.call(state.settings, False, options)
    most = settings.messages_length
    asked = [_as_message(m) for m in sent]
    budget = settings.context_tokens - call.max_tokens
    system, history, _ = summarized(state, system, state.messages, most, asked, budget, options)
    window = fit_window(system, history, asked, budget=budget, whole=not options.truncate)
    outgoing = [m.for_upstream() for m in window] + sent
    return [{"role": "system", "content": system}, *outgoing] if system else outgoing


def _as_message(message: Mapping[str, Any]) -> Message:
    """A chat message as the window counts it."""
    return Message(
        message["role"],
        message.get("content"),
        tool_calls=message.get("tool_calls"),
        tool_call_id=message.get("tool_call_id"),
    )

"""Own what a Responses request with `store: false` sends the model (`responses.py`): nothing of
it is written, so it goes through the pass-through with the system prompt (the request's
instructions and its input's leading system or developer messages, as a stored turn's, else the
chat's), the newest messages of the path it continues (at most MESSAGES_LENGTH) that fit
CONTEXT_TOKENS beside its input and its tool definitions (`window.py`), then its input. The
input is placed on that path as a stored turn's is (`placement.py`, by the service): what it
sends back of the path (an `item_reference` to a reply, a resent history) is matched with it,
so the model sees each message once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from chatproxy.service.window import fit_window, upstream_messages

if TYPE_CHECKING:  # named in annotations only, which keeps `responses.py` four floors up
    from chatproxy.config import Settings
    from chatproxy.service.defaults import Defaults, TurnOptions
    from chatproxy.service.placing import Placing
    from chatproxy.store.items import ChatState, Message
    from chatproxy.store.summary import Summary

    Summarized = Callable[
        [ChatState, str | None, Sequence[Message], int, Sequence[Message], int, TurnOptions],
        tuple[str | None, list[Message], Summary | None],
    ]


def build_unstored(
    settings: Settings,
    defaults: Defaults,
    state: ChatState,
    placing: Placing,
    instructions: str | None,
    options: TurnOptions,
    summarized: Summarized,
) -> list[dict[str, Any]]:
    """Return the messages a response that is not stored sends, its input placed on `state`'s
    path as a turn's is (`placing`: what it resends of the path matched, not sent twice): the
    system prompt (`instructions` and the input's leading system messages, joined by a blank
    line as a stored turn's are; else the chat's), the newest messages of the path before the
    input that fit, and the input's messages; a compacted chat's with its summary
    (`summarized`: `Outgoing.summarized`, as a stored turn's)."""
    own = [text for text in (instructions, placing.system) if text]
    system = "\n\n".join(own) or defaults.system_prompt(state)
    call = defaults.call(state.settings, False, options)
    most = settings.messages_length
    asked = placing.asked
    budget = settings.context_tokens - call.max_tokens
    system, history, _ = summarized(state, system, placing.history, most, asked, budget, options)
    whole, tools = not options.truncate, options.tool_tokens
    window = fit_window(system, history, asked, budget=budget, whole=whole, tools=tools)
    outgoing = upstream_messages(window, asked)
    return [{"role": "system", "content": system}, *outgoing] if system else outgoing

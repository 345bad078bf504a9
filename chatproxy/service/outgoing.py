"""Own what a stored turn sends upstream: the system prompt (with the newest summary on the
path, when the chat is compacted: `compaction.py`), the newest messages of the path that fit
the token budget beside it and the request's tool definitions (`window.py`), the messages
asked; and the model, max_tokens and temperature to call with (`defaults.py`). A compacted
chat's turn that may not leave history out (`truncation: disabled`) and whose history does not
fit whole has its summary made first (`SummaryDue`, `Outgoing.build_summarized`; a summary kept
for a larger window, the settings changed since, is folded again to fit): refused only if the
messages asked do not fit beside one, or the summary made leaves too little room."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from chatproxy.config import Settings
from chatproxy.errors import ContextLengthExceeded
from chatproxy.service.compaction import READ_FACTOR, compacting
from chatproxy.service.compaction_rules import after_summary, summary_on, with_summary
from chatproxy.service.content import without_images
from chatproxy.service.defaults import CallOptions, Defaults, TurnOptions
from chatproxy.service.placing import Placing
from chatproxy.service.window import fit_window, message_tokens, upstream_messages
from chatproxy.store.items import ChatRef, ChatState, Message
from chatproxy.store.summary import Summary
from chatproxy.tokens import CHARS_PER_TOKEN, TOKENS_PER_MESSAGE, content_text, estimate_tokens

if TYPE_CHECKING:  # given by the turns it builds for: importing it would deepen the chain
    from chatproxy.service.compactor import Compactor


class SummaryDue(ContextLengthExceeded):
    """A compacted chat's window that may not leave history out and does not fit whole: the
    refusal that a summary through the item `through` (or one through any of `ends`: it and
    the items after it), made before the turn, lifts (not caught, it is the refusal)."""

    def __init__(
        self, refused: ContextLengthExceeded, through: int, ends: Sequence[int], dropped: bool
    ):
        super().__init__(refused.message, param=refused.param)
        self.through = through
        self.ends = ends
        self.dropped = dropped  # the path's summary was left out: too large for this window


class Outgoing:
    """Builds a stored turn's upstream messages and call, and notes its compaction."""

    def __init__(self, settings: Settings, defaults: Defaults, compactor: Compactor):
        self._settings = settings
        self._defaults = defaults
        self._compactor = compactor

    def build(
        self, chat: ChatRef, state: ChatState, placing: Placing, options: TurnOptions
    ) -> tuple[list[dict[str, Any]], CallOptions]:
        """The upstream's messages (system prompt, the history that fits, the messages asked)
        and the call's options."""
        asked = placing.asked
        image = any(content_text(m.content)[1] > 0 for m in asked)
        call = self._defaults.call(state.settings, image, options)
        system = placing.system
        if system is None:
            system = self._defaults.system_prompt(state)
        budget = self._settings.context_tokens - call.max_tokens
        most = self._settings.messages_length
        if asked[0].role == "tool":
            most = max(most, 1)  # tool results go up with the message that made their calls
        read = placing.history
        on = options.compact is not None or compacting(self._settings, state.settings)
        prompt, history, summary = self.summarized(
            state, system, read, most, asked, budget, options
        )
        dropped = None if summary else summary_on(state.summary, read)  # compacted: too large
        tools, whole = options.tool_tokens, not options.truncate
        try:
            window = fit_window(prompt, history, asked, budget=budget, whole=whole, tools=tools)
        except ContextLengthExceeded as refused:
            if not on or options.truncate:  # not compacted, or the messages asked do not fit
                raise
            through = self._due_now(system, summary, history, asked, budget, tools)
            if through is None:
                raise
            ends = [m.id for m in history if m.id is not None and m.id >= through]
            raise SummaryDue(refused, through, ends, dropped is not None) from None
        if options.compact:  # held to the request's threshold: the rest goes into the summary
            held = options.compact + _tokens_of(prompt, asked, tools)
            if asked[0].role == "tool" and window:  # the calls go up with their results
                held += message_tokens(window[-1])
            held = min(budget, held)
            window = fit_window(prompt, window, asked, budget=held, tools=tools)
        whole = len(state.messages) < READ_FACTOR * self._settings.messages_length  # read short
        self._compactor.plan(
            chat, on, read if most else [], window, summary, options.compact, whole, dropped
        )
        outgoing = upstream_messages(window, asked)
        if call.model != self._settings.vision_model:
            outgoing = [without_images(m) for m in outgoing]
        if prompt:
            outgoing.insert(0, {"role": "system", "content": prompt})
        return outgoing, call

    async def build_summarized(
        self,
        chat: ChatRef,
        state: ChatState,
        placing: Placing,
        options: TurnOptions,
        due: SummaryDue,
        deadline: float,
    ) -> tuple[list[dict[str, Any]], CallOptions]:
        """`build`, once the summary `due` asks for is made (within the turn's `deadline`, kept
        as a summary made after a turn is; or found kept: `Compactor.summary_for_turn`): the
        window starts after it. One kept for a larger window (the settings changed since) is
        folded again within COMPACTION_SUMMARY_TOKENS, in its place. Still refused if the
        summary is too large to leave room (or none could be kept)."""
        made = await self._compactor.summary_for_turn(chat, due.through, due.ends, deadline)
        if made is not None:
            state = replace(state, summary=made)
        try:
            return self.build(chat, state, placing, options)
        except SummaryDue as refused:
            if made is None or not refused.dropped:
                raise
        compactor, last = self._compactor, made.last
        again = await compactor.summary_for_turn(chat, last, [last], deadline, stale=made)
        return self.build(chat, replace(state, summary=again or made), placing, options)

    def _due_now(
        self,
        system: str | None,
        summary: Summary | None,
        history: Sequence[Message],
        asked: Sequence[Message],
        budget: int,
        tools: int,
    ) -> int | None:
        """The newest message of `history` a new summary must cover for the rest to fit
        `budget` beside it (at most COMPACTION_SUMMARY_TOKENS, or as large as `summary`), the
        `tools` and `asked`; None if `asked` does not fit beside one, or nothing need be left
        out."""
        chars = self._settings.compaction.summary_tokens * CHARS_PER_TOKEN
        largest = Summary(0, 0, "x" * max(chars, len(summary.content) if summary else 0))
        prompt = with_summary(system, largest)
        try:
            kept = fit_window(prompt, history, asked, budget=budget, tools=tools)
        except ContextLengthExceeded:
            return None
        ids = {m.id for m in kept}
        left = [m.id for m in history if m.id not in ids]
        return left[-1] if left else None

    def summarized(
        self,
        state: ChatState,
        system: str | None,
        read: Sequence[Message],
        most: int,
        asked: Sequence[Message],
        budget: int,
        options: TurnOptions,
    ) -> tuple[str | None, list[Message], Summary | None]:
        """What a window of the path `read` (its newest `most`) sends before `asked`: the system
        prompt, with the newest summary on the path for a compacted chat; the messages after
        that summary; and the summary (None: none, or one too large for this window beside the
        messages asked and the request's tools)."""
        on = options.compact is not None or compacting(self._settings, state.settings)
        summary = summary_on(state.summary, read) if on else None
        tools = options.tool_tokens
        if summary is not None and _tokens_of(with_summary(system, summary), asked, tools) > budget:
            summary = None  # written for a larger window (settings changed): left out
        history = after_summary(read[max(0, len(read) - most) :] if most else [], summary)
        return with_summary(system, summary), history, summary


def _tokens_of(system: str | None, asked: Sequence[Message], tools: int) -> int:
    """What the system prompt, the tool definitions (`tools`, their tokens) and the messages
    asked count against a window's budget."""
    prompt = estimate_tokens(system) + TOKENS_PER_MESSAGE if system else 0
    return prompt + tools + sum(message_tokens(message) for message in asked)

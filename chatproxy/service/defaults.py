"""Own what applies to a turn that does not say: its model, max_tokens, temperature and system
prompt come from the turn, else the chat's settings, else the configuration; and what a turn or a
chat may choose (ALLOWED_MODELS, at most MAX_TOKENS, one choice for a stored turn).

A turn's other fields (tools, response_format, seed, ...) are not the proxy's: they travel with
the turn as they were sent (`TurnOptions.fields`) and reach the model unchanged. Its tool
definitions are counted, though: what they cost the model in tokens (`TurnOptions.tool_tokens`)
is sent beside the messages with each call, against CONTEXT_TOKENS and the token budget."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from chatproxy.config import Settings
from chatproxy.errors import ValidationFailed
from chatproxy.store.items import ChatState


@dataclass(frozen=True)
class TurnOptions:
    """What a turn (or a chat's settings) may choose: model, max_tokens, temperature; and the
    request's other fields, passed on as they are. `truncate` says whether the oldest history
    may be left out to fit CONTEXT_TOKENS (else the turn is refused); `compact`, that the turn
    compacts its chat (`compaction.py`) with its window's history held to that many tokens (a
    Responses request's `context_management`; 0: no bound but CONTEXT_TOKENS). `tool_tokens`:
    the estimated tokens of the tool definitions among `fields` (their JSON text as the request
    measured it, `http.tool_limits`; 0 without any), sent with each call beside the messages."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    truncate: bool = True
    compact: int | None = None
    cap_name: str = "max_tokens"  # what the request called max_tokens (its errors name it)
    tool_tokens: int = 0
    begun: float | None = None  # when the request began (monotonic), if before the turn

    def deadline(self, timeout: float) -> float:
        """When the turn must end: `timeout` (REQUEST_TIMEOUT) after its request began (a
        response that waited for the turn it continues: `responses.py`), else from now."""
        return (time.monotonic() if self.begun is None else self.begun) + timeout


NO_OPTIONS = TurnOptions()


@dataclass(frozen=True)
class CallOptions:
    """The options a turn's upstream call is made with, once resolved."""

    model: str
    max_tokens: int
    temperature: float | None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "fields": self.fields,
        }


def check_one_choice(options: TurnOptions) -> None:
    """Refuse `n` other than 1 for a stored turn: a chat keeps one reply per turn."""
    n = options.fields.get("n")
    if n is not None and not (type(n) is int and n == 1):
        raise ValidationFailed(
            "n: a chat's turn has one reply; send n > 1 without a chat id", param="n"
        )


class Defaults:
    """Resolves a turn's options and system prompt against the chat's and the process's."""

    def __init__(self, settings: Settings):
        self._settings = settings

    def check(self, options: TurnOptions) -> None:
        """Refuse a model outside ALLOWED_MODELS or a max_tokens above MAX_TOKENS."""
        if options.model is not None and options.model not in self._settings.allowed_models:
            allowed = ", ".join(self._settings.allowed_models)
            raise ValidationFailed(
                f"model: {options.model!r} is not allowed; use one of {allowed}", param="model"
            )
        if options.max_tokens is not None and options.max_tokens > self._settings.max_tokens:
            name, most = options.cap_name, self._settings.max_tokens
            raise ValidationFailed(f"{name}: at most {most} (MAX_TOKENS)", param=name)

    def call(self, chat_settings: dict[str, Any], image: bool, options: TurnOptions) -> CallOptions:
        """Resolve this turn's model, max_tokens and temperature: the turn's own, else the chat's
        settings, else the defaults (an image turn's default model is VISION_MODEL).

        A chat's settings are held to today's limits, as the turn's own are (`check`): they may
        have been stored under others (ALLOWED_MODELS or MAX_TOKENS changed since, or an
        import), so a model no longer allowed gives way to the default, and a max_tokens above
        MAX_TOKENS is held to it."""
        default_model = self._settings.vision_model if image else self._settings.model
        chat_model = None if image else chat_settings.get("model")
        if chat_model not in self._settings.allowed_models:
            chat_model = None
        chat_max = chat_settings.get("max_tokens")
        if chat_max is not None:
            chat_max = min(chat_max, self._settings.max_tokens)
        temperature = options.temperature
        if temperature is None:
            temperature = chat_settings.get("temperature")
        return CallOptions(
            model=options.model or chat_model or default_model,
            max_tokens=options.max_tokens or chat_max or self._settings.max_tokens,
            temperature=temperature,
            fields=options.fields,
        )

    def system_prompt(self, state: ChatState) -> str | None:
        """Pick the chat's own prompt, else the global one; never an empty one."""
        return state.chat_system or self.global_system(state.global_system) or None

    def global_system(self, stored: str | None) -> str | None:
        """The stored global prompt wins; SYSTEM_PROMPT applies until one is stored."""
        return self._settings.system_prompt if stored is None else stored

"""Own what `POST /v1/responses` may carry: `ResponsesRequest`, and what it means for a turn:
the chat completion fields of its upstream call, its cap, and the settings a stored response
keeps so that a later `GET` rebuilds it (`responses_objects.response_object`).

Every refusal is a `ValidationFailed` naming the field (`param`), so `/v1` answers in OpenAI's
error shape and the SDKs raise their usual `BadRequestError`; `model_validate` raises it
itself (never a pydantic `ValidationError`), so `Context.body` passes it on as it is.

The fields, and what becomes of each:
- the turn: `model`, `input` (`responses_input.input_messages`), `instructions` (this
  response's only), `previous_response_id`, `conversation` (an id or `{"id"}`; not with
  `previous_response_id`), `store` (default true), `stream`, `truncation` (`auto` or the
  default `disabled`), `max_output_tokens` (the cap), `temperature`, and `context_management`
  (`[{"type": "compaction", "compact_threshold": N}]`: the turn compacts its chat, its history
  held to N tokens; see the README's "Long chats"): the service's;
- to the model (`chat_fields`): `tools` (at most 128 function tools, named as OpenAI takes
  them, their JSON text within MAX_TOOLS_CHARS: `tool_limits.py`), `tool_choice`,
  `parallel_tool_calls` (with tools), `text` (`response_format`, `verbosity`),
  `reasoning.effort` (`reasoning_effort`), `top_p`, `user`, `safety_identifier`, and the four
  that chat completions take as they are:
  `service_tier`, `prompt_cache_key`, `prompt_cache_retention`, `prompt_cache_options` (but
  its `prewarm`, a response that writes nothing, and `comparison_response_id`, which names a
  response of OpenAI's own: refused);
- kept and echoed, not acted on: `metadata` (at most 16 pairs, keys of at most 64 characters,
  string values of at most 512), `max_tool_calls`, `top_logprobs` (a stored reply keeps no
  logprobs);
- accepted and ignored, as the SDKs send them: `include` (the proxy has no reasoning content,
  logprobs or tool sources to add) and `stream_options` (its `include_obfuscation`: events are
  sent without obfuscation);
- refused, naming the field: `background: true` (no background responses), and `prompt`,
  `moderation`, `image`, `access_programs` (OpenAI features that a chat completion model behind
  the proxy has no counterpart for; null, which asks for none, is accepted);
- any other field: 400 "Unknown parameter", as OpenAI answers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from chatproxy.errors import ValidationFailed
from chatproxy.http.responses_checks import (
    check_input,
    check_metadata,
    conversation_id,
    failure,
)
from chatproxy.http.responses_objects import ECHOED
from chatproxy.http.responses_options import (
    chat_tool_choice,
    chat_tools,
    kept_options,
    reasoning_effort,
    text_fields,
)
from chatproxy.http.tool_limits import check_tools_size
from chatproxy.service.defaults import TurnOptions
from chatproxy.tokens import chars_tokens

JsonObject = dict[str, Any]

# OpenAI features with no counterpart behind the proxy: refused by name.
UNSUPPORTED = ("prompt", "moderation", "image", "access_programs")
# Chat completion fields of the same name and meaning, passed on as sent.
SAME_FIELDS = (
    "top_p",
    "user",
    "safety_identifier",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "prompt_cache_options",
)
# What `prompt_cache_options` may not ask of a turn: a reply (`prewarm`), OpenAI's own response.
CACHE_REFUSED = ("prewarm", "comparison_response_id")


class ResponsesRequest(BaseModel):
    """OpenAI's Responses request (`POST /v1/responses`); see the module's docstring."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    input: Any = Field(description="A string (a user message) or a list of input items.")
    instructions: StrictStr | None = None
    # `resp_<chat id>_<item id>`: a chat id is up to 128 characters, an item id up to 18 digits.
    previous_response_id: StrictStr | None = Field(default=None, min_length=1, max_length=152)
    conversation: Any = Field(default=None, description='A conversation id, or {"id": ...}.')
    store: StrictBool = True
    stream: StrictBool = False
    truncation: Literal["auto", "disabled"] = "disabled"
    max_output_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    top_p: StrictFloat | None = Field(default=None, ge=0, le=1)
    metadata: dict[StrictStr, StrictStr] | None = None
    user: StrictStr | None = Field(default=None, max_length=256)
    safety_identifier: StrictStr | None = Field(default=None, max_length=64)
    tools: list[Any] | None = None
    tool_choice: Any = None
    parallel_tool_calls: StrictBool | None = None
    text: dict[str, Any] | None = None
    reasoning: dict[str, Any] | None = None
    background: StrictBool | None = None
    context_management: list[Any] | None = Field(default=None, max_length=1)
    include: list[StrictStr] | None = None
    stream_options: dict[str, Any] | None = None
    top_logprobs: StrictInt | None = Field(default=None, ge=0, le=20)
    max_tool_calls: StrictInt | None = Field(default=None, ge=1)
    service_tier: StrictStr | None = Field(default=None, max_length=32)
    prompt_cache_key: StrictStr | None = Field(default=None, max_length=1024)
    prompt_cache_retention: StrictStr | None = Field(default=None, max_length=32)
    prompt_cache_options: dict[StrictStr, Any] | None = None
    _tools_chars: int = PrivateAttr(0)  # the JSON text of `tools`, measured

    @model_validator(mode="wrap")
    @classmethod
    def _openai_errors(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Refuse what the proxy does not offer by name, and any invalid field as a
        `ValidationFailed` naming it."""
        if isinstance(data, dict):
            for name in UNSUPPORTED:
                if data.get(name) is not None:
                    raise ValidationFailed(f"{name}: not supported by this proxy", param=name)
            # Null asks for none of it, as the SDKs send an optional one left as None.
            data = {k: v for k, v in data.items() if v is not None or k not in UNSUPPORTED}
        try:
            return handler(data)
        except ValidationError as exc:
            raise failure(exc) from None

    @field_validator("store", "stream", "truncation", mode="before")
    @classmethod
    def _null_is_default(cls, value: Any, info: Any) -> Any:
        return cls.model_fields[info.field_name].default if value is None else value

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> ResponsesRequest:
        check_input(self.input)
        if self.conversation is not None and self.previous_response_id is not None:
            raise ValidationFailed(
                "conversation: give either previous_response_id or conversation, not both",
                param="conversation",
            )
        conversation_id(self.conversation)
        check_metadata(self.metadata)
        for name in CACHE_REFUSED:
            if (self.prompt_cache_options or {}).get(name):
                where = f"prompt_cache_options.{name}"
                raise ValidationFailed(f"{where}: not supported by this proxy", param=where)
        if self.background:
            raise ValidationFailed(
                "background: background responses are not supported; leave it out (a stream"
                " shows the reply as it is written)",
                param="background",
            )
        self.chat_fields()  # refuses tools, tool_choice, text and reasoning it cannot send
        max_chars = (info.context or {}).get("max_tools_chars")
        self._tools_chars = check_tools_size("tools", max_chars, self.tools or None)
        self.compact_threshold()  # refuses what context_management holds but compaction
        return self

    def compact_threshold(self) -> int | None:
        """`context_management`'s compaction: its `compact_threshold` (0 without one), or None
        when the request asks for none."""
        if not self.context_management:
            return None
        entry = self.context_management[0]
        where = "context_management[0]"
        if not isinstance(entry, dict) or entry.get("type") != "compaction":
            raise ValidationFailed(
                f'{where}.type: only "compaction" is supported', param=f"{where}.type"
            )
        unknown = sorted(set(entry) - {"type", "compact_threshold"})
        if unknown:
            raise ValidationFailed(
                f"{where}.{unknown[0]}: unknown parameter", param=f"{where}.{unknown[0]}"
            )
        threshold = entry.get("compact_threshold")
        if threshold is None:
            return 0
        if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 1:
            raise ValidationFailed(
                f"{where}.compact_threshold: must be a whole number of tokens, at least 1",
                param=f"{where}.compact_threshold",
            )
        return threshold

    @property
    def conversation_id(self) -> str | None:
        """The conversation's id, given as itself or as `{"id": ...}`."""
        return conversation_id(self.conversation)

    @property
    def cap(self) -> int | None:
        """The reply's cap in tokens (`max_output_tokens`), if the request set one."""
        return self.max_output_tokens

    @property
    def options(self) -> TurnOptions:
        """The turn's model, cap, temperature and other fields for the upstream call (and what
        its tools cost), and whether its history may be cut to fit (`truncation: auto`)."""
        fields = self.chat_fields()
        truncate = self.truncation == "auto"
        compact = self.compact_threshold()
        cap_name, tools = "max_output_tokens", chars_tokens(self._tools_chars)
        return TurnOptions(
            self.model, self.cap, self.temperature, fields, truncate, compact, cap_name, tools
        )

    def chat_fields(self) -> JsonObject:
        """The chat completion fields of the upstream call, other than what the service owns
        (messages, model, the cap's value, temperature, stream). With a cap, the cap's name:
        `max_completion_tokens`, which OpenAI's current models require."""
        fields: JsonObject = {}
        tools = chat_tools(self.tools) if self.tools else []
        if tools:
            fields["tools"] = tools
            if self.parallel_tool_calls is not None:
                fields["parallel_tool_calls"] = self.parallel_tool_calls
        if self.tool_choice is not None:
            choice = chat_tool_choice(self.tool_choice, tools)
            if tools:  # a chat completion takes no tool_choice without tools
                fields["tool_choice"] = choice
        if self.text is not None:
            fields.update(text_fields(self.text))
        if self.reasoning is not None and (effort := reasoning_effort(self.reasoning)):
            fields["reasoning_effort"] = effort
        for name in SAME_FIELDS:
            if getattr(self, name) is not None:
                fields[name] = getattr(self, name)
        if self.cap is not None:
            fields["max_completion_tokens"] = self.cap
        return fields

    def settings(self) -> JsonObject:
        """What a stored response keeps of its request (plain JSON), for the Response object
        its `GET` answers (`responses_objects.response_object`): the fields a Response echoes
        (`ECHOED`), as the turn used them (`kept_options`; null when it left one out)."""
        kept = kept_options({name: getattr(self, name) for name in ECHOED})
        if self.metadata is not None:
            kept["metadata"] = dict(self.metadata)
        return kept

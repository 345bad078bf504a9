"""Own what a request may carry: its JSON bodies as pydantic models, and the bounds of the
query values and headers that handlers read.

Handlers validate with these models (`Context.body`); the OpenAPI spec describes the same models
(`model_json_schema()`) and bounds, so the docs never import a handler.
"""

from __future__ import annotations

import re
from typing import Any, Literal, NotRequired

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from chatproxy.http.tool_limits import MAX_TOOLS, check_chat_tools
from chatproxy.service.defaults import TurnOptions
from chatproxy.store.items import ROOT
from chatproxy.tokens import chars_tokens

MAX_URL_CHARS = 2048
MAX_PAGE = 1000
MAX_DIGITS = 18  # a whole number in a query: below 2**63
MAX_ID = 10**MAX_DIGITS - 1
DEFAULT_CHATS_PAGE = 20
MAX_DATA_URL_CHARS = 20 * 1024 * 1024

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")


class ContentBody(BaseModel):
    """`{"content": "<text>"}`; other fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    content: StrictStr = Field(min_length=1)
    stream: StrictBool = False
    model: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1)

    @property
    def options(self) -> TurnOptions:
        """The settings this turn overrides, if any."""
        return TurnOptions(self.model, self.max_tokens, self.temperature)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str | None, info: ValidationInfo) -> str | None:
        return checked_text(value, info)  # None: a turn that regenerates (`TurnBody`)


def checked_text(value: str | None, info: ValidationInfo) -> str | None:
    """A message's or a system prompt's text: not blank, no NUL, at most MAX_CONTENT_CHARS (the
    validation context's `max_chars`); None passes."""
    if value is None:
        return value
    if not value.strip():
        raise ValueError("must not be blank")
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    limit = (info.context or {}).get("max_chars")
    if limit is not None and len(value) > limit:
        raise ValueError(f"must be at most {limit} characters (MAX_CONTENT_CHARS)")
    return value


class TurnBody(ContentBody):
    """A turn on the seed route: `{"content"}` under the chat's current leaf; with `"parent":
    <id>` under that message (an edit is a child of the edited message's parent; null: a new
    first message); `{"parent": <id of a user message>}` alone asks for another reply to it."""

    content: StrictStr | None = Field(default=None, min_length=1)  # type: ignore[assignment]
    parent: StrictInt | None = Field(default=None, ge=0, le=MAX_ID)

    @model_validator(mode="after")
    def _content_or_parent(self) -> TurnBody:
        if self.content is None and self.parent is None:
            raise ValueError(
                "content: required (or give only `parent`, a user message's id, to regenerate)"
            )
        return self

    @property
    def at(self) -> int | None:
        """Where the turn goes (`placing.Ask.at`): None for the leaf, ROOT for `"parent": null`."""
        if "parent" not in self.model_fields_set:
            return None
        return ROOT if self.parent is None else self.parent


class LeafBody(BaseModel):
    """`{"id": <message id>}` makes that message the chat's current leaf; with `"descend":
    true`, its newest descendant (always taking the newest child)."""

    model_config = ConfigDict(extra="forbid")

    id: StrictInt = Field(ge=0, le=MAX_ID)
    descend: StrictBool = False


class SettingsBody(BaseModel):
    """A change to a chat's settings: only the fields sent change; null removes a setting."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    system: StrictStr | None = Field(default=None, min_length=1)
    compaction: Literal["off", "summary"] | None = None

    @field_validator("system")
    @classmethod
    def _system_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return checked_text(value, info)  # as `POST /<chat_id>/system` holds it

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class ImageBody(ContentBody):
    """`{"content": "<text>", "url": "<image URL>"}`: an http(s) or data:image URL."""

    url: StrictStr

    @field_validator("url")
    @classmethod
    def _image_url(cls, value: str) -> str:
        if value.startswith("data:image/") and len(value) <= MAX_DATA_URL_CHARS:
            return value
        if re.fullmatch(r"https?://[^\s/$.?#][^\s]*", value) and len(value) <= MAX_URL_CHARS:
            return value
        raise ValueError(
            f"must be an http(s) URL of at most {MAX_URL_CHARS} characters or a data:image/ URL"
        )


class ChatMessage(TypedDict):
    """One message of a chat completion request (other fields are passed through). Validated
    into a plain dict of the keys sent: a resent history of hundreds of messages is not turned
    into models and back."""

    __pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[misc]

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: NotRequired[StrictStr | list[dict[str, Any]] | None]


def _tools_schema(schema: dict[str, Any]) -> None:
    """Say OpenAI's bound on `tools` in the field's JSON schema: at most MAX_TOOLS objects."""
    schema["anyOf"][0].update(maxItems=MAX_TOOLS, items={"type": "object"})


class CompletionRequest(BaseModel):
    """OpenAI's chat completion request. The proxy owns only the fields listed here: the
    `messages` (with a chat id, the new user message, after the stored history), the `model`
    (one of ALLOWED_MODELS), the `max_tokens` / `max_completion_tokens` cap (at most
    MAX_TOKENS), `stream` and `stream_options` (it asks the model for usage itself),
    `temperature` (with a chat id, the chat's setting when absent) and `metadata.chat_id`.
    Every other field (`tools`, `tool_choice`, `parallel_tool_calls`, `response_format`,
    `seed`, `top_p`, `stop`, `n`, `logprobs`, `user`, `reasoning_effort`, ..., and fields
    this proxy does not know) reaches the model exactly as sent, `tools` and the legacy
    `functions` once held to OpenAI's bounds and MAX_TOOLS_CHARS (`tool_limits.py`, with the
    validation context's `max_tools_chars`). With a chat id, `n` must be 1: a chat keeps one
    reply per turn."""

    model_config = ConfigDict(extra="allow")

    model: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=10_000,
        description="Each message the request adds is held to MAX_CONTENT_CHARS (with a chat"
        " id, not those it resends that match the chat's); with a chat id, the function names"
        " of the tool calls it adds to 64 characters.",
    )
    stream: StrictBool | None = False  # null: false, as OpenAI reads it
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    metadata: dict[str, Any] | None = Field(
        default=None,
        description="`chat_id`: the chat to continue and store the turn in (or the X-Chat-Id"
        " header); other keys reach the model as sent.",
    )
    stream_options: dict[str, Any] | None = None
    tools: list[Any] | None = Field(
        default=None,
        description=f"Sent to the model as they are: at most {MAX_TOOLS}, each function's (or"
        " custom tool's) name 1-64 characters of A-Z a-z 0-9 _ -, and all of them (with the"
        " legacy `functions`) at most MAX_TOOLS_CHARS characters of JSON.",
        json_schema_extra=_tools_schema,
    )
    _tools_chars: int = PrivateAttr(0)  # the JSON text of `tools` and `functions`, measured

    @model_validator(mode="after")
    def _bounded_tools(self, info: ValidationInfo) -> CompletionRequest:
        functions = (self.model_extra or {}).get("functions")
        max_chars = (info.context or {}).get("max_tools_chars")
        self._tools_chars = check_chat_tools(self.tools, functions, max_chars)
        return self

    @field_validator("stream", mode="before")
    @classmethod
    def _null_stream_is_false(cls, value: Any) -> Any:
        return False if value is None else value  # OpenAI's default, as the SDKs type it

    @field_validator("metadata")
    @classmethod
    def _chat_id_is_text(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and not isinstance(value.get("chat_id", ""), str):
            raise ValueError("chat_id must be a string")
        return value

    @property
    def chat_id(self) -> str | None:
        """The chat id in `metadata`, if any."""
        chat_id = (self.metadata or {}).get("chat_id")
        return chat_id if isinstance(chat_id, str) else None

    @property
    def fields(self) -> dict[str, Any]:
        """The fields passed on as they were sent: every field the proxy does not own, and
        `metadata` without a chat id (left out if that was all it held)."""
        fields = dict(self.model_extra or {})
        if "tools" in self.model_fields_set:
            fields["tools"] = self.tools  # as sent, null too
        if self.max_completion_tokens is not None:
            # Names the cap as the client did (reasoning models refuse `max_tokens`); the value
            # sent is the cap the proxy resolves (`upstream.rules.completion_body`).
            fields["max_completion_tokens"] = self.max_completion_tokens
        if self.metadata is not None:
            metadata = {k: v for k, v in self.metadata.items() if k != "chat_id"}
            if metadata or "chat_id" not in self.metadata:
                fields["metadata"] = metadata
        return fields

    @property
    def options(self) -> TurnOptions:
        cap = self.max_completion_tokens or self.max_tokens
        name = "max_tokens" if self.max_completion_tokens is None else "max_completion_tokens"
        tools = chars_tokens(self._tools_chars)
        return TurnOptions(
            self.model, cap, self.temperature, self.fields, cap_name=name, tool_tokens=tools
        )

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))

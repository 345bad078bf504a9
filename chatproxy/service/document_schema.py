"""Own the chat document's schema: the pydantic models that check a document of version 1 field
by field (its items, settings, token totals and summaries), and the bounds on its ids and counts.
The format's name and version are here too, for what only recognises a document
(`import_formats.py`); `chat_document.py` owns the format around them (its docstring draws the
document): the JSON written, and a document's parse and the checks of its tree.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chatproxy.service.kept_document import KeptDoc, Tokens
from chatproxy.service.message_rules import replayable_calls
from chatproxy.store.items import valid_chat_id
from chatproxy.tokens import MAX_TOKEN_COUNT

FORMAT = "chatproxy.chat"
VERSION = 1

# Ids are numbered from 0 as items are added; the Redis scripts write numbers as Lua's `%.14g`
# does, so an id must stay far below 10**14 to be written back as itself.
MAX_ITEM_ID = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=MAX_TOKEN_COUNT)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _finite(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number, at least 0")
    return value


class ItemDoc(_Strict):
    """One item of the chat's tree, as `Message.to_json` writes it."""

    id: int = Field(ge=0, le=MAX_ITEM_ID)
    parent: int | None = Field(ge=0, le=MAX_ITEM_ID)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None
    created_at: float
    tokens: Tokens | None = None
    model: str | None = None
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    response: dict[str, Any] | None = None

    _created_at = field_validator("created_at")(_finite)
    _tool_calls = field_validator("tool_calls")(replayable_calls)

    @field_validator("response")
    @classmethod
    def _kept(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        try:
            KeptDoc.model_validate(value)  # kept as it came, so an export gives the same bytes
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ValueError(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None
        return value


class SettingsDoc(_Strict):
    """A chat's own settings (those `POST /<chat_id>/settings` takes, but the system prompt)."""

    model: str | None = Field(default=None, min_length=1, max_length=128)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    compaction: Literal["off", "summary"] | None = None


class TokensDoc(_Strict):
    prompt_tokens: Count
    completion_tokens: Count
    total_tokens: Count


class SummaryDoc(_Strict):
    """One summary, as `Summary.to_json` writes it."""

    type: Literal["summary"]
    covers: list[int] = Field(min_length=2, max_length=2)
    content: str
    model: str | None = None
    tokens: Tokens | None = None
    created_at: float

    _created_at = field_validator("created_at")(_finite)

    @field_validator("covers")
    @classmethod
    def _range(cls, value: list[int]) -> list[int]:
        if not 0 <= value[0] <= value[1] <= MAX_ITEM_ID:
            raise ValueError("must be [first, last]: item ids, first at most last")
        return value


class ChatDocument(_Strict):
    """A chat document, version 1 (see the module docstring)."""

    format: Literal["chatproxy.chat"]
    version: Literal[1]
    id: str
    title: str | None = None
    created: float
    updated: float
    leaf: int | None = Field(default=None, ge=0, le=MAX_ITEM_ID)
    system: str | None = None
    settings: SettingsDoc = Field(default_factory=SettingsDoc)
    metadata: dict[str, str] | None = None
    tokens: TokensDoc | None = None
    items: list[ItemDoc]
    summaries: list[SummaryDoc] = Field(default_factory=list)

    _times = field_validator("created", "updated")(_finite)

    @field_validator("id")
    @classmethod
    def _chat_id(cls, value: str) -> str:
        if not valid_chat_id(value):
            raise ValueError("must be 1-128 of A-Z a-z 0-9 . _ @ : -, not dots only")
        return value

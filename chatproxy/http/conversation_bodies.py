"""Own what the Conversations API's requests may carry: their bodies as pydantic models, and the
bounds of their lists and metadata, as OpenAI sets them.

Items are Responses input items, checked one by one when they become messages
(`conversation_items.item_messages`); here only their number is. Metadata is at most 16 pairs
of strings, a key at most 64 characters, a value at most 512, refused with the pair at fault.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, StringConstraints, field_validator

from chatproxy.errors import ValidationFailed

MAX_ITEMS = 20
MAX_METADATA_PAIRS = 16
MAX_KEY_CHARS = 64
MAX_VALUE_CHARS = 512

Metadata = dict[
    Annotated[str, StringConstraints(max_length=MAX_KEY_CHARS)],
    Annotated[StrictStr, StringConstraints(max_length=MAX_VALUE_CHARS)],
]
ITEMS_DOC = (
    f"Responses input items (at most {MAX_ITEMS}): messages, function calls (`call_id` and"
    " `name` of at most 64 characters each, as OpenAI's API takes them), their outputs."
)
METADATA_DOC = (
    f"At most {MAX_METADATA_PAIRS} pairs of strings: keys of at most {MAX_KEY_CHARS} characters,"
    f" values of at most {MAX_VALUE_CHARS}."
)


def check_metadata(value: Any) -> Any:
    """Refuse metadata outside OpenAI's bounds, naming what is wrong (`param`: metadata)."""
    if value is None:
        return value
    if not isinstance(value, dict):
        raise _bad_metadata("must be an object of string values")
    if len(value) > MAX_METADATA_PAIRS:
        raise _bad_metadata(f"at most {MAX_METADATA_PAIRS} pairs, not {len(value)}")
    for key, text in value.items():
        if len(key) > MAX_KEY_CHARS:
            raise _bad_metadata(f"the key {key[:20]!r}... is over {MAX_KEY_CHARS} characters")
        if not isinstance(text, str):
            raise _bad_metadata(f"the value of {key!r} must be a string")
        if len(text) > MAX_VALUE_CHARS:
            raise _bad_metadata(f"the value of {key!r} is over {MAX_VALUE_CHARS} characters")
    return value


def _bad_metadata(problem: str) -> ValidationFailed:
    return ValidationFailed(f"metadata: {problem}", param="metadata")


class ConversationBody(BaseModel):
    """A new conversation: its first items and its metadata, both optional."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"items": [{"role": "user", "content": "Hello!"}], "metadata": {"topic": "demo"}}
            ]
        },
    )

    items: list[dict[str, Any]] | None = Field(
        default=None, max_length=MAX_ITEMS, description=ITEMS_DOC
    )
    metadata: Metadata | None = Field(
        default=None, max_length=MAX_METADATA_PAIRS, description=METADATA_DOC
    )

    _metadata = field_validator("metadata", mode="before")(check_metadata)


class MetadataBody(BaseModel):
    """A conversation's new metadata, which replaces its old (null: none)."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"metadata": {"topic": "demo"}}]}
    )

    metadata: Metadata | None = Field(max_length=MAX_METADATA_PAIRS, description=METADATA_DOC)

    _metadata = field_validator("metadata", mode="before")(check_metadata)


class ItemsBody(BaseModel):
    """Items to add to a conversation, after its current leaf."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"items": [{"role": "user", "content": "Hello!"}]}]},
    )

    items: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ITEMS, description=ITEMS_DOC)

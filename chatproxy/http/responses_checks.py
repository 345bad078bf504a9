"""The checks of a `POST /v1/responses` body that its fields' types do not make (`input`'s
shape, `conversation`'s id, `metadata`'s limits), and a pydantic failure said as OpenAI says
it, naming the field: `responses_request.ResponsesRequest`'s helpers."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from chatproxy.errors import ValidationFailed

MAX_ITEMS = 10_000
MAX_METADATA = 16
MAX_METADATA_KEY = 64
MAX_METADATA_VALUE = 512


def check_input(sent: Any) -> None:
    """Refuse an `input` that is neither a string nor a list of items (the items themselves
    are `responses_input`'s)."""
    if isinstance(sent, str) and sent:
        return
    if isinstance(sent, list) and 0 < len(sent) <= MAX_ITEMS:
        return
    raise ValidationFailed(
        f"input: must be a non-empty string or a list of 1-{MAX_ITEMS} input items",
        param="input",
    )


def conversation_id(conversation: Any) -> str | None:
    """A conversation's id, given as itself or as `{"id": ...}`."""
    if conversation is None:
        return None
    if isinstance(conversation, dict):
        conversation = conversation.get("id")
    if not isinstance(conversation, str) or not 0 < len(conversation) <= 128:
        raise ValidationFailed(
            'conversation: must be a conversation id or {"id": <conversation id>}',
            param="conversation",
        )
    return conversation


def check_metadata(metadata: dict[str, str] | None) -> None:
    """Refuse metadata beyond OpenAI's limits."""
    if metadata is None:
        return
    if len(metadata) > MAX_METADATA:
        raise ValidationFailed(f"metadata: at most {MAX_METADATA} pairs", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise ValidationFailed(
                f"metadata: keys of at most {MAX_METADATA_KEY} characters, values of at most"
                f" {MAX_METADATA_VALUE}",
                param="metadata",
            )


def failure(exc: ValidationError) -> ValidationFailed:
    """The first problem of a request as OpenAI says it, naming the field
    (`tools[2].type`)."""
    first = exc.errors(include_url=False)[0]
    param = ""
    for part in first["loc"]:
        param += f"[{part}]" if isinstance(part, int) else f".{part}" if param else str(part)
    if first["type"] == "extra_forbidden":
        return ValidationFailed(f"Unknown parameter: '{param}'.", param=param)
    if first["type"] == "missing":
        return ValidationFailed(f"Missing required parameter: '{param}'.", param=param)
    return ValidationFailed(f"{param or 'body'}: {first['msg']}", param=param or None)

"""Own how the spec describes what the rest of the chat routes (`http/routes.py`: a chat's
settings and system prompt, the global system prompt, moderation and the health check) answer
with. `openapi_schemas.py` puts the schemas among the components.
"""

from __future__ import annotations

from chatproxy.http.openapi_operation import NUMBER, STRING, Schema, nullable, object_of

SCHEMAS: dict[str, Schema] = {
    "SystemPrompt": object_of(
        ["role", "content"],
        role={"const": "system"},
        content=nullable(STRING),
        source={"enum": ["chat", "global"]},
    ),
    "ChatSettings": object_of(
        ["model", "temperature", "max_tokens", "system", "compaction", "own", "allowed_models"],
        model=STRING,
        temperature=nullable(NUMBER),
        max_tokens={"type": "integer", "minimum": 1},
        system=nullable(STRING),
        compaction={
            "enum": ["off", "summary"],
            "description": "What the chat keeps of messages that no longer fit (COMPACTION).",
        },
        own={"type": "object", "description": "The settings this chat sets itself."},
        allowed_models={"type": "array", "items": STRING},
    ),
    "Moderation": object_of(
        ["flagged", "categories", "category_scores", "model"],
        flagged={"type": "boolean"},
        categories={"type": "object", "additionalProperties": {"type": ["boolean", "null"]}},
        category_scores={"type": "object", "additionalProperties": {"type": ["number", "null"]}},
        model=STRING,
    ),
    "Health": object_of(
        ["status", "store", "upstream", "model", "auth"],
        status={"enum": ["ok", "unavailable"]},
        store=STRING,
        upstream=STRING,
        model=STRING,
        auth={"enum": ["none", "api_keys"]},
        notice=STRING,
    ),
}

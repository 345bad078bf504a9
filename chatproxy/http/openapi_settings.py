"""Own how the spec describes the rest of the chat routes (`http/routes.py`): a chat's settings
and system prompt, the global system prompt, moderation and the health check; the objects they
answer with. `openapi.py` lists the operations with the others', `openapi_schemas.py` puts the
schemas among the components; the bodies are `bodies.py`'s models.
"""

from __future__ import annotations

from chatproxy.http.openapi_operation import (
    CHAT,
    NUMBER,
    STRING,
    UPSTREAM,
    WITH_BODY,
    WITH_CHAT,
    Operation,
    Schema,
    nullable,
    object_of,
    ok,
    ref,
)

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

SYSTEM = ok("The system prompt that now applies (content null: none).", ref("SystemPrompt"))
GLOBAL_SYSTEM = ok("The global default system prompt (content null: none).", ref("SystemPrompt"))

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/", "GET"): Operation(
        "service",
        "Health: the store and upstream in use (never secrets)",
        ok("The service is up.", ref("Health")),
        more={"503": ok("The store is unreachable.", ref("Health"))},
    ),
    ("/{chat_id}/settings", "GET"): Operation(
        "settings",
        "What a turn in this chat uses, and which of it the chat sets itself",
        ok("The settings.", ref("ChatSettings")),
        errors=WITH_CHAT,
        params=(CHAT,),
    ),
    ("/{chat_id}/settings", "POST"): Operation(
        "settings",
        "Change the chat's settings: only the fields sent change, null removes one",
        ok("The settings now.", ref("ChatSettings")),
        errors=(*WITH_CHAT, *WITH_BODY),
        params=(CHAT,),
        body="SettingsBody",
    ),
    ("/{chat_id}/system", "GET"): Operation(
        "settings",
        "The system prompt that applies to the chat",
        SYSTEM,
        errors=WITH_CHAT,
        params=(CHAT,),
    ),
    ("/{chat_id}/system", "POST"): Operation(
        "settings",
        "Set the chat's own system prompt",
        SYSTEM,
        errors=(*WITH_CHAT, *WITH_BODY),
        params=(CHAT,),
        body="ContentBody",
    ),
    ("/{chat_id}/system", "DELETE"): Operation(
        "settings", "Remove the chat's own system prompt", SYSTEM, errors=WITH_CHAT, params=(CHAT,)
    ),
    ("/system", "GET"): Operation("settings", "The global default system prompt", GLOBAL_SYSTEM),
    ("/system", "POST"): Operation(
        "settings",
        "Set the global default system prompt (an ADMIN_KEYS key)",
        GLOBAL_SYSTEM,
        errors=(*WITH_BODY, 403),
        body="ContentBody",
    ),
    ("/system", "DELETE"): Operation(
        "settings",
        "Remove the global default system prompt (an ADMIN_KEYS key)",
        GLOBAL_SYSTEM,
        errors=(403,),
    ),
    ("/mod", "POST"): Operation(
        "moderation",
        "Run the moderation model on a text",
        ok("The provider's moderation result.", ref("Moderation")),
        errors=UPSTREAM,
        body="ContentBody",
    ),
}

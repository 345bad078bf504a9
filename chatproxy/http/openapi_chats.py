"""Own how the spec describes what the routes of a chat's messages (the chat routes of
`http/routes.py`: a turn, the path and the tree of a chat, the caller's chats, deleting one)
answer with. `openapi_schemas.py` puts the schemas among the components.
"""

from __future__ import annotations

from chatproxy.http.openapi_operation import COUNT, NUMBER, STRING, Schema, nullable, object_of, ref

TEXT_OR_PARTS: Schema = {
    "anyOf": [STRING, {"type": "array", "items": {"type": "object"}}],
    "description": "Text, or OpenAI content parts (an image turn: text and image_url).",
}

# What every stored message may carry beside its role and content.
ITEM: dict[str, Schema] = {
    "id": {"type": "integer", "minimum": 0, "description": "Its number in the chat."},
    "parent": {**nullable(COUNT), "description": "The message it follows; null: a first."},
    "tokens": ref("TokenCounts"),
    "model": STRING,
    "finish_reason": STRING,
    "tool_calls": {"type": "array", "items": ref("ToolCall")},
    "tool_call_id": STRING,
    "name": STRING,
}

SCHEMAS: dict[str, Schema] = {
    "Message": object_of(
        ["role", "content"],
        **ITEM,
        role={"enum": ["system", "developer", "user", "assistant", "tool"]},
        content=nullable(TEXT_OR_PARTS),
        siblings={
            "type": "array",
            "items": COUNT,
            "description": "The ids of its parent's children, itself among them, oldest first.",
        },
        created_at={**NUMBER, "description": "Unix time."},
    ),
    "Summary": object_of(
        ["type", "covers", "content", "created_at"],
        type={"const": "summary"},
        covers={
            "type": "array",
            "items": COUNT,
            "minItems": 2,
            "maxItems": 2,
            "description": "The oldest and the last message of the path it covers.",
        },
        content={**STRING, "description": "The summary (compaction), as the model wrote it."},
        model=nullable(STRING),
        tokens=nullable(ref("TokenCounts")),
        created_at={**NUMBER, "description": "Unix time."},
    ),
    "Reply": {
        **object_of(
            ["id", "parent", "role", "content", "created_at", "tokens"],
            **ITEM,
            role={"const": "assistant"},
            content={**nullable(STRING), "description": "Null for a reply that only calls tools."},
            created_at=NUMBER,
        ),
        "description": "The stored reply of a turn.",
    },
    "Children": object_of(
        ["parent", "children"],
        parent={**nullable(COUNT), "description": "null: the chat's first messages."},
        children={"type": "array", "items": COUNT, "description": "Their ids, oldest first."},
    ),
    "Leaf": object_of(["leaf"], leaf={**COUNT, "description": "The chat's current leaf now."}),
    "ChatSummary": object_of(
        ["id", "title", "created", "updated", "messages", "tokens"],
        id=STRING,
        title=nullable(STRING),
        created=NUMBER,
        updated=NUMBER,
        messages=COUNT,
        tokens=ref("TokenCounts"),
    ),
    "ChatList": object_of(
        ["chats", "next_before"],
        chats={"type": "array", "items": ref("ChatSummary")},
        next_before={
            **nullable(NUMBER),
            "description": "Pass as `before` for the next page; null on the last one.",
        },
    ),
    "Deleted": object_of(["chat_id", "deleted"], chat_id=STRING, deleted={"type": "boolean"}),
}

"""Own how the spec describes a chat's messages (the chat routes of `http/routes.py`): a turn,
the path and the tree of a chat, the caller's chats, deleting one; their parameters, and the
objects they answer with. `openapi.py` lists the operations with the others',
`openapi_schemas.py` puts the schemas among the components; the bodies are `bodies.py`'s models.
"""

from __future__ import annotations

from chatproxy.http.bodies import DEFAULT_CHATS_PAGE, MAX_ID, MAX_PAGE
from chatproxy.http.openapi_operation import (
    CHAT,
    COUNT,
    NUMBER,
    STRING,
    WITH_BODY,
    WITH_CHAT,
    Operation,
    Schema,
    nullable,
    object_of,
    ok,
    param,
    query,
    ref,
    streamed,
)

TURN = (*WITH_CHAT, *WITH_BODY, 409, 422, 502, 503, 504)

# A server-sent event, as each event of a `text/event-stream` answer is described in OpenAPI 3.1.
SSE_TURN: Schema = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {"event": {"enum": ["delta", "done", "error"]}, "data": STRING},
    "description": 'With `"stream": true` or `Accept: text/event-stream`: `delta` events'
    ' (`{"content": "<text>"}`) as the reply arrives, then `done` with the stored reply, or'
    " `error` with an error body if the provider's stream breaks off (nothing is stored then).",
}

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
        messages={
            **COUNT,
            "description": "With the first messages (no `parent` asked for): how many messages"
            " the chat holds now, as GET /chats counts them.",
        },
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
        ["chats", "next_before", "next_before_id"],
        chats={"type": "array", "items": ref("ChatSummary")},
        next_before={
            **nullable(NUMBER),
            "description": "Pass as `before` for the next page; null on the last one.",
        },
        next_before_id={
            **nullable(STRING),
            "description": "Pass as `before_id` beside `before`: of chats of the same activity,"
            " those that follow it come next.",
        },
    ),
    "Deleted": object_of(["chat_id", "deleted"], chat_id=STRING, deleted={"type": "boolean"}),
}

ID = {**COUNT, "maximum": MAX_ID}
PAGE_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}
HISTORY_PAGE = (
    CHAT,
    query("limit", f"At most this many messages (1-{MAX_PAGE}).", PAGE_LIMIT),
    query(
        "before",
        "Only the messages before this one on its path (the current one while it is on it).",
        ID,
    ),
    query("leaf", "The path that ends at this message (default: the current leaf).", ID),
    query(
        "include",
        "`summaries`: each summary (compaction) of the path after the last message it covers.",
        {"enum": ["summaries"]},
    ),
)
CHATS_PAGE = (
    query("limit", f"At most this many chats (default {DEFAULT_CHATS_PAGE}).", PAGE_LIMIT),
    query("before", "The `next_before` of the previous page.", {"type": "number", "minimum": 0}),
    query("before_id", "The `next_before_id` of the previous page.", {"type": "string"}),
)
DELETED = ok("Whether the chat existed.", ref("Deleted"))
TURN_PARAMS = (CHAT, param("Idempotency-Key"))

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/{chat_id}/chat", "POST"): Operation(
        "chats",
        "Send a message: one turn; creates the chat if needed. With `parent`, the message goes"
        " under that message (an edit: under the edited one's parent; null: a new first"
        " message); `parent` alone (a user message's id) asks for another reply to it",
        streamed("The stored reply.", ref("Reply"), SSE_TURN),
        errors=TURN,
        params=TURN_PARAMS,
        body="TurnBody",
    ),
    ("/{chat_id}/chat", "GET"): Operation(
        "chats",
        "The path from the chat's first message to its current leaf (or `leaf`), oldest first"
        " (system prompt first when not paging)",
        ok(
            "The messages; [] for a chat that does not exist.",
            {"type": "array", "items": {"anyOf": [ref("Message"), ref("Summary")]}},
        ),
        errors=WITH_CHAT,
        params=HISTORY_PAGE,
    ),
    ("/{chat_id}/children", "GET"): Operation(
        "chats",
        "The ids of a message's children (its replies, edits, regenerations)",
        ok("The children, oldest first.", ref("Children")),
        errors=WITH_CHAT,
        params=(CHAT, query("parent", "The message; none: the chat's first messages.", ID)),
    ),
    ("/{chat_id}/leaf", "POST"): Operation(
        "chats",
        "Make a message the chat's current leaf: the path that GET and the next turn follow",
        ok("The new leaf.", ref("Leaf")),
        errors=(*WITH_CHAT, *WITH_BODY),
        params=(CHAT,),
        body="LeafBody",
    ),
    ("/{chat_id}/chat", "DELETE"): Operation(
        "chats", "Delete the chat", DELETED, errors=WITH_CHAT, params=(CHAT,)
    ),
    ("/{chat_id}/clear", "POST"): Operation(
        "chats",
        "Delete the chat (the original project's route)",
        DELETED,
        errors=WITH_CHAT,
        params=(CHAT,),
    ),
    ("/{chat_id}/img", "POST"): Operation(
        "chats",
        "Send a message with an image (an http(s) or data:image/ URL) to VISION_MODEL",
        streamed("The stored reply.", ref("Reply"), SSE_TURN),
        errors=TURN,
        params=TURN_PARAMS,
        body="ImageBody",
    ),
    ("/chats", "GET"): Operation(
        "chats",
        "The caller's chats, newest activity first",
        ok("A page of chats.", ref("ChatList")),
        errors=(400,),
        params=CHATS_PAGE,
    ),
    ("/{chat_id}/usage", "GET"): Operation(
        "chats",
        "The chat's token totals and size",
        ok("The chat.", ref("ChatSummary")),
        errors=WITH_CHAT,
        params=(CHAT,),
    ),
}

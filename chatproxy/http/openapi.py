"""Own the OpenAPI 3.1 spec of the service: every route, what it takes and what it answers.

The shared parts (bodies from the handlers' pydantic models, errors, headers) live in
`openapi_schemas.py`; this module lists the operations by werkzeug path and method, the same
keys the app's URL map has (`tests/test_openapi.py` checks that both name the same routes), and
puts the spec together. `apidocs.py` serves it at `GET /openapi.json`.
"""

from __future__ import annotations

import re
from typing import Any

from chatproxy.http import routes
from chatproxy.http.openapi_schemas import (
    COUNT,
    PAGE_LIMIT,
    STRING,
    Schema,
    components,
    headers,
    param,
    query,
    ref,
)

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
DESCRIPTION = """Persistent, separated chats in front of the OpenAI chat completion API.

With `PROXY_API_KEYS` set, every route but the public ones (health, the pages, these docs)
needs a key: `X-API-Key: <key>` or `Authorization: Bearer <key>`. A service run without keys
ignores them.
Bodies are read as JSON whatever the `Content-Type`. Errors are `{"error", "code"}`, and
`{"error": {"message", "type", "param", "code"}}` under `/v1`."""

# Every route that needs a key may be refused, limited, or meet a store failure.
AUTHED = (401, 429, 500, 503)
WITH_CHAT = (400, 404)  # an invalid chat id; `.` and `..` are normalised away by clients
WITH_BODY = (400, 413)
TURN = (*WITH_CHAT, *WITH_BODY, 409, 422, 502, 503, 504)
UPSTREAM = (*WITH_BODY, 502, 503, 504)

# A server-sent event, as each event of a `text/event-stream` answer is described in OpenAPI 3.1.
SSE_TURN: Schema = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {"event": {"enum": ["delta", "done", "error"]}, "data": STRING},
    "description": 'With `"stream": true` or `Accept: text/event-stream`: `delta` events'
    ' (`{"content": "<text>"}`) as the reply arrives, then `done` with the stored reply, or'
    " `error` with an error body if the provider's stream breaks off (nothing is stored then).",
}
SSE_COMPLETION: Schema = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"const": "message"}, "data": STRING},
    "description": "With `stream: true`: `chat.completion.chunk` events as OpenAI's API sends"
    " them, ending with `data: [DONE]`; a stream that fails after it began ends instead with"
    ' `{"error": {...}}`, the same object as an error answer\'s (`OpenAIError`).',
}


def _json(schema: Schema) -> Schema:
    return {"application/json": {"schema": schema}}


def _ok(description: str, schema: Schema, extra_headers: Schema | None = None) -> Schema:
    response: Schema = {"description": description, "content": _json(schema)}
    if extra_headers:
        response["headers"] = extra_headers
    return response


def _streamed(description: str, schema: Schema, event: Schema) -> Schema:
    """A turn's answer: JSON, or server-sent events; either may be an idempotent replay."""
    response = _ok(description, schema, headers("Idempotent-Replayed"))
    response["content"]["text/event-stream"] = {"schema": event}
    return response


def _file(description: str, media_type: str) -> Schema:
    return {"description": description, "content": {media_type: {"schema": STRING}}}


def _op(
    tag: str,
    summary: str,
    ok: Schema,
    *,
    errors: tuple[int, ...] = (),
    params: tuple[Schema, ...] = (),
    body: str | None = None,
    public: bool = False,
    openai: bool = False,
    more: Schema | None = None,
) -> Schema:
    """One operation: its success answer, the error statuses it can answer with, and `more`
    answers of its own."""
    operation: Schema = {"tags": [tag], "summary": summary}
    if params:
        operation["parameters"] = list(params)
    if body is not None:
        operation["requestBody"] = {
            "required": True,
            "description": "JSON, whatever the Content-Type (so `curl -d` works).",
            "content": _json(ref(body)),
        }
    if public:
        operation["security"] = []
    statuses = sorted(set(errors if public else (*errors, *AUTHED)))
    prefix = "OpenAIError" if openai else "Error"
    operation["responses"] = {"200": ok} | {
        str(status): {"$ref": f"#/components/responses/{prefix}{status}"} for status in statuses
    }
    operation["responses"].update(more or {})
    return operation


CHAT = param("chat_id")
MAX_ID = 10**routes.MAX_DIGITS - 1
HISTORY_PAGE = (
    CHAT,
    query("limit", f"At most this many messages (1-{routes.MAX_PAGE}).", PAGE_LIMIT),
    query("before", "Only messages numbered below this id.", {**COUNT, "maximum": MAX_ID}),
)
CHATS_PAGE = (
    query("limit", f"At most this many chats (default {routes.DEFAULT_CHATS_PAGE}).", PAGE_LIMIT),
    query("before", "The `next_before` of the previous page.", {"type": "number", "minimum": 0}),
)
NOT_MODIFIED = {"description": "Not modified (`If-None-Match`)."}
SYSTEM = _ok("The system prompt that now applies (content null: none).", ref("SystemPrompt"))
GLOBAL_SYSTEM = _ok("The global default system prompt (content null: none).", ref("SystemPrompt"))
DELETED = _ok("Whether the chat existed.", ref("Deleted"))
TURN_PARAMS = (CHAT, param("Idempotency-Key"))

OPERATIONS: dict[tuple[str, str], Schema] = {
    ("/", "GET"): _op(
        "service",
        "Health: the store and upstream in use (never secrets)",
        _ok("The service is up.", ref("Health")),
        public=True,
        more={"503": _ok("The store is unreachable.", ref("Health"))},
    ),
    ("/<chat_id>/chat", "POST"): _op(
        "chats",
        "Send a message: one turn; creates the chat if needed",
        _streamed("The stored reply.", ref("Reply"), SSE_TURN),
        errors=TURN,
        params=TURN_PARAMS,
        body="ContentBody",
    ),
    ("/<chat_id>/chat", "GET"): _op(
        "chats",
        "The chat's messages, oldest first (system prompt first when not paging)",
        _ok(
            "The messages; [] for a chat that does not exist.",
            {"type": "array", "items": ref("Message")},
        ),
        errors=WITH_CHAT,
        params=HISTORY_PAGE,
    ),
    ("/<chat_id>/chat", "DELETE"): _op(
        "chats", "Delete the chat", DELETED, errors=WITH_CHAT, params=(CHAT,)
    ),
    ("/<chat_id>/clear", "POST"): _op(
        "chats",
        "Delete the chat (the original project's route)",
        DELETED,
        errors=WITH_CHAT,
        params=(CHAT,),
    ),
    ("/<chat_id>/img", "POST"): _op(
        "chats",
        "Send a message with an image (an http(s) or data:image/ URL) to VISION_MODEL",
        _streamed("The stored reply.", ref("Reply"), SSE_TURN),
        errors=TURN,
        params=TURN_PARAMS,
        body="ImageBody",
    ),
    ("/chats", "GET"): _op(
        "chats",
        "The caller's chats, newest activity first",
        _ok("A page of chats.", ref("ChatList")),
        errors=(400,),
        params=CHATS_PAGE,
    ),
    ("/<chat_id>/usage", "GET"): _op(
        "chats",
        "The chat's token totals and size",
        _ok("The chat.", ref("ChatSummary")),
        errors=WITH_CHAT,
        params=(CHAT,),
    ),
    ("/<chat_id>/settings", "GET"): _op(
        "settings",
        "What a turn in this chat uses, and which of it the chat sets itself",
        _ok("The settings.", ref("ChatSettings")),
        errors=WITH_CHAT,
        params=(CHAT,),
    ),
    ("/<chat_id>/settings", "POST"): _op(
        "settings",
        "Change the chat's settings: only the fields sent change, null removes one",
        _ok("The settings now.", ref("ChatSettings")),
        errors=(*WITH_CHAT, *WITH_BODY),
        params=(CHAT,),
        body="SettingsBody",
    ),
    ("/<chat_id>/system", "GET"): _op(
        "settings",
        "The system prompt that applies to the chat",
        SYSTEM,
        errors=WITH_CHAT,
        params=(CHAT,),
    ),
    ("/<chat_id>/system", "POST"): _op(
        "settings",
        "Set the chat's own system prompt",
        SYSTEM,
        errors=(*WITH_CHAT, *WITH_BODY),
        params=(CHAT,),
        body="ContentBody",
    ),
    ("/<chat_id>/system", "DELETE"): _op(
        "settings", "Remove the chat's own system prompt", SYSTEM, errors=WITH_CHAT, params=(CHAT,)
    ),
    ("/system", "GET"): _op("settings", "The global default system prompt", GLOBAL_SYSTEM),
    ("/system", "POST"): _op(
        "settings",
        "Set the global default system prompt (an ADMIN_KEYS key)",
        GLOBAL_SYSTEM,
        errors=(*WITH_BODY, 403),
        body="ContentBody",
    ),
    ("/system", "DELETE"): _op(
        "settings",
        "Remove the global default system prompt (an ADMIN_KEYS key)",
        GLOBAL_SYSTEM,
        errors=(403,),
    ),
    ("/mod", "POST"): _op(
        "moderation",
        "Run the moderation model on a text",
        _ok("The provider's moderation result.", ref("Moderation")),
        errors=UPSTREAM,
        body="ContentBody",
    ),
    ("/v1/chat/completions", "POST"): _op(
        "openai",
        "OpenAI's chat completions; with a chat id, the proxy adds and stores the history",
        _streamed("A chat.completion.", ref("ChatCompletion"), SSE_COMPLETION),
        errors=(*UPSTREAM, 409, 422),
        params=(param("Idempotency-Key"), param("X-Chat-Id")),
        body="CompletionRequest",
        openai=True,
    ),
    ("/v1/models", "GET"): _op(
        "openai",
        "The models this proxy allows (ALLOWED_MODELS)",
        _ok("The models.", ref("ModelList")),
        openai=True,
    ),
    ("/openapi.json", "GET"): _op(
        "docs", "This OpenAPI spec", _ok("The spec.", {"type": "object"}), public=True
    ),
    ("/ui", "GET"): _op(
        "pages",
        "The chat page",
        _file("The page.", "text/html"),
        public=True,
        more={
            "304": NOT_MODIFIED,
            "308": {"description": "`/ui/` redirects to `/ui`.", "headers": headers("Location")},
        },
    ),
    ("/docs", "GET"): _op(
        "docs",
        "The API docs page (Swagger UI, served offline)",
        _file("The page.", "text/html"),
        public=True,
        more={
            "308": {"description": "`/docs/` redirects to `/docs`.", "headers": headers("Location")}
        },
    ),
}


VERSION = query("v", "The file's content hash as the page links it: cacheable for good.", STRING)


def file_operation(media_type: str, *, versioned: bool = False) -> Schema:
    """A static file of a page (a script, a style sheet, an icon); the chat page's files are
    linked with their content hash (`versioned`) and answer `If-None-Match`."""
    if not versioned:
        return _op("pages", "A file of a page", _file("The file.", media_type), public=True)
    return _op(
        "pages",
        "A file of the chat page",
        _file("The file.", media_type),
        params=(VERSION,),
        public=True,
        more={"304": NOT_MODIFIED},
    )


def build_spec(files: dict[str, Schema]) -> dict[str, Any]:
    """Return the OpenAPI document: every operation, plus the pages' `files` by path."""
    operations = OPERATIONS | {(path, "GET"): operation for path, operation in files.items()}
    paths: Schema = {}
    for (path, method), operation in operations.items():
        paths.setdefault(openapi_path(path), {})[method.lower()] = operation
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "chatproxy", "version": API_VERSION, "description": DESCRIPTION},
        "servers": [{"url": ".", "description": "this service (where the spec was fetched from)"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
        "components": components(),
    }


def openapi_path(rule: str) -> str:
    """Turn a werkzeug rule (`/<chat_id>/chat`) into an OpenAPI path (`/{chat_id}/chat`)."""
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)

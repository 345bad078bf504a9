"""Own the OpenAPI 3.1 spec of the service: every route, what it takes and what it answers.

The spec is generated from the route table (`build_spec(routes)`): each route's operation
(`openapi_operation.Operation`) is its own `doc`, or the one this module lists by its path and
method; whether it needs a key comes from the route. The schemas of each API's answers are
written out by its module (`openapi_chats.py`, `openapi_settings.py`, `openapi_completions.py`,
`openapi_responses.py`, `openapi_conversations.py`, `openapi_exports.py`) and gathered here;
`openapi_schemas.py` puts them among the components beside the shared parts (bodies from the
pydantic models of `bodies.py`, errors, parameters). `apidocs.py` serves the spec at
`GET /openapi.json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from chatproxy.http import (
    openapi_chats,
    openapi_completions,
    openapi_conversations,
    openapi_exports,
    openapi_responses,
    openapi_settings,
)
from chatproxy.http.bodies import DEFAULT_CHATS_PAGE, MAX_ID, MAX_PAGE
from chatproxy.http.openapi_operation import (
    CHAT,
    COUNT,
    NOT_MODIFIED,
    STRING,
    UPSTREAM,
    WITH_BODY,
    WITH_CHAT,
    Operation,
    Schema,
    file_answer,
    headers,
    ok,
    param,
    query,
    ref,
    streamed,
)
from chatproxy.http.openapi_responses import SSE_RESPONSE
from chatproxy.http.openapi_schemas import components

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
DESCRIPTION = """Persistent, separated chats in front of the OpenAI chat completion API.

With `PROXY_API_KEYS` set, every route but the public ones (health, the pages, these docs)
needs a key: `X-API-Key: <key>` or `Authorization: Bearer <key>`. A service run without keys
ignores them.
Bodies are read as JSON whatever the `Content-Type`. Errors are `{"error", "code"}`, and
`{"error": {"message", "type", "param", "code"}}` under `/v1`."""

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
SSE_COMPLETION: Schema = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"const": "message"}, "data": STRING},
    "description": "With `stream: true`: `chat.completion.chunk` events as OpenAI's API sends"
    " them, ending with `data: [DONE]`; a stream that fails after it began ends instead with"
    ' `{"error": {...}}`, the same object as an error answer\'s (`OpenAIError`).',
}


PAGE_LIMIT = {"type": "integer", "minimum": 1, "maximum": MAX_PAGE}
ID = {**COUNT, "maximum": MAX_ID}
HISTORY_PAGE = (
    CHAT,
    query("limit", f"At most this many messages (1-{MAX_PAGE}).", PAGE_LIMIT),
    query("before", "Only the messages before this one on the path.", ID),
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
)
SYSTEM = ok("The system prompt that now applies (content null: none).", ref("SystemPrompt"))
GLOBAL_SYSTEM = ok("The global default system prompt (content null: none).", ref("SystemPrompt"))
DELETED = ok("Whether the chat existed.", ref("Deleted"))
TURN_PARAMS = (CHAT, param("Idempotency-Key"))
RESPONSE_PAGE = {"type": "integer", "minimum": 1, "maximum": 100}
ORDER = {"enum": ["asc", "desc"]}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/", "GET"): Operation(
        "service",
        "Health: the store and upstream in use (never secrets)",
        ok("The service is up.", ref("Health")),
        more={"503": ok("The store is unreachable.", ref("Health"))},
    ),
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
    ("/v1/chat/completions", "POST"): Operation(
        "openai",
        "OpenAI's chat completions; with a chat id, the proxy adds and stores the history",
        streamed("A chat.completion.", ref("ChatCompletion"), SSE_COMPLETION),
        errors=(*UPSTREAM, 409, 422),
        params=(param("Idempotency-Key"), param("X-Chat-Id")),
        body="CompletionRequest",
    ),
    ("/v1/responses", "POST"): Operation(
        "openai",
        "OpenAI's Responses: a turn of a chat of its own (`chain-…`), after"
        " `previous_response_id`, or at the leaf of `conversation` (a chat id)",
        streamed("A Response.", ref("Response"), SSE_RESPONSE),
        errors=(*UPSTREAM, 404, 409, 422),
        params=(param("Idempotency-Key"),),
        body="ResponsesRequest",
    ),
    ("/v1/responses/{response_id}", "GET"): Operation(
        "openai",
        "A stored response (any assistant reply of the caller's chats is one)",
        ok("The Response.", ref("Response")),
        errors=(400, 404),
        params=(param("response_id"),),
    ),
    ("/v1/responses/{response_id}", "DELETE"): Operation(
        "openai",
        "Delete a response: its reply and the input its turn stored (what follows moves up)",
        ok("Deleted.", ref("ResponseDeleted")),
        errors=(400, 404, 409),
        params=(param("response_id"),),
    ),
    ("/v1/responses/{response_id}/input_items", "GET"): Operation(
        "openai",
        "The input items of a stored response's turn, a page at a time",
        ok("A page of items.", ref("ResponseItemList")),
        errors=(400, 404),
        params=(
            param("response_id"),
            query("after", "Only the items after this one, in `order`.", STRING),
            query("limit", "At most this many items (1-100, default 20).", RESPONSE_PAGE),
            query("order", "`asc` (oldest first) or `desc` (the default).", ORDER),
        ),
    ),
    ("/v1/models", "GET"): Operation(
        "openai",
        "The models this proxy allows (ALLOWED_MODELS)",
        ok("The models.", ref("ModelList")),
    ),
    ("/openapi.json", "GET"): Operation(
        "docs", "This OpenAPI spec", ok("The spec.", {"type": "object"})
    ),
    ("/ui", "GET"): Operation(
        "pages",
        "The chat page",
        file_answer("The page.", "text/html"),
        more={
            "304": NOT_MODIFIED,
            "308": {"description": "`/ui/` redirects to `/ui`.", "headers": headers("Location")},
        },
    ),
    ("/docs", "GET"): Operation(
        "docs",
        "The API docs page (Swagger UI, served offline)",
        file_answer("The page.", "text/html"),
        more={
            "308": {"description": "`/docs/` redirects to `/docs`.", "headers": headers("Location")}
        },
    ),
}
OPERATIONS.update(openapi_conversations.OPERATIONS)
OPERATIONS.update(openapi_exports.OPERATIONS)
SCHEMAS: dict[str, Schema] = {
    **openapi_chats.SCHEMAS,
    **openapi_settings.SCHEMAS,
    **openapi_completions.SCHEMAS,
    **openapi_responses.SCHEMAS,
    **openapi_conversations.SCHEMAS,
    **openapi_exports.SCHEMAS,
}


class Described(Protocol):
    """A route as the spec sees it (`context.Route`)."""

    @property
    def path(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def public(self) -> bool: ...
    @property
    def doc(self) -> Operation | None: ...


def build_spec(routes: Iterable[Described]) -> dict[str, Any]:
    """Return the OpenAPI document of `routes` (a route table), in its order."""
    paths: Schema = {}
    for route in routes:
        operation = route.doc or OPERATIONS[(route.path, route.method)]
        openai = route.path.startswith("/v1/")
        rendered = operation.render(public=route.public, openai=openai)
        paths.setdefault(route.path, {})[route.method.lower()] = rendered
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "chatproxy", "version": API_VERSION, "description": DESCRIPTION},
        "servers": [{"url": ".", "description": "this service (where the spec was fetched from)"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
        "components": components(SCHEMAS),
    }

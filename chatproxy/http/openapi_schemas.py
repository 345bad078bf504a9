"""Own the OpenAPI components: the bodies, errors, headers and parameters that routes share.

Request bodies come from the pydantic models the handlers validate with (`bodies.py`,
`model_json_schema()`), error codes from the error tree, path and header patterns from the same
rules the handlers check; the answers' shapes are written out here. `openapi.py` puts them
together with the paths.
"""

from __future__ import annotations

from pydantic import BaseModel

from chatproxy import errors
from chatproxy.http import bodies, openapi_conversations, openapi_exports, openapi_responses
from chatproxy.http.openapi_operation import STRING, Schema, ref
from chatproxy.store.items import CHAT_ID

# What each error status means here; every one has the same body (OpenAI's shape on /v1).
ERROR_STATUSES = {
    400: "Bad request: `invalid_json`, `invalid_request`, `invalid_chat_id`,"
    " `invalid_idempotency_key`, or `upstream_rejected` (the model provider refused the request).",
    401: "Missing or wrong API key (`unauthorized`).",
    403: "Changing the global system prompt needs an admin key (`admin_only`).",
    404: "No such chat, response or conversation, or no route for this path (`not_found`).",
    409: "`chat_busy`, `turn_lease_lost` or `idempotency_in_progress`: try again after"
    " `Retry-After` seconds.",
    413: "The body is larger than MAX_BODY_BYTES (`payload_too_large`).",
    422: "This `Idempotency-Key` was used with a different body (`idempotency_key_reused`).",
    429: "Over RATE_LIMIT (`rate_limited`) or TOKEN_BUDGET_PER_DAY (`token_budget_exhausted`).",
    500: "An internal or store error (`internal`, `store_error`).",
    502: "The model provider failed: `upstream_error`, `upstream_auth`, `upstream_bad_response`,"
    " `upstream_rejected`.",
    503: "The store is unavailable (`store_unavailable`) or the model provider is rate limiting"
    " (`upstream_rate_limited`).",
    504: "The model provider did not answer in time (`upstream_timeout`).",
}
RETRY_AFTER_STATUSES = {409, 429}  # always sent; on 503 only by the two 503 errors


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(required: list[str], **properties: Schema) -> Schema:
    return {"type": "object", "required": required, "properties": properties}


NUMBER: Schema = {"type": "number"}
COUNT: Schema = {"type": "integer", "minimum": 0}
TEXT_OR_PARTS: Schema = {
    "anyOf": [STRING, {"type": "array", "items": {"type": "object"}}],
    "description": "Text, or OpenAI content parts (an image turn: text and image_url).",
}

# What every stored message may carry beside its role and content.
ITEM: dict[str, Schema] = {
    "id": {"type": "integer", "minimum": 0, "description": "Its number in the chat."},
    "parent": {**_nullable(COUNT), "description": "The message it follows; null: a first."},
    "tokens": ref("TokenCounts"),
    "model": STRING,
    "finish_reason": STRING,
    "tool_calls": {"type": "array", "items": ref("ToolCall")},
    "tool_call_id": STRING,
    "name": STRING,
}

RESPONSE_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error", "code"],
        "properties": {"error": STRING, "code": ref("ErrorCode")},
        "additionalProperties": False,
    },
    "OpenAIError": _object(
        ["error"],
        error=_object(
            ["message", "type", "param", "code"],
            message=STRING,
            type=STRING,
            param={**_nullable(STRING), "description": "The request field at fault, if one."},
            code=ref("ErrorCode"),
        ),
    ),
    "TokenCounts": _object(
        ["prompt_tokens", "completion_tokens", "total_tokens"],
        prompt_tokens=COUNT,
        completion_tokens=COUNT,
        total_tokens=COUNT,
    ),
    "Message": _object(
        ["role", "content"],
        **ITEM,
        role={"enum": ["system", "developer", "user", "assistant", "tool"]},
        content=_nullable(TEXT_OR_PARTS),
        siblings={
            "type": "array",
            "items": COUNT,
            "description": "The ids of its parent's children, itself among them, oldest first.",
        },
        created_at={**NUMBER, "description": "Unix time."},
    ),
    "Summary": _object(
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
        model=_nullable(STRING),
        tokens=_nullable(ref("TokenCounts")),
        created_at={**NUMBER, "description": "Unix time."},
    ),
    "Reply": {
        **_object(
            ["id", "parent", "role", "content", "created_at", "tokens"],
            **ITEM,
            role={"const": "assistant"},
            content={**_nullable(STRING), "description": "Null for a reply that only calls tools."},
            created_at=NUMBER,
        ),
        "description": "The stored reply of a turn.",
    },
    "Children": _object(
        ["parent", "children"],
        parent={**_nullable(COUNT), "description": "null: the chat's first messages."},
        children={"type": "array", "items": COUNT, "description": "Their ids, oldest first."},
    ),
    "Leaf": _object(["leaf"], leaf={**COUNT, "description": "The chat's current leaf now."}),
    "ChatSummary": _object(
        ["id", "title", "created", "updated", "messages", "tokens"],
        id=STRING,
        title=_nullable(STRING),
        created=NUMBER,
        updated=NUMBER,
        messages=COUNT,
        tokens=ref("TokenCounts"),
    ),
    "ChatList": _object(
        ["chats", "next_before"],
        chats={"type": "array", "items": ref("ChatSummary")},
        next_before={
            **_nullable(NUMBER),
            "description": "Pass as `before` for the next page; null on the last one.",
        },
    ),
    "Deleted": _object(["chat_id", "deleted"], chat_id=STRING, deleted={"type": "boolean"}),
    "SystemPrompt": _object(
        ["role", "content"],
        role={"const": "system"},
        content=_nullable(STRING),
        source={"enum": ["chat", "global"]},
    ),
    "ChatSettings": _object(
        ["model", "temperature", "max_tokens", "system", "compaction", "own", "allowed_models"],
        model=STRING,
        temperature=_nullable(NUMBER),
        max_tokens={"type": "integer", "minimum": 1},
        system=_nullable(STRING),
        compaction={
            "enum": ["off", "summary"],
            "description": "What the chat keeps of messages that no longer fit (COMPACTION).",
        },
        own={"type": "object", "description": "The settings this chat sets itself."},
        allowed_models={"type": "array", "items": STRING},
    ),
    "Moderation": _object(
        ["flagged", "categories", "category_scores", "model"],
        flagged={"type": "boolean"},
        categories={"type": "object", "additionalProperties": {"type": ["boolean", "null"]}},
        category_scores={"type": "object", "additionalProperties": {"type": ["number", "null"]}},
        model=STRING,
    ),
    "Health": _object(
        ["status", "store", "upstream", "model", "auth"],
        status={"enum": ["ok", "unavailable"]},
        store=STRING,
        upstream=STRING,
        model=STRING,
        auth={"enum": ["none", "api_keys"]},
        notice=STRING,
    ),
    "ModelList": _object(
        ["object", "data"],
        object={"const": "list"},
        data={
            "type": "array",
            "items": _object(
                ["id", "object", "created", "owned_by"],
                id=STRING,
                object={"const": "model"},
                created={"type": "integer"},
                owned_by=STRING,
            ),
        },
    ),
    "ChatCompletionChoice": _object(
        ["index", "message", "finish_reason"],
        index={"type": "integer", "minimum": 0},
        message={
            **_object(
                ["role", "content"],
                role={"const": "assistant"},
                content={**_nullable(STRING), "description": "The reply's text."},
                refusal=_nullable(STRING),
                tool_calls={"type": "array", "items": ref("ToolCall")},
            ),
            "description": "The model's message as it sent it (`annotations`, `audio`, ...).",
        },
        finish_reason={**_nullable(STRING), "description": "`stop`, `length`, `tool_calls`..."},
        logprobs=_nullable({"type": "object"}),
    ),
    "ToolCall": _object(
        ["id", "type", "function"],
        id=STRING,
        type=STRING,
        function=_object(["name", "arguments"], name=STRING, arguments=STRING),
    ),
    "ChatCompletion": {
        **_object(
            ["id", "object", "created", "model", "choices", "usage"],
            id=STRING,
            object={"const": "chat.completion"},
            created={"type": "integer"},
            model=_nullable(STRING),
            choices={"type": "array", "items": ref("ChatCompletionChoice")},
            usage=_nullable(ref("TokenCounts")),
            system_fingerprint=_nullable(STRING),
            service_tier=_nullable(STRING),
        ),
        "description": "The model's answer as it sent it (every choice; usage with its"
        " details), or for a replayed Idempotency-Key the stored reply.",
    },
}

REQUEST_MODELS: dict[str, type[BaseModel]] = {
    "ContentBody": bodies.ContentBody,
    "TurnBody": bodies.TurnBody,
    "LeafBody": bodies.LeafBody,
    "ImageBody": bodies.ImageBody,
    "SettingsBody": bodies.SettingsBody,
    "CompletionRequest": bodies.CompletionRequest,
    **openapi_conversations.MODELS,
    **openapi_exports.MODELS,
}


def _model_schemas() -> dict[str, Schema]:
    """The request bodies' JSON schemas, their nested models hoisted into components."""
    found: dict[str, Schema] = {}
    for name, model in REQUEST_MODELS.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        found.update(schema.pop("$defs", {}))
        found[name] = schema
    return found


def _error_codes() -> list[str]:
    codes: set[str] = set()
    pending: list[type[errors.ProxyError]] = [errors.ProxyError]
    while pending:
        kind = pending.pop()
        codes.add(kind.code)
        pending.extend(kind.__subclasses__())
    return sorted(codes)


DIGITS: Schema = {"type": "string", "pattern": "^[0-9]+$"}
HEADERS: dict[str, Schema] = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": DIGITS},
    "RateLimit-Limit": {
        "description": "Requests (or tokens) allowed per window.",
        "schema": DIGITS,
    },
    "RateLimit-Remaining": {"description": "What is left of them.", "schema": DIGITS},
    "RateLimit-Reset": {"description": "Seconds until the window resets.", "schema": DIGITS},
    "WWW-Authenticate": {"description": "The scheme to authenticate with.", "schema": STRING},
    "Location": {"description": "Where the resource is.", "schema": STRING},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the"
        " same Idempotency-Key and body.",
        "schema": {"const": "true"},
    },
}


def headers(*names: str, required: bool = False) -> Schema:
    """Response headers by name, each marked as always sent (`required`) or not."""
    return {name: {**HEADERS[name], "required": required} for name in names}


def _error_response(status: int, schema: str) -> Schema:
    response: Schema = {
        "description": ERROR_STATUSES[status],
        "content": {"application/json": {"schema": ref(schema)}},
    }
    if status in RETRY_AFTER_STATUSES:
        response["headers"] = headers("Retry-After", required=True)
    elif status == 503:
        response["headers"] = headers("Retry-After")
    if status == 429:
        limits = headers("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
        response["headers"] = {**response["headers"], **limits}
    if status == 401:
        response["headers"] = headers("WWW-Authenticate", required=True)
    return response


def components() -> Schema:
    """The spec's `components`: schemas, error responses, parameters, security schemes."""
    responses: Schema = {}
    for status in ERROR_STATUSES:
        responses[f"Error{status}"] = _error_response(status, "Error")
        responses[f"OpenAIError{status}"] = _error_response(status, "OpenAIError")
    return {
        "schemas": {
            **_model_schemas(),
            **RESPONSE_SCHEMAS,
            **openapi_responses.SCHEMAS,
            **openapi_conversations.SCHEMAS,
            **openapi_exports.SCHEMAS,
            "ErrorCode": {"type": "string", "enum": _error_codes()},
        },
        "responses": responses,
        "parameters": {**PARAMETERS, **openapi_responses.PARAMETERS},
        "securitySchemes": {
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            "bearer": {"type": "http", "scheme": "bearer", "description": "A PROXY_API_KEYS key."},
        },
    }


PARAMETERS: dict[str, Schema] = {
    "chat_id": {
        "name": "chat_id",
        "in": "path",
        "required": True,
        "description": "1-128 characters of A-Z a-z 0-9 . _ @ : -, not dots only",
        "schema": {"type": "string", "pattern": f"^{CHAT_ID.pattern}$"},
    },
    "Idempotency-Key": {
        "name": "Idempotency-Key",
        "in": "header",
        "description": "Makes the turn retry-safe: the same key and body replay the first answer.",
        "schema": {"type": "string", "pattern": f"^{bodies.IDEMPOTENCY_KEY.pattern}$"},
    },
    "X-Chat-Id": {
        "name": "X-Chat-Id",
        "in": "header",
        "description": "The chat to continue and store the turn in (or `metadata.chat_id`; a"
        " chat id as in the paths); without either, the request passes through and nothing is"
        " stored.",
        "schema": {"type": "string", "pattern": f"^{CHAT_ID.pattern}$"},
    },
}


def param(name: str) -> Schema:
    return {"$ref": f"#/components/parameters/{name}"}


PAGE_LIMIT = {"type": "integer", "minimum": 1, "maximum": bodies.MAX_PAGE}

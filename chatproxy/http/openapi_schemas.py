"""Own the OpenAPI components: the bodies, errors and parameters that routes share, the error
answers, and the APIs' schemas put among them.

Request bodies come from the pydantic models the handlers validate with (`bodies.py` and the
models the API modules name, `model_json_schema()`), error codes from the error tree, path and
header patterns from the same rules the handlers check. The answers' shapes are written out by
the module of their API (`openapi_chats.py`, `openapi_settings.py`, `openapi_completions.py`,
`openapi_responses.py`, `openapi_conversations.py`, `openapi_exports.py`), which `openapi.py`
gathers; the headers an answer may carry are in `openapi_operation.py`. `openapi.py` puts the
components together with the paths.
"""

from __future__ import annotations

from pydantic import BaseModel

from chatproxy import (
    errors,
    upstream_errors,  # noqa: F401  (`_error_codes` walks its errors too)
)
from chatproxy.http import bodies, openapi_conversations, openapi_exports, openapi_responses
from chatproxy.http.openapi_operation import (
    COUNT,
    STRING,
    Schema,
    headers,
    nullable,
    object_of,
    ref,
)
from chatproxy.store.items import CHAT_ID

# A breakdown of a count: a stored reply's holds counts; a `/v1` answer passes on the provider's
# as it came (null, or entries of null, from some servers).
DETAILS: Schema = nullable({"type": "object"})

# What each error status means here; every one has the same body (OpenAI's shape on /v1).
ERROR_STATUSES = {
    400: "Bad request: `invalid_json`, `invalid_request`, `invalid_chat_id`,"
    " `invalid_idempotency_key`, or `upstream_rejected` (the model provider refused the request).",
    401: "Missing or wrong API key (`unauthorized`).",
    403: "Changing the global system prompt needs an admin key (`admin_only`).",
    404: "No such chat, response or conversation, no route for this path, or an endpoint of"
    " OpenAI's API that the proxy does not offer (`not_found`).",
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

# The bodies every error answer has, and the token counts that chats and /v1 answers share.
SHARED_SCHEMAS: dict[str, Schema] = {
    "Error": {
        "type": "object",
        "required": ["error", "code"],
        "properties": {"error": STRING, "code": ref("ErrorCode")},
        "additionalProperties": False,
    },
    "OpenAIError": object_of(
        ["error"],
        error=object_of(
            ["message", "type", "param", "code"],
            message=STRING,
            type=STRING,
            param={**nullable(STRING), "description": "The request field at fault, if one."},
            code=ref("ErrorCode"),
        ),
    ),
    "TokenCounts": object_of(
        ["prompt_tokens", "completion_tokens", "total_tokens"],
        prompt_tokens=COUNT,
        completion_tokens=COUNT,
        total_tokens=COUNT,
        prompt_tokens_details={
            **DETAILS,
            "description": "As the model provider gave it (`cached_tokens`, ...): a stored"
            " reply keeps its counts but zeros.",
        },
        completion_tokens_details={
            **DETAILS,
            "description": "As the model provider gave it (`reasoning_tokens`, ...): a stored"
            " reply keeps its counts but zeros.",
        },
    ),
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
        limits = headers(
            "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset", "X-Should-Retry"
        )
        response["headers"] = {**response["headers"], **limits}
    if status == 401:
        response["headers"] = headers("WWW-Authenticate", required=True)
    return response


def components(schemas: dict[str, Schema]) -> Schema:
    """The spec's `components`: the schemas (the request bodies', the shared ones, then the
    APIs' `schemas`), error responses, parameters, security schemes."""
    responses: Schema = {}
    for status in ERROR_STATUSES:
        responses[f"Error{status}"] = _error_response(status, "Error")
        responses[f"OpenAIError{status}"] = _error_response(status, "OpenAIError")
    return {
        "schemas": {
            **_model_schemas(),
            **SHARED_SCHEMAS,
            **schemas,
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

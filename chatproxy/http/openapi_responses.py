"""Own the Responses API's part of the OpenAPI spec (`http/responses.py`): its operations, its
request body, the Response object, its stream's events, the list of a response's input items and
the `response_id` parameter. `openapi.py` lists the operations with the others',
`openapi_schemas.py` puts the schemas and the parameter among the components.

The request body is written out here, field by field as `responses_request.ResponsesRequest`
validates it (`tests/test_openapi.py` holds the two together): what the dialect accepts, the
spec accepts (null for a default as well), so generated requests and the proxy agree.
"""

from __future__ import annotations

from chatproxy.http.openapi_operation import (
    STRING,
    UPSTREAM,
    Operation,
    Schema,
    nullable,
    ok,
    param,
    query,
    ref,
    streamed,
)
from chatproxy.http.tool_limits import MAX_TOOLS
from chatproxy.store.items import CHAT_ID

NUMBER = "(0|[1-9][0-9]{0,17})"


def _text(most: int | None = None, least: int = 0) -> Schema:
    schema: Schema = {"type": "string"}
    if least:
        schema["minLength"] = least
    if most is not None:
        schema["maxLength"] = most
    return nullable(schema)


def _whole(least: int, most: int | None = None) -> Schema:
    schema: Schema = {"type": "integer", "minimum": least}
    if most is not None:
        schema["maximum"] = most
    return nullable(schema)


def _number(most: float) -> Schema:
    return nullable({"type": "number", "minimum": 0, "maximum": most})


NULLABLE_OBJECT = nullable({"type": "object"})
NULLABLE_BOOLEAN = nullable({"type": "boolean"})

REQUEST: Schema = {
    "type": "object",
    "description": "OpenAI's Responses request. `input` and `instructions` make the turn's"
    " messages; `tools`, `tool_choice`, `text`, `reasoning.effort`, ... reach the model as chat"
    " completion fields; `background` and OpenAI's built-in tools are refused; an unknown"
    " field is a 400, as OpenAI answers.",
    "required": ["input"],
    "additionalProperties": False,
    "properties": {
        "model": _text(128, 1),
        "input": {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "minItems": 1, "maxItems": 10_000, "items": {}},
            ],
            "description": "A user message, or input items (message, function_call,"
            " function_call_output, item_reference, reasoning). A function_call the input adds"
            " (not one of the model's, sent back) has a `call_id` and a `name` of at most 64"
            " characters each, as OpenAI's API takes them.",
        },
        "instructions": _text(),
        "previous_response_id": {
            **_text(152, 1),
            "description": "Continue after this response, in its chat (an older one: a branch).",
        },
        "conversation": {
            "description": 'A chat id, or {"id": <chat id>}: the turn goes at its current leaf.'
        },
        "store": NULLABLE_BOOLEAN,
        "stream": NULLABLE_BOOLEAN,
        "truncation": {"enum": ["auto", "disabled", None]},
        "context_management": nullable(
            {
                "type": "array",
                "maxItems": 1,
                "items": {
                    "type": "object",
                    "required": ["type"],
                    "properties": {
                        "type": {"const": "compaction"},
                        "compact_threshold": nullable({"type": "integer", "minimum": 1}),
                    },
                    "additionalProperties": False,
                },
                "description": "Compact this response's chat: its history is held to"
                " compact_threshold tokens and what is left out is summarized.",
            }
        ),
        "max_output_tokens": _whole(1),
        "temperature": _number(2),
        "top_p": _number(1),
        "metadata": nullable({"type": "object", "additionalProperties": STRING}),
        "user": _text(256),
        "safety_identifier": _text(64),
        "tools": {
            **nullable({"type": "array", "maxItems": MAX_TOOLS, "items": {"type": "object"}}),
            "description": "Function tools: each `name` 1-64 characters of A-Z a-z 0-9 _ -,"
            " and all of them at most MAX_TOOLS_CHARS characters of JSON.",
        },
        "tool_choice": {},
        "parallel_tool_calls": NULLABLE_BOOLEAN,
        "text": NULLABLE_OBJECT,
        "reasoning": NULLABLE_OBJECT,
        "background": NULLABLE_BOOLEAN,
        "include": nullable({"type": "array", "items": STRING}),
        "stream_options": NULLABLE_OBJECT,
        "top_logprobs": _whole(0, 20),
        "max_tool_calls": _whole(1),
        "service_tier": _text(32),
        "prompt_cache_key": _text(1024),
        "prompt_cache_retention": _text(32),
        "prompt_cache_options": NULLABLE_OBJECT,
    },
}

ITEM: Schema = {
    "type": "object",
    "required": ["id", "type"],
    "properties": {"id": STRING, "type": STRING, "status": STRING},
    "description": "A message, function_call or function_call_output item; its id names the"
    " chat and the message it is (`msg_<chat>_<n>`, `fc_<chat>_<n>_<k>`, `fco_<chat>_<n>`).",
}

RESPONSE: Schema = {
    "type": "object",
    "description": "OpenAI's Response: the stored reply as its output, the request's settings"
    " as they were sent (OpenAI's defaults for the others).",
    "required": ["id", "object", "created_at", "status", "model", "output"],
    "properties": {
        "id": {**STRING, "description": "`resp_<chat id>_<reply id>`; not stored: `resp_<hex>`."},
        "object": {"const": "response"},
        "created_at": {"type": "integer"},
        "status": {"enum": ["completed", "incomplete", "failed", "in_progress"]},
        "error": NULLABLE_OBJECT,
        "incomplete_details": NULLABLE_OBJECT,
        "model": STRING,
        "output": {"type": "array", "items": ref("ResponseItem")},
        "usage": NULLABLE_OBJECT,
        "previous_response_id": _text(),
        "conversation": NULLABLE_OBJECT,
        "instructions": _text(),
        "metadata": {"type": "object"},
        "store": {"type": "boolean"},
    },
}

ITEM_LIST: Schema = {
    "type": "object",
    "required": ["object", "data", "first_id", "last_id", "has_more"],
    "properties": {
        "object": {"const": "list"},
        "data": {"type": "array", "items": ref("ResponseItem")},
        "first_id": _text(),
        "last_id": _text(),
        "has_more": {"type": "boolean"},
    },
}

DELETED: Schema = {
    "type": "object",
    "required": ["id", "object", "deleted"],
    "properties": {"id": STRING, "object": {"const": "response"}, "deleted": {"const": True}},
}

SCHEMAS: dict[str, Schema] = {
    "ResponsesRequest": REQUEST,
    "Response": RESPONSE,
    "ResponseItem": ITEM,
    "ResponseItemList": ITEM_LIST,
    "ResponseDeleted": DELETED,
}

PARAMETERS: dict[str, Schema] = {
    "response_id": {
        "name": "response_id",
        "in": "path",
        "required": True,
        "description": "A response's id: `resp_<chat id>_<reply id>`.",
        "schema": {"type": "string", "pattern": f"^resp_{CHAT_ID.pattern}_{NUMBER}$"},
    },
}

SSE_RESPONSE: Schema = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {"event": STRING, "data": STRING},
    "description": "With `stream: true`: the Responses stream's events (`response.created`,"
    " `response.output_text.delta`, ..., `response.completed`), each `event: <type>` with its"
    " JSON as `data`; a turn that fails after the stream began ends with `error`, then"
    " `response.failed`.",
}

RESPONSE_PAGE = {"type": "integer", "minimum": 1, "maximum": 100}
ORDER = {"enum": ["asc", "desc"]}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/v1/responses", "POST"): Operation(
        "openai",
        "OpenAI's Responses: a turn of a chat of its own (`chain-…`), after"
        " `previous_response_id`, or at the leaf of `conversation` (a chat id)",
        streamed("A Response.", ref("Response"), SSE_RESPONSE),
        errors=(*UPSTREAM, 404, 409, 422),
        params=(param("Idempotency-Key"),),
        body="ResponsesRequest",
    ),
    ("/v1/responses/input_tokens", "POST"): Operation(
        "openai",
        "Count a request's input tokens: not offered (404); the proxy could only estimate what"
        " the model would count",
        None,
        errors=(404,),
    ),
    ("/v1/responses/compact", "POST"): Operation(
        "openai",
        "Compact a conversation: not offered (404); `context_management` on `POST"
        " /v1/responses` compacts a chat",
        None,
        errors=(404,),
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
    ("/v1/responses/{response_id}/cancel", "POST"): Operation(
        "openai",
        "Cancel a background response: refused (400) as OpenAI refuses a response that was not"
        " made in the background, since the proxy answers every response when it is created",
        None,
        errors=(400, 404),
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
}

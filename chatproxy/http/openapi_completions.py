"""Own how the spec describes OpenAI's chat completions and models (`http/openai_compat.py`):
the operations, the chat completion and its stream's events, a tool call, a model and the list
of models, in OpenAI's shapes. `openapi.py` lists the operations with the others',
`openapi_schemas.py` puts the schemas among the components; the request body is `bodies.py`'s
`CompletionRequest`.
"""

from __future__ import annotations

from chatproxy.http.openapi_operation import (
    STRING,
    UPSTREAM,
    Operation,
    Schema,
    nullable,
    object_of,
    ok,
    param,
    ref,
    streamed,
)

SCHEMAS: dict[str, Schema] = {
    "Model": object_of(
        ["id", "object", "created", "owned_by"],
        id=STRING,
        object={"const": "model"},
        created={"type": "integer"},
        owned_by=STRING,
    ),
    "ModelList": object_of(
        ["object", "data"],
        object={"const": "list"},
        data={"type": "array", "items": ref("Model")},
    ),
    "ChatCompletionChoice": object_of(
        ["index", "message", "finish_reason"],
        index={"type": "integer", "minimum": 0},
        message={
            **object_of(
                ["role", "content"],
                role={"const": "assistant"},
                content={**nullable(STRING), "description": "The reply's text."},
                refusal=nullable(STRING),
                tool_calls={"type": "array", "items": ref("ToolCall")},
            ),
            "description": "The model's message as it sent it (`annotations`, `audio`, ...).",
        },
        finish_reason={**nullable(STRING), "description": "`stop`, `length`, `tool_calls`..."},
        logprobs=nullable({"type": "object"}),
    ),
    "ToolCall": object_of(
        ["id", "type", "function"],
        id=STRING,
        type=STRING,
        function=object_of(["name", "arguments"], name=STRING, arguments=STRING),
    ),
    "ChatCompletion": {
        **object_of(
            ["id", "object", "created", "model", "choices", "usage"],
            id=STRING,
            object={"const": "chat.completion"},
            created={"type": "integer"},
            model=nullable(STRING),
            choices={"type": "array", "items": ref("ChatCompletionChoice")},
            usage=nullable(ref("TokenCounts")),
            system_fingerprint=nullable(STRING),
            service_tier=nullable(STRING),
        ),
        "description": "The model's answer as it sent it (every choice; usage with its"
        " details), or for a replayed Idempotency-Key the stored reply.",
    },
}

MODEL: Schema = {
    "name": "model",
    "in": "path",
    "required": True,
    "description": "A model's id (as a request's `model`, at most 128 characters); one that"
    " holds `/` (as other servers' do) is sent as it is, or with `%2F` (as the SDKs send it).",
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}

# A server-sent event, as each event of a `text/event-stream` answer is described in OpenAPI 3.1.
SSE_COMPLETION: Schema = {
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"const": "message"}, "data": STRING},
    "description": "With `stream: true`: `chat.completion.chunk` events as OpenAI's API sends"
    " them, ending with `data: [DONE]`; a stream that fails after it began ends instead with"
    ' `{"error": {...}}`, the same object as an error answer\'s (`OpenAIError`).',
}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/v1/chat/completions", "POST"): Operation(
        "openai",
        "OpenAI's chat completions; with a chat id, the proxy adds and stores the history",
        streamed("A chat.completion.", ref("ChatCompletion"), SSE_COMPLETION),
        errors=(*UPSTREAM, 409, 422),
        params=(param("Idempotency-Key"), param("X-Chat-Id")),
        body="CompletionRequest",
    ),
    ("/v1/models", "GET"): Operation(
        "openai",
        "The models this proxy allows (ALLOWED_MODELS)",
        ok("The models.", ref("ModelList")),
    ),
    ("/v1/models/{model}", "GET"): Operation(
        "openai",
        "A model this proxy allows (ALLOWED_MODELS); another is a 404, `model_not_found`",
        ok("The model.", ref("Model")),
        errors=(404,),
        params=(MODEL,),
    ),
}

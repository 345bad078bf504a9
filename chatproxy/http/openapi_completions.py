"""Own how the spec describes what OpenAI's chat completions and model list
(`http/openai_compat.py`) answer with: the chat completion, a tool call, the list of models, in
OpenAI's shapes. `openapi_schemas.py` puts the schemas among the components.
"""

from __future__ import annotations

from chatproxy.http.openapi_operation import STRING, Schema, nullable, object_of, ref

SCHEMAS: dict[str, Schema] = {
    "ModelList": object_of(
        ["object", "data"],
        object={"const": "list"},
        data={
            "type": "array",
            "items": object_of(
                ["id", "object", "created", "owned_by"],
                id=STRING,
                object={"const": "model"},
                created={"type": "integer"},
                owned_by=STRING,
            ),
        },
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

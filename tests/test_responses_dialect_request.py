"""The Responses dialect's request, without a server: what `POST /v1/responses` may carry, the
chat completion fields and settings it means, the bodies the official openai SDK really sends
(captured from the SDK itself), and every refusal, each naming its field."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx2
import openai
import pytest
from pydantic import BaseModel

from chatproxy.errors import ValidationFailed
from chatproxy.http.responses_request import ResponsesRequest
from chatproxy.jsontext import compact
from chatproxy.service.defaults import TurnOptions
from chatproxy.tokens import estimate_tokens

WEATHER_PARAMETERS = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
}
WEATHER = {"type": "function", "name": "get_weather", "parameters": WEATHER_PARAMETERS}
CHAT_WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": WEATHER_PARAMETERS},
}


# Fields chat completions take as they are.
SAME = {
    "top_p": 0.5,
    "user": "u1",
    "safety_identifier": "s1",
    "service_tier": "flex",
    "prompt_cache_key": "k",
    "prompt_cache_retention": "24h",
    "prompt_cache_options": {"mode": "explicit", "ttl": "12h", "prewarm": False},
}


def parsed(**body: Any) -> ResponsesRequest:
    return ResponsesRequest.model_validate({"input": "hi", **body})


def test_a_request_of_model_and_input_has_openais_defaults() -> None:
    request = ResponsesRequest.model_validate({"model": "gpt-4.1-mini", "input": "hi"})
    assert request.store is True
    assert request.stream is False
    assert request.truncation == "disabled"
    assert request.conversation_id is None
    assert request.cap is None
    assert request.chat_fields() == {}
    assert request.options == TurnOptions(
        "gpt-4.1-mini", None, None, {}, truncate=False, cap_name="max_output_tokens"
    )


def test_null_means_the_default() -> None:
    request = parsed(store=None, stream=None, truncation=None, tools=None, text=None)
    assert (request.store, request.stream, request.truncation) == (True, False, "disabled")


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"tools": [WEATHER]}, {"tools": [CHAT_WEATHER]}),
        (
            {
                "tools": [
                    {**WEATHER, "strict": True, "description": "Weather.", "defer_loading": False}
                ]
            },
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            **CHAT_WEATHER["function"],
                            "description": "Weather.",
                            "strict": True,
                        },
                    }
                ]
            },
        ),
        (
            {"tools": [{**WEATHER, "description": None, "strict": None}]},
            {"tools": [CHAT_WEATHER]},
        ),
        (
            {"tools": [WEATHER], "tool_choice": "required", "parallel_tool_calls": False},
            {"tools": [CHAT_WEATHER], "tool_choice": "required", "parallel_tool_calls": False},
        ),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "name": "get_weather"}},
            {
                "tools": [CHAT_WEATHER],
                "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
            },
        ),
        (
            {
                "tools": [WEATHER],
                "tool_choice": {
                    "type": "allowed_tools",
                    "mode": "required",
                    "tools": [{"type": "function", "name": "get_weather"}],
                },
            },
            {
                "tools": [CHAT_WEATHER],
                "tool_choice": {
                    "type": "allowed_tools",
                    "allowed_tools": {
                        "mode": "required",
                        "tools": [{"type": "function", "function": {"name": "get_weather"}}],
                    },
                },
            },
        ),
        ({"tool_choice": "none", "parallel_tool_calls": True}, {}),
        ({"text": {"format": {"type": "text"}}}, {}),
        (
            {"text": {"format": {"type": "json_object"}}},
            {"response_format": {"type": "json_object"}},
        ),
        (
            {
                "text": {
                    "format": {
                        "type": "json_schema",
                        "name": "city",
                        "schema": WEATHER_PARAMETERS,
                        "strict": True,
                        "description": "A city.",
                    },
                    "verbosity": "low",
                }
            },
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {
                        "name": "city",
                        "schema": WEATHER_PARAMETERS,
                        "strict": True,
                        "description": "A city.",
                    },
                },
                "verbosity": "low",
            },
        ),
        ({"reasoning": {"effort": "high", "summary": "auto"}}, {"reasoning_effort": "high"}),
        ({"reasoning": {"summary": "auto"}}, {}),
        (SAME, SAME),
        ({"max_output_tokens": 300}, {"max_completion_tokens": 300}),
        (
            {
                "include": ["reasoning.encrypted_content"],
                "stream_options": {"include_obfuscation": False},
                "top_logprobs": 2,
                "max_tool_calls": 3,
                "metadata": {"a": "b"},
                "store": False,
                "instructions": "Be brief.",
                "temperature": 0.2,
            },
            {},
        ),
    ],
)
def test_a_request_means_these_chat_completion_fields(
    body: dict[str, Any], fields: dict[str, Any]
) -> None:
    assert parsed(**body).chat_fields() == fields


def test_the_turns_options_carry_model_cap_temperature_fields_and_the_tools_estimate() -> None:
    request = parsed(
        model="m", max_output_tokens=50, temperature=1, tools=[WEATHER], truncation="auto"
    )
    fields = {"tools": [CHAT_WEATHER], "max_completion_tokens": 50}
    tools = estimate_tokens(compact([WEATHER]))  # as the request gave them
    assert request.options == TurnOptions(
        "m", 50, 1.0, fields, truncate=True, cap_name="max_output_tokens", tool_tokens=tools
    )
    assert parsed().options.tool_tokens == 0


def test_context_management_asks_the_turn_to_compact_its_chat() -> None:
    asked = parsed(context_management=[{"type": "compaction", "compact_threshold": 900}])
    bare = parsed(context_management=[{"type": "compaction"}])
    assert asked.options.compact == 900
    assert bare.options.compact == 0
    assert parsed().options.compact is None
    assert "context_management" not in asked.chat_fields()


def test_the_settings_kept_are_what_the_turn_used_as_plain_json() -> None:
    text = {"format": {"type": "json_object"}}
    request = parsed(
        instructions="Be brief.",
        metadata={"k": "v"},
        tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"},
        text=text,
        truncation="auto",
        store=False,
        temperature=0.5,
        reasoning={"effort": "low"},
        max_output_tokens=64,
        user="u",
    )
    settings = request.settings()
    assert json.loads(json.dumps(settings)) == settings
    assert settings["instructions"] == "Be brief."
    assert settings["metadata"] == {"k": "v"}
    assert settings["tools"] == [WEATHER]
    assert settings["tool_choice"] == {"type": "function", "name": "get_weather"}
    assert settings["text"] == text
    assert (settings["truncation"], settings["store"]) == ("auto", False)
    assert settings["reasoning"] == {"effort": "low", "summary": None}  # as OpenAI echoes it
    assert (settings["max_output_tokens"], settings["user"]) == (64, "u")
    assert parsed().settings()["tools"] is None  # left out: the Response echoes its default


@pytest.mark.parametrize("conversation", ["conv_1", {"id": "conv_1"}])
def test_a_conversation_is_an_id_or_an_object_with_one(conversation: Any) -> None:
    assert parsed(conversation=conversation).conversation_id == "conv_1"


def refusal(body: dict[str, Any]) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:  # never pydantic's ValidationError
        ResponsesRequest.model_validate(body)
    assert caught.value.status == 400
    return caught.value


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": "hi", "frobnicate": 1}, "frobnicate", "Unknown parameter: 'frobnicate'."),
        ({"model": "m"}, "input", "Missing required parameter: 'input'."),
        ({"input": ""}, "input", "non-empty string or a list"),
        ({"input": []}, "input", "non-empty string or a list"),
        ({"input": 5}, "input", "non-empty string or a list"),
        ({"input": "hi", "model": ""}, "model", "at least 1 character"),
        ({"input": "hi", "stream": "yes"}, "stream", "valid boolean"),
        ({"input": "hi", "truncation": "sometimes"}, "truncation", "'auto' or 'disabled'"),
        ({"input": "hi", "temperature": 3}, "temperature", "less than or equal to 2"),
        ({"input": "hi", "top_p": 1.5}, "top_p", "less than or equal to 1"),
        (
            {"input": "hi", "max_output_tokens": 0},
            "max_output_tokens",
            "greater than or equal to 1",
        ),
        (
            {"input": "hi", "metadata": {str(n): "v" for n in range(17)}},
            "metadata",
            "at most 16 pairs",
        ),
        ({"input": "hi", "metadata": {"k" * 65: "v"}}, "metadata", "at most 64"),
        ({"input": "hi", "metadata": {"k": "v" * 513}}, "metadata", "at most 512"),
        ({"input": "hi", "metadata": {"k": 1}}, "metadata.k", "valid string"),
        ({"input": "hi", "safety_identifier": "s" * 65}, "safety_identifier", "at most 64"),
        ({"input": "hi", "include": "all"}, "include", "valid list"),
        ({"input": "hi", "tools": {"type": "function"}}, "tools", "valid list"),
        ({"input": "hi", "tools": ["get_weather"]}, "tools[0]", "must be an object"),
        (
            {"input": "hi", "tools": [WEATHER, {"type": "web_search"}]},
            "tools[1].type",
            "'web_search' tools are not supported",
        ),
        (
            {"input": "hi", "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}]},
            "tools[0].type",
            "'file_search'",
        ),
        (
            {"input": "hi", "tools": [{"type": "code_interpreter", "container": {"type": "auto"}}]},
            "tools[0].type",
            "'code_interpreter'",
        ),
        (
            {
                "input": "hi",
                "tools": [
                    {
                        "type": "computer_use_preview",
                        "display_width": 1,
                        "display_height": 1,
                        "environment": "linux",
                    }
                ],
            },
            "tools[0].type",
            "'computer_use_preview'",
        ),
        (
            {"input": "hi", "tools": [{"type": "mcp", "server_label": "x"}]},
            "tools[0].type",
            "'mcp'",
        ),
        ({"input": "hi", "tools": [{"type": "custom", "name": "x"}]}, "tools[0].type", "'custom'"),
        (
            {"input": "hi", "tools": [{**WEATHER, "name": "get weather"}]},
            "tools[0].name",
            "A-Z a-z 0-9 _ -",
        ),
        (
            {"input": "hi", "tools": [{**WEATHER, "parameters": "{}"}]},
            "tools[0].parameters",
            "must be a dict",
        ),
        (
            {"input": "hi", "tools": [{**WEATHER, "strict": "yes"}]},
            "tools[0].strict",
            "must be a bool",
        ),
        (
            {"input": "hi", "tools": [WEATHER], "tool_choice": "sometimes"},
            "tool_choice",
            "auto, none, required",
        ),
        (
            {"input": "hi", "tools": [WEATHER], "tool_choice": {"type": "web_search_preview"}},
            "tool_choice.type",
            "'web_search_preview' is not supported",
        ),
        (
            {
                "input": "hi",
                "tools": [WEATHER],
                "tool_choice": {"type": "function", "name": "get_time"},
            },
            "tool_choice.name",
            "no function tool named 'get_time'",
        ),
        (
            {"input": "hi", "tool_choice": {"type": "function", "name": "get_weather"}},
            "tool_choice.name",
            "no function tool",
        ),
        (
            {
                "input": "hi",
                "tools": [WEATHER],
                "tool_choice": {"type": "allowed_tools", "mode": "any", "tools": [WEATHER]},
            },
            "tool_choice.mode",
            "auto or required",
        ),
        (
            {
                "input": "hi",
                "tools": [WEATHER],
                "tool_choice": {"type": "allowed_tools", "mode": "auto", "tools": []},
            },
            "tool_choice.tools",
            "list of function tools",
        ),
        (
            {
                "input": "hi",
                "tools": [WEATHER],
                "tool_choice": {
                    "type": "allowed_tools",
                    "mode": "auto",
                    "tools": [{"type": "mcp"}],
                },
            },
            "tool_choice.tools[0].type",
            "must be function",
        ),
        (
            {"input": "hi", "text": {"format": {"type": "xml"}}},
            "text.format.type",
            "text, json_object or json_schema",
        ),
        ({"input": "hi", "text": {"format": "json"}}, "text.format", "must be an object"),
        (
            {"input": "hi", "text": {"format": {"type": "json_schema", "name": "x"}}},
            "text.format.schema",
            "required",
        ),
        (
            {"input": "hi", "text": {"format": {"type": "json_schema", "schema": {}}}},
            "text.format.name",
            "A-Z a-z",
        ),
        (
            {
                "input": "hi",
                "text": {"format": {"type": "json_schema", "name": "x", "schema": {}, "strict": 1}},
            },
            "text.format.strict",
            "must be a bool",
        ),
        ({"input": "hi", "text": {"verbosity": "loud"}}, "text.verbosity", "low, medium, high"),
        ({"input": "hi", "reasoning": {"effort": 3}}, "reasoning.effort", "reasoning effort"),
        (
            {"input": "hi", "reasoning": {"summary": "x" * 33}},
            "reasoning.summary",
            "reasoning summary",
        ),
        ({"input": "hi", "reasoning": {"summary": {"a": 1}}}, "reasoning.summary", "summary"),
        ({"input": "hi", "reasoning": "high"}, "reasoning", "valid dictionary"),
        (
            {"input": "hi", "background": True},
            "background",
            "background responses are not supported",
        ),
        ({"input": "hi", "prompt": {"id": "pmpt_1"}}, "prompt", "not supported"),
        (
            {"input": "hi", "prompt_cache_options": {"prewarm": True}},
            "prompt_cache_options.prewarm",
            "not supported",
        ),
        (
            {"input": "hi", "prompt_cache_options": {"comparison_response_id": "resp_1"}},
            "prompt_cache_options.comparison_response_id",
            "not supported",
        ),
        ({"input": "hi", "prompt_cache_options": "12h"}, "prompt_cache_options", "dictionary"),
        (
            {"input": "hi", "context_management": [{"type": "truncation"}]},
            "context_management[0].type",
            'only "compaction"',
        ),
        (
            {"input": "hi", "context_management": [{"type": "compaction", "compact_threshold": 0}]},
            "context_management[0].compact_threshold",
            "at least 1",
        ),
        (
            {"input": "hi", "context_management": [{"type": "compaction", "every": 3}]},
            "context_management[0].every",
            "unknown parameter",
        ),
        ({"input": "hi", "conversation": 5}, "conversation", "conversation id"),
        ({"input": "hi", "conversation": {"name": "x"}}, "conversation", "conversation id"),
        (
            {"input": "hi", "conversation": "conv_1", "previous_response_id": "resp_1"},
            "conversation",
            "not both",
        ),
    ],
)
def test_a_request_the_proxy_cannot_serve_is_refused_naming_the_field(
    body: dict[str, Any], param: str, words: str
) -> None:
    error = refusal(body)
    assert error.param == param
    assert words in error.message
    shape = error.to_openai_json()["error"]
    assert (shape["type"], shape["param"]) == ("invalid_request_error", param)


Sent = list[dict[str, Any]]


@pytest.fixture
def sdk() -> tuple[openai.OpenAI, Sent]:
    """The official client, its requests caught before they leave (answered with a 400)."""
    sent: Sent = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        sent.append(json.loads(request.content))
        error = {"message": "caught", "type": "invalid_request_error", "param": None, "code": None}
        return httpx2.Response(400, json={"error": error})

    transport = httpx2.MockTransport(answer)
    client = openai.OpenAI(
        api_key="k",
        base_url="http://proxy.test/v1",
        http_client=httpx2.Client(transport=transport),
        max_retries=0,
    )
    return client, sent


class City(BaseModel):
    city: str


SDK_CALLS: list[Callable[[openai.OpenAI], Any]] = [
    lambda c: c.responses.create(model="m", input="hi", store=False, max_output_tokens=20),
    lambda c: c.responses.create(
        model="m",
        input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
        instructions="Be brief.",
        tools=[
            {
                "type": "function",
                "name": "get_weather",
                "parameters": WEATHER_PARAMETERS,
                "strict": True,
            }
        ],
        tool_choice="auto",
        parallel_tool_calls=True,
        metadata={"k": "v"},
        reasoning={"effort": "low"},
        include=["message.output_text.logprobs"],
        prompt_cache_key="pck",
        prompt_cache_options={"ttl": "12h"},
        safety_identifier="sid",
        truncation="auto",
        previous_response_id="resp_1",
    ),
    lambda c: c.responses.parse(
        model="m",
        input="hi",
        text_format=City,
        tools=[openai.pydantic_function_tool(City, name="get_weather")],
    ),
    lambda c: c.responses.stream(model="m", input="hi", text_format=City).__enter__(),
    lambda c: c.responses.create(
        model="m", input="hi", stream=True, stream_options={"include_obfuscation": False}
    ),
    lambda c: c.responses.create(model="m", input="hi", conversation={"id": "conv_1"}),
]


@pytest.mark.parametrize("call", SDK_CALLS)
def test_what_the_openai_sdk_sends_is_accepted(
    sdk: tuple[openai.OpenAI, Sent], call: Callable[[openai.OpenAI], Any]
) -> None:
    client, sent = sdk
    with pytest.raises(openai.BadRequestError):
        call(client)
    (body,) = sent
    request = ResponsesRequest.model_validate(body)
    assert request.chat_fields() is not None
    assert json.loads(json.dumps(request.settings())) == request.settings()


def test_the_sdks_structured_output_becomes_a_response_format(
    sdk: tuple[openai.OpenAI, Sent],
) -> None:
    client, sent = sdk
    with pytest.raises(openai.BadRequestError):
        SDK_CALLS[2](client)
    fields = ResponsesRequest.model_validate(sent[0]).chat_fields()
    assert fields["response_format"]["type"] == "json_schema"
    assert fields["response_format"]["json_schema"]["name"] == "City"
    assert fields["response_format"]["json_schema"]["strict"] is True
    assert fields["tools"][0]["function"]["name"] == "get_weather"
    assert "description" not in fields["tools"][0]["function"]  # sent as null


def test_the_sdk_raises_its_usual_error_for_a_refusal(sdk: tuple[openai.OpenAI, Sent]) -> None:
    """A refusal's JSON is what the SDK reads into `BadRequestError.param`."""
    error = refusal({"input": "hi", "tools": [{"type": "web_search"}]})
    client, _ = sdk

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(error.status, json=error.to_openai_json())

    client = client.with_options(http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model="m", input="hi", tools=[{"type": "web_search"}])
    assert caught.value.param == "tools[0].type"
    assert "web_search" in caught.value.message


AI_TOOLS = [
    {
        "type": "function",
        "name": "get_weather",
        "description": "Weather.",
        "parameters": WEATHER_PARAMETERS,
    }
]
# Bodies the Vercel AI SDK (@ai-sdk/openai 3.0.141 with ai 6.0.333) sent: streamText with an
# image, its next turn with the tool's result (the reply before as an item_reference), and a
# generateText with most of the provider options.
AI_SDK_BODIES: list[dict[str, Any]] = [
    {
        "model": "gpt-4.1-mini",
        "input": [
            {"role": "system", "content": "Be brief."},
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Weather in Oslo?"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBORw=="},
                ],
            },
        ],
        "tools": AI_TOOLS,
        "tool_choice": "auto",
        "stream": True,
    },
    {
        "model": "gpt-4.1-mini",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Weather in Oslo?"}]},
            {"type": "item_reference", "id": "msg_4"},
            {
                "type": "function_call",
                "call_id": "call_a",
                "name": "get_weather",
                "arguments": '{"city":"Oslo"}',
            },
            {"type": "function_call_output", "call_id": "call_a", "output": '{"temp":3}'},
        ],
        "tools": AI_TOOLS,
        "tool_choice": "auto",
        "stream": True,
    },
    {
        "model": "gpt-4.1-mini",
        "input": [
            {"type": "item_reference", "id": "msg_6"},
            {"role": "user", "content": [{"type": "input_text", "text": "Thanks!"}]},
        ],
        "text": {"verbosity": "low"},
        "max_tool_calls": 2,
        "metadata": {"k": "v"},
        "parallel_tool_calls": False,
        "previous_response_id": "resp_t",
        "store": True,
        "user": "u1",
        "instructions": "Be kind.",
        "service_tier": "auto",
        "include": ["message.output_text.logprobs"],
        "prompt_cache_key": "pck",
        "safety_identifier": "sid",
        "temperature": 0.2,
        "max_output_tokens": 100,
        "tool_choice": {"type": "function", "name": "get_weather"},
        "tools": AI_TOOLS,
    },
]


@pytest.mark.parametrize("body", AI_SDK_BODIES)
def test_what_the_vercel_ai_sdk_sends_is_accepted(body: dict[str, Any]) -> None:
    request = ResponsesRequest.model_validate(body)
    fields = request.chat_fields()
    if "tools" in body:
        assert fields["tools"][0]["function"]["name"] == "get_weather"
    assert json.loads(json.dumps(request.settings())) == request.settings()

"""The Responses dialect's Response object, without a server: built from a stored reply and the
settings its request kept, it parses with the openai SDK's own `Response`, whose `output_text`
gives the reply's text."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.responses import Response

from chatproxy.errors import StoreUnavailable
from chatproxy.http.responses_objects import ECHOED, ResponseHead, response_object
from chatproxy.http.responses_request import ResponsesRequest
from chatproxy.store.items import Message
from chatproxy.upstream_errors import UpstreamRateLimited, UpstreamTimeout

HEAD = ResponseHead("resp_abc", 1_700_000_000.5, "gpt-4.1-mini", reply_id=7)
USAGE = {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}
CALL = {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def reply(**fields: Any) -> Message:
    given: dict[str, Any] = {
        "content": "Hello.",
        "usage": USAGE,
        "model": "gpt-4.1-mini-2025-04-14",
        "finish_reason": "stop",
        "id": 7,
        "created_at": 1_700_000_003.0,
    }
    given.update(fields)
    return Message("assistant", **given)


def parse(body: dict[str, Any]) -> Response:
    return Response.model_validate(body)


def test_a_completed_response_holds_the_reply_and_its_usage() -> None:
    body = response_object(HEAD, {}, reply())
    response = parse(body)
    assert response.id == "resp_abc"
    assert response.object == "response"
    assert response.status == "completed"
    assert response.created_at == 1_700_000_000
    assert response.completed_at == 1_700_000_003
    assert response.model == "gpt-4.1-mini-2025-04-14"  # the model that answered
    assert response.output_text == "Hello."
    assert [item.id for item in response.output] == ["msg_7"]
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens) == (12, 5)
    assert response.usage.total_tokens == 17
    assert response.usage.input_tokens_details.cached_tokens == 0
    assert response.error is None
    assert response.incomplete_details is None
    assert "output_text" not in body  # the SDKs compute it


def test_a_reply_that_calls_tools_outputs_its_text_then_each_call() -> None:
    calls = [CALL, {**CALL, "id": "call_b", "function": {"name": "t", "arguments": '{"a":1}'}}]
    response = parse(
        response_object(HEAD, {"tools": [WEATHER]}, reply(tool_calls=calls, content="Looking."))
    )
    assert [item.id for item in response.output] == ["msg_7", "fc_7_0", "fc_7_1"]
    _, first, second = response.output
    assert first.type == "function_call"
    assert second.type == "function_call"
    assert (first.call_id, first.name, first.arguments) == ("call_a", "get_weather", "{}")
    assert (second.call_id, second.arguments) == ("call_b", '{"a":1}')
    assert response.output_text == "Looking."


def test_a_reply_of_calls_alone_has_no_message() -> None:
    response = parse(response_object(HEAD, {}, reply(content=None, tool_calls=[CALL])))
    assert [item.type for item in response.output] == ["function_call"]
    assert response.output_text == ""


def test_the_reply_is_named_by_the_heads_item_id() -> None:
    """The stored form (`to_json`) works too, and its item is the head's reply."""
    stored = reply(id=None).to_json()
    response = parse(response_object(HEAD, {}, stored))
    assert response.output[0].id == "msg_7"


@pytest.mark.parametrize(
    ("finish", "reason"), [("length", "max_output_tokens"), ("content_filter", "content_filter")]
)
def test_a_reply_cut_short_is_incomplete(finish: str, reason: str) -> None:
    response = parse(response_object(HEAD, {}, reply(finish_reason=finish)))
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == reason
    assert response.completed_at is None


def test_usage_details_are_kept_when_the_upstream_counted_them() -> None:
    tokens = {
        **USAGE,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 3},
    }
    usage = parse(response_object(HEAD, {}, reply(usage=tokens))).usage
    assert usage is not None
    assert usage.input_tokens_details.cached_tokens == 8
    assert usage.output_tokens_details.reasoning_tokens == 3


@pytest.mark.parametrize(
    ("error", "code", "kind"),
    [
        (UpstreamTimeout(), "server_error", "api_error"),
        (StoreUnavailable(), "server_error", "api_error"),
        (UpstreamRateLimited(5), "rate_limit_exceeded", "api_error"),
    ],
)
def test_a_failed_response_says_why(error: Any, code: str, kind: str) -> None:
    body = response_object(HEAD, {}, error=error)
    response = parse(body)
    assert response.status == "failed"
    assert response.error is not None
    assert response.error.code == code
    assert response.error.message == error.message
    assert body["error"]["type"] == kind  # the Vercel AI SDK requires a type
    assert response.output == []
    assert response.usage is None


def test_before_its_reply_a_response_is_in_progress() -> None:
    response = parse(response_object(HEAD, {}))
    assert response.status == "in_progress"
    assert response.output == []
    assert response.model == "gpt-4.1-mini"


def test_the_settings_a_request_kept_are_echoed() -> None:
    request = ResponsesRequest.model_validate(
        {
            "input": "hi",
            "instructions": "Be brief.",
            "metadata": {"k": "v"},
            "tools": [WEATHER],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "parallel_tool_calls": False,
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "object"}}},
            "truncation": "auto",
            "store": False,
            "temperature": 0.3,
            "top_p": 0.9,
            "reasoning": {"effort": "low"},
            "user": "u",
            "max_output_tokens": 99,
        }
    )
    head = ResponseHead("resp_2", 1.0, "m", 3, previous_response_id="resp_1")
    response = parse(response_object(head, request.settings(), reply()))
    assert response.instructions == "Be brief."
    assert response.metadata == {"k": "v"}
    assert response.tools[0].type == "function"
    assert response.tools[0].name == "get_weather"
    assert response.tool_choice.type == "function"
    assert response.parallel_tool_calls is False
    assert response.text is not None
    assert response.text.format is not None
    assert response.text.format.type == "json_schema"
    assert (response.truncation, response.store) == ("auto", False)
    assert (response.temperature, response.top_p) == (0.3, 0.9)
    assert response.reasoning is not None
    assert response.reasoning.effort == "low"
    assert (response.user, response.max_output_tokens) == ("u", 99)
    assert response.previous_response_id == "resp_1"
    assert response.conversation is None
    assert response.background is False


def test_a_response_without_settings_echoes_openais_defaults() -> None:
    head = ResponseHead("resp_3", 1.0, "m", 3, conversation_id="conv_1")
    body = response_object(head, {}, reply())
    parse(body)
    for name, default in ECHOED.items():
        assert body[name] == default
    assert body["conversation"] == {"id": "conv_1"}
    assert body["previous_response_id"] is None

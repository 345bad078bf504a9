"""Tool calls through the proxy: the official openai SDK against the real server, with and
without a chat id, over the fake upstream (which calls the tools a user message names: see
`chatproxy/upstream/dev_answers.py`). A reply that calls tools comes back whole, plain or as the
upstream's deltas, and a chat stores it complete, with its finish reason."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from harness.fake_upstream import FakeUpstream
from harness.server_process import http
from tests.conftest import SDK_KEY, MakeClient

Proxy = tuple[openai.OpenAI, str]
MODEL = "gpt-4.1-mini"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city", "unit"],
        },
    },
}
CALLED = {"name": "get_time"}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
    },
}


def stored(url: str, chat: str) -> list[dict[str, Any]]:
    reply = http("GET", f"{url}/{chat}/chat", headers={"X-API-Key": SDK_KEY})
    assert reply.status == 200, reply.json()
    messages: list[dict[str, Any]] = reply.json()
    return messages


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def test_a_reply_with_tool_calls_comes_back_whole_and_is_stored(
    openai_proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    client, url = openai_proxy

    completion = client.chat.completions.create(
        model=MODEL,
        messages=ask("Please call get_weather and get_time."),
        tools=[WEATHER, TIME],  # type: ignore[list-item]
        extra_headers={"X-Chat-Id": "tools"},
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    assert json.loads(calls[0].function.arguments) == {"city": "dev", "unit": "c"}  # type: ignore[union-attr]
    assert completion.system_fingerprint == "fp_dev"
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 0
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 0
    reply = stored(url, "tools")[-1]
    assert reply["role"] == "assistant"
    assert reply["content"] is None
    assert reply["finish_reason"] == "tool_calls"
    assert reply["tool_calls"] == [c.model_dump(exclude_none=True) for c in calls]
    assert reply["tokens"]["total_tokens"] == usage.total_tokens


def test_a_streamed_tool_call_arrives_as_deltas_and_is_stored_complete(
    openai_proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    client, url = openai_proxy

    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=ask("Run get_time and get_weather now."),
            tools=[WEATHER, TIME],  # type: ignore[list-item]
            stream=True,
            extra_headers={"X-Chat-Id": "streamed-tools"},
        )
    )

    pieces = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert len(pieces) > 4  # each call's head, then its arguments in pieces
    calls: dict[int, dict[str, str]] = {}
    for piece in pieces:
        call = calls.setdefault(piece.index, {"id": "", "name": "", "arguments": ""})
        call["id"] += piece.id or ""
        call["name"] += (piece.function and piece.function.name) or ""
        call["arguments"] += (piece.function and piece.function.arguments) or ""
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert all(c.usage is None for c in chunks)  # the client did not ask for usage
    assert fake_upstream.chat_requests()[-1]["stream_options"] == {"include_usage": True}
    reply = stored(url, "streamed-tools")[-1]
    assert reply["finish_reason"] == "tool_calls"
    assert reply["content"] is None
    assert reply["tool_calls"] == [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
        }
        for c in calls.values()
    ]


def test_the_sdks_stream_helper_gets_the_final_completion_with_usage_details(
    openai_proxy: Proxy,
) -> None:
    client, url = openai_proxy

    with client.chat.completions.stream(
        model=MODEL,
        messages=ask("call get_weather"),
        tools=[WEATHER],  # type: ignore[list-item]
        stream_options={"include_usage": True},
        extra_headers={"X-Chat-Id": "helper"},
    ) as stream:
        final = stream.get_final_completion()

    calls = final.choices[0].message.tool_calls or []
    assert [c.function.name for c in calls] == ["get_weather"]  # type: ignore[union-attr]
    assert final.usage is not None
    assert final.usage.completion_tokens_details is not None
    assert final.system_fingerprint == "fp_dev"
    assert stored(url, "helper")[-1]["tool_calls"][0]["id"] == calls[0].id


def test_a_tool_loop_passes_through_without_a_chat_id(openai_proxy: Proxy) -> None:
    client, _ = openai_proxy
    messages: list[Any] = ask("call get_weather and get_time")

    first = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME])  # type: ignore[list-item]
    calls = first.choices[0].message.tool_calls or []
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    for n, call in enumerate(calls):
        messages.append({"role": "tool", "tool_call_id": call.id, "content": f"result {n}"})
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=[WEATHER, TIME])  # type: ignore[list-item]

    assert len(calls) == 2
    assert second.choices[0].message.content == "[dev upstream] The tools said: result 0; result 1."


def test_a_replayed_reply_with_tool_calls_has_its_calls_plain_and_streamed(
    openai_proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    client, _ = openai_proxy
    request: dict[str, Any] = {"model": MODEL, "messages": ask("get_time"), "tools": [TIME]}
    # A chat of each: after a reply that calls tools, a chat's next request answers them.
    plain = {"X-Chat-Id": "replay-plain", "Idempotency-Key": "plain"}
    streamed = {"X-Chat-Id": "replay-streamed", "Idempotency-Key": "streamed"}

    first = client.chat.completions.create(**request, extra_headers=plain)
    again = client.chat.completions.with_raw_response.create(**request, extra_headers=plain)
    finals = []
    for _ in range(2):
        with client.chat.completions.stream(**request, extra_headers=streamed) as stream:
            finals.append(stream.get_final_completion().choices[0])

    replayed = again.parse().choices[0]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert replayed.message.tool_calls == first.choices[0].message.tool_calls
    assert replayed.finish_reason == "tool_calls"
    assert finals[1].message.tool_calls == finals[0].message.tool_calls
    assert finals[1].finish_reason == "tool_calls"
    assert len(fake_upstream.chat_requests()) == 2  # the replays made no call


def test_a_chat_goes_on_after_a_reply_that_only_called_tools(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(MODEL="text-model", VISION_MODEL="eye-model")
    chat = {"X-Chat-Id": "after-tools"}
    body: dict[str, Any] = {"messages": ask("call get_time"), "tools": [TIME]}

    called = client.post("/v1/chat/completions", json=body, headers=chat).get_json()
    call = called["choices"][0]["message"]
    result = {"role": "tool", "tool_call_id": call["tool_calls"][0]["id"], "content": "12:00"}
    body["messages"] = [result, *ask("thanks")]
    answered = client.post("/v1/chat/completions", json=body, headers=chat)

    assert answered.status_code == 200, answered.get_json()
    sent = fake_upstream.chat_requests()[-1]["messages"]
    assert sent[-3] == {"role": "assistant", "content": None, "tool_calls": call["tool_calls"]}
    assert sent[-2:] == [result, {"role": "user", "content": "thanks"}]


LONG = "x" * 32_001  # one over MAX_CONTENT_CHARS' default


@pytest.mark.parametrize(
    ("reply", "param"),
    [
        (
            {
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": CALLED | {"arguments": LONG}}
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        (
            {
                "tool_calls": [
                    {"id": "c1", "type": "custom", "custom": {"name": "grep", "input": LONG}}
                ]
            },
            "messages[1].tool_calls[0].custom.input",
        ),
        ({"content": None, "refusal": LONG}, "messages[1].refusal"),
    ],
    ids=["function-arguments", "custom-input", "refusal"],
)
@pytest.mark.parametrize("chat", [{"X-Chat-Id": "long-call"}, {}], ids=["chat", "pass-through"])
def test_a_resent_reply_longer_than_the_limit_is_refused_and_nothing_is_stored(
    openai_proxy: Proxy,
    fake_upstream: FakeUpstream,
    reply: dict[str, Any],
    param: str,
    chat: dict[str, str],
) -> None:
    client, url = openai_proxy
    messages: list[Any] = [*ask("call get_time"), {"role": "assistant", **reply}]
    if "tool_calls" in reply:
        messages.append({"role": "tool", "tool_call_id": "c1", "content": "12:00"})
    else:
        messages.extend(ask("and now?"))

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=MODEL, messages=messages, extra_headers=chat)

    assert refused.value.code == "invalid_request"
    assert refused.value.param == param
    assert refused.value.message.endswith(
        f" - {param}: at most 32000 characters (MAX_CONTENT_CHARS)"
    )
    assert stored(url, "long-call") == []
    assert fake_upstream.chat_requests() == []

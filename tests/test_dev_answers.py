"""The dev upstream's rules for tools, JSON and choices (`chatproxy/upstream/dev_answers.py`),
driven by the official openai client: the answers the proxy's tests rely on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from chatproxy.upstream.dev import DevUpstream
from tests.test_devupstream import MESSAGES, http_call, make_client


@pytest.fixture(scope="module")
def devup() -> Iterator[DevUpstream]:
    with DevUpstream() as server:
        yield server


ONLY_TIME = {"type": "function", "function": {"name": "get_time"}}
TOOLS: list[Any] = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("get_weather", "get_time")
]


@pytest.mark.parametrize(
    ("text", "options", "called"),
    [
        ("call get_time and get_weather", {}, ["get_weather", "get_time"]),
        ("call get_time and get_weather", {"parallel_tool_calls": False}, ["get_weather"]),
        ("call get_time", {"tool_choice": "none"}, []),
        ("call nothing", {}, []),
        ("call nothing", {"tool_choice": "required"}, ["get_weather"]),
        ("call get_weather", {"tool_choice": ONLY_TIME}, ["get_time"]),
    ],
)  # fmt: skip
def test_tools_named_in_the_user_text_are_called(
    devup: DevUpstream, text: str, options: dict[str, Any], called: list[str]
) -> None:
    request = {"model": "m", "messages": [{"role": "user", "content": text}], "tools": TOOLS}
    with make_client(devup) as client:
        plain = client.chat.completions.create(**request, **options)
        with client.chat.completions.stream(**request, **options) as stream:
            streamed = stream.get_final_completion()

    for answer in (plain, streamed):
        choice = answer.choices[0]
        calls = choice.message.tool_calls or []
        assert [c.function.name for c in calls] == called  # type: ignore[union-attr]
        assert choice.finish_reason == ("tool_calls" if called else "stop")
        assert (choice.message.content is None) == bool(called)
    pairs = [
        [(c.function.name, c.function.arguments) for c in a.choices[0].message.tool_calls or []]  # type: ignore[union-attr]
        for a in (plain, streamed)
    ]
    assert pairs[0] == pairs[1]  # the same calls, pieced together from the stream


def test_tool_results_are_what_the_reply_repeats(devup: DevUpstream) -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    messages: list[Any] = [
        {"role": "user", "content": "get_time"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "c1", "content": "noon"},
    ]
    with make_client(devup) as client:
        reply = client.chat.completions.create(model="m", messages=messages, tools=TOOLS)

    assert reply.choices[0].message.content == "[dev upstream] The tools said: noon."


def test_a_json_object_response_format_wraps_the_reply(devup: DevUpstream) -> None:
    with make_client(devup) as client:
        reply = client.chat.completions.create(
            model="m", messages=MESSAGES, response_format={"type": "json_object"}
        )

    assert json.loads(reply.choices[0].message.content or "")["reply"].startswith("[dev upstream]")


@pytest.mark.parametrize("n", [0, 17, "2"])
def test_n_out_of_range_is_refused(devup: DevUpstream, n: Any) -> None:
    body = json.dumps({"model": "m", "messages": MESSAGES, "n": n}).encode()

    status, _, answer = http_call(devup.base_url + "/chat/completions", data=body)

    assert status == 400
    assert "n must be" in answer["error"]["message"]

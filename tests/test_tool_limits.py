"""The tool definitions a request gives the model are held to OpenAI's bounds (at most 128 tools,
function names of 1-64 characters of A-Z a-z 0-9 _ -) and, together, to MAX_TOOLS_CHARS
characters of JSON: on `/v1/chat/completions` with a chat id and without, and on
`/v1/responses` stored or not. A refusal is a 400 in OpenAI's shape naming the field, and
neither the model nor the store sees anything of the request."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from chatproxy.jsontext import compact
from harness.fake_upstream import FakeUpstream
from harness.server_process import http
from tests.asgi_client import ProxyClient
from tests.conftest import SDK_KEY, MakeClient

MODEL = "gpt-4.1-mini"
ASK = [{"role": "user", "content": "hi"}]


def function(name: str, description: str = "A tool.") -> dict[str, Any]:
    parameters = {"type": "object", "properties": {"city": {"type": "string"}}}
    return {"name": name, "description": description, "parameters": parameters}


def chat_tool(name: str, description: str = "A tool.") -> dict[str, Any]:
    return {"type": "function", "function": function(name, description)}


def response_tool(name: str, description: str = "A tool.") -> dict[str, Any]:
    return {"type": "function", **function(name, description)}


def complete(client: ProxyClient, chat: str | None, **fields: Any) -> Any:
    headers = {"X-Chat-Id": chat} if chat else {}
    body = json.dumps({"model": MODEL, "messages": ASK, **fields})
    return client.post("/v1/chat/completions", data=body, headers=headers)


def refused(answer: Any, param: str, words: str) -> None:
    assert answer.status_code == 400, answer.get_data(as_text=True)
    error = answer.get_json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"].startswith(f"{param}: ")
    assert words in error["message"]


MANY = [chat_tool(f"tool_{n}") for n in range(129)]
LONG_NAME = "t" * 65


@pytest.mark.parametrize(
    ("fields", "param", "words"),
    [
        ({"tools": MANY}, "tools", "at most 128 tools"),
        ({"tools": {"type": "function"}}, "tools", "valid list"),
        ({"tools": ["get_weather"]}, "tools[0]", "must be an object"),
        ({"tools": [chat_tool("ok"), chat_tool("get weather")]}, "tools[1].function.name", "A-Z"),
        ({"tools": [chat_tool(LONG_NAME)]}, "tools[0].function.name", "1-64 characters"),
        ({"tools": [{"type": "function", "name": "flat"}]}, "tools[0].function", "an object"),
        (
            {"tools": [{"type": "custom", "custom": {"name": LONG_NAME}}]},
            "tools[0].custom.name",
            "1-64 characters",
        ),
        ({"functions": [function("a.b")]}, "functions[0].name", "A-Z"),
        ({"functions": [function(f"f{n}") for n in range(129)]}, "functions", "at most 128"),
        ({"tools": [chat_tool("big", "d" * 256_000)]}, "tools", "(MAX_TOOLS_CHARS)"),
        ({"functions": [function("big", "d" * 256_000)]}, "functions", "(MAX_TOOLS_CHARS)"),
    ],
    ids=[
        "129-tools",
        "not-a-list",
        "not-an-object",
        "name-with-a-space",
        "name-of-65",
        "function-not-an-object",
        "custom-name-of-65",
        "legacy-function-name",
        "129-legacy-functions",
        "over-max-tools-chars",
        "legacy-over-max-tools-chars",
    ],
)
@pytest.mark.parametrize("chat", ["tools-chat", None], ids=["chat", "pass-through"])
def test_chat_completion_tools_beyond_the_bounds_are_refused_naming_the_field(
    client: ProxyClient,
    fake_upstream: FakeUpstream,
    fields: dict[str, Any],
    param: str,
    words: str,
    chat: str | None,
) -> None:
    answer = complete(client, chat, **fields)

    refused(answer, param, words)
    assert fake_upstream.chat_requests() == []
    assert client.get("/tools-chat/chat").get_json() == []


@pytest.mark.parametrize("chat", ["tools-chat", None], ids=["chat", "pass-through"])
def test_tools_up_to_max_tools_chars_reach_the_model_and_one_character_more_is_refused(
    make_client: MakeClient, fake_upstream: FakeUpstream, chat: str | None
) -> None:
    tools = [chat_tool(f"tool_{n}") for n in range(128)]
    functions = [function("legacy")]
    size = len(compact(tools)) + len(compact(functions))
    client = make_client(MAX_TOOLS_CHARS=str(size))

    answer = complete(client, chat, tools=tools, functions=functions)

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert fake_upstream.chat_requests()[-1]["tools"] == tools
    assert fake_upstream.chat_requests()[-1]["functions"] == functions
    smaller = make_client(MAX_TOOLS_CHARS=str(size - 1))
    refused(complete(smaller, chat, tools=tools, functions=functions), "tools", f"{size}")
    assert len(fake_upstream.chat_requests()) == 1


@pytest.mark.parametrize(
    ("tools", "param", "words"),
    [
        ([response_tool(f"tool_{n}") for n in range(129)], "tools", "at most 128 tools"),
        ([response_tool(LONG_NAME)], "tools[0].name", "1-64 characters"),
        ([response_tool("big", "d" * 256_000)], "tools", "(MAX_TOOLS_CHARS)"),
    ],
    ids=["129-tools", "name-of-65", "over-max-tools-chars"],
)
@pytest.mark.parametrize("store", [True, False], ids=["stored", "not-stored"])
def test_responses_tools_beyond_the_bounds_are_refused_naming_the_field(
    openai_proxy: tuple[openai.OpenAI, str],
    fake_upstream: FakeUpstream,
    tools: list[Any],
    param: str,
    words: str,
    store: bool,
) -> None:
    client, url = openai_proxy

    with pytest.raises(openai.BadRequestError) as refusal:
        client.responses.create(model=MODEL, input="hi", tools=tools, store=store)  # type: ignore[arg-type]

    assert refusal.value.param == param
    assert refusal.value.code == "invalid_request"
    assert words in refusal.value.message
    assert fake_upstream.chat_requests() == []
    chats = http("GET", f"{url}/chats", headers={"X-API-Key": SDK_KEY}).json()["chats"]
    assert chats == []


def test_a_response_within_max_tools_chars_keeps_its_tools(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    tools = [response_tool("get_weather", "d" * 1000)]
    client = make_client(MAX_TOOLS_CHARS=str(len(compact(tools))))

    answer = client.post("/v1/responses", json={"model": MODEL, "input": "hi", "tools": tools})

    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.get_json()["tools"] == tools
    sent = fake_upstream.chat_requests()[-1]["tools"]
    assert sent == [{"type": "function", "function": function("get_weather", "d" * 1000)}]

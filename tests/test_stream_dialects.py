"""Streams from OpenAI-compatible servers other than OpenAI, through every route that streams:
the fake upstream speaks their dialects (`FakeUpstream.same_call_index`), and what the client
gets and what the chat stores must still be the reply."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient

ROUTES = ["/c1/chat", "/v1/chat/completions", "/v1/responses"]
ASK = "Please call get_weather and get_time."


def function(name: str) -> dict[str, Any]:
    return {"name": name, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}


TOOLS = [{"type": "function", "function": function(n)} for n in ("get_weather", "get_time")]


def ask(client: ProxyClient, route: str, text: str, tools: bool = False) -> Any:
    """A streamed turn on `route` (chat `c1`; a Responses turn makes its own chat)."""
    body: dict[str, Any] = {"/c1/chat": {"content": text}}.get(route, {})
    headers = {}
    if route == "/v1/chat/completions":
        body, headers = {"messages": [{"role": "user", "content": text}]}, {"X-Chat-Id": "c1"}
    elif route == "/v1/responses":
        body = {"input": text}
    if tools:
        body["tools"] = TOOLS
        if route == "/v1/responses":
            body["tools"] = [{"type": "function", **t["function"]} for t in TOOLS]
    return client.post(route, json={**body, "stream": True}, headers=headers)


def data_of(answer: Any) -> list[Any]:
    """The JSON of each `data:` line of a streamed answer (not `[DONE]`)."""
    lines = answer.get_data(as_text=True).splitlines()
    return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]


def stored_reply(client: ProxyClient, route: str, answer: Any) -> dict[str, Any]:
    """The reply the turn stored, as `GET /<chat>/chat` shows it."""
    chat = "c1"
    if route == "/v1/responses":
        chat = data_of(answer)[-1]["response"]["id"].removeprefix("resp_").rsplit("_", 1)[0]
    reply: dict[str, Any] = client.get(f"/{chat}/chat").get_json()[-1]
    return reply


@pytest.mark.parametrize("route", ROUTES[1:])  # the seed route sends no tools
def test_parallel_calls_that_share_an_index_are_told_apart_by_their_ids(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """Some servers send every call of a reply with `index` 0: a delta with another call's `id`
    starts a new call. The client of `/v1` gets the deltas as they came; the stored reply and
    the Responses stream have both calls, each with its own name and arguments."""
    fake_upstream.same_call_index = True

    answer = ask(client, route, ASK, tools=True)

    assert answer.status_code == 200
    reply = stored_reply(client, route, answer)
    calls = [(c["function"]["name"], c["function"]["arguments"]) for c in reply["tool_calls"]]
    assert calls == [("get_weather", '{"q": "dev"}'), ("get_time", '{"q": "dev"}')]
    assert len({c["id"] for c in reply["tool_calls"]}) == 2
    assert reply["finish_reason"] == "tool_calls"
    if route == "/v1/chat/completions":
        deltas = [
            call
            for chunk in data_of(answer)
            for choice in chunk["choices"]
            for call in choice["delta"].get("tool_calls") or []
        ]
        assert {call["index"] for call in deltas} == {0}  # as the upstream sent them
        assert [call["id"] for call in deltas if "id" in call] == [
            c["id"] for c in reply["tool_calls"]
        ]
    if route == "/v1/responses":
        events = data_of(answer)
        added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
        done = [e["item"] for e in events if e["type"] == "response.output_item.done"]
        streamed: dict[int, str] = {}
        for event in events:
            if event["type"] == "response.function_call_arguments.delta":
                streamed[event["output_index"]] = (
                    streamed.get(event["output_index"], "") + event["delta"]
                )
        output = events[-1]["response"]["output"]
        assert [(i["call_id"], i["name"]) for i in added] == [
            (c["id"], c["function"]["name"]) for c in reply["tool_calls"]
        ]
        assert [(i["call_id"], i["name"], i["arguments"]) for i in done] == [
            (c["id"], c["function"]["name"], c["function"]["arguments"])
            for c in reply["tool_calls"]
        ]
        assert streamed == {0: '{"q": "dev"}', 1: '{"q": "dev"}'}
        assert output == done

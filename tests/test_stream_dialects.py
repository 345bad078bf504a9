"""Streams from OpenAI-compatible servers other than OpenAI, through every route that streams:
the fake upstream speaks their dialects (`FakeUpstream.same_call_index`, `omit_finish_reason`,
`omit_done`), and what the client gets and what the chat stores must still be the reply."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openai.lib.streaming.chat import ChatCompletionStreamState
from openai.types.chat import ChatCompletionChunk

from chatproxy.http.completion_chunks import Chunks
from chatproxy.upstream.stream import ReplyParts
from harness.fake_upstream import FakeUpstream, Fault
from tests.asgi_client import ProxyClient

ROUTES = ["/c1/chat", "/v1/chat/completions", "/v1/responses"]
SSE = {"Content-Type": "text/event-stream"}
PASS_THROUGH = "/v1/chat/completions without a chat id"
ASK = "Please call get_weather and get_time."


def function(name: str) -> dict[str, Any]:
    return {"name": name, "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}


TOOLS = [{"type": "function", "function": function(n)} for n in ("get_weather", "get_time")]


def ask(client: ProxyClient, route: str, text: str, tools: bool = False) -> Any:
    """A streamed turn on `route` (chat `c1`; a Responses turn makes its own chat)."""
    body: dict[str, Any] = {"/c1/chat": {"content": text}}.get(route, {})
    headers = {}
    if route.startswith("/v1/chat/completions"):
        body = {"messages": [{"role": "user", "content": text}]}
        headers = {"X-Chat-Id": "c1"} if route == "/v1/chat/completions" else {}
        route = "/v1/chat/completions"
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


def chat_of(route: str, answer: Any) -> str:
    """The chat a turn went in: `c1`, or the one its response's id names."""
    if route != "/v1/responses":
        return "c1"
    response_id: str = data_of(answer)[-1]["response"]["id"]
    return response_id.removeprefix("resp_").rsplit("_", 1)[0]


def stored_reply(client: ProxyClient, route: str, answer: Any) -> dict[str, Any]:
    """The reply the turn stored, as `GET /<chat>/chat` shows it."""
    reply: dict[str, Any] = client.get(f"/{chat_of(route, answer)}/chat").get_json()[-1]
    return reply


@pytest.mark.parametrize("route", ROUTES[1:])  # the seed route sends no tools
def test_parallel_calls_that_share_an_index_are_told_apart_by_their_ids(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """Some servers send every call of a reply with `index` 0: a delta with another call's `id`
    starts a new call. The stored reply, the Responses stream and the deltas a `/v1` client
    gets (each call at an index of its own) have both calls, each with its name and arguments."""
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
        assert [(call["index"], call["id"]) for call in deltas if "id" in call] == [
            (n, c["id"]) for n, c in enumerate(reply["tool_calls"])
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


@pytest.mark.parametrize("route", ["/v1/chat/completions", PASS_THROUGH])
def test_an_sdk_puts_calls_that_shared_an_index_together_as_the_chat_stored_them(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """The official SDK merges a stream's tool-call deltas by their `index`, as OpenAI numbers
    them: each call's deltas must come at an index of its own, or it makes one call of the two
    (ids, names and arguments run together) and the history it resends is not the chat's."""
    fake_upstream.same_call_index = True
    state = ChatCompletionStreamState()

    for chunk in data_of(ask(client, route, ASK, tools=True)):
        state.handle_chunk(ChatCompletionChunk.model_validate(chunk))

    message = state.get_final_completion().choices[0].message
    calls = [(c.function.name, c.function.arguments) for c in message.tool_calls or []]
    assert calls == [("get_weather", '{"q": "dev"}'), ("get_time", '{"q": "dev"}')]
    if route == "/v1/chat/completions":
        stored = client.get("/c1/chat").get_json()[-1]["tool_calls"]
        assert [c.id for c in message.tool_calls or []] == [c["id"] for c in stored]


def ended(route: str, answer: Any) -> tuple[str, Any]:
    """How a streamed answer ended: its last event's kind and what it said (`done` and the reply,
    `[DONE]` and the finish reason the chunks gave, a Responses status, or `error`)."""
    text = answer.get_data(as_text=True)
    if route == "/c1/chat":
        last = text.strip().split("\n\n")[-1].splitlines()
        return last[0].removeprefix("event: "), json.loads(last[1][6:])
    if route == "/v1/responses":
        last = data_of(answer)[-1]
        return last["type"], last.get("response", {}).get("status")
    if not text.rstrip().endswith("data: [DONE]"):
        return "error", data_of(answer)[-1]
    finishes = [c["finish_reason"] for chunk in data_of(answer) for c in chunk["choices"]]
    return "[DONE]", [f for f in finishes if f is not None]


@pytest.mark.parametrize("route", [*ROUTES, PASS_THROUGH])
def test_a_stream_that_ends_at_done_without_a_finish_reason_is_a_whole_reply(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """Some servers never say why a reply ended: `data: [DONE]` after its text is its end, as
    it is after a finish reason, and the reply is stored as one that stopped."""
    fake_upstream.omit_finish_reason = True
    fake_upstream.reply_text = "one two three"

    answer = ask(client, route, "hi")

    assert answer.status_code == 200
    kind, said = ended(route, answer)
    if route == "/c1/chat":
        assert (kind, said["content"], said["finish_reason"]) == ("done", "one two three", "stop")
    elif route == "/v1/responses":
        assert (kind, said) == ("response.completed", "completed")
    else:
        assert (kind, said) == ("[DONE]", ["stop"])  # told, as a client's SDK expects
    if route != PASS_THROUGH:
        reply = stored_reply(client, route, answer)
        assert (reply["content"], reply["finish_reason"]) == ("one two three", "stop")


@pytest.mark.parametrize("route", ROUTES[1:])
def test_calls_that_end_at_done_without_a_finish_reason_finish_as_tool_calls(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    fake_upstream.omit_finish_reason = True

    answer = ask(client, route, ASK, tools=True)

    assert answer.status_code == 200
    reply = stored_reply(client, route, answer)
    assert [c["function"]["name"] for c in reply["tool_calls"]] == ["get_weather", "get_time"]
    assert reply["finish_reason"] == "tool_calls"
    if route == "/v1/chat/completions":
        assert ended(route, answer) == ("[DONE]", ["tool_calls"])


def event_stream(*chunks: dict[str, Any]) -> Fault:
    """An upstream's streamed answer of `chunks`, then `data: [DONE]`."""
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks]
    return Fault(body="".join([*events, "data: [DONE]\n\n"]), headers=SSE)


@pytest.mark.parametrize("route", [*ROUTES, PASS_THROUGH])
def test_a_call_whose_arguments_break_off_at_done_without_a_finish_reason_was_cut_short(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """A server that never says why a reply ended and stops mid-arguments (at its token cap):
    the call is not whole, and the reply is one cut short (`length`), not a call to make."""
    fake_upstream.script(
        event_stream(
            calls_chunk(piece(0, "", id="call_a", name="get_time")),
            calls_chunk(piece(0, '{"zone": "Eu')),
        )
    )

    answer = ask(client, route, "What time is it?", tools=route != "/c1/chat")

    assert answer.status_code == 200
    if route == "/v1/responses":
        assert ended(route, answer) == ("response.incomplete", "incomplete")
        response = data_of(answer)[-1]["response"]
        assert response["incomplete_details"] == {"reason": "max_output_tokens"}
    elif route == "/c1/chat":
        assert ended(route, answer)[1]["finish_reason"] == "length"
    else:
        assert ended(route, answer) == ("[DONE]", ["length"])
    if route != PASS_THROUGH:
        reply = stored_reply(client, route, answer)
        assert reply["finish_reason"] == "length"
        assert reply["tool_calls"][0]["function"]["arguments"] == '{"zone": "Eu'  # as it came


@pytest.mark.parametrize("route", [*ROUTES, PASS_THROUGH])
def test_calls_whose_pieces_interleave_at_one_index_stay_two_calls(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """A server that sends every call at index 0 and goes back to an earlier call's id (a, b,
    a, b): the pieces are those of two calls, in the stored reply, in the chunks a `/v1`
    client's SDK merges and in the Responses stream's items, not four calls or two a's."""
    fake_upstream.script(
        event_stream(
            calls_chunk(piece(0, "", id="call_a", name="get_weather")),
            calls_chunk(piece(0, "", id="call_b", name="get_time")),
            calls_chunk(piece(0, '{"q": "Oslo"}', id="call_a")),
            calls_chunk(piece(0, '{"q": "UTC"}', id="call_b")),
        )
    )
    expected = [
        ("call_a", "get_weather", '{"q": "Oslo"}'),
        ("call_b", "get_time", '{"q": "UTC"}'),
    ]

    answer = ask(client, route, ASK, tools=route != "/c1/chat")

    assert answer.status_code == 200
    if route in ("/v1/chat/completions", PASS_THROUGH):
        state = ChatCompletionStreamState()
        for chunk in data_of(answer):
            state.handle_chunk(ChatCompletionChunk.model_validate(chunk))
        merged = state.get_final_completion().choices[0].message.tool_calls or []
        assert [(c.id, c.function.name, c.function.arguments) for c in merged] == expected  # type: ignore[union-attr]
    if route == "/v1/responses":
        output = data_of(answer)[-1]["response"]["output"]
        assert [(i.get("call_id"), i.get("name"), i.get("arguments")) for i in output] == expected
    if route != PASS_THROUGH:
        reply = stored_reply(client, route, answer)
        calls = reply["tool_calls"]
        assert [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls] == (
            expected
        )
        assert reply["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("route", [*ROUTES, PASS_THROUGH])
def test_a_stream_that_ends_without_done_or_a_finish_reason_broke_off(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    fake_upstream.omit_finish_reason = fake_upstream.omit_done = True

    answer = ask(client, route, "hi")

    assert answer.status_code == 200  # the reply had begun: the error is the stream's end
    assert ended(route, answer)[0] in ("error", "response.failed")
    assert "the model provider's stream broke off" in answer.get_data(as_text=True)
    assert client.get(f"/{chat_of(route, answer)}/chat").get_json() == []  # nothing stored


def calls_chunk(*pieces: dict[str, Any]) -> dict[str, Any]:
    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    choice = {"index": 0, "delta": {"tool_calls": list(pieces)}, "finish_reason": None}
    return {**head, "choices": [choice]}


def piece(index: int, arguments: str, **call: str) -> dict[str, Any]:
    """A tool-call delta; `name` and `id` start a call (with its type)."""
    head = {"id": call["id"], "type": "function"} if "id" in call else {}
    function = {"arguments": arguments, **({"name": call["name"]} if "name" in call else {})}
    return {"index": index, **head, "function": function}


def test_the_chunks_a_client_merges_by_index_hold_the_calls_the_chat_stores() -> None:
    """Calls at one index told apart by their ids, pieces with and without an id (a repeated
    one too), two calls' pieces in one chunk, and a call at an index of its own after them: a
    client that merges the deltas by index gets the calls the stored reply holds, in order."""
    chunks = [
        calls_chunk(piece(0, "", id="call_a", name="f")),
        calls_chunk(piece(0, '{"x":')),
        calls_chunk(piece(0, "", id="call_b", name="g"), piece(0, '{"y":')),
        calls_chunk(piece(1, "{}", id="call_c", name="h")),
        calls_chunk(piece(0, "2}")),
        calls_chunk(piece(0, "", id="call_b")),
    ]
    parts = ReplyParts("m", [{"role": "user", "content": "go"}])
    sent, state = Chunks(include_usage=False), ChatCompletionStreamState()

    for chunk in chunks:
        for shown in sent.delta("", parts.add(chunk).chunk):
            state.handle_chunk(ChatCompletionChunk.model_validate(shown))
    parts.check_finished(done=True)
    for shown in sent.done(parts.completion().message | {"finish_reason": "tool_calls"}):
        state.handle_chunk(ChatCompletionChunk.model_validate(shown))

    stored = parts.completion().tool_calls or []
    merged = state.get_final_completion().choices[0].message.tool_calls or []
    calls = [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in stored]
    assert calls == [("call_a", "f", '{"x":'), ("call_b", "g", '{"y":2}'), ("call_c", "h", "{}")]
    assert [(c.id, c.function.name, c.function.arguments) for c in merged] == calls  # type: ignore[union-attr]
    assert ReplyParts("m", []).add(chunks[0]).chunk is chunks[0]  # none moved

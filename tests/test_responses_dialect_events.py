"""The Responses dialect's stream, without a server: a streamed turn's events (upstream chunks
with text and tool-call pieces, a replay's text, the stored reply, an error) as Responses
events, each checked with the openai SDK's own event types, accumulated by the SDK's own stream
state (`ResponseStreamState`, what `client.responses.stream()` runs), and read by the SDK's
`responses.stream()` itself from the server-sent events they are written as."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import httpx2
import openai
import pytest
from openai._types import omit
from openai.lib.streaming.responses import ResponseStreamState
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from chatproxy.errors import ProxyError
from chatproxy.http.responses_events import ResponseEvents, sse_frame
from chatproxy.http.responses_objects import ResponseHead, response_object
from chatproxy.service.results import StreamEvent
from chatproxy.store.items import Message
from chatproxy.upstream_errors import UpstreamTimeout

EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
HEAD = ResponseHead("resp_s", 1_700_000_000.0, "gpt-4.1-mini", reply_id=4)
SETTINGS = {"tools": [{"type": "function", "name": "get_weather", "parameters": {}}]}
USAGE = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
CALL_A = {
    "id": "call_a",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}
CALL_B = {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}


def chunk(content: str | None = None, calls: list[dict[str, Any]] | None = None) -> StreamEvent:
    """The `delta` event of an upstream chunk, as the service sends it."""
    delta: dict[str, Any] = {}
    if content is not None:
        delta["content"] = content
    if calls is not None:
        delta["tool_calls"] = calls
    body = {"object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}
    return StreamEvent("delta", {"content": content or ""}, chunk=body)


def piece(
    index: int, *, call_id: str | None = None, name: str | None = None, arguments: str = ""
) -> dict[str, Any]:
    """One tool call piece of a chunk's delta."""
    call: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id is not None:
        call.update(id=call_id, type="function")
    if name is not None:
        call["function"]["name"] = name
    return call


def stored(
    content: str | None, calls: list[dict[str, Any]] | None = None, finish: str = "stop"
) -> Message:
    return Message(
        "assistant",
        content,
        usage=USAGE,
        model="gpt-4.1-mini",
        id=4,
        tool_calls=calls,
        finish_reason=finish,
    )


def done(reply: Message) -> StreamEvent:
    return StreamEvent("done", reply.to_json())


def translated(events: Iterable[StreamEvent]) -> list[dict[str, Any]]:
    translator = ResponseEvents(HEAD, SETTINGS)
    sent = [e for event in events for e in translator.translate(event)]
    assert [e["sequence_number"] for e in sent] == list(range(len(sent)))
    for event in sent:
        EVENT.validate_python(event)
    return sent


def accumulated(sent: list[dict[str, Any]]) -> Any:
    """What the SDK's stream helper makes of the events: its final response (that of the
    `response.completed` event it gives, which `get_final_response()` returns), if any."""
    state: ResponseStreamState[Any] = ResponseStreamState(input_tools=omit, text_format=omit)
    final = None
    for event in sent:
        for given in state.handle_event(EVENT.validate_python(event)):
            if given.type == "response.completed":
                final = given.response
    return final


def kinds(sent: list[dict[str, Any]]) -> list[str]:
    return [event["type"] for event in sent]


TEXT_EVENTS = [
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.delta",
]
TEXT_DONE = ["response.output_text.done", "response.content_part.done", "response.output_item.done"]
CALL_DONE = ["response.function_call_arguments.done", "response.output_item.done"]
START = ["response.created", "response.in_progress"]


def test_a_streamed_text_is_one_message_item_in_the_order_the_sdk_demands() -> None:
    reply = stored("Hello.")
    sent = translated([chunk(""), chunk("Hel"), chunk("lo."), done(reply)])
    assert kinds(sent) == [*START, *TEXT_EVENTS, *TEXT_DONE, "response.completed"]
    assert {e["item_id"] for e in sent if "item_id" in e} == {"msg_4"}
    assert sent[0]["response"]["status"] == "in_progress"
    assert sent[0]["response"]["output"] == []
    final = accumulated(sent)
    assert final.output_text == "Hello."
    assert sent[-1]["response"] == response_object(HEAD, SETTINGS, reply)  # as GET will say


def test_tool_calls_stream_as_function_call_items_after_the_text() -> None:
    reply = stored("Let me look.", [CALL_A, CALL_B], finish="tool_calls")
    sent = translated(
        [
            chunk("Let me look."),
            chunk(calls=[piece(0, call_id="call_a", name="get_weather")]),
            chunk(calls=[piece(0, arguments='{"city":')]),
            chunk(calls=[piece(1, call_id="call_b", name="get_time", arguments="{")]),
            chunk(calls=[piece(0, arguments='"Oslo"}'), piece(1, arguments="}")]),
            done(reply),
        ]
    )
    added = [e for e in sent if e["type"] == "response.output_item.added"]
    assert [(e["output_index"], e["item"]["id"]) for e in added] == [
        (0, "msg_4"),
        (1, "fc_4_0"),
        (2, "fc_4_1"),
    ]
    assert added[1]["item"]["call_id"] == "call_a"
    assert added[1]["item"]["arguments"] == ""
    deltas = [
        (e["item_id"], e["delta"])
        for e in sent
        if e["type"] == "response.function_call_arguments.delta"
    ]
    assert deltas == [
        ("fc_4_0", '{"city":'),
        ("fc_4_1", "{"),
        ("fc_4_0", '"Oslo"}'),
        ("fc_4_1", "}"),
    ]
    closing = sent[sent.index(added[-1]) + 1 :]
    assert kinds(closing)[-8:] == [*TEXT_DONE, *CALL_DONE, *CALL_DONE, "response.completed"][-8:]
    final = accumulated(sent)
    assert [(item.type, item.id) for item in final.output] == [
        ("message", "msg_4"),
        ("function_call", "fc_4_0"),
        ("function_call", "fc_4_1"),
    ]
    assert final.output[1].arguments == '{"city":"Oslo"}'
    assert final.output_text == "Let me look."
    assert sent[-1]["response"] == response_object(HEAD, SETTINGS, reply)


def test_a_call_is_added_once_its_id_and_name_have_come() -> None:
    reply = stored(None, [CALL_A], finish="tool_calls")
    sent = translated(
        [
            chunk(calls=[piece(0, arguments='{"city"')]),
            chunk(calls=[piece(0, call_id="call_a", name="get_weather", arguments=':"Oslo"}')]),
            done(reply),
        ]
    )
    assert kinds(sent) == [
        *START,
        "response.output_item.added",
        "response.function_call_arguments.delta",
        *CALL_DONE,
        "response.completed",
    ]
    assert sent[3]["delta"] == '{"city":"Oslo"}'
    final = accumulated(sent)
    assert [item.id for item in final.output] == ["fc_4_0"]
    assert final.output_text == ""


def test_a_replay_sends_its_text_then_its_calls_from_the_stored_reply() -> None:
    """A replayed turn's events have no chunks: its calls come with the stored reply."""
    reply = stored("Looking.", [CALL_A], finish="tool_calls")
    sent = translated([StreamEvent("delta", {"content": "Looking."}), done(reply)])
    assert kinds(sent) == [
        *START,
        *TEXT_EVENTS[:3],
        "response.output_item.added",
        *TEXT_DONE,
        "response.function_call_arguments.delta",
        *CALL_DONE,
        "response.completed",
    ]
    final = accumulated(sent)
    assert final.output[1].arguments == '{"city":"Oslo"}'
    assert sent[-1]["response"] == response_object(HEAD, SETTINGS, reply)


def test_text_that_was_not_streamed_is_sent_with_the_stored_reply() -> None:
    sent = translated([chunk("Hel"), done(stored("Hello."))])
    texts = [e["delta"] for e in sent if e["type"] == "response.output_text.delta"]
    assert texts == ["Hel", "lo."]
    assert accumulated(translated([done(stored("Hi"))])).output_text == "Hi"


def test_a_reply_stopped_at_its_cap_ends_incomplete() -> None:
    sent = translated([chunk("Hello"), done(stored("Hello", finish="length"))])
    assert sent[-1]["type"] == "response.incomplete"
    assert sent[-1]["response"]["status"] == "incomplete"
    assert sent[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert accumulated(sent) is None  # the SDK completes no response, as with OpenAI's


def test_a_turn_that_fails_ends_with_an_error_then_the_failed_response() -> None:
    translator = ResponseEvents(HEAD, SETTINGS)
    sent = [
        *translator.translate(chunk("Hel")),
        *translator.translate(
            chunk(calls=[piece(0, call_id="call_a", name="get_weather", arguments="{")])
        ),
        *translator.translate(StreamEvent.failure(UpstreamTimeout())),
    ]
    assert kinds(sent)[-2:] == ["error", "response.failed"]
    error, failed = sent[-2:]
    assert (error["code"], error["message"]) == (
        "upstream_timeout",
        UpstreamTimeout.default_message,
    )
    assert error["error"] == UpstreamTimeout().to_openai_json()["error"]
    response = Response.model_validate(failed["response"])
    assert response.status == "failed"
    assert response.error is not None
    assert response.error.code == "server_error"
    assert [(item.id, item.status) for item in response.output] == [
        ("msg_4", "incomplete"),
        ("fc_4_0", "incomplete"),
    ]
    accumulated(sent)
    assert translator.translate(done(stored("late"))) == []


def test_a_turn_that_fails_before_any_piece_still_starts_its_response() -> None:
    sent = translated([StreamEvent.failure(RuntimeError("boom"))])
    assert kinds(sent) == [*START, "error", "response.failed"]
    assert sent[2]["code"] == ProxyError.code


def test_nothing_follows_the_end_of_a_response() -> None:
    translator = ResponseEvents(HEAD, SETTINGS)
    translator.translate(done(stored("Hi")))
    assert translator.translate(chunk("more")) == []


def test_an_event_goes_on_the_wire_as_a_server_sent_event() -> None:
    event = translated([chunk("é")])[-1]
    frame = sse_frame(event)
    assert frame.startswith("event: response.output_text.delta\ndata: {")
    assert frame.endswith("}\n\n")
    assert json.loads(frame.split("data: ", 1)[1]) == event


def sdk_reading(frames: str) -> openai.OpenAI:
    """The official client, answered with these server-sent events."""

    def answer(request: httpx2.Request) -> httpx2.Response:
        headers = {"content-type": "text/event-stream"}
        return httpx2.Response(200, content=frames.encode(), headers=headers)

    transport = httpx2.MockTransport(answer)
    http_client = httpx2.Client(transport=transport)
    return openai.OpenAI(api_key="k", base_url="http://proxy.test/v1", http_client=http_client)


def test_the_sdks_stream_helper_reads_the_stream_to_its_final_response() -> None:
    reply = stored("It is 3 degrees.", [CALL_A], finish="tool_calls")
    sent = translated(
        [
            chunk("It is "),
            chunk("3 degrees."),
            chunk(
                calls=[piece(0, call_id="call_a", name="get_weather", arguments='{"city":"Oslo"}')]
            ),
            done(reply),
        ]
    )
    client = sdk_reading("".join(map(sse_frame, sent)))
    with client.responses.stream(model="m", input="hi") as stream:
        seen = [event.type for event in stream]
        final = stream.get_final_response()
    assert seen == kinds(sent)
    assert final.id == "resp_s"
    assert final.output_text == "It is 3 degrees."
    assert final.output[1].type == "function_call"
    assert final.output[1].call_id == "call_a"


def test_the_sdk_raises_its_api_error_when_the_stream_fails() -> None:
    sent = translated([chunk("Hel"), StreamEvent.failure(UpstreamTimeout())])
    client = sdk_reading("".join(map(sse_frame, sent)))
    with (
        pytest.raises(openai.APIError) as caught,
        client.responses.stream(model="m", input="hi") as stream,
    ):
        for _ in stream:
            pass
    assert caught.value.message == UpstreamTimeout.default_message
    assert caught.value.code == "upstream_timeout"


def test_items_that_name_their_chat_stream_with_the_same_ids() -> None:
    head = ResponseHead("resp_c", 1.0, "m", reply_id=4, chat="conv_1")
    reply = stored("Hi", [CALL_A], finish="tool_calls")
    translator = ResponseEvents(head, {})
    events = [
        chunk("Hi"),
        chunk(calls=[piece(0, call_id="call_a", name="get_weather")]),
        done(reply),
    ]
    sent = [e for event in events for e in translator.translate(event)]
    added = [e["item"]["id"] for e in sent if e["type"] == "response.output_item.added"]
    assert added == ["msg_conv_1_4", "fc_conv_1_4_0"]
    assert [item.id for item in accumulated(sent).output] == added
    assert sent[-1]["response"] == response_object(head, {}, reply)

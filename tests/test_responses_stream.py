"""`POST /v1/responses` with `stream: true`, read by the official openai SDK's own stream helper
(`client.responses.stream()`, `get_final_response()`), against the real server process (the
fake upstream, both stores): the events in the order the SDK demands, text and tool calls, the
stored reply found again as the same Response, a replay, a stream that breaks off."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest
from openai.types.responses import Response, ResponseFunctionToolCall

from harness.fake_upstream import FakeUpstream
from tests.responses_client import MODEL, SYSTEM, WEATHER, Proxy, chat_of, proxy, said

__all__ = ["proxy"]  # the fixture this module's tests use


def streamed(proxy: Proxy, **body: Any) -> tuple[list[Any], Response]:
    """The events of a streamed response, as the SDK's helper read them, and its final one."""
    with proxy.client.responses.stream(model=MODEL, **body) as stream:
        events = list(stream)
        return events, stream.get_final_response()


def same(found: Response, final: Response) -> bool:
    """Whether a retrieved Response is the final one of a stream (to whose text parts and
    function calls the SDK's helper adds its own `parsed` and `parsed_arguments`)."""
    streamed = final.model_dump()
    for item in streamed["output"]:
        item.pop("parsed_arguments", None)
        for part in item.get("content") or []:
            part.pop("parsed", None)
    return found.model_dump() == streamed


def kinds(events: list[Any]) -> list[str]:
    """The events' types, runs of deltas as one."""
    seen: list[str] = []
    for event in events:
        if not (event.type.endswith(".delta") and seen and seen[-1] == event.type):
            seen.append(event.type)
    return seen


def test_a_streamed_response_comes_in_order_and_is_stored_as_it_ended(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    first = proxy.client.responses.create(model=MODEL, input="I'm Ana.")

    events, final = streamed(proxy, input="My name?", previous_response_id=first.id)

    assert kinds(events) == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert events[0].response.id == final.id  # known before the reply was stored
    assert final.output_text == said("My name?", 3)  # it saw the history
    assert final.previous_response_id == first.id
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == final.output_text
    assert same(proxy.client.responses.retrieve(final.id), final)
    assert proxy.path(chat_of(first))[-2:] == [("user", "My name?"), ("assistant", text)]


def test_a_streamed_tool_call_is_a_function_call_item_and_its_output_continues_the_chat(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    events, called = streamed(proxy, input="Use get_weather for Oslo.", tools=[WEATHER])

    (call,) = called.output
    assert isinstance(call, ResponseFunctionToolCall)
    assert (call.name, call.arguments) == ("get_weather", '{"city": "dev"}')
    assert "response.function_call_arguments.delta" in kinds(events)
    assert kinds(events)[-3:] == [
        "response.function_call_arguments.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert same(proxy.client.responses.retrieve(called.id), called)

    output = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}
    _, answered = streamed(proxy, input=[output], previous_response_id=called.id, tools=[WEATHER])

    assert answered.output_text == "[dev upstream] The tools said: Sunny."
    chat = chat_of(called)
    assert [role for role, _ in proxy.path(chat)] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    sent = fake_upstream.chat_requests()[-1]["messages"]
    assert sent[2]["tool_calls"][0]["id"] == call.call_id
    assert sent[3] == {"role": "tool", "content": "Sunny", "tool_call_id": call.call_id}


def test_a_streamed_response_is_stored_whole_when_the_client_leaves(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.chunk_delay = 0.05
    words = " ".join(f"w{n}" for n in range(20))

    with proxy.client.responses.stream(model=MODEL, input=words) as stream:
        response_id = next(iter(stream)).response.id  # response.created, then the client leaves

    deadline = time.monotonic() + 10
    while True:
        try:
            found = proxy.client.responses.retrieve(response_id)
            break
        except openai.NotFoundError:
            assert time.monotonic() < deadline, "the streamed turn was not stored"
            time.sleep(0.1)
    assert found.output_text == said(words, 1)


def test_a_replayed_stream_ends_with_the_same_response(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    key = {"Idempotency-Key": "stream-1"}

    _, first = streamed(proxy, input="hi", extra_headers=key)
    events, again = streamed(proxy, input="hi", extra_headers=key)

    assert again.model_dump() == first.model_dump()
    assert kinds(events)[-1] == "response.completed"
    assert len(fake_upstream.chat_requests()) == 1


def test_a_stream_not_stored_cannot_be_found(proxy: Proxy, fake_upstream: FakeUpstream) -> None:
    _, final = streamed(proxy, input="hi", store=False, instructions="Be brief.")

    assert final.output_text == said("hi", 1)
    assert fake_upstream.chat_requests()[-1]["messages"][0]["content"] == "Be brief."
    with pytest.raises(openai.NotFoundError):
        proxy.client.responses.retrieve(final.id)
    assert proxy.chats() == []


def test_a_stream_that_breaks_off_raises_and_stores_nothing(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    first = proxy.client.responses.create(model=MODEL, input="kept")
    fake_upstream.cut_stream_after = 3

    with pytest.raises(openai.APIError) as broken:
        streamed(proxy, input="broken off", previous_response_id=first.id)

    assert broken.value.code == "upstream_error"
    assert proxy.path(chat_of(first)) == [
        ("system", SYSTEM),
        ("user", "kept"),
        ("assistant", first.output_text),
    ]

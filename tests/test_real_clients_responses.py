"""Real JavaScript clients of the Responses API, against the real server process (the fake
upstream, both stores, two tenants): the official openai Node SDK (`tests/js/responses.mjs`:
create, continue, stream, retrieve, list input items page by page, a tool call's round trip,
its error classes). The tests read what the proxy stored (`GET /<chat_id>/chat`) and what the
fake upstream was sent."""

from __future__ import annotations

from typing import Any

from harness.fake_upstream import FakeUpstream
from tests.responses_client import (
    KEY,
    MODEL,
    OTHER_KEY,
    SYSTEM,
    WEATHER,
    Proxy,
    chat_named,
    proxy,
    said,
    sent_upstream,
)
from tests.test_real_clients import Plan, run_script

__all__ = ["proxy"]  # the fixture this module's tests use


# -- the official openai Node SDK ---------------------------------------------------------------


def node(proxy: Proxy, *requests: Plan, key: str = KEY) -> list[Plan]:
    """Send `requests` with the Node SDK (`tests/js/responses.mjs`) and the API key `key`;
    what it made of each."""
    plan = {"baseURL": f"{proxy.url}/v1", "apiKey": key, "requests": list(requests)}
    results: list[Plan] = run_script("responses.mjs", plan)
    return results


def create(**body: Any) -> Plan:
    return {"call": "create", "body": {"model": MODEL, **body}}


def stream(**body: Any) -> Plan:
    return {"call": "stream", "body": {"model": MODEL, **body}}


def text_of(response: Plan) -> str:
    """A Response's text, as the SDK's `output_text` has it."""
    assert response.get("error") is None, response["error"]
    text: str = response["output_text"]
    return text


def test_node_sdk_creates_a_response_and_continues_it_by_previous_response_id(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    (first,) = node(proxy, create(input="Hi, I'm Ana."))
    second, found = node(
        proxy,
        create(input="What is my name?", previous_response_id=first["id"]),
        {"call": "retrieve", "id": first["id"]},
    )

    chat = chat_named(first["id"])
    assert chat.startswith("chain-")
    assert (first["id"], second["id"]) == (f"resp_{chat}_1", f"resp_{chat}_3")
    assert (first["object"], first["status"]) == ("response", "completed")
    assert first["usage"]["total_tokens"] > 0
    assert second["previous_response_id"] == first["id"]
    assert text_of(second) == said("What is my name?", 3)  # the model saw the first turn
    assert sent_upstream(fake_upstream) == [
        ("system", SYSTEM),
        ("user", "Hi, I'm Ana."),
        ("assistant", text_of(first)),
        ("user", "What is my name?"),
    ]
    assert found == first
    assert proxy.path(chat) == [
        *sent_upstream(fake_upstream),
        ("assistant", text_of(second)),
    ]


def test_node_sdk_streams_a_response_in_order_and_finds_it_again(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    (first,) = node(proxy, create(input="I'm Ana."))
    (streamed,) = node(proxy, stream(input="My name?", previous_response_id=first["id"]))
    events, final = streamed["events"], streamed["response"]
    (found,) = node(proxy, {"call": "retrieve", "id": final["id"]})

    kinds = [event["type"] for event in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas > 1
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * deltas,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert events[0]["response"]["id"] == final["id"]  # known before the reply was stored
    assert final["status"] == "completed"
    assert text_of(final) == said("My name?", 3)
    assert "".join(e["delta"] for e in events if e["type"].endswith("text.delta")) == text_of(final)
    # Stored as it streamed (the SDK's final Response adds `parsed` to each text part).
    assert found["output"] == events[-1]["response"]["output"]
    assert text_of(found) == text_of(final)
    assert proxy.path(chat_named(first["id"]))[-2:] == [
        ("user", "My name?"),
        ("assistant", text_of(final)),
    ]


def test_node_sdk_reads_a_responses_input_items_page_by_page(proxy: Proxy) -> None:
    words = ["one", "two", "three"]
    (first,) = node(proxy, create(input="Hi"))
    messages = [{"role": "user", "content": word} for word in words]
    (response,) = node(proxy, create(input=messages, previous_response_id=first["id"]))

    asc, desc = node(
        proxy,
        {"call": "inputItems", "id": response["id"], "query": {"limit": 1, "order": "asc"}},
        {"call": "inputItems", "id": response["id"], "query": {"limit": 2}},
    )

    chat = chat_named(response["id"])
    assert [item["id"] for item in asc["items"]] == [f"msg_{chat}_{n}" for n in (2, 3, 4)]
    assert [item["content"][0]["text"] for item in asc["items"]] == words
    assert {(item["type"], item["role"]) for item in asc["items"]} == {("message", "user")}
    assert desc["items"] == asc["items"][::-1]
    # `for await` fetched the next page while the last said `has_more`.
    assert (asc["pages"], desc["pages"]) == (3, 2)


def test_node_sdk_sends_a_tool_calls_output_and_gets_the_answer(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    (called,) = node(proxy, create(input="Use get_weather for Oslo.", tools=[WEATHER]))
    (call,) = called["output"]
    output = {"type": "function_call_output", "call_id": call["call_id"], "output": "Sunny"}
    (answered,) = node(
        proxy, stream(input=[output], previous_response_id=called["id"], tools=[WEATHER])
    )

    assert (call["type"], call["name"], call["arguments"]) == (
        "function_call",
        "get_weather",
        '{"city": "dev"}',
    )
    final = answered["response"]
    assert text_of(final) == "[dev upstream] The tools said: Sunny."
    sent = fake_upstream.chat_requests()[-1]
    assert sent["tools"][0]["function"]["name"] == "get_weather"
    assert sent["messages"][2]["tool_calls"][0]["id"] == call["call_id"]
    assert sent["messages"][3] == {
        "role": "tool",
        "content": "Sunny",
        "tool_call_id": call["call_id"],
    }
    assert [role for role, _ in proxy.path(chat_named(called["id"]))] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]


def test_node_sdk_raises_not_found_and_bad_request(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    (first,) = node(proxy, create(input="Hi"))
    missing, unknown, refused = node(
        proxy,
        {"call": "retrieve", "id": "resp_nowhere_1"},
        create(input="And?", previous_response_id="resp_nowhere_1"),
        create(input=[{"type": "no_such_item"}]),
    )
    (elsewhere,) = node(proxy, {"call": "retrieve", "id": first["id"]}, key=OTHER_KEY)

    assert missing["error"]["class"] == "NotFoundError"
    assert missing["error"]["status"] == 404
    assert unknown["error"]["class"] == "NotFoundError"
    assert refused["error"]["class"] == "BadRequestError"
    assert (refused["error"]["status"], refused["error"]["type"]) == (400, "invalid_request_error")
    assert elsewhere["error"]["class"] == "NotFoundError"  # another tenant's response
    assert len(fake_upstream.chat_requests()) == 1

"""Real JavaScript clients of the Responses API, against the real server process (the fake
upstream, both stores, two tenants): the official openai Node SDK (`tests/js/responses.mjs`:
create, continue, stream, retrieve, list input items page by page, a tool call's round trip,
its error classes) and the Vercel AI SDK's default OpenAI provider (`tests/js/ai_sdk.mjs`: a
conversation held the way an app holds one, plain and streamed, its earlier replies sent back
as item references, with and without `previousResponseId`, in a conversation it names (only
the new message, or all of them without the model's), and a tool the SDK runs). The tests
read what the proxy stored (`GET /<chat_id>/chat`) and what the fake upstream was sent."""

from __future__ import annotations

from typing import Any

import pytest

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


# -- the Vercel AI SDK --------------------------------------------------------------------------


def ai_sdk(proxy: Proxy, turns: list[str], **plan: Any) -> list[Plan]:
    """Hold a conversation of `turns` with the AI SDK (`tests/js/ai_sdk.mjs`; `plan`: its
    `stream`, `previous` and `tools`); what each turn answered and sent."""
    base = {"baseURL": f"{proxy.url}/v1", "apiKey": KEY, "model": MODEL, "turns": turns}
    answered: list[Plan] = run_script("ai_sdk.mjs", {**base, **plan})
    return answered


def user_part(text: str) -> dict[str, Any]:
    """A user message as the AI SDK sends it."""
    return {"role": "user", "content": [{"type": "input_text", "text": text}]}


@pytest.mark.parametrize("previous", [False, True], ids=["messages", "previous-response-id"])
@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_ai_sdk_holds_a_conversation_and_each_message_is_stored_once(
    proxy: Proxy, fake_upstream: FakeUpstream, stream: bool, previous: bool
) -> None:
    turns = ["Hi, I'm Ana.", "What is my name?", "Bye"]

    answered = ai_sdk(proxy, turns, stream=stream, previous="turn" if previous else None)

    ids = [turn["responseId"] for turn in answered]
    chat = chat_named(ids[0])
    assert ids == [f"resp_{chat}_{n}" for n in (1, 3, 5)]  # one chat, its replies
    texts = [turn["text"] for turn in answered]
    assert texts == [said(turns[0], 1), said(turns[1], 3), said(turns[2], 5)]
    if stream:
        assert ["".join(turn["deltas"]) for turn in answered] == texts
    assert all(
        turn["usage"]["inputTokens"] > 0 < turn["usage"]["outputTokens"] for turn in answered
    )
    # The SDK sent the history again, its replies as references to their items.
    (last,) = answered[2]["sent"]
    assert last["input"] == [
        user_part(turns[0]),
        {"type": "item_reference", "id": f"msg_{chat}_1"},
        user_part(turns[1]),
        {"type": "item_reference", "id": f"msg_{chat}_3"},
        user_part(turns[2]),
    ]
    assert last.get("previous_response_id") == (ids[1] if previous else None)
    # The proxy matched it with the chat: each message is stored once, and sent up once.
    pairs = [[("user", turn), ("assistant", text)] for turn, text in zip(turns, texts, strict=True)]
    assert proxy.path(chat) == [("system", SYSTEM), *(m for pair in pairs for m in pair)]
    assert held(proxy, chat) == 6
    assert sent_upstream(fake_upstream) == proxy.path(chat)[:-1]
    assert proxy.chats() == [chat]


def held(proxy: Proxy, chat: str) -> int:
    """How many messages the chat holds, on any of its branches (its system prompt aside)."""
    (info,) = [info for info in proxy.get("/chats")["chats"] if info["id"] == chat]
    count: int = info["messages"]
    return count


@pytest.mark.parametrize("previous", [False, True], ids=["messages", "previous-response-id"])
@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_ai_sdk_runs_a_tool_in_a_conversation_and_each_message_is_stored_once(
    proxy: Proxy, fake_upstream: FakeUpstream, stream: bool, previous: bool
) -> None:
    turns = ["Hi", "Use get_weather for Oslo.", "Thanks"]

    answered = ai_sdk(
        proxy, turns, stream=stream, previous="turn" if previous else None, tools=True
    )

    ids = [turn["responseId"] for turn in answered]
    chat = chat_named(ids[0])
    assert ids == [f"resp_{chat}_{n}" for n in (1, 5, 7)]
    called, result = answered[1]["steps"]
    assert called["finishReason"] == "tool-calls"
    (call,) = [part for part in called["content"] if part["type"] == "tool-call"]
    assert (call["toolName"], call["input"]) == ("get_weather", {"city": "dev"})
    assert result["finishReason"] == "stop"
    assert answered[1]["text"] == "[dev upstream] The tools said: Sunny in dev."
    # The SDK's second step sent the call whole, then its result; the proxy matched the call
    # with the one the first step stored and stored only the result.
    answering = answered[1]["sent"][1]
    assert answering["input"][3:] == [
        {
            "type": "function_call",
            "call_id": call["toolCallId"],
            "name": "get_weather",
            "arguments": '{"city":"dev"}',
        },
        {"type": "function_call_output", "call_id": call["toolCallId"], "output": "Sunny in dev"},
    ]
    assert answering.get("previous_response_id") == (ids[0] if previous else None)
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", turns[0]),
        ("assistant", answered[0]["text"]),
        ("user", turns[1]),
        ("assistant", None),
        ("tool", "Sunny in dev"),
        ("assistant", answered[1]["text"]),
        ("user", turns[2]),
        ("assistant", said(turns[2], 7)),
    ]
    assert held(proxy, chat) == 8  # its path: nothing was stored twice, on another branch
    assert sent_upstream(fake_upstream) == proxy.path(chat)[:-1]
    assert proxy.chats() == [chat]


@pytest.mark.parametrize("previous", [None, "step"], ids=["messages", "previous-step"])
def test_ai_sdk_runs_a_tool_on_its_first_turn(
    proxy: Proxy, fake_upstream: FakeUpstream, previous: str | None
) -> None:
    """A tool's result on the first turn names nothing stored (the SDK sends the call whole and
    its result, no item reference, no previous_response_id): it starts a chat of its own that
    holds the whole conversation, and the call's response stays alone in its own, unless the
    app passes each step the response before (`prepareStep`)."""
    turns = ["Use get_weather for Oslo.", "Thanks"]

    answered = ai_sdk(proxy, turns, previous=previous, tools=True)

    ids = [turn["responseId"] for turn in answered]
    chat = chat_named(ids[0])
    assert ids == [f"resp_{chat}_3", f"resp_{chat}_5"]
    assert answered[0]["text"] == "[dev upstream] The tools said: Sunny in dev."
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", turns[0]),
        ("assistant", None),
        ("tool", "Sunny in dev"),
        ("assistant", answered[0]["text"]),
        ("user", turns[1]),
        ("assistant", said(turns[1], 5)),
    ]
    assert held(proxy, chat) == 6
    called = answered[0]["sent"][1].get("previous_response_id")
    if previous is None:
        assert called is None
        (first_step,) = [other for other in proxy.chats() if other != chat]
        assert proxy.path(first_step) == [
            ("system", SYSTEM),
            ("user", turns[0]),
            ("assistant", None),
        ]
    else:
        assert called == f"resp_{chat}_1"
        assert proxy.chats() == [chat]


@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_ai_sdk_runs_a_tool_in_a_conversation_it_names(
    proxy: Proxy, fake_upstream: FakeUpstream, stream: bool
) -> None:
    """With `providerOptions.openai.conversation` the SDK sends each turn's user message only,
    and its tool loop's second step sends that message again with the call's result, but not
    the call (it has an item id: the conversation holds it). The result answers the call the
    first step stored, and only the result is stored."""
    conversation = proxy.client.conversations.create().id
    turns = ["Hi", "Use get_weather for Oslo.", "Thanks"]

    answered = ai_sdk(proxy, turns, stream=stream, tools=True, conversation=conversation)

    assert [turn["responseId"] for turn in answered] == [
        f"resp_{conversation}_{n}" for n in (1, 5, 7)
    ]
    (call,) = [part for part in answered[1]["steps"][0]["content"] if part["type"] == "tool-call"]
    assert answered[1]["sent"][1]["input"] == [
        user_part(turns[1]),
        {"type": "function_call_output", "call_id": call["toolCallId"], "output": "Sunny in dev"},
    ]
    assert answered[1]["text"] == "[dev upstream] The tools said: Sunny in dev."
    assert proxy.path(conversation) == [
        ("system", SYSTEM),
        ("user", turns[0]),
        ("assistant", answered[0]["text"]),
        ("user", turns[1]),
        ("assistant", None),
        ("tool", "Sunny in dev"),
        ("assistant", answered[1]["text"]),
        ("user", turns[2]),
        ("assistant", said(turns[2], 7)),
    ]
    assert held(proxy, conversation) == 8
    assert sent_upstream(fake_upstream) == proxy.path(conversation)[:-1]


@pytest.mark.parametrize("tools", [False, True], ids=["chat", "tool"])
@pytest.mark.parametrize("stream", [False, True], ids=["generate", "stream"])
def test_ai_sdk_continues_a_conversation_it_names_while_it_resends_its_messages(
    proxy: Proxy, fake_upstream: FakeUpstream, stream: bool, tools: bool
) -> None:
    """An app built on useChat sends all its messages each turn; with
    `providerOptions.openai.conversation` the SDK leaves out the model's replies and calls (they
    have item ids: the conversation holds them), and sends the user's messages and the tools'
    results. Each turn continues the conversation: nothing is stored twice, nothing branches."""
    conversation = proxy.client.conversations.create().id
    turns = ["Hi", "Use get_weather for Oslo.", "Thanks"] if tools else ["Hi", "Name?", "Bye"]

    answered = ai_sdk(
        proxy, turns, stream=stream, tools=tools, conversation=conversation, resend=True
    )

    replies = (1, 5, 7) if tools else (1, 3, 5)
    ids = [turn["responseId"] for turn in answered]
    assert ids == [f"resp_{conversation}_{n}" for n in replies]
    texts = [turn["text"] for turn in answered]
    assert (texts[0], texts[2]) == (said(turns[0], 1), said(turns[2], replies[2]))
    results = []
    if tools:  # the second step sent the history and the result, not the call it answers
        (call,) = [p for p in answered[1]["steps"][0]["content"] if p["type"] == "tool-call"]
        output = {"type": "function_call_output", "call_id": call["toolCallId"]}
        results = [{**output, "output": "Sunny in dev"}]
        assert answered[1]["sent"][1]["input"] == [
            user_part(turns[0]),
            user_part(turns[1]),
            *results,
        ]
        assert texts[1] == "[dev upstream] The tools said: Sunny in dev."
    else:
        assert texts[1] == said(turns[1], 3)
    # The last turn sent the user's messages and the tool's result, none of the model's items.
    (last,) = answered[2]["sent"]
    assert last["input"] == [
        user_part(turns[0]),
        user_part(turns[1]),
        *results,
        user_part(turns[2]),
    ]
    middle = [("assistant", None), ("tool", "Sunny in dev")] if tools else []
    assert proxy.path(conversation) == [
        ("system", SYSTEM),
        ("user", turns[0]),
        ("assistant", texts[0]),
        ("user", turns[1]),
        *middle,
        ("assistant", texts[1]),
        ("user", turns[2]),
        ("assistant", texts[2]),
    ]
    assert held(proxy, conversation) == len(proxy.path(conversation)) - 1  # no branch
    assert sent_upstream(fake_upstream) == proxy.path(conversation)[:-1]

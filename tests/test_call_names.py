"""A tool call a client adds names its function with at most 64 characters, as OpenAI's API
takes a function's name: an assistant message's `tool_calls[].function.name` in a chat-mode
`/v1/chat/completions` request, a `function_call` item's `name` in a Responses request (stored
or not) and in conversation items. A call the model made, which a client sends back whole, is
matched and not held: another server's model may name a function at more length (a Responses
request's: `test_responses_api.py`, beside the calls' long ids). Against the real server
process, over the fake upstream, with the official openai SDK."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from harness.fake_upstream import FakeUpstream
from tests.responses_client import MODEL, Proxy, proxy, script_call

__all__ = ["proxy"]  # the fixture this module's tests use

LONG_NAME = "f" * 65  # one over OpenAI's 64


def chat_call(name: str, kind: str = "function") -> dict[str, Any]:
    body = {"name": name, "arguments": "{}"} if kind == "function" else {"name": name, "input": ""}
    return {"id": "call_1", "type": kind, kind: body}


@pytest.mark.parametrize("kind", ["function", "custom"])
def test_a_chat_mode_call_the_client_adds_with_a_long_name_is_refused_and_nothing_is_stored(
    proxy: Proxy, fake_upstream: FakeUpstream, kind: str
) -> None:
    messages: list[Any] = [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": None, "tool_calls": [chat_call(LONG_NAME, kind)]},
        {"role": "tool", "tool_call_id": "call_1", "content": "found"},
    ]

    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.chat.completions.create(
            model=MODEL, messages=messages, extra_headers={"X-Chat-Id": "named"}
        )

    param = f"messages[1].tool_calls[0].{kind}.name"
    assert refused.value.param == param
    assert f"{param}: at most 64 characters" in refused.value.message
    assert proxy.chats() == []
    assert fake_upstream.chat_requests() == []


def test_a_chat_mode_call_the_model_named_at_length_may_be_sent_back(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    script_call(fake_upstream, "call_1", LONG_NAME)
    asked: list[Any] = [{"role": "user", "content": "Look it up."}]
    chat = {"X-Chat-Id": "named"}
    called = proxy.client.chat.completions.create(model=MODEL, messages=asked, extra_headers=chat)
    reply = called.choices[0].message.model_dump(exclude_none=True)
    history = [*asked, reply, {"role": "tool", "tool_call_id": "call_1", "content": "found"}]

    done = proxy.client.chat.completions.create(model=MODEL, messages=history, extra_headers=chat)

    assert done.choices[0].finish_reason == "stop"
    stored = proxy.get("/named/chat")
    assert [m["role"] for m in stored] == ["system", "user", "assistant", "tool", "assistant"]
    assert stored[2]["tool_calls"][0]["function"]["name"] == LONG_NAME


LONG_CALL = [
    {"role": "user", "content": "Look it up."},
    {"type": "function_call", "call_id": "c1", "name": LONG_NAME, "arguments": "{}"},
    {"type": "function_call_output", "call_id": "c1", "output": "found"},
]


@pytest.mark.parametrize("store", [True, False], ids=["stored", "not-stored"])
def test_a_function_call_item_the_client_adds_with_a_long_name_is_refused(
    proxy: Proxy, fake_upstream: FakeUpstream, store: bool
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.responses.create(model=MODEL, input=LONG_CALL, store=store)  # type: ignore[arg-type]

    assert refused.value.param == "input[1].name"
    assert "input[1].name: at most 64 characters" in refused.value.message
    assert proxy.chats() == []
    assert fake_upstream.chat_requests() == []


def test_a_conversation_item_calling_a_long_name_is_refused(proxy: Proxy) -> None:
    conversation = proxy.client.conversations.create()
    call = {"type": "function_call", "call_id": "c1", "name": LONG_NAME, "arguments": "{}"}

    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.conversations.items.create(conversation.id, items=[call])  # type: ignore[list-item]

    assert refused.value.param == "items[0].name"
    assert "items[0].name: at most 64 characters" in refused.value.message
    assert list(proxy.client.conversations.items.list(conversation.id)) == []

"""A request's tool definitions go to the model with each call, beside its messages: they count
against CONTEXT_TOKENS as the system prompt does (the oldest history is left out for them, and
tools too large for the window are refused as a message too long is; a compacted chat that may
not leave history out has its summary made first), estimated as their JSON text's
characters / 4."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatproxy.errors import ContextLengthExceeded
from chatproxy.jsontext import compact
from chatproxy.service.window import fit_window
from chatproxy.store.items import Message
from chatproxy.tokens import estimate_tokens
from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.test_compaction import CHAIN, FACT, SMALL_WINDOW, chain, response, summary_calls

MODEL = "gpt-4.1-mini"
WINDOW = {"CONTEXT_TOKENS": "2000", "MAX_TOKENS": "100", "MESSAGES_LENGTH": "20"}  # 1,900 sent
OLDEST, NEWER = "a" * 2400, "b" * 2400  # 604 tokens each, with a message's overhead


def chat_tools(description_chars: int) -> list[dict[str, Any]]:
    """One function tool, its description `description_chars` long (as a chat completion has it)."""
    parameters = {"type": "object", "properties": {"q": {"type": "string"}}}
    function = {"name": "lookup", "description": "d" * description_chars, "parameters": parameters}
    return [{"type": "function", "function": function}]


def responses_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`tools` as a Responses request gives them."""
    return [{"type": "function", **tool["function"]} for tool in tools]


def turn(client: ProxyClient, route: str, text: str, tools: Any = None, after: Any = None) -> Any:
    """One turn of chat `w` by `route` (with `tools` if any); `after`: the previous answer, whose
    response a Responses turn continues."""
    if route.startswith("responses"):
        body: dict[str, Any] = {"model": MODEL, "input": text, "truncation": "auto"}
        body["store"] = route == "responses"
        if after is not None:
            body["previous_response_id"] = after.get_json()["id"]
        if tools:
            body["tools"] = responses_tools(tools)
        return client.post("/v1/responses", data=json.dumps(body))
    body = {"model": MODEL, "messages": [{"role": "user", "content": text}]}
    if tools:
        body["tools"] = tools
    return client.post("/v1/chat/completions", data=json.dumps(body), headers={"X-Chat-Id": "w"})


def test_tools_count_beside_the_system_prompt_in_a_window() -> None:
    history = [Message("user", "a" * 40), Message("user", "c" * 40)]  # 14 tokens each
    new = Message("user", "new!")  # 5

    assert fit_window(None, history, new, budget=5 + 28) == history
    assert fit_window(None, history, new, budget=5 + 28, tools=14) == history[1:]
    assert fit_window(None, history, new, budget=5 + 28, tools=28) == []
    with pytest.raises(ContextLengthExceeded, match="tool definitions"):
        fit_window(None, history, new, budget=5 + 28, tools=29)


@pytest.mark.parametrize("route", ["v1 chat", "responses", "responses not stored"])
@pytest.mark.parametrize("with_tools", [False, True], ids=["no-tools", "tools"])
def test_a_history_that_fits_alone_loses_its_oldest_messages_to_the_tools(
    make_client: MakeClient, fake_upstream: FakeUpstream, route: str, with_tools: bool
) -> None:
    """The history (about 1,260 tokens) fits the 1,900 a turn may send; beside 1,000 tokens of
    tools it does not, and its oldest message is left out rather than the upstream refusing
    (a response not stored continues stored ones)."""
    client = make_client(**WINDOW)
    fake_upstream.reply_text = "Noted."
    stored = route.removesuffix(" not stored")
    first = turn(client, stored, OLDEST)
    assert first.status_code == 200, first.get_json()
    second = turn(client, stored, NEWER, after=first)
    assert second.status_code == 200, second.get_json()
    tools = chat_tools(4000) if with_tools else None

    third = turn(client, route, "And now?", tools, after=second)

    assert third.status_code == 200, third.get_json()
    sent = fake_upstream.chat_requests()[-1]
    said = [m["content"] for m in sent["messages"] if m["role"] == "user"]
    assert said == ([NEWER] if with_tools else [OLDEST, NEWER]) + ["And now?"]
    assert sent.get("tools") == tools
    if with_tools:
        text = sum(estimate_tokens(compact(m)) for m in sent["messages"])
        assert text + estimate_tokens(compact(tools)) <= 1900


@pytest.mark.parametrize("route", ["v1 chat", "responses", "responses not stored"])
def test_tools_too_large_for_the_window_are_refused_as_context_length_exceeded(
    make_client: MakeClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """200 tokens may be sent; the tools alone need about 300: refused as a message too long
    is, in OpenAI's shape, and neither the model nor the chat sees the turn."""
    client = make_client(CONTEXT_TOKENS="700", MAX_TOKENS="500")

    answer = turn(client, route, "hi", chat_tools(1200))

    assert answer.status_code == 400, answer.get_json()
    error = answer.get_json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "context_length_exceeded")
    assert "tool definitions" in error["message"]
    assert fake_upstream.chat_requests() == []
    assert client.get("/w/chat").get_json() == []


def test_a_history_that_fits_alone_but_not_with_the_tools_is_refused_when_it_may_not_be_cut(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """A Responses turn with `truncation: disabled` (the default) whose history fits without
    its tools: refused naming `input`, as a history too long is."""
    client = make_client(**WINDOW)
    fake_upstream.reply_text = "Noted."
    previous = chain(client, [OLDEST, NEWER])
    tools = responses_tools(chat_tools(4000))
    assert response(client, "And now?", previous_response_id=previous).status_code == 200

    refused = response(client, "And now?", previous_response_id=previous, tools=tools)

    assert refused.status_code == 400, refused.get_json()
    error = refused.get_json()["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "input")


def test_a_compacted_chat_whose_history_fits_only_without_the_tools_is_summarized_first(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """With `truncation: disabled`, the summary that makes room for the tools is made before
    the turn, which then sends it and the tools, and not what it covers."""
    client = make_client(COMPACTION="summary", **SMALL_WINDOW)  # 600 tokens a turn
    previous = chain(client, CHAIN[:3])  # about 400 tokens: room for the next without tools
    tools = chat_tools(800)  # about 230 tokens

    made = response(client, CHAIN[3], previous_response_id=previous, tools=responses_tools(tools))

    assert made.status_code == 200, made.get_json()
    calls = fake_upstream.chat_requests()
    first = calls.index(summary_calls(fake_upstream)[0])
    sent = calls[first + 1]  # the turn, once its summary was made
    assert sent["messages"][-1] == {"role": "user", "content": CHAIN[3]}
    assert sent["tools"] == tools
    assert "Babbage" in sent["messages"][0]["content"]
    assert all(FACT not in str(m["content"]) for m in sent["messages"][1:])

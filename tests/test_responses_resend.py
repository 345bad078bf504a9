"""MAX_CONTENT_CHARS in `POST /v1/responses`, with the official openai SDK against the real server
process (the fake upstream, both stores): a request is held to it in what it adds (the items
stored as new, its instructions and system messages), not in what it sends back of its chat, so
a client that resends its whole history (the Vercel AI SDK, OpenAI's `input += response.output`
tool loop) goes on after a reply or a tool call of the model's longer than the limit."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer
from tests.responses_client import (
    MODEL,
    SYSTEM,
    WEATHER,
    Proxy,
    chat_of,
    sent_upstream,
    start_proxy,
)

LIMIT = 12  # MAX_CONTENT_CHARS here: the fake upstream's replies and calls are longer
LONG = "x" * (LIMIT + 1)


def limited(start_server: StartServer, proxy_env: dict[str, str]) -> Proxy:
    return start_proxy(start_server, proxy_env, MAX_CONTENT_CHARS=str(LIMIT))


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


@pytest.mark.parametrize("sent_back", ["output", "item_reference"])
def test_a_reply_longer_than_the_limit_sent_back_is_matched_not_refused(
    start_server: StartServer,
    proxy_env: dict[str, str],
    fake_upstream: FakeUpstream,
    sent_back: str,
) -> None:
    """The reply goes back whole (`input += response.output`) or by its item id (the AI SDK)."""
    proxy = limited(start_server, proxy_env)
    first = proxy.client.responses.create(model=MODEL, input=[user("Hi")])
    assert len(first.output_text) > LIMIT  # the model's reply may be as long as MAX_TOKENS
    back: list[Any] = (
        [*first.output]
        if sent_back == "output"
        else [{"type": "item_reference", "id": first.output[0].id}]
    )

    second = proxy.client.responses.create(model=MODEL, input=[user("Hi"), *back, user("And?")])

    chat = chat_of(first)
    assert chat_of(second) == chat
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", "Hi"),
        ("assistant", first.output_text),
        ("user", "And?"),
        ("assistant", second.output_text),
    ]
    assert sent_upstream(fake_upstream) == proxy.path(chat)[:-1]


def test_a_tool_loop_that_sends_back_a_call_longer_than_the_limit_goes_on(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    """OpenAI's function calling guide: `input += response.output`, then the call's output; the
    call's arguments and the answer after it are longer than the limit."""
    proxy = limited(start_server, proxy_env)
    history: list[Any] = [user("get_weather")]
    called = proxy.client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    (call,) = called.output
    assert call.type == "function_call"
    assert len(call.arguments) > LIMIT
    history += [call, {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}]

    answered = proxy.client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    history += [*answered.output, user("Thanks")]
    thanked = proxy.client.responses.create(model=MODEL, input=history, tools=[WEATHER])

    chat = chat_of(called)
    assert [chat_of(answered), chat_of(thanked)] == [chat, chat]
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", "get_weather"),
        ("assistant", None),
        ("tool", "Sunny"),
        ("assistant", answered.output_text),
        ("user", "Thanks"),
        ("assistant", thanked.output_text),
    ]
    assert sent_upstream(fake_upstream) == proxy.path(chat)[:-1]


REPLY = object()  # stands for the first response's output items, sent back whole
LONG_PARTS = [{"type": "input_text", "text": "Hi"}, {"type": "input_text", "text": LONG}]
NAMED_FILE = [
    {"type": "input_text", "text": "Read."},
    {"type": "input_file", "file_data": "aGk=", "filename": LONG},  # a name as long as a text
]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [user("Hi"), REPLY, user(LONG)]}, "input[2].content"),
        (
            {"input": [user("Hi"), REPLY, {"role": "user", "content": LONG_PARTS}]},
            "input[2].content",  # its text, its parts together
        ),
        (
            {
                "input": [
                    user("Hi"),
                    REPLY,
                    user("Go"),
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": LONG},
                    {"type": "function_call_output", "call_id": "c1", "output": "1"},
                ]
            },
            "input[3].arguments",
        ),
        (  # an edit of the reply is stored as new
            {"input": [user("Hi"), {"role": "assistant", "content": LONG}, user("And?")]},
            "input[1].content",
        ),
        (
            {"input": [{"role": "system", "content": LONG}, user("Hi"), REPLY, user("And?")]},
            "input[0].content",
        ),
        ({"input": [user("Hi"), REPLY, user("And?")], "instructions": LONG}, "instructions"),
        ({"input": LONG}, "input"),
        (
            {"input": [user("Hi"), REPLY, {"role": "user", "content": NAMED_FILE}]},
            "input[2].content[1].filename",
        ),
    ],
    ids=["appended", "parts", "own-call", "edited", "system", "instructions", "string", "filename"],
)
def test_what_a_request_adds_over_the_limit_is_refused_and_nothing_is_stored(
    start_server: StartServer,
    proxy_env: dict[str, str],
    fake_upstream: FakeUpstream,
    body: dict[str, Any],
    param: str,
) -> None:
    proxy = limited(start_server, proxy_env)
    first = proxy.client.responses.create(model=MODEL, input=[user("Hi")])
    chat, asked = chat_of(first), len(fake_upstream.chat_requests())
    if isinstance(body["input"], list):
        body["input"] = [
            i for item in body["input"] for i in (first.output if item is REPLY else [item])
        ]

    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.responses.create(model=MODEL, previous_response_id=first.id, **body)

    assert refused.value.param == param
    assert isinstance(refused.value.body, dict)
    assert (
        refused.value.body["message"] == f"{param}: at most {LIMIT} characters (MAX_CONTENT_CHARS)"
    )
    assert proxy.chats() == [chat]
    assert len(proxy.path(chat)) == 3
    assert len(fake_upstream.chat_requests()) == asked


@pytest.mark.parametrize("sent_back", ["output", "item_reference"])
def test_a_request_not_stored_is_held_in_what_it_adds_as_a_stored_one_is(
    start_server: StartServer,
    proxy_env: dict[str, str],
    fake_upstream: FakeUpstream,
    sent_back: str,
) -> None:
    """`store: false` places its input on the path it continues, as a stored request does, with
    nothing written: a reply it sends back (whole, or by item reference) is the chat's own and
    is matched, not held; what it adds is held."""
    proxy = limited(start_server, proxy_env)
    first = proxy.client.responses.create(model=MODEL, input=[user("Hi")])
    back: list[Any] = (
        [user("Hi"), *first.output]
        if sent_back == "output"
        else [{"type": "item_reference", "id": first.output[0].id}]
    )

    passed = proxy.client.responses.create(model=MODEL, input=[*back, user("And?")], store=False)
    asked = len(fake_upstream.chat_requests())
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.responses.create(model=MODEL, input=[*back, user(LONG)], store=False)

    assert passed.store is False
    assert sent_upstream(fake_upstream)[-3:] == [
        ("user", "Hi"),
        ("assistant", first.output_text),
        ("user", "And?"),
    ]
    assert refused.value.param == f"input[{len(back)}].content"
    assert len(fake_upstream.chat_requests()) == asked
    assert len(proxy.path(chat_of(first))) == 3

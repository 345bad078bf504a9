"""A chat's path may hold tool structure a model refuses: a deleted message's tool results, a
call whose result was deleted, an import's. What a turn sends leaves it out (a result with no
call before its run of results; calls no result answers before another message comes: the
message goes without them, or not at all when nothing else of it is left), while the chat keeps
every item as it was. A tool loop goes up as it is, its turn's own results too. The real server
process over the fake upstream, on both stores; each test asserts what the upstream received.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletionToolParam

from chatproxy.tokens import content_text
from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer, http, server_env
from tests.test_conversation_items import calls_made
from tests.test_conversations import KEY, SYSTEM, sdk, stored, tool_round

MODEL = "gpt-4.1-mini"
Shape = tuple[str, str, list[str] | str | None]


@pytest.fixture
def proxy(start_server: StartServer, proxy_env: dict[str, str]) -> str:
    env = server_env(**proxy_env, PROXY_API_KEYS=f"sdk={KEY}", SYSTEM_PROMPT=SYSTEM)
    return start_server(env).url


@pytest.fixture
def client(proxy: str) -> Iterator[openai.OpenAI]:
    with sdk(proxy) as made:
        yield made


def shape(message: dict[str, Any]) -> Shape:
    """A message's role, text, and the ids of its calls (or of the call it answers)."""
    calls = [call["id"] for call in message.get("tool_calls") or []]
    return (
        message["role"],
        content_text(message.get("content"))[0],
        calls or message.get("tool_call_id"),
    )


def sent(upstream: FakeUpstream) -> list[Shape]:
    """The shape of each message of the last request the upstream received."""
    return [shape(message) for message in upstream.chat_requests()[-1]["messages"]]


def seed_turn(url: str, chat: str, content: str) -> None:
    reply = http("POST", f"{url}/{chat}/chat", {"content": content}, headers={"X-API-Key": KEY})
    assert reply.status == 200, reply.body


def test_results_of_a_deleted_message_of_calls_are_not_sent_but_stay_stored(
    client: openai.OpenAI, proxy: str, fake_upstream: FakeUpstream
) -> None:
    conversation = client.conversations.create(items=tool_round(0)).id
    client.conversations.items.delete(f"msg_{conversation}_1", conversation_id=conversation)
    history = [
        ("system", SYSTEM, None),
        ("user", "question 0", None),
        ("assistant", "answer 0", None),
    ]

    first = client.responses.create(model=MODEL, input="next", conversation=conversation)  # type: ignore[arg-type]
    assert sent(fake_upstream) == [*history, ("user", "next", None)]
    unstored = client.responses.create(
        model=MODEL, input="aside", previous_response_id=first.id, store=False
    )
    assert unstored.status == "completed"
    reply = ("assistant", first.output_text, None)
    assert sent(fake_upstream) == [*history, ("user", "next", None), reply, ("user", "aside", None)]
    seed_turn(proxy, conversation, "again")
    assert sent(fake_upstream) == [*history, ("user", "next", None), reply, ("user", "again", None)]

    kept = [shape(m) for m in stored(proxy, conversation)[:4]]
    assert kept == [*history[1:2], ("tool", "one", "c0a"), ("tool", "two", "c0b"), history[2]]


def test_a_call_whose_result_was_deleted_goes_without_it_once_another_message_follows(
    client: openai.OpenAI, proxy: str, fake_upstream: FakeUpstream
) -> None:
    conversation = client.conversations.create(items=tool_round(0)).id
    client.conversations.items.delete(f"fco_{conversation}_3", conversation_id=conversation)

    client.responses.create(model=MODEL, input="next", conversation=conversation)  # type: ignore[arg-type]

    assert sent(fake_upstream) == [
        ("system", SYSTEM, None),
        ("user", "question 0", None),
        ("assistant", "looking 0 up", ["c0a"]),  # its text, and the call answered
        ("tool", "one", "c0a"),
        ("assistant", "answer 0", None),
        ("user", "next", None),
    ]
    assert shape(stored(proxy, conversation)[1]) == ("assistant", "looking 0 up", ["c0a", "c0b"])


def test_a_message_of_calls_none_answered_is_left_out_before_a_new_message(
    client: openai.OpenAI, proxy: str, fake_upstream: FakeUpstream
) -> None:
    """A result deleted at the end of the path, its call waits again; a seed-route turn (which
    refuses a message under calls, not under a result) then sends a message after it."""
    items = [
        {"role": "user", "content": "look"},
        {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "one"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "more"},
        {"type": "function_call", "call_id": "c2", "name": "look", "arguments": "{}"},
        {"type": "function_call", "call_id": "c3", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c2", "output": "two"},
        {"type": "function_call_output", "call_id": "c3", "output": "three"},
    ]
    conversation = client.conversations.create(items=items).id  # type: ignore[arg-type]
    for output in (2, 7):  # c1's, then c3's: the path ends with c2's result
        client.conversations.items.delete(
            f"fco_{conversation}_{output}", conversation_id=conversation
        )

    seed_turn(proxy, conversation, "next")

    assert sent(fake_upstream) == [
        ("system", SYSTEM, None),
        ("user", "look", None),  # c1's message had nothing else: left out
        ("assistant", "done", None),
        ("user", "more", None),
        ("assistant", "", ["c2"]),
        ("tool", "two", "c2"),
        ("user", "next", None),
    ]
    assert [shape(m) for m in stored(proxy, conversation)][1] == ("assistant", "", ["c1"])


def test_a_tool_loop_and_its_turns_own_results_go_up_unchanged(
    client: openai.OpenAI, proxy: str, fake_upstream: FakeUpstream
) -> None:
    tools: list[ChatCompletionToolParam] = [
        {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
        for name in ("t0", "t1")
    ]
    chat = {"X-Chat-Id": "loop"}
    ask = [{"role": "user", "content": "Call t0 and t1."}]
    made = client.chat.completions.create(
        model=MODEL,
        messages=ask,
        tools=tools,
        extra_headers=chat,  # type: ignore[arg-type]
    )
    calls = made.choices[0].message.tool_calls or []
    assert len(calls) == 2
    results = [
        {"role": "tool", "tool_call_id": c.id, "content": f"r{n}"} for n, c in enumerate(calls)
    ]
    client.chat.completions.create(
        model=MODEL,
        messages=results,
        tools=tools,
        extra_headers=chat,  # type: ignore[arg-type]
    )
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "thanks"}], extra_headers=chat
    )

    path = [
        {k: m[k] for k in ("role", "content", "tool_calls", "tool_call_id") if k in m}
        for m in stored(proxy, "loop")
    ]
    roles = ["user", "assistant", "tool", "tool", "assistant", "user", "assistant"]
    assert [m["role"] for m in path] == roles
    assert fake_upstream.chat_requests()[-1]["messages"] == [
        {"role": "system", "content": SYSTEM},
        *path[:-1],
    ]
    assert fake_upstream.chat_requests()[-2]["messages"][1:] == path[:4]

    conversation = client.conversations.create().id  # results in parts: the turn's own last
    outputs = calls_made(client, conversation, 3)
    client.conversations.items.create(conversation, items=outputs[:2])  # type: ignore[arg-type]
    client.responses.create(model=MODEL, input=outputs[2:], conversation=conversation)  # type: ignore[arg-type]
    waited = [call["call_id"] for call in outputs]
    assert sent(fake_upstream)[2:] == [
        ("assistant", "", waited),
        *[("tool", "ok", call) for call in waited],
    ]


def test_an_imported_chat_of_unanswered_calls_and_results_sends_what_a_model_accepts(
    client: openai.OpenAI, proxy: str, fake_upstream: FakeUpstream
) -> None:
    conversation = client.conversations.create(items=[*tool_round(0), *tool_round(1)]).id
    exported = http("GET", f"{proxy}/{conversation}/export", headers={"X-API-Key": KEY})
    document = exported.json()
    parents = {2: 0, 9: 7}  # round 0's message of calls and round 1's second result left out
    document["items"] = [
        {**item, "parent": parents.get(item["id"], item["parent"])}
        for item in document["items"]
        if item["id"] not in (1, 8)
    ]
    document["id"] = "imported"
    made = http("POST", f"{proxy}/import", document, headers={"X-API-Key": KEY})
    assert made.json()["imported"] == ["imported"], made.body

    seed_turn(proxy, "imported", "next")

    assert sent(fake_upstream) == [
        ("system", SYSTEM, None),
        ("user", "question 0", None),
        ("assistant", "answer 0", None),
        ("user", "question 1", None),
        ("assistant", "looking 1 up", ["c1a"]),
        ("tool", "one", "c1a"),
        ("assistant", "answer 1", None),
        ("user", "next", None),
    ]

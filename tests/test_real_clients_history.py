"""Real clients that resend their history, call tools or ask for JSON, against the real server
process in chat mode: `llm -c`, `llm chat` and `llm -s`; LangChain's ChatOpenAI with a history;
the openai Node SDK's tool-calling loop (parallel calls, plain and streamed), a JSON schema, and
a resent history with an edit. Helpers and fixtures are test_real_clients.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from harness.fake_upstream import FakeUpstream
from harness.server_process import http
from tests.test_real_clients import (
    MODEL,
    PROXY_KEY,
    SYSTEM,
    Plan,
    chat_model,
    conversation,
    llm_home,
    proxy_url,
    reply_text,
    run_llm,
    run_node,
    run_script,
    sent_upstream,
    stored,
    user_message,
)

__all__ = ["proxy_url"]  # the fixture this module's tests use


def test_llm_continue_resends_the_conversation_and_each_turn_is_stored_once(
    proxy_url: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = llm_home(tmp_path, proxy_url, "llm-continue")
    turns = ["Hi, I'm Ana.", "What is my name?", "Bye"]

    first = run_llm(home, "-m", "chatproxy", turns[0])
    second = run_llm(home, "-c", turns[1])  # sends [user, assistant, user], streamed
    third = run_llm(home, "-c", "--no-stream", turns[2])

    replies = [reply.removesuffix("\n") for reply in (first, second, third)]
    history = stored(proxy_url, "llm-continue")
    assert history == conversation(turns, replies)  # what matched was not stored again
    assert sent_upstream(fake_upstream)[-1] == history[:-1]  # the path once, not doubled


def test_llm_chat_holds_an_interactive_conversation(
    proxy_url: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = llm_home(tmp_path, proxy_url, "llm-interactive")
    turns = ["Hi, I'm Ana.", "What is my name?"]

    output = run_llm(home, "chat", "-m", "chatproxy", stdin="\n".join([*turns, "exit"]) + "\n")

    history = stored(proxy_url, "llm-interactive")
    replies = [content for role, content in history if role == "assistant"]
    assert history == conversation(turns, replies)
    assert all(reply in output for reply in replies)
    assert sent_upstream(fake_upstream)[-1] == history[:-1]


def test_llm_system_prompt_is_the_turns_system_prompt(
    proxy_url: str, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    home = llm_home(tmp_path, proxy_url, "llm-system")
    pirate = "Answer like a pirate."
    turns = ["Hi, I'm Ana.", "What is my name?"]

    first = run_llm(home, "-m", "chatproxy", "-s", pirate, turns[0])  # [system, user]
    second = run_llm(home, "-c", turns[1])  # [system, user, assistant, user]

    replies = [first.removesuffix("\n"), second.removesuffix("\n")]
    sent = sent_upstream(fake_upstream)
    # The client's leading system message goes up in place of the global one, once.
    assert sent[0] == [("system", pirate), ("user", turns[0])]
    assert sent[1] == [("system", pirate), ("user", turns[0]), ("assistant", replies[0]),
                       ("user", turns[1])]  # fmt: skip
    history = stored(proxy_url, "llm-system")
    assert [m for m in history if m[0] != "system"] == conversation(turns, replies)[1:]


def test_langchain_resends_its_history_and_each_turn_is_stored_once(
    proxy_url: str, fake_upstream: FakeUpstream
) -> None:
    model = chat_model(proxy_url, "langchain-history")
    terse = SystemMessage("You are terse.")
    turns = ["Hi, I'm Ana.", "What is my name?", "Bye"]

    first = model.invoke([terse, HumanMessage(turns[0])])
    history_sent = [terse, HumanMessage(turns[0]), first, HumanMessage(turns[1])]
    second = model.invoke(history_sent)
    streamed = model.stream([*history_sent, second, HumanMessage(turns[2])])
    third = "".join(str(chunk.content) for chunk in streamed)

    replies = [str(first.content), str(second.content), third]
    history = stored(proxy_url, "langchain-history")
    assert [m for m in history if m[0] != "system"] == conversation(turns, replies)[1:]
    assert sent_upstream(fake_upstream)[-1] == [
        ("system", "You are terse."),
        *conversation(turns, replies)[1:-1],
    ]


def test_langchain_history_into_a_new_chat_is_stored_as_sent(
    proxy_url: str, fake_upstream: FakeUpstream
) -> None:
    model = chat_model(proxy_url, "langchain-new")
    sent = [HumanMessage("Hi"), AIMessage("Hello! Who are you?"), HumanMessage("I'm Ana.")]

    answer = model.invoke(sent)

    assert stored(proxy_url, "langchain-new") == [
        ("system", SYSTEM),
        ("user", "Hi"),
        ("assistant", "Hello! Who are you?"),  # the client's own assistant message, kept
        ("user", "I'm Ana."),
        ("assistant", str(answer.content)),
    ]
    assert sent_upstream(fake_upstream)[-1] == stored(proxy_url, "langchain-new")[:-1]


TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
                "additionalProperties": False,
            },
        },
    }
    for name, description in [
        ("get_weather", "The weather in a city."),
        ("get_time", "The local time in a city."),
    ]
]


OUTPUTS = {"get_weather": "Sunny, 21 °C", "get_time": "14:05"}


def chat_path(url: str, chat: str, leaf: int | None = None) -> list[dict[str, Any]]:
    """The chat's path (to `leaf`, else to its current leaf), each message whole."""
    query = "" if leaf is None else f"?leaf={leaf}"
    reply = http("GET", f"{url}/{chat}/chat{query}", headers={"X-API-Key": PROXY_KEY})
    assert reply.status == 200, reply.body
    messages: list[dict[str, Any]] = reply.json()
    return messages


def run_tool_loop(url: str, chat: str, *, stream: bool, resend: bool) -> list[Plan]:
    """Run `tests/js/tool_loop.mjs`: the Node SDK's tool-calling loop, each of its rounds."""
    plan = {
        "baseURL": f"{url}/v1",
        "apiKey": PROXY_KEY,
        "headers": {"X-Chat-Id": chat},
        "body": {
            "model": MODEL,
            "tools": TOOLS,
            "messages": [{"role": "user", "content": "Call get_weather and get_time for Paris."}],
        },
        "outputs": OUTPUTS,
        "stream": stream,
        "resend": resend,
    }
    rounds: list[Plan] = run_script("tool_loop.mjs", plan)
    return rounds


def call_of(call: dict[str, Any]) -> tuple[str, str, str]:
    return call["id"], call["function"]["name"], call["function"]["arguments"]


@pytest.mark.parametrize(
    ("stream", "resend"), [(False, False), (True, True)], ids=["plain-new-only", "streamed-resent"]
)
def test_node_sdk_runs_a_parallel_tool_calling_loop_in_a_chat(
    proxy_url: str, fake_upstream: FakeUpstream, stream: bool, resend: bool
) -> None:
    rounds = run_tool_loop(proxy_url, "node-tools", stream=stream, resend=resend)

    assert len(rounds) == 2
    asked, answered = (r["completion"]["choices"][0] for r in rounds)
    assert asked["finish_reason"] == "tool_calls"
    calls = [call_of(call) for call in asked["message"]["tool_calls"]]
    assert [name for _, name, _ in calls] == ["get_weather", "get_time"]  # parallel calls
    assert answered["message"]["content"] == "[dev upstream] The tools said: Sunny, 21 °C; 14:05."
    if stream:  # the arguments came as the upstream streamed them, in pieces
        pieces = [
            tool_call
            for chunk in rounds[0]["chunks"]
            for choice in chunk["choices"]
            for tool_call in choice["delta"].get("tool_calls") or []
        ]
        assert len(pieces) > len(calls)
    path = chat_path(proxy_url, "node-tools")
    assert [m["role"] for m in path] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert path[2].get("content") is None
    assert [call_of(call) for call in path[2]["tool_calls"]] == calls
    assert [(m["tool_call_id"], m["content"]) for m in path[3:5]] == [
        (calls[0][0], OUTPUTS["get_weather"]),
        (calls[1][0], OUTPUTS["get_time"]),
    ]
    assert path[5]["content"] == answered["message"]["content"]
    first, second = fake_upstream.chat_requests()
    assert first["tools"] == second["tools"] == TOOLS  # the tools reached the model each time
    assert [(m["role"], m.get("tool_call_id")) for m in second["messages"]] == [
        ("system", None), ("user", None), ("assistant", None),
        ("tool", calls[0][0]), ("tool", calls[1][0]),
    ]  # fmt: skip
    assert [call_of(call) for call in second["messages"][2]["tool_calls"]] == calls


def test_node_sdk_json_schema_reaches_the_model_and_the_reply_is_stored(
    proxy_url: str, fake_upstream: FakeUpstream
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "person", "strict": True, "schema": schema},
    }
    body = {**user_message("Describe Ana."), "response_format": response_format}

    plain, streamed = run_node(
        proxy_url, "node-json", [{"call": "create", "body": body}, {"call": "stream", "body": body}]
    )

    replies = [reply_text(plain), reply_text(streamed)]
    assert [json.loads(reply) for reply in replies] == [{"name": "dev", "age": 1}] * 2
    assert [r["response_format"] for r in fake_upstream.chat_requests()] == [response_format] * 2
    assert stored(proxy_url, "node-json") == conversation(["Describe Ana."] * 2, replies)


def test_node_sdk_resent_history_with_an_edit_in_the_middle_starts_a_branch(
    proxy_url: str, fake_upstream: FakeUpstream
) -> None:
    turns = ["Hi, I'm Ana.", "I live in Paris.", "Where do I live?"]
    asked = [{"call": "create", "body": user_message(turn)} for turn in turns]
    replies = [reply_text(answer) for answer in run_node(proxy_url, "node-edit", asked)]
    before = chat_path(proxy_url, "node-edit")

    # The client edits its second message and sends the conversation up to it again.
    edited = {
        "model": MODEL,
        "messages": [
            {"role": "user", "content": turns[0]},
            {"role": "assistant", "content": replies[0]},
            {"role": "user", "content": "I live in Lyon."},
        ],
    }
    (branch,) = run_node(proxy_url, "node-edit", [{"call": "chunks", "body": edited}])

    reply = reply_text(branch)
    after = chat_path(proxy_url, "node-edit")
    pairs = [(m["role"], m["content"]) for m in after]
    assert pairs == conversation([turns[0], "I live in Lyon."], [replies[0], reply])
    assert after[:3] == before[:3]
    old, new = before[3], after[3]  # the edited message and its edit: siblings under reply 0
    assert new["parent"] == old["parent"] == before[2]["id"]
    assert new["siblings"] == [old["id"], new["id"]]
    assert chat_path(proxy_url, "node-edit", leaf=before[-1]["id"]) == [
        {**m, "siblings": [old["id"], new["id"]]} if m.get("id") == old["id"] else m for m in before
    ]
    assert sent_upstream(fake_upstream)[-1] == pairs[:-1]  # the old branch never goes up

"""Resent histories through `/v1/chat/completions` in chat mode, on both stores and the real app:
edits branch, the next turn follows the branch, and nothing matched is stored twice."""

from __future__ import annotations

from typing import Any

import pytest

from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.test_openai_tools import TIME, WEATHER


def u(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def a(text: str) -> dict[str, str]:
    return {"role": "assistant", "content": text}


def v1(client: ProxyClient, up: FakeUpstream, messages: list[dict[str, Any]], reply: str) -> None:
    up.reply_text = reply
    answer = client.post(
        "/v1/chat/completions", json={"messages": messages}, headers={"X-Chat-Id": "c"}
    )
    assert answer.status_code == 200, answer.get_json()


def sent(up: FakeUpstream) -> list[str]:
    return [m["content"] for m in up.chat_requests()[-1]["messages"] if m["role"] != "system"]


def path(client: ProxyClient) -> list[tuple[int, str]]:
    messages = client.get("/c/chat").get_json()
    return [(m["id"], m["content"]) for m in messages if m["role"] != "system"]


def edited(client: ProxyClient, up: FakeUpstream) -> None:
    """A, B; then C, D resent; then an edit of C: C2, E under B."""
    v1(client, up, [u("A")], "B")
    v1(client, up, [u("A"), a("B"), u("C")], "D")
    v1(client, up, [u("A"), a("B"), u("C2")], "E")


def test_the_turn_after_an_edit_follows_the_new_branch(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client()
    edited(client, fake_upstream)

    v1(client, fake_upstream, [u("F")], "G")

    assert sent(fake_upstream) == ["A", "B", "C2", "E", "F"]
    assert path(client) == [(0, "A"), (1, "B"), (4, "C2"), (5, "E"), (6, "F"), (7, "G")]


def test_a_resend_after_an_edit_stores_only_what_is_new(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client()
    edited(client, fake_upstream)

    v1(client, fake_upstream, [u("A"), a("B"), u("C2"), a("E"), u("F")], "G")

    assert sent(fake_upstream) == ["A", "B", "C2", "E", "F"]
    assert path(client) == [(0, "A"), (1, "B"), (4, "C2"), (5, "E"), (6, "F"), (7, "G")]


@pytest.mark.parametrize("length", ["0", "2", "3"])
def test_tool_results_never_go_up_without_the_message_that_made_their_calls(
    make_client: MakeClient, fake_upstream: FakeUpstream, length: str
) -> None:
    client = make_client(MESSAGES_LENGTH=length)
    headers = {"X-Chat-Id": "t"}
    body: dict[str, Any] = {"messages": [u("get_weather and get_time please")]}
    body["tools"] = [WEATHER, TIME]
    called = client.post("/v1/chat/completions", json=body, headers=headers).get_json()
    calls = called["choices"][0]["message"]["tool_calls"]
    body["messages"] = [{"role": "tool", "tool_call_id": c["id"], "content": "42"} for c in calls]

    answered = client.post("/v1/chat/completions", json=body, headers=headers)
    body["messages"] = [u("thanks")]
    thanked = client.post("/v1/chat/completions", json=body, headers=headers)

    assert (answered.status_code, thanked.status_code) == (200, 200)
    results, after = fake_upstream.chat_requests()[1:]
    roles = [m["role"] for m in results["messages"] if m["role"] != "system"]
    assert roles[-3:] == ["assistant", "tool", "tool"]  # the calls, then their results
    assert next(m["role"] for m in after["messages"] if m["role"] != "system") != "tool"


def test_the_seed_route_refuses_a_message_under_calls_waiting_for_results(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client()
    body: dict[str, Any] = {"messages": [u("get_time please")], "tools": [TIME]}
    client.post("/v1/chat/completions", json=body, headers={"X-Chat-Id": "c"})

    refused = client.post("/c/chat", json={"content": "and now?"})

    assert refused.status_code == 400
    assert "waits for their results" in refused.get_json()["error"]
    assert [m["role"] for m in client.get("/c/chat").get_json() if m["role"] != "system"] == [
        "user",
        "assistant",
    ]

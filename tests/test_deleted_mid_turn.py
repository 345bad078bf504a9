"""A chat deleted while one of its turns waits on the model stays deleted, on both stores:
the turn answers 404 and stores nothing, whatever its messages go under (a message of the chat,
or nothing: the first turn of an empty conversation or of a chat that has only its system
prompt, a resent history that starts a new path). A turn whose parent trimming dropped meanwhile
is still stored (`test_store_meetings.py`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.test_reliability import contents, in_background, post, wait_for

Turn = Callable[[ProxyClient, str], Any]


def resent(client: ProxyClient, chat: str) -> Any:
    history = [
        {"role": "user", "content": "X"},
        {"role": "assistant", "content": "Y"},
        {"role": "user", "content": "Z"},
    ]
    body = json.dumps({"messages": history})
    return client.post("/v1/chat/completions", data=body, headers={"X-Chat-Id": chat})


def responded(client: ProxyClient, chat: str) -> Any:
    body = json.dumps({"model": "gpt-4.1-mini", "input": "hi", "conversation": chat})
    return client.post("/v1/responses", data=body)


def made(client: ProxyClient, kind: str) -> tuple[str, int]:
    """A chat of `kind`, and how many model calls making it took."""
    if kind == "messages":
        assert post(client, "c1", "first").status_code == 200
        return "c1", 1
    if kind == "system prompt only":
        assert client.post("/c1/system", data='{"content": "Be kind."}').status_code == 200
        return "c1", 0
    answer = client.post("/v1/conversations", data='{"metadata": {"a": "b"}}')  # no items
    assert answer.status_code == 200
    return answer.get_json()["id"], 0


CASES = [
    ("messages", lambda c, chat: post(c, chat, "slow"), "/{}/chat"),
    ("messages", lambda c, chat: post(c, chat, "slow"), "/v1/conversations/{}"),
    ("messages", resent, "/{}/chat"),
    ("system prompt only", lambda c, chat: post(c, chat, "slow"), "/{}/chat"),
    ("empty conversation", responded, "/v1/conversations/{}"),
]


@pytest.mark.parametrize(("kind", "turn", "delete"), CASES)
def test_a_chat_deleted_while_a_turn_waits_on_the_model_stays_deleted(
    make_client: MakeClient, fake_upstream: FakeUpstream, kind: str, turn: Turn, delete: str
) -> None:
    client, other = make_client(), make_client()
    chat, calls = made(client, kind)
    fake_upstream.delay = 1.0
    slow = in_background(lambda: turn(client, chat))
    wait_for(lambda: len(fake_upstream.chat_requests()) == calls + 1)

    assert other.delete(delete.format(chat)).status_code == 200

    answer = slow.result(timeout=10)
    assert answer.status_code == 404, answer.get_json()
    assert client.get(f"/{chat}/chat").get_json() == []
    assert client.get("/chats").get_json()["chats"] == []
    assert client.get(f"/v1/conversations/{chat}").status_code == 404


def test_a_keyed_turn_whose_chat_was_deleted_meanwhile_leaves_its_key_to_a_retry(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """Deleting a chat leaves a pending Idempotency-Key claim to its running turn (409 for the
    same key meanwhile); the turn's save finds no chat and records no answer, its claim is
    released, and a retry is a new turn of a new chat."""
    client, other = make_client(), make_client()
    assert post(client, "c1", "first").status_code == 200
    fake_upstream.delay = 1.0
    slow = in_background(lambda: post(client, "c1", "slow", key="k1"))
    wait_for(lambda: len(fake_upstream.chat_requests()) == 2)

    assert other.delete("/c1/chat").status_code == 200
    assert post(other, "c1", "slow", key="k1").get_json()["code"] == "idempotency_in_progress"

    assert slow.result(timeout=10).status_code == 404
    fake_upstream.delay = 0.0
    retry = post(client, "c1", "slow", key="k1")
    assert retry.status_code == 200, retry.get_json()
    assert "Idempotent-Replayed" not in retry.headers
    assert contents(client, "c1") == [("user", "slow"), ("assistant", retry.get_json()["content"])]

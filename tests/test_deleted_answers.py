"""An Idempotency-Key's recorded answer goes with what it answered, on both stores: after
`DELETE /<chat_id>/chat`, `DELETE /v1/conversations/{id}` or `DELETE /v1/responses/{id}`, after
`POST /import?on_conflict=replace` over its chat, or once MAX_CHAT_MESSAGES dropped its turn's
items, a retry with the same key and body is a new request, never a replay of the removed text.
Each test runs the real server process over the fake upstream (`proxy_env`), spoken to over HTTP.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.fake_upstream import FakeUpstream
from harness.server_process import Reply, StartServer, http, server_env

KEY = {"Idempotency-Key": "retry-me-1"}
MODEL = "gpt-4.1-mini"


@pytest.fixture
def url(start_server: StartServer, proxy_env: dict[str, str]) -> str:
    """The URL of the real server process over the fake upstream and the chosen store."""
    return start_server(server_env(**proxy_env)).url


@pytest.fixture
def trimming_url(start_server: StartServer, proxy_env: dict[str, str]) -> str:
    """As `url`, with a chat kept to its newest 4 messages."""
    return start_server(server_env(**proxy_env, MAX_CHAT_MESSAGES="4")).url


def replayed(reply: Reply) -> bool:
    return reply.headers.get("Idempotent-Replayed") == "true"


def sent_twice(url: str, path: str, body: dict[str, Any], headers: dict[str, str] = KEY) -> Reply:
    """Send a keyed request, then its retry, which replays the first answer; return the first."""
    first = http("POST", url + path, body, headers=headers)
    assert first.status == 200, first.body
    again = http("POST", url + path, body, headers=headers)
    assert (again.status, replayed(again)) == (200, True), again.body
    return first


def test_a_retry_after_its_chat_was_deleted_is_a_new_turn(
    url: str, fake_upstream: FakeUpstream
) -> None:
    body = {"content": "my secret"}
    first = sent_twice(url, "/c1/chat", body)

    assert http("DELETE", url + "/c1/chat").status == 200

    retry = http("POST", url + "/c1/chat", body, headers=KEY)
    assert (retry.status, replayed(retry)) == (200, False), retry.body
    assert len(fake_upstream.chat_requests()) == 2  # the model answered it again
    history = http("GET", url + "/c1/chat").json()
    assert [m["content"] for m in history] == ["my secret", retry.json()["content"]]
    assert first.json()["id"] == retry.json()["id"]  # the chat starts again from item 0


def test_a_retry_after_its_conversation_was_deleted_is_a_new_turn(
    url: str, fake_upstream: FakeUpstream
) -> None:
    """A conversation's chat takes turns of the chat completions API too (X-Chat-Id). (A
    Responses request in it would find no conversation after the delete: 404 either way.)"""
    made = http("POST", url + "/v1/conversations", {})
    assert made.status == 200, made.body
    conversation = made.json()["id"]
    body = {"model": MODEL, "messages": [{"role": "user", "content": "my secret"}]}
    path = "/v1/chat/completions"
    chat = {**KEY, "X-Chat-Id": conversation}
    sent_twice(url, path, body, chat)

    assert http("DELETE", f"{url}/v1/conversations/{conversation}").status == 200

    retry = http("POST", url + path, body, headers=chat)
    assert (retry.status, replayed(retry)) == (200, False), retry.body
    assert len(fake_upstream.chat_requests()) == 2
    items = http("GET", f"{url}/v1/conversations/{conversation}/items?order=asc").json()["data"]
    assert [item["role"] for item in items] == ["user", "assistant"]


def test_a_retry_after_its_response_was_deleted_makes_a_new_response(
    url: str, fake_upstream: FakeUpstream
) -> None:
    body = {"model": MODEL, "input": "my secret"}
    first = sent_twice(url, "/v1/responses", body)
    response = first.json()["id"]

    assert http("DELETE", f"{url}/v1/responses/{response}").status == 200

    retry = http("POST", url + "/v1/responses", body, headers=KEY)
    assert (retry.status, replayed(retry)) == (200, False), retry.body
    assert retry.json()["id"] != response
    assert len(fake_upstream.chat_requests()) == 2
    assert http("GET", f"{url}/v1/responses/{response}").status == 404
    found = http("GET", f"{url}/v1/responses/{retry.json()['id']}")
    assert (found.status, found.json()["output"]) == (200, retry.json()["output"])


def test_a_retry_after_an_import_replaced_its_chat_is_a_new_turn(
    url: str, fake_upstream: FakeUpstream
) -> None:
    body = {"content": "my secret"}
    sent_twice(url, "/c1/chat", body)
    assert http("POST", url + "/c2/chat", {"content": "other text"}).status == 200
    document = {**http("GET", url + "/c2/export").json(), "id": "c1"}

    imported = http("POST", url + "/import?on_conflict=replace", document)
    assert (imported.status, imported.json()["imported"]) == (200, ["c1"]), imported.body

    retry = http("POST", url + "/c1/chat", body, headers=KEY)
    assert (retry.status, replayed(retry)) == (200, False), retry.body
    assert len(fake_upstream.chat_requests()) == 3  # the model answered it again
    history = [m["content"] for m in http("GET", url + "/c1/chat").json()]
    assert history[0] == "other text"
    assert history[2:] == ["my secret", retry.json()["content"]]


def test_a_retry_of_a_turn_that_trimming_dropped_is_a_new_turn(
    trimming_url: str, fake_upstream: FakeUpstream
) -> None:
    url, kept = trimming_url, {"Idempotency-Key": "retry-me-2"}
    sent_twice(url, "/c1/chat", {"content": "my secret"})  # items 0, 1
    sent_twice(url, "/c1/chat", {"content": "kept"}, kept)  # items 2, 3
    assert http("POST", url + "/c1/chat", {"content": "third"}).status == 200  # 0, 1 dropped

    again = http("POST", url + "/c1/chat", {"content": "kept"}, headers=kept)
    assert (again.status, replayed(again)) == (200, True), again.body
    retry = http("POST", url + "/c1/chat", {"content": "my secret"}, headers=KEY)
    assert (retry.status, replayed(retry)) == (200, False), retry.body
    assert len(fake_upstream.chat_requests()) == 4  # the model answered it again
    history = [m["content"] for m in http("GET", url + "/c1/chat").json()]
    assert history[2:] == ["my secret", retry.json()["content"]]

"""Per-chat settings (model, temperature, max_tokens, system) and per-turn overrides."""

from __future__ import annotations

import json
from typing import Any

import pytest

from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient


@pytest.fixture
def client(make_client: MakeClient) -> ProxyClient:
    return make_client(MODEL="base-model", VISION_MODEL="eye-model", ALLOWED_MODELS="alt-model")


def say(client: ProxyClient, chat: str, **body: Any) -> Any:
    return client.post(f"/{chat}/chat", data=json.dumps({"content": "hi", **body}))


def last_call(upstream: FakeUpstream) -> dict[str, Any]:
    return upstream.chat_requests()[-1]


def test_defaults_are_reported(client: ProxyClient) -> None:
    settings = client.get("/c1/settings").get_json()

    assert settings == {
        "model": "base-model",
        "temperature": None,
        "max_tokens": 500,
        "system": None,
        "compaction": "off",
        "own": {"system": None},
        "allowed_models": ["base-model", "eye-model", "alt-model"],
    }


def test_chat_settings_apply_to_its_turns(client: ProxyClient, fake_upstream: FakeUpstream) -> None:
    changes = {"model": "alt-model", "temperature": 0.3, "max_tokens": 100, "system": "Be terse."}

    answer = client.post("/c1/settings", data=json.dumps(changes)).get_json()
    say(client, "c1")

    assert (answer["model"], answer["temperature"], answer["max_tokens"]) == ("alt-model", 0.3, 100)
    call = last_call(fake_upstream)
    assert (call["model"], call["temperature"], call["max_tokens"]) == ("alt-model", 0.3, 100)
    assert call["messages"][0] == {"role": "system", "content": "Be terse."}
    say(client, "other")
    other = last_call(fake_upstream)
    assert (other["model"], "temperature" in other, other["max_tokens"]) == (
        "base-model",
        False,
        500,
    )


def test_null_removes_a_setting_and_others_stay(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    client.post("/c1/settings", data=json.dumps({"model": "alt-model", "temperature": 0.5}))

    answer = client.post("/c1/settings", data=json.dumps({"temperature": None})).get_json()
    say(client, "c1")

    assert answer["own"] == {"model": "alt-model", "system": None}
    assert "temperature" not in last_call(fake_upstream)
    assert last_call(fake_upstream)["model"] == "alt-model"


def test_a_turn_may_override_for_itself_only(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    client.post("/c1/settings", data=json.dumps({"temperature": 0.2}))

    say(client, "c1", model="alt-model", temperature=1.5, max_tokens=42)
    first = last_call(fake_upstream)
    say(client, "c1")
    second = last_call(fake_upstream)

    assert (first["model"], first["temperature"], first["max_tokens"]) == ("alt-model", 1.5, 42)
    assert (second["model"], second["temperature"], second["max_tokens"]) == (
        "base-model",
        0.2,
        500,
    )


MESSAGE = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("path", "body", "says"),
    [
        ("/c1/settings", {"model": "gpt-unlisted"}, "not allowed"),
        ("/c1/settings", {"max_tokens": 501}, "MAX_TOKENS"),
        ("/c1/settings", {"temperature": 2.5}, "temperature"),
        ("/c1/settings", {"temperature": "hot"}, "temperature"),
        ("/c1/settings", {"temperature": False}, "temperature"),
        ("/c1/settings", {"temperature": "1"}, "temperature"),
        ("/c1/settings", {"colour": "blue"}, "colour"),
        ("/c1/settings", {"system": "   "}, "blank"),
        ("/c1/settings", {"system": "x" * 32_001}, "MAX_CONTENT_CHARS"),
        ("/c1/settings", {"system": "a\u0000b"}, "NUL"),
        ("/c1/chat", {"content": "hi", "model": "gpt-unlisted"}, "not allowed"),
        ("/c1/chat", {"content": "hi", "max_tokens": 9999}, "MAX_TOKENS"),
        ("/c1/chat", {"content": "hi", "max_tokens": 0}, "max_tokens"),
        ("/c1/chat", {"content": "hi", "temperature": -1}, "temperature"),
        ("/c1/chat", {"content": "hi", "temperature": True}, "temperature"),
        ("/v1/chat/completions", {"messages": MESSAGE, "temperature": True}, "temperature"),
        ("/v1/chat/completions", {"messages": MESSAGE, "stream": "yes"}, "stream"),
        ("/v1/chat/completions", {"messages": MESSAGE, "max_tokens": "5"}, "max_tokens"),
        ("/v1/chat/completions", {"messages": MESSAGE, "max_tokens": 5.0}, "max_tokens"),
    ],
)
def test_settings_outside_the_limits_are_400(
    client: ProxyClient, fake_upstream: FakeUpstream, path: str, body: dict[str, Any], says: str
) -> None:
    response = client.post(path, data=json.dumps(body))

    assert response.status_code == 400
    error = response.get_json()["error"]  # OpenAI's shape on /v1: {"message": ..., ...}
    assert says in (error["message"] if path.startswith("/v1/") else error)
    assert fake_upstream.requests == []


def test_an_image_turn_keeps_the_vision_model(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    client.post("/c1/settings", data=json.dumps({"model": "alt-model"}))

    client.post("/c1/img", data=json.dumps({"content": "look", "url": "https://e.com/a.png"}))

    assert last_call(fake_upstream)["model"] == "eye-model"


def test_a_changed_override_is_a_different_request_for_idempotency(client: ProxyClient) -> None:
    headers = {"Idempotency-Key": "k1"}
    client.post("/c1/chat", data=json.dumps({"content": "hi"}), headers=headers)

    changed = client.post(
        "/c1/chat", data=json.dumps({"content": "hi", "temperature": 1.0}), headers=headers
    )

    assert changed.status_code == 422


def test_settings_belong_to_the_tenant(make_client: MakeClient) -> None:
    keys = "web=web-key-0123456789abcdef,ops=ops-key-0123456789abcdef"
    client = make_client(PROXY_API_KEYS=keys)
    web = {"X-API-Key": "web-key-0123456789abcdef"}
    ops = {"X-API-Key": "ops-key-0123456789abcdef"}

    client.post("/c1/settings", data=json.dumps({"temperature": 0.9}), headers=web)

    assert client.get("/c1/settings", headers=ops).get_json()["temperature"] is None
    assert client.get("/c1/settings", headers=web).get_json()["temperature"] == 0.9


@pytest.mark.parametrize(
    ("settings", "sent"),
    [  # stored under other limits: ALLOWED_MODELS or MAX_TOKENS changed since, or an import
        ({"model": "gone-model"}, {"model": "base-model", "max_tokens": 500}),
        ({"model": "alt-model", "max_tokens": 100_000}, {"model": "alt-model", "max_tokens": 500}),
        ({"max_tokens": 7}, {"model": "base-model", "max_tokens": 7}),
    ],
)
def test_a_chats_stored_settings_are_held_to_todays_limits(
    client: ProxyClient, fake_upstream: FakeUpstream, settings: dict[str, Any], sent: dict[str, Any]
) -> None:
    user = {"id": 0, "parent": None, "role": "user", "content": "a", "created_at": 1.0}
    document = {
        "format": "chatproxy.chat",
        "version": 1,
        "id": "old",
        "created": 1.0,
        "updated": 2.0,
        "items": [user],
        "leaf": 0,
        "settings": settings,
    }
    assert client.post("/import", data=json.dumps(document)).get_json()["imported"] == ["old"]

    assert say(client, "old").status_code == 200

    call = last_call(fake_upstream)
    assert {name: call.get(name) for name in sent} == sent


def test_a_model_that_sees_no_images_still_gets_a_messages_file(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    pdf = "data:application/pdf;base64,JVBERi0xLjQgaGVsbG8="
    item = {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "Summarize these."},
            {"type": "input_image", "image_url": "https://e.com/a.png"},
            {"type": "input_file", "filename": "a.pdf", "file_data": pdf},
        ],
    }

    answer = client.post("/v1/responses", data=json.dumps({"model": "base-model", "input": [item]}))

    assert answer.status_code == 200
    call = last_call(fake_upstream)
    assert call["model"] == "base-model"
    assert call["messages"][-1]["content"] == [
        {"type": "text", "text": "Summarize these."},
        {"type": "text", "text": "[image: https://e.com/a.png]"},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": pdf}},
    ]


def test_a_streamed_response_names_the_model_asked_for_from_its_first_event(
    client: ProxyClient,
) -> None:
    body = {"model": "alt-model", "input": "hi", "stream": True}
    answer = client.open_stream("/v1/responses", json=body)
    text = b"".join(answer).decode()
    answer.close()

    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    models = {event["type"]: event["response"]["model"] for event in events if "response" in event}
    assert models == dict.fromkeys(
        ["response.created", "response.in_progress", "response.completed"], "alt-model"
    )

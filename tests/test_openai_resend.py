"""Resent histories through `/v1/chat/completions` in chat mode, on both stores and the real app:
edits branch, the next turn follows the branch, and nothing matched is stored twice."""

from __future__ import annotations

from typing import Any

import pytest

from chatproxy.config import RedisSettings
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef
from chatproxy.store.redis import RedisStore
from chatproxy.store.sqlite import SqliteStore
from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient, take_lock
from tests.event_loop import run_on_own_loop
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


@pytest.mark.parametrize("length", ["20", "0"])  # MESSAGES_LENGTH: 0 sends no history
def test_the_seed_route_refuses_a_message_under_calls_waiting_for_results(
    make_client: MakeClient, fake_upstream: FakeUpstream, length: str
) -> None:
    client = make_client(MESSAGES_LENGTH=length)
    body: dict[str, Any] = {"messages": [u("get_time please")], "tools": [TIME]}
    client.post("/v1/chat/completions", json=body, headers={"X-Chat-Id": "c"})

    refused = client.post("/c/chat", json={"content": "and now?"})

    assert refused.status_code == 400
    assert "waits for their results" in refused.get_json()["error"]
    assert [m["role"] for m in client.get("/c/chat").get_json() if m["role"] != "system"] == [
        "user",
        "assistant",
    ]


# --- What MAX_CONTENT_CHARS holds in a resent history ---------------------------------------------

LIMITED = "10"  # MAX_CONTENT_CHARS for these tests: the model's replies are longer
LONG = "x" * 11


def refused(client: ProxyClient, messages: list[dict[str, Any]]) -> dict[str, Any]:
    answer = client.post(
        "/v1/chat/completions", json={"messages": messages}, headers={"X-Chat-Id": "c"}
    )
    assert answer.status_code == 400, answer.get_json()
    error: dict[str, Any] = answer.get_json()["error"]
    return error


@pytest.mark.parametrize(
    "resent",
    [
        [u("A"), a(LONG), u("C")],
        [a(LONG), u("C")],  # a cut history
        [u("A"), a(f" {LONG}\n"), u("C")],  # matched as normalised, not as stored
        [u("A"), {"role": "assistant", "content": [{"type": "text", "text": LONG}]}, u("C")],
    ],
    ids=["as-stored", "cut", "whitespace", "text-part"],
)
def test_a_resent_reply_longer_than_the_limit_is_matched_not_refused(
    make_client: MakeClient, fake_upstream: FakeUpstream, resent: list[dict[str, Any]]
) -> None:
    client = make_client(MAX_CONTENT_CHARS=LIMITED)
    v1(client, fake_upstream, [u("A")], LONG)  # the model's reply may be as long as MAX_TOKENS

    v1(client, fake_upstream, resent, "D")

    assert sent(fake_upstream) == ["A", LONG, "C"]
    assert path(client) == [(0, "A"), (1, LONG), (2, "C"), (3, "D")]


@pytest.mark.parametrize("reserialized", [False, True], ids=["as-stored", "re-serialized"])
def test_a_resent_tool_call_longer_than_the_limit_is_matched_not_refused(
    make_client: MakeClient, fake_upstream: FakeUpstream, reserialized: bool
) -> None:
    client = make_client(MAX_CONTENT_CHARS=LIMITED)
    headers = {"X-Chat-Id": "c"}
    body: dict[str, Any] = {"messages": [u("get_time")], "tools": [TIME]}
    called = client.post("/v1/chat/completions", json=body, headers=headers).get_json()
    calls = called["choices"][0]["message"]["tool_calls"]
    arguments = calls[0]["function"]["arguments"]
    assert len(arguments) > int(LIMITED)
    if reserialized:  # as LangChain and `llm` send it back
        calls = [{**calls[0], "function": {**calls[0]["function"], "arguments": f" {arguments}"}}]
    result = {"role": "tool", "tool_call_id": calls[0]["id"], "content": "12:00"}
    resent = {"role": "assistant", "content": None, "tool_calls": calls}
    body["messages"] = [u("get_time"), resent, result]

    answered = client.post("/v1/chat/completions", json=body, headers=headers)

    assert answered.status_code == 200, answered.get_json()
    stored = [m["role"] for m in client.get("/c/chat").get_json() if m["role"] != "system"]
    assert stored == ["user", "assistant", "tool", "assistant"]
    up = fake_upstream.chat_requests()[-1]["messages"]
    assert up[-2]["tool_calls"][0]["function"]["arguments"] == arguments  # the stored call


def test_a_dropped_reply_longer_than_the_limit_that_a_client_still_resends_is_not_refused(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(MAX_CONTENT_CHARS=LIMITED, MAX_CHAT_MESSAGES="2")
    v1(client, fake_upstream, [u("A")], LONG)
    v1(client, fake_upstream, [u("A"), a(LONG), u("C")], "D")  # A and the reply are dropped

    v1(client, fake_upstream, [u("A"), a(LONG), u("C"), a("D"), u("E")], "F")

    assert sent(fake_upstream) == ["C", "D", "E"]
    assert [content for _, content in path(client)] == ["E", "F"]


def test_resent_audio_longer_than_the_limit_is_matched_not_refused(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """Audio stored while MAX_CONTENT_CHARS was higher goes on being resent: it is matched."""
    audio = {"type": "input_audio", "input_audio": {"data": "A" * 12, "format": "wav"}}
    heard = {"role": "user", "content": [{"type": "text", "text": "Hear"}, audio]}
    v1(make_client(), fake_upstream, [heard], "B")
    client = make_client(MAX_CONTENT_CHARS=LIMITED)

    v1(client, fake_upstream, [heard, a("B"), u("C")], "D")

    assert [content for _, content in path(client)][1:] == ["B", "C", "D"]
    error = refused(client, [heard, a("B"), u("C"), a("D"), heard])  # the same audio, new
    assert error["param"] == "messages[4].content[1].input_audio.data"
    assert len(path(client)) == 4


@pytest.mark.parametrize(
    ("messages", "param"),
    [
        ([u("A"), a("B"), u(LONG)], "messages[2]"),  # a new message
        ([u("A"), a(LONG), u("C")], "messages[1]"),  # an edit of the reply
        ([{"role": "system", "content": LONG}, u("A"), a("B"), u("C")], "messages[0]"),
        ([u("X"), a("Y"), u(LONG)], "messages[2]"),  # a history of the client's own
        ([u(LONG)], "messages[0]"),  # only new
    ],
    ids=["appended", "edited", "system", "own-history", "only-new"],
)
def test_a_new_message_longer_than_the_limit_is_refused_and_nothing_is_stored(
    make_client: MakeClient,
    fake_upstream: FakeUpstream,
    messages: list[dict[str, Any]],
    param: str,
) -> None:
    client = make_client(MAX_CONTENT_CHARS=LIMITED)
    v1(client, fake_upstream, [u("A")], "B")
    asked = len(fake_upstream.chat_requests())

    error = refused(client, messages)

    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error",
        "invalid_request",
        param,
    )
    assert error["message"] == f"{param}: at most 10 characters (MAX_CONTENT_CHARS)"
    assert path(client) == [(0, "A"), (1, "B")]
    assert len(fake_upstream.chat_requests()) == asked


def hold_lock(store_kind: str, env: dict[str, str], chat_id: str) -> None:
    """Take a chat's turn lock in the app's store, as a turn running elsewhere holds it."""

    async def take() -> None:
        store: Store
        if store_kind == "redis":
            store = RedisStore.from_settings(RedisSettings(env["REDIS_URL"], False, 2.0), 3600)
        else:
            store = SqliteStore(env["STORE_PATH"], 3600)
        try:
            assert await take_lock(store, ChatRef("public", chat_id), "elsewhere", 30)
        finally:
            await store.close()

    run_on_own_loop(take())


SYSTEM_LONG = {"role": "system", "content": LONG}


@pytest.mark.parametrize(
    ("route", "body", "param"),
    [
        ("/v1/chat/completions", {"messages": [u(LONG)]}, "messages[0]"),
        ("/v1/chat/completions", {"messages": [SYSTEM_LONG, u("C")]}, "messages[0]"),
        (
            "/v1/chat/completions",
            {"messages": [SYSTEM_LONG, u("A"), a("B"), u("C")]},
            "messages[0]",
        ),
        ("/v1/responses", {"conversation": "c", "input": LONG}, "input"),
        (
            "/v1/responses",
            {"conversation": "c", "instructions": LONG, "input": "C"},
            "instructions",
        ),
    ],
    ids=["only-new", "system", "system-of-a-history", "response", "instructions"],
)
def test_what_a_request_adds_whatever_the_chat_holds_is_refused_before_its_lock(
    make_client: MakeClient,
    fake_upstream: FakeUpstream,
    store_kind: str,
    proxy_env: dict[str, str],
    route: str,
    body: dict[str, Any],
    param: str,
) -> None:
    """What a request adds whatever the chat holds (messages that are only new; a system
    prompt, always) is refused before the chat's lock (and an Idempotency-Key's claim): a turn
    that holds the chat does not keep it waiting, as it did until TURN_WAIT_SECONDS ran out
    (409)."""
    client = make_client(MAX_CONTENT_CHARS=LIMITED, TURN_WAIT_SECONDS="0.2")
    v1(client, fake_upstream, [u("A")], "B")
    hold_lock(store_kind, proxy_env, "c")

    answer = client.post(route, json=body, headers={"X-Chat-Id": "c"})

    assert answer.status_code == 400, answer.get_json()
    assert answer.get_json()["error"]["param"] == param
    assert path(client) == [(0, "A"), (1, "B")]


def test_a_resent_historys_new_message_is_held_once_placed_under_the_lock(
    make_client: MakeClient, fake_upstream: FakeUpstream, store_kind: str, proxy_env: dict[str, str]
) -> None:
    """Which messages of a resent history are new depends on the chat (any may match a stored
    one), so their lengths are held where the turn is placed, under the chat's lock."""
    client = make_client(MAX_CONTENT_CHARS=LIMITED, TURN_WAIT_SECONDS="0.2")
    v1(client, fake_upstream, [u("A")], "B")
    hold_lock(store_kind, proxy_env, "c")

    answer = client.post(
        "/v1/chat/completions",
        json={"messages": [u("A"), a("B"), u(LONG)]},
        headers={"X-Chat-Id": "c"},
    )

    assert answer.status_code == 409
    assert answer.get_json()["error"]["code"] == "chat_busy"

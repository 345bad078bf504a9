"""The seed API through the real functions-framework app, on both stores, against the fake upstream.

Each test checks what the client got back, what the upstream received, and what is stored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatproxy.http.context import preferred_media_type
from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient


def post(client: ProxyClient, path: str, body: Any, **kwargs: Any) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(path, data=data, **kwargs)


def sent_messages(upstream: FakeUpstream, index: int = -1) -> list[dict[str, Any]]:
    """The messages of one chat completion call the upstream received."""
    return [
        {"role": m["role"], "content": m["content"]}
        for m in upstream.chat_requests()[index]["messages"]
    ]


def history(client: ProxyClient, chat: str) -> list[dict[str, Any]]:
    response = client.get(f"/{chat}/chat")
    assert response.status_code == 200
    return [{"role": m["role"], "content": m["content"]} for m in response.get_json()]


def test_post_chat_creates_chat_on_first_message(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply_text = "Hello there!"
    fake_upstream.usage = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}

    response = post(client, "/c1/chat", {"content": "Hi"})

    assert response.status_code == 200
    body = response.get_json()
    assert body["role"] == "assistant"
    assert body["content"] == "Hello there!"
    assert body["tokens"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    assert sent_messages(fake_upstream) == [{"role": "user", "content": "Hi"}]
    assert fake_upstream.chat_requests()[0]["max_tokens"] == 500
    assert history(client, "c1") == [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello there!"},
    ]


def test_upstream_receives_system_then_history_then_new_message(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    post(client, "/system", {"content": "Be brief."})
    fake_upstream.reply_text = "one"
    post(client, "/c1/chat", {"content": "first"})
    fake_upstream.reply_text = "two"

    response = post(client, "/c1/chat", {"content": "second"})

    assert response.get_json()["content"] == "two"
    assert sent_messages(fake_upstream) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"},
    ]
    assert history(client, "c1")[0] == {"role": "system", "content": "Be brief."}
    assert len(history(client, "c1")) == 5


def test_history_window_sends_only_the_newest_messages(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(MESSAGES_LENGTH="3", SYSTEM_PROMPT="sys")
    for n in range(4):
        fake_upstream.reply_text = f"r{n}"
        post(client, "/c1/chat", {"content": f"m{n}"})

    assert sent_messages(fake_upstream) == [
        {"role": "system", "content": "sys"},
        {"role": "assistant", "content": "r1"},
        {"role": "user", "content": "m2"},
        {"role": "assistant", "content": "r2"},
        {"role": "user", "content": "m3"},
    ]
    assert len(history(client, "c1")) == 1 + 8  # the full history is kept


def test_zero_messages_length_sends_no_history(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(MESSAGES_LENGTH="0")
    post(client, "/c1/chat", {"content": "a"})
    post(client, "/c1/chat", {"content": "b"})

    assert sent_messages(fake_upstream) == [{"role": "user", "content": "b"}]


def test_system_prompt_precedence_chat_then_global_then_none(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(SYSTEM_PROMPT="from env")

    def system_sent() -> str | None:
        post(client, "/c1/chat", {"content": "x"})
        first = sent_messages(fake_upstream)[0]
        return first["content"] if first["role"] == "system" else None

    assert client.get("/system").get_json()["content"] == "from env"
    assert system_sent() == "from env"

    assert post(client, "/system", {"content": "global"}).get_json()["content"] == "global"
    assert system_sent() == "global"

    answer = post(client, "/c1/system", {"content": "own"}).get_json()
    assert answer == {"role": "system", "content": "own", "source": "chat"}
    assert system_sent() == "own"
    assert client.get("/c2/system").get_json()["source"] == "global"

    assert client.delete("/c1/system").get_json()["content"] == "global"
    assert system_sent() == "global"

    assert client.delete("/system").get_json() == {"role": "system", "content": None}
    assert system_sent() is None  # never a system message with empty content
    assert history(client, "c1")[0]["role"] == "user"


def test_get_chat_of_unknown_chat_is_empty_list(client: ProxyClient) -> None:
    response = client.get("/never-used/chat")
    assert response.status_code == 200
    assert response.get_json() == []


def test_history_messages_carry_time_and_reply_usage(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    post(client, "/c1/chat", {"content": "Hi"})

    user, reply = client.get("/c1/chat").get_json()

    assert isinstance(user["created_at"], float)
    assert "tokens" not in user
    assert set(reply["tokens"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


@pytest.mark.parametrize(("method", "path"), [("POST", "/c1/clear"), ("DELETE", "/c1/chat")])
def test_clear_and_delete_remove_only_that_chat(
    client: ProxyClient, method: str, path: str
) -> None:
    post(client, "/c1/chat", {"content": "a"})
    post(client, "/c2/chat", {"content": "b"})
    post(client, "/c1/system", {"content": "own"})

    response = client.open(path, method=method)

    assert response.status_code == 200
    assert response.get_json() == {"chat_id": "c1", "deleted": True}
    assert client.get("/c1/chat").get_json() == []
    assert client.get("/c1/system").get_json()["source"] == "global"
    assert len(history(client, "c2")) == 2
    assert client.open(path, method=method).get_json()["deleted"] is False


def test_image_turn_sends_content_parts_to_the_vision_model(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(MODEL="text-model", VISION_MODEL="eye-model")
    url = "https://example.com/cat.png"

    response = post(client, "/c1/img", {"content": "What is this?", "url": url})

    assert response.status_code == 200
    request = fake_upstream.chat_requests()[-1]
    assert request["model"] == "eye-model"
    parts = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    assert request["messages"] == [{"role": "user", "content": parts}]
    assert history(client, "c1")[0] == {"role": "user", "content": parts}

    post(client, "/c1/chat", {"content": "and now?"})
    text_request = fake_upstream.chat_requests()[-1]
    assert text_request["model"] == "text-model"
    assert text_request["messages"][0] == {
        "role": "user",
        "content": f"What is this? [image: {url}]",
    }


def test_moderation_returns_the_upstream_result(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    flagged = post(client, "/mod", {"content": "I will kill the process"})
    clean = post(client, "/mod", {"content": "hello"})

    assert flagged.status_code == clean.status_code == 200
    assert flagged.get_json()["flagged"] is True
    assert flagged.get_json()["categories"]["violence"] is True
    assert clean.get_json()["flagged"] is False
    moderation_calls = [r for r in fake_upstream.requests if r["path"] == "/v1/moderations"]
    assert moderation_calls[0]["body"]["input"] == "I will kill the process"
    assert moderation_calls[0]["body"]["model"] == "omni-moderation-latest"


def test_health_names_store_and_upstream_without_secrets(
    client: ProxyClient, store_kind: str
) -> None:
    response = client.get("/")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert body["store"] == store_kind
    assert body["upstream"] == "custom"
    assert "sk-test-proxy-key" not in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "chat_id", ["123e4567-e89b-12d3-a456-426614174000", "user-42", "ana@example.com", "a:b.c_d-e"]
)
def test_chat_ids_of_common_shapes_are_accepted(client: ProxyClient, chat_id: str) -> None:
    assert post(client, f"/{chat_id}/chat", {"content": "hi"}).status_code == 200
    assert len(history(client, chat_id)) == 2


BAD_BODIES = [
    ("not json", "invalid_json"),
    ("[1, 2]", "invalid_json"),
    ('"just a string"', "invalid_json"),
    ("", "invalid_json"),
    ("{}", "invalid_request"),
    ('{"content": null}', "invalid_request"),
    ('{"content": 123}', "invalid_request"),
    ('{"content": ["a"]}', "invalid_request"),
    ('{"content": ""}', "invalid_request"),
    ('{"content": "   \\n"}', "invalid_request"),
    ('{"content": "a\\u0000b"}', "invalid_request"),
    (b"\xff\xfe{", "invalid_json"),
    ("[" * 100_000, "invalid_json"),
]


@pytest.mark.parametrize("path", ["/c1/chat", "/c1/system", "/system", "/mod"])
@pytest.mark.parametrize(("body", "code"), BAD_BODIES)
def test_bad_bodies_get_400_json_and_no_upstream_call(
    client: ProxyClient, fake_upstream: FakeUpstream, path: str, body: str | bytes, code: str
) -> None:
    response = post(client, path, body, content_type="application/json")

    assert response.status_code == 400
    assert response.get_json()["code"] == code
    assert response.get_json()["error"]
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/c1/chat",
            {},
            "content: required (or give only `parent`, a user message's id, to regenerate)",
        ),
        ("/c1/chat", {"content": "   "}, "content: must not be blank"),
        ("/c1/chat", {"content": "a\u0000b"}, "content: must not contain NUL characters"),
        (
            "/c1/chat",
            {"content": "x" * 32_001},
            "content: must be at most 32000 characters (MAX_CONTENT_CHARS)",
        ),
        (
            "/c1/img",
            {"content": "look", "url": "ftp://example.com/a.png"},
            "url: must be an http(s) URL of at most 2048 characters or a data:image/ URL",
        ),
    ],
)
def test_validation_messages_name_the_field_and_say_what_is_wrong(
    client: ProxyClient, path: str, body: dict[str, Any], message: str
) -> None:
    response = post(client, path, body)

    assert response.status_code == 400
    assert response.get_json()["error"] == message


@pytest.mark.parametrize(
    "body",
    [
        {"content": "look"},
        {"content": "look", "url": 5},
        {"content": "look", "url": "javascript:alert(1)"},
        {"content": "look", "url": "ftp://example.com/a.png"},
        {"content": "look", "url": "https://" + "a" * 3000 + ".com"},
        {"content": "look", "url": "data:text/html,<b>x</b>"},
        {"url": "https://example.com/a.png"},
    ],
)
def test_bad_image_turns_get_400_and_no_upstream_call(
    client: ProxyClient, fake_upstream: FakeUpstream, body: dict[str, Any]
) -> None:
    response = post(client, "/c1/img", body)

    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_request"
    assert fake_upstream.requests == []
    assert client.get("/c1/chat").get_json() == []


@pytest.mark.parametrize(
    "chat_id",
    ["a%20b", "x" * 129, "caf%C3%A9", "semi;colon", "a%00b", "a%0Ab", "a%0D%0Ab", "...", "%2E%2E"],
)
def test_invalid_chat_ids_get_400(
    client: ProxyClient, fake_upstream: FakeUpstream, chat_id: str
) -> None:
    for method in ("GET", "POST", "DELETE"):
        response = client.open(f"/{chat_id}/chat", method=method, data='{"content": "hi"}')
        assert response.status_code == 400, method
        assert response.get_json()["code"] == "invalid_chat_id"
    assert fake_upstream.requests == []


@pytest.mark.parametrize("chat_id", [".", "..", "..."])
def test_a_chat_id_of_dots_only_is_refused_where_no_url_would_fold_it(
    client: ProxyClient, fake_upstream: FakeUpstream, chat_id: str
) -> None:
    """A dots-only path segment means "here" or "the folder above" to browsers, so a page would
    reach other routes with it (`/../system`); the X-Chat-Id header takes it as it is."""
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    response = client.post("/v1/chat/completions", json=body, headers={"X-Chat-Id": chat_id})

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_chat_id"
    assert fake_upstream.requests == []


def test_body_over_the_limit_gets_413(make_client: MakeClient, fake_upstream: FakeUpstream) -> None:
    client = make_client(MAX_BODY_BYTES="2048")
    big = json.dumps({"content": "x" * 3000})

    response = post(client, "/c1/chat", big)

    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"
    assert fake_upstream.requests == []
    assert post(client, "/c1/chat", {"content": "x" * 1000}).status_code == 200


def test_body_is_json_whatever_the_content_type_as_curl_d_sends_it(client: ProxyClient) -> None:
    response = client.post(
        "/c1/chat",
        data='{"content":"hi"}',
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200


def test_a_path_with_one_slash_more_is_the_same_route(client: ProxyClient) -> None:
    assert post(client, "/c1/chat/", {"content": "hi"}).status_code == 200
    assert [m["role"] for m in client.get("/c1/chat/").get_json()] == ["user", "assistant"]
    for path in ("/c1/chat//", "/c1//chat", "/c1/"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.get_json()["code"] == "not_found"


def test_unknown_path_is_404_json(client: ProxyClient) -> None:
    for path in ("/a/b/c", "/c1/unknown", "/robots.txt", "/favicon.ico"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.is_json
        assert response.get_json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("GET", "/mod", "POST"),
        ("PUT", "/c1/chat", "DELETE, GET, HEAD, POST"),
        ("GET", "/c1/clear", "POST"),
        ("PATCH", "/system", "DELETE, GET, HEAD, POST"),
        ("POST", "/", "GET, HEAD"),
    ],
)
def test_wrong_method_is_405_json_with_allow(
    client: ProxyClient, method: str, path: str, allow: str
) -> None:
    response = client.open(path, method=method)

    assert response.status_code == 405
    assert response.headers["Allow"] == allow
    assert response.get_json()["code"] == "method_not_allowed"


def test_unreachable_redis_gives_503_and_no_upstream_call(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(REDIS_URL="redis://127.0.0.1:1/0", STORE_PATH=None, REDIS_TIMEOUT="0.5")

    for method, path in [("POST", "/c1/chat"), ("GET", "/c1/chat"), ("GET", "/")]:
        response = client.open(path, method=method, data='{"content": "hi"}')
        assert response.status_code == 503, path
        assert response.is_json
    assert response.get_json()["status"] == "unavailable"
    chat = post(client, "/c1/chat", {"content": "hi"})
    assert chat.get_json()["code"] == "store_unavailable"
    assert chat.headers["Retry-After"] == "1"
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    ("accept", "preferred"),
    [
        (None, None),
        ("", None),
        ("text/event-stream", "text/event-stream"),
        ("application/json, text/event-stream", "application/json"),
        ("text/event-stream;q=0.5, application/json", "application/json"),
        ("*/*, text/event-stream;q=0.1", "text/event-stream"),
        ("text/*, text/event-stream", "text/event-stream"),
        ("text/event-stream;q=x, application/json;q=0.2", "application/json"),
        ("Text/Event-Stream", "text/event-stream"),
    ],
)
def test_the_preferred_media_type_is_the_most_specific_then_highest_q_then_first(
    accept: str | None, preferred: str | None
) -> None:
    assert preferred_media_type(accept) == preferred


@pytest.mark.parametrize(
    ("tags", "fresh"),
    [
        ('"{v}"', True),
        ('W/"{v}"', True),
        ('"other", "{v}"', True),
        ("*", True),
        ('"other"', False),
        ('"{v}x"', False),
        (None, False),
    ],
)
def test_the_page_answers_304_to_the_etags_naming_its_version(
    client: ProxyClient, tags: str | None, fresh: bool
) -> None:
    version = client.get("/ui").headers["ETag"].strip('"')
    headers = {} if tags is None else {"If-None-Match": tags.format(v=version)}

    response = client.get("/ui", headers=headers)

    assert response.status_code == (304 if fresh else 200)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/c1/chat", {"content": "x " * 500}),
        ("/v1/chat/completions", {"messages": [{"role": "user", "content": "x " * 500}]}),
        ("/v1/responses", {"input": "x " * 500}),
    ],
)
def test_a_message_too_long_for_the_context_is_context_length_exceeded(
    make_client: MakeClient, fake_upstream: FakeUpstream, path: str, body: dict[str, Any]
) -> None:
    client = make_client(CONTEXT_TOKENS="700", MAX_TOKENS="500")

    answer = post(client, path, body, headers={"X-Chat-Id": "c1"})

    assert answer.status_code == 400
    error = answer.get_json()
    assert (error.get("code") or error["error"]["code"]) == "context_length_exceeded"
    assert fake_upstream.chat_requests() == []
    assert client.get("/c1/chat").get_json() == []

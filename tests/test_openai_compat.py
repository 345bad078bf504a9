"""The official openai SDK, pointed at the running proxy: chats by id, pass-through, errors."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer, http, server_env
from tests.conftest import SDK_KEY as PROXY_KEY


def stored(url: str, chat: str) -> list[tuple[str, str]]:
    reply = http("GET", f"{url}/{chat}/chat", headers={"X-API-Key": PROXY_KEY})
    return [(m["role"], m["content"]) for m in reply.json()]


def test_sdk_holds_a_conversation_by_chat_id(
    openai_proxy: tuple[openai.OpenAI, str], fake_upstream: FakeUpstream
) -> None:
    client, url = openai_proxy
    replies = []
    for n, text in enumerate(["Hi", "How are you?", "Bye"]):
        ask = {"metadata": {"chat_id": "sdk-chat"}} if n % 2 else {}
        headers = {} if n % 2 else {"X-Chat-Id": "sdk-chat"}
        completion = client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "user", "content": text}],
            extra_headers=headers,
            **ask,  # type: ignore[arg-type]
        )
        assert completion.object == "chat.completion"
        assert completion.usage is not None
        assert completion.usage.total_tokens > 0
        replies.append(completion.choices[0].message.content)

    history = stored(url, "sdk-chat")
    assert history[0] == ("system", "Be kind.")
    assert history[1:] == [
        ("user", "Hi"), ("assistant", replies[0]),
        ("user", "How are you?"), ("assistant", replies[1]),
        ("user", "Bye"), ("assistant", replies[2]),
    ]  # fmt: skip
    third = fake_upstream.chat_requests()[-1]["messages"]
    assert [m["content"] for m in third] == [content for _, content in history[:-1]]


def test_sdk_streams_a_chat_turn_and_the_proxy_stores_it(
    openai_proxy: tuple[openai.OpenAI, str],
) -> None:
    client, url = openai_proxy
    for text in ("one", "two", "three"):
        chunks = list(
            client.chat.completions.create(
                model="gpt-4.1-mini",
                messages=[{"role": "user", "content": text}],
                stream=True,
                stream_options={"include_usage": True},
                extra_headers={"X-Chat-Id": "streamed"},
            )
        )
        assert chunks[0].object == "chat.completion.chunk"
        reply = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert chunks[-1].usage is not None
        assert stored(url, "streamed")[-1] == ("assistant", reply)
    assert len(stored(url, "streamed")) == 1 + 6


def test_without_a_chat_id_the_sdk_gets_a_plain_pass_through(
    openai_proxy: tuple[openai.OpenAI, str], fake_upstream: FakeUpstream
) -> None:
    client, url = openai_proxy
    messages = [
        {"role": "system", "content": "Only this system prompt."},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "an answer"},
        {"role": "user", "content": "second"},
    ]

    completion = client.chat.completions.create(model="gpt-4.1-mini", messages=messages)  # type: ignore[arg-type]
    streamed = list(
        client.chat.completions.create(model="gpt-4.1-mini", messages=messages, stream=True)  # type: ignore[arg-type]
    )

    assert completion.choices[0].message.content
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert fake_upstream.chat_requests()[0]["messages"] == messages
    listing = http("GET", f"{url}/chats", headers={"X-API-Key": PROXY_KEY}).json()
    assert listing["chats"] == []  # nothing was stored


@pytest.mark.parametrize("chat", [{"X-Chat-Id": "null-stream"}, {}], ids=["chat", "pass-through"])
def test_a_null_stream_is_answered_whole_as_the_sdks_types_allow(
    openai_proxy: tuple[openai.OpenAI, str], fake_upstream: FakeUpstream, chat: dict[str, str]
) -> None:
    """The SDK types `stream` as optional (`stream=None` sends `"stream": null`), and OpenAI
    reads null as its default, false."""
    client, url = openai_proxy

    completion = client.chat.completions.create(
        model="gpt-4.1-mini",
        messages=[{"role": "user", "content": "Hi"}],
        stream=None,
        extra_headers=chat,
    )

    assert completion.object == "chat.completion"
    reply = completion.choices[0].message.content
    assert reply
    assert fake_upstream.chat_requests()[-1].get("stream", False) is False
    assert stored(url, "null-stream") == (
        [("system", "Be kind."), ("user", "Hi"), ("assistant", reply)] if chat else []
    )


def test_models_lists_the_allowed_models(openai_proxy: tuple[openai.OpenAI, str]) -> None:
    client, _ = openai_proxy

    assert [model.id for model in client.models.list()] == ["gpt-4.1-mini"]


def test_a_model_is_retrieved_by_its_id_and_one_not_allowed_does_not_exist(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    allowed = "gpt-4.1-mini,meta-llama/Llama-3.1-8B"  # another server's model id may hold `/`
    env = server_env(**proxy_env, PROXY_API_KEYS=f"sdk={PROXY_KEY}", ALLOWED_MODELS=allowed)
    client = openai.OpenAI(api_key=PROXY_KEY, base_url=f"{start_server(env).url}/v1")

    models = [client.models.retrieve(model) for model in allowed.split(",")]
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-unlisted")

    assert models == list(client.models.list())
    assert missing.value.body == {
        "message": "The model 'gpt-unlisted' does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert fake_upstream.requests == []


def test_errors_come_in_openai_shape_through_the_sdk(
    openai_proxy: tuple[openai.OpenAI, str],
) -> None:
    client, url = openai_proxy
    message = [{"role": "user", "content": "hi"}]

    with pytest.raises(openai.AuthenticationError) as unauthorized:
        openai.OpenAI(api_key="wrong-key-0123456789abcd", base_url=f"{url}/v1", max_retries=0)\
            .chat.completions.create(model="gpt-4.1-mini", messages=message)  # type: ignore[arg-type]  # fmt: skip
    with pytest.raises(openai.BadRequestError) as not_allowed:
        client.chat.completions.create(model="gpt-unlisted", messages=message)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError) as stray_result:
        client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=[{"role": "tool", "tool_call_id": "call_9", "content": "42"}],
            extra_headers={"X-Chat-Id": "c1"},
        )

    assert unauthorized.value.status_code == 401
    assert unauthorized.value.code == "unauthorized"
    assert not_allowed.value.code == "invalid_request"
    assert "not allowed" in not_allowed.value.message
    assert "answers no pending tool call" in stray_result.value.message
    body = http("POST", f"{url}/v1/chat/completions", b"nope", headers={"X-API-Key": PROXY_KEY})
    assert body.status == 400
    assert body.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"temperature": 3}, "temperature"),
    ],
)
def test_a_refused_field_is_named_as_the_errors_param(
    openai_proxy: tuple[openai.OpenAI, str], fields: dict[str, object], param: str
) -> None:
    client, _ = openai_proxy
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}], **fields}

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(**body)  # type: ignore[call-overload]

    assert refused.value.param == param


LONG_DATA = "A" * 32_001  # one over MAX_CONTENT_CHARS


@pytest.mark.parametrize(
    ("part", "param"),
    [
        (
            {"type": "file", "file": {"file_data": LONG_DATA, "filename": "a.txt"}},
            "messages[0].content[1].file.file_data",
        ),
        (
            {"type": "file", "file": {"file_data": "aGk=", "filename": LONG_DATA}},
            "messages[0].content[1].file.filename",
        ),
        (
            {"type": "input_audio", "input_audio": {"data": LONG_DATA, "format": "wav"}},
            "messages[0].content[1].input_audio.data",
        ),
    ],
    ids=["file", "filename", "audio"],
)
@pytest.mark.parametrize("chat", [{"X-Chat-Id": "long-file"}, {}], ids=["chat", "pass-through"])
def test_a_file_or_audio_longer_than_the_limit_is_refused_naming_its_data(
    openai_proxy: tuple[openai.OpenAI, str],
    fake_upstream: FakeUpstream,
    chat: dict[str, str],
    part: dict[str, Any],
    param: str,
) -> None:
    client, url = openai_proxy
    content = [{"type": "text", "text": "Read this."}, part]
    messages: Any = [{"role": "user", "content": content}]

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gpt-4.1-mini",
            messages=messages,
            extra_headers=chat,
        )

    assert refused.value.param == param
    assert stored(url, "long-file") == []
    assert fake_upstream.chat_requests() == []


def test_an_endpoint_the_proxy_does_not_have_is_answered_as_openai_answers_an_unknown_url(
    openai_proxy: tuple[openai.OpenAI, str], fake_upstream: FakeUpstream
) -> None:
    client, _ = openai_proxy

    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(model="text-embedding-3-small", input="hi")

    assert missing.value.body == {
        "message": "no route for /v1/embeddings",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
    assert fake_upstream.requests == []


def test_a_spent_token_budget_is_not_retried_by_the_sdk(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    """A 429 `token_budget_exhausted` says `x-should-retry: false`: its wait is hours, which
    the SDKs do not wait out, and without it they tried again at once (twice, by default), each
    try counted against RATE_LIMIT; a rate limit of seconds is still theirs to retry."""
    fake_upstream.usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    env = server_env(**proxy_env, PROXY_API_KEYS=f"sdk={PROXY_KEY}", TOKEN_BUDGET_PER_DAY="20")
    url = start_server(env).url
    message = [{"role": "user", "content": "hi"}]
    tries: list[int] = []
    hooks = {"response": [lambda response: tries.append(response.status_code)]}
    with openai.OpenAI(
        api_key=PROXY_KEY,
        base_url=f"{url}/v1",
        max_retries=2,
        http_client=openai.DefaultHttpxClient(event_hooks=hooks),
    ) as client:
        client.chat.completions.create(model="gpt-4.1-mini", messages=message)  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="gpt-4.1-mini", messages=message)  # type: ignore[arg-type]

    assert refused.value.code == "token_budget_exhausted"
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert tries == [200, 429]

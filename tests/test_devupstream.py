"""The offline dev upstream and the test fake, driven by the official openai client (no mocks)."""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from chatproxy.tokens import estimate_tokens
from chatproxy.upstream.dev import DevUpstream
from harness.fake_upstream import FakeUpstream, Fault

MESSAGES: list[Any] = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hi there"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "What is the capital of France?"},
]


@pytest.fixture(scope="module")
def devup() -> Iterator[DevUpstream]:
    with DevUpstream() as server:
        yield server


@pytest.fixture(scope="module")
def fake_server() -> Iterator[FakeUpstream]:
    with FakeUpstream() as server:
        yield server


@pytest.fixture
def fakeup(fake_server: FakeUpstream) -> FakeUpstream:
    fake_server.reset()
    return fake_server


def make_client(server: DevUpstream, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(api_key="test", base_url=server.base_url, max_retries=0, **kwargs)


def ask(server: DevUpstream, content: Any = "hello", **kwargs: Any) -> Any:
    with make_client(server, **kwargs) as client:
        return client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": content}]
        )


def http_call(url: str, data: bytes | None = None) -> tuple[int, str, dict[str, Any]]:
    """(status, Content-Type, JSON body) of a plain HTTP request, errors included."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers["Content-Type"], json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers["Content-Type"], json.loads(exc.read())


# -- DevUpstream ---------------------------------------------------------------------------------


def test_base_url_and_idempotent_lifecycle() -> None:
    server = DevUpstream()
    url = server.start()
    assert url == server.base_url
    assert url.startswith("http://127.0.0.1:")
    assert url.endswith("/v1")
    assert server.start() == url
    server.stop()
    server.stop()


def test_chat_completion_echoes_last_user_message_with_consistent_usage(
    devup: DevUpstream,
) -> None:
    with make_client(devup) as client:
        completion = client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-dev-")
    assert completion.model == "gpt-test"
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    reply = choice.message.content
    assert reply == (
        "[dev upstream] You said: What is the capital of France?. (I can see 3 earlier messages.)"
    )
    usage = completion.usage
    assert usage is not None
    prompt = sum(math.ceil(len(m["content"]) / 4) + 4 for m in MESSAGES)
    assert usage.prompt_tokens == prompt
    assert usage.completion_tokens == max(1, estimate_tokens(reply)) == math.ceil(len(reply) / 4)
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_image_parts_are_acknowledged(devup: DevUpstream) -> None:
    parts = [
        {"type": "text", "text": "What is"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "text", "text": "this?"},
    ]
    reply = ask(devup, parts).choices[0].message.content
    assert reply.startswith("[dev upstream] You said: What is this? and sent an image.")
    assert "0 earlier messages" in reply


def test_stream_yields_words_then_usage(devup: DevUpstream) -> None:
    with make_client(devup) as client:
        expected = client.chat.completions.create(model="gpt-test", messages=MESSAGES)
        stream = client.chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        with stream:
            chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    first, *words, finish, last = chunks
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == ""
    reply = expected.choices[0].message.content or ""
    pieces = [c.choices[0].delta.content or "" for c in words]
    assert len(pieces) == len(reply.split()) > 3
    assert all(p.startswith(" ") for p in pieces[1:])
    assert "".join(pieces) == reply
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    assert last.choices == []
    assert last.usage == expected.usage


@pytest.mark.parametrize("limit_field", ["max_tokens", "max_completion_tokens"])
def test_reply_is_cut_to_the_token_limit_with_finish_reason_length(
    devup: DevUpstream, limit_field: str
) -> None:
    with make_client(devup) as client:
        whole = client.chat.completions.create(model="m", messages=MESSAGES)
        cut = client.chat.completions.create(
            model="m", messages=MESSAGES, extra_body={limit_field: 3}
        )
        streamed = client.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, extra_body={limit_field: 3}
        )
        with streamed:
            chunks = list(streamed)
    reply = whole.choices[0].message.content or ""
    short = cut.choices[0].message.content or ""
    assert whole.choices[0].finish_reason == "stop"
    assert estimate_tokens(reply) > 3
    assert cut.choices[0].finish_reason == "length"
    assert reply.startswith(short)
    assert 0 < len(short) <= 3 * 4
    assert cut.usage is not None
    assert cut.usage.completion_tokens <= 3
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == short
    assert chunks[-1].choices[0].finish_reason == "length"


def test_a_reply_within_the_token_limit_is_whole(devup: DevUpstream) -> None:
    with make_client(devup) as client:
        whole = client.chat.completions.create(model="m", messages=MESSAGES)
        reply = whole.choices[0].message.content or ""
        same = client.chat.completions.create(
            model="m", messages=MESSAGES, max_tokens=estimate_tokens(reply)
        )
    assert same.choices[0].message.content == reply
    assert same.choices[0].finish_reason == "stop"


def test_stream_without_include_usage_has_no_usage_chunk(devup: DevUpstream) -> None:
    with make_client(devup) as client:
        stream = client.chat.completions.create(model="m", messages=MESSAGES, stream=True)
        with stream:
            chunks = list(stream)
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_a_stream_is_chunked_and_keeps_the_connection_for_the_next_call(
    devup: DevUpstream,
) -> None:
    host, port = devup.base_url.split("//")[1].split("/")[0].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    body = {"model": "m", "messages": [{"role": "user", "content": "one two"}], "stream": True}
    sockets = []
    try:
        for _ in range(2):
            conn.request("POST", "/v1/chat/completions", json.dumps(body))
            response = conn.getresponse()
            assert response.getheader("Transfer-Encoding") == "chunked"
            events = response.read().decode().split("\n\n")
            assert events[-2] == "data: [DONE]"
            sockets.append(conn.sock)
        assert sockets[0] is not None
        assert sockets[0] is sockets[1]  # the same connection served both
    finally:
        conn.close()


def test_moderation_flags_kill_only(devup: DevUpstream) -> None:
    with make_client(devup) as client:
        flagged = client.moderations.create(input="I will kill")
        clean = client.moderations.create(input="hello")
        both = client.moderations.create(input=["hello", "KILL it"])
    assert flagged.model == "omni-moderation-latest"
    assert flagged.results[0].flagged
    assert flagged.results[0].categories.violence
    assert not clean.results[0].flagged
    assert not any(clean.results[0].categories.model_dump().values())
    assert [r.flagged for r in both.results] == [False, True]


def test_models_list(devup: DevUpstream) -> None:
    with make_client(devup) as client:
        models = list(client.models.list())
    assert [m.id for m in models] == ["dev-model"]


def test_unknown_path_is_404_in_openai_error_shape(devup: DevUpstream) -> None:
    status, content_type, body = http_call(devup.base_url + "/nope")
    assert (status, content_type) == (404, "application/json")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] is None
    assert body["error"]["code"] is None


def test_invalid_json_body_is_400(devup: DevUpstream) -> None:
    status, content_type, body = http_call(devup.base_url + "/chat/completions", data=b"{nope")
    assert (status, content_type) == (400, "application/json")
    assert body["error"]["type"] == "invalid_request_error"


def test_estimate_tokens() -> None:
    assert [estimate_tokens(t) for t in ("", "a", "abcd", "abcde")] == [0, 1, 1, 2]


# -- FakeUpstream --------------------------------------------------------------------------------


def test_fake_records_requests_in_order(fakeup: FakeUpstream) -> None:
    ask(fakeup, "one")
    ask(fakeup, "two")
    with make_client(fakeup) as client:
        client.moderations.create(input="three")
    assert [r["path"] for r in fakeup.requests] == [
        "/v1/chat/completions",
        "/v1/chat/completions",
        "/v1/moderations",
    ]
    assert fakeup.requests[0]["headers"]["authorization"] == "Bearer test"
    bodies = fakeup.chat_requests()
    assert [b["messages"][0]["content"] for b in bodies] == ["one", "two"]
    assert bodies[0]["model"] == "gpt-test"
    fakeup.reset()
    assert fakeup.requests == []
    assert fakeup.chat_requests() == []


def test_fake_reply_text_and_usage_override(fakeup: FakeUpstream) -> None:
    fakeup.reply_text = "Paris is the capital."
    fakeup.usage = {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16}
    completion = ask(fakeup)
    assert completion.choices[0].message.content == "Paris is the capital."
    assert completion.usage.model_dump(exclude_none=True) == fakeup.usage
    fakeup.omit_usage = True
    assert ask(fakeup).usage is None
    fakeup.reset()
    assert ask(fakeup).choices[0].message.content.startswith("[dev upstream]")


def test_fake_rate_limit_is_one_shot(fakeup: FakeUpstream) -> None:
    fakeup.script(
        Fault.error(429, "Slow down", code="rate_limit_exceeded", headers={"retry-after": "7"})
    )
    with pytest.raises(openai.RateLimitError) as caught:
        ask(fakeup)
    assert caught.value.response.headers["retry-after"] == "7"
    assert caught.value.code == "rate_limit_exceeded"
    assert "Slow down" in caught.value.message
    assert ask(fakeup).choices[0].message.content.startswith("[dev upstream]")
    assert len(fakeup.chat_requests()) == 2


def test_fake_server_error(fakeup: FakeUpstream) -> None:
    fakeup.script(Fault.error(500))
    with pytest.raises(openai.InternalServerError) as caught:
        ask(fakeup)
    assert caught.value.status_code == 500


def test_fake_drop_is_connection_error(fakeup: FakeUpstream) -> None:
    fakeup.script(Fault(drop=True))
    with pytest.raises(openai.APIConnectionError) as caught:
        ask(fakeup)
    assert not isinstance(caught.value, openai.APITimeoutError)
    assert ask(fakeup).choices[0].message.content.startswith("[dev upstream]")


def test_fake_delay_beyond_client_timeout(fakeup: FakeUpstream) -> None:
    fakeup.delay = 0.6
    with pytest.raises(openai.APITimeoutError):
        ask(fakeup, timeout=0.3)


def test_fake_one_shot_slow_fault_with_extra_header(fakeup: FakeUpstream) -> None:
    fakeup.script(Fault(delay=0.05, headers={"x-fake": "yes"}))
    with make_client(fakeup) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
    assert raw.headers["x-fake"] == "yes"
    reply = raw.parse().choices[0].message.content or ""
    assert reply.startswith("[dev upstream] You said: hi.")


def test_fake_non_json_200_is_returned_as_plain_text_by_the_sdk(fakeup: FakeUpstream) -> None:
    # Observed SDK behaviour (openai 3.51): a 200 whose Content-Type is not JSON and whose body
    # does not parse as JSON is NOT an error -- create() returns the raw body text as a str.
    fakeup.script(Fault.non_json())
    result = ask(fakeup)
    assert isinstance(result, str)
    assert result == "<html>oops</html>"


def test_fake_non_json_200_stream_ends_silently(fakeup: FakeUpstream) -> None:
    # Observed: with stream=True the same HTML answer yields no chunks and raises nothing.
    fakeup.script(Fault.non_json())
    with make_client(fakeup) as client:
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}], stream=True
        )
        with stream:
            assert list(stream) == []


def test_fake_broken_json_200_raises_a_plain_json_error(fakeup: FakeUpstream) -> None:
    # Observed: a body labelled application/json that does not parse escapes as a bare
    # json.JSONDecodeError (a ValueError), not as an openai.APIError.
    fakeup.script(Fault(body="<html>oops</html>", headers={"Content-Type": "application/json"}))
    with pytest.raises(json.JSONDecodeError):
        ask(fakeup)

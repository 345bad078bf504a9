"""An error that ends a stream is the error a plain request gets: the same `error` object, on
`/v1` (OpenAI's `{"error": {"message", "type", "param", "code"}}`) and on `/<chat_id>/chat`."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from chatproxy.tokens import estimate_usage
from harness.fake_upstream import FakeUpstream, Fault
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient

REPLY = "one two three four five six seven eight nine ten"
MESSAGES = [{"role": "user", "content": "hi"}]


def v1_events(answer: Any) -> list[Any]:
    """The JSON objects of a `/v1` event stream, `[DONE]` as the string."""
    assert (answer.status_code, answer.mimetype) == (200, "text/event-stream")
    blocks = answer.get_data(as_text=True).strip().split("\n\n")
    data = [block.removeprefix("data: ") for block in blocks]
    return [item if item == "[DONE]" else json.loads(item) for item in data]


def v1_turn(client: ProxyClient, chat: str | None, *, stream: bool) -> Any:
    """A `/v1/chat/completions` call: a chat's turn, or without a chat id a pass-through."""
    headers = {} if chat is None else {"X-Chat-Id": chat}
    body = {"model": "gpt-4.1-mini", "messages": MESSAGES, "stream": stream}
    return client.post("/v1/chat/completions", json=body, headers=headers)


def native_events(answer: Any) -> list[tuple[str, Any]]:
    """The (event, data) pairs of a `/<chat_id>/chat` event stream."""
    assert (answer.status_code, answer.mimetype) == (200, "text/event-stream")
    events = []
    for block in answer.get_data(as_text=True).strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


@pytest.mark.parametrize("chat", ["c1", None], ids=["chat", "pass-through"])
def test_an_upstream_timeout_mid_stream_is_the_error_object_of_a_plain_timeout(
    make_client: MakeClient, fake_upstream: FakeUpstream, chat: str | None
) -> None:
    client = make_client(UPSTREAM_TIMEOUT="0.5")
    fake_upstream.script(Fault(delay=1.0))  # the plain call: no answer within the timeout
    plain = v1_turn(client, chat, stream=False)
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 1.0  # the stream's first word comes at once, the next too late

    events = v1_events(v1_turn(client, chat, stream=True))

    assert plain.status_code == 504
    assert [e["choices"][0]["delta"] for e in events[:2]] == [
        {"role": "assistant", "content": ""},
        {"content": "one"},
    ]
    assert events[2:] == [{"error": plain.get_json()["error"]}]  # and no `[DONE]`
    assert plain.get_json()["error"] == {
        "message": "the model provider did not answer in time",
        "type": "api_error",
        "param": None,
        "code": "upstream_timeout",
    }


@pytest.mark.parametrize("chat", ["c1", None], ids=["chat", "pass-through"])
def test_an_upstream_that_stalls_mid_stream_times_out_though_it_sends_keep_alive_comments(
    make_client: MakeClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch,
    chat: str | None,
) -> None:  # fmt: skip
    """UPSTREAM_TIMEOUT bounds the wait for the reply's next chunk: comments (`: ping`) that
    keep a stalled stream's connection alive do not reset it."""
    client = make_client(UPSTREAM_TIMEOUT="0.5")
    stream_chat = fake_upstream.stream_chat

    def pinging(handler: Any, *args: Any) -> None:
        send, sent = handler.send_event, []

        def send_event(payload: Any) -> None:
            if len(sent) == 2:  # the first word is out: the model stalls, the connection pings
                for _ in range(15):
                    time.sleep(0.2)
                    ping = b": ping\n\n"
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(ping), ping))
                    handler.wfile.flush()
            sent.append(payload)
            send(payload)

        handler.send_event = send_event
        stream_chat(handler, *args)

    monkeypatch.setattr(fake_upstream, "stream_chat", pinging)
    fake_upstream.reply_text = "one two three"

    started = time.monotonic()
    events = v1_events(v1_turn(client, chat, stream=True))

    assert time.monotonic() - started < 2  # the pings go on for 3 s
    assert events[-1]["error"]["code"] == "upstream_timeout"
    assert client.get("/c1/chat").get_json() == []


@pytest.mark.parametrize("chat", ["c1", None], ids=["chat", "pass-through"])
def test_a_stream_that_fails_before_its_first_piece_is_a_plain_error_answer(
    client: ProxyClient, fake_upstream: FakeUpstream, chat: str | None
) -> None:
    """An upstream stream whose first event is an error: nothing has been said, so the answer
    is the JSON error a plain call gets (a 502 the SDKs raise as such, and retry), with or
    without a chat id."""
    error = {"error": {"message": "The server is overloaded.", "type": "server_error"}}
    events = f"data: {json.dumps(error)}\n\n"
    fake_upstream.script(Fault(body=events, headers={"Content-Type": "text/event-stream"}))

    answer = v1_turn(client, chat, stream=True)

    assert (answer.status_code, answer.mimetype) == (502, "application/json")
    assert answer.get_json()["error"] == {
        "message": "the model provider's stream failed: The server is overloaded.",
        "type": "api_error",
        "param": None,
        "code": "upstream_error",
    }


def test_a_lease_that_ends_mid_stream_is_the_error_object_of_a_plain_turn_that_outlived_it(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """A 409 is a `conflict_error` to OpenAI's clients, inside a stream as outside it."""
    client = make_client(TURN_LEASE_SECONDS="0.5")
    fake_upstream.script(Fault(delay=1.0))  # the plain turn's reply comes after its lease
    plain = v1_turn(client, "c1", stream=False)
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 0.15  # the whole stream takes longer than the lease

    events = v1_events(v1_turn(client, "c1", stream=True))

    assert plain.status_code == 409
    assert plain.get_json()["error"] == {
        "message": "the reply took longer than this chat's turn lease, so it was not stored;"
        " send it again",
        "type": "conflict_error",
        "param": None,
        "code": "turn_lease_lost",
    }
    assert "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1]) == REPLY
    # the upstream's finishing chunk is held until the turn is stored: the error takes its place
    assert [e["choices"][0]["finish_reason"] for e in events[:-1]] == [None] * (len(events) - 1)
    assert events[-1] == {"error": plain.get_json()["error"]}
    assert client.get("/c1/chat").get_json() == []  # neither turn was stored


def test_a_lease_that_ends_mid_stream_is_the_error_body_of_a_plain_turn_on_the_chat_api(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(TURN_LEASE_SECONDS="0.5")
    fake_upstream.script(Fault(delay=1.0))
    plain = client.post("/c1/chat", json={"content": "hi"})
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 0.15

    events = native_events(client.post("/c1/chat", json={"content": "hi", "stream": True}))

    assert plain.status_code == 409
    assert plain.get_json() == {
        "error": "the reply took longer than this chat's turn lease, so it was not stored;"
        " send it again",
        "code": "turn_lease_lost",
    }
    assert [kind for kind, _ in events] == ["delta"] * 10 + ["error"]
    assert events[-1][1] == plain.get_json()


def test_streamed_pass_throughs_spend_the_budget_and_are_then_refused_as_plain_calls_are(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """A pass-through stream counts its tokens once it is whole; a spent budget refuses the next
    call, streamed or not, before anything is sent, with the same OpenAI error."""
    client = make_client(TOKEN_BUDGET_PER_DAY="50")
    fake_upstream.usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}

    streams = [v1_events(v1_turn(client, None, stream=True)) for _ in range(2)]  # 60 tokens
    refused_stream = v1_turn(client, None, stream=True)
    refused_plain = v1_turn(client, None, stream=False)

    assert all(events[-1] == "[DONE]" for events in streams)
    assert len(fake_upstream.chat_requests()) == 2
    assert (refused_stream.status_code, refused_plain.status_code) == (429, 429)
    assert refused_stream.get_json() == refused_plain.get_json()
    assert refused_plain.get_json()["error"]["type"] == "rate_limit_error"
    assert refused_plain.get_json()["error"]["code"] == "token_budget_exhausted"


BUDGET = 10_000  # TOKEN_BUDGET_PER_DAY, when one is set below


def budget_left(client: ProxyClient) -> int:
    """What is left of the budget, as a pass-through whose `n` choices could spend more than
    that is told (refused before the call)."""
    body = {"model": "gpt-4.1-mini", "messages": MESSAGES, "n": 128, "max_tokens": 500}
    refused = client.post("/v1/chat/completions", json=body)
    assert refused.status_code == 429, refused.get_json()
    message = refused.get_json()["error"]["message"]
    left = re.search(r"more than the (\d+) this key has left", message)
    assert left is not None
    return int(left[1])


@pytest.mark.parametrize("budget", [None, str(BUDGET)], ids=["no-budget", "budget"])
def test_a_chat_stream_that_breaks_off_counts_the_estimate_of_what_it_sent_and_read(
    make_client: MakeClient, fake_upstream: FakeUpstream, budget: str | None
) -> None:
    """A chat's stream that breaks off after its reply began ends with the error, stores nothing
    and releases the chat; under a token budget it counts the estimate of the messages it sent
    and the text it had read, that exactly."""
    client = make_client(TOKEN_BUDGET_PER_DAY=budget)
    fake_upstream.reply_text = REPLY
    fake_upstream.cut_stream_after = 4

    events = native_events(client.post("/c1/chat", json={"content": "hi", "stream": True}))

    read = "".join(data["content"] for kind, data in events if kind == "delta")
    assert read
    assert REPLY.startswith(read)  # a part of the reply: the stream broke off
    assert read != REPLY
    assert events[-1] == ("error", {"error": events[-1][1]["error"], "code": "upstream_error"})
    assert client.get("/c1/chat").get_json() == []
    if budget is not None:
        sent = fake_upstream.chat_requests()[-1]["messages"]
        assert budget_left(client) == BUDGET - estimate_usage(sent, read)["total_tokens"]
    fake_upstream.cut_stream_after = None
    assert client.post("/c1/chat", json={"content": "hi"}).status_code == 200  # the lock is free

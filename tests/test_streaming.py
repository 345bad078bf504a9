"""Streamed turns: server-sent events as the reply is generated, stored once, complete."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import threading
import time
from http.client import HTTPConnection
from typing import Any

import pytest

from chatproxy.store import ChatRef, Message, open_store
from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import StartServer, http, server_env
from tests.asgi_client import ProxyClient
from tests.event_loop import run_on_own_loop

REPLY = "one two three four five six seven eight nine ten"


def parse_events(text: str) -> list[tuple[str, dict[str, Any]]]:
    """Split an SSE body into (event, data) pairs."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((fields["event"], json.loads(fields["data"])))
    return events


def stream(client: ProxyClient, path: str, body: dict[str, Any], **headers: str) -> Any:
    """POST a streamed turn and read the whole answer, as a server sending it to a client does."""
    return client.post(
        path,
        data=json.dumps(body),
        headers={"Accept": "text/event-stream", **headers},
        buffered=True,
    )


def history(client: ProxyClient, chat: str) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in client.get(f"/{chat}/chat").get_json()]


@pytest.mark.parametrize(
    ("body", "headers"),
    [({"content": "hi"}, {"Accept": "text/event-stream"}), ({"content": "hi", "stream": True}, {})],
)
def test_reply_streams_as_events_and_is_stored_once(
    client: ProxyClient,
    fake_upstream: FakeUpstream,
    body: dict[str, Any],
    headers: dict[str, str],
) -> None:
    fake_upstream.reply_text = REPLY
    fake_upstream.usage = {"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17}

    response = client.post("/c1/chat", data=json.dumps(body), headers=headers)

    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    events = parse_events(response.get_data(as_text=True))
    kinds = [kind for kind, _ in events]
    assert kinds == ["delta"] * 10 + ["done"]
    text = "".join(data["content"] for kind, data in events if kind == "delta")
    done = events[-1][1]
    assert text == done["content"] == REPLY
    assert done["tokens"] == {"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17}
    assert history(client, "c1") == [("user", "hi"), ("assistant", REPLY)]
    sent = fake_upstream.chat_requests()[-1]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}


def test_errors_before_the_first_byte_are_json(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Fault.error(500))

    failed = stream(client, "/c1/chat", {"content": "hi"})
    bad = stream(client, "/c1/chat", {"content": ""})

    assert (failed.status_code, failed.mimetype) == (502, "application/json")
    assert failed.get_json()["code"] == "upstream_error"
    assert (bad.status_code, bad.get_json()["code"]) == (400, "invalid_request")
    assert history(client, "c1") == []


def open_stream(client: ProxyClient, path: str, body: dict[str, Any], **headers: str) -> Any:
    """POST a streamed turn and hold its answer, none of it read: iterate it for its events,
    stop, or `close` it (the client hangs up)."""
    answer = client.open_stream(
        path, data=json.dumps(body), headers={"Accept": "text/event-stream", **headers}
    )
    assert answer.status_code == 200
    return answer


def wait_for_history(client: ProxyClient, chat: str, count: int) -> list[tuple[str, Any]]:
    deadline = time.monotonic() + 10
    while len(found := history(client, chat)) < count:
        assert time.monotonic() < deadline, f"{chat} holds {found}"
        time.sleep(0.05)
    return found


def test_a_stream_closed_before_any_of_it_was_read_is_still_stored_once(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """A client may hang up before any of the answer is sent: the turn's own task reads the
    reply and stores the turn, and releases the chat's lock."""
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 0.02

    open_stream(client, "/c1/chat", {"content": "hi"}).close()

    assert wait_for_history(client, "c1", 2) == [("user", "hi"), ("assistant", REPLY)]
    follow_up = stream(client, "/c1/chat", {"content": "next"})  # the lock is free
    assert parse_events(follow_up.get_data(as_text=True))[-1][0] == "done"
    assert len(history(client, "c1")) == 4


def test_a_stream_whose_reader_stalls_is_stored_and_the_reader_gets_the_rest_later(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """A client that stops reading (so the server's write waits) neither closes the answer nor
    asks for more: the turn is stored anyway, within its lock's lease, and a reader that comes
    back gets the rest of the events."""
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 0.02

    stalled = open_stream(client, "/c1/chat", {"content": "hi"})
    events = iter(stalled)
    assert next(events).startswith(b"event: delta")
    assert next(events).startswith(b"event: delta")  # then the reader stops

    assert wait_for_history(client, "c1", 2) == [("user", "hi"), ("assistant", REPLY)]
    rest = parse_events(b"".join(events).decode())
    stalled.close()
    assert [kind for kind, _ in rest] == ["delta"] * (len(rest) - 1) + ["done"]
    assert rest[-1][1]["content"] == REPLY
    assert len(history(client, "c1")) == 2
    assert len(fake_upstream.chat_requests()) == 1


def test_closing_the_app_waits_for_the_streamed_turns_being_stored(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """A stream whose client left is still being read when the process is told to stop: the
    turn is stored before the store's connections close."""
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 0.05
    left = open_stream(client, "/c1/chat", {"content": "hi"})
    assert next(iter(left)).startswith(b"event: delta")
    left.close()  # the client hung up after the first word

    app = sys.modules["main"].app
    client.portal_call(app.aclose)

    async def read_history() -> list[Message]:
        store = open_store(app.settings)
        try:
            return (await store.load_history(ChatRef("public", "c1"))).messages
        finally:
            await store.close()

    stored = run_on_own_loop(read_history())
    assert [(m.role, m.content) for m in stored] == [("user", "hi"), ("assistant", REPLY)]


def test_a_stream_that_breaks_off_ends_with_an_error_event_and_stores_nothing(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply_text = REPLY
    fake_upstream.cut_stream_after = 4  # the role chunk and three words, then the connection drops

    response = stream(client, "/c1/chat", {"content": "hi"}, **{"Idempotency-Key": "k1"})

    events = parse_events(response.get_data(as_text=True))
    assert response.status_code == 200
    assert [kind for kind, _ in events] == ["delta", "delta", "delta", "error"]
    assert events[-1][1]["code"] == "upstream_error"
    assert history(client, "c1") == []
    fake_upstream.cut_stream_after = None
    again = client.post(  # the lock is free and the key was not used up
        "/c1/chat", data=json.dumps({"content": "hi"}), headers={"Idempotency-Key": "k1"}
    )
    assert again.status_code == 200
    assert "Idempotent-Replayed" not in again.headers


def test_a_repeated_idempotency_key_replays_the_stream(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply_text = REPLY
    first = stream(client, "/c1/chat", {"content": "hi"}, **{"Idempotency-Key": "k1"})
    first_events = parse_events(first.get_data(as_text=True))

    again = stream(client, "/c1/chat", {"content": "hi"}, **{"Idempotency-Key": "k1"})

    replayed = parse_events(again.get_data(as_text=True))
    assert again.headers["Idempotent-Replayed"] == "true"
    assert replayed == [("delta", {"content": REPLY}), ("done", first_events[-1][1])]
    assert len(fake_upstream.chat_requests()) == 1
    assert len(history(client, "c1")) == 2


def test_an_image_turn_streams_too(client: ProxyClient, fake_upstream: FakeUpstream) -> None:
    body = {"content": "what is this?", "url": "https://example.com/a.png", "stream": True}

    events = parse_events(client.post("/c1/img", data=json.dumps(body)).get_data(as_text=True))

    assert events[-1][0] == "done"
    assert history(client, "c1")[0][1][1]["image_url"]["url"] == "https://example.com/a.png"


def test_a_stream_without_usage_gets_an_estimate(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.omit_usage = True
    fake_upstream.reply_text = "x" * 40

    events = parse_events(stream(client, "/c1/chat", {"content": "y" * 80}).get_data(as_text=True))

    assert events[-1][1]["tokens"] == {
        "prompt_tokens": 24,
        "completion_tokens": 10,
        "total_tokens": 34,
    }


# --- Through the real server process -------------------------------------------------------------


@pytest.fixture
def server_url(
    start_server: StartServer, fake_upstream: FakeUpstream, proxy_env: dict[str, str]
) -> str:
    return start_server(server_env(**proxy_env)).url


def test_events_arrive_while_the_reply_is_generated(
    server_url: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 0.15  # ten words: about 1.4 s from first to last
    host, port = server_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=10)
    connection.request(
        "POST", "/live/chat", body=json.dumps({"content": "go", "stream": True}),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    response = connection.getresponse()
    arrivals: list[tuple[float, str]] = []
    while line := response.readline():
        if line.startswith(b"event: "):
            arrivals.append((time.monotonic(), line.decode().split(": ", 1)[1].strip()))
    connection.close()

    kinds = [kind for _, kind in arrivals]
    assert kinds == ["delta"] * 10 + ["done"]
    assert arrivals[-1][0] - arrivals[0][0] > 1.0  # the first words came long before the end


def test_a_client_that_hangs_up_mid_stream_still_gets_the_turn_stored_once(
    server_url: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 0.1
    host, port = server_url.removeprefix("http://").split(":")
    body = json.dumps({"content": "bye", "stream": True}).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /gone/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        received = b""
        while b"event: delta" not in received:
            received += sock.recv(4096)
    # The client is gone after the first word; the reply has nine more to come.

    deadline = time.monotonic() + 10
    while len(http("GET", f"{server_url}/gone/chat").json()) < 2:
        assert time.monotonic() < deadline, "the turn was not stored"
        time.sleep(0.1)
    time.sleep(0.5)  # anything stored twice would show up by now

    stored = http("GET", f"{server_url}/gone/chat").json()
    assert [(m["role"], m["content"]) for m in stored] == [("user", "bye"), ("assistant", REPLY)]
    assert len(fake_upstream.chat_requests()) == 1


def test_a_pass_through_stream_closed_unread_gives_its_connection_back(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """`/v1/chat/completions` without a chat id, answered by a stream whose client hangs up
    before reading any of it. The upstream connection must be given back: every one held would
    shrink the pool until calls waited for one."""
    fake_upstream.reply_text = REPLY
    fake_upstream.chunk_delay = 1.0  # 9 s in all: still open when the client hangs up
    body = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "hi"}]}
    answer = client.open_stream("/v1/chat/completions", json={**body, "stream": True})
    assert answer.status_code == 200
    connector = sys.modules["main"].app.service._upstream._session.connector
    assert len(connector._acquired) == 1  # the open stream holds one

    answer.close()

    deadline = time.monotonic() + 5
    while connector._acquired:
        assert time.monotonic() < deadline, "the stream's connection was never given back"
        client.portal_call(asyncio.sleep, 0.01)
    assert len(fake_upstream.chat_requests()) == 1


def test_streamed_turns_reuse_one_upstream_connection(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """A stream is read to the end of its body, so its connection serves the next call (a new
    one would cost a TCP and TLS handshake per streamed turn)."""
    for n in range(3):
        assert stream(client, "/c1/chat", {"content": f"turn {n}"}).status_code == 200
        assert client.post("/c1/chat", data=json.dumps({"content": "plain"})).status_code == 200

    assert len(fake_upstream.chat_requests()) == 6
    assert len({tuple(entry["peer"]) for entry in fake_upstream.requests}) == 1


def test_an_error_event_from_the_upstream_ends_the_stream_with_an_error_and_stores_nothing(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    first = {**chunk, "choices": [{"index": 0, "delta": {"content": "Hel"}}]}
    error = {"error": {"message": "The server is overloaded.", "type": "server_error"}}
    events = f"data: {json.dumps(first)}\n\ndata: {json.dumps(error)}\n\n"
    fake_upstream.script(Fault(body=events, headers={"Content-Type": "text/event-stream"}))

    response = stream(client, "/c1/chat", {"content": "hi"})

    assert parse_events(response.get_data(as_text=True)) == [
        ("delta", {"content": "Hel"}),
        ("error", {"error": "the model provider's stream failed: The server is overloaded.",
                   "code": "upstream_error"}),
    ]  # fmt: skip
    assert history(client, "c1") == []


def test_a_connection_cut_after_the_last_event_still_stores_the_whole_reply(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply_text = REPLY
    fake_upstream.cut_stream_end = True  # `data: [DONE]`, then a reset instead of the body's end

    events = parse_events(stream(client, "/c1/chat", {"content": "hi"}).get_data(as_text=True))

    assert events[-1][0] == "done"
    assert history(client, "c1") == [("user", "hi"), ("assistant", REPLY)]


def test_a_body_left_open_after_done_does_not_hold_the_reply_back(
    client: ProxyClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply is whole at `data: [DONE]`: what the upstream sends after it is read only to
    keep the connection, never waited for (here, the body's end comes 3 s later)."""
    stream_chat = fake_upstream.stream_chat

    def lingering(handler: Any, *args: Any) -> None:
        end = handler.end_stream

        def late_end() -> None:
            time.sleep(3)
            end()

        handler.end_stream = late_end
        stream_chat(handler, *args)

    monkeypatch.setattr(fake_upstream, "stream_chat", lingering)
    fake_upstream.reply_text = REPLY

    started = time.monotonic()
    events = parse_events(stream(client, "/c1/chat", {"content": "hi"}).get_data(as_text=True))

    assert time.monotonic() - started < 1.5
    assert events[-1][0] == "done"
    assert history(client, "c1") == [("user", "hi"), ("assistant", REPLY)]


@pytest.mark.parametrize("chat", ["azure", None], ids=["chat mode", "pass-through"])
def test_a_first_chunk_without_choices_does_not_hold_the_stream(
    client: ProxyClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch, chat: Any
) -> None:
    """Azure OpenAI's first chunk has no choices, only the prompt's filter results: the text
    after it still streams as it comes (the upstream waits after its first word until the
    client has it; a held stream gets it only once the wait gives up)."""
    stream_chat, released = fake_upstream.stream_chat, threading.Event()
    results = [{"prompt_index": 0, "content_filter_results": {}}]
    filtered = {"id": "", "model": "", "choices": [], "prompt_filter_results": results}

    def azure(handler: Any, *args: Any) -> None:
        send, sent = handler.send_event, []

        def send_event(payload: Any) -> None:
            if not sent:
                send(filtered)
            if len(sent) == 2:  # the first word is out: wait for the client to have it
                released.wait(10)
            sent.append(payload)
            send(payload)

        handler.send_event = send_event
        stream_chat(handler, *args)

    monkeypatch.setattr(fake_upstream, "stream_chat", azure)
    fake_upstream.reply_text = "one two three"
    body = {
        "model": "gpt-4.1-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
    }
    answer = client.open_stream(
        "/v1/chat/completions", json=body, headers={"X-Chat-Id": chat} if chat else {}
    )
    received = b""
    for piece in answer:
        received += piece
        if b'"one' in received:
            break
    early = not released.is_set()
    released.set()
    received += b"".join(answer)
    answer.close()

    assert early
    assert b"prompt_filter_results" in received
    assert received.rstrip().endswith(b"data: [DONE]")


def test_a_streamed_response_numbers_calls_as_stored_however_the_upstream_does(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """Gateways to Claude number a call after a text block 1: the Response streamed, and the one
    stored, have the same one call."""
    head = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**head, 'choices': [choice]})}\n\n"

    call = {"index": 1, "id": "toolu_1", "type": "function", "function": {"name": "f"}}
    arguments = {"index": 1, "function": {"arguments": '{"city":"Paris"}'}}
    body = chunk({"role": "assistant", "content": "Let me check."}) + chunk({"tool_calls": [call]})
    body += chunk({"tool_calls": [arguments]}) + chunk({}, "tool_calls") + "data: [DONE]\n\n"
    fake_upstream.script(Fault(body=body, headers={"Content-Type": "text/event-stream"}))
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    request = {"model": "gpt-4.1-mini", "input": "weather?", "tools": [tool], "stream": True}

    text = client.post("/v1/responses", json=request).get_data(as_text=True)

    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    streamed = events[-1]["response"]
    stored = client.get(f"/v1/responses/{streamed['id']}").get_json()

    def calls(response: dict[str, Any]) -> list[tuple[str, str, str]]:
        return [
            (o["id"], o["call_id"], o["arguments"])
            for o in response["output"]
            if o["type"] == "function_call"
        ]

    assert (
        calls(streamed)
        == calls(stored)
        == [(f"fc_{streamed['id'][5:]}_0", "toolu_1", '{"city":"Paris"}')]
    )


def test_calls_whose_indexes_first_come_out_of_order_stream_as_they_are_stored(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """A call's item is added when its first piece comes: the stored reply lists its calls in
    that order too, so each item is done with the call it was added with (the openai SDK's
    stream helper raises "Completed output item identity changed" otherwise)."""
    head = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return f"data: {json.dumps({**head, 'choices': [choice]})}\n\n"

    def call(index: int, call_id: str, name: str) -> dict[str, Any]:
        function = {"name": name, "arguments": ""}
        return {"index": index, "id": call_id, "type": "function", "function": function}

    def arguments(index: int, text: str) -> dict[str, Any]:
        return {"index": index, "function": {"arguments": text}}

    body = chunk({"role": "assistant", "tool_calls": [call(1, "call_b", "g")]})
    body += chunk({"tool_calls": [call(0, "call_a", "f")]})
    body += chunk({"tool_calls": [arguments(1, '{"b":1}')]})
    body += chunk({"tool_calls": [arguments(0, '{"a":1}')]})
    body += chunk({}, "tool_calls") + "data: [DONE]\n\n"
    fake_upstream.script(Fault(body=body, headers={"Content-Type": "text/event-stream"}))
    tool = {"type": "function", "name": "f", "parameters": {"type": "object"}}
    request = {"model": "gpt-4.1-mini", "input": "go", "tools": [tool], "stream": True}

    text = client.post("/v1/responses", json=request).get_data(as_text=True)

    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    items: dict[str, dict[str, list[Any]]] = {}
    for event in events:
        if event["type"] in ("response.output_item.added", "response.output_item.done"):
            item = event["item"]
            seen = items.setdefault(item["id"], {"call_id": [], "name": []})
            seen["call_id"].append(item["call_id"])
            seen["name"].append(item["name"])
    assert all(len(set(v["call_id"])) == len(set(v["name"])) == 1 for v in items.values())
    streamed = events[-1]["response"]
    stored = client.get(f"/v1/responses/{streamed['id']}").get_json()
    calls = [(o["id"], o["call_id"], o["arguments"]) for o in streamed["output"]]
    assert calls == [(o["id"], o["call_id"], o["arguments"]) for o in stored["output"]]
    assert [(call_id, arguments) for _, call_id, arguments in calls] == [
        ("call_b", '{"b":1}'),
        ("call_a", '{"a":1}'),
    ]


def test_a_reply_cut_at_its_cap_before_any_text_is_incomplete_streamed_or_not(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """A reasoning model can spend the whole cap thinking: its reply is empty text, finish
    reason `length`. Unstreamed, that is an incomplete Response; streamed, the same."""
    head = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
    usage = {"prompt_tokens": 5, "completion_tokens": 50, "total_tokens": 55}
    message = {"role": "assistant", "content": ""}
    whole = {**head, "object": "chat.completion", "usage": usage}
    whole["choices"] = [{"index": 0, "message": message, "finish_reason": "length"}]

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        return f"data: {json.dumps({**head, 'choices': choices, **extra})}\n\n"

    body = chunk([{"index": 0, "delta": message, "finish_reason": None}])
    body += chunk([{"index": 0, "delta": {}, "finish_reason": "length"}])
    body += chunk([], usage=usage) + "data: [DONE]\n\n"
    fake_upstream.script(
        Fault(body=whole), Fault(body=body, headers={"Content-Type": "text/event-stream"})
    )

    plain = client.post("/v1/responses", json={"input": "think hard"}).get_json()
    answer = client.post("/v1/responses", json={"input": "think hard", "stream": True})

    assert (plain["status"], plain["incomplete_details"]) == (
        "incomplete",
        {"reason": "max_output_tokens"},
    )
    text = answer.get_data(as_text=True)
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    streamed = events[-1]
    assert streamed["type"] == "response.incomplete"
    assert streamed["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert streamed["response"]["usage"] == plain["usage"]
    stored = client.get(f"/v1/responses/{streamed['response']['id']}").get_json()
    assert stored["status"] == "incomplete"


@pytest.mark.parametrize("route", ["/c1/chat", "/v1/chat/completions", "/v1/responses"])
def test_a_character_whose_utf16_halves_come_in_two_chunks_streams_and_is_stored_whole(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """An upstream that slices its text by UTF-16 code units (as JavaScript strings are) can
    send an emoji's surrogate pair as two escapes in two chunks, each no text on its own: each
    goes on as the escape it came as, and the stored reply has the emoji."""
    head = '{"id":"c","object":"chat.completion.chunk","created":0,"model":"m","choices":'
    pieces = [("Hi ", "null"), ("\\ud83d", "null"), ("\\ude00", "null"), ("", '"stop"')]
    body = "".join(
        f'data: {head}[{{"index":0,"delta":{{"content":"{text}"}},"finish_reason":{finish}}}]}}\n\n'
        for text, finish in pieces
    )
    fake_upstream.script(
        Fault(body=body + "data: [DONE]\n\n", headers={"Content-Type": "text/event-stream"})
    )
    messages = [{"role": "user", "content": "hi"}]
    request = {"/c1/chat": {"content": "hi"}, "/v1/chat/completions": {"messages": messages}}
    headers = {"X-Chat-Id": "c1"} if route == "/v1/chat/completions" else {}

    answer = client.post(
        route, json={**request.get(route, {"input": "hi"}), "stream": True}, headers=headers
    )

    text = answer.get_data(as_text=True)
    ends = {"/c1/chat": "event: done", "/v1/chat/completions": "data: [DONE]"}
    assert (
        text.strip()
        .splitlines()[-2 if route == "/c1/chat" else -1]
        .startswith(ends.get(route, 'data: {"type":"response.completed"'))
    )
    chat = "c1"
    if route == "/v1/responses":
        chat = json.loads(text.strip().splitlines()[-1][6:])["response"]["id"][5:]
        chat = chat.rsplit("_", 1)[0]
    assert history(client, chat)[-1] == ("assistant", "Hi \U0001f600")


@pytest.mark.parametrize("route", ["/c1/chat", "/v1/chat/completions", "/v1/responses"])
def test_a_streamed_turns_log_line_has_its_tokens_or_the_error_that_ended_it(
    client: ProxyClient,
    fake_upstream: FakeUpstream,
    caplog: pytest.LogCaptureFixture,
    route: str,
) -> None:
    """The request's line is written once the stream has been sent: with the reply's tokens,
    as a plain turn's, or the code of the error that ended the stream."""
    caplog.set_level(logging.INFO, logger="chatproxy.requests")
    usage = {"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17}
    fake_upstream.usage = usage
    fake_upstream.reply_text = REPLY
    messages = [{"role": "user", "content": "hi"}]
    body = {"/c1/chat": {"content": "hi"}, "/v1/chat/completions": {"messages": messages}}
    request = {**body.get(route, {"input": "hi"}), "stream": True}
    headers = {"X-Chat-Id": "c1"} if route == "/v1/chat/completions" else {}

    assert client.post(route, json=request, headers=headers).status_code == 200
    fake_upstream.cut_stream_after = 3  # the next stream breaks off after its second word
    assert client.post(route, json=request, headers=headers).status_code == 200

    lines = [r.fields for r in caplog.records if r.name == "chatproxy.requests"]
    assert [(line.get("tokens"), line.get("error")) for line in lines] == [
        (usage, None),
        (None, "upstream_error"),
    ]


def test_a_streamed_v1_replay_says_so_and_names_the_model_in_every_chunk(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    body = {
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    headers = {"X-Chat-Id": "r1", "Idempotency-Key": "rk1"}

    first, again = (
        client.post("/v1/chat/completions", data=json.dumps(body), headers=headers)
        for _ in range(2)
    )

    def chunks(answer: Any) -> list[dict[str, Any]]:
        lines = answer.get_data(as_text=True).splitlines()
        return [json.loads(line[6:]) for line in lines if line.startswith("data: {")]

    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    models = {chunk["model"] for chunk in chunks(first)}
    assert len(models) == 1
    assert {chunk["model"] for chunk in chunks(again)} == models
    assert len(fake_upstream.chat_requests()) == 1

"""The model client, `AsyncUpstream` (aiohttp), on its own against the fake upstream and real
proxies and TLS servers: every failure becomes its proxy error, and replies, streams, retries
and the connection pool behave as the service needs. The app-level suites
(test_upstream_faults, test_streaming) run it through the service."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import time
from base64 import b64encode
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest

from chatproxy.config import load_settings
from chatproxy.errors import ProxyError
from chatproxy.upstream import rules as upstream_module
from chatproxy.upstream.base import Completion
from chatproxy.upstream.client import AsyncUpstream
from chatproxy.upstream_errors import UpstreamError, UpstreamTimeout
from harness.fake_upstream import FakeUpstream, Fault
from harness.redis_server import make_certificates
from tests.event_loop import LoopThread
from tests.test_upstream_faults import FAULTS

MESSAGES = [{"role": "user", "content": "hi"}]
T = TypeVar("T")
REPLY = "one two three four five six"


class Client:
    """The client called from the test's thread; it runs on a loop of its own (`LoopThread`)
    that lives as long as the client."""

    def __init__(self, **env: str):
        settings = load_settings({"GPT_API_KEY": "k", **env})
        self.aio = AsyncUpstream.from_settings(settings)
        self.loop = LoopThread()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self.loop.run(call)

    def complete(self, messages: list[dict[str, Any]] = MESSAGES, **options: Any) -> Completion:
        return self.run(self.aio.complete(messages, model="m", max_tokens=50, **options))

    def stream(self) -> tuple[list[str], Completion]:
        """The streamed texts and the completion; raises as the stream does."""
        aio = self.aio

        async def read() -> tuple[list[str], Completion]:
            reply = await aio.stream(MESSAGES, model="m", max_tokens=50)
            return [delta.text async for delta in reply if delta.text], reply.completion()

        return self.run(read())

    def moderate(self) -> dict[str, Any]:
        return self.run(self.aio.moderate("hello", model="omni-moderation-latest"))

    def close(self) -> None:
        self.run(self.aio.aclose())
        self.loop.close()


@pytest.fixture
def make(fake_upstream: FakeUpstream) -> Iterator[Any]:
    clients: list[Client] = []

    def make(**env: str) -> Client:
        clients.append(Client(OPENAI_BASE_URL=fake_upstream.base_url, **env))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize(("fault", "status", "code", "retry_after"), FAULTS)
def test_a_failure_is_the_same_proxy_error_from_both_clients(
    make: Any,
    fake_upstream: FakeUpstream,
    fault: Fault,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    client = make(UPSTREAM_TIMEOUT="0.5", UPSTREAM_MAX_RETRIES="0")
    fake_upstream.script(fault)

    with pytest.raises(ProxyError) as raised:
        client.complete()

    assert (raised.value.status, raised.value.code) == (status, code)
    assert raised.value.headers.get("Retry-After") == retry_after
    assert len(fake_upstream.chat_requests()) == 1


def test_a_reply_comes_with_its_model_and_usage(make: Any, fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply_text = REPLY

    completion = make().complete()

    assert completion.content == REPLY
    assert completion.model
    assert not completion.usage_estimated
    assert fake_upstream.chat_requests()[0]["messages"] == MESSAGES


def test_a_transient_failure_is_retried_once_and_a_deadline_stops_retries(
    make: Any, fake_upstream: FakeUpstream
) -> None:
    client = make(UPSTREAM_MAX_RETRIES="1")
    fake_upstream.script(Fault.error(500))
    assert client.complete().content
    assert len(fake_upstream.chat_requests()) == 2

    fake_upstream.reset()
    fake_upstream.script(Fault.error(500))
    with pytest.raises(UpstreamError):  # no time left for a second attempt
        client.complete(deadline=time.monotonic() + 0.6)
    assert len(fake_upstream.chat_requests()) == 1


def test_a_stream_gives_its_texts_then_the_whole_reply(
    make: Any, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.reply_text = REPLY

    texts, completion = make().stream()

    assert "".join(texts) == REPLY
    assert len(texts) > 1
    assert completion.content == REPLY
    assert not completion.usage_estimated


def test_a_stream_that_breaks_off_or_fails_is_an_upstream_error(
    make: Any, fake_upstream: FakeUpstream
) -> None:
    client = make()
    fake_upstream.reply_text = REPLY
    fake_upstream.cut_stream_after = 3
    with pytest.raises(UpstreamError, match="broke off"):
        client.stream()

    fake_upstream.reset()
    error = {"error": {"message": "The server is overloaded."}}
    events = f"data: {json.dumps(error)}\n\n"
    fake_upstream.script(Fault(body=events, headers={"Content-Type": "text/event-stream"}))
    with pytest.raises(UpstreamError, match="stream failed: The server is overloaded"):
        client.stream()


def test_streams_reuse_one_connection_and_a_cut_after_done_keeps_the_reply(
    make: Any, fake_upstream: FakeUpstream
) -> None:
    client = make()
    fake_upstream.reply_text = REPLY
    client.stream()
    client.stream()
    first, second = (tuple(entry["peer"]) for entry in fake_upstream.requests)
    assert first == second

    fake_upstream.cut_stream_end = True  # `data: [DONE]`, then a reset instead of the body's end
    _, completion = client.stream()
    assert completion.content == REPLY


def test_a_moderation_result_comes_with_its_model(make: Any) -> None:
    result = make().moderate()

    assert result["model"] == "omni-moderation-latest"
    assert "flagged" in result


def test_a_kept_connection_idle_too_long_is_replaced(
    make: Any, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "IDLE_SECONDS", 0.3)
    client = make()
    for pause in (0.0, 0.0, 0.5):
        time.sleep(pause)
        client.complete()
    first, second, third = (tuple(entry["peer"]) for entry in fake_upstream.requests)
    assert first == second  # kept and reused
    assert third != second  # idle for longer than IDLE_SECONDS: a new connection


class _Canned(http.server.BaseHTTPRequestHandler):
    """Answers every POST with a canned completion and records the path of its request line
    (from a client that takes it for a forward proxy: the whole URL)."""

    seen: ClassVar[list[str]] = []
    proxy_auth: ClassVar[list[str | None]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(self.path)
        self.proxy_auth.append(self.headers.get("Proxy-Authorization"))
        body = json.dumps(
            {"model": "m", "choices": [{"message": {"role": "assistant", "content": "canned"}}]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize(
    ("variable", "proxy", "authorization"),
    [
        ("HTTP_PROXY", "http://{address}", None),
        ("HTTP_PROXY", "{address}", None),  # no scheme: http://
        ("ALL_PROXY", "http://{address}", None),
        ("HTTP_PROXY", "http://me:p%40ss@{address}", "Basic " + b64encode(b"me:p@ss").decode()),
    ],
)
def test_calls_go_through_the_proxy_the_environment_names(
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    proxy: str,
    authorization: str | None,
) -> None:
    _Canned.seen.clear()
    _Canned.proxy_auth.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, proxy.format(address=f"127.0.0.1:{server.server_port}"))
    model_url = "http://model.example:8000/v1"
    client = Client(OPENAI_BASE_URL=model_url)
    try:
        reply = client.complete()
    finally:
        client.close()
        server.shutdown()
    assert reply.content == "canned"
    assert _Canned.seen == [f"{model_url}/chat/completions"]
    assert _Canned.proxy_auth == [authorization]


def test_an_upstream_that_stops_reading_the_request_is_a_timeout() -> None:
    """A socket timeout while sending the body is a 504 like one while waiting for the answer."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    client = Client(OPENAI_BASE_URL=url, UPSTREAM_TIMEOUT="0.3")
    big = [{"role": "user", "content": "x" * 32_000_000}]  # more than the socket buffers hold
    try:
        with pytest.raises(UpstreamTimeout):
            client.complete(messages=big)
    finally:
        client.close()
        listener.close()


def test_tls_upstreams_are_verified_against_certifi_or_ssl_cert_file(tmp_path: Path) -> None:
    make_certificates(tmp_path)  # a private CA and a certificate for 127.0.0.1 it signed
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_port}/v1"

    def call(**env: str) -> str:
        client = Client(OPENAI_BASE_URL=url, **env)
        try:
            return client.complete().content
        finally:
            client.close()

    try:
        with pytest.raises(UpstreamError) as refused:  # certifi does not know this CA
            call()
        reply = call(SSL_CERT_FILE=str(tmp_path / "ca.crt"))
    finally:
        server.shutdown()
    assert "certificate verify failed" in repr(refused.value.__cause__).lower()
    assert reply == "canned"

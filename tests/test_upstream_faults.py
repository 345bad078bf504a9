"""Upstream failures become clear JSON errors and leave the history untouched."""

from __future__ import annotations

import http.server
import json
import socket
import ssl
import threading
import time
from base64 import b64encode
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar

import pytest
from flask.testing import FlaskClient

from chatproxy import upstream as upstream_module
from chatproxy.config import load_settings
from chatproxy.errors import UpstreamError, UpstreamTimeout
from chatproxy.upstream import Upstream
from tests.conftest import MakeClient
from tests.fake_upstream import FakeUpstream, Fault
from tests.redis_server import make_certificates

CONTEXT_TOO_LONG = "This model's maximum context length is 128000 tokens."

FAULTS = [
    # fault, status, code, expected Retry-After header (None = absent)
    (Fault.error(429, "slow", headers={"retry-after": "7"}), 503, "upstream_rate_limited", "7"),
    (Fault.error(429, headers={"retry-after-ms": "1500"}), 503, "upstream_rate_limited", "2"),
    (Fault.error(429), 503, "upstream_rate_limited", "5"),
    (Fault.error(429, "You exceeded your quota", code="insufficient_quota"), 502,
     "upstream_rejected", None),
    (Fault.error(500), 502, "upstream_error", None),
    (Fault.error(503), 502, "upstream_error", None),
    (Fault.error(401, "Incorrect API key provided: sk-test***-key"), 502, "upstream_auth", None),
    (Fault.error(403), 502, "upstream_auth", None),
    (Fault.error(400, CONTEXT_TOO_LONG, code="context_length_exceeded"), 400,
     "upstream_rejected", None),
    (Fault.error(404, "The model `nope` does not exist"), 502, "upstream_rejected", None),
    (Fault(drop=True), 502, "upstream_error", None),
    (Fault(delay=1.5), 504, "upstream_timeout", None),
    (Fault.non_json(), 502, "upstream_bad_response", None),
    (Fault(body="{not json", headers={"Content-Type": "application/json"}), 502,
     "upstream_bad_response", None),
    (Fault(body={"unexpected": True}), 502, "upstream_bad_response", None),
    (Fault(body={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": None}}]}),
     502, "upstream_bad_response", None),
]  # fmt: skip


@pytest.fixture
def client(make_client: MakeClient) -> FlaskClient:
    return make_client(UPSTREAM_TIMEOUT="0.5", UPSTREAM_MAX_RETRIES="0")


@pytest.mark.parametrize(("fault", "status", "code", "retry_after"), FAULTS)
def test_upstream_fault_maps_to_status_and_leaves_history_unchanged(
    client: FlaskClient,
    fake_upstream: FakeUpstream,
    fault: Fault,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    client.post("/c1/chat", data=json.dumps({"content": "before"}))
    before = client.get("/c1/chat").get_json()
    fake_upstream.reset()
    fake_upstream.script(fault)

    response = client.post("/c1/chat", data=json.dumps({"content": "during"}))

    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == code
    assert body["error"]
    assert response.headers.get("Retry-After") == retry_after
    assert len(fake_upstream.chat_requests()) == 1
    assert client.get("/c1/chat").get_json() == before
    assert "sk-test" not in response.get_data(as_text=True)


def test_rejection_passes_on_the_upstream_message(
    client: FlaskClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Fault.error(400, CONTEXT_TOO_LONG, code="context_length_exceeded"))

    response = client.post("/c1/chat", data=json.dumps({"content": "long"}))

    assert response.get_json()["error"] == CONTEXT_TOO_LONG


def test_upstream_failure_leaves_no_orphan_user_message(
    client: FlaskClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Fault.error(500))

    assert client.post("/c1/chat", data=json.dumps({"content": "lost?"})).status_code == 502
    assert client.get("/c1/chat").get_json() == []

    assert client.post("/c1/chat", data=json.dumps({"content": "again"})).status_code == 200
    assert client.get("/c1/chat").get_json()[0]["content"] == "again"


def test_bounded_retries_recover_from_a_transient_failure(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(UPSTREAM_MAX_RETRIES="1")
    fake_upstream.script(Fault.error(500))
    fake_upstream.reply_text = "recovered"

    response = client.post("/c1/chat", data=json.dumps({"content": "hi"}))

    assert response.status_code == 200
    assert response.get_json()["content"] == "recovered"
    assert len(fake_upstream.chat_requests()) == 2
    assert len(client.get("/c1/chat").get_json()) == 2


def test_missing_usage_is_estimated(client: FlaskClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.omit_usage = True
    fake_upstream.reply_text = "x" * 40

    tokens = client.post("/c1/chat", data=json.dumps({"content": "y" * 80})).get_json()["tokens"]

    assert tokens == {"prompt_tokens": 24, "completion_tokens": 10, "total_tokens": 34}


def test_unreachable_upstream_is_502_for_chat_and_moderation(make_client: MakeClient) -> None:
    client = make_client(OPENAI_BASE_URL="http://127.0.0.1:1/v1")

    for path in ("/c1/chat", "/mod"):
        response = client.post(path, data=json.dumps({"content": "hello"}))
        assert response.status_code == 502, path
        assert response.get_json()["code"] == "upstream_error"
    assert client.get("/c1/chat").get_json() == []


def test_the_client_keeps_a_connection_open_for_every_concurrent_call(
    fake_upstream: FakeUpstream,
) -> None:
    """More calls at once than a default keep-alive pool (urllib3 keeps 1, httpx 100) still
    reuse connections: a new one per call would be a TCP and TLS handshake each time."""
    settings = load_settings({"OPENAI_BASE_URL": fake_upstream.base_url, "GPT_API_KEY": "k"})
    upstream = Upstream.from_settings(settings)
    fake_upstream.delay = 0.3
    calls = 150

    def call(_: int) -> str:
        messages = [{"role": "user", "content": "hi"}]
        return upstream.complete(messages, model="gpt-4.1-mini", max_tokens=16).content

    try:
        with ThreadPoolExecutor(calls) as pool:
            for _ in range(2):
                assert all(list(pool.map(call, range(calls))))
    finally:
        upstream.close()
    peers = {tuple(entry["peer"]) for entry in fake_upstream.requests}
    assert len(fake_upstream.requests) == 2 * calls
    assert len(peers) <= calls  # the second round used the first round's connections


def test_calls_carry_the_key_organization_and_project(fake_upstream: FakeUpstream) -> None:
    settings = load_settings(
        {
            "OPENAI_BASE_URL": fake_upstream.base_url,
            "GPT_API_KEY": "sk-test-key",
            "OPENAI_ORG_ID": "org-7",
            "OPENAI_PROJECT_ID": "proj-9",
        }
    )
    upstream = Upstream.from_settings(settings)
    try:
        upstream.complete([{"role": "user", "content": "hi"}], model="gpt-4.1-mini", max_tokens=5)
        upstream.moderate("hello", model="omni-moderation-latest")
    finally:
        upstream.close()
    for request in fake_upstream.requests:
        headers = request["headers"]
        assert headers["authorization"] == "Bearer sk-test-key"
        assert headers["openai-organization"] == "org-7"
        assert headers["openai-project"] == "proj-9"
        assert headers["content-type"] == "application/json"


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
    monkeypatch: pytest.MonkeyPatch, variable: str, proxy: str, authorization: str | None
) -> None:
    _Canned.seen.clear()
    _Canned.proxy_auth.clear()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, proxy.format(address=f"127.0.0.1:{server.server_port}"))
    model_url = "http://model.example:8000/v1"
    settings = load_settings({"OPENAI_BASE_URL": model_url, "GPT_API_KEY": "k"})
    upstream = Upstream.from_settings(settings)
    try:
        reply = upstream.complete([{"role": "user", "content": "hi"}], model="m", max_tokens=5)
    finally:
        upstream.close()
        server.shutdown()
    assert reply.content == "canned"
    assert _Canned.seen == [f"{model_url}/chat/completions"]
    assert _Canned.proxy_auth == [authorization]


def test_an_upstream_that_stops_reading_the_request_is_a_timeout() -> None:
    """A socket timeout while sending the body is a 504 like one while waiting for the answer
    (urllib3 reports it as a ProtocolError, "Connection aborted.")."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    settings = load_settings(
        {"OPENAI_BASE_URL": url, "GPT_API_KEY": "k", "UPSTREAM_TIMEOUT": "0.3"}
    )
    upstream = Upstream.from_settings(settings)
    big = [{"role": "user", "content": "x" * 32_000_000}]  # more than the socket buffers hold
    try:
        with pytest.raises(UpstreamTimeout):
            upstream.complete(big, model="m", max_tokens=5)
    finally:
        upstream.close()
        listener.close()


def test_tls_upstreams_are_verified_against_certifi_or_ssl_cert_file(
    tmp_path: Path,
) -> None:
    make_certificates(tmp_path)  # a private CA and a certificate for 127.0.0.1 it signed
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Canned)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_port}/v1"
    messages = [{"role": "user", "content": "hi"}]

    def call(**env: str) -> str:
        settings = load_settings({"OPENAI_BASE_URL": url, "GPT_API_KEY": "k", **env})
        upstream = Upstream.from_settings(settings)
        try:
            return upstream.complete(messages, model="m", max_tokens=5).content
        finally:
            upstream.close()

    try:
        with pytest.raises(UpstreamError) as refused:  # certifi does not know this CA
            call()
        reply = call(SSL_CERT_FILE=str(tmp_path / "ca.crt"))
    finally:
        server.shutdown()
    assert "certificate verify failed" in repr(refused.value.__cause__).lower()
    assert reply == "canned"


def test_a_kept_connection_idle_too_long_is_replaced(
    fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(upstream_module, "IDLE_SECONDS", 0.3)
    settings = load_settings({"OPENAI_BASE_URL": fake_upstream.base_url, "GPT_API_KEY": "k"})
    upstream = Upstream.from_settings(settings)
    messages = [{"role": "user", "content": "hi"}]
    try:
        for pause in (0.0, 0.0, 0.5):
            time.sleep(pause)
            upstream.complete(messages, model="gpt-4.1-mini", max_tokens=5)
    finally:
        upstream.close()
    first, second, third = (tuple(entry["peer"]) for entry in fake_upstream.requests)
    assert first == second  # kept and reused
    assert third != second  # idle for longer than IDLE_SECONDS: a new connection

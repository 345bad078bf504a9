"""Security through the real server process: shared rate limits across workers, safe JSON logs."""

from __future__ import annotations

import json
import random
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import PasswordRedisServer, Reply, StartServer, http, server_env

GPT_KEY = "sk-e2e-SECRET-gpt-key"
WEB_KEY = "web-SECRET-0123456789abcdef"
OPS_KEY = "ops-SECRET-0123456789abcdef"
WRONG_KEY = "wrong-SECRET-0123456789abcdef"
PRIVATE_TEXT = "my private SECRET-diary entry"


def four_workers(
    proxy_env: dict[str, str], fake_upstream: FakeUpstream, **env: str
) -> dict[str, str]:
    """The environment of a server with four worker processes on the test's store."""
    store = {k: v for k, v in proxy_env.items() if k in ("REDIS_URL", "STORE_PATH")}
    return server_env(
        WORKERS="4", **store, GPT_API_KEY=GPT_KEY, OPENAI_BASE_URL=fake_upstream.base_url, **env
    )


@pytest.mark.parametrize("store_kind", ["redis", "sqlite"])
def test_rate_limit_holds_across_four_workers(
    start_server: StartServer, fake_upstream: FakeUpstream, proxy_env: dict[str, str]
) -> None:
    """Each key gets its limit from one address, however many requests another key sends."""
    limit, sent = 100, {WEB_KEY: 160, OPS_KEY: 240}
    server = start_server(
        four_workers(
            proxy_env,
            fake_upstream,
            PROXY_API_KEYS=f"web={WEB_KEY},ops={OPS_KEY}",
            RATE_LIMIT=f"{limit}/minute",
        )
    )
    keys = [key for key, count in sent.items() for _ in range(count)]
    random.Random(20).shuffle(keys)

    def get(n: int) -> tuple[str, Reply]:
        auth = {"Authorization": f"Bearer {keys[n]}"}
        return keys[n], http("GET", f"{server.url}/c{n % 7}/chat", headers=auth)

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(get, range(len(keys))))

    for key in sent:
        statuses = Counter(reply.status for sender, reply in replies if sender == key)
        assert set(statuses) <= {200, 429}, statuses
        assert limit * 0.95 <= statuses[200] <= limit * 1.05, (key, statuses)
    refused = next(reply for _, reply in replies if reply.status == 429)
    assert refused.json()["code"] == "rate_limited"
    assert refused.headers["RateLimit-Limit"] == str(limit)


@pytest.mark.parametrize("store_kind", ["redis", "sqlite"])
def test_rate_limit_per_address_holds_across_four_workers_over_every_route(
    start_server: StartServer, fake_upstream: FakeUpstream, proxy_env: dict[str, str]
) -> None:
    """Public pages, the spec, health checks and wrong keys all count against one address."""
    limit, sent = 100, 160
    server = start_server(
        four_workers(
            proxy_env,
            fake_upstream,
            PROXY_API_KEYS=f"web={WEB_KEY}",
            RATE_LIMIT_PER_ADDRESS=f"{limit}/minute",
            TRUSTED_PROXY_HOPS="1",
        )
    )
    guesser = {"X-Forwarded-For": "203.0.113.9"}
    wrong = {**guesser, "Authorization": f"Bearer {WRONG_KEY}"}
    calls = [("/", guesser), ("/openapi.json", guesser), ("/ui", guesser), ("/c1/chat", wrong)]

    def get(n: int) -> Reply:
        path, headers = calls[n % len(calls)]
        return http("GET", server.url + path, headers=headers)

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(get, range(sent)))

    statuses = Counter(reply.status for reply in replies)
    assert set(statuses) <= {200, 401, 429}, statuses
    assert limit * 0.95 <= statuses[200] + statuses[401] <= limit * 1.05, statuses
    refused = next(reply for reply in replies if reply.status == 429)
    assert "per client address" in refused.json()["error"]
    other = {"X-Forwarded-For": "203.0.113.10", "Authorization": f"Bearer {WEB_KEY}"}
    assert http("GET", f"{server.url}/c1/chat", headers=other).status == 200


def run_and_read_logs(
    start_server: StartServer, fake_upstream: FakeUpstream, tmp_path: Path, **env: str
) -> tuple[str, dict[str, int]]:
    """Serve a few requests (good, unauthorized, failing) and return the server's stderr."""
    guarded = PasswordRedisServer(tmp_path / "redis-pw").start()
    try:
        server = start_server(
            server_env(
                GPT_API_KEY=GPT_KEY,
                OPENAI_BASE_URL=fake_upstream.base_url,
                REDIS_URL=guarded.secret_url,
                PROXY_API_KEYS=f"web={WEB_KEY},ops={OPS_KEY}",
                ADMIN_KEYS="ops",
                LOG_LEVEL="DEBUG",
                UPSTREAM_MAX_RETRIES="0",
                **env,
            )
        )
        chat = f"{server.url}/diary/chat"
        statuses = {
            "ok": http(
                "POST",
                chat,
                {"content": PRIVATE_TEXT},
                headers={"Authorization": f"Bearer {WEB_KEY}"},
            ).status,
            "x_api_key": http("GET", chat, headers={"X-API-Key": OPS_KEY}).status,
            "wrong": http("GET", chat, headers={"Authorization": f"Bearer {WRONG_KEY}"}).status,
        }
        fake_upstream.script(Fault.error(500))
        statuses["upstream_down"] = http(
            "POST", chat, {"content": "again"}, headers={"X-API-Key": WEB_KEY}
        ).status
        server.stop()
        return server.stderr_text() + server.stdout_text(), statuses
    finally:
        guarded.stop()


def test_logs_are_json_lines_with_request_fields_and_no_secrets(
    start_server: StartServer, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    logs, statuses = run_and_read_logs(start_server, fake_upstream, tmp_path)

    assert statuses == {"ok": 200, "x_api_key": 200, "wrong": 401, "upstream_down": 502}
    entries = [json.loads(line) for line in logs.splitlines() if line.strip()]
    assert all({"severity", "message"} <= entry.keys() for entry in entries)
    requests = [e for e in entries if e.get("route", "/") != "/"]  # not the readiness probes
    # A line is written once its answer is sent, so two quick requests may log in either order.
    requests.sort(key=lambda e: e["httpRequest"]["status"])
    assert [e["httpRequest"]["status"] for e in requests] == [200, 200, 401, 502]
    turn = next(e for e in requests if e["httpRequest"]["requestMethod"] == "POST")
    assert turn["httpRequest"]["requestMethod"] == "POST"
    assert turn["httpRequest"]["requestUrl"] == "/diary/chat"
    assert turn["httpRequest"]["latency"].endswith("s")
    assert (turn["route"], turn["chat_id"], turn["tenant"]) == ("/<chat_id>/chat", "diary", "web")
    assert set(turn["tokens"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert requests[2]["error"] == "unauthorized"
    assert requests[3]["error"] == "upstream_error"
    for secret in (GPT_KEY, WEB_KEY, OPS_KEY, WRONG_KEY, PasswordRedisServer.password):
        assert secret not in logs
    assert "Bearer" not in logs
    assert PRIVATE_TEXT not in logs  # message text stays out of the logs by default


def test_message_text_is_logged_only_with_log_content(
    start_server: StartServer, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    logs, _ = run_and_read_logs(start_server, fake_upstream, tmp_path, LOG_CONTENT="1")

    turn = next(json.loads(line) for line in logs.splitlines() if PRIVATE_TEXT in line)
    assert turn["content"] == PRIVATE_TEXT
    assert turn["reply"]
    assert WEB_KEY not in logs


def test_a_streamed_turn_is_logged_once_it_has_been_sent_with_its_whole_duration(
    start_server: StartServer, fake_upstream: FakeUpstream, proxy_env: dict[str, str]
) -> None:
    fake_upstream.reply_text = "one two three four five six seven eight nine ten"
    fake_upstream.chunk_delay = 0.05  # the reply takes at least 0.45 s to stream
    server = start_server(server_env(**proxy_env))

    reply = http("POST", f"{server.url}/slow/chat", {"content": "hi", "stream": True})

    assert reply.status == 200
    assert b"event: done" in reply.body
    server.stop()  # the line is written after the last byte went out: it may trail the reply
    lines = [json.loads(line) for line in server.stderr_text().splitlines() if line.strip()]
    (turn,) = [e for e in lines if e.get("route") == "/<chat_id>/chat"]
    assert turn["stream"] is True
    assert float(turn["httpRequest"]["latency"].removesuffix("s")) >= 0.45


UNSTORED = {  # a stream whose reply nobody stores, and its body for a prompt of `text`
    "/v1/chat/completions": lambda text: {"messages": [{"role": "user", "content": text}]},
    "/v1/responses": lambda text: {"input": text, "store": False},
}


@pytest.mark.parametrize("store_kind", ["redis", "sqlite"])
@pytest.mark.parametrize("route", list(UNSTORED))
def test_a_stream_nobody_stores_is_cancelled_when_its_client_hangs_up_and_counted(
    start_server: StartServer, fake_upstream: FakeUpstream, proxy_env: dict[str, str], route: str
) -> None:
    """The server drops what is sent to a client that has gone: the proxy must notice, or it
    reads the reply to its end (the provider generating, and billing, all of it for no one).
    The stream is closed at the next chunk, and the tokens it was sent are counted as
    estimated (its usage would have come last)."""
    store = {k: v for k, v in proxy_env.items() if k in ("REDIS_URL", "STORE_PATH")}
    env = {"GPT_API_KEY": GPT_KEY, "OPENAI_BASE_URL": fake_upstream.base_url, **store}
    server = start_server(server_env(**env, TOKEN_BUDGET_PER_DAY="1000", WORKERS="1"))
    fake_upstream.usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    assert http("POST", f"{server.url}/c1/chat", {"content": "hi"}).status == 200  # 0, reply 1

    def budget_left() -> bool:  # regenerating a reply: refused after the budget is checked
        again = http("POST", f"{server.url}/c1/chat", {"parent": 1})
        assert again.status in (400, 429), again.body
        return again.status == 400

    assert budget_left()
    fake_upstream.reply_text = " ".join(["word"] * 40)
    fake_upstream.chunk_delay = 0.25  # 10 s to stream it all
    body = UNSTORED[route]("x" * 8000)  # about 2,000 tokens
    data = json.dumps({"model": "gpt-4.1-mini", **body, "stream": True}).encode()
    head = (
        f"POST {route} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(head.encode() + data)
        assert b"data: " in sock.recv(65536) + sock.recv(65536)  # the stream has begun

    deadline = time.monotonic() + 5
    while budget_left():
        assert time.monotonic() < deadline, "the stream was read on after its client left"
        time.sleep(0.1)

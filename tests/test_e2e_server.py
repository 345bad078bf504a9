"""End to end: the real functions-framework server process (gunicorn), spoken to over HTTP.

Each test starts `python -m functions_framework --target=main --source=<repo>/main.py` on a free
port with its own environment and `cwd=tmp_path` (so no `.env` of the repo is loaded), and talks
to it with the standard library's HTTP client. The stores and the upstream are real processes or
servers too: the session's redis-server and the fake OpenAI upstream from `conftest.py`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from harness.fake_upstream import FakeUpstream, Fault
from harness.redis_server import RedisServer
from harness.server_process import (
    READY_TIMEOUT,
    REDIS_PASSWORD,
    PasswordRedisServer,
    Reply,
    StartServer,
    http,
    launch,
    server_env,
)

API_KEY = "sk-e2e-SECRET-key"

# -- tests ------------------------------------------------------------------------------------


def test_server_process_serves_a_chat_through_redis_and_the_upstream(
    start_server: StartServer,
    redis_url: str,
    redis_server: RedisServer,
    fake_upstream: FakeUpstream,
) -> None:
    server = start_server(
        server_env(
            WORKERS="2",
            REDIS_URL=redis_url,
            OPENAI_BASE_URL=fake_upstream.base_url,
            GPT_API_KEY=API_KEY,
        )
    )
    chat_url = server.url + "/e2e-1/chat"

    first = http("POST", chat_url, {"content": "hello"})
    assert first.status == 200, first.body
    reply1 = first.json()
    assert reply1["role"] == "assistant"
    assert isinstance(reply1["content"], str)
    assert reply1["content"]
    tokens = reply1["tokens"]
    assert set(tokens) >= {"prompt_tokens", "completion_tokens", "total_tokens"}
    assert tokens["total_tokens"] == tokens["prompt_tokens"] + tokens["completion_tokens"] > 0

    second = http("POST", chat_url, {"content": "second"})
    assert second.status == 200, second.body
    reply2 = second.json()

    history = http("GET", chat_url)
    assert history.status == 200, history.body
    assert [(m["role"], m["content"]) for m in history.json()] == [
        ("user", "hello"),
        ("assistant", reply1["content"]),
        ("user", "second"),
        ("assistant", reply2["content"]),
    ]

    sent = fake_upstream.chat_requests()
    assert len(sent) == 2
    assert [(m["role"], m["content"]) for m in sent[1]["messages"]] == [
        ("user", "hello"),
        ("assistant", reply1["content"]),
        ("user", "second"),
    ]

    client = redis_server.client()
    try:
        items = client.hgetall("chat:{public:e2e-1}:items")  # item id -> its JSON
    finally:
        client.close()
    stored = [json.loads(items[str(n)]) for n in range(len(items))]
    assert [(m["id"], m["parent"], m["role"]) for m in stored] == [
        (0, None, "user"),
        (1, 0, "assistant"),
        (2, 1, "user"),
        (3, 2, "assistant"),
    ]
    assert [m["content"] for m in stored] == [
        "hello",
        reply1["content"],
        "second",
        reply2["content"],
    ]

    chats = [f"e2e-many-{i}" for i in range(20)]

    def converse(chat: str) -> Reply:
        return http("POST", f"{server.url}/{chat}/chat", {"content": f"hi from {chat}"})

    with ThreadPoolExecutor(max_workers=20) as pool:
        replies = list(pool.map(converse, chats))
    assert [r.status for r in replies] == [200] * 20, [r.body for r in replies if r.status != 200]
    for chat in chats:
        messages = http("GET", f"{server.url}/{chat}/chat").json()
        assert [(m["role"], m["content"]) for m in messages][:1] == [("user", f"hi from {chat}")]
        assert len(messages) == 2, (chat, messages)


def test_quickstart_answers_without_key_or_redis(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(server_env())

    curl = shutil.which("curl")
    if curl is not None:
        # The README's `curl -X POST localhost:PORT/demo/chat -d '{"content":"hi"}'`, plus
        # flags that only make the status readable and keep a developer's proxy out of it.
        quickstart = ["-X", "POST", f"localhost:{server.port}/demo/chat", "-d", '{"content":"hi"}']
        readable = ["-sS", "--noproxy", "*", "--max-time", "15", "-w", "\n%{http_code}"]
        done = subprocess.run(
            [curl, *readable, *quickstart],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        text, _, code = done.stdout.rpartition("\n")
        status, body = int(code), text.encode()
    else:
        answer = http(
            "POST",
            server.url + "/demo/chat",
            b'{"content":"hi"}',
            content_type="application/x-www-form-urlencoded",
        )
        status, body = answer.status, answer.body
    assert status == 200, body
    assert json.loads(body)["content"].startswith("[dev upstream]")

    health = http("GET", server.url + "/")
    assert health.status == 200, health.body
    info = health.json()
    assert info["upstream"] == "dev"
    assert info["store"] == "sqlite"
    assert info["notice"]

    assert "dev upstream" in server.stderr_text()
    assert (tmp_path / "chats.sqlite3").exists()


@pytest.mark.parametrize(
    ("variable", "values"),
    [
        ("REDIS_PORT", {"REDIS_HOST": "127.0.0.1", "REDIS_PORT": "abc"}),
        ("MAX_TOKENS", {"MAX_TOKENS": "0"}),
        ("OPENAI_BASE_URL", {"OPENAI_BASE_URL": "ftp://x"}),
    ],
    ids=["redis-port", "max-tokens", "base-url"],
)
def test_bad_configuration_stops_start_up_naming_the_variable(
    tmp_path: Path, variable: str, values: dict[str, str]
) -> None:
    server = launch(server_env(**values), tmp_path)
    try:
        returncode = server.process.wait(timeout=READY_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"server with bad {variable} kept running; stderr:\n{server.stderr_text()}")
    finally:
        server.stop()
    stderr = server.stderr_text()
    assert returncode != 0, stderr
    assert variable in stderr


def test_logs_never_contain_secrets(
    start_server: StartServer, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    guarded = PasswordRedisServer(tmp_path / "redis-pw").start()
    try:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis.from_url(guarded.url).ping()  # the password is really required

        server = start_server(
            server_env(
                GPT_API_KEY=API_KEY,
                OPENAI_BASE_URL=fake_upstream.base_url,
                REDIS_URL=guarded.secret_url,
                LOG_LEVEL="DEBUG",
                UPSTREAM_MAX_RETRIES="0",
            )
        )
        chat_url = server.url + "/secret-chat/chat"
        health = http("GET", server.url + "/")
        ok = http("POST", chat_url, {"content": "hello"})
        fake_upstream.script(Fault.error(500))
        failed = http("POST", chat_url, {"content": "this one fails upstream"})
        bad_body = http("POST", chat_url, b"{not json")
        history = http("GET", chat_url)
        server.stop()  # flush and close its output before reading it
    finally:
        guarded.stop()

    assert health.status == 200, health.body
    assert health.json()["store"] == "redis"
    assert ok.status == 200, ok.body
    assert failed.status == 502, failed.body
    assert bad_body.status == 400, bad_body.body
    assert history.status == 200, history.body
    assert len(history.json()) == 2  # the failed turn stored nothing

    logs = {"stdout": server.stdout_text(), "stderr": server.stderr_text()}
    assert "chatproxy ready" in logs["stderr"]  # the logs checked are the real ones
    for name, text in logs.items():
        assert API_KEY not in text, f"the API key leaked into {name}"
        assert REDIS_PASSWORD not in text, f"the Redis password leaked into {name}"


def test_unknown_path_and_wrong_method_are_json(
    start_server: StartServer, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    server = start_server(
        server_env(
            GPT_API_KEY=API_KEY,
            OPENAI_BASE_URL=fake_upstream.base_url,
            STORE_PATH=str(tmp_path / "chats.sqlite3"),
        )
    )

    unknown = http("GET", server.url + "/nope/nope/nope")
    assert unknown.status == 404
    assert unknown.headers.get_content_type() == "application/json"
    assert "error" in unknown.json()

    wrong_method = http("GET", server.url + "/mod")
    assert wrong_method.status == 405
    assert wrong_method.headers["Allow"] == "POST"
    assert wrong_method.headers.get_content_type() == "application/json"
    assert "error" in wrong_method.json()

    robots = http("GET", server.url + "/robots.txt")
    assert robots.status == 404
    assert robots.headers.get_content_type() == "application/json"
    assert "error" in robots.json()

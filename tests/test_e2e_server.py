"""End to end: the real functions-framework server process (gunicorn), spoken to over HTTP.

Each test starts `python -m functions_framework --target=main --source=<repo>/main.py` on a free
port with its own environment and `cwd=tmp_path` (so no `.env` of the repo is loaded), and talks
to it with the standard library's HTTP client. The stores and the upstream are real processes or
servers too: the session's redis-server and the fake OpenAI upstream from `conftest.py`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import Message as Headers
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.conftest import CONFIG_VARS, MAIN
from tests.fake_upstream import FakeUpstream, Fault
from tests.redis_server import RedisServer

READY_TIMEOUT = 20.0
STOP_GRACE = 5.0
API_KEY = "sk-e2e-SECRET-key"
REDIS_PASSWORD = "hunter2SECRETpw"

# The HTTP client ignores any proxy of the developer's environment: every server here is local.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- HTTP client ------------------------------------------------------------------------------


@dataclass
class Reply:
    """One HTTP answer: status, headers and raw body."""

    status: int
    headers: Headers
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    content_type: str = "application/json",
    timeout: float = 15.0,
) -> Reply:
    """Send one request; an HTTP error status is a `Reply` too, not an exception."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", content_type)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return Reply(exc.code, exc.headers, exc.read())


# -- the server process -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(**values: str) -> dict[str, str]:
    """This process's environment without any of the proxy's variables, plus `values`."""
    env = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(values)
    return env


@dataclass
class Server:
    """One running `functions_framework` process and the files its output goes to."""

    process: subprocess.Popen[bytes]
    port: int
    workdir: Path
    stdout_path: Path = field(init=False)
    stderr_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.stdout_path = self.workdir / f"server-{self.port}.stdout"
        self.stderr_path = self.workdir / f"server-{self.port}.stderr"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll `GET /` until the server answers anything over HTTP."""
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                pytest.fail(
                    f"server exited with {self.process.returncode} before it was ready;"
                    f" stderr:\n{self.stderr_text()}"
                )
            try:
                http("GET", self.url + "/", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"server not ready after {timeout} s; stderr:\n{self.stderr_text()}"
                    )
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL (to its process group, i.e. its workers too) after 5 s."""
        process = self.process
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_GRACE)


def launch(env: dict[str, str], workdir: Path) -> Server:
    """Start the server process (without waiting for it) in `workdir`."""
    port = free_port()
    command = [
        sys.executable, "-m", "functions_framework", "--target=main", f"--source={MAIN}",
        "--host=127.0.0.1", f"--port={port}",
    ]  # fmt: skip
    stdout = (workdir / f"server-{port}.stdout").open("wb")
    stderr = (workdir / f"server-{port}.stderr").open("wb")
    with stdout, stderr:
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group, so teardown can reach the workers
        )
    return Server(process, port, workdir)


StartServer = Callable[[dict[str, str]], Server]


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """`start_server(env) -> Server`: a ready server in tmp_path, stopped at teardown."""
    servers: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        server = launch(env, tmp_path)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


class PasswordRedisServer(RedisServer):
    """A dedicated redis-server that requires a password once started."""

    password = REDIS_PASSWORD

    def start(self) -> PasswordRedisServer:
        super().start()
        client = redis.Redis.from_url(self.url)
        client.config_set("requirepass", self.password)
        client.close()
        return self

    @property
    def secret_url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"


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
            THREADS="4",
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
        assert client.llen("chat:{public:e2e-1}:msgs") == 4
    finally:
        client.close()

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

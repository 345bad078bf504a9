"""The real server process for end-to-end tests: start, wait, talk to it over HTTP, stop.

`launch(env, workdir)` starts `python -m functions_framework --target=main --source=<repo>/main.py`
on a free port with `cwd=workdir` (so no `.env` of the repo is loaded); `http()` is a small client
on the standard library; conftest's `start_server` fixture stops every server at teardown.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message as Headers
from pathlib import Path
from typing import Any

import pytest
import redis

from harness.redis_server import RedisServer

ROOT = Path(__file__).resolve().parents[1]
MAIN = ROOT / "main.py"
READY_TIMEOUT = 20.0
STOP_GRACE = 5.0
REDIS_PASSWORD = "hunter2SECRETpw"

# Every variable the proxy reads; cleared before each test so a developer's shell cannot leak in.
CONFIG_VARS = (
    "GPT_API_KEY", "OPENAI_BASE_URL", "MODEL", "VISION_MODEL", "MODERATION_MODEL", "MAX_TOKENS",
    "UPSTREAM_TIMEOUT", "UPSTREAM_MAX_RETRIES", "REDIS_URL", "REDIS_HOST", "REDIS_PORT",
    "REDIS_PASSWORD", "REDIS_SSL", "REDIS_TIMEOUT", "STORE_PATH", "MESSAGES_LENGTH",
    "EXPIRE_HOURS", "SYSTEM_PROMPT", "MAX_BODY_BYTES", "LOG_LEVEL", "K_SERVICE",
    "OPENAI_API_KEY", "REDIS_CA_CERT", "REDIS_CLUSTER", "REQUEST_TIMEOUT", "TURN_WAIT_SECONDS",
    "TURN_LEASE_SECONDS", "PROXY_API_KEYS", "ADMIN_KEYS", "RATE_LIMIT", "RATE_LIMIT_PER_ADDRESS",
    "TOKEN_BUDGET_PER_DAY", "MAX_CONTENT_CHARS", "MAX_CHAT_MESSAGES", "ALLOWED_ORIGINS",
    "LOG_CONTENT", "LOG_EXECUTION_ID",
    "TRUSTED_PROXY_HOPS", "CONTEXT_TOKENS", "ALLOWED_MODELS", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID",
    "REDIS_MAX_CONNECTIONS", "SSL_CERT_FILE", "COMPACTION", "COMPACTION_MODEL",
    "COMPACTION_THRESHOLD", "COMPACTION_SUMMARY_TOKENS",
)  # fmt: skip

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
    headers: dict[str, str] | None = None,
) -> Reply:
    """Send one request; an HTTP error status is a `Reply` too, not an exception."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
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


def launch(env: dict[str, str], workdir: Path, source: Path = MAIN, target: str = "main") -> Server:
    """Start the server process (without waiting for it) in `workdir`; it serves the function
    `target` of the file `source`."""
    port = free_port()
    command = [
        sys.executable, "-m", "functions_framework", f"--target={target}", f"--source={source}",
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

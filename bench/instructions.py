"""Count the instructions a turn costs (valgrind's callgrind), which other load does not change.

The timed rows of `make bench` swing with the machine: on a shared 2-core VM the same run can
be twice as slow a minute later. The number of instructions a turn executes does not, so this
counts them for the proxy and for the lean handler (`lean_handler.py`, the design's floor):

- `server`: the Python process that serves the turn: functions-framework's app called in
  process, without a server (the server's share is left out): the proxy's and the coroutine
  handler's ASGI app driven on one uvloop event loop, the lean handler's Flask app through
  Flask's test client;
- `redis`: redis-server, while those turns run.

Each count is (a run of WARM + TURNS turns - a run of WARM turns) / TURNS (REDIS_TURNS for
redis-server), on one chat, the upstream answering at once, PYTHONHASHSEED fixed (the hash seed
alone moves a turn by up to 4%).
A streamed turn is counted whole, to its last event.

    python -m bench.instructions          # print the counts as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from harness.server_process import server_env

ROOT = Path(__file__).resolve().parents[1]
WARM = 20
TURNS = 40
REDIS_TURNS = 200  # the client runs at full speed there: more turns, less of Redis's own timer
COLLECTED = re.compile(r"Collected : (\d+)")
CASES = {  # name: (source, streamed)
    "proxy": ("main.py", False),
    "lean": ("bench/lean_handler.py", False),
    "coroutine": ("bench/coroutine_handler.py", False),
    "proxy_stream": ("main.py", True),
    "lean_stream": ("bench/lean_handler.py", True),
    "coroutine_stream": ("bench/coroutine_handler.py", True),
}


def available() -> bool:
    """Whether valgrind is installed (it is not a dependency of the project)."""
    return shutil.which("valgrind") is not None


def count_all(upstream_url: str, redis_url: str, workdir: Path) -> dict[str, dict[str, float]]:
    """Instructions per turn of every case, in the server process and in redis-server."""
    counts: dict[str, dict[str, float]] = {}
    for name, (source, streamed) in CASES.items():
        env = _env(upstream_url, redis_url, name, source, streamed)
        runs = [_under_callgrind(_turns(n), env, workdir / f"{name}-{n}") for n in (0, TURNS)]
        server = [_wait(run) for run in runs]  # the two runs side by side: one per core
        redis = [_redis_count(upstream_url, name, n, workdir) for n in (0, REDIS_TURNS)]
        counts[name] = {
            "server": (server[1] - server[0]) / TURNS,
            "redis": (redis[1] - redis[0]) / REDIS_TURNS,
        }
    return counts


def _turns(n: int) -> list[str]:
    return [sys.executable, "-m", "bench.instructions", "--turns", str(WARM + n)]


def _env(
    upstream_url: str, redis_url: str, case: str, source: str, streamed: bool
) -> dict[str, str]:
    return server_env(  # this environment without the proxy's own settings, plus these
        PYTHONHASHSEED="0",
        OPENAI_BASE_URL=upstream_url,
        GPT_API_KEY="bench-key",
        REDIS_URL=redis_url,
        LOG_LEVEL="INFO",
        BENCH_CASE=case,
        BENCH_SOURCE=source,
        BENCH_STREAM="1" if streamed else "",
    )


def _under_callgrind(
    command: list[str], env: dict[str, str], out: Path
) -> tuple[subprocess.Popen[bytes], Path]:
    log = out.with_suffix(".log")
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"]
    process = subprocess.Popen(
        [*valgrind, *command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    return process, log


def _wait(run: tuple[subprocess.Popen[bytes], Path]) -> int:
    process, log = run
    if process.wait(timeout=600) != 0:
        raise RuntimeError(f"a counted run failed: {log.read_text()[-2000:]}")
    found = COLLECTED.search(log.read_text())
    if found is None:
        raise RuntimeError(f"callgrind printed no count: {log.read_text()[-2000:]}")
    return int(found.group(1))


def _redis_count(upstream_url: str, case: str, n: int, workdir: Path) -> int:
    """Instructions of a redis-server under callgrind while WARM + n turns run against it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = Path(tempfile.mkdtemp(dir=workdir))
    server = ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"]
    run = _under_callgrind([*server, "--dir", str(data)], dict(os.environ), data / "redis")
    try:
        _ping(port)
        env = _env(upstream_url, f"redis://127.0.0.1:{port}/0", case, *CASES[case])
        subprocess.run(_turns(n), cwd=ROOT, env=env, check=True, capture_output=True)
        _command(port, b"*2\r\n$8\r\nSHUTDOWN\r\n$6\r\nNOSAVE\r\n")
    except BaseException:
        run[0].kill()
        raise
    return _wait(run)


def _ping(port: int) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            _command(port, b"*1\r\n$4\r\nPING\r\n")
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _command(port: int, command: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=30) as connection:
        connection.sendall(command)
        connection.recv(64)


def run_turns(total: int) -> None:
    """Serve `total` turns of one chat in this process (the child under callgrind)."""
    sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    from flask import Flask
    from functions_framework import create_app

    app = create_app(target="main", source=os.environ["BENCH_SOURCE"])
    streamed = bool(os.environ.get("BENCH_STREAM"))
    path = f"/instructions-{os.environ['BENCH_CASE']}-{total}/chat"  # one chat per run
    bodies = []
    for n in range(total):
        body: dict[str, Any] = {"content": f"Turn {n}: what is Redis?"}
        if streamed:
            body["stream"] = True
        bodies.append(json.dumps(body).encode())
    if isinstance(app, Flask):
        client = app.test_client()
        for n, body_bytes in enumerate(bodies):
            answer = client.post(
                path, data=body_bytes, content_type="application/json", buffered=True
            )
            _check(n, answer.status_code, answer.data)
        return
    import uvloop

    async def serve_all() -> None:
        for n, body_bytes in enumerate(bodies):
            _check(n, *await _asgi_post(app, path, body_bytes))

    uvloop.run(serve_all())


def _check(n: int, status: int, body: bytes) -> None:
    if status != 200:
        raise SystemExit(f"turn {n} answered {status}: {body[:300]!r}")


async def _asgi_post(app: Any, path: str, body: bytes) -> tuple[int, bytes]:
    """POST `body` to an ASGI app as a server would hand it over; return the status and body."""
    import asyncio

    answered = asyncio.Event()
    sent = False
    status = 0
    chunks: list[bytes] = []

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                answered.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
        "state": {},
    }
    await app(scope, receive, send)
    return status, b"".join(chunks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, help="serve this many turns (the counted child)")
    args = parser.parse_args()
    if args.turns is not None:
        run_turns(args.turns)
        return
    sys.path.insert(0, str(ROOT))
    from bench.rig import Upstream
    from harness.redis_server import RedisServer

    with tempfile.TemporaryDirectory(prefix="chatproxy-instructions-") as tmp:
        redis = RedisServer(Path(tmp) / "redis").start()
        upstream = Upstream(0.0)
        try:
            print(json.dumps(count_all(upstream.url, redis.url, Path(tmp)), indent=2))
        finally:
            upstream.stop()
            redis.stop()


if __name__ == "__main__":
    main()

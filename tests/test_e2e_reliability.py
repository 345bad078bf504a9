"""End to end under stress: the real server process (gunicorn and uvicorn), a real Redis, the fake
upstream.

* many clients on one chat, across worker processes: every turn is serialized, sees
  the whole previous history and is stored exactly once, in order;
* Redis killed mid-load: quick 503s while it is down, recovery by itself once it is back (AOF),
  and every acknowledged turn kept exactly once;
* a client that hangs up mid-turn: the turn is still answered and stored once;
* a turn cut by a Redis outage does not keep its chat locked once Redis is back;
* a worker told to stop while a stream whose client left is still being read stores it first.

The server-process helpers (`launch`, `server_env`, `http`, ...) come from `test_e2e_server`.
"""

from __future__ import annotations

import json
import random
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from harness.fake_upstream import FakeUpstream
from harness.redis_server import RedisServer
from harness.server_process import Reply, Server, http, launch, server_env

API_KEY = "sk-x"
LONG = 90.0  # client timeout: generous, the server bounds every request itself
HOT_CLIENTS = 50
HOT_MESSAGES = 10
COLD_CHATS = 100
COLD_THREADS = 10
HOT_QUESTION = re.compile(r"c\d+-m\d+")

StartServer = Callable[..., Server]


@pytest.fixture
def serve(tmp_path: Path, fake_upstream: FakeUpstream) -> Iterator[StartServer]:
    """`serve(**env) -> Server`: a ready server on the fake upstream, stopped at teardown."""
    servers: list[Server] = []

    def start(**values: str) -> Server:
        env = {"GPT_API_KEY": API_KEY, "OPENAI_BASE_URL": fake_upstream.base_url, **values}
        server = launch(server_env(**env), tmp_path)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


def post(server: Server, chat: str, content: str, timeout: float = LONG) -> Reply:
    return http("POST", f"{server.url}/{chat}/chat", {"content": content}, timeout=timeout)


def history(server: Server, chat: str) -> list[tuple[str, str]]:
    answer = http("GET", f"{server.url}/{chat}/chat", timeout=LONG)
    assert answer.status == 200, answer.body
    return [(m["role"], m["content"]) for m in answer.json()]


def raw_post(server: Server, path: str, body: dict[str, object]) -> bytes:
    """The bytes of a POST of `body` as JSON, for a client that hangs up on its own socket."""
    data = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


def assert_turns_paired(chat: str, messages: list[tuple[str, str]]) -> None:
    """User, its reply, user, its reply...: each reply answers the question right before it."""
    assert len(messages) % 2 == 0, (chat, messages[-3:])
    for index in range(0, len(messages), 2):
        (role_q, question), (role_a, answer) = messages[index], messages[index + 1]
        assert (role_q, role_a) == ("user", "assistant"), (chat, index, messages[index : index + 2])
        assert f"You said: {question}." in answer, (chat, index, question, answer)


# -- 1. one hot chat under 50 concurrent clients --------------------------------------------


def test_turns_on_one_chat_are_serialized_across_workers(
    serve: StartServer,
    redis_url: str,
    fake_upstream: FakeUpstream,
) -> None:
    fake_upstream.delay = 0.002
    server = serve(
        WORKERS="4",
        MESSAGES_LENGTH="1000",
        TURN_WAIT_SECONDS="60",
        REQUEST_TIMEOUT="90",
        UPSTREAM_MAX_RETRIES="0",
        REDIS_URL=redis_url,
    )

    def hot_client(client: int) -> list[tuple[str, Reply]]:
        sent = []
        for i in range(HOT_MESSAGES):
            question = f"c{client}-m{i}"
            sent.append((question, post(server, "hot", question)))
        return sent

    def cold_traffic(thread: int) -> list[tuple[str, Reply]]:
        return [
            (f"cold-{j}", post(server, f"cold-{j}", f"cold message {j}"))
            for j in range(thread, COLD_CHATS, COLD_THREADS)
        ]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=HOT_CLIENTS + COLD_THREADS) as pool:
        hot_jobs = [pool.submit(hot_client, c) for c in range(HOT_CLIENTS)]
        cold_jobs = [pool.submit(cold_traffic, t) for t in range(COLD_THREADS)]
        hot = [job.result() for job in hot_jobs]
        cold = [pair for job in cold_jobs for pair in job.result()]
    elapsed = time.monotonic() - started
    turns = HOT_CLIENTS * HOT_MESSAGES + COLD_CHATS
    print(
        f"\n[serialized] {turns} turns ({HOT_CLIENTS * HOT_MESSAGES} on one chat) in"
        f" {elapsed:.1f} s = {turns / elapsed:.0f} turns/s"
    )

    failed = [
        (what, reply.status, reply.body[:200])
        for what, reply in [pair for sent in hot for pair in sent] + cold
        if reply.status != 200
    ]
    if failed:
        print(f"[serialized] {len(failed)} POSTs failed, e.g. {failed[:5]}")
    assert failed == []

    # The stored history: every acknowledged question exactly once, each followed by its reply.
    stored = history(server, "hot")
    assert len(stored) == 2 * HOT_CLIENTS * HOT_MESSAGES
    assert_turns_paired("hot", stored)
    questions = [content for _, content in stored[::2]]
    acknowledged = {question for sent in hot for question, _ in sent}
    assert Counter(questions) == Counter(acknowledged)
    position = {question: index for index, question in enumerate(questions)}
    for client, sent in enumerate(hot):
        order = [position[question] for question, _ in sent]
        assert order == sorted(order), (client, order)
        for question, reply in sent:  # the client got the reply that was stored for it
            assert reply.json()["content"] == stored[2 * position[question] + 1][1]

    # What the upstream saw: turn k carried exactly the 2k messages stored before it.
    seen = []
    for body in fake_upstream.chat_requests():
        messages = [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]
        if HOT_QUESTION.fullmatch(messages[-1][1]):
            seen.append(messages)
    assert len(seen) == HOT_CLIENTS * HOT_MESSAGES
    seen.sort(key=len)
    for k, messages in enumerate(seen):
        assert len(messages) - 1 == 2 * k, (k, len(messages))
        assert messages[:-1] == stored[: 2 * k], k
        assert messages[-1] == stored[2 * k], k

    for j in range(COLD_CHATS):
        messages = history(server, f"cold-{j}")
        assert len(messages) == 2, (j, messages)
        assert_turns_paired(f"cold-{j}", messages)
        assert messages[0] == ("user", f"cold message {j}")


# -- 2. Redis killed under load ----------------------------------------------------------------


@dataclass
class Attempt:
    chat: str
    content: str
    started: float
    took: float
    status: int | str  # an exception's name when there was no HTTP answer
    code: str | None = None
    retry_after: str | None = None
    reply: str | None = None


def test_redis_outage_gives_503_then_recovers_with_every_acknowledged_turn_kept(
    serve: StartServer, tmp_path: Path
) -> None:
    store = RedisServer(
        tmp_path / "redis-aof", appendonly=True, extra_args=["--appendfsync", "always"]
    ).start()
    try:
        # Default lease and wait: a turn cut by the crash must not leave its chat locked once
        # Redis is back (its release is retried), or the load after the restart would get 409s.
        server = serve(
            REDIS_URL=store.url,
            REDIS_TIMEOUT="0.5",
            WORKERS="2",
            UPSTREAM_MAX_RETRIES="0",
        )
        attempts: list[Attempt] = []
        lock = threading.Lock()
        stop = threading.Event()

        def load(thread: int) -> None:
            rng = random.Random(thread)
            n = 0
            while not stop.is_set():
                chat, content = f"out-{rng.randrange(20)}", f"t{thread}-n{n}"
                n += 1
                started = time.monotonic()
                try:
                    reply = post(server, chat, content, timeout=30)
                except OSError as exc:
                    attempt = Attempt(
                        chat, content, started, time.monotonic() - started, type(exc).__name__
                    )
                else:
                    attempt = Attempt(
                        chat, content, started, time.monotonic() - started, reply.status
                    )
                    if reply.status == 200:
                        attempt.reply = reply.json()["content"]
                    else:
                        attempt.code = json.loads(reply.body).get("code")
                        attempt.retry_after = reply.headers.get("Retry-After")
                with lock:
                    attempts.append(attempt)
                if attempt.status != 200:
                    time.sleep(0.05)

        threads = [threading.Thread(target=load, args=(t,)) for t in range(8)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(1.0)
            killed = time.monotonic()
            store.stop()
            time.sleep(2.0)
            store.start()  # the same port and directory: the AOF is loaded again
            restarted = time.monotonic()
            time.sleep(2.0)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)

        by_status = Counter(a.status for a in attempts)
        down = [a for a in attempts if a.status == 503]
        latencies = sorted(a.took for a in down)
        print(
            f"\n[outage] {len(attempts)} POSTs: {dict(by_status)};"
            f" 503 latency max {max(latencies, default=0):.3f} s,"
            f" median {latencies[len(latencies) // 2] if latencies else 0:.3f} s;"
            f" redis down for {restarted - killed:.2f} s"
        )
        assert set(by_status) <= {200, 503}, [a for a in attempts if a.status not in (200, 503)]
        for attempt in down:
            assert attempt.code == "store_unavailable", attempt
            assert attempt.retry_after is not None, attempt
            assert attempt.took < 2.0, attempt
        assert any(killed <= a.started < restarted for a in down)
        assert any(a.started >= restarted and a.status == 200 for a in attempts)

        stored: dict[str, list[tuple[str, str]]] = {
            f"out-{i}": history(server, f"out-{i}") for i in range(20)
        }
        for chat, messages in stored.items():
            assert_turns_paired(chat, messages)
            duplicated = [q for q, n in Counter(messages[::2]).items() if n > 1]
            assert duplicated == [], (chat, duplicated)
        for attempt in attempts:
            if attempt.status == 200:
                messages = stored[attempt.chat]
                assert ("user", attempt.content) in messages, attempt
                answer = messages[messages.index(("user", attempt.content)) + 1]
                assert answer == ("assistant", attempt.reply), attempt
    finally:
        store.stop()


# -- 3. a client that hangs up mid-turn ---------------------------------------------------------


def test_client_disconnect_mid_turn_still_stores_the_turn_once(
    serve: StartServer, redis_url: str, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.delay = 1.0
    server = serve(WORKERS="1", REDIS_URL=redis_url, UPSTREAM_MAX_RETRIES="0")

    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(raw_post(server, "/gone/chat", {"content": "are you still there?"}))
    # hung up before the reply (the upstream takes 1 s)

    deadline = time.monotonic() + 10
    while len(messages := history(server, "gone")) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # anything stored twice or answered twice would show by now
    messages = history(server, "gone")
    assert len(messages) == 2, messages
    assert messages[0] == ("user", "are you still there?")
    assert_turns_paired("gone", messages)
    assert len(fake_upstream.chat_requests()) == 1


# -- 4. the turn lock a Redis outage leaves behind ----------------------------------------------


def test_a_turn_cut_by_a_redis_outage_does_not_keep_its_chat_locked(
    serve: StartServer, fake_upstream: FakeUpstream, tmp_path: Path
) -> None:
    store = RedisServer(
        tmp_path / "redis-aof", appendonly=True, extra_args=["--appendfsync", "always"]
    ).start()
    try:
        server = serve(
            REDIS_URL=store.url,
            REDIS_TIMEOUT="0.5",
            WORKERS="1",
            UPSTREAM_MAX_RETRIES="0",
            REQUEST_TIMEOUT="20",  # so the default lease is 25 s
            TURN_WAIT_SECONDS="3",
        )
        fake_upstream.delay = 1.5
        with ThreadPoolExecutor(max_workers=1) as pool:
            cut = pool.submit(post, server, "blip", "cut by the outage", 30)
            deadline = time.monotonic() + 10
            while not fake_upstream.chat_requests():  # the turn holds the lock now
                if time.monotonic() > deadline:
                    pytest.fail("the turn never reached the upstream")
                time.sleep(0.02)
            store.stop()
            first = cut.result()
        if first.status != 503 or first.json().get("code") != "store_unavailable":
            pytest.fail(f"expected 503 store_unavailable, got {first.status} {first.body!r}")
        store.start()  # Redis is back, with everything it had (AOF)
        fake_upstream.delay = 0.0

        started = time.monotonic()
        again = post(server, "blip", "after the outage", 30)
        took = time.monotonic() - started
        client = store.client()
        try:
            lease_left = client.pttl("chat:{public:blip}:lock")
        finally:
            client.close()
        print(
            f"\n[orphaned lock] next message: {again.status} after {took:.1f} s;"
            f" the lock's lease still has {lease_left / 1000:.1f} s"
        )
        assert again.status == 200, (again.status, again.body, f"lock pttl {lease_left} ms")
        assert history(server, "blip") == [
            ("user", "after the outage"),
            ("assistant", again.json()["content"]),
        ]
    finally:
        store.stop()


# -- 4. a worker told to stop while a stream whose client left is still being read ------------


def test_a_worker_told_to_stop_first_stores_the_stream_its_client_left(
    serve: StartServer, redis_url: str, fake_upstream: FakeUpstream
) -> None:
    """SIGTERM a second before a streamed turn ends, its client gone after the first word: the
    server's graceful stop waits for the turn, which is stored whole."""
    reply = "one two three four five six seven eight nine ten"
    fake_upstream.reply_text = reply
    fake_upstream.chunk_delay = 0.1
    server = serve(WORKERS="1", REDIS_URL=redis_url, UPSTREAM_MAX_RETRIES="0")
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(raw_post(server, "/gone/chat", {"content": "bye", "stream": True}))
        received = b""
        while b"event: delta" not in received:
            received += sock.recv(4096)
    # The client is gone after the first word; the reply has nine more to come.

    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=15)

    store = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        items = store.hgetall("chat:{public:gone}:items")  # item id -> its JSON
    finally:
        store.close()
    stored = [json.loads(items[str(n)]) for n in range(len(items))]
    assert [(m["id"], m["parent"], m["role"], m["content"]) for m in stored] == [
        (0, None, "user", "bye"),
        (1, 0, "assistant", reply),
    ]

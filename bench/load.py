"""Load generation: closed loops of client threads, each on its own chat, and pairs of turns
timed through a server and straight to its upstream."""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.client import Client
from bench.rig import Upstream
from harness.server_process import Server

MODEL = "gpt-4.1-mini"  # the proxy's default MODEL
MAX_TOKENS = 500  # the proxy's default MAX_TOKENS
WINDOW = 20  # the proxy's default MESSAGES_LENGTH
WARMUP_PAIRS = 20  # turns of targets 0 and 1 not counted
BLOCK_PAIRS = 25  # rows 1 and 7: the proxy and the floors take turns in blocks of this many
REWARM_PAIRS = 5  # uncounted pairs at the start of each block after the first


@dataclass
class Load:
    """What a closed-loop load of `clients` threads did in `duration` seconds."""

    clients: int
    duration: float
    latencies: list[float]
    errors: int
    peak_memory: tuple[int, int] = (0, 0)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.duration


def closed_loop(
    base_url: str,
    clients: int,
    duration: float,
    warmup: float = 1.0,
    sample: Callable[[], tuple[int, int]] | None = None,
    stagger: float = 0.0,
    think: float = 0.0,
) -> Load:
    """`clients` threads, each on its own chat and connection, POST turns back to back.

    Client `n` starts after `n / clients * stagger` seconds: with `stagger` = the upstream's
    latency, turns arrive evenly, as from independent users, instead of all clients moving in
    lockstep (one burst of every client's turn per upstream period). Before each turn a client
    waits a random 0 to `think` seconds, as a user reads and types; with no wait at all, clients
    that were slowed once catch up with the next ones and move on together as a platoon, which
    measures the platoon. Turns that start in the first `warmup` seconds are not counted; then
    the window of `duration` seconds counts the turns that started in it.
    """
    start_at = time.perf_counter() + warmup
    stop_at = start_at + duration
    lock = threading.Lock()
    latencies: list[float] = []
    errors = [0]
    peak = [0, 0]

    def worker(n: int) -> None:
        client = Client(base_url)
        chat = f"load-{uuid.uuid4().hex[:8]}-{n}"
        turn = 0
        pauses = random.Random(n)
        time.sleep(n / clients * stagger)
        while time.perf_counter() < stop_at:
            if think:
                time.sleep(pauses.uniform(0, think))
            began = time.perf_counter()
            if began >= stop_at:
                break
            turn += 1
            ok, elapsed = post_turn(client, chat, f"Turn {turn} of client {n}: what is Redis?")
            if began >= start_at:
                with lock:
                    if ok:
                        latencies.append(elapsed)
                    else:
                        errors[0] += 1
        client.close()

    def sampler() -> None:
        while time.perf_counter() < stop_at and sample is not None:
            if time.perf_counter() >= start_at:
                peak[:] = map(max, peak, sample())
            time.sleep(0.25)

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    threads.append(threading.Thread(target=sampler, daemon=True))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=duration + warmup + 120)
    return Load(clients, duration, latencies, errors[0], (peak[0], peak[1]))


def post_turn(client: Client, chat: str, content: str) -> tuple[bool, float]:
    """POST one turn: whether it was answered 200, and its seconds (0 if the connection failed)."""
    try:
        status, _, elapsed = client.request("POST", f"/{chat}/chat", {"content": content})
    except (OSError, http.client.HTTPException):
        return False, 0.0
    return status == 200, elapsed


def direct_body(window: list[dict[str, str]], content: str, stream: bool = False) -> Any:
    """The chat completion the proxy sends for a turn: history window + the new message."""
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [*window[-WINDOW:], {"role": "user", "content": content}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


class Pairs:
    """Turns in one chat through a server, each paired with the same chat completion sent straight
    to that server's upstream: the times each way (to the answer's end, or with `stream` to its
    first text) and their differences, of the pairs counted."""

    def __init__(self, server: Server, upstream: Upstream, stream: bool = False) -> None:
        self.server, self.stream = server, stream
        self.proxy, self.direct = Client(server.url), Client(upstream.url)
        self.chat = f"{'stream' if stream else 'lat'}-{uuid.uuid4().hex[:8]}"
        self.window: list[dict[str, str]] = []
        self.proxied: list[float] = []
        self.straight: list[float] = []
        self.diffs: list[float] = []

    def pair(self, counted: bool) -> None:
        """One turn through the server, then the same completion straight upstream."""
        question = len(self.window) // 2
        if self.stream:
            content = f"Question {question}: tell me about Redis."
            reply, proxied, straight = self._streamed(content)
        else:
            content = f"Question {question}: what is Redis?"
            reply, proxied, straight = self._plain(content)
        self.window += [
            {"role": "user", "content": content},
            {"role": "assistant", "content": reply},
        ]
        if counted:
            self.proxied.append(proxied)
            self.straight.append(straight)
            self.diffs.append(proxied - straight)

    def _plain(self, content: str) -> tuple[str, float, float]:
        """The reply, and the seconds each way to the whole answer."""
        body = direct_body(self.window, content)
        status, payload, proxied = self.proxy.request(
            "POST", f"/{self.chat}/chat", {"content": content}
        )
        if status != 200:
            raise RuntimeError(f"{self.server.url} answered {status}: {payload[:200]!r}")
        status, _, straight = self.direct.request("POST", "/chat/completions", body)
        if status != 200:
            raise RuntimeError(f"upstream answered {status}")
        return json.loads(payload)["content"], proxied, straight

    def _streamed(self, content: str) -> tuple[str, float, float]:
        """A stand-in reply (the stream is not kept), and the seconds each way to the first
        text."""
        body = direct_body(self.window, content, stream=True)
        status, proxied = self.proxy.first_delta(
            f"/{self.chat}/chat", {"content": content, "stream": True}, b"event: delta"
        )
        if status != 200:
            raise RuntimeError(f"{self.server.url} answered {status} to a stream")
        status, straight = self.direct.first_delta("/chat/completions", body, b'"content": "R')
        if status != 200:
            raise RuntimeError(f"upstream answered {status} to a stream")
        return "x", proxied, straight

    def close(self) -> None:
        self.proxy.close()
        self.direct.close()


def paired(
    targets: list[tuple[Server, Upstream]],
    n: int,
    stream: bool = False,
    warmup: int = WARMUP_PAIRS,
) -> list[Pairs]:
    """`n` counted pairs (`Pairs`) through each `(server, upstream)`, after `warmup` uncounted
    ones. Several targets take turns in blocks of BLOCK_PAIRS, each block after the first
    starting with REWARM_PAIRS uncounted pairs, so that a slow spell of the machine falls on each
    alike while each block's turns still follow one another as they do for one target. Each
    block opens new connections: gunicorn closes one left idle for 2 s, as a stream's are while
    the other target's block runs."""
    return take_turns([Pairs(server, upstream, stream) for server, upstream in targets], n, warmup)


def take_turns(pairs: list[Pairs], n: int, warmup: int = WARMUP_PAIRS) -> list[Pairs]:
    """`n` counted pairs of each of `pairs`, taking turns as `paired` describes."""
    block = BLOCK_PAIRS if len(pairs) > 1 else max(n, 1)
    try:
        for start in range(0, n, block):
            for each in pairs:
                each.close()
                for _ in range(warmup if start == 0 else REWARM_PAIRS):
                    each.pair(counted=False)
                for _ in range(min(block, n - start)):
                    each.pair(counted=True)
    finally:
        for each in pairs:
            each.close()
    return pairs

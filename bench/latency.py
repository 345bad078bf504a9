"""Latency at concurrency 1, pair by pair against the upstream: functions-framework's own floor
(target 0), a plain turn with its CPU by step (row 1) and the first streamed text (row 7), each
beside the floors of ``bench/lean_handler.py`` and ``bench/coroutine_handler.py``."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from bench.client import Client
from bench.load import WARMUP_PAIRS, Pairs, direct_body, paired
from bench.rig import (
    COROUTINE_HANDLER,
    EMPTY_HANDLERS,
    LEAN_HANDLER,
    NAIVE_HANDLER,
    STAGES,
    Rig,
    Upstream,
    proc_tree_cpu,
)
from bench.stats import med, ms, pct
from bench.upstream import REPLY
from harness.server_process import launch

STREAM_WARMUP_PAIRS = 10  # turns of target 7 not counted
STREAM_WORD_S = 0.005  # row 7: the upstream streams a word per 5 ms
BUSY_STREAM_WORD_S = 0.0005  # row 7 again, with pauses a tenth as long between turns


def t0_floor(rig: Rig, n: int) -> dict[str, Any]:
    """Concurrency 1: each of ``bench/empty_handlers.py`` minus a chat completion sent straight to
    the upstream, pair by pair: what functions-framework's servers add before a handler works."""
    result: dict[str, Any] = {}
    upstream = Upstream(0.0)
    try:
        for target, asgi in (("wsgi", False), ("asgi_async", True), ("asgi_thread", True)):
            env = rig.env(upstream.url)
            if asgi:
                env["FUNCTION_USE_ASGI"] = "true"
            server = launch(env, rig.workdir, EMPTY_HANDLERS, target)
            try:
                server.wait_ready()
                cpu_before = proc_tree_cpu(server.process.pid)
                handler, direct = Client(server.url), Client(upstream.url)
                diffs = []
                for i in range(n + WARMUP_PAIRS):
                    content = f"Question {i}: what is Redis?"
                    status, _, served = handler.request("POST", "/chat", {"content": content})
                    if status != 200:
                        raise RuntimeError(f"the empty handler {target} answered {status}")
                    _, _, straight = direct.request(
                        "POST", "/chat/completions", direct_body([], content)
                    )
                    if i >= WARMUP_PAIRS:
                        diffs.append(served - straight)
                handler.close()
                direct.close()
                cpu = proc_tree_cpu(server.process.pid) - cpu_before
            finally:
                server.stop()
            result[f"{target}_cpu_ms"] = ms(cpu / (n + WARMUP_PAIRS))
            result[f"{target}_median_ms"] = ms(med(diffs))
            result[f"{target}_p99_ms"] = ms(pct(diffs, 99))
    finally:
        upstream.stop()
    return result


def t1_added_latency(rig: Rig, n: int) -> dict[str, Any]:
    """Concurrency 1: proxy turn minus the same completion sent directly, pair by pair, taking
    turns with the lean handler (``bench/lean_handler.py``) and its coroutine twin
    (``bench/coroutine_handler.py``); then the same for the naive handler
    (``bench/naive_handler.py``) on this machine."""
    with contextlib.ExitStack() as stack:
        targets = [stack.enter_context(rig.running(0.0, source=s)) for s in sources(rig)]
        ours, floor, coroutines, *before = paired(targets, n)
    proxy_times, direct_times, diffs = ours.proxied, ours.straight, ours.diffs
    steps = turn_steps(rig, n)
    with rig.running(delay=0.0, source=NAIVE_HANDLER) as naive:
        (naive_pairs,) = paired([naive], n)
    naive_diffs, lean_diffs = naive_pairs.diffs, floor.diffs
    return {
        **{f"{name}_cpu_ms": value for name, value in steps.items()},
        "median_ms": ms(med(diffs)),
        "p99_ms": ms(pct(diffs, 99)),
        "p99_apart_ms": ms(pct(proxy_times, 99) - pct(direct_times, 99)),
        "proxy_median_ms": ms(med(proxy_times)),
        "direct_median_ms": ms(med(direct_times)),
        "naive_median_ms": ms(med(naive_diffs)),
        "naive_p99_ms": ms(pct(naive_diffs, 99)),
        "lean_median_ms": ms(med(lean_diffs)),
        "lean_p99_ms": ms(pct(lean_diffs, 99)),
        "coroutine_median_ms": ms(med(coroutines.diffs)),
        "coroutine_p99_ms": ms(pct(coroutines.diffs, 99)),
        "samples": len(diffs),
        "latencies": proxy_times,
        "direct": direct_times,
        **baseline_of(before),
    }


def sources(rig: Rig) -> list[Path | None]:
    """What rows 1 and 7 take turns with: the proxy, the lean and coroutine handlers, and the
    baseline's proxy when the run has one (``--baseline``)."""
    return [None, LEAN_HANDLER, COROUTINE_HANDLER, *([rig.baseline] if rig.baseline else [])]


def baseline_of(before: list[Pairs]) -> dict[str, float]:
    """The baseline's added median and p99, when it took turns too."""
    if not before:
        return {}
    (pairs,) = before
    return {"baseline_median_ms": ms(med(pairs.diffs)), "baseline_p99_ms": ms(pct(pairs.diffs, 99))}


def turn_steps(rig: Rig, n: int) -> dict[str, float]:
    """CPU milliseconds per turn, in all and by step, of row 1's turns through the proxy served
    with a CPU clock on each step (``bench/stages.py``)."""
    with rig.running(delay=0.0, workers=1, source=STAGES) as target:
        server = target[0]
        paired([target], 20)  # warm up
        cpu_before = proc_tree_cpu(server.process.pid)
        before = read_steps(server.url)
        paired([target], n)
        after = read_steps(server.url)
        server_cpu = proc_tree_cpu(server.process.pid) - cpu_before
    turns = n + WARMUP_PAIRS
    steps = {name: ms((after[name] - before.get(name, 0.0)) / turns) for name in after}
    return {"server": ms(server_cpu / turns), **steps}


def read_steps(url: str) -> dict[str, float]:
    """The CPU seconds ``bench/stages.py`` has added up so far, by step (on a new connection:
    gunicorn closes one left idle for 2 s)."""
    client = Client(url)
    try:
        status, body, _ = client.request("GET", "/bench/steps")
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"{url}/bench/steps answered {status}")
    steps: dict[str, float] = json.loads(body)
    return steps


def reply_ms(word_s: float) -> float:
    """How long the fake upstream takes to stream its whole reply, a word per `word_s`."""
    return 1000 * word_s * (len(REPLY.split()) - 1)


def t7_stream_ttfb(rig: Rig, n: int, word_s: float = STREAM_WORD_S) -> dict[str, Any]:
    """Time to the first streamed text through the proxy minus straight from the upstream, one
    turn at a time, taking turns with the lean handler (``bench/lean_handler.py``) and its
    coroutine twin (``bench/coroutine_handler.py``); the upstream streams a word per `word_s`."""
    with contextlib.ExitStack() as stack:
        targets = [
            stack.enter_context(rig.running(0.0, chunk_delay=word_s, source=s))
            for s in sources(rig)
        ]
        ours, floor, coroutines, *before = paired(
            targets, n, stream=True, warmup=STREAM_WARMUP_PAIRS
        )
    return {
        "added_median_ms": ms(med(ours.diffs)),
        "added_p99_ms": ms(pct(ours.diffs, 99)),
        "proxy_median_ms": ms(med(ours.proxied)),
        "direct_median_ms": ms(med(ours.straight)),
        "lean_median_ms": ms(med(floor.diffs)),
        "lean_p99_ms": ms(pct(floor.diffs, 99)),
        "coroutine_median_ms": ms(med(coroutines.diffs)),
        "coroutine_p99_ms": ms(pct(coroutines.diffs, 99)),
        "samples": len(ours.diffs),
        **baseline_of(before),
    }

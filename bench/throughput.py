"""Load on many chats at once: 200 chats on a 1 s model (row 2), saturation ramps (rows 3, 3b and
the floors' ramps) and the server tree's memory with 200 turns in flight (row 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.load import closed_loop
from bench.rig import Rig, proc_tree_memory
from bench.stats import med, ms, pct

RAMP = (1, 4, 16, 64)
THINK = 0.01  # row 2: each client waits a random 0-10 ms before its next turn


def t2_concurrent(rig: Rig, clients: int, duration: float, delay: float) -> dict[str, Any]:
    """Row 2: `clients` chats at once on an upstream of latency `delay`, with think time."""
    with rig.running(delay=delay) as (server, _):
        load = closed_loop(
            server.url, clients, duration, warmup=delay + 1.0, stagger=delay, think=THINK
        )
    added = [x - delay for x in load.latencies]
    return {
        "clients": clients,
        "threads": rig.threads,
        "rate": round(load.rate, 1),
        "errors": load.errors,
        "turns": len(load.latencies),
        "added_median_ms": ms(med(added)),
        "added_p99_ms": ms(pct(added, 99)),
    }


def t3_saturation(
    rig: Rig,
    duration: float,
    direct_ms: float,
    workers: int | None = None,
    source: Path | None = None,
) -> dict[str, Any]:
    """Rows 3 and 3b (and the floors'): a closed loop of 1 to 64 clients, upstream 0 ms."""
    levels = []
    with rig.running(delay=0.0, workers=workers, source=source) as (server, _):
        for clients in RAMP:
            load = closed_loop(server.url, clients, duration, warmup=1.0)
            added = [x * 1000 - direct_ms for x in load.latencies]
            levels.append(
                {
                    "clients": clients,
                    "rate": round(load.rate, 1),
                    "errors": load.errors,
                    "added_median_ms": round(med(added), 3),
                    "added_p99_ms": round(pct(added, 99), 3),
                }
            )
    return {"levels": levels, "max_rate": max(level["rate"] for level in levels)}


def t6_rss(rig: Rig, clients: int, delay: float, duration: float) -> dict[str, Any]:
    """Row 6: the server tree's memory, idle and at its peak with `clients` turns in flight."""
    with rig.running(delay=delay) as (server, _):
        idle_rss, idle_pss = proc_tree_memory(server.process.pid)
        load = closed_loop(
            server.url,
            clients,
            duration,
            warmup=1.0,
            sample=lambda: proc_tree_memory(server.process.pid),
        )
    return {
        "clients": clients,
        "threads": rig.threads,
        "idle_mb": round(idle_rss / 2**20, 1),
        "peak_mb": round(load.peak_memory[0] / 2**20, 1),
        "idle_pss_mb": round(idle_pss / 2**20, 1),
        "peak_pss_mb": round(load.peak_memory[1] / 2**20, 1),
        "errors": load.errors,
        "turns": len(load.latencies),
    }

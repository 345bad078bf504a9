"""Row 14: the server tree's memory while `GET /export` streams a tenant's chats, for few chats
and for ten times as many: an export that streams holds about the same at either size."""

from __future__ import annotations

import threading
import time
from typing import Any

from bench.client import Client
from bench.rig import Rig, proc_tree_memory
from bench.seeding import seed_trees
from harness.server_process import Server

MESSAGES = 4  # each chat's: two turns
SAMPLE_S = 0.02  # how often the server tree's memory is read during an export
MB = 2**20


def t14_export_memory(rig: Rig, few: int, many: int) -> dict[str, Any]:
    """Row 14: an export of `few` chats, then of `many`, each by a new server on a Redis that
    holds only those chats; the peak memory of each server tree while it streams."""
    result: dict[str, Any] = {"messages": MESSAGES}
    for name, count in (("few", few), ("many", many)):
        with rig.running(delay=0.0) as (server, _):
            seed_trees(rig.redis.url, [f"export-{n:06d}" for n in range(count)], MESSAGES)
            result |= {f"{name}_{key}": value for key, value in _export(server, count).items()}
    result["growth_mb"] = round(result["many_peak_mb"] - result["few_peak_mb"], 1)
    result["growth_pss_mb"] = round(result["many_peak_pss_mb"] - result["few_peak_pss_mb"], 1)
    return result


def _export(server: Server, count: int) -> dict[str, Any]:
    """`GET /export` whole, with the server tree's memory read every SAMPLE_S meanwhile; check
    that it held a line for each of the `count` chats."""
    pid = server.process.pid
    idle = proc_tree_memory(pid)
    peak = list(idle)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[:] = map(max, peak, proc_tree_memory(pid))
            time.sleep(SAMPLE_S)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    client = Client(server.url, timeout=600.0)
    try:
        status, body, took = client.request("GET", "/export")
    finally:
        done.set()
        sampler.join()
        client.close()
    lines = body.count(b"\n")
    if status != 200 or lines != count:
        raise RuntimeError(f"GET /export answered {status} with {lines} lines for {count} chats")
    return {
        "chats": count,
        "idle_mb": round(idle[0] / MB, 1),
        "peak_mb": round(peak[0] / MB, 1),
        "peak_pss_mb": round(peak[1] / MB, 1),
        "export_s": round(took, 3),
        "body_mb": round(len(body) / MB, 2),
    }

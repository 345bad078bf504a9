"""Row 5: cold start, from starting the server process to its first reply."""

from __future__ import annotations

import http.client
import time
from typing import Any

from bench.client import Client
from bench.rig import Rig, Upstream
from bench.stats import med
from harness.server_process import launch


def t5_cold_start(rig: Rig, tries: int) -> dict[str, Any]:
    """Row 5: seconds from starting the server process to its first reply, `tries` times."""
    times = []
    rig.flush()
    upstream = Upstream(0.0)
    try:
        for _ in range(tries):
            env = rig.env(upstream.url)
            start = time.perf_counter()
            server = launch(env, rig.workdir)
            try:
                elapsed = None
                while time.perf_counter() - start < 30:
                    if server.process.poll() is not None:
                        raise RuntimeError(f"server exited: {server.stderr_text()[-500:]}")
                    client = Client(server.url, timeout=5)
                    try:
                        status, _, _ = client.request("POST", "/cold/chat", {"content": "hi"})
                        if status == 200:
                            elapsed = time.perf_counter() - start
                            break
                    except (OSError, http.client.HTTPException):
                        pass
                    finally:
                        client.close()
                    time.sleep(0.01)
                if elapsed is None:
                    raise RuntimeError("no reply within 30 s of starting the server")
                times.append(elapsed)
            finally:
                server.stop()
    finally:
        upstream.stop()
    return {"median_s": round(med(times), 3), "all_s": [round(t, 3) for t in times]}

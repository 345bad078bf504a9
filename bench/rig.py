"""The rig every target runs on: redis-server, the fake upstream and server processes, and what
`/proc` says about a server's process tree (CPU time, memory)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from harness.redis_server import RedisServer
from harness.server_process import MAIN, Server, launch, server_env

ROOT = Path(__file__).resolve().parents[1]
NAIVE_HANDLER = ROOT / "bench" / "naive_handler.py"
LEAN_HANDLER = ROOT / "bench" / "lean_handler.py"
COROUTINE_HANDLER = ROOT / "bench" / "coroutine_handler.py"
EMPTY_HANDLERS = ROOT / "bench" / "empty_handlers.py"
STAGES = ROOT / "bench" / "stages.py"


class Upstream:
    """The fake upstream in its own process (``bench/upstream.py``)."""

    def __init__(self, delay: float, chunk_delay: float = 0.0) -> None:
        command = [sys.executable, "-m", "bench.upstream", "--delay", str(delay)]
        command += ["--chunk-delay", str(chunk_delay)]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise RuntimeError("the fake upstream did not start")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Rig:
    """The run's redis-server and work directory, and the servers' threads and workers."""

    workdir: Path
    redis: RedisServer
    threads: int | None
    workers: int
    servers: list[Server] = field(default_factory=list)
    baseline: Path | None = None  # another checkout's main.py, for rows 1 and 7 (--baseline)

    def env(
        self, upstream_url: str, threads: int | None = None, workers: int | None = None
    ) -> dict[str, str]:
        values = {
            "OPENAI_BASE_URL": upstream_url,
            "GPT_API_KEY": "bench-key",
            "REDIS_URL": self.redis.url,
            "WORKERS": str(workers or self.workers),
        }
        env = server_env(**values)
        env.pop("THREADS", None)
        threads = threads or self.threads
        if threads:
            env["THREADS"] = str(threads)
        return env

    def flush(self) -> None:
        with self.redis.client() as client:
            client.flushall()

    @contextlib.contextmanager
    def running(
        self,
        delay: float,
        threads: int | None = None,
        chunk_delay: float = 0.0,
        workers: int | None = None,
        source: Path | None = None,
        config: Mapping[str, str] | None = None,
    ) -> Iterator[tuple[Server, Upstream]]:
        """A fresh fake upstream (latency `delay`) and server process on an empty Redis; with
        `source`, that file's `main` instead of the proxy's; with `config`, those variables set
        too; the naive handler runs with functions-framework's default threads and workers."""
        self.flush()
        upstream = Upstream(delay, chunk_delay)
        env = self.env(upstream.url, threads, workers) | dict(config or {})
        if source == NAIVE_HANDLER:
            env.pop("THREADS", None)
            env.pop("WORKERS", None)
        if source == COROUTINE_HANDLER:  # ASGI (detected anyway; the flag skips a Flask app)
            env.pop("THREADS", None)
            env["FUNCTION_USE_ASGI"] = "1"
        server = launch(env, self.workdir, source or MAIN)
        try:
            server.wait_ready()
            yield server, upstream
        finally:
            server.stop()
            upstream.stop()


def proc_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (the server's gunicorn master and workers), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def proc_tree_memory(pid: int) -> tuple[int, int]:
    """Summed VmRSS and Pss (bytes) of `pid` and all its descendants, from /proc.

    RSS counts a page that a forked gunicorn worker still shares with its master in both
    processes; PSS splits each shared page between its sharers, so the PSS sum is the memory the
    tree really holds (what a container's memory limit sees).
    """
    rss = pss = 0
    for current in proc_tree(pid):
        try:
            rss += _kilobytes(Path(f"/proc/{current}/status"), "VmRSS:")
            pss += _kilobytes(Path(f"/proc/{current}/smaps_rollup"), "Pss:")
        except OSError:
            continue
    return rss, pss


def proc_tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by `pid` and all its descendants, from /proc."""
    ticks = 0
    for current in proc_tree(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def _kilobytes(path: Path, field: str) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0

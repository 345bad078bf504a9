"""The machine a run measured: its CPU, software versions, and CPU time stolen by a hypervisor."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path


def machine() -> dict[str, str]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    redis_version = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.split()
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
        "redis-server": next((w[2:] for w in redis_version if w.startswith("v=")), "?"),
    }


def cpu_ticks() -> tuple[int, int]:
    """(stolen, all) CPU ticks of the machine so far, from /proc/stat: time a virtual machine's
    CPUs were ready to run but the hypervisor ran something else."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return fields[7], sum(fields)
    return 0, 0


def stolen_pct(before: tuple[int, int], after: tuple[int, int]) -> float:
    ticks = after[1] - before[1]
    return round(100 * (after[0] - before[0]) / ticks, 1) if ticks > 0 else 0.0


PACKAGES = (
    "functions-framework", "gunicorn", "Flask", "Werkzeug", "urllib3", "redis", "hiredis",
    "openai", "matplotlib", "uvicorn", "uvloop", "httptools", "aiohttp",
)  # fmt: skip


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found

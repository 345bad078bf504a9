"""What main.py loads at start-up: a cold start pays for every import before the first reply."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.server_process import MAIN, server_env

# main.py's import, then a look at which packages came with it.
PROBE = f"""
import sys
sys.path.insert(0, {str(MAIN.parent)!r})
import main
print("limits" in sys.modules)
"""


@pytest.mark.parametrize(
    ("limit", "loaded"),
    [
        ({}, False),
        ({"RATE_LIMIT": "60/minute"}, True),
        ({"RATE_LIMIT_PER_ADDRESS": "600/minute"}, True),
        ({"TOKEN_BUDGET_PER_DAY": "1000"}, True),
    ],
    ids=["no-limits", "rate-limit", "rate-limit-per-address", "token-budget"],
)
def test_the_limits_package_loads_only_when_a_limit_is_set(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    store_kind: str,
    limit: dict[str, str],
    loaded: bool,
) -> None:
    store = (
        {"REDIS_URL": request.getfixturevalue("redis_url")}
        if store_kind == "redis"
        else {"STORE_PATH": str(tmp_path / "chats.db")}
    )
    env = server_env(GPT_API_KEY="k", OPENAI_BASE_URL="http://127.0.0.1:9/v1", **store, **limit)

    probe = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=tmp_path, env=env, capture_output=True, text=True
    )

    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split()[-1] == str(loaded)

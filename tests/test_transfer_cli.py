"""`python -m chatproxy export` and `import` as subprocesses, on both stores and from one into
the other: the same bytes out as in, a rerun (or a run after a crash) duplicating nothing, bad
lines reported while the rest import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatproxy.service import chat_document
from chatproxy.store.chat_tree import ChatTree
from chatproxy.store.items import Message, chained
from harness.server_process import ROOT
from tests.test_store_contract import turn


def documents() -> list[str]:
    """Three chats' documents, in the order an export writes them (newest activity first)."""
    lines = []
    for n in range(3):
        items = chained(turn(n) + turn(n + 1), 0, None)
        fork = Message("user", "branch ✓", created_at=5.0).placed(4, 1)
        tree = ChatTree(f"chat-{n}", 1.0, 100.0 - n, [*items, fork], leaf=4, system="Hi")
        lines.append(chat_document.dumps(tree) + "\n")
    return lines


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatproxy", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def store_env(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if store_kind == "redis":
        return {"REDIS_URL": request.getfixturevalue("redis_url")}
    return {"STORE_PATH": str(tmp_path / "chats.sqlite3")}


def test_import_then_export_gives_the_file_back_and_a_rerun_adds_nothing(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "chats.ndjson"
    source.write_text("".join(documents()), encoding="utf-8")
    crashed = tmp_path / "half.ndjson"
    crashed.write_text(documents()[0], encoding="utf-8")

    half = run_cli("import", str(crashed), "--tenant", "web", env=store_env, cwd=tmp_path)
    whole = run_cli("import", str(source), "--tenant", "web", env=store_env, cwd=tmp_path)
    again = run_cli("import", str(source), "--tenant", "web", env=store_env, cwd=tmp_path)
    out = tmp_path / "out.ndjson"
    exported = run_cli("export", "--tenant", "web", "-o", str(out), env=store_env, cwd=tmp_path)

    assert (half.returncode, whole.returncode, again.returncode) == (0, 0, 0)
    assert whole.stdout.startswith("imported 2 chat(s), skipped 1 that exist, 0 failed")
    assert again.stdout.startswith("imported 0 chat(s), skipped 3 that exist, 0 failed")
    assert exported.returncode == 0, exported.stderr
    assert "exported 3 chat(s) of tenant web" in exported.stderr
    assert out.read_bytes() == source.read_bytes()
    other = run_cli("export", env=store_env, cwd=tmp_path)  # another tenant: none of them
    assert (other.returncode, other.stdout) == (0, "")


def test_chats_move_from_redis_to_sqlite_unchanged(redis_url: str, tmp_path: Path) -> None:
    source = tmp_path / "chats.ndjson"
    source.write_text("".join(documents()), encoding="utf-8")
    into_redis = {"REDIS_URL": redis_url}
    into_sqlite = {"STORE_PATH": str(tmp_path / "moved.sqlite3")}

    assert run_cli("import", str(source), env=into_redis, cwd=tmp_path).returncode == 0
    from_redis = run_cli("export", env=into_redis, cwd=tmp_path)
    (tmp_path / "redis.ndjson").write_text(from_redis.stdout, encoding="utf-8")
    moved = run_cli("import", str(tmp_path / "redis.ndjson"), env=into_sqlite, cwd=tmp_path)
    from_sqlite = run_cli("export", env=into_sqlite, cwd=tmp_path)

    assert moved.returncode == 0, moved.stdout
    assert from_sqlite.stdout == from_redis.stdout == source.read_text(encoding="utf-8")


def test_bad_lines_are_listed_and_the_rest_imported_with_exit_1(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    good, second, _ = documents()
    orphan = second.replace('"parent":0', '"parent":42', 1)
    source = tmp_path / "mixed.ndjson"
    source.write_text(f'{{"format": "chatproxy.chat", "id": "cut\n{orphan}\n{good}', "utf-8")

    result = run_cli("import", str(source), env=store_env, cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "imported 1 chat(s), skipped 0 that exist, 2 failed",
        result.stdout.splitlines()[1],
        "  line 2 (chat 'chat-1'): items[1] (id 1): its parent 42 is not an item of the chat",
    ]
    assert result.stdout.splitlines()[1].startswith("  line 1: not JSON")
    assert "Traceback" not in result.stderr


def test_one_pretty_printed_document_imports_and_bad_usage_exits_2(
    store_env: dict[str, str], tmp_path: Path
) -> None:
    document = tmp_path / "one.json"
    document.write_text(json.dumps(json.loads(documents()[0]), indent=2), encoding="utf-8")

    result = run_cli(
        "import", str(document), "--on-conflict", "replace", env=store_env, cwd=tmp_path
    )

    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("imported 1 chat(s)")
    assert run_cli("import", "missing.json", env=store_env, cwd=tmp_path).returncode == 2
    assert run_cli("export", "--tenant", "a b", env=store_env, cwd=tmp_path).returncode == 2
    assert (
        run_cli("import", str(document), "--format", "x", env=store_env, cwd=tmp_path).returncode
        == 2
    )

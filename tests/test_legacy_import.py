"""The import of the original project's Redis chats, into both stores, from a separate Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chatproxy.cli import legacy
from chatproxy.cli.legacy import ImportReport, import_legacy
from chatproxy.config import RedisSettings
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef, Message, chained
from chatproxy.store.redis import RedisStore
from chatproxy.store.sqlite import SqliteStore
from harness.redis_server import RedisServer
from harness.server_process import ROOT
from tests.conftest import MakeStore, take_lock
from tests.event_loop import run_on_own_loop

Pairs = list[tuple[str, str]]

CONVERSATION: Pairs = [
    ("user", "hi"),
    ("assistant", "Hello! How can I help?"),
    ("user", "what is 2+2?"),
    ("assistant", "4"),
]


@pytest.fixture
def source(redis_url: str) -> Iterator[redis.Redis]:
    """The original project's Redis: logical DB 1 of the session's server (flushed per test)."""
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1", decode_responses=True)
    yield client
    client.close()


def write_chat(source: redis.Redis, chat_id: str, messages: Pairs) -> None:
    """Append messages to a chat in the original layout."""
    source.rpush(f"user-{chat_id}", *(json.dumps({"role": r, "content": c}) for r, c in messages))


async def history(store: Store, chat_id: str, tenant: str = "public") -> Pairs:
    state = await store.load_history(ChatRef(tenant, chat_id))
    return [(m.role, str(m.content)) for m in state.messages]


async def chat_system(store: Store, chat_id: str) -> str | None:
    return (await store.load_history(ChatRef("public", chat_id))).chat_system


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return (
        report.chats_imported,
        report.chats_skipped,
        report.messages_imported,
        report.chat_systems_set,
    )


@pytest.mark.anyio
async def test_import_copies_histories_global_and_own_system_prompts(
    source: redis.Redis, store: Store
) -> None:
    source.set("system", "You are helpful.")
    write_chat(source, "follows-global", [("system", "You are helpful."), *CONVERSATION])
    write_chat(source, "pirate", [("system", "Talk like a pirate."), *CONVERSATION[:2]])
    write_chat(source, "no-system", CONVERSATION[2:])
    write_chat(source, "only-system", [("system", "Be brief.")])

    report = await import_legacy(source, store)

    assert report.problems == []
    assert counts(report) == (4, 0, 8, 2)
    assert report.global_system == "copied"
    assert await store.get_global_system() == "You are helpful."
    assert await history(store, "follows-global") == CONVERSATION
    assert await chat_system(store, "follows-global") is None
    assert await history(store, "pirate") == CONVERSATION[:2]
    assert await chat_system(store, "pirate") == "Talk like a pirate."
    assert await history(store, "no-system") == CONVERSATION[2:]
    assert await chat_system(store, "no-system") is None
    assert await history(store, "only-system") == []
    assert await chat_system(store, "only-system") == "Be brief."
    assert {info.chat_id for info in await store.list_chats("public", 10, None)} == {
        "follows-global",
        "pirate",
        "no-system",
        "only-system",
    }
    assert (await store.chat_info(ChatRef("public", "pirate"))).title == "hi"  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_odd_sequences_keep_every_message_in_order(source: redis.Redis, store: Store) -> None:
    odd = [
        ("assistant", "Welcome!"),
        ("user", "first"),
        ("user", "again?"),
        ("assistant", "sorry, here"),
        ("assistant", "and more"),
        ("user", "left without a reply"),
    ]
    write_chat(source, "odd", odd)

    report = await import_legacy(source, store)

    assert (report.problems, report.messages_imported) == ([], 6)
    assert await history(store, "odd") == odd


@pytest.mark.anyio
async def test_a_second_run_imports_nothing(source: redis.Redis, store: Store) -> None:
    source.set("system", "G")
    write_chat(source, "a", [("system", "Own."), *CONVERSATION])
    write_chat(source, "b", CONVERSATION[:3])
    await import_legacy(source, store)

    again = await import_legacy(source, store)

    assert counts(again) == (0, 2, 0, 0)
    assert (again.problems, again.global_system) == ([], "already in place")
    assert await history(store, "a") == CONVERSATION
    assert await history(store, "b") == CONVERSATION[:3]
    assert await chat_system(store, "a") == "Own."


@pytest.mark.anyio
async def test_a_second_run_appends_only_what_the_legacy_chat_gained(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "growing", [("system", "Own."), *CONVERSATION[:3]])  # a question pending
    await import_legacy(source, store)
    gained = [("assistant", "4"), ("user", "and 3+3?"), ("assistant", "6")]
    write_chat(source, "growing", gained)

    again = await import_legacy(source, store)

    assert (again.problems, counts(again)) == ([], (1, 0, 3, 0))
    assert await history(store, "growing") == CONVERSATION[:3] + gained
    assert await chat_system(store, "growing") == "Own."


@pytest.mark.anyio
async def test_a_chat_used_through_the_proxy_after_the_import_is_left_alone(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "switched", CONVERSATION[:2])
    await import_legacy(source, store)
    proxy_turn = [Message("user", "via the proxy"), Message("assistant", "noted")]
    await store.save_turn(ChatRef("public", "switched"), "t-proxy", proxy_turn)
    expected = [*CONVERSATION[:2], ("user", "via the proxy"), ("assistant", "noted")]

    again = await import_legacy(source, store)

    assert (again.problems, counts(again)) == ([], (0, 1, 0, 0))
    assert await history(store, "switched") == expected

    write_chat(source, "switched", [("user", "meanwhile in the old app")])
    diverged = await import_legacy(source, store)

    assert counts(diverged) == (0, 0, 0, 0)
    assert len(diverged.problems) == 1
    assert diverged.problems[0].startswith("user-switched: its history in the target differs")
    assert await history(store, "switched") == expected


@pytest.mark.anyio
async def test_a_chat_whose_imported_messages_were_deleted_is_reported_and_the_rest_go_on(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "pruned", CONVERSATION)
    await import_legacy(source, store)
    await store.delete_items(ChatRef("public", "pruned"), [3])  # its last reply, via the proxy
    write_chat(source, "pruned", [("user", "meanwhile in the old app")])
    write_chat(source, "z-later", CONVERSATION[:2])

    again = await import_legacy(source, store)

    assert [p.split(":")[0] for p in again.problems] == ["user-pruned"]
    assert (again.chats_imported, again.messages_imported) == (1, 2)
    assert await history(store, "z-later") == CONVERSATION[:2]
    assert await history(store, "pruned") == CONVERSATION[:3]


@pytest.mark.anyio
async def test_a_chat_deleted_through_the_proxy_while_it_is_imported_is_reported(
    source: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_chat(source, "deleted", CONVERSATION)
    write_chat(source, "z-later", CONVERSATION[:2])
    save_turn, saves = store.save_turn, []

    async def deleted_after_its_first_turn(chat: ChatRef, *args: Any, **kwargs: Any) -> bool:
        saves.append(chat.chat_id)
        if saves == ["deleted", "deleted"]:
            await store.delete_chat(chat)  # deletes take no lock
        return await save_turn(chat, *args, **kwargs)

    monkeypatch.setattr(store, "save_turn", deleted_after_its_first_turn)
    report = await import_legacy(source, store)

    assert [p.split(":")[0] for p in report.problems] == ["user-deleted"]
    assert await history(store, "z-later") == CONVERSATION[:2]
    assert await history(store, "deleted") == []


@pytest.mark.anyio
async def test_a_legacy_chat_grown_past_a_branch_made_through_the_proxy_is_reported(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "regenerated", CONVERSATION)
    await import_legacy(source, store)
    chat = ChatRef("public", "regenerated")
    other = [Message("assistant", "another answer")]
    await store.save_turn(chat, "t-regenerate", chained(other, 4, 2))  # a sibling of reply 3
    await store.set_leaf(chat, 3)  # and back to the imported reply
    write_chat(source, "regenerated", [("user", "and 3+3?"), ("assistant", "6")])

    again = await import_legacy(source, store)

    assert [p.split(":")[0] for p in again.problems] == ["user-regenerated"]
    assert again.messages_imported == 0
    assert await history(store, "regenerated") == CONVERSATION
    assert (await store.load_history(chat, 4)).messages[-1].content == "another answer"


@pytest.mark.anyio
async def test_a_chat_that_already_exists_with_other_messages_is_reported(
    source: redis.Redis, store: Store
) -> None:
    await store.save_turn(ChatRef("public", "taken"), "t1", [Message("user", "something else")])
    write_chat(source, "taken", CONVERSATION)

    report = await import_legacy(source, store)

    assert [p.split(":")[0] for p in report.problems] == ["user-taken"]
    assert await history(store, "taken") == [("user", "something else")]


@pytest.mark.anyio
async def test_a_rerun_recognises_a_chat_the_target_trimmed(
    source: redis.Redis, make_store: MakeStore
) -> None:
    store = make_store(max_messages=3)
    write_chat(source, "long", CONVERSATION)
    await import_legacy(source, store)
    assert await history(store, "long") == CONVERSATION[1:]

    again = await import_legacy(source, store)
    write_chat(source, "long", [("user", "new")])
    third = await import_legacy(source, store)

    assert counts(again) == (0, 1, 0, 0)
    assert (third.problems, counts(third)) == ([], (1, 0, 1, 0))
    assert await history(store, "long") == [*CONVERSATION[2:], ("user", "new")]


@pytest.mark.anyio
async def test_bad_chats_are_reported_and_skipped_without_stopping_the_import(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "good-1", CONVERSATION[:2])
    source.rpush("user-not-json", json.dumps({"role": "user", "content": "ok"}), "{broken")
    source.rpush("user-not-object", json.dumps(["user", "hi"]))
    source.rpush("user-bad-role", json.dumps({"role": "tool", "content": "x"}))
    source.rpush("user-no-content", json.dumps({"role": "assistant", "content": None}))
    write_chat(source, "late-system", [("user", "hi"), ("system", "now a pirate")])
    write_chat(source, "has space", CONVERSATION[:2])
    write_chat(source, "", CONVERSATION[:2])
    source.set("user-a-string", "not a list")
    write_chat(source, "good-2", CONVERSATION[2:])

    report = await import_legacy(source, store)

    assert counts(report) == (2, 0, 4, 0)
    assert await history(store, "good-1") == CONVERSATION[:2]
    assert await history(store, "good-2") == CONVERSATION[2:]
    assert sorted(report.problems) == [
        "user-: not a chat id the proxy accepts (1-128 of A-Z a-z 0-9 . _ @ : -)",
        "user-a-string: not a list, as the original project's chats are",
        "user-bad-role: element 0 has the role 'tool' (only user and assistant import)",
        "user-has space: not a chat id the proxy accepts (1-128 of A-Z a-z 0-9 . _ @ : -)",
        "user-late-system: element 1 is a system message that does not open the chat",
        "user-no-content: element 0 has no text or content parts",
        "user-not-json: element 1 is not JSON",
        "user-not-object: element 0 is not a JSON object",
    ]
    for chat_id in ("not-json", "bad-role", "late-system", "no-content"):
        assert not (await store.load_history(ChatRef("public", chat_id))).exists
    assert "problem(s), left as they are" in report.summary()


@pytest.mark.anyio
async def test_a_chat_in_the_middle_of_a_turn_waits_for_a_later_run(
    source: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(legacy, "LOCK_WAIT_SECONDS", 0.3)
    write_chat(source, "busy", CONVERSATION[:2])
    write_chat(source, "idle", CONVERSATION[:2])
    busy = ChatRef("public", "busy")
    assert await take_lock(store, busy, "a-proxy-turn", 30)

    report = await import_legacy(source, store)
    await store.release_turn(busy, "a-proxy-turn")
    later = await import_legacy(source, store)

    assert report.problems == [
        "user-busy: a turn on this chat kept running; run the import again later"
    ]
    assert (report.chats_imported, later.chats_imported, later.problems) == (1, 1, [])
    assert await history(store, "busy") == await history(store, "idle") == CONVERSATION[:2]
    assert await take_lock(store, busy, "next-turn", 30)  # the import released the lock


@pytest.mark.anyio
async def test_data_that_is_not_utf8_is_reported(redis_url: str, store: Store) -> None:
    raw = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")  # bytes, as the command uses
    raw.rpush(b"user-\xff", b'{"role": "user", "content": "hi"}')
    raw.rpush(b"user-latin1", b'{"role": "user", "content": "caf\xe9"}')
    raw.rpush(b"user-fine", '{"role": "user", "content": "café"}'.encode())
    raw.set(b"system", b"\xfe")

    report = await import_legacy(raw, store)
    raw.close()

    assert sorted(report.problems) == [
        "b'user-\\xff': not UTF-8",
        "system: not a text string, not copied (not UTF-8)",
        "user-latin1: element 0: not UTF-8",
    ]
    assert await history(store, "fine") == [("user", "café")]
    assert await store.get_global_system() is None


@pytest.mark.anyio
async def test_content_parts_are_imported_as_they_are(source: redis.Redis, store: Store) -> None:
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {}}]
    source.rpush("user-img", json.dumps({"role": "user", "content": parts}))

    await import_legacy(source, store)

    assert (await store.load_history(ChatRef("public", "img"))).messages[0].content == parts


@pytest.mark.anyio
async def test_a_dry_run_changes_nothing_and_counts_what_a_run_would_do(
    source: redis.Redis, store: Store
) -> None:
    source.set("system", "G")
    write_chat(source, "a", [("system", "Own."), *CONVERSATION])
    write_chat(source, "b", CONVERSATION[:1])

    dry = await import_legacy(source, store, dry_run=True)

    assert dry.global_system == "would be copied"
    assert await store.get_global_system() is None
    assert await store.list_chats("public", 10, None) == []
    assert not (await store.load_history(ChatRef("public", "a"))).exists
    assert dry.summary().startswith("dry run, nothing written: would import 2 chat(s)")
    real = await import_legacy(source, store)
    assert counts(dry) == counts(real) == (2, 0, 5, 1)


@pytest.mark.anyio
async def test_the_target_keeps_its_own_global_prompt(source: redis.Redis, store: Store) -> None:
    await store.set_global_system("Ours.")
    source.set("system", "Theirs.")
    write_chat(source, "a", [("system", "Theirs."), *CONVERSATION[:2]])

    report = await import_legacy(source, store)

    assert report.global_system == "the target's own kept (it differs)"
    assert await store.get_global_system() == "Ours."
    assert await chat_system(store, "a") == "Theirs."  # it does not follow "Ours." after the import


@pytest.mark.anyio
async def test_a_system_message_equal_to_system_prompt_setting_follows_it(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "a", [("system", "From SYSTEM_PROMPT."), *CONVERSATION[:2]])

    await import_legacy(source, store, default_system="From SYSTEM_PROMPT.")

    assert await chat_system(store, "a") is None


@pytest.mark.anyio
async def test_chats_go_to_the_tenant_asked_for(source: redis.Redis, store: Store) -> None:
    write_chat(source, "a", CONVERSATION[:2])

    await import_legacy(source, store, tenant="team-1")

    assert await history(store, "a", tenant="team-1") == CONVERSATION[:2]
    assert not (await store.load_history(ChatRef("public", "a"))).exists
    with pytest.raises(ValueError, match="tenant"):
        await import_legacy(source, store, tenant="no:colons")


@pytest.mark.anyio
async def test_source_and_target_can_be_the_same_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set("system", "G")
    write_chat(client, "a", [("system", "G"), *CONVERSATION])
    store = RedisStore.from_settings(RedisSettings(redis_url, False, 2.0), 3600)

    report = await import_legacy(client, store)
    again = await import_legacy(client, store)

    assert (report.problems, report.global_system, counts(report)) == (
        [],
        "already in place",
        (1, 0, 4, 0),
    )
    assert counts(again) == (0, 1, 0, 0)
    assert await history(store, "a") == CONVERSATION
    assert client.get("system") == "G"
    assert len(client.lrange("user-a", 0, -1)) == 5  # the legacy data stays as it was
    await store.close()
    client.close()


# -- the command ------------------------------------------------------------------------------


async def read_sqlite(path: Path, chat_id: str, tenant: str = "public") -> tuple[Pairs, str | None]:
    """A chat's history in a SQLite store file, and the file's global system prompt."""
    target = SqliteStore(str(path), None)
    try:
        return await history(target, chat_id, tenant), await target.get_global_system()
    finally:
        await target.close()


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "chatproxy", "legacy", *args],
        env=environ,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def password_source(tmp_path: Path) -> Iterator[tuple[redis.Redis, str]]:
    """A second redis-server that requires a password, and its URL with the password in it."""
    password = "s3cret-Legacy-pw"
    server = RedisServer(tmp_path / "legacy-redis").start()
    with server.client() as admin:
        admin.config_set("requirepass", password)
    url = f"redis://:{password}@127.0.0.1:{server.port}/0"
    client = redis.Redis.from_url(url, decode_responses=True)
    yield client, url
    client.close()
    server.stop()


def test_cli_imports_into_the_configured_store_and_hides_the_password(
    password_source: tuple[redis.Redis, str], tmp_path: Path
) -> None:
    source, url = password_source
    source.set("system", "G")
    write_chat(source, "a", [("system", "Own."), *CONVERSATION])
    store_path = tmp_path / "target.sqlite3"

    done = run_cli("--from", url, cwd=tmp_path, env={"STORE_PATH": str(store_path)})
    again = run_cli("--from", url, cwd=tmp_path, env={"STORE_PATH": str(store_path)})

    assert (done.returncode, done.stderr) == (0, ""), done.stderr
    assert "imported 1 chat(s): 4 message(s), 1 own system prompt(s)" in done.stdout
    assert "global system prompt: copied" in done.stdout
    assert f"127.0.0.1:{source.connection_pool.connection_kwargs['port']}" in done.stdout
    assert "s3cret" not in done.stdout + done.stderr
    assert again.returncode == 0
    assert "imported 0 chat(s)" in again.stdout
    assert "1 chat(s) already up to date" in again.stdout
    assert run_on_own_loop(read_sqlite(store_path, "a")) == (CONVERSATION, "G")


def test_cli_reads_dot_env_and_exits_1_on_problems(source: redis.Redis, tmp_path: Path) -> None:
    source.rpush("user-bad", "{broken")
    write_chat(source, "good", CONVERSATION[:2])
    (tmp_path / ".env").write_text(f"STORE_PATH={tmp_path / 'dotenv.sqlite3'}\n")
    source_url = f"redis://127.0.0.1:{source.connection_pool.connection_kwargs['port']}/1"

    dry = run_cli("--from", source_url, "--dry-run", cwd=tmp_path)
    done = run_cli("--from", source_url, "--tenant", "team-1", cwd=tmp_path)

    assert dry.returncode == 1
    assert "dry run, nothing written: would import 1 chat(s)" in dry.stdout
    assert done.returncode == 1
    assert "user-bad: element 0 is not JSON" in done.stdout
    found, _ = run_on_own_loop(read_sqlite(tmp_path / "dotenv.sqlite3", "good", "team-1"))
    assert found == CONVERSATION[:2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "the following arguments are required: --from"),
        (("--from", "http://u:pw-XYZ@host/"), "--from must be a redis://"),
        (("--from", "http://host/?db=1&password=pw-XYZ"), "--from must be a redis://"),
        (("--from", "redis://localhost:6379/0", "--tenant", "a:b"), "--tenant must be"),
        (("--from", "redis://u:pw-XYZ@localhost:6379/0", "extra"), "unrecognized arguments"),
    ],
)
def test_cli_refuses_bad_arguments_with_exit_2(
    args: tuple[str, ...], message: str, tmp_path: Path
) -> None:
    result = run_cli(*args, cwd=tmp_path)

    assert result.returncode == 2
    assert message in result.stderr
    assert "pw-XYZ" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "url", ["redis://:pw-XYZ@127.0.0.1:1/0", "redis://127.0.0.1:1/0?password=pw-XYZ"]
)
def test_cli_reports_an_unreachable_source_with_exit_1(url: str, tmp_path: Path) -> None:
    result = run_cli(
        "--from",
        url,
        cwd=tmp_path,
        env={"STORE_PATH": str(tmp_path / "t.sqlite3")},
    )

    assert result.returncode == 1
    assert "error: reading redis://127.0.0.1:1/0 failed" in result.stderr
    assert "pw-XYZ" not in result.stdout + result.stderr
    assert not (tmp_path / "t.sqlite3").exists()

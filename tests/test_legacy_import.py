"""The import of the original project's Redis chats, into both stores, from a separate Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from chatproxy.cli import legacy
from chatproxy.cli.legacy import ImportReport, import_legacy
from chatproxy.config import RedisSettings
from chatproxy.store import ChatRef, Message, Store
from chatproxy.store.redis import RedisStore, connect
from chatproxy.store.sqlite import SqliteStore
from harness.redis_server import RedisServer
from harness.server_process import ROOT
from tests.conftest import MakeStore

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


def history(store: Store, chat_id: str, tenant: str = "public") -> Pairs:
    return [(m.role, str(m.content)) for m in store.load_history(ChatRef(tenant, chat_id)).messages]


def chat_system(store: Store, chat_id: str) -> str | None:
    return store.load_history(ChatRef("public", chat_id)).chat_system


def counts(report: ImportReport) -> tuple[int, int, int, int]:
    return (
        report.chats_imported,
        report.chats_skipped,
        report.messages_imported,
        report.chat_systems_set,
    )


def test_import_copies_histories_global_and_own_system_prompts(
    source: redis.Redis, store: Store
) -> None:
    source.set("system", "You are helpful.")
    write_chat(source, "follows-global", [("system", "You are helpful."), *CONVERSATION])
    write_chat(source, "pirate", [("system", "Talk like a pirate."), *CONVERSATION[:2]])
    write_chat(source, "no-system", CONVERSATION[2:])
    write_chat(source, "only-system", [("system", "Be brief.")])

    report = import_legacy(source, store)

    assert report.problems == []
    assert counts(report) == (4, 0, 8, 2)
    assert report.global_system == "copied"
    assert store.get_global_system() == "You are helpful."
    assert history(store, "follows-global") == CONVERSATION
    assert chat_system(store, "follows-global") is None
    assert history(store, "pirate") == CONVERSATION[:2]
    assert chat_system(store, "pirate") == "Talk like a pirate."
    assert history(store, "no-system") == CONVERSATION[2:]
    assert chat_system(store, "no-system") is None
    assert history(store, "only-system") == []
    assert chat_system(store, "only-system") == "Be brief."
    assert {info.chat_id for info in store.list_chats("public", 10, None)} == {
        "follows-global",
        "pirate",
        "no-system",
        "only-system",
    }
    assert store.chat_info(ChatRef("public", "pirate")).title == "hi"  # type: ignore[union-attr]


def test_odd_sequences_keep_every_message_in_order(source: redis.Redis, store: Store) -> None:
    odd = [
        ("assistant", "Welcome!"),
        ("user", "first"),
        ("user", "again?"),
        ("assistant", "sorry, here"),
        ("assistant", "and more"),
        ("user", "left without a reply"),
    ]
    write_chat(source, "odd", odd)

    report = import_legacy(source, store)

    assert (report.problems, report.messages_imported) == ([], 6)
    assert history(store, "odd") == odd


def test_a_second_run_imports_nothing(source: redis.Redis, store: Store) -> None:
    source.set("system", "G")
    write_chat(source, "a", [("system", "Own."), *CONVERSATION])
    write_chat(source, "b", CONVERSATION[:3])
    import_legacy(source, store)

    again = import_legacy(source, store)

    assert counts(again) == (0, 2, 0, 0)
    assert (again.problems, again.global_system) == ([], "already in place")
    assert history(store, "a") == CONVERSATION
    assert history(store, "b") == CONVERSATION[:3]
    assert chat_system(store, "a") == "Own."


def test_a_second_run_appends_only_what_the_legacy_chat_gained(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "growing", [("system", "Own."), *CONVERSATION[:3]])  # a question pending
    import_legacy(source, store)
    gained = [("assistant", "4"), ("user", "and 3+3?"), ("assistant", "6")]
    write_chat(source, "growing", gained)

    again = import_legacy(source, store)

    assert (again.problems, counts(again)) == ([], (1, 0, 3, 0))
    assert history(store, "growing") == CONVERSATION[:3] + gained
    assert chat_system(store, "growing") == "Own."


def test_a_chat_used_through_the_proxy_after_the_import_is_left_alone(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "switched", CONVERSATION[:2])
    import_legacy(source, store)
    proxy_turn = [Message("user", "via the proxy"), Message("assistant", "noted")]
    store.save_turn(ChatRef("public", "switched"), "t-proxy", proxy_turn)
    expected = [*CONVERSATION[:2], ("user", "via the proxy"), ("assistant", "noted")]

    again = import_legacy(source, store)

    assert (again.problems, counts(again)) == ([], (0, 1, 0, 0))
    assert history(store, "switched") == expected

    write_chat(source, "switched", [("user", "meanwhile in the old app")])
    diverged = import_legacy(source, store)

    assert counts(diverged) == (0, 0, 0, 0)
    assert len(diverged.problems) == 1
    assert diverged.problems[0].startswith("user-switched: its history in the target differs")
    assert history(store, "switched") == expected


def test_a_chat_that_already_exists_with_other_messages_is_reported(
    source: redis.Redis, store: Store
) -> None:
    store.save_turn(ChatRef("public", "taken"), "t1", [Message("user", "something else")])
    write_chat(source, "taken", CONVERSATION)

    report = import_legacy(source, store)

    assert [p.split(":")[0] for p in report.problems] == ["user-taken"]
    assert history(store, "taken") == [("user", "something else")]


def test_a_rerun_recognises_a_chat_the_target_trimmed(
    source: redis.Redis, make_store: MakeStore
) -> None:
    store = make_store(max_messages=3)
    write_chat(source, "long", CONVERSATION)
    import_legacy(source, store)
    assert history(store, "long") == CONVERSATION[1:]

    again = import_legacy(source, store)
    write_chat(source, "long", [("user", "new")])
    third = import_legacy(source, store)

    assert counts(again) == (0, 1, 0, 0)
    assert (third.problems, counts(third)) == ([], (1, 0, 1, 0))
    assert history(store, "long") == [*CONVERSATION[2:], ("user", "new")]


def test_bad_chats_are_reported_and_skipped_without_stopping_the_import(
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

    report = import_legacy(source, store)

    assert counts(report) == (2, 0, 4, 0)
    assert history(store, "good-1") == CONVERSATION[:2]
    assert history(store, "good-2") == CONVERSATION[2:]
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
        assert not store.load_history(ChatRef("public", chat_id)).exists
    assert "problem(s), left as they are" in report.summary()


def test_a_chat_in_the_middle_of_a_turn_waits_for_a_later_run(
    source: redis.Redis, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(legacy, "LOCK_WAIT_SECONDS", 0.3)
    write_chat(source, "busy", CONVERSATION[:2])
    write_chat(source, "idle", CONVERSATION[:2])
    busy = ChatRef("public", "busy")
    assert store.acquire_turn(busy, "a-proxy-turn", 30)

    report = import_legacy(source, store)
    store.release_turn(busy, "a-proxy-turn")
    later = import_legacy(source, store)

    assert report.problems == [
        "user-busy: a turn on this chat kept running; run the import again later"
    ]
    assert (report.chats_imported, later.chats_imported, later.problems) == (1, 1, [])
    assert history(store, "busy") == history(store, "idle") == CONVERSATION[:2]
    assert store.acquire_turn(busy, "next-turn", 30)  # the import released the lock


def test_data_that_is_not_utf8_is_reported(redis_url: str, store: Store) -> None:
    raw = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")  # bytes, as the command uses
    raw.rpush(b"user-\xff", b'{"role": "user", "content": "hi"}')
    raw.rpush(b"user-latin1", b'{"role": "user", "content": "caf\xe9"}')
    raw.rpush(b"user-fine", '{"role": "user", "content": "café"}'.encode())
    raw.set(b"system", b"\xfe")

    report = import_legacy(raw, store)
    raw.close()

    assert sorted(report.problems) == [
        "b'user-\\xff': not UTF-8",
        "system: not a text string, not copied (not UTF-8)",
        "user-latin1: element 0: not UTF-8",
    ]
    assert history(store, "fine") == [("user", "café")]
    assert store.get_global_system() is None


def test_content_parts_are_imported_as_they_are(source: redis.Redis, store: Store) -> None:
    parts = [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {}}]
    source.rpush("user-img", json.dumps({"role": "user", "content": parts}))

    import_legacy(source, store)

    assert store.load_history(ChatRef("public", "img")).messages[0].content == parts


def test_a_dry_run_changes_nothing_and_counts_what_a_run_would_do(
    source: redis.Redis, store: Store
) -> None:
    source.set("system", "G")
    write_chat(source, "a", [("system", "Own."), *CONVERSATION])
    write_chat(source, "b", CONVERSATION[:1])

    dry = import_legacy(source, store, dry_run=True)

    assert dry.global_system == "would be copied"
    assert store.get_global_system() is None
    assert store.list_chats("public", 10, None) == []
    assert not store.load_history(ChatRef("public", "a")).exists
    assert dry.summary().startswith("dry run, nothing written: would import 2 chat(s)")
    real = import_legacy(source, store)
    assert counts(dry) == counts(real) == (2, 0, 5, 1)


def test_the_target_keeps_its_own_global_prompt(source: redis.Redis, store: Store) -> None:
    store.set_global_system("Ours.")
    source.set("system", "Theirs.")
    write_chat(source, "a", [("system", "Theirs."), *CONVERSATION[:2]])

    report = import_legacy(source, store)

    assert report.global_system == "the target's own kept (it differs)"
    assert store.get_global_system() == "Ours."
    assert chat_system(store, "a") == "Theirs."  # it does not follow "Ours." after the import


def test_a_system_message_equal_to_system_prompt_setting_follows_it(
    source: redis.Redis, store: Store
) -> None:
    write_chat(source, "a", [("system", "From SYSTEM_PROMPT."), *CONVERSATION[:2]])

    import_legacy(source, store, default_system="From SYSTEM_PROMPT.")

    assert chat_system(store, "a") is None


def test_chats_go_to_the_tenant_asked_for(source: redis.Redis, store: Store) -> None:
    write_chat(source, "a", CONVERSATION[:2])

    import_legacy(source, store, tenant="team-1")

    assert history(store, "a", tenant="team-1") == CONVERSATION[:2]
    assert not store.load_history(ChatRef("public", "a")).exists
    with pytest.raises(ValueError, match="tenant"):
        import_legacy(source, store, tenant="no:colons")


def test_source_and_target_can_be_the_same_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.set("system", "G")
    write_chat(client, "a", [("system", "G"), *CONVERSATION])
    store = RedisStore(connect(RedisSettings(redis_url, False, 2.0)), 3600)

    report = import_legacy(client, store)
    again = import_legacy(client, store)

    assert (report.problems, report.global_system, counts(report)) == (
        [],
        "already in place",
        (1, 0, 4, 0),
    )
    assert counts(again) == (0, 1, 0, 0)
    assert history(store, "a") == CONVERSATION
    assert client.get("system") == "G"
    assert len(client.lrange("user-a", 0, -1)) == 5  # the legacy data stays as it was
    store.close()
    client.close()


# -- the command ------------------------------------------------------------------------------


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
    target = SqliteStore(str(store_path), None)
    assert history(target, "a") == CONVERSATION
    assert target.get_global_system() == "G"
    target.close()


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
    target = SqliteStore(str(tmp_path / "dotenv.sqlite3"), None)
    assert history(target, "good", tenant="team-1") == CONVERSATION[:2]
    target.close()


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

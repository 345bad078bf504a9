"""ChatGPT's and Open WebUI's exports imported on both stores, through `python -m chatproxy
import` as a subprocess and through `POST /import?format=...`: the chats' current paths and
branches as `GET /<chat_id>/chat` and `/children` show them, a second import adding nothing,
and each bad chat named with its error while the rest import."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.test_chat_management import KEYS, OPS, WEB
from tests.test_foreign_formats import (
    GPT_ID,
    GPT_ITEMS,
    WEBUI_ID,
    WEBUI_ITEMS,
    chatgpt_conversation,
    openwebui_chat,
)
from tests.test_transfer_cli import run_cli

OTHER_ID = "6650b1a2-1c2d-8000-a1b2-ffffffffffff"


def chatgpt_export() -> list[dict[str, Any]]:
    """conversations.json: two good conversations, and three bad ones between them."""
    good, other = chatgpt_conversation(), chatgpt_conversation()
    other.update(id=OTHER_ID, conversation_id=OTHER_ID, current_node="a3")
    orphan, cycle, lost = (chatgpt_conversation() for _ in range(3))
    orphan.update(id="orphan")
    orphan["mapping"]["a2"]["parent"] = "gone"
    cycle.update(id="cycle")
    cycle["mapping"]["u1"]["parent"] = "a2"
    lost.update(id="lost", current_node="nowhere")
    return [good, orphan, cycle, lost, other]


EXPECTED_FAILURES = [
    (1, "orphan", "node 'a2': its parent 'gone' is not in the mapping"),
    (2, "cycle", "node 'u1': its parents make a cycle ('u1' → 'a2' → 'u2' → 'a1' → 'u1')"),
    (3, "lost", "node 'nowhere': the current one is not in the mapping"),
]


def current_path(client: ProxyClient, chat: str, headers: dict[str, str]) -> list[Any]:
    answer = client.get(f"/{chat}/chat", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return [
        (m["id"], m["parent"], m["role"], m["content"])
        for m in answer.get_json()
        if "id" in m  # the chat's system prompt comes first, without an id
    ]


def children(client: ProxyClient, chat: str, query: str, headers: dict[str, str]) -> Any:
    return client.get(f"/{chat}/children{query}", headers=headers).get_json()["children"]


def assert_chatgpt_chats_are_there(client: ProxyClient, headers: dict[str, str]) -> None:
    assert current_path(client, GPT_ID, headers) == GPT_ITEMS[:4]  # current_node a2
    assert children(client, GPT_ID, "", headers) == [0, 5]  # the edited question
    assert children(client, GPT_ID, "?parent=0", headers) == [1, 4]  # the regenerated reply
    assert current_path(client, OTHER_ID, headers) == GPT_ITEMS[5:]
    for bad in ("orphan", "cycle", "lost"):  # nothing of a failed chat is written
        assert client.get(f"/{bad}/export", headers=headers).status_code == 404


def test_the_cli_imports_a_chatgpt_export_resumably_naming_each_bad_chat(
    make_client: MakeClient, proxy_env: dict[str, str], tmp_path: Path
) -> None:
    source = tmp_path / "conversations.json"
    source.write_text(json.dumps(chatgpt_export(), indent=2), encoding="utf-8")

    first = run_cli("import", str(source), "--tenant", "web", env=proxy_env, cwd=tmp_path)
    again = run_cli("import", str(source), "--tenant", "web", env=proxy_env, cwd=tmp_path)

    assert first.returncode == 1, first.stderr
    assert first.stdout.splitlines() == [
        "imported 2 chat(s), skipped 0 that exist, 3 failed",
        *(f"  chat [{n}] of the file (chat {c!r}): {error}" for n, c, error in EXPECTED_FAILURES),
    ]
    assert "Traceback" not in first.stderr
    assert again.stdout.startswith("imported 0 chat(s), skipped 2 that exist, 3 failed")
    client = make_client(PROXY_API_KEYS=KEYS)
    assert_chatgpt_chats_are_there(client, WEB)
    assert client.get(f"/{GPT_ID}/export", headers=OPS).status_code == 404  # web's only
    listed = client.get("/chats", headers=WEB).get_json()["chats"]
    assert {(c["id"], c["title"], c["messages"]) for c in listed} == {
        (GPT_ID, "Sums", 7), (OTHER_ID, "Sums", 7)
    }  # fmt: skip


@pytest.mark.parametrize("form", ["auto", "openwebui"])
def test_the_cli_imports_an_openwebui_export_or_one_chat_of_it(
    form: str, make_client: MakeClient, proxy_env: dict[str, str], tmp_path: Path
) -> None:
    everything = tmp_path / "chat-export.json"
    everything.write_text(json.dumps([openwebui_chat()]), encoding="utf-8")
    one = tmp_path / "one.json"
    one.write_text(json.dumps(openwebui_chat(), indent=1), encoding="utf-8")

    whole = run_cli("import", str(everything), "--format", form, env=proxy_env, cwd=tmp_path)
    single = run_cli("import", str(one), "--format", form, env=proxy_env, cwd=tmp_path)

    assert (whole.returncode, single.returncode) == (0, 0), whole.stdout + single.stdout
    assert whole.stdout.startswith("imported 1 chat(s), skipped 0 that exist, 0 failed")
    assert single.stdout.startswith("imported 0 chat(s), skipped 1 that exist, 0 failed")
    client = make_client()
    assert current_path(client, WEBUI_ID, {}) == WEBUI_ITEMS[:4]
    assert children(client, WEBUI_ID, "?parent=0", {}) == [1, 4]
    assert client.get(f"/{WEBUI_ID}/system").get_json()["content"] == "Be kind."


def test_the_cli_refuses_a_file_it_cannot_read_and_a_wrong_format_fails_each_chat(
    proxy_env: dict[str, str], tmp_path: Path
) -> None:
    unknown = tmp_path / "unknown.json"
    unknown.write_text('[{"messages": []}]', encoding="utf-8")
    truncated = tmp_path / "truncated.json"
    truncated.write_text(json.dumps(chatgpt_export())[:-40], encoding="utf-8")
    webui = tmp_path / "webui.json"
    webui.write_text(json.dumps([openwebui_chat()]), encoding="utf-8")

    found = run_cli("import", str(unknown), env=proxy_env, cwd=tmp_path)
    cut = run_cli("import", str(truncated), env=proxy_env, cwd=tmp_path)
    wrong = run_cli("import", str(webui), "--format", "chatgpt", env=proxy_env, cwd=tmp_path)

    assert found.returncode == 1
    assert found.stderr.startswith(f"error: {unknown}: not a format this command reads")
    assert cut.returncode == 1
    assert cut.stderr.startswith(f"error: {truncated}: not JSON")
    assert "Traceback" not in found.stderr + cut.stderr + wrong.stderr
    assert wrong.returncode == 1
    assert wrong.stdout.splitlines()[1].startswith(
        f"  chat [0] of the file (chat {WEBUI_ID!r}): mapping: Field required"
    )


@pytest.fixture
def client(make_client: MakeClient) -> ProxyClient:
    return make_client(PROXY_API_KEYS=KEYS)


def test_the_route_imports_a_chatgpt_export_into_the_callers_chats(client: ProxyClient) -> None:
    body = json.dumps(chatgpt_export())

    first = client.post("/import?format=chatgpt", data=body, headers=WEB)
    again = client.post("/import?format=chatgpt", data=body, headers=WEB)

    assert first.status_code == 200
    assert first.get_json() == {
        "imported": [GPT_ID, OTHER_ID],
        "skipped": [],
        "renamed": {},
        "failed": [
            {"line": None, "index": n, "id": c, "error": error} for n, c, error in EXPECTED_FAILURES
        ],
    }
    assert (again.get_json()["imported"], again.get_json()["skipped"]) == ([], [GPT_ID, OTHER_ID])
    assert_chatgpt_chats_are_there(client, WEB)
    assert client.get(f"/{GPT_ID}/export", headers=OPS).status_code == 404


def test_the_route_imports_an_openwebui_export_and_refuses_what_is_none(
    client: ProxyClient,
) -> None:
    imported = client.post(
        "/import?format=openwebui", data=json.dumps(openwebui_chat()), headers=OPS
    )
    not_chats = client.post("/import?format=openwebui", data="[{}, 3]", headers=OPS)
    not_json = client.post("/import?format=chatgpt", data="[{", headers=OPS)
    no_format = client.post("/import?format=claude", data="[]", headers=OPS)

    assert imported.get_json()["imported"] == [WEBUI_ID]
    assert current_path(client, WEBUI_ID, OPS) == WEBUI_ITEMS[:4]
    assert children(client, WEBUI_ID, "", OPS) == [0]
    assert (not_chats.status_code, not_chats.get_json()["error"]) == (
        400,
        "[1]: each chat of the file is a JSON object",
    )
    assert (not_json.status_code, not_json.get_json()["code"]) == (400, "invalid_json")
    assert no_format.status_code == 400
    assert no_format.get_json()["error"] == "format: must be native, chatgpt or openwebui"


def test_a_chat_over_max_chat_messages_fails_alone(make_client: MakeClient) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, MAX_CHAT_MESSAGES="5")
    body = json.dumps([chatgpt_conversation(), openwebui_chat()])

    chatgpt = client.post("/import?format=chatgpt", data=body, headers=WEB).get_json()
    webui = client.post("/import?format=openwebui", data=body, headers=WEB).get_json()

    assert (chatgpt["imported"], webui["imported"]) == ([], [WEBUI_ID])
    assert chatgpt["failed"][0] == {
        "line": None,
        "index": 0,
        "id": GPT_ID,
        "error": f"chat {GPT_ID!r} holds 7 items, more than MAX_CHAT_MESSAGES (5)",
    }
    assert [f["index"] for f in webui["failed"]] == [0]  # a ChatGPT conversation: no chat.history
    assert client.get(f"/{GPT_ID}/export", headers=WEB).status_code == 404

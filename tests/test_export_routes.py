"""Export and import over HTTP, on both stores: a chat's document, all of a tenant's chats as
NDJSON, an import of one document or of NDJSON into the caller's tenant only."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from chatproxy.errors import StoreUnavailable
from chatproxy.service.transfer import Transfer
from chatproxy.store.redis_chats import RedisChats
from chatproxy.store.sqlite import SqliteStore
from harness.fake_upstream import FakeUpstream
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.test_chat_management import KEYS, OPS, WEB, say

NDJSON = {"Content-Type": "application/x-ndjson"}


@pytest.fixture
def client(make_client: MakeClient, fake_upstream: FakeUpstream) -> ProxyClient:
    fake_upstream.usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    return make_client(PROXY_API_KEYS=KEYS)


def branched(client: ProxyClient, chat: str) -> None:
    say(client, chat, "hello", WEB)
    say(client, chat, "again", WEB)
    edit = json.dumps({"content": "other", "parent": 0})
    assert client.post(f"/{chat}/chat", data=edit, headers=WEB).status_code == 200
    assert client.post(f"/{chat}/system", data='{"content": "Be brief."}', headers=WEB)


def test_a_chat_exports_whole_and_imports_into_another_tenant_as_the_same_bytes(
    client: ProxyClient,
) -> None:
    branched(client, "tree")
    exported = client.get("/tree/export", headers=WEB)
    assert exported.status_code == 200
    assert exported.mimetype == "application/json"
    document = exported.get_json()
    assert [(i["id"], i["parent"]) for i in document["items"]] == [
        (0, None), (1, 0), (2, 1), (3, 2), (4, 0), (5, 4)
    ]  # fmt: skip
    assert (document["leaf"], document["system"]) == (5, "Be brief.")

    imported = client.post("/import", data=exported.data, headers=OPS)

    assert imported.get_json() == {
        "imported": ["tree"], "skipped": [], "renamed": {}, "failed": []
    }  # fmt: skip
    assert client.get("/tree/export", headers=OPS).data == exported.data
    assert (
        client.get("/tree/chat", headers=OPS).get_json()
        == client.get("/tree/chat", headers=WEB).get_json()
    )
    again = client.post("/import", data=exported.data, headers=OPS).get_json()
    assert (again["imported"], again["skipped"]) == ([], ["tree"])


def test_another_tenants_chat_or_none_is_not_found(client: ProxyClient) -> None:
    branched(client, "mine")

    assert client.get("/mine/export", headers=OPS).status_code == 404
    assert client.get("/nobody/export", headers=WEB).status_code == 404
    assert client.get("/mine/export").status_code == 401


def test_all_chats_export_as_ndjson_and_import_line_by_line(client: ProxyClient) -> None:
    for chat in ("a", "b", "c"):
        branched(client, chat)
    say(client, "not-web", "hi", OPS)

    exported = client.get("/export", headers=WEB)

    assert exported.status_code == 200
    assert exported.mimetype == "application/x-ndjson"
    lines = exported.data.decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == ["c", "b", "a"]
    client.post("/b/clear", headers=WEB)
    broken = lines[0].replace('"parent":0', '"parent":99', 1)
    body = "\n".join([lines[2], "", "not json", broken, lines[1]]) + "\n"

    report = client.post("/import", data=body, headers={**WEB, **NDJSON}).get_json()

    assert (report["imported"], report["skipped"]) == (["b"], ["a"])
    assert [(f["line"], f["id"]) for f in report["failed"]] == [(3, None), (4, "c")]
    assert "its parent 99 is not an item of the chat" in report["failed"][1]["error"]
    assert client.get("/export", headers=WEB).data == exported.data


def test_a_store_failing_while_all_chats_stream_is_logged_as_an_error(
    client: ProxyClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for chat in ("a", "b"):
        say(client, chat, "hello", WEB)
    whole = Transfer.export_chats

    async def failing(self: Transfer, tenant: str) -> AsyncIterator[str]:
        async for line in whole(self, tenant):
            yield line
            raise StoreUnavailable()  # the store goes away after the first chat

    monkeypatch.setattr(Transfer, "export_chats", failing)

    with pytest.raises(StoreUnavailable):  # the status was sent: the connection ends
        client.get("/export", headers=WEB)

    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert [r.getMessage() for r in errors] == ["error while answering GET /export"]
    assert errors[0].exc_info is not None


def test_a_bad_single_document_is_a_400_naming_the_place(client: ProxyClient) -> None:
    branched(client, "one")
    document = client.get("/one/export", headers=WEB).get_json()
    document["items"][2]["role"] = "robot"

    answer = client.post("/import", data=json.dumps(document), headers=OPS)

    assert answer.status_code == 400
    assert answer.get_json()["error"].startswith("items[2] (id 2).role:")
    assert client.get("/one/export", headers=OPS).status_code == 404
    assert client.post("/import?on_conflict=merge", data="{}", headers=OPS).status_code == 400
    assert client.post("/import", data="{", headers=OPS).get_json()["code"] == "invalid_json"


def test_on_conflict_replaces_or_imports_beside(client: ProxyClient) -> None:
    branched(client, "x")
    text = client.get("/x/export", headers=WEB).data
    say(client, "x", "more", WEB)

    beside = client.post("/import?on_conflict=new_id", data=text, headers=WEB).get_json()
    replaced = client.post("/import?on_conflict=replace", data=text, headers=WEB).get_json()

    assert replaced["imported"] == ["x"]
    assert client.get("/x/export", headers=WEB).data == text
    new_id = beside["renamed"]["x"]
    assert (
        client.get(f"/{new_id}/export", headers=WEB).get_json()["items"]
        == json.loads(text)["items"]
    )


def test_an_ndjson_line_past_max_body_bytes_is_reported_and_the_rest_imported(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, MAX_BODY_BYTES="2048")
    branched(client, "small")
    line = client.get("/small/export", headers=WEB).data.decode()
    client.post("/small/clear", headers=WEB)
    long = json.dumps({"format": "chatproxy.chat", "id": "long", "pad": "x" * 5000})

    report = client.post("/import", data=f"{long}\n{line}", headers={**WEB, **NDJSON}).get_json()

    assert report["imported"] == ["small"]
    assert report["failed"] == [
        {"line": 1, "id": None, "error": "longer than MAX_BODY_BYTES (2048)"}
    ]


def test_all_chats_with_the_store_down_is_a_503_not_an_empty_stream(
    client: ProxyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    say(client, "a", "hello", WEB)

    async def down(*args: object, **kwargs: object) -> None:
        raise StoreUnavailable()

    for store in (RedisChats, SqliteStore):  # whichever serves: its listing fails
        monkeypatch.setattr(store, "list_chats", down)

    answer = client.get("/export", headers=WEB)

    assert answer.status_code == 503
    assert answer.get_json()["code"] == "store_unavailable"
    assert answer.headers["Retry-After"]

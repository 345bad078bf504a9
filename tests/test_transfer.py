"""Export and import through the service (`service/transfer.py`), on both stores: the same
bytes after a round trip, every chat exactly once, a rerun adding nothing, bad chats reported
while the rest import."""

from __future__ import annotations

import json

import pytest

from chatproxy.service.transfer import ImportReport, Transfer
from chatproxy.store.base import Store
from chatproxy.store.chat_tree import ChatTree
from chatproxy.store.items import ChatRef, chained
from tests.conftest import MakeStore
from tests.test_store_contract import turn
from tests.test_store_export import CHAT, branched_chat


async def export_all(transfer: Transfer, tenant: str) -> list[str]:
    return [line async for line in transfer.export_chats(tenant)]


async def import_all(transfer: Transfer, tenant: str, lines: list[str], **kw: str) -> ImportReport:
    report = ImportReport()
    for number, line in enumerate(lines, start=1):
        await transfer.import_line(tenant, line, report, line=number, **kw)  # type: ignore[arg-type]
    return report


@pytest.mark.anyio
async def test_export_import_export_gives_the_same_bytes(store: Store) -> None:
    await branched_chat(store)
    transfer = Transfer(store)
    text = await transfer.export_chat(CHAT)

    report = ImportReport()
    await transfer.import_line("other", text, report)

    assert report.to_json() == {"imported": ["source"], "skipped": [], "renamed": {}, "failed": []}
    assert await transfer.export_chat(ChatRef("other", "source")) == text
    assert json.loads(text)["leaf"] == 3


@pytest.mark.anyio
async def test_every_chat_is_exported_once_though_many_share_their_last_activity(
    store: Store,
) -> None:
    times = [50.0] * 130 + [40.0, 30.0] + [20.0] * 90  # pages of 100 end inside the ties
    for n, updated in enumerate(times):
        tree = ChatTree(f"c{n}", 1.0, updated, chained(turn(n), 0, None), leaf=1)
        await store.save_tree(ChatRef("t", f"c{n}"), tree)
    await store.save_tree(ChatRef("elsewhere", "x"), tree)

    lines = await export_all(Transfer(store), "t")

    ids = [json.loads(line)["id"] for line in lines]
    assert sorted(ids) == sorted(f"c{n}" for n in range(len(times)))
    assert [json.loads(line)["updated"] for line in lines] == sorted(times, reverse=True)
    assert all(line.endswith("}\n") and line.count("\n") == 1 for line in lines)


@pytest.mark.anyio
async def test_importing_the_same_file_twice_adds_nothing(store: Store) -> None:
    await branched_chat(store)
    await branched_chat(store, ChatRef("public", "second"))
    transfer = Transfer(store)
    lines = await export_all(transfer, "public")

    first = await import_all(transfer, "copy", lines)
    second = await import_all(transfer, "copy", lines)

    assert sorted(first.imported) == ["second", "source"]
    assert (sorted(second.skipped), second.imported) == (["second", "source"], [])
    assert await export_all(transfer, "copy") == lines


@pytest.mark.anyio
async def test_replace_and_new_id_write_over_or_beside_an_existing_chat(store: Store) -> None:
    await branched_chat(store)
    transfer = Transfer(store)
    text = await transfer.export_chat(CHAT)
    small = ChatTree("source", 1.0, 2.0, chained(turn(7), 0, None), leaf=1)
    await store.save_tree(ChatRef("t", "source"), small)

    beside = await import_all(transfer, "t", [text], on_conflict="new_id")
    over = await import_all(transfer, "t", [text], on_conflict="replace")

    new_id = beside.renamed["source"]
    assert beside.imported == [new_id]
    assert new_id.startswith("source-")
    assert over.imported == ["source"]
    assert await transfer.export_chat(ChatRef("t", "source")) == text
    copy = json.loads(await transfer.export_chat(ChatRef("t", new_id)))
    assert copy == {**json.loads(text), "id": new_id}


@pytest.mark.anyio
async def test_bad_chats_are_reported_by_line_and_the_rest_imported(
    make_store: MakeStore,
) -> None:
    store = make_store(max_messages=6)
    transfer = Transfer(store)
    good = ChatTree("good", 1.0, 2.0, chained(turn(1), 0, None), leaf=1)
    big = ChatTree("big", 1.0, 2.0, chained(turn(1) * 4, 0, None), leaf=7)
    await store.save_tree(ChatRef("src", "good"), good)
    text = await transfer.export_chat(ChatRef("src", "good"))
    big_text = text.replace('"id":"good"', '"id":"big"')
    big_text = big_text.replace(
        '"items":[', '"items":[' + ",".join(json.dumps(m.to_json()) for m in big.items[2:]) + ","
    )
    orphan = text.replace('"id":"good"', '"id":"orphan"').replace('"parent":0', '"parent":5')
    lines = ['{"format": "chatproxy.chat", "id": "cut', big_text, "[1]", orphan, text]

    report = await import_all(transfer, "t", lines)

    assert report.imported == ["good"]
    failed = {entry["line"]: (entry["id"], entry["error"]) for entry in report.failed}
    assert failed[1][0] is None
    assert failed[1][1].startswith("not JSON")
    assert failed[2][0] == "big"
    assert "MAX_CHAT_MESSAGES (6)" in failed[2][1]
    assert failed[3] == (None, "not a chat document: a JSON object is expected")
    assert failed[4] == ("orphan", "items[1] (id 1): its parent 5 is not an item of the chat")
    assert await store.load_tree(ChatRef("t", "big")) is None
    assert await store.load_tree(ChatRef("t", "orphan")) is None

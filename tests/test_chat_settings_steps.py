"""A change of a chat's settings (`POST /<chat_id>/settings`: its own model, temperature,
max_tokens, compaction and system prompt) is one step on both stores: changes that meet keep
each other's, and one change is written whole or not at all."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
import redis

from chatproxy.config import load_settings
from chatproxy.errors import StoreError
from chatproxy.service.chats import Chats
from chatproxy.store import ChatRef, Store

pytestmark = pytest.mark.anyio
CHANGES = [{"model": "m-2"}, {"temperature": 0.5}, {"max_tokens": 64}, {"compaction": "summary"}]


def chats_on(store: Store) -> Chats:
    return Chats(load_settings({"MODEL": "m-1", "ALLOWED_MODELS": "m-2"}), store)


async def test_changes_of_different_settings_at_once_all_survive(store: Store) -> None:
    chats = chats_on(store)
    for n in range(5):
        chat = ChatRef("public", f"c{n}")
        await chats.update_chat_settings(chat, {"system": "Be brief."})

        await asyncio.gather(*(chats.update_chat_settings(chat, c) for c in CHANGES))

        own = (await chats.chat_settings(chat))["own"]
        assert own == {
            "model": "m-2",
            "temperature": 0.5,
            "max_tokens": 64,
            "compaction": "summary",
            "system": "Be brief.",
        }


@pytest.mark.parametrize("store_kind", ["sqlite"])
async def test_a_change_the_sqlite_store_fails_writes_neither_settings_nor_system(
    store: Store, tmp_path: Path
) -> None:
    chats, chat = chats_on(store), ChatRef("public", "c")
    await chats.update_chat_settings(chat, {"system": "Be brief.", "temperature": 0.5})
    db = sqlite3.connect(tmp_path / "chats.sqlite3")
    db.execute(  # the file refuses the new settings, as a full disk or a broken file would
        "CREATE TRIGGER refuse BEFORE UPDATE OF settings ON chats"
        " WHEN NEW.settings LIKE '%m-2%' BEGIN SELECT RAISE(ABORT, 'refused'); END"
    )
    db.commit()
    db.close()

    with pytest.raises(StoreError):
        await chats.update_chat_settings(chat, {"system": "Be a pirate.", "model": "m-2"})

    own = (await chats.chat_settings(chat))["own"]
    assert own == {"temperature": 0.5, "system": "Be brief."}


@pytest.mark.parametrize("store_kind", ["redis"])
async def test_a_change_of_settings_and_system_is_one_write_on_redis(
    store: Store, admin: redis.Redis
) -> None:
    chats, chat = chats_on(store), ChatRef("public", "c")
    await chats.update_chat_settings(chat, {"system": "Be brief.", "temperature": 0.5})
    admin.config_resetstat()

    answer = await chats.update_chat_settings(chat, {"system": "Be a pirate.", "model": "m-2"})

    assert answer["own"] == {"temperature": 0.5, "model": "m-2", "system": "Be a pirate."}
    # One script writes both (Redis runs a script whole; commandstats counts the calls it
    # makes apart), after a read of the settings it merges; one more reads what now applies.
    assert admin.info("commandstats")["cmdstat_evalsha"]["calls"] == 2

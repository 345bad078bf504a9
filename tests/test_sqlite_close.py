"""Closing the SQLite store waits for the calls still running on its file in worker threads: a
coroutine cancelled while its call runs (a background summary when the app stops) does not stop
the call, and a connection closed under a running statement crashes the process."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from chatproxy.store import ChatRef, Message
from chatproxy.store.sqlite import SqliteStore
from chatproxy.store.sqlite_file import SqliteFile

CHAT = ChatRef("public", "chat-1")


def test_closing_the_file_waits_for_a_use_that_has_begun(tmp_path: Path) -> None:
    file = SqliteFile(str(tmp_path / "chats.sqlite3"))
    entered, go_on = threading.Event(), threading.Event()
    answers: list[object] = []

    def use() -> None:
        with file.in_use():
            connection = file.connection()
            entered.set()
            go_on.wait(5)
            answers.append(connection.execute("SELECT 1").fetchone())

    user = threading.Thread(target=use)
    user.start()
    assert entered.wait(5)
    closer = threading.Thread(target=file.close)
    closer.start()

    closer.join(0.2)
    assert closer.is_alive()  # the use is still running: its connection stays open
    go_on.set()
    user.join(5)
    closer.join(5)
    assert not closer.is_alive()
    assert answers == [(1,)]


@pytest.mark.anyio
async def test_a_store_call_cancelled_while_it_waits_ends_before_the_store_closes(
    tmp_path: Path, anyio_backend: str
) -> None:
    path = tmp_path / "chats.sqlite3"
    store = SqliteStore(str(path), 3600)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("BEGIN IMMEDIATE")  # another process writing: the store's save waits
    saving = asyncio.ensure_future(
        store.save_turn(CHAT, "t1", [Message("user", "q"), Message("assistant", "a")])
    )
    await asyncio.sleep(0.2)
    saving.cancel()  # the coroutine ends; its call goes on waiting in its thread
    threading.Timer(0.3, writer.execute, ("COMMIT",)).start()

    await store.close()

    writer.close()
    reopened = SqliteStore(str(path), 3600)
    try:
        stored = (await reopened.load_window(CHAT, 10)).messages
    finally:
        await reopened.close()
    assert [m.content for m in stored] == ["q", "a"]  # the call ran to its end, then the close


def test_uses_that_start_while_the_file_closes_are_never_closed_under(tmp_path: Path) -> None:
    file = SqliteFile(str(tmp_path / "chats.sqlite3"))
    failures: list[BaseException] = []
    done = threading.Event()

    def use() -> None:
        while not done.is_set():
            try:
                with file.in_use():
                    file.connection().execute("SELECT count(*) FROM chats").fetchone()
            except BaseException as error:  # a connection closed under the use
                failures.append(error)
                return
            time.sleep(0.0005)  # calls come and go, as requests do

    users = [threading.Thread(target=use) for _ in range(3)]
    for user in users:
        user.start()
    for _ in range(50):
        file.close()
        time.sleep(0.001)
    done.set()
    for user in users:
        user.join(5)
    file.close()
    assert failures == []

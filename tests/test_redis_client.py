"""The Redis store's client (`store/redis_client.py`): the bound on calls in flight and its
error translation, and the scripts' short way to a single node (`ScriptRunner`), against a real
redis-server."""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit

import hiredis
import pytest
import redis
from redis.asyncio.connection import Connection

from chatproxy.config import RedisSettings
from chatproxy.errors import StoreError, StoreUnavailable
from chatproxy.store import ChatRef, Message
from chatproxy.store.redis import RedisStore
from chatproxy.store.redis_client import CallSlots, ScriptRunner, connect

A, B = ChatRef("public", "chat-a"), ChatRef("public", "chat-b")


def turn(n: int) -> list[Message]:
    return [Message("user", f"question {n}"), Message("assistant", f"answer {n}")]


def contents(messages: list[Message]) -> list[object]:
    return [m.content for m in messages]


@pytest.fixture
async def store(redis_url: str, anyio_backend: str) -> RedisStore:
    """A store whose pool holds one connection, so that every call reuses it."""
    made = RedisStore.from_settings(RedisSettings(redis_url, False, 2.0, max_connections=1), 3600)
    yield made  # type: ignore[misc]
    await made.close()


@pytest.mark.anyio
async def test_a_script_sent_on_a_connection_redis_closed_is_sent_again(
    store: RedisStore, admin: redis.Redis
) -> None:
    await store.save_turn(A, "t1", turn(1))
    killed = admin.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1  # the store's connection was closed under it

    assert contents((await store.load_window(A, 10)).messages) == ["question 1", "answer 1"]
    admin.client_kill_filter(_type="normal", skipme=True)
    assert await store.begin_turn(A, "token", 30, 10) is not None
    admin.client_kill_filter(_type="normal", skipme=True)
    assert await store.save_turn(A, "t2", turn(2), lock_token="token", release=True)
    assert len((await store.load_window(A, 10)).messages) == 4


@pytest.mark.anyio
async def test_a_script_call_cancelled_before_its_reply_leaves_none_for_the_next_call(
    store: RedisStore, admin: redis.Redis
) -> None:
    """The reply of a call given up on (a client that left, a deadline) must never be read as
    the answer to the next call on the same connection."""
    await store.save_turn(A, "a1", turn(1))
    await store.save_turn(B, "b1", turn(2))
    await store.save_turn(B, "b2", turn(3))
    for _ in range(3):
        admin.execute_command("CLIENT", "PAUSE", "150", "ALL")  # the call waits in Redis
        waiting = asyncio.ensure_future(store.load_window(A, 10))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

        read = await store.load_window(B, 10)  # sent while A's reply is still to come

        assert contents(read.messages) == [
            "question 2",
            "answer 2",
            "question 3",
            "answer 3",
        ]


@pytest.mark.anyio
async def test_a_script_redis_does_not_answer_in_time_is_an_outage_and_leaves_nothing_behind(
    redis_url: str, admin: redis.Redis
) -> None:
    """A script's read is bounded by REDIS_TIMEOUT and tried once more, as redis-py's own
    commands are; the reply that comes later is never read as another call's."""
    store = RedisStore.from_settings(RedisSettings(redis_url, False, 0.1, max_connections=1), 3600)
    try:
        await store.save_turn(A, "a1", turn(1))
        await store.save_turn(B, "b1", turn(2))
        admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
        paused = time.monotonic()
        for _ in range(2):  # the second makes a new connection: its handshake is bounded too
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as raised:
                await store.load_window(A, 10)
            assert time.monotonic() - started < 0.55  # two reads of 0.1 s and a short pause
            assert isinstance(raised.value.__cause__, redis.exceptions.TimeoutError)

        await asyncio.sleep(1.6 - (time.monotonic() - paused))  # the late replies have come
        read = await store.load_window(B, 10)

        assert contents(read.messages) == ["question 2", "answer 2"]
    finally:
        await store.close()


class SilentRelay:
    """A TCP relay to Redis whose connections can be made to go silent, as a NAT or a load
    balancer that forgot them would: what is sent on them is dropped and nothing comes back,
    while new connections are relayed as before."""

    def __init__(self, redis_url: str):
        where = urlsplit(redis_url)
        self._target = (where.hostname or "127.0.0.1", where.port or 6379)
        self._live: list[asyncio.StreamWriter] = []
        self._silent: set[asyncio.StreamWriter] = set()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> SilentRelay:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._live:
            writer.close()

    def silence(self) -> None:
        self._silent.update(self._live)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        self._live += [writer, up_writer]

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            while data := await source.read(65536):
                if sink not in self._silent:
                    sink.write(data)

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.mark.anyio
async def test_a_connection_gone_silent_is_given_up_after_one_bound_and_the_script_sent_again(
    redis_url: str,
) -> None:
    """Each attempt of a script has its own REDIS_TIMEOUT: a connection that went silent costs
    one of them, and the call is tried again on a new connection in time."""
    async with SilentRelay(redis_url) as relay:
        settings = RedisSettings(relay.url, False, 0.3, max_connections=1)
        store = RedisStore.from_settings(settings, 3600)
        try:
            await store.save_turn(A, "a1", turn(1))
            relay.silence()
            started = time.monotonic()

            read = await store.load_window(A, 10)

            assert 0.3 <= time.monotonic() - started < 2.0  # one bound, a short pause, a read
            assert contents(read.messages) == ["question 1", "answer 1"]
        finally:
            await store.close()


def test_scripts_arguments_are_packed_as_redis_py_packs_them() -> None:
    """hiredis packs the script calls; redis.asyncio's own packing is the reference."""
    command = ("EVALSHA", "ab" * 20, 2, "k:{é}", b"raw", 0, -7, 2**70, 0.1, 1796584988.0264418)
    by_hiredis = hiredis.pack_command(command)
    by_redis_py = b"".join(Connection().pack_command(*command))
    assert by_hiredis == by_redis_py


@pytest.mark.anyio
async def test_a_value_redis_cannot_be_sent_is_refused_before_any_call(redis_url: str) -> None:
    client = connect(RedisSettings(redis_url, False, 2.0))
    script = client.register_script("return 1")
    runner = ScriptRunner(client)
    try:
        with pytest.raises(redis.exceptions.DataError):
            await runner.run(script, ["k"], [None])
        assert await runner.run(script, ["k"], ["v", 1, 2.5]) == 1
    finally:
        await runner.aclose()
        await client.aclose()


@pytest.mark.anyio
async def test_call_slots_translate_redis_errors_and_always_give_their_slot_back() -> None:
    slots = CallSlots(1, 0.05)
    with pytest.raises(StoreUnavailable):
        async with slots.call():
            raise redis.exceptions.ConnectionError("gone")
    with pytest.raises(StoreError, match="ResponseError"):
        async with slots.call():
            raise redis.exceptions.ResponseError("ERR")
    with pytest.raises(KeyError):  # not Redis's: passed on as it is
        async with slots.call():
            raise KeyError("x")
    async with slots.call():  # the one slot is free again
        pass


@pytest.mark.anyio
async def test_a_call_waits_for_a_taken_slot_and_gives_up_as_an_outage() -> None:
    slots = CallSlots(1, 0.05)
    async with slots.call():
        with pytest.raises(StoreUnavailable):
            async with slots.call():
                pass

    async def hold_briefly() -> None:
        async with slots.call():
            await asyncio.sleep(0.01)

    holder = asyncio.ensure_future(hold_briefly())
    await asyncio.sleep(0)
    async with slots.call():  # waits the 10 ms, within its 50
        assert holder.done()

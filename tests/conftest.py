"""Shared fixtures: a real redis-server, a real fake OpenAI upstream, and the real app."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import functions_framework
import openai
import pytest
import redis

from chatproxy.config import RedisSettings
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef
from chatproxy.store.redis import RedisStore
from chatproxy.store.sqlite import SqliteStore
from harness.fake_upstream import FakeUpstream
from harness.redis_server import RedisServer
from harness.server_process import CONFIG_VARS, MAIN, Server, StartServer, launch, server_env
from tests.asgi_client import ProxyClient

MakeClient = Callable[..., ProxyClient]
SDK_KEY = "sdk-key-0123456789abcdef"
MakeStore = Callable[..., Store]


async def take_lock(store: Store, chat: ChatRef, token: str, lease_seconds: float) -> bool:
    """Take the chat's turn lock as a turn does, reading no messages; whether it was free."""
    return await store.begin_turn(chat, token, lease_seconds, 0) is not None


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Run each test in its own directory (so no `.env` is picked up) with a clean environment."""
    monkeypatch.chdir(tmp_path)
    for name in CONFIG_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    """A plain client of the test's Redis, to write or inspect keys behind a store's back."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def fake_upstream_server() -> Iterator[FakeUpstream]:
    server = FakeUpstream()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def fake_upstream(fake_upstream_server: FakeUpstream) -> Iterator[FakeUpstream]:
    """The session's fake upstream with nothing recorded and nothing scripted."""
    fake_upstream_server.reset()
    yield fake_upstream_server
    fake_upstream_server.reset()


@pytest.fixture(params=["redis", "sqlite"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Coroutine tests (`@pytest.mark.anyio`) run on asyncio, as the service does."""
    return "asyncio"


@pytest.fixture
async def make_store(
    store_kind: str, request: pytest.FixtureRequest, tmp_path: Path, anyio_backend: str
) -> AsyncIterator[MakeStore]:
    """Build stores of the parametrized kind over one shared database (the session's Redis,
    emptied, or one SQLite file), on the test's event loop; all are closed after the test."""
    made: list[Store] = []

    def make(ttl_seconds: int | None = 3600, max_messages: int = 0) -> Store:
        store: Store
        if store_kind == "redis":
            settings = RedisSettings(request.getfixturevalue("redis_url"), False, 2.0)
            store = RedisStore.from_settings(settings, ttl_seconds, max_messages)
        else:
            store = SqliteStore(str(tmp_path / "chats.sqlite3"), ttl_seconds, max_messages)
        made.append(store)
        return store

    yield make
    for store in made:
        await store.close()


@pytest.fixture
def store(make_store: MakeStore) -> Store:
    return make_store()


@pytest.fixture
def proxy_env(
    store_kind: str, request: pytest.FixtureRequest, fake_upstream: FakeUpstream, tmp_path: Path
) -> dict[str, str]:
    """The environment of a proxy that talks to the fake upstream and the chosen store."""
    env = {
        "GPT_API_KEY": "sk-test-proxy-key",
        "OPENAI_BASE_URL": fake_upstream.base_url,
        "UPSTREAM_MAX_RETRIES": "0",
        "UPSTREAM_TIMEOUT": "5",
    }
    if store_kind == "redis":
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    else:
        env["STORE_PATH"] = str(tmp_path / "chats.sqlite3")
    return env


@pytest.fixture
def make_client(monkeypatch: pytest.MonkeyPatch, proxy_env: dict[str, str]) -> Iterator[MakeClient]:
    """Build the real functions-framework app from main.py with `proxy_env` plus overrides, and
    a client that calls it in process (`ProxyClient`). An override of None removes that variable.
    """
    made = []

    def make(**overrides: str | None) -> ProxyClient:
        for name, value in {**proxy_env, **overrides}.items():
            if value is None:
                monkeypatch.delenv(name, raising=False)
            else:
                monkeypatch.setenv(name, value)
        client = ProxyClient(functions_framework.create_app(target="main", source=str(MAIN)))
        made.append((client, sys.modules["main"].app))
        return client

    yield make
    for client, app in made:
        client.portal_call(app.aclose)  # on the app's loop, where its connections live
        client.close()


@pytest.fixture
def client(make_client: MakeClient) -> ProxyClient:
    return make_client()


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """`start_server(env) -> Server`: the real server process, ready, stopped at teardown."""
    servers: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        server = launch(env, tmp_path)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def openai_proxy(
    start_server: StartServer, proxy_env: dict[str, str]
) -> Iterator[tuple[openai.OpenAI, str]]:
    """The real server process over the fake upstream and the chosen store, with the key
    `SDK_KEY` and the system prompt "Be kind.", and the official `openai` client pointed at
    its `/v1`; and the server's URL."""
    server = start_server(
        server_env(**proxy_env, PROXY_API_KEYS=f"sdk={SDK_KEY}", SYSTEM_PROMPT="Be kind.")
    )
    client = openai.OpenAI(api_key=SDK_KEY, base_url=f"{server.url}/v1", max_retries=0)
    yield client, server.url
    client.close()

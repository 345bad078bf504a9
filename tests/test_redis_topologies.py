"""The Redis backend over the topologies production may use: TLS with a private CA, and a Cluster.

One TLS-only redis-server (self-signed CA made with openssl) and one 3-primary Redis Cluster are
started for the module. Each is spoken to through the store (`RedisStore`), and through the whole
app built by functions-framework with the matching environment (REDIS_CA_CERT, REDIS_CLUSTER).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

from chatproxy.config import ConfigError, RedisSettings, load_settings
from chatproxy.errors import StoreError, StoreUnavailable
from chatproxy.store.base import Store
from chatproxy.store.idempotency import IdempotentResult
from chatproxy.store.items import ChatRef, Message, chained
from chatproxy.store.redis import RedisStore
from chatproxy.store.redis_keys import GLOBAL_SYSTEM_KEY, index_key
from harness.fake_upstream import FakeUpstream
from harness.redis_server import RedisClusterServers, RedisServer
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient

CHAT = ChatRef("public", "chat-1")


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def store_kind() -> str:
    """Override conftest's parametrized fixture: every test here is about Redis, run once."""
    return "redis"


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis-tls"), tls=True).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    cluster = RedisClusterServers(tmp_path_factory.mktemp("redis-cluster")).start()
    yield cluster
    cluster.stop()


@pytest.fixture
def tls(tls_server: RedisServer) -> RedisServer:
    """The module's TLS server, emptied for this test."""
    with tls_server.client() as client:
        client.flushall()
    return tls_server


@pytest.fixture
def cluster(cluster_servers: RedisClusterServers) -> RedisClusterServers:
    """The module's cluster, every node emptied for this test."""
    cluster_servers.flushall()
    return cluster_servers


OpenRedis = Callable[[RedisSettings], Store]


@pytest.fixture
async def open_redis(anyio_backend: str) -> AsyncIterator[OpenRedis]:
    """Open stores on given settings, on the test's event loop; all are closed after the test."""
    opened: list[Store] = []

    def open_store(settings: RedisSettings) -> Store:
        opened.append(RedisStore.from_settings(settings, 3600))
        return opened[-1]

    yield open_store
    for store in opened:
        await store.close()


@pytest.fixture
def cluster_store(cluster: RedisClusterServers, open_redis: OpenRedis) -> Store:
    return open_redis(RedisSettings(url=cluster.url, ssl=False, socket_timeout=2.0, cluster=True))


# -- helpers ----------------------------------------------------------------------------------


def turn(n: int) -> list[Message]:
    return [
        Message("user", f"question {n}", created_at=1000.0 + n),
        Message("assistant", f"answer {n}", created_at=1000.5 + n, model="m-1"),
    ]


def contents(messages: list[Message]) -> list[object]:
    return [m.content for m in messages]


def keys_per_node(cluster: RedisClusterServers, pattern: str) -> dict[int, set[str]]:
    """Ask every node (not the cluster client) which keys it holds itself."""
    held: dict[int, set[str]] = {}
    for node, client in zip(cluster.nodes, cluster.node_clients(), strict=True):
        with client:
            held[node.port] = {str(key) for key in client.keys(pattern)}
    return held


def exception_chain(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def post(client: ProxyClient, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def history(client: ProxyClient, chat_id: str) -> list[dict[str, Any]]:
    """The chat's history without timestamps, tokens and models."""
    response = client.get(f"/{chat_id}/chat")
    assert response.status_code == 200, response.get_data(as_text=True)
    return [{"role": m["role"], "content": m["content"]} for m in response.get_json()]


# -- TLS --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_store_saves_loads_and_deletes_a_chat_over_tls_verified_by_the_ca(
    tls: RedisServer, open_redis: OpenRedis
) -> None:
    settings = RedisSettings(url=tls.url, ssl=True, socket_timeout=2.0, ca_cert=str(tls.ca_path))
    store = open_redis(settings)
    await store.ping()
    assert await store.save_turn(CHAT, "t1", turn(1)) is True

    assert (await store.load_history(CHAT)).messages == chained(turn(1), 0, None)
    assert await store.delete_chat(CHAT) is True
    assert (await store.load_history(CHAT)).exists is False


@pytest.mark.anyio
async def test_tls_server_with_an_unknown_ca_is_refused_as_a_setup_error(
    tls: RedisServer, open_redis: OpenRedis
) -> None:
    """Without REDIS_CA_CERT the self-signed certificate must fail verification, never pass.

    It is a store error that names REDIS_CA_CERT, not a transient outage worth retrying.
    """
    store = open_redis(RedisSettings(url=tls.url, ssl=True, socket_timeout=2.0))
    with pytest.raises(StoreError, match="REDIS_CA_CERT") as caught:
        await store.ping()
    assert not isinstance(caught.value, StoreUnavailable)
    with pytest.raises(StoreError, match="REDIS_CA_CERT"):
        await store.save_turn(CHAT, "t1", turn(1))

    assert any(isinstance(e, ssl.SSLCertVerificationError) for e in exception_chain(caught.value))
    with tls.client() as client:
        assert client.keys("*") == []  # nothing was written over the unverified connection


def test_app_serves_chats_over_tls_with_redis_ca_cert(
    make_client: MakeClient, tls: RedisServer
) -> None:
    client = make_client(
        REDIS_URL=tls.url, REDIS_CA_CERT=str(tls.ca_path), REDIS_CLUSTER=None, STORE_PATH=None
    )

    health = client.get("/")
    assert (health.status_code, health.get_json()["store"]) == (200, "redis")
    post(client, "/c1/chat", {"content": "hi"})

    messages = history(client, "c1")
    assert [m["role"] for m in messages] == ["user", "assistant"]
    assert messages[0]["content"] == "hi"
    with tls.client() as redis_client:
        assert redis_client.hlen("chat:{public:c1}:items") == 2


def test_app_counts_rate_limits_and_budgets_over_tls_with_redis_ca_cert(
    make_client: MakeClient, tls: RedisServer, fake_upstream: FakeUpstream
) -> None:
    client = make_client(
        REDIS_URL=tls.url,
        REDIS_CA_CERT=str(tls.ca_path),
        REDIS_CLUSTER=None,
        STORE_PATH=None,
        RATE_LIMIT="3/minute",
        RATE_LIMIT_PER_ADDRESS="10/minute",
        TOKEN_BUDGET_PER_DAY="1000",
    )

    post(client, "/c1/chat", {"content": "hi"})
    statuses = [client.get("/c1/chat").status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    with tls.client() as redis_client:
        counters = {str(key) for key in redis_client.keys("LIMITS:*")}
    assert any("/requests/ip/" in key for key in counters)
    assert any("/address/" in key for key in counters)
    assert any("/tokens/" in key for key in counters)


def test_a_ca_cert_with_a_plain_redis_url_is_refused_at_start_up(
    redis_url: str, tls_server: RedisServer
) -> None:
    environ = {"REDIS_URL": redis_url, "REDIS_CA_CERT": str(tls_server.ca_path)}

    with pytest.raises(ConfigError, match="REDIS_CA_CERT"):
        load_settings(environ)


# -- Redis Cluster ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_cluster_keeps_each_chat_on_one_slot_and_spreads_chats_over_nodes(
    cluster: RedisClusterServers, cluster_store: Store
) -> None:
    chats = [ChatRef("public", f"chat-{n}") for n in range(12)]
    for n, chat in enumerate(chats):
        assert await cluster_store.save_turn(chat, f"t{n}", turn(n))
        edit = Message("user", f"edited {n}").placed(2, None)  # a second first message: `:kids`
        assert await cluster_store.save_turn(chat, f"e{n}", [edit])
    await cluster_store.set_global_system("global")

    held = keys_per_node(cluster, "chat:*")
    assert len([port for port, keys in held.items() if keys]) >= 2
    with cluster.client() as client:
        for chat in chats:
            items, meta, kids = (f"chat:{chat.slot}:{name}" for name in ("items", "meta", "kids"))
            assert client.keyslot(items) == client.keyslot(meta) == client.keyslot(kids)
            owner = client.get_node_from_key(items)
            assert owner is not None
            assert {items, meta, kids} <= held[owner.port]
        assert client.keyslot(GLOBAL_SYSTEM_KEY) != client.keyslot(f"chat:{chats[0].slot}:items")
    assert sum(len(keys) for keys in held.values()) == 3 * len(chats)


@pytest.mark.anyio
async def test_cluster_returns_windows_and_histories_oldest_first(
    cluster_store: Store,
) -> None:
    other = ChatRef("public", "other")
    for n in range(4):
        await cluster_store.save_turn(CHAT, f"t{n}", turn(n))
    await cluster_store.save_turn(other, "t9", turn(9))

    assert contents((await cluster_store.load_window(CHAT, 3)).messages) == [
        "answer 2",
        "question 3",
        "answer 3",
    ]
    assert (await cluster_store.load_history(CHAT)).messages == chained(
        [m for n in range(4) for m in turn(n)], 0, None
    )
    assert (await cluster_store.load_history(other)).messages == chained(turn(9), 0, None)
    assert (await cluster_store.load_window(CHAT, 0)).messages == []


@pytest.mark.anyio
async def test_cluster_stores_a_repeated_turn_id_once(cluster_store: Store) -> None:
    assert await cluster_store.save_turn(CHAT, "same", turn(1)) is True
    assert await cluster_store.save_turn(CHAT, "same", turn(1)) is False

    assert (await cluster_store.load_history(CHAT)).messages == chained(turn(1), 0, None)


@pytest.mark.anyio
async def test_cluster_sets_and_removes_chat_and_global_system_prompts(
    cluster_store: Store,
) -> None:
    other = ChatRef("public", "other")
    assert await cluster_store.get_global_system() is None
    await cluster_store.set_global_system("Be brief.")
    await cluster_store.set_chat_system(CHAT, "Be a pirate.")
    await cluster_store.save_turn(CHAT, "t1", turn(1))

    state = await cluster_store.load_window(CHAT, 5)
    assert (state.exists, state.chat_system, state.global_system) == (
        True,
        "Be a pirate.",
        "Be brief.",
    )
    assert (await cluster_store.load_window(other, 5)).chat_system is None

    await cluster_store.set_chat_system(CHAT, None)
    state = await cluster_store.load_window(CHAT, 5)
    saved = chained(turn(1), 0, None)
    assert (state.chat_system, state.global_system, state.messages) == (None, "Be brief.", saved)
    assert await cluster_store.get_global_system() == "Be brief."


@pytest.mark.anyio
async def test_cluster_deletes_a_whole_chat_and_nothing_else(
    cluster: RedisClusterServers, cluster_store: Store
) -> None:
    other = ChatRef("public", "keep-me")
    await cluster_store.save_turn(CHAT, "t1", turn(1))
    await cluster_store.set_chat_system(CHAT, "mine")
    await cluster_store.save_turn(other, "t2", turn(2))
    await cluster_store.set_global_system("global")

    assert await cluster_store.delete_chat(CHAT) is True
    assert await cluster_store.delete_chat(CHAT) is False

    state = await cluster_store.load_history(CHAT)
    assert (state.exists, state.chat_system, state.messages) == (False, None, [])
    assert (await cluster_store.load_history(other)).messages == chained(turn(2), 0, None)
    assert await cluster_store.get_global_system() == "global"
    remaining = set().union(*keys_per_node(cluster, "*").values())
    index = "chats:{public}"  # the tenant's listing, without the deleted chat
    assert remaining == {  # a linear chat has no `:kids`
        f"chat:{other.slot}:items",
        f"chat:{other.slot}:meta",
        GLOBAL_SYSTEM_KEY,
        index,
    }
    with cluster.client() as client:
        assert client.zrange(index, 0, -1) == ["keep-me"]


@pytest.mark.anyio
async def test_cluster_deletes_idempotency_records_with_their_items_and_their_chat(
    cluster: RedisClusterServers, cluster_store: Store
) -> None:
    """The deletes find the records by their links and are run again with them declared (a
    script on a cluster touches the keys it is given)."""
    for n, key in enumerate(("k1", "k2")):
        assert (await cluster_store.claim_idempotency(CHAT, key, "body", 30)).state == "new"
        answer = IdempotentResult(key, "body", f'{{"content": "{key}"}}')
        assert await cluster_store.save_turn(CHAT, f"t{n}", turn(n), idempotent=answer)

    assert await cluster_store.delete_items(CHAT, [1]) == [1]
    held = set().union(*keys_per_node(cluster, f"chat:{CHAT.slot}:idem*").values())
    assert held == {f"chat:{CHAT.slot}:idem:k2", f"chat:{CHAT.slot}:idems"}
    assert await cluster_store.delete_chat(CHAT) is True

    assert set().union(*keys_per_node(cluster, "chat:*").values()) == set()
    assert (await cluster_store.claim_idempotency(CHAT, "k2", "body", 30)).state == "new"


@pytest.mark.anyio
async def test_cluster_import_replacing_a_chat_deletes_its_idempotency_records(
    cluster: RedisClusterServers, cluster_store: Store
) -> None:
    assert (await cluster_store.claim_idempotency(CHAT, "k1", "body", 30)).state == "new"
    answer = IdempotentResult("k1", "body", '{"content": "k1"}')
    assert await cluster_store.save_turn(CHAT, "t1", turn(1), idempotent=answer)
    tree = await cluster_store.load_tree(CHAT)
    assert tree is not None

    assert await cluster_store.save_tree(CHAT, tree, replace=True) is True

    assert set().union(*keys_per_node(cluster, f"chat:{CHAT.slot}:idem*").values()) == set()
    assert (await cluster_store.claim_idempotency(CHAT, "k1", "body", 30)).state == "new"
    assert (await cluster_store.load_history(CHAT)).messages == chained(turn(1), 0, None)


@pytest.mark.anyio
async def test_cluster_trimming_deletes_the_records_of_the_turns_it_drops(
    cluster: RedisClusterServers,
) -> None:
    settings = RedisSettings(url=cluster.url, ssl=False, socket_timeout=2.0, cluster=True)
    store = RedisStore.from_settings(settings, 3600, 2)
    try:
        for n, key in enumerate(("k1", "k2")):  # items 0, 1; then 2, 3, and 0, 1 dropped
            assert (await store.claim_idempotency(CHAT, key, "body", 30)).state == "new"
            answer = IdempotentResult(key, "body", f'{{"content": "{key}"}}')
            assert await store.save_turn(CHAT, f"t{n}", turn(n), idempotent=answer)

        held = set().union(*keys_per_node(cluster, f"chat:{CHAT.slot}:idem*").values())
        assert held == {f"chat:{CHAT.slot}:idem:k2", f"chat:{CHAT.slot}:idems"}
        assert (await store.claim_idempotency(CHAT, "k1", "body", 30)).state == "new"
        assert (await store.load_history(CHAT)).messages == chained(turn(1), 2, 1)
    finally:
        await store.close()


@pytest.mark.anyio
async def test_cluster_loads_and_deletes_items_and_lists_the_chat_with_its_metadata(
    cluster_store: Store,
) -> None:
    other = ChatRef("public", "other")
    await cluster_store.save_turn(CHAT, "t1", turn(1))
    await cluster_store.save_turn(other, "t2", turn(2))
    await cluster_store.set_chat_metadata(other, {"topic": "cats"})

    assert await cluster_store.delete_items(CHAT, [0]) == [0]

    assert await cluster_store.load_items(CHAT, [0, 1]) == [None, turn(1)[1].placed(1, None)]
    listed = await cluster_store.list_chats("public", 10, None)
    assert [(c.chat_id, c.metadata) for c in listed] == [  # the delete is the newest activity
        ("chat-1", None),
        ("other", {"topic": "cats"}),
    ]


def on_cluster(cluster: RedisClusterServers) -> dict[str, str | None]:
    """The overrides of `make_client` that put the app's store on the cluster."""
    return {
        "REDIS_URL": cluster.url,
        "REDIS_CLUSTER": "1",
        "REDIS_SSL": "0",
        "REDIS_CA_CERT": None,
        "STORE_PATH": None,
    }


def test_app_serves_separate_chats_and_system_prompts_over_the_cluster(
    make_client: MakeClient, cluster: RedisClusterServers, fake_upstream: FakeUpstream
) -> None:
    client = make_client(**on_cluster(cluster))
    health = client.get("/")
    assert (health.status_code, health.get_json()["store"]) == (200, "redis")
    chat_ids = [f"chat-{n}" for n in range(6)]

    post(client, "/system", {"content": "Be global."})
    post(client, "/chat-1/system", {"content": "Be chat one."})
    for chat_id in chat_ids:
        fake_upstream.reply_text = f"reply in {chat_id}"
        post(client, f"/{chat_id}/chat", {"content": f"hello {chat_id}"})
        system = fake_upstream.chat_requests()[-1]["messages"][0]
        expected = "Be chat one." if chat_id == "chat-1" else "Be global."
        assert system == {"role": "system", "content": expected}

    for chat_id in chat_ids:
        prompt = "Be chat one." if chat_id == "chat-1" else "Be global."
        assert history(client, chat_id) == [
            {"role": "system", "content": prompt},
            {"role": "user", "content": f"hello {chat_id}"},
            {"role": "assistant", "content": f"reply in {chat_id}"},
        ]
    assert len([keys for keys in keys_per_node(cluster, "chat:*").values() if keys]) >= 2

    assert client.delete("/chat-2/chat").get_json() == {"chat_id": "chat-2", "deleted": True}
    assert client.get("/chat-2/chat").get_json() == []
    assert client.get("/chat-1/system").get_json()["source"] == "chat"


def test_app_counts_rate_limits_over_the_cluster(
    make_client: MakeClient, cluster: RedisClusterServers
) -> None:
    client = make_client(
        **on_cluster(cluster),
        RATE_LIMIT="3/minute",
        RATE_LIMIT_PER_ADDRESS="5/minute",
        TRUSTED_PROXY_HOPS="1",
    )

    def get(address: str) -> int:
        return int(client.get("/c1/chat", headers={"X-Forwarded-For": address}).status_code)

    assert [get("198.51.100.1") for _ in range(4)] == [200, 200, 200, 429]
    assert client.get("/", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 200
    refused = client.get("/", headers={"X-Forwarded-For": "198.51.100.1"})
    assert refused.status_code == 429
    assert "per client address" in refused.get_json()["error"]
    assert get("198.51.100.2") == 200
    counters = set().union(*keys_per_node(cluster, "LIMITS:*").values())
    assert any("/requests/ip/198.51.100.1/" in key for key in counters)
    assert any("/address/198.51.100.1/" in key for key in counters)


@pytest.mark.anyio
async def test_cluster_reads_refresh_the_listing_with_the_chat(
    cluster: RedisClusterServers, cluster_store: Store
) -> None:
    assert await cluster_store.save_turn(CHAT, "t0", turn(0))
    listing = index_key(CHAT.tenant)
    reads: list[Callable[[], Awaitable[object]]] = [
        lambda: cluster_store.load_window(CHAT, 5),
        lambda: cluster_store.load_history(CHAT),
        lambda: cluster_store.load_items(CHAT, [1]),
        lambda: cluster_store.load_tree(CHAT),
    ]
    with cluster.client() as client:
        for read in reads:
            client.expire(listing, 5)  # as if the chat's last write were nearly an hour ago

            await read()

            assert client.ttl(listing) > 3000
    assert [info.chat_id for info in await cluster_store.list_chats("public", 10, None)] == [
        CHAT.chat_id
    ]

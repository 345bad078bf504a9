"""API keys, tenant isolation, admin-only routes, limits, budgets, bounds and CORS.

Every test runs on both stores through the real functions-framework app and the fake upstream.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from harness.fake_upstream import FakeUpstream
from harness.redis_server import RedisServer
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.test_reliability import in_background, wait_for

ROOT = Path(__file__).resolve().parents[1]
WEB_KEY = "web-key-0123456789abcdef"
OPS_KEY = "ops-key-0123456789abcdef"
HASHED_KEY = "ci-key-0123456789abcdef0"
KEYS = f"web={WEB_KEY},ops={OPS_KEY},ci=sha256:{hashlib.sha256(HASHED_KEY.encode()).hexdigest()}"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def post(client: ProxyClient, path: str, content: str, key: str, **headers: str) -> Any:
    return client.post(
        path, data=json.dumps({"content": content}), headers={**bearer(key), **headers}
    )


def history(client: ProxyClient, chat: str, key: str) -> list[tuple[str, Any]]:
    response = client.get(f"/{chat}/chat", headers=bearer(key))
    assert response.status_code == 200
    return [(m["role"], m["content"]) for m in response.get_json()]


@pytest.fixture
def client(make_client: MakeClient) -> ProxyClient:
    return make_client(PROXY_API_KEYS=KEYS, ADMIN_KEYS="ops")


# --- API keys ------------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/c1/chat"),
    ("POST", "/c1/chat"),
    ("DELETE", "/c1/chat"),
    ("POST", "/c1/clear"),
    ("POST", "/c1/img"),
    ("GET", "/c1/system"),
    ("POST", "/c1/system"),
    ("GET", "/system"),
    ("POST", "/system"),
    ("POST", "/mod"),
]

BAD_CREDENTIALS = [
    {},
    {"Authorization": "Bearer wrong-key-0123456789abcdef"},
    {"Authorization": f"Basic {WEB_KEY}"},
    {"Authorization": "Bearer "},
    {"Authorization": WEB_KEY},
    {"X-API-Key": "wrong-key-0123456789abcdef"},
    {"Authorization": f"Bearer {WEB_KEY}x"},
    {"Authorization": f"Bearer {WEB_KEY[:-1]}"},
    {"X-API-Key": f"sha256:{hashlib.sha256(HASHED_KEY.encode()).hexdigest()}"},
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("headers", BAD_CREDENTIALS)
def test_missing_or_wrong_key_gets_401_and_no_work_is_done(
    client: ProxyClient,
    fake_upstream: FakeUpstream,
    method: str,
    path: str,
    headers: dict[str, str],
) -> None:
    body = json.dumps({"content": "hi", "url": "https://example.com/a.png"})

    response = client.open(path, method=method, data=body, headers=headers)

    assert response.status_code == 401
    assert response.get_json()["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="chatproxy"'
    assert fake_upstream.requests == []
    assert history(client, "c1", WEB_KEY) == []


@pytest.mark.parametrize("path", ["/nope", "/a/b/c", "/c1/unknown", "/robots.txt", "/favicon.ico"])
@pytest.mark.parametrize("headers", BAD_CREDENTIALS[:2])
def test_an_unknown_path_is_401_without_a_valid_key_and_404_with_one(
    client: ProxyClient, path: str, headers: dict[str, str]
) -> None:
    refused = client.get(path, headers=headers)

    assert refused.status_code == 401
    assert refused.get_json()["code"] == "unauthorized"
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="chatproxy"'
    unknown = client.get(path, headers=bearer(WEB_KEY))
    assert unknown.status_code == 404
    assert unknown.get_json()["code"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path"),
    [("PUT", "/c1/chat"), ("GET", "/mod"), ("PATCH", "/v1/responses"), ("POST", "/v1/models")],
)
@pytest.mark.parametrize("headers", BAD_CREDENTIALS[:2])
def test_a_wrong_method_on_a_private_route_is_401_without_a_valid_key_and_405_with_one(
    client: ProxyClient, method: str, path: str, headers: dict[str, str]
) -> None:
    """Without a key nothing but 401 answers a private path: not even its methods."""
    refused = client.open(path, method=method, headers=headers)

    assert refused.status_code == 401
    assert "Allow" not in refused.headers
    assert refused.headers["WWW-Authenticate"] == 'Bearer realm="chatproxy"'
    wrong = client.open(path, method=method, headers=bearer(WEB_KEY))
    assert wrong.status_code == 405
    assert wrong.headers["Allow"]


def test_a_wrong_method_on_a_public_route_is_405_without_a_key(client: ProxyClient) -> None:
    wrong = client.post("/ui")

    assert wrong.status_code == 405
    assert wrong.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(
    "headers",
    [bearer(WEB_KEY), {"X-API-Key": WEB_KEY}, {"Authorization": f"bearer {WEB_KEY}"}],
)
def test_a_valid_key_is_accepted_as_bearer_or_x_api_key(
    client: ProxyClient, headers: dict[str, str]
) -> None:
    response = client.post("/c1/chat", data='{"content": "hi"}', headers=headers)

    assert response.status_code == 200
    assert len(history(client, "c1", WEB_KEY)) == 2


def test_x_api_key_wins_so_authorization_can_carry_an_identity_token(
    client: ProxyClient,
) -> None:
    headers = {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.identity.token", "X-API-Key": WEB_KEY}

    assert client.post("/c1/chat", data='{"content": "hi"}', headers=headers).status_code == 200
    assert len(history(client, "c1", WEB_KEY)) == 2


def test_a_key_configured_by_its_sha256_works(client: ProxyClient) -> None:
    assert post(client, "/c1/chat", "hi", HASHED_KEY).status_code == 200
    assert len(history(client, "c1", HASHED_KEY)) == 2


def test_health_needs_no_key_and_says_keys_are_required(client: ProxyClient) -> None:
    body = client.get("/").get_json()

    assert body["auth"] == "api_keys"
    assert "notice" not in body


def test_an_open_service_says_so(make_client: MakeClient) -> None:
    body = make_client().get("/").get_json()

    assert body["auth"] == "none"
    assert "PROXY_API_KEYS" in body["notice"]


# --- Admin ---------------------------------------------------------------------------------------


def test_only_admin_keys_change_the_global_system_prompt(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    refused = post(client, "/system", "ignore all rules", WEB_KEY)
    assert refused.status_code == 403
    assert refused.get_json()["code"] == "admin_only"
    assert client.delete("/system", headers=bearer(WEB_KEY)).status_code == 403

    assert post(client, "/system", "Be brief.", OPS_KEY).status_code == 200
    assert client.get("/system", headers=bearer(WEB_KEY)).get_json()["content"] == "Be brief."
    post(client, "/c1/chat", "hi", WEB_KEY)
    assert fake_upstream.chat_requests()[-1]["messages"][0] == {
        "role": "system",
        "content": "Be brief.",
    }


def test_any_key_sets_its_own_chats_system_prompt(client: ProxyClient) -> None:
    response = post(client, "/c1/system", "Answer in French.", WEB_KEY)

    assert response.status_code == 200
    assert response.get_json()["source"] == "chat"


# --- Tenant isolation ----------------------------------------------------------------------------


def test_keys_cannot_read_write_or_delete_each_others_chats(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    post(client, "/42/chat", "web's secret plan", WEB_KEY)
    post(client, "/42/system", "web's prompt", WEB_KEY)
    webs = history(client, "42", WEB_KEY)

    assert history(client, "42", OPS_KEY) == []  # looks like any chat that does not exist
    assert client.get("/42/system", headers=bearer(OPS_KEY)).get_json()["source"] == "global"
    deleted = client.delete("/42/chat", headers=bearer(OPS_KEY)).get_json()
    assert deleted == {"chat_id": "42", "deleted": False}
    assert client.post("/42/clear", headers=bearer(OPS_KEY)).get_json()["deleted"] is False
    assert client.delete("/42/system", headers=bearer(OPS_KEY)).status_code == 200
    post(client, "/42/chat", "ops writes its own chat 42", OPS_KEY)

    assert history(client, "42", WEB_KEY) == webs
    assert history(client, "42", OPS_KEY)[0] == ("user", "ops writes its own chat 42")
    ops_call = fake_upstream.chat_requests()[-1]["messages"]
    assert all("web's" not in str(m["content"]) for m in ops_call)


def test_an_idempotency_key_of_another_tenant_replays_nothing(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    post(client, "/42/chat", "hi", WEB_KEY, **{"Idempotency-Key": "k1"})
    other = post(client, "/42/chat", "hi", OPS_KEY, **{"Idempotency-Key": "k1"})

    assert "Idempotent-Replayed" not in other.headers
    assert len(fake_upstream.chat_requests()) == 2


# --- Rate limits and budgets ---------------------------------------------------------------------


def test_rate_limit_per_key_gives_429_with_headers(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, RATE_LIMIT="3/minute", TRUSTED_PROXY_HOPS="1")
    web_ip = {"X-Forwarded-For": "203.0.113.1"}

    statuses = [
        client.get("/c1/chat", headers={**bearer(WEB_KEY), **web_ip}).status_code for _ in range(4)
    ]
    limited = client.get("/c1/chat", headers={**bearer(WEB_KEY), **web_ip})

    assert statuses == [200, 200, 200, 429]
    assert limited.get_json()["code"] == "rate_limited"
    assert "per API key" in limited.get_json()["error"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Limit"] == "3"
    assert limited.headers["RateLimit-Remaining"] == "0"
    assert limited.headers["RateLimit-Reset"] == limited.headers["Retry-After"]
    other = client.get("/c1/chat", headers={**bearer(OPS_KEY), "X-Forwarded-For": "203.0.113.2"})
    assert other.status_code == 200
    assert fake_upstream.requests == []


def test_rate_limit_counts_each_key_whatever_other_keys_on_its_address_did(
    make_client: MakeClient,
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, RATE_LIMIT="3/minute", TRUSTED_PROXY_HOPS="1")
    same_ip = {"X-Forwarded-For": "198.51.100.9"}

    def get(key: str) -> int:
        return int(client.get("/c1/chat", headers={**bearer(key), **same_ip}).status_code)

    assert [get(WEB_KEY) for _ in range(4)] == [200, 200, 200, 429]
    assert [get(OPS_KEY) for _ in range(4)] == [200, 200, 200, 429]
    assert get(HASHED_KEY) == 200


def test_rate_limit_per_client_address_spans_keys(make_client: MakeClient) -> None:
    client = make_client(
        PROXY_API_KEYS=KEYS, RATE_LIMIT_PER_ADDRESS="3/minute", TRUSTED_PROXY_HOPS="1"
    )
    same_ip = {"X-Forwarded-For": "198.51.100.9"}

    statuses = [
        client.get("/c1/chat", headers={**bearer(key), **same_ip}).status_code
        for key in (WEB_KEY, OPS_KEY, HASHED_KEY, OPS_KEY)
    ]

    assert statuses == [200, 200, 200, 429]
    limited = client.get("/c1/chat", headers={**bearer(HASHED_KEY), **same_ip})
    assert "per client address" in limited.get_json()["error"]


PUBLIC_PATHS = [
    "/",
    "/ui",
    "/ui/app.js",
    "/docs",
    "/docs/swagger-ui-bundle.js",
    "/openapi.json",
]


@pytest.mark.parametrize("store_kind", ["redis"])
def test_rate_limits_and_chats_share_the_store_s_redis_connections(
    make_client: MakeClient, tmp_path: Path
) -> None:
    """The counters run on the chat store's own pool: with REDIS_MAX_CONNECTIONS=1 the proxy
    holds two connections to Redis, one for the chats' scripts (`ScriptRunner`'s own) and one
    for the limits and the chats' other calls together (a pool of their own would be a third)."""
    redis = RedisServer(tmp_path / "redis").start()
    try:
        client = make_client(
            REDIS_URL=redis.url,
            REDIS_MAX_CONNECTIONS="1",
            RATE_LIMIT="100/minute",
            RATE_LIMIT_PER_ADDRESS="100/minute",
            TOKEN_BUDGET_PER_DAY="100000",
        )
        statuses = [
            client.post("/c1/chat", data=json.dumps({"content": f"m{n}"})).status_code
            for n in range(3)
        ]
        with redis.client() as admin:
            held = [c for c in admin.client_list() if c["cmd"] != "client|list"]
            counted = admin.keys("LIMITS:*")
    finally:
        redis.stop()

    assert statuses == [200, 200, 200]
    assert counted != []
    assert len(held) == 2


@pytest.mark.parametrize("path", PUBLIC_PATHS)
def test_rate_limit_per_address_counts_public_routes_and_failed_authentications(
    make_client: MakeClient, path: str
) -> None:
    client = make_client(
        PROXY_API_KEYS=KEYS, RATE_LIMIT_PER_ADDRESS="4/minute", TRUSTED_PROXY_HOPS="1"
    )
    guesser = {"X-Forwarded-For": "203.0.113.66"}

    statuses = [
        client.get(path, headers=guesser).status_code,
        client.get("/c1/chat", headers={**bearer("guessed-key-0123456789"), **guesser}).status_code,
        client.get("/c1/chat", headers=guesser).status_code,
        client.get("/no/such/route", headers=guesser).status_code,
    ]
    refused = client.get(path, headers=guesser)
    refused_key = client.get("/c1/chat", headers={**bearer(WEB_KEY), **guesser})

    assert statuses[0] == 200
    assert statuses[1:3] == [401, 401]
    assert statuses[3] in (401, 404)  # an unknown path: 401 once keys guard every path
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "rate_limited"
    assert "per client address" in refused.get_json()["error"]
    assert refused.headers["RateLimit-Limit"] == "4"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused_key.status_code == 429  # the right key from that address waits too
    other = {"X-Forwarded-For": "203.0.113.67"}
    assert client.get(path, headers=other).status_code == 200


def test_rate_limit_per_address_answers_openai_clients_in_their_shape(
    make_client: MakeClient,
) -> None:
    client = make_client(RATE_LIMIT_PER_ADDRESS="1/minute")
    client.get("/")

    refused = client.post("/v1/chat/completions", data=json.dumps({"model": "m", "messages": []}))

    assert refused.status_code == 429
    assert refused.get_json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["RateLimit-Remaining"] == "0"


@pytest.mark.parametrize("store_kind", ["redis"])
def test_rate_limits_on_an_unreachable_redis_give_503_before_any_work(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(
        REDIS_URL="redis://127.0.0.1:1/0",
        STORE_PATH=None,
        REDIS_TIMEOUT="0.5",
        RATE_LIMIT_PER_ADDRESS="100/minute",
    )

    refused = [client.get("/"), post(client, "/c1/chat", "hi", WEB_KEY)]

    assert [r.status_code for r in refused] == [503, 503]
    assert [r.get_json()["code"] for r in refused] == ["store_unavailable"] * 2
    assert refused[1].headers["Retry-After"] == "1"
    assert fake_upstream.requests == []


@pytest.mark.parametrize("store_kind", ["sqlite"])
def test_a_rate_limit_over_a_month_still_counts_requests_older_than_a_day(
    make_client: MakeClient, proxy_env: dict[str, str]
) -> None:
    """The SQLite file's sweep of old rate-limit entries keeps those of the longest window."""
    first = make_client(PROXY_API_KEYS=KEYS, RATE_LIMIT="3/month")
    assert post(first, "/c1/chat", "one", WEB_KEY).status_code == 200
    assert first.get("/c1/chat", headers=bearer(WEB_KEY)).status_code == 200
    with sqlite3.connect(proxy_env["STORE_PATH"]) as db:  # as if both came two days ago
        db.execute("UPDATE limit_entries SET at = at - 2 * 86400")
    db.close()
    second = make_client(PROXY_API_KEYS=KEYS, RATE_LIMIT="3/month")  # its first save sweeps

    assert post(second, "/c1/chat", "three", WEB_KEY).status_code == 200
    refused = second.get("/c1/chat", headers=bearer(WEB_KEY))

    assert refused.status_code == 429
    assert refused.get_json()["code"] == "rate_limited"


def test_only_the_trusted_hop_of_x_forwarded_for_counts(make_client: MakeClient) -> None:
    client = make_client(RATE_LIMIT="2/minute", TRUSTED_PROXY_HOPS="1")

    def get(forwarded: str) -> int:
        return int(client.get("/c1/chat", headers={"X-Forwarded-For": forwarded}).status_code)

    # A client that forges the left part of the header is still counted by its real address.
    assert [get(f"10.0.0.{n}, 192.0.2.7") for n in range(3)] == [200, 200, 429]
    assert get("192.0.2.8") == 200


def test_x_forwarded_for_lines_are_read_as_one_list(make_client: MakeClient) -> None:
    """Two lines of one header are their values joined by commas (RFC 9110, 5.3): a proxy that
    adds a line of its own after the client's (HAProxy's `option forwardfor`) is read as
    `forged, real`, counted by `real`."""
    client = make_client(RATE_LIMIT="2/minute", TRUSTED_PROXY_HOPS="1")

    def get(n: int) -> int:
        lines = [("X-Forwarded-For", f"10.0.0.{n}"), ("X-Forwarded-For", "192.0.2.7")]
        return int(client.get("/c1/chat", headers=lines).status_code)

    assert [get(n) for n in range(3)] == [200, 200, 429]


def test_rate_limits_are_shared_by_instances(make_client: MakeClient) -> None:
    first = make_client(PROXY_API_KEYS=KEYS, RATE_LIMIT="4/minute")
    second = make_client(PROXY_API_KEYS=KEYS, RATE_LIMIT="4/minute")

    statuses = [
        instance.get("/c1/chat", headers=bearer(WEB_KEY)).status_code
        for instance in (first, second, first, second, first)
    ]

    assert statuses == [200, 200, 200, 200, 429]


def test_token_budget_stops_a_key_after_its_quota(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, TOKEN_BUDGET_PER_DAY="50")
    fake_upstream.usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}

    assert post(client, "/c1/chat", "one", WEB_KEY).status_code == 200
    assert post(client, "/c1/chat", "two", WEB_KEY).status_code == 200  # 60 tokens: over now
    refused = post(client, "/c1/chat", "three", WEB_KEY)

    assert refused.status_code == 429
    assert refused.get_json()["code"] == "token_budget_exhausted"
    assert "50 tokens" in refused.get_json()["error"]
    assert int(refused.headers["Retry-After"]) > 3600
    assert len(fake_upstream.chat_requests()) == 2
    assert len(history(client, "c1", WEB_KEY)) == 4
    assert post(client, "/c1/chat", "other key", OPS_KEY).status_code == 200


def test_tokens_are_counted_when_the_chat_is_deleted_while_the_model_answers(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, TOKEN_BUDGET_PER_DAY="50")
    other = make_client(PROXY_API_KEYS=KEYS, TOKEN_BUDGET_PER_DAY="50")  # another instance
    fake_upstream.usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    body = {"model": "gpt-4.1-mini", "input": "one"}
    first = client.post("/v1/responses", json=body, headers=bearer(WEB_KEY)).get_json()
    chat = first["id"].removeprefix("resp_").rsplit("_", 1)[0]
    fake_upstream.delay = 1.0
    after = {**body, "input": "two", "previous_response_id": first["id"]}  # holds no lock
    fork = in_background(lambda: client.post("/v1/responses", json=after, headers=bearer(WEB_KEY)))
    wait_for(lambda: len(fake_upstream.chat_requests()) == 2)
    assert other.delete(f"/{chat}/chat", headers=bearer(WEB_KEY)).status_code == 200

    assert fork.result(timeout=10).status_code == 404  # not stored: its place is gone
    fake_upstream.delay = 0.0
    refused = post(other, "/c2/chat", "three", WEB_KEY)  # 60 tokens used of 50

    assert refused.status_code == 429
    assert refused.get_json()["code"] == "token_budget_exhausted"


@pytest.mark.parametrize("chat", [None, "c2"], ids=["pass-through", "chat"])
def test_a_stream_that_breaks_off_counts_its_estimated_tokens(
    make_client: MakeClient, fake_upstream: FakeUpstream, chat: str | None
) -> None:
    """The usage comes with a stream's last chunk; one that broke off before it was still sent
    the prompt, which the model provider bills: its estimated tokens count against the budget,
    a pass-through's (no chat id) and a stored chat's turn's."""
    client = make_client(PROXY_API_KEYS=KEYS, TOKEN_BUDGET_PER_DAY="1000")
    fake_upstream.usage = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    post(client, "/c1/chat", "hi", WEB_KEY)  # user 0, reply 1
    regenerate = {"data": json.dumps({"parent": 1}), "headers": bearer(WEB_KEY)}
    # Regenerating a reply (not a user message) is refused after the budget is checked.
    assert client.post("/c1/chat", **regenerate).status_code == 400
    fake_upstream.cut_stream_after = 3
    prompt = [{"role": "user", "content": "x" * 8000}]  # about 2,000 tokens
    body = {"model": "gpt-4.1-mini", "messages": prompt, "stream": True}

    headers = bearer(WEB_KEY) if chat is None else {**bearer(WEB_KEY), "X-Chat-Id": chat}

    broken = client.post("/v1/chat/completions", json=body, headers=headers)

    assert b'"code":"upstream_error"' in broken.data
    refused = client.post("/c1/chat", **regenerate)
    assert refused.status_code == 429
    assert refused.get_json()["code"] == "token_budget_exhausted"


def test_a_pass_through_whose_n_choices_could_overshoot_the_budget_left_is_refused(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """The budget is checked before a call; `n` multiplies what one call may use (n times its
    max_tokens), so a request whose worst case is over what the key has left is refused."""
    client = make_client(PROXY_API_KEYS=KEYS, TOKEN_BUDGET_PER_DAY="1000", MAX_TOKENS="1000")
    fake_upstream.usage = {"prompt_tokens": 50, "completion_tokens": 50, "total_tokens": 100}
    messages = [{"role": "user", "content": "hi"}]

    def ask(n: int, max_tokens: int) -> Any:
        body = {"model": "gpt-4.1-mini", "messages": messages, "n": n, "max_tokens": max_tokens}
        return client.post("/v1/chat/completions", json=body, headers=bearer(WEB_KEY))

    assert ask(1, 100).status_code == 200  # 100 tokens spent: 900 left
    refused = ask(4, 250)  # up to 1,000
    fits = ask(3, 300)  # up to 900
    one = ask(1, 1000)  # one choice: checked as every call is, against what is spent

    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert (error["code"], error["param"], error["type"]) == (
        "token_budget_exhausted",
        "n",
        "rate_limit_error",
    )
    assert "1000 tokens" in error["message"]
    assert "900 this key has left" in error["message"]
    assert int(refused.headers["Retry-After"]) > 3600
    assert (fits.status_code, one.status_code) == (200, 200)
    assert [request["n"] for request in fake_upstream.chat_requests()] == [1, 3, 1]


def test_a_spent_budget_still_replays_an_answered_request(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(PROXY_API_KEYS=KEYS, TOKEN_BUDGET_PER_DAY="10")
    fake_upstream.usage = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
    first = post(client, "/c1/chat", "hi", WEB_KEY, **{"Idempotency-Key": "k1"})

    again = post(client, "/c1/chat", "hi", WEB_KEY, **{"Idempotency-Key": "k1"})
    refused = post(client, "/c1/chat", "new", WEB_KEY, **{"Idempotency-Key": "k2"})

    assert again.status_code == 200
    assert again.get_json() == first.get_json()
    assert refused.status_code == 429
    retry = post(client, "/c1/chat", "new", WEB_KEY, **{"Idempotency-Key": "k2"})
    assert retry.get_json()["code"] == "token_budget_exhausted"  # k2 was not left pending


# --- Resource bounds -----------------------------------------------------------------------------


def test_content_longer_than_the_limit_is_400(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(MAX_CONTENT_CHARS="10")

    too_long = client.post("/c1/chat", data=json.dumps({"content": "x" * 11}))

    assert too_long.status_code == 400
    assert "MAX_CONTENT_CHARS" in too_long.get_json()["error"]
    assert fake_upstream.requests == []
    assert client.post("/c1/chat", data=json.dumps({"content": "x" * 10})).status_code == 200


@pytest.mark.parametrize(
    ("content", "status"),
    [
        ("x" * 11, 400),
        ([{"type": "text", "text": "x" * 6}, {"type": "text", "text": "y" * 6}], 400),
        ("x" * 10, 200),
    ],
)
def test_pass_through_messages_longer_than_the_limit_are_400(
    make_client: MakeClient, fake_upstream: FakeUpstream, content: Any, status: int
) -> None:
    client = make_client(MAX_CONTENT_CHARS="10")
    messages = [{"role": "system", "content": "short"}, {"role": "user", "content": content}]

    response = client.post("/v1/chat/completions", data=json.dumps({"messages": messages}))

    assert response.status_code == status
    if status == 400:
        assert response.get_json()["error"]["message"] == (
            "messages[1]: at most 10 characters (MAX_CONTENT_CHARS)"
        )
        assert fake_upstream.requests == []


def test_a_chat_keeps_only_its_newest_messages(make_client: MakeClient) -> None:
    client = make_client(MAX_CHAT_MESSAGES="4", SYSTEM_PROMPT="sys")
    for n in range(3):
        client.post("/c1/chat", data=json.dumps({"content": f"m{n}"}))

    messages = client.get("/c1/chat").get_json()

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user", "assistant"]
    assert [m["content"] for m in messages][1::2] == ["m1", "m2"]


def test_max_tokens_is_always_sent_upstream(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(MAX_TOKENS="77")
    client.post("/c1/chat", data=json.dumps({"content": "hi"}))
    client.post("/c1/img", data=json.dumps({"content": "hi", "url": "https://e.com/a.png"}))

    assert [r["max_tokens"] for r in fake_upstream.chat_requests()] == [77, 77]


# --- CORS ----------------------------------------------------------------------------------------

APP_ORIGIN = "https://app.example.com"


def test_cors_answers_an_allowed_origin_only(make_client: MakeClient) -> None:
    client = make_client(ALLOWED_ORIGINS=f"{APP_ORIGIN},https://admin.example.com")

    allowed = client.get("/c1/chat", headers={"Origin": APP_ORIGIN})
    other = client.get("/c1/chat", headers={"Origin": "https://evil.example.net"})

    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Retry-After" in allowed.headers["Access-Control-Expose-Headers"]
    assert "Access-Control-Allow-Origin" not in other.headers
    assert other.status_code == 200  # CORS is the browser's rule; the API still answers


def test_cors_preflight_allows_the_api_headers(make_client: MakeClient) -> None:
    client = make_client(ALLOWED_ORIGINS=APP_ORIGIN, PROXY_API_KEYS=KEYS)
    preflight = {
        "Origin": APP_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    }

    answer = client.options("/c1/chat", headers=preflight)
    refused = client.options("/c1/chat", headers={**preflight, "Origin": "https://evil.example"})

    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "POST" in answer.headers["Access-Control-Allow-Methods"]
    allowed_headers = answer.headers["Access-Control-Allow-Headers"].lower()
    for header in ("authorization", "content-type", "idempotency-key"):
        assert header in allowed_headers
    assert "Access-Control-Allow-Origin" not in refused.headers


def test_cors_preflight_allows_what_the_openai_js_sdk_sends_from_a_browser(
    make_client: MakeClient,
) -> None:
    client = make_client(ALLOWED_ORIGINS=APP_ORIGIN, PROXY_API_KEYS=KEYS)
    sdk = ROOT / "tests" / "js" / "node_modules" / "openai"
    sources = [sdk / "client.js", *sdk.glob("internal/*.js"), *sdk.glob("lib/*.js")]
    text = "\n".join(path.read_text() for path in sources if path.is_file())
    sent = {name.lower() for name in re.findall(r"['\"](x-stainless-[a-z-]+)['\"]", text, re.I)}
    assert len(sent) >= 6, "the installed openai package names its headers elsewhere now"
    asked = ["authorization", "content-type", "openai-organization", "openai-project", *sent]
    preflight = {
        "Origin": APP_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": ", ".join(sorted(asked)),
    }

    answer = client.options("/v1/chat/completions", headers=preflight)

    assert answer.status_code == 200, answer.data
    allowed = answer.headers["Access-Control-Allow-Headers"].lower()
    assert [header for header in asked if header not in allowed] == []


def test_errors_carry_cors_headers_so_browsers_can_read_them(make_client: MakeClient) -> None:
    client = make_client(ALLOWED_ORIGINS=APP_ORIGIN, PROXY_API_KEYS=KEYS)

    unauthorized = client.get("/c1/chat", headers={"Origin": APP_ORIGIN})

    assert unauthorized.status_code == 401
    assert unauthorized.headers["Access-Control-Allow-Origin"] == APP_ORIGIN


def test_no_cors_headers_without_allowed_origins(make_client: MakeClient) -> None:
    response = make_client().get("/c1/chat", headers={"Origin": APP_ORIGIN})

    assert "Access-Control-Allow-Origin" not in response.headers


def test_wildcard_origin_only_when_set_explicitly(make_client: MakeClient) -> None:
    response = make_client(ALLOWED_ORIGINS="*").get("/", headers={"Origin": APP_ORIGIN})

    assert response.headers["Access-Control-Allow-Origin"] == "*"

"""Upstream failures become clear JSON errors and leave the history untouched."""

from __future__ import annotations

import asyncio
import json

import pytest

from chatproxy.config import load_settings
from chatproxy.upstream.client import AsyncUpstream
from harness.fake_upstream import FakeUpstream, Fault
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.event_loop import run_on_own_loop

CONTEXT_TOO_LONG = "This model's maximum context length is 128000 tokens."

FAULTS = [
    # fault, status, code, expected Retry-After header (None = absent)
    (Fault.error(429, "slow", headers={"retry-after": "7"}), 503, "upstream_rate_limited", "7"),
    (Fault.error(429, headers={"retry-after-ms": "1500"}), 503, "upstream_rate_limited", "2"),
    (Fault.error(429), 503, "upstream_rate_limited", "5"),
    (Fault.error(429, headers={"retry-after": "inf"}), 503, "upstream_rate_limited", "5"),
    (Fault.error(429, headers={"retry-after-ms": "-1e999"}), 503, "upstream_rate_limited", "5"),
    (Fault.error(429, "You exceeded your quota", code="insufficient_quota"), 502,
     "upstream_rejected", None),
    (Fault.error(500), 502, "upstream_error", None),
    (Fault.error(503), 502, "upstream_error", None),
    (Fault.error(401, "Incorrect API key provided: sk-test***-key"), 502, "upstream_auth", None),
    (Fault.error(403), 502, "upstream_auth", None),
    (Fault.error(400, CONTEXT_TOO_LONG, code="context_length_exceeded"), 400,
     "upstream_rejected", None),
    (Fault.error(404, "The model `nope` does not exist"), 502, "upstream_rejected", None),
    (Fault(drop=True), 502, "upstream_error", None),
    (Fault(delay=1.5), 504, "upstream_timeout", None),
    (Fault.non_json(), 502, "upstream_bad_response", None),
    (Fault(body="{not json", headers={"Content-Type": "application/json"}), 502,
     "upstream_bad_response", None),
    (Fault(body={"unexpected": True}), 502, "upstream_bad_response", None),
    (Fault(body={"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": None}}]}),
     502, "upstream_bad_response", None),
]  # fmt: skip


@pytest.fixture
def client(make_client: MakeClient) -> ProxyClient:
    return make_client(UPSTREAM_TIMEOUT="0.5", UPSTREAM_MAX_RETRIES="0")


@pytest.mark.parametrize(("fault", "status", "code", "retry_after"), FAULTS)
def test_upstream_fault_maps_to_status_and_leaves_history_unchanged(
    client: ProxyClient,
    fake_upstream: FakeUpstream,
    fault: Fault,
    status: int,
    code: str,
    retry_after: str | None,
) -> None:
    client.post("/c1/chat", data=json.dumps({"content": "before"}))
    before = client.get("/c1/chat").get_json()
    fake_upstream.reset()
    fake_upstream.script(fault)

    response = client.post("/c1/chat", data=json.dumps({"content": "during"}))

    assert response.status_code == status
    body = response.get_json()
    assert body["code"] == code
    assert body["error"]
    assert response.headers.get("Retry-After") == retry_after
    assert len(fake_upstream.chat_requests()) == 1
    assert client.get("/c1/chat").get_json() == before
    assert "sk-test" not in response.get_data(as_text=True)


def test_rejection_passes_on_the_upstream_message(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Fault.error(400, CONTEXT_TOO_LONG, code="context_length_exceeded"))

    response = client.post("/c1/chat", data=json.dumps({"content": "long"}))

    assert response.get_json()["error"] == CONTEXT_TOO_LONG


def test_an_exhausted_provider_quota_is_told_without_the_providers_words(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """The quota is the operator's account, which a tenant can neither see nor fix: the answer
    says what happened, not what the provider told the operator (its plan, its billing)."""
    words = "You exceeded your current quota, please check your plan and billing details."
    fake_upstream.script(Fault.error(429, words, code="insufficient_quota"))

    response = client.post("/c1/chat", data=json.dumps({"content": "hi"}))

    assert response.status_code == 502
    assert response.get_json()["code"] == "upstream_rejected"
    assert "quota" in response.get_json()["error"]
    assert "billing" not in response.get_data(as_text=True)


def test_upstream_failure_leaves_no_orphan_user_message(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Fault.error(500))

    assert client.post("/c1/chat", data=json.dumps({"content": "lost?"})).status_code == 502
    assert client.get("/c1/chat").get_json() == []

    assert client.post("/c1/chat", data=json.dumps({"content": "again"})).status_code == 200
    assert client.get("/c1/chat").get_json()[0]["content"] == "again"


def test_bounded_retries_recover_from_a_transient_failure(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(UPSTREAM_MAX_RETRIES="1")
    fake_upstream.script(Fault.error(500))
    fake_upstream.reply_text = "recovered"

    response = client.post("/c1/chat", data=json.dumps({"content": "hi"}))

    assert response.status_code == 200
    assert response.get_json()["content"] == "recovered"
    assert len(fake_upstream.chat_requests()) == 2
    assert len(client.get("/c1/chat").get_json()) == 2


def test_missing_usage_is_estimated(client: ProxyClient, fake_upstream: FakeUpstream) -> None:
    fake_upstream.omit_usage = True
    fake_upstream.reply_text = "x" * 40

    tokens = client.post("/c1/chat", data=json.dumps({"content": "y" * 80})).get_json()["tokens"]

    assert tokens == {"prompt_tokens": 24, "completion_tokens": 10, "total_tokens": 34}


def test_unreachable_upstream_is_502_for_chat_and_moderation(make_client: MakeClient) -> None:
    client = make_client(OPENAI_BASE_URL="http://127.0.0.1:1/v1")

    for path in ("/c1/chat", "/mod"):
        response = client.post(path, data=json.dumps({"content": "hello"}))
        assert response.status_code == 502, path
        assert response.get_json()["code"] == "upstream_error"
    assert client.get("/c1/chat").get_json() == []


def test_the_client_keeps_a_connection_open_for_every_concurrent_call(
    fake_upstream: FakeUpstream,
) -> None:
    """More calls at once than a default keep-alive pool (urllib3 keeps 1, httpx 100) still
    reuse connections: a new one per call would be a TCP and TLS handshake each time."""
    settings = load_settings({"OPENAI_BASE_URL": fake_upstream.base_url, "GPT_API_KEY": "k"})
    upstream = AsyncUpstream.from_settings(settings)
    fake_upstream.delay = 0.3
    calls = 150
    messages = [{"role": "user", "content": "hi"}]

    async def two_rounds() -> list[str]:
        try:
            replies = []
            for _ in range(2):
                calls_at_once = (
                    upstream.complete(messages, model="gpt-4.1-mini", max_tokens=16)
                    for _ in range(calls)
                )
                replies += [c.content for c in await asyncio.gather(*calls_at_once)]
            return replies
        finally:
            await upstream.aclose()

    assert all(run_on_own_loop(two_rounds()))
    peers = {tuple(entry["peer"]) for entry in fake_upstream.requests}
    assert len(fake_upstream.requests) == 2 * calls
    assert len(peers) <= calls  # the second round used the first round's connections


def test_calls_carry_the_key_organization_and_project(fake_upstream: FakeUpstream) -> None:
    settings = load_settings(
        {
            "OPENAI_BASE_URL": fake_upstream.base_url,
            "GPT_API_KEY": "sk-test-key",
            "OPENAI_ORG_ID": "org-7",
            "OPENAI_PROJECT_ID": "proj-9",
        }
    )
    upstream = AsyncUpstream.from_settings(settings)

    async def both_calls() -> None:
        try:
            messages = [{"role": "user", "content": "hi"}]
            await upstream.complete(messages, model="gpt-4.1-mini", max_tokens=5)
            await upstream.moderate("hello", model="omni-moderation-latest")
        finally:
            await upstream.aclose()

    run_on_own_loop(both_calls())
    for request in fake_upstream.requests:
        headers = request["headers"]
        assert headers["authorization"] == "Bearer sk-test-key"
        assert headers["openai-organization"] == "org-7"
        assert headers["openai-project"] == "proj-9"
        assert headers["content-type"] == "application/json"

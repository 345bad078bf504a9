"""Turns stay consistent under concurrency, retries and slow upstreams, on both stores.

Two apps built from the same environment act as two Cloud Function instances sharing one store.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from harness.fake_upstream import FakeUpstream, Fault
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient


def post(
    client: ProxyClient, chat: str, content: str, key: str | None = None, route: str = "chat"
) -> Any:
    headers = {} if key is None else {"Idempotency-Key": key}
    body: dict[str, str] = {"content": content}
    if route == "img":
        body["url"] = "https://example.com/a.png"
    return client.post(f"/{chat}/{route}", data=json.dumps(body), headers=headers)


def contents(client: ProxyClient, chat: str) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in client.get(f"/{chat}/chat").get_json()]


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def in_background(call: Callable[[], Any]) -> Future[Any]:
    pool = ThreadPoolExecutor(max_workers=1)
    future = pool.submit(call)
    pool.shutdown(wait=False)
    return future


# --- Idempotency-Key -----------------------------------------------------------------------------


@pytest.mark.parametrize("route", ["chat", "img"])
def test_repeated_idempotency_key_replays_the_answer_without_a_new_turn(
    client: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    first = post(client, "c1", "hi", key="key-1", route=route)
    again = post(client, "c1", "hi", key="key-1", route=route)

    assert first.status_code == again.status_code == 200
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert len(fake_upstream.chat_requests()) == 1
    assert len(contents(client, "c1")) == 2


def test_same_key_with_a_different_body_is_422(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    post(client, "c1", "hi", key="key-1")

    response = post(client, "c1", "something else", key="key-1")

    assert response.status_code == 422
    assert response.get_json()["code"] == "idempotency_key_reused"
    assert len(fake_upstream.chat_requests()) == 1
    assert len(contents(client, "c1")) == 2


def test_same_key_while_the_first_is_running_is_409(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    instance_a, instance_b = make_client(), make_client()
    fake_upstream.delay = 1.0
    first = in_background(lambda: post(instance_a, "c1", "hi", key="key-1"))
    wait_for(lambda: len(fake_upstream.chat_requests()) == 1)

    concurrent = post(instance_b, "c1", "hi", key="key-1")

    assert concurrent.status_code == 409
    assert concurrent.get_json()["code"] == "idempotency_in_progress"
    assert concurrent.headers["Retry-After"] == "1"
    assert first.result(timeout=10).status_code == 200
    replay = post(instance_b, "c1", "hi", key="key-1")
    assert replay.get_json() == first.result().get_json()
    assert len(fake_upstream.chat_requests()) == 1
    assert len(contents(instance_b, "c1")) == 2


def test_a_failed_upstream_call_does_not_consume_the_key(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    fake_upstream.script(Fault.error(500))

    assert post(client, "c1", "hi", key="key-1").status_code == 502
    assert contents(client, "c1") == []
    retry = post(client, "c1", "hi", key="key-1")

    assert retry.status_code == 200
    assert "Idempotent-Replayed" not in retry.headers
    assert len(fake_upstream.chat_requests()) == 2
    assert len(contents(client, "c1")) == 2


def test_idempotency_keys_are_scoped_to_their_chat(
    client: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    post(client, "c1", "hi", key="shared")
    other = post(client, "c2", "hi", key="shared")

    assert "Idempotent-Replayed" not in other.headers
    assert len(fake_upstream.chat_requests()) == 2


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "tab\there"])
def test_malformed_idempotency_key_is_400_without_a_turn(
    client: ProxyClient, fake_upstream: FakeUpstream, key: str
) -> None:
    response = post(client, "c1", "hi", key=key)

    assert response.status_code == 400
    assert response.get_json()["code"] == "invalid_idempotency_key"
    assert fake_upstream.requests == []


def test_longest_allowed_idempotency_key_works(client: ProxyClient) -> None:
    key = "k" * 255
    post(client, "c1", "hi", key=key)
    assert post(client, "c1", "hi", key=key).headers["Idempotent-Replayed"] == "true"


# --- Turn lock -----------------------------------------------------------------------------------


def test_second_message_waits_for_the_first_and_sees_its_reply(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    instance_a, instance_b = make_client(), make_client()
    fake_upstream.script(Fault(delay=0.5))
    first = in_background(lambda: post(instance_a, "c1", "first"))
    wait_for(lambda: len(fake_upstream.chat_requests()) == 1)

    second = post(instance_b, "c1", "second")

    assert first.result(timeout=10).status_code == second.status_code == 200
    first_reply = first.result().get_json()["content"]
    assert [
        {"role": m["role"], "content": m["content"]}
        for m in fake_upstream.chat_requests()[1]["messages"]
    ] == [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": first_reply},
        {"role": "user", "content": "second"},
    ]
    history = contents(instance_b, "c1")
    assert [content for _, content in history][::2] == ["first", "second"]


def test_message_gets_409_when_the_chat_stays_busy(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    instance_a = make_client()
    impatient = make_client(TURN_WAIT_SECONDS="0.3")
    fake_upstream.delay = 1.5
    first = in_background(lambda: post(instance_a, "c1", "slow"))
    wait_for(lambda: len(fake_upstream.chat_requests()) == 1)

    started = time.monotonic()
    busy = post(impatient, "c1", "waiting")
    waited = time.monotonic() - started

    assert busy.status_code == 409
    assert busy.get_json()["code"] == "chat_busy"
    assert busy.headers["Retry-After"] == "1"
    assert 0.3 <= waited < 1.4
    assert first.result(timeout=10).status_code == 200
    assert len(fake_upstream.chat_requests()) == 1
    assert contents(impatient, "c1")[0] == ("user", "slow")


def test_other_chats_are_not_held_up_by_a_busy_chat(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    instance_a = make_client()
    impatient = make_client(TURN_WAIT_SECONDS="0.3")
    fake_upstream.script(Fault(delay=1.5))
    first = in_background(lambda: post(instance_a, "busy", "slow"))
    wait_for(lambda: len(fake_upstream.chat_requests()) == 1)

    assert post(impatient, "free", "quick").status_code == 200
    assert first.result(timeout=10).status_code == 200


def test_reply_that_comes_after_the_lease_is_not_stored(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    short_lease = make_client(TURN_LEASE_SECONDS="0.5")
    other = make_client()
    fake_upstream.script(Fault(delay=1.2))  # the first turn's upstream outlives its lease
    first = in_background(lambda: post(short_lease, "c1", "late"))
    wait_for(lambda: len(fake_upstream.chat_requests()) == 1)
    time.sleep(0.6)  # the lease has ended: the lock is free for the next turn

    second = post(other, "c1", "on time")
    late = first.result(timeout=10)

    assert second.status_code == 200
    assert late.status_code == 409
    assert late.get_json()["code"] == "turn_lease_lost"
    assert contents(other, "c1")[0] == ("user", "on time")
    assert len(contents(other, "c1")) == 2


# --- Deadlines and retries -----------------------------------------------------------------------


def test_request_deadline_bounds_the_wait_for_the_upstream(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(REQUEST_TIMEOUT="1.5", TURN_WAIT_SECONDS="0.5", UPSTREAM_TIMEOUT="10")
    fake_upstream.delay = 3.0

    started = time.monotonic()
    response = post(client, "c1", "hi")

    assert response.status_code == 504
    assert time.monotonic() - started < 2.5
    assert contents(client, "c1") == []


def test_a_retry_after_longer_than_the_deadline_is_not_waited_for(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(REQUEST_TIMEOUT="3", TURN_WAIT_SECONDS="1", UPSTREAM_MAX_RETRIES="3")
    fake_upstream.script(Fault.error(429, headers={"retry-after": "30"}))

    started = time.monotonic()
    response = post(client, "c1", "hi")

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "30"
    assert time.monotonic() - started < 1.0
    assert len(fake_upstream.chat_requests()) == 1


def test_transient_failures_are_retried_with_backoff_within_the_deadline(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(UPSTREAM_MAX_RETRIES="2")
    fake_upstream.script(Fault.error(500), Fault(drop=True))

    response = post(client, "c1", "hi")

    assert response.status_code == 200
    assert len(fake_upstream.chat_requests()) == 3
    assert len(contents(client, "c1")) == 2


def test_rejections_are_not_retried(make_client: MakeClient, fake_upstream: FakeUpstream) -> None:
    client = make_client(UPSTREAM_MAX_RETRIES="3")
    fake_upstream.script(Fault.error(400, "bad request"))

    assert post(client, "c1", "hi").status_code == 400
    assert len(fake_upstream.chat_requests()) == 1

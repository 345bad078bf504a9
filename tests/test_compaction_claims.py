"""A chat's summaries are made one at a time across processes, not only within one: two
instances of the real app over one store (each with its own Compactor, as each worker on one
SQLite file or each Cloud Functions instance on one Redis has), both stores, and two real server
processes over one Redis. A summary being made elsewhere is waited for, and what it kept is
folded on from, or used: no message is folded twice, and two turns that need the same summary
ask the model for it once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from chatproxy.service.folding import PROMPT
from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.responses_client import chat_named, start_proxy
from tests.test_compaction import (
    CHAIN,
    FACT,
    SMALL_WINDOW,
    chain,
    filler,
    folded,
    respond,
    response,
    say,
    slow_summaries,
    summary_calls,
    talk,
    turn_calls,
    wait_for_summary,
)


def instances(make_client: MakeClient) -> tuple[ProxyClient, ProxyClient]:
    """Two apps over one store, each compacting, each with its own process's state."""
    first = make_client(COMPACTION="summary", **SMALL_WINDOW)
    return first, make_client()


def left_out_through(client: ProxyClient, sent: list[dict[str, Any]]) -> int:
    """The newest message of the chat `c` that a turn which sent `sent` left out."""
    oldest = next(m["content"] for m in sent if m["role"] != "system")
    history = client.get("/c/chat").get_json()
    return int(next(m["id"] for m in history if m["content"] == oldest)) - 1


def summarized_before_turns(up: FakeUpstream, texts: list[str]) -> int:
    """How many summaries the upstream was asked for before the turns that ask `texts`."""
    calls = up.chat_requests()
    last = max(n for n, call in enumerate(calls) if call["messages"][-1]["content"] in texts)
    return sum(call["messages"][0]["content"] == PROMPT for call in calls[:last])


def test_a_summary_due_on_one_instance_while_another_makes_one_folds_only_the_rest(
    make_client: MakeClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = instances(make_client)
    slow_summaries(fake_upstream, monkeypatch, 1.0)
    say(first, FACT)
    talk(first, range(1, 7))
    deadline = time.monotonic() + 20
    while not summary_calls(fake_upstream):  # until one is being made, on `first`
        assert time.monotonic() < deadline, "no summary fell due"
        time.sleep(0.05)

    say(second, filler(7))  # its read finds none kept yet: one falls due there too
    through = left_out_through(second, turn_calls(fake_upstream)[-1]["messages"])

    wait_for_summary(second, covering=through)
    assert folded(fake_upstream).count(f"[user] {FACT}") == 1
    assert len(set(folded(fake_upstream))) == len(folded(fake_upstream))  # none folded twice


def test_turns_on_two_instances_that_need_the_same_summary_have_it_made_once(
    make_client: MakeClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = instances(make_client)
    slow_summaries(fake_upstream, monkeypatch, 0.5)
    previous = chain(first, CHAIN[:4])  # the next turn outgrows the context
    asks = [filler(41), filler(42)]

    def fork(on: tuple[ProxyClient, str]) -> Any:
        return response(on[0], on[1], previous_response_id=previous)

    with ThreadPoolExecutor(2) as pool:  # one on each instance, at once
        made = list(pool.map(fork, zip((first, second), asks, strict=True)))

    assert [answer.status_code for answer in made] == [200, 200], [a.get_json() for a in made]
    assert summarized_before_turns(fake_upstream, asks) == 1
    assert folded(fake_upstream).count(f"[user] {FACT}") == 1
    for sent in turn_calls(fake_upstream)[-2:]:
        assert "Babbage" in sent["messages"][0]["content"]


@pytest.mark.parametrize("store_kind", ["redis"])
def test_two_server_processes_on_one_redis_ask_for_a_summary_two_turns_need_once(
    start_server: StartServer,
    proxy_env: dict[str, str],
    fake_upstream: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"COMPACTION": "summary", **SMALL_WINDOW}
    one, two = (start_proxy(start_server, proxy_env, **env) for _ in range(2))
    slow_summaries(fake_upstream, monkeypatch, 0.5)
    previous = None
    for text in CHAIN[:4]:
        previous = respond(one, text, previous)
    asks = [filler(41), filler(42)]

    def fork(on: tuple[Any, str]) -> str:
        return respond(on[0], on[1], previous)

    with ThreadPoolExecutor(2) as pool:  # one on each process, at once
        ids = list(pool.map(fork, zip((one, two), asks, strict=True)))

    assert summarized_before_turns(fake_upstream, asks) == 1
    assert folded(fake_upstream).count(f"[user] {FACT}") == 1
    for sent in turn_calls(fake_upstream)[-2:]:
        assert "Babbage" in sent["messages"][0]["content"]
    assert {chat_named(made) for made in ids} == {chat_named(previous or "")}

"""Compaction end to end: the real app over the fake upstream (which echoes, so a summary of the
earliest messages starts with them), both stores, and the Responses API's `context_management`
through the official SDK and the real server. What drops out of a chat's window is folded
into a summary in the background, which later windows send with the system prompt; GET still
has every message; summaries are incremental, per path, and never fail a turn. A Responses turn
with `truncation: disabled` whose history does not fit has its summary made first."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import redis

from chatproxy.service.compaction_rules import SUMMARY_HEADING, UNREAD
from chatproxy.service.folding import FOLD_ITEMS, PROMPT
from chatproxy.tokens import CHARS_PER_TOKEN, TOKENS_PER_MESSAGE, estimate_tokens
from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import StartServer
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.responses_client import MODEL, SYSTEM, Proxy, chat_named, start_proxy

FACT = "My name is Ada Lovelace and my cat is called Babbage."
SMALL_WINDOW = {
    "CONTEXT_TOKENS": "700",
    "MAX_TOKENS": "100",
    "MESSAGES_LENGTH": "10",
    "COMPACTION_SUMMARY_TOKENS": "120",
    "COMPACTION_THRESHOLD": "100",
}


def filler(n: int) -> str:
    return f"Tell me about topic {n}: " + "lorem ipsum dolor sit amet " * 10


@pytest.fixture
def compacting(make_client: MakeClient, fake_upstream: FakeUpstream) -> ProxyClient:
    return make_client(COMPACTION="summary", **SMALL_WINDOW)


def say(client: ProxyClient, text: str, chat: str = "c", **more: Any) -> dict[str, Any]:
    answer = client.post(f"/{chat}/chat", data=json.dumps({"content": text, **more}))
    assert answer.status_code == 200, answer.get_json()
    body: dict[str, Any] = answer.get_json()
    return body


def summaries(client: ProxyClient, chat: str = "c") -> list[dict[str, Any]]:
    items = client.get(f"/{chat}/chat?include=summaries").get_json()
    return [item for item in items if item.get("type") == "summary"]


def wait_for_summary(client: ProxyClient, covering: int, chat: str = "c") -> dict[str, Any]:
    """The newest summary once one covers up to item `covering` (made in the background)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = [s for s in summaries(client, chat) if s["covers"][1] >= covering]
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"no summary covered item {covering}: {summaries(client, chat)}")


def summary_calls(up: FakeUpstream) -> list[dict[str, Any]]:
    return [r for r in up.chat_requests() if r["messages"][0]["content"] == PROMPT]


def turn_calls(up: FakeUpstream) -> list[dict[str, Any]]:
    return [r for r in up.chat_requests() if r["messages"][0]["content"] != PROMPT]


def talk(client: ProxyClient, turns: range, chat: str = "c") -> None:
    for n in turns:
        say(client, filler(n), chat)


def test_the_earliest_facts_survive_into_the_window(
    compacting: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(compacting, FACT)
    talk(compacting, range(1, 7))
    wait_for_summary(compacting, covering=1)

    say(compacting, "What is my cat called?")

    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert sent[0]["role"] == "system"
    assert SUMMARY_HEADING in sent[0]["content"]
    assert "Babbage" in sent[0]["content"]
    assert all(FACT not in str(m["content"]) for m in sent[1:])  # left out, but remembered
    history = compacting.get("/c/chat").get_json()
    assert next(m["content"] for m in history if m["role"] == "user") == FACT  # nothing lost
    assert not any(m.get("type") == "summary" for m in history)


def test_summaries_are_incremental_and_shown_after_what_they_cover(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(COMPACTION="summary", **{**SMALL_WINDOW, "COMPACTION_THRESHOLD": "350"})
    say(client, FACT)
    talk(client, range(1, 7))
    first = wait_for_summary(client, covering=1)
    talk(client, range(7, 13))
    newest = wait_for_summary(client, covering=first["covers"][1] + 2)

    calls = summary_calls(fake_upstream)
    so_far, new = calls[-1]["messages"][1]["content"].rsplit("\nNew messages:\n", 1)
    assert "Babbage" in so_far  # the summary before, folded in
    assert FACT not in new  # not read again
    assert newest["covers"][0] == first["covers"][0] == 0
    items = client.get("/c/chat?include=summaries").get_json()
    at = next(i for i, item in enumerate(items) if item.get("type") == "summary")
    assert items[at - 1]["id"] == items[at]["covers"][1]
    assert len(calls) <= 7  # 12 turns past the window: not one summary per turn


def test_a_failed_summary_never_fails_a_turn_and_the_next_turn_tries_again(
    compacting: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(compacting, FACT)
    talk(compacting, range(1, 5))  # the window is full: each next turn leaves a turn out
    fake_upstream.script(Fault(), Fault.error(500))  # the next turn's call, then its summary's

    say(compacting, filler(5))
    deadline = time.monotonic() + 20
    while not summary_calls(fake_upstream) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(summary_calls(fake_upstream)) == 1
    assert summaries(compacting) == []  # it failed: nothing kept, and the turn was answered
    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert all(m["role"] != "system" for m in sent)  # the window left the oldest out meanwhile

    say(compacting, filler(6))
    assert wait_for_summary(compacting, covering=1)["covers"][0] == 0


def test_compaction_is_off_by_default_and_a_chat_may_turn_it_on(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(**SMALL_WINDOW)
    say(client, FACT, "plain")
    talk(client, range(1, 7), "plain")
    assert summary_calls(fake_upstream) == []
    assert client.get("/plain/settings").get_json()["compaction"] == "off"

    changed = client.post("/own/settings", data=json.dumps({"compaction": "summary"}))
    assert changed.get_json()["compaction"] == "summary"
    say(client, FACT, "own")
    talk(client, range(1, 7), "own")
    assert wait_for_summary(client, covering=1, chat="own")["covers"][0] == 0
    assert summaries(client, "plain") == []
    refused = client.post("/own/settings", data=json.dumps({"compaction": "sometimes"}))
    assert refused.status_code == 400


def test_an_edit_above_a_summary_never_sends_it(
    compacting: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    say(compacting, FACT)
    talk(compacting, range(1, 7))
    wait_for_summary(compacting, covering=1)

    say(compacting, "My name is Grace Hopper.", parent=None)  # a new first message

    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert all("Babbage" not in str(m["content"]) for m in sent)
    assert summaries(compacting) == []  # none on this path


def test_a_responses_chain_asking_for_compaction_keeps_its_earliest_facts(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    proxy = start_proxy(start_server, proxy_env, COMPACTION_THRESHOLD="100")
    compact = [{"type": "compaction", "compact_threshold": 300}]

    def ask(text: str, previous: str | None) -> str:
        made = proxy.client.responses.create(
            model=MODEL, input=text, previous_response_id=previous, context_management=compact
        )
        return made.id

    previous = ask(FACT, None)
    for n in range(1, 7):
        previous = ask(filler(n), previous)
    chat = chat_named(previous)
    deadline = time.monotonic() + 20
    while not [m for m in proxy.get(f"/{chat}/chat?include=summaries") if "covers" in m]:
        assert time.monotonic() < deadline, "no summary was made"
        time.sleep(0.05)

    ask("What is my cat called?", previous)

    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert sent[0]["content"].startswith(SYSTEM)
    assert "Babbage" in sent[0]["content"]
    assert all(FACT not in str(m["content"]) for m in sent[1:])
    tokens = sum(len(str(m["content"])) for m in sent[1:-1]) / 4
    assert tokens <= 300  # the history sent is held to compact_threshold


def test_a_compact_threshold_below_compaction_threshold_makes_the_summary_due(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    proxy = start_proxy(start_server, proxy_env)  # COMPACTION_THRESHOLD: 2000 tokens
    compact = [{"type": "compaction", "compact_threshold": 300}]
    previous = None
    for text in [FACT, *map(filler, range(1, 7))]:
        previous = proxy.client.responses.create(
            model=MODEL, input=text, previous_response_id=previous, context_management=compact
        ).id
    chat = chat_named(previous)
    deadline = time.monotonic() + 20
    while not (made := [m for m in proxy.get(f"/{chat}/chat?include=summaries") if "covers" in m]):
        assert time.monotonic() < deadline, "no summary was made"
        time.sleep(0.05)

    last = made[0]["covers"][1]
    covered = [m for m in proxy.get(f"/{chat}/chat") if m.get("id") is not None and m["id"] <= last]
    assert made[0]["covers"][0] == 0
    assert 300 < sum(len(m["content"]) for m in covered) / 4 < 2000  # below COMPACTION_THRESHOLD


def test_a_summary_due_while_another_is_made_is_made_after_it(
    compacting: ProxyClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    answer = fake_upstream.handle_chat

    def slow_summaries(handler: Any, body: dict[str, Any]) -> None:
        if body["messages"][0]["content"] == PROMPT:
            time.sleep(1.0)  # the chat's next turns are stored while it is made
        answer(handler, body)

    monkeypatch.setattr(fake_upstream, "handle_chat", slow_summaries)
    say(compacting, FACT)
    talk(compacting, range(1, 8))  # then the chat goes quiet

    made = wait_for_summary(compacting, covering=7)

    assert made["covers"][0] == 0
    assert len(summary_calls(fake_upstream)) >= 2


def test_a_summary_too_large_for_a_smaller_window_is_left_out_not_a_failure(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    wide = make_client(
        COMPACTION="summary",
        **{**SMALL_WINDOW, "CONTEXT_TOKENS": "2000", "COMPACTION_SUMMARY_TOKENS": "600"},
    )
    say(wide, FACT)
    talk(wide, range(1, 10))
    made = wait_for_summary(wide, covering=5)
    assert len(made["content"]) / 4 > 350 - 60  # more than the narrow window holds beside a turn

    narrow = make_client(CONTEXT_TOKENS="400", MAX_TOKENS="50", COMPACTION_SUMMARY_TOKENS=None)
    say(narrow, "Still there?")

    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert all(SUMMARY_HEADING not in str(m["content"]) for m in sent)
    assert sent[-1] == {"role": "user", "content": "Still there?"}


def empty_reply(tokens: int) -> Fault:
    """A completion with no text, of `tokens` tokens (the model read them, and wrote nothing)."""
    usage = {"prompt_tokens": tokens, "completion_tokens": 0, "total_tokens": tokens}
    reply = {"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "stop"}
    body = {"id": "chatcmpl-empty", "object": "chat.completion", "created": 1, "model": MODEL}
    return Fault(body={**body, "choices": [reply], "usage": usage})


def test_an_empty_summary_still_counts_its_tokens_against_the_budget(
    make_client: MakeClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = make_client(COMPACTION="summary", TOKEN_BUDGET_PER_DAY="100000", **SMALL_WINDOW)
    answer = fake_upstream.handle_chat

    def empty_summaries(handler: Any, body: dict[str, Any]) -> None:
        if body["messages"][0]["content"] == PROMPT:  # the model read it all, and wrote nothing
            fake_upstream._send_fault(handler, empty_reply(150000))
            return
        answer(handler, body)

    monkeypatch.setattr(fake_upstream, "handle_chat", empty_summaries)
    say(client, FACT)
    for n in range(1, 10):  # until a summary falls due
        say(client, filler(n))
        time.sleep(0.3)  # it is asked for, and its answer read, in the background
        if summary_calls(fake_upstream):
            break
    assert len(summary_calls(fake_upstream)) == 1

    refused = client.post("/c/chat", data=json.dumps({"content": "And now?"}))

    assert summaries(client) == []  # nothing kept of it
    assert refused.status_code == 429, refused.get_json()  # but the model's tokens were used
    assert refused.get_json()["code"] == "token_budget_exhausted"


def test_a_chat_compacted_by_its_own_setting_sends_its_summary_in_a_fresh_process(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    window = {**SMALL_WINDOW, "COMPACTION_THRESHOLD": "100000"}  # first summaries only
    client = make_client(**window)
    client.post("/c/settings", data=json.dumps({"compaction": "summary"}))
    say(client, FACT)
    talk(client, range(1, 12))
    wait_for_summary(client, covering=1)
    made: list[dict[str, Any]] = []
    while made != (made := summaries(client)):  # made in pieces: until the last is kept
        time.sleep(0.5)
    last = made[-1]["covers"][1]
    n = 12
    while say(client, filler(n))["id"] - last < 14:  # 13..16 messages past what it covers
        n += 1
    assert summaries(client)[-1]["covers"][1] == last  # the newest: 2 * MESSAGES_LENGTH finds it

    restarted = make_client(**window)  # a new instance: it has not seen the chat compact
    say(restarted, "What is my cat called?")

    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert sent[0]["role"] == "system"
    assert "Babbage" in sent[0]["content"]  # every later window sends the summary


def test_a_chat_trimmed_to_what_its_window_reads_makes_no_summary_of_what_is_gone(
    make_client: MakeClient, fake_upstream: FakeUpstream, capsys: pytest.CaptureFixture[str]
) -> None:
    client = make_client(COMPACTION="summary", MAX_CHAT_MESSAGES="6", MESSAGES_LENGTH="10")
    for n in range(8):  # MAX_CHAT_MESSAGES drops the oldest turns: the first kept has no parent
        say(client, f"Turn {n}.")
    time.sleep(0.5)  # a summary would be made in the background

    assert [m["id"] for m in client.get("/c/chat").get_json()] == list(range(10, 16))
    assert summary_calls(fake_upstream) == []  # everything kept fits the window
    assert "compaction" not in capsys.readouterr().err  # none due through a dropped message


AUTO = {"truncation": "auto"}  # a history past the window: its oldest messages left out


def test_a_response_not_stored_sends_the_summary_of_the_chain_it_continues(
    compacting: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    previous = None
    for text in [FACT, *map(filler, range(1, 7))]:
        body = {"model": MODEL, "input": text, "previous_response_id": previous, **AUTO}
        made = compacting.post("/v1/responses", json=body)
        assert made.status_code == 200, made.get_json()
        previous = made.get_json()["id"]
    chat = previous.removeprefix("resp_").rsplit("_", 1)[0]
    wait_for_summary(compacting, covering=1, chat=chat)

    body = {"model": MODEL, "input": "What is my cat called?", "store": False, **AUTO}
    asked = compacting.post("/v1/responses", json={**body, "previous_response_id": previous})

    assert asked.status_code == 200, asked.get_json()
    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert sent[-1] == {"role": "user", "content": "What is my cat called?"}
    assert sent[0]["role"] == "system"
    assert "Babbage" in sent[0]["content"]  # every later window of the path sends it
    assert all(FACT not in str(m["content"]) for m in sent[1:])


COMPACTED_BY = ["COMPACTION", "its own setting", "context_management"]


@pytest.mark.parametrize("by", COMPACTED_BY)
def test_a_response_not_stored_reads_the_chain_as_deep_as_a_stored_turn_does(
    make_client: MakeClient, fake_upstream: FakeUpstream, by: str
) -> None:
    """A window of MESSAGES_LENGTH messages leaves out what a summary covers up to the message
    just above it; two turns later that message is above the newest MESSAGES_LENGTH: a stored
    turn of a compacted chat reads twice as many and meets the summary, and so must a turn not
    stored (here in a new instance, which has not seen the chat compact)."""
    window = {"MESSAGES_LENGTH": "4", "COMPACTION_THRESHOLD": "20"}
    window["COMPACTION"] = "summary" if by == "COMPACTION" else "off"
    client = make_client(**window)
    more = {"context_management": [{"type": "compaction"}]} if by == "context_management" else {}
    previous = None
    for text in [FACT, "Turn one.", "Turn two.", "Turn three."]:
        body = {"input": text, "previous_response_id": previous, **more}
        made = client.post("/v1/responses", json=body)
        assert made.status_code == 200, made.get_json()
        previous = made.get_json()["id"]
        chat = previous.removeprefix("resp_").rsplit("_", 1)[0]
        if by == "its own setting" and text == FACT:
            client.post(f"/{chat}/settings", json={"compaction": "summary"})
    assert wait_for_summary(client, covering=1, chat=chat)["covers"] == [0, 1]
    restarted = make_client(**window)

    sent = []
    for store in (False, True):
        body = {"input": "What is my cat called?", "previous_response_id": previous, **more}
        assert restarted.post("/v1/responses", json={**body, "store": store}).status_code == 200
        sent.append(turn_calls(fake_upstream)[-1]["messages"])

    assert sent[0] == sent[1]
    assert sent[0][0]["content"].startswith(SUMMARY_HEADING)
    assert "Babbage" in sent[0][0]["content"]
    assert [m["content"] for m in sent[0][1:] if m["role"] == "user"] == [
        "Turn two.",
        "Turn three.",
        "What is my cat called?",
    ]


def respond(proxy: Proxy, text: str, previous: str | None, **more: Any) -> str:
    """A stored response to `text` after `previous` (truncation: disabled, the default)."""
    if not more.pop("stream", False):
        return proxy.client.responses.create(
            model=MODEL, input=text, previous_response_id=previous, **more
        ).id
    events = proxy.client.responses.create(
        model=MODEL, input=text, previous_response_id=previous, stream=True, **more
    )
    done = [event.response for event in events if event.type == "response.completed"]
    return done[0].id


CHAIN = [FACT, *map(filler, range(1, 7))]  # outgrows SMALL_WINDOW's context at its fifth turn


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_chain_past_the_context_with_truncation_disabled_is_summarized_and_goes_on(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream, stream: bool
) -> None:
    proxy = start_proxy(start_server, proxy_env, COMPACTION="summary", **SMALL_WINDOW)
    previous = None
    for text in CHAIN:
        previous = respond(proxy, text, previous, stream=stream)

    calls = fake_upstream.chat_requests()
    first = next(n for n, call in enumerate(calls) if call["messages"][0]["content"] == PROMPT)
    outgrown = calls[first + 1]  # the turn that outgrew the context, once it was summarized
    assert outgrown["messages"][-1] == {"role": "user", "content": CHAIN[4]}
    assert turn_calls(fake_upstream)[4] == outgrown
    for turn in turn_calls(fake_upstream)[4:]:  # it and every later turn send the summary
        assert SUMMARY_HEADING in turn["messages"][0]["content"]
        assert "Babbage" in turn["messages"][0]["content"]
        assert all(FACT not in str(m["content"]) for m in turn["messages"][1:])
    chat = chat_named(previous)
    assert len(proxy.path(chat)) == 1 + 2 * len(CHAIN)  # the system prompt, and every turn
    made = [m for m in proxy.get(f"/{chat}/chat?include=summaries") if "covers" in m]
    assert made[0]["covers"][0] == 0


def test_a_chain_asking_for_compaction_goes_on_past_the_context_and_one_without_is_refused(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    proxy = start_proxy(start_server, proxy_env, **SMALL_WINDOW)  # COMPACTION: off
    compact = {"context_management": [{"type": "compaction"}]}
    plain = asked = None
    for text in CHAIN[:4]:
        plain = respond(proxy, text, plain)
    for text in CHAIN:
        asked = respond(proxy, text, asked, **compact)
    assert plain is not None
    summarized = len(summary_calls(fake_upstream))

    with pytest.raises(openai.BadRequestError) as refused:
        respond(proxy, CHAIN[4], plain)

    assert (refused.value.code, refused.value.param) == ("context_length_exceeded", "input")
    assert len(proxy.path(chat_named(plain))) == 1 + 2 * 4  # the refused turn stored nothing
    assert len(summary_calls(fake_upstream)) == summarized >= 1  # and made no summary
    sent = turn_calls(fake_upstream)[-1]["messages"]  # the last turn that asked for compaction
    assert sent[-1] == {"role": "user", "content": CHAIN[-1]}
    assert "Babbage" in sent[0]["content"]


@pytest.mark.parametrize("chars", [2400, 2000], ids=["alone", "beside-a-summary"])
def test_an_input_that_does_not_fit_beside_a_summary_is_refused_and_makes_none(
    compacting: ProxyClient, fake_upstream: FakeUpstream, chars: int
) -> None:
    previous = None
    for text in CHAIN[:4]:
        body = {"model": MODEL, "input": text, "previous_response_id": previous}
        previous = compacting.post("/v1/responses", json=body).get_json()["id"]
    chat = previous.removeprefix("resp_").rsplit("_", 1)[0]

    body = {"model": MODEL, "input": "x" * chars, "previous_response_id": previous}
    refused = compacting.post("/v1/responses", json=body)

    assert refused.status_code == 400, refused.get_json()
    assert refused.get_json()["error"]["code"] == "context_length_exceeded"
    assert summary_calls(fake_upstream) == []
    assert len(compacting.get(f"/{chat}/chat").get_json()) == 2 * 4
    assert summaries(compacting, chat) == []


def slow_summaries(up: FakeUpstream, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Make each summary call take `seconds` (the turns' calls answer at once)."""
    answer = up.handle_chat

    def slow(handler: Any, body: dict[str, Any]) -> None:
        if body["messages"][0]["content"] == PROMPT:
            time.sleep(seconds)
        answer(handler, body)

    monkeypatch.setattr(up, "handle_chat", slow)


def folded(up: FakeUpstream) -> list[str]:
    """What the summary calls were given to fold in (their new messages, a line each)."""
    texts = [call["messages"][1]["content"] for call in summary_calls(up)]
    return [line for text in texts for line in text.rsplit("\nNew messages:\n", 1)[1].splitlines()]


def response(client: ProxyClient, text: str | list[dict[str, Any]], **more: Any) -> Any:
    """The answer to a stored response to `text` (truncation: disabled unless `more` says)."""
    return client.post("/v1/responses", json={"model": MODEL, "input": text, **more})


def chain(client: ProxyClient, texts: list[str], **more: Any) -> str:
    """The id of the last of the stored responses to `texts`, each after the one before."""
    previous = None
    for text in texts:
        made = response(client, text, previous_response_id=previous, **more)
        assert made.status_code == 200, made.get_json()
        previous = made.get_json()["id"]
    assert previous is not None
    return previous


def test_a_turn_that_needs_a_summary_while_one_is_made_waits_for_it_and_folds_only_the_rest(
    compacting: ProxyClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_summaries(fake_upstream, monkeypatch, 1.0)
    previous = chain(compacting, CHAIN[:6], **AUTO)  # a summary falls due at the sixth
    deadline = time.monotonic() + 20
    while not summary_calls(fake_upstream):  # its summary is being made in the background
        assert time.monotonic() < deadline, "no summary was asked for"
        time.sleep(0.05)

    made = response(compacting, CHAIN[6], previous_response_id=previous)  # past the context

    assert made.status_code == 200, made.get_json()
    assert folded(fake_upstream).count(f"[user] {FACT}") == 1
    assert len(set(folded(fake_upstream))) == len(folded(fake_upstream))  # none folded twice
    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert sent[-1] == {"role": "user", "content": CHAIN[6]}
    assert "Babbage" in sent[0]["content"]


def test_turns_after_one_response_that_need_the_same_summary_make_it_once(
    compacting: ProxyClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_summaries(fake_upstream, monkeypatch, 0.5)
    previous = chain(compacting, CHAIN[:4])  # the next turn outgrows the context

    def fork(text: str) -> Any:
        return response(compacting, text, previous_response_id=previous)

    with ThreadPoolExecutor(2) as pool:  # both at once: a turn after a response takes no lock
        made = list(pool.map(fork, [filler(41), filler(42)]))

    assert [answer.status_code for answer in made] == [200, 200]
    assert len(set(folded(fake_upstream))) == len(folded(fake_upstream))  # none folded twice
    chat = chat_named(previous)
    assert len(summaries(compacting, chat)) == len(summary_calls(fake_upstream)) >= 1
    for sent in turn_calls(fake_upstream)[-2:]:
        assert "Babbage" in sent["messages"][0]["content"]


@pytest.mark.parametrize(
    ("fault", "status"),
    [(Fault.error(500), 502), (Fault(delay=3.0), 504), (empty_reply(50), 502)],
    ids=["failed", "too slow", "empty"],
)
def test_a_summary_made_first_that_fails_fails_the_turn_stores_nothing_and_frees_the_chat(
    make_client: MakeClient, fake_upstream: FakeUpstream, fault: Fault, status: int
) -> None:
    client = make_client(COMPACTION="summary", REQUEST_TIMEOUT="2", **SMALL_WINDOW)
    chat = client.post("/v1/conversations", json={}).get_json()["id"]
    for text in CHAIN[:4]:  # a conversation's turns hold its lock
        assert response(client, text, conversation=chat).status_code == 200
    fake_upstream.script(fault)  # the summary the next turn needs first

    refused = response(client, CHAIN[4], conversation=chat)

    assert refused.status_code == status, refused.get_json()
    assert turn_calls(fake_upstream)[-1]["messages"][-1]["content"] == CHAIN[3]  # none for it
    assert len(client.get(f"/{chat}/chat").get_json()) == 2 * 4  # nothing stored
    assert summaries(client, chat) == []
    again = response(client, CHAIN[4], conversation=chat)  # at once: the lock was let go
    assert again.status_code == 200, again.get_json()
    assert len(summaries(client, chat)) == 1


def test_a_turn_that_waits_for_a_summary_past_its_deadline_fails_and_frees_the_chat(
    make_client: MakeClient, fake_upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    window = {**SMALL_WINDOW, "COMPACTION_THRESHOLD": "350"}  # due in two pieces, made in 3 s
    client = make_client(COMPACTION="summary", REQUEST_TIMEOUT="2", **window)
    slow_summaries(fake_upstream, monkeypatch, 1.5)
    chat = client.post("/v1/conversations", json={}).get_json()["id"]
    n = 0
    while not summary_calls(fake_upstream):  # until one is being made in the background
        assert n < 12, "no summary fell due"
        assert response(client, filler(n), conversation=chat, **AUTO).status_code == 200
        n += 1
        time.sleep(0.1)

    refused = response(client, filler(n), conversation=chat)  # it needs a summary first

    assert refused.status_code == 504, refused.get_json()
    assert refused.get_json()["error"]["code"] == "upstream_timeout"
    assert len(set(folded(fake_upstream))) == len(folded(fake_upstream))  # it made none
    assert len(client.get(f"/{chat}/chat").get_json()) == 2 * n
    assert response(client, "Hi.", conversation=chat, **AUTO).status_code == 200


def test_a_turn_past_the_context_with_more_unsummarized_messages_than_one_fold_reads_goes_on(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    wide = make_client(MESSAGES_LENGTH="10000", CONTEXT_TOKENS="128000", MAX_TOKENS="1000")
    roles = ("user", "assistant")
    said = [{"role": role, "content": f"{role} {n}"} for n in range(1300) for role in roles]
    made = response(wide, [*said, {"role": "user", "content": "Go on."}])  # 2,601 messages
    assert made.status_code == 200, made.get_json()
    window = {"MESSAGES_LENGTH": "10000", "CONTEXT_TOKENS": "4000", "MAX_TOKENS": "100"}
    narrow = make_client(COMPACTION="summary", COMPACTION_THRESHOLD="1000000", **window)

    turn = response(narrow, "And now?", previous_response_id=made.get_json()["id"])

    assert turn.status_code == 200, turn.get_json()  # not refused, the summary kept
    chat = chat_named(turn.get_json()["id"])
    first, last = summaries(narrow, chat)[-1]["covers"]
    assert last - first + 1 == FOLD_ITEMS  # the newest it reads, up to where the window starts
    assert "[user] user 0" not in folded(fake_upstream)  # what lies above them is not read
    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert SUMMARY_HEADING in sent[0]["content"]
    after = [m for m in narrow.get(f"/{chat}/chat").get_json() if m.get("id", -1) > last]
    assert [m["content"] for m in sent[1:]] == [m["content"] for m in after[:-1]]


@pytest.fixture
def logging_all(admin: redis.Redis) -> Iterator[redis.Redis]:
    """`admin`, with Redis logging every command (the slow log at no threshold) meanwhile."""
    kept = admin.config_get("slowlog-*")
    admin.config_set("slowlog-log-slower-than", 0)
    admin.config_set("slowlog-max-len", 1000)
    yield admin
    for name, value in kept.items():
        admin.config_set(name, value)


def watch(admin: redis.Redis) -> None:
    """Start counting the commands Redis is sent and runs afresh."""
    admin.slowlog_reset()
    admin.config_resetstat()


def calls_of(admin: redis.Redis) -> tuple[list[str], dict[str, int]]:
    """Since `watch`: the commands clients sent Redis, by name (the slow log gives each its
    client's address; a script's own calls have none a client holds), and every command Redis
    ran, by name, with its count (commandstats: a script's calls too), the watcher's left out."""
    mine = admin.client_info()["addr"]
    clients = {c["addr"] for c in admin.client_list()} - {mine}
    logged = reversed(admin.slowlog_get(1000))
    sent = [
        bytes(e["command"]).decode().split()[0].lower()
        for e in logged
        if bytes(e["client_address"]).decode() in clients
    ]
    ran = {
        name.removeprefix("cmdstat_"): int(stat["calls"])
        for name, stat in admin.info("commandstats").items()
    }
    own = ("config|resetstat", "slowlog|get", "client|info", "client|list", "info")
    return sent, {name: calls for name, calls in ran.items() if name not in own}


@pytest.mark.parametrize("store_kind", ["redis"])
@pytest.mark.parametrize("page", [False, True])
def test_a_history_read_with_its_summaries_is_one_script_and_costs_one_hmget_more(
    make_client: MakeClient, fake_upstream: FakeUpstream, logging_all: redis.Redis, page: bool
) -> None:
    admin = logging_all
    client = make_client(COMPACTION="summary", **SMALL_WINDOW)
    say(client, FACT)
    talk(client, range(1, 6))
    made = wait_for_summary(client, covering=1)
    last = made["covers"][1]
    plain = f"/c/chat?limit=4&before={last + 2}&" if page else "/c/chat?"
    with_summaries = plain + "include=summaries"
    for url in (plain, with_summaries):  # their scripts loaded
        assert client.get(url).status_code == 200

    watch(admin)
    history = client.get(plain).get_json()
    plain_sent, plain_ran = calls_of(admin)
    watch(admin)
    shown = client.get(with_summaries).get_json()
    sent, ran = calls_of(admin)

    assert [item for item in shown if item.get("type") != "summary"] == history
    assert shown[[item.get("id") for item in shown].index(last) + 1] == made
    assert sent == plain_sent == ["evalsha"]  # one round trip: the TTL refreshed once
    assert ran == {**plain_ran, "hmget": plain_ran["hmget"] + 1}  # the summaries of its items


@pytest.mark.parametrize("pairs", [1500, 3000], ids=["one read", "past one read's reach"])
def test_a_fold_past_more_messages_than_it_reads_goes_on_from_the_summary_above_them(
    make_client: MakeClient, fake_upstream: FakeUpstream, pairs: int
) -> None:
    """A fold reads FOLD_ITEMS messages; the summary above them is met past the items between,
    SEEK_ITEMS at a time (6,000 items: a second read of the store goes on from the first)."""
    window = {"MESSAGES_LENGTH": "10000", "MAX_CHAT_MESSAGES": "0"}
    wide = {**window, "COMPACTION": "off", "CONTEXT_TOKENS": "128000", "MAX_TOKENS": "1000"}
    narrow = {**window, "COMPACTION": "summary", "COMPACTION_THRESHOLD": "1000000"}
    narrow |= {"CONTEXT_TOKENS": "4000", "MAX_TOKENS": "100"}
    early = [{"role": "user", "content": text} for text in [FACT, *map(filler, range(1, 60))]]
    made = response(make_client(**wide), early)  # more than the narrow window holds
    assert made.status_code == 200, made.get_json()
    made = response(make_client(**narrow), "Go on.", previous_response_id=made.get_json()["id"])
    assert made.status_code == 200, made.get_json()  # its summary made first: it holds FACT
    chat = chat_named(made.get_json()["id"])
    older = summaries(make_client(**narrow), chat)[-1]
    assert "Babbage" in older["content"]
    roles = ("user", "assistant")
    more = [{"role": role, "content": f"{role} {n}"} for n in range(pairs) for role in roles]
    more.append({"role": "user", "content": "And on."})
    made = response(make_client(**wide), more, previous_response_id=made.get_json()["id"])
    assert made.status_code == 200, made.get_json()
    client = make_client(**narrow)
    fake_upstream.reset()

    turn = response(client, "What is my cat called?", previous_response_id=made.get_json()["id"])

    assert turn.status_code == 200, turn.get_json()
    so_far = summary_calls(fake_upstream)[0]["messages"][1]["content"]
    assert so_far.startswith(f"Summary so far:\n{older['content']}\n\n{UNREAD}\n")  # not (none)
    assert "[user] user 0" not in folded(fake_upstream)  # what lies between is not read
    page = client.get(f"/{chat}/chat?include=summaries&limit=1000").get_json()  # the newest
    newest = [item for item in page if item.get("type") == "summary"][-1]
    assert newest["covers"][0] == older["covers"][0] == 0
    assert "Babbage" in newest["content"]
    assert "Babbage" in turn_calls(fake_upstream)[-1]["messages"][0]["content"]


def large_summary(client: ProxyClient, texts: list[str]) -> tuple[str, dict[str, Any], int]:
    """The last response of a chain of `texts` (truncation: auto), the newest of the summaries
    made in the background meanwhile, once all are made, and how many they are."""
    previous = chain(client, texts, **AUTO)
    kept: list[dict[str, Any]] = []
    while kept != (kept := summaries(client, chat_named(previous))):
        time.sleep(0.5)
    return previous, kept[-1], len(kept)


LARGE = {"CONTEXT_TOKENS": "2000", "COMPACTION_SUMMARY_TOKENS": "600"}  # summaries of 600
NARROW = {"CONTEXT_TOKENS": "400", "MAX_TOKENS": "50", "MESSAGES_LENGTH": "10"}  # of 100


def test_a_turn_whose_kept_summary_is_too_large_for_a_smaller_window_has_it_folded_again(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    wide = make_client(COMPACTION="summary", **{**SMALL_WINDOW, **LARGE, "MESSAGES_LENGTH": "2"})
    texts = [FACT, *map(filler, range(1, 10)), "Turn A.", "Turn B."]
    previous, large, count = large_summary(wide, texts)  # it ends at the last filler's reply
    assert len(large["content"]) > 350 * CHARS_PER_TOKEN  # more than the window below holds
    client = make_client(**NARROW, COMPACTION_SUMMARY_TOKENS=None)
    fake_upstream.reset()

    turn = response(client, "Still there?", previous_response_id=previous)

    assert turn.status_code == 200, turn.get_json()  # it was refused: context_length_exceeded
    (call,) = summary_calls(fake_upstream)  # the large one, folded again alone
    assert call["messages"][1]["content"].startswith(f"Summary so far:\n{large['content'][:200]}")
    assert call["messages"][1]["content"].endswith("\nNew messages:\n(none)")
    chat = chat_named(previous)
    shorter = summaries(client, chat)[-1]
    assert shorter["covers"] == large["covers"]  # kept in its place
    assert len(shorter["content"]) <= 100 * CHARS_PER_TOKEN
    assert len(summaries(client, chat)) == count
    sent = turn_calls(fake_upstream)[-1]["messages"]
    assert sent[0]["content"] == f"{SUMMARY_HEADING}\n{shorter['content']}"
    asked = [m["content"] for m in sent if m["role"] == "user"]
    assert asked == ["Turn A.", "Turn B.", "Still there?"]


def test_a_fold_on_from_a_summary_larger_than_summaries_are_now_fits_its_call(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    wide = make_client(COMPACTION="summary", **{**SMALL_WINDOW, **LARGE})
    previous, large, _ = large_summary(wide, [FACT, *map(filler, range(1, 10))])
    client = make_client(**NARROW, COMPACTION_SUMMARY_TOKENS=None)
    fake_upstream.reset()

    turn = response(client, "Still there?", previous_response_id=previous)  # past it

    assert turn.status_code == 200, turn.get_json()
    calls = summary_calls(fake_upstream)
    assert calls[0]["messages"][1]["content"].startswith(
        f"Summary so far:\n{large['content'][:200]}"
    )
    for call in calls:  # the large one takes the room of the messages beside it
        read = sum(estimate_tokens(m["content"]) + TOKENS_PER_MESSAGE for m in call["messages"])
        assert read + call["max_tokens"] <= 400
    newest = summaries(client, chat_named(previous))[-1]
    assert newest["covers"][0] == 0
    assert newest["covers"][1] > large["covers"][1]
    assert len(newest["content"]) <= 100 * CHARS_PER_TOKEN


def test_a_summary_too_large_for_the_window_is_folded_again_in_the_background_not_older_ones(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    wide = make_client(COMPACTION="summary", **{**SMALL_WINDOW, **LARGE, "MESSAGES_LENGTH": "2"})
    for text in [FACT, *map(filler, range(1, 10)), "Turn A.", "Turn B."]:
        say(wide, text)
    kept: list[dict[str, Any]] = []
    while kept != (kept := summaries(wide)):  # all made
        time.sleep(0.5)
    large = kept[-1]  # the window below sends the messages after it, and older ones too
    assert len(large["content"]) > 350 * CHARS_PER_TOKEN
    narrow = make_client(**NARROW, COMPACTION_SUMMARY_TOKENS=None)  # truncation allowed
    fake_upstream.reset()

    say(narrow, "Short 0.")  # leaves out the large one, and messages below its last
    deadline = time.monotonic() + 20
    while (now := summaries(narrow)) == kept:
        assert time.monotonic() < deadline, "no summary was made"
        time.sleep(0.05)

    changed = [made for made in now if made not in kept]
    assert [made["covers"] for made in changed] == [large["covers"]]  # it alone, in its place
    assert len(changed[0]["content"]) <= 100 * CHARS_PER_TOKEN
    (call,) = summary_calls(fake_upstream)
    assert call["messages"][1]["content"].startswith(f"Summary so far:\n{large['content'][:200]}")
    assert call["messages"][1]["content"].endswith("\nNew messages:\n(none)")
    say(narrow, "Short 1.")
    assert turn_calls(fake_upstream)[-1]["messages"][0]["content"].endswith(changed[0]["content"])
    assert len(summary_calls(fake_upstream)) == 1

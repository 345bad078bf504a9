"""A model call's attempts that were sent and never answered count against the token budget.

An attempt that timed out, or whose connection broke after it was sent, may have been processed
and billed by the model provider although the proxy got nothing back; the call is then retried,
or fails. Each such attempt counts the estimate of the messages it sent, as a stream that broke
off does (`tokens.estimate_usage`), once, whichever route made the call, with the tool
definitions it sent beside them (their JSON text's characters / 4). An attempt that never
reached the provider (a connect failure, a connect timed out) or that the provider refused (429,
5xx) counts nothing.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from chatproxy.jsontext import compact
from chatproxy.tokens import estimate_tokens, estimate_usage
from harness.fake_upstream import FakeUpstream, Fault
from tests.asgi_client import ProxyClient
from tests.conftest import MakeClient
from tests.test_compaction import CHAIN, SMALL_WINDOW, response, summary_calls
from tests.test_openai_fields import MAX_TOKENS_REFUSED

BUDGET = 10000
USAGE = {"prompt_tokens": 20, "completion_tokens": 10, "total_tokens": 30}
MODEL = "gpt-4.1-mini"
QUESTION = "What is in a name? " * 40  # about 200 tokens: an estimate that shows
SLOW = Fault(delay=1.0)  # past the attempt's UPSTREAM_TIMEOUT


@pytest.fixture
def retrying(make_client: MakeClient, fake_upstream: FakeUpstream) -> ProxyClient:
    fake_upstream.usage = USAGE
    return make_client(
        TOKEN_BUDGET_PER_DAY=str(BUDGET), UPSTREAM_TIMEOUT="0.5", UPSTREAM_MAX_RETRIES="1"
    )


def left(client: ProxyClient) -> int:
    """What the key has left of its budget, as a request that could overshoot it is told."""
    question = [{"role": "user", "content": "?"}]
    body = {"model": MODEL, "messages": question, "n": 128, "max_tokens": 100}
    refused = client.post("/v1/chat/completions", json=body)
    assert refused.status_code == 429, refused.get_json()
    found = re.search(
        r"more than the (\d+) this key has left", refused.get_json()["error"]["message"]
    )
    assert found is not None, refused.get_json()
    return int(found[1])


def estimate(sent: dict[str, Any]) -> int:
    """What an attempt that sent the request `sent` counts: its messages' estimate."""
    return estimate_usage(sent["messages"], "")["total_tokens"]


def responses_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Chat completion `tools` as a Responses request gives them."""
    return [{"type": "function", **tool["function"]} for tool in tools]


def ask(client: ProxyClient, route: str, tools: list[dict[str, Any]] | None = None) -> Any:
    """One turn of `QUESTION` by `route` (with the chat completion `tools`, if any: a Responses
    request gives them in its own form); the answer, a stream read whole."""
    if route == "chat":
        return client.post("/c1/chat", data=json.dumps({"content": QUESTION}))
    if route.startswith("responses"):
        body = {"model": MODEL, "input": QUESTION, "store": route == "responses"}
        if tools:
            body["tools"] = responses_tools(tools)
        return client.post("/v1/responses", json=body)
    body = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}]}
    if tools:
        body["tools"] = tools
    headers = {"X-Chat-Id": "c1"} if route.startswith("v1 chat") else {}
    return client.post(
        "/v1/chat/completions", json={**body, "stream": "stream" in route}, headers=headers
    )


ROUTES = [
    "chat",
    "v1 chat",
    "v1 chat stream",
    "pass-through",
    "pass-through stream",
    "responses",
    "responses not stored",
]


@pytest.mark.parametrize("route", ROUTES)
def test_a_timed_out_attempt_that_was_retried_counts_its_estimate(
    retrying: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    fake_upstream.script(SLOW)

    answer = ask(retrying, route)

    assert answer.status_code == 200
    assert b"upstream_" not in answer.data
    lost, answered = fake_upstream.chat_requests()
    assert lost == answered
    assert left(retrying) == BUDGET - USAGE["total_tokens"] - estimate(lost)


@pytest.mark.parametrize(
    ("faults", "lost"),
    [
        ([Fault(drop=True)], 1),  # reset after the request was sent
        ([Fault.error(500)], 0),  # the provider says it did nothing
        ([Fault.error(503), SLOW], 1),
        ([SLOW, MAX_TOKENS_REFUSED], 1),  # the call is made again with max_completion_tokens
    ],
    ids=["reset", "500", "503 then timeout", "timeout then max_tokens refused"],
)
def test_only_attempts_sent_and_not_answered_count(
    make_client: MakeClient, fake_upstream: FakeUpstream, faults: list[Fault], lost: int
) -> None:
    fake_upstream.usage = USAGE
    client = make_client(
        TOKEN_BUDGET_PER_DAY=str(BUDGET), UPSTREAM_TIMEOUT="0.5", UPSTREAM_MAX_RETRIES="2"
    )
    fake_upstream.script(*faults)

    assert ask(client, "chat").status_code == 200

    first = fake_upstream.chat_requests()[0]
    assert left(client) == BUDGET - USAGE["total_tokens"] - lost * estimate(first)


@pytest.mark.parametrize("route", ["chat", "pass-through stream"])
def test_a_call_whose_every_attempt_timed_out_counts_each(
    retrying: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    fake_upstream.script(SLOW, SLOW)

    failed = ask(retrying, route)

    assert failed.status_code == 504
    sent = fake_upstream.chat_requests()
    assert len(sent) == 2
    assert left(retrying) == BUDGET - 2 * estimate(sent[0])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never says a word."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on: connecting is refused."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


@pytest.mark.parametrize("how", ["refused", "timed out"])
def test_a_call_that_never_reached_the_provider_counts_nothing(
    make_client: MakeClient, closed_port: int, silent_port: int, how: str
) -> None:
    """A connection refused, or one whose TLS handshake never ends within the attempt's time:
    nothing was sent, so nothing was billed."""
    base_url = (
        f"http://127.0.0.1:{closed_port}/v1"
        if how == "refused"
        else f"https://127.0.0.1:{silent_port}/v1"
    )
    client = make_client(
        OPENAI_BASE_URL=base_url,
        TOKEN_BUDGET_PER_DAY=str(BUDGET),
        UPSTREAM_TIMEOUT="0.5",
        UPSTREAM_MAX_RETRIES="1",
    )

    failed = ask(client, "chat")

    assert failed.status_code == (502 if how == "refused" else 504), failed.get_json()
    assert left(client) == BUDGET


def test_a_summary_whose_first_attempt_timed_out_counts_it(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """The summary a conversation's turn needs first is a model call of its own."""
    client = make_client(
        COMPACTION="summary",
        TOKEN_BUDGET_PER_DAY=str(BUDGET),
        UPSTREAM_TIMEOUT="0.5",
        UPSTREAM_MAX_RETRIES="1",
        **SMALL_WINDOW,
    )
    chat = client.post("/v1/conversations", json={}).get_json()["id"]
    for text in CHAIN[:4]:
        assert response(client, text, conversation=chat).status_code == 200
    before = left(client)
    fake_upstream.usage = USAGE  # the summary's and the turn's (the window counts those before)
    fake_upstream.script(SLOW)  # the summary the next turn needs first

    made = response(client, CHAIN[4], conversation=chat)

    assert made.status_code == 200, made.get_json()
    lost, answered = summary_calls(fake_upstream)
    assert lost == answered
    assert left(client) == before - 2 * USAGE["total_tokens"] - estimate(lost)


@pytest.mark.parametrize("route", ["v1 chat stream", "pass-through stream"])
def test_a_stream_cut_off_before_its_reply_began_counts_its_estimate(
    retrying: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """Its answer had begun (a chunk that says only the role) when the connection broke: the
    provider had the request, and the proxy the failure before any of the reply to show."""
    fake_upstream.cut_stream_after = 1

    failed = ask(retrying, route)

    assert failed.status_code == 502, failed.data
    (sent,) = fake_upstream.chat_requests()
    assert left(retrying) == BUDGET - estimate(sent)


PARAMETERS = {"type": "object", "properties": {"query": {"type": "string"}}}
LOOKUP = {"name": "lookup", "description": "d" * 2000, "parameters": PARAMETERS}
TOOLS = [{"type": "function", "function": LOOKUP}]  # about 530 tokens


def tools_estimate(route: str) -> int:
    """What `TOOLS` count, as the request of `route` gave them: their JSON text's estimate."""
    given = responses_tools(TOOLS) if route.startswith("responses") else TOOLS
    return estimate_tokens(compact(given))


@pytest.mark.parametrize("route", [route for route in ROUTES if route != "chat"])
def test_a_timed_out_attempt_counts_the_tools_it_sent(
    retrying: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """The tool definitions went to the provider with the messages, and it bills them."""
    fake_upstream.script(SLOW)

    answer = ask(retrying, route, TOOLS)

    assert answer.status_code == 200, answer.data
    lost, answered = fake_upstream.chat_requests()
    assert lost == answered
    assert lost["tools"] == TOOLS
    spent = USAGE["total_tokens"] + estimate(lost) + tools_estimate(route)
    assert left(retrying) == BUDGET - spent


@pytest.mark.parametrize("route", ["v1 chat stream", "pass-through stream"])
def test_a_stream_cut_off_counts_the_tools_it_sent(
    retrying: ProxyClient, fake_upstream: FakeUpstream, route: str
) -> None:
    """Before its reply began, as after (the text read counts too): the tools were sent."""
    fake_upstream.cut_stream_after = 1

    failed = ask(retrying, route, TOOLS)

    assert failed.status_code == 502, failed.data
    (sent,) = fake_upstream.chat_requests()
    assert left(retrying) == BUDGET - estimate(sent) - tools_estimate(route)


def test_a_chat_stream_cut_off_after_its_reply_began_counts_the_tools_it_sent(
    retrying: ProxyClient, fake_upstream: FakeUpstream
) -> None:
    """A chat's stream, once its reply began, is read to its end by the turn's relay."""
    fake_upstream.reply_text = "One two three four five."
    fake_upstream.cut_stream_after = 3  # the role, two words, then the connection breaks

    streamed = ask(retrying, "v1 chat stream", TOOLS)

    assert streamed.status_code == 200
    lines = streamed.get_data(as_text=True).splitlines()
    chunks = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    said = [c["choices"][0]["delta"].get("content") for c in chunks if c.get("choices")]
    read = "".join(text or "" for text in said)
    assert read == "One two"  # two words, and the stream broke off
    assert "error" in chunks[-1], chunks
    (sent,) = fake_upstream.chat_requests()
    counted = estimate_usage(sent["messages"], read)["total_tokens"] + tools_estimate("v1 chat")
    assert left(retrying) == BUDGET - counted

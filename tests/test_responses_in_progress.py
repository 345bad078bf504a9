"""A response continued while its own turn still runs: a client that reads the id from a
stream's first event, leaves (or cancels, or times out) and at once sends the next turn with
`previous_response_id` waits for that turn to be stored instead of being told it does not
exist; an id that names nothing in a chat no turn holds is a 404 at once. Against the real
server process and the fake upstream slowed down, both stores."""

from __future__ import annotations

import time
from collections.abc import Iterator

import openai
import pytest

from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer
from tests.responses_client import (
    MODEL,
    Proxy,
    chat_named,
    chat_of,
    said,
    sent_upstream,
    start_proxy,
)

WAIT = 8.0  # TURN_WAIT_SECONDS: long enough for the slowed first turn
WORDS = " ".join(f"w{n}" for n in range(20))  # 20 chunks: a second's stream, slowed


@pytest.fixture
def proxy(start_server: StartServer, proxy_env: dict[str, str]) -> Iterator[Proxy]:
    with start_proxy(start_server, proxy_env, TURN_WAIT_SECONDS=str(WAIT)) as proxy:
        yield proxy


def left_stream(proxy: Proxy, fake_upstream: FakeUpstream) -> str:
    """Stream a slowed response, leave after its first event; return the id it announced."""
    fake_upstream.chunk_delay = 0.05
    with proxy.client.responses.stream(model=MODEL, input=WORDS) as stream:
        return next(iter(stream)).response.id  # response.created, then the client leaves


def test_a_response_continued_while_its_stream_is_still_read_waits_for_it(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    first = left_stream(proxy, fake_upstream)
    fake_upstream.chunk_delay = 0.0

    reply = proxy.client.responses.create(
        model=MODEL, input="And then?", previous_response_id=first
    )

    assert chat_of(reply) == chat_of(proxy.client.responses.retrieve(first))
    assert sent_upstream(fake_upstream)[-3:] == [
        ("user", WORDS),
        ("assistant", said(WORDS, 1)),  # the first reply, whole, in the model's history
        ("user", "And then?"),
    ]
    assert proxy.client.responses.retrieve(reply.id).previous_response_id == first


def test_a_streamed_continuation_with_a_resent_history_waits_too(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    """A continuation that resends a history reads the previous response before its turn (not
    as a fork does, in its turn): it waits the same."""
    first = left_stream(proxy, fake_upstream)
    fake_upstream.chunk_delay = 0.0
    history = [
        {"role": "user", "content": WORDS},
        {"role": "assistant", "content": said(WORDS, 1)},
        {"role": "user", "content": "And then?"},
    ]

    with proxy.client.responses.stream(
        model=MODEL, input=history, previous_response_id=first
    ) as stream:
        final = stream.get_final_response()

    assert final.previous_response_id == first
    sent = sent_upstream(fake_upstream)
    assert sent[-3:] == [(m["role"], m["content"]) for m in history]
    assert [role for role, _ in sent].count("assistant") == 1  # matched, not sent twice


def test_an_unknown_response_in_a_chat_no_turn_holds_is_not_found_at_once(
    proxy: Proxy,
) -> None:
    first = proxy.client.responses.create(model=MODEL, input="Hello.")
    unknown = f"resp_{chat_of(first)}_999"

    began = time.monotonic()
    with pytest.raises(openai.NotFoundError) as raised:
        proxy.client.responses.create(model=MODEL, input="Hm?", previous_response_id=unknown)

    assert time.monotonic() - began < 1.0  # no wait for a turn that is not there
    assert raised.value.body["param"] == "previous_response_id"  # type: ignore[index]


def test_an_unknown_response_in_a_chat_whose_turn_runs_is_not_found_once_it_ends(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    first = left_stream(proxy, fake_upstream)
    unknown = f"resp_{chat_named(first)}_999"  # the turn's chat, an id no turn placed

    began = time.monotonic()
    with pytest.raises(openai.NotFoundError):
        proxy.client.responses.create(model=MODEL, input="Hm?", previous_response_id=unknown)

    assert time.monotonic() - began < WAIT  # it waited for the turn, not for TURN_WAIT_SECONDS
    assert proxy.client.responses.retrieve(first).output_text == said(WORDS, 1)


def test_a_conversation_continued_while_its_stream_is_still_read_waits_for_its_turn(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    """A turn at a conversation's leaf takes the chat's lock, so it waits for the turn before
    it as any turn does, and reads the leaf that turn stored."""
    chat = proxy.client.conversations.create().id
    fake_upstream.chunk_delay = 0.05
    with proxy.client.responses.stream(model=MODEL, input=WORDS, conversation=chat) as stream:
        next(iter(stream))  # response.created, then the client leaves
    fake_upstream.chunk_delay = 0.0

    proxy.client.responses.create(model=MODEL, input="And then?", conversation=chat)

    assert sent_upstream(fake_upstream)[-3:] == [
        ("user", WORDS),
        ("assistant", said(WORDS, 1)),
        ("user", "And then?"),
    ]

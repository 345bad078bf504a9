"""Forks of one chat run at once: a response whose `previous_response_id` names a reply holds
the chat's lock only to be placed (on ids set aside for it), not through its model call, and
every fork is stored. Against the real server process, both stores."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from openai.types.responses import Response

from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import StartServer
from tests.responses_client import MODEL, Proxy, chat_of, start_proxy

SLOW = 3.0  # seconds the first fork's model call takes


@pytest.fixture
def proxy(start_server: StartServer, proxy_env: dict[str, str]) -> Iterator[Proxy]:
    # A short wait for a chat's lock: a fork that had to wait for another's model call fails.
    with start_proxy(start_server, proxy_env, TURN_WAIT_SECONDS="1") as proxy:
        yield proxy


def test_two_forks_from_one_response_run_at_once_and_both_are_stored(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    first = proxy.client.responses.create(model=MODEL, input="Name a colour.")
    fake_upstream.script(Fault(delay=SLOW))  # the next model call is slow
    finished: list[str] = []
    made: dict[str, Response] = {}

    def fork(name: str) -> None:
        made[name] = proxy.client.responses.create(
            model=MODEL, input=f"Another, {name}.", previous_response_id=first.id
        )
        finished.append(name)

    slow = threading.Thread(target=fork, args=("slow",))
    slow.start()
    while len(fake_upstream.chat_requests()) < 2:  # the slow fork is in its model call
        threading.Event().wait(0.01)
    fork("quick")
    slow.join(timeout=SLOW + 10)

    assert finished == ["quick", "slow"]  # the quick one did not wait for the slow one
    chat = chat_of(first)
    assert {chat_of(made["quick"]), chat_of(made["slow"])} == {chat}
    first_reply = int(first.id.rsplit("_", 1)[1])
    children = proxy.get(f"/{chat}/children?parent={first_reply}")
    assert len(children["children"]) == 2  # both forks' messages hang under the first reply
    for name in ("quick", "slow"):
        found = proxy.client.responses.retrieve(made[name].id)
        assert found.output_text == made[name].output_text
        assert found.previous_response_id == first.id
        path = [m["content"] for m in proxy.get(f"/{chat}/chat?leaf={found.id.rsplit('_', 1)[1]}")]
        assert path[-2:] == [f"Another, {name}.", made[name].output_text]
        assert path[-4] == "Name a colour."


def test_a_fork_and_a_turn_at_the_leaf_keep_their_own_ids(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    """A fork's ids are set aside when it is placed: a turn that begins after it (at the chat's
    leaf, through the conversation) while the fork waits for its model gets others."""
    first = proxy.client.responses.create(model=MODEL, input="One.")
    chat = chat_of(first)
    fake_upstream.script(Fault(delay=SLOW))
    made: dict[str, Response] = {}

    def fork() -> None:
        made["fork"] = proxy.client.responses.create(
            model=MODEL, input="Fork.", previous_response_id=first.id
        )

    slow = threading.Thread(target=fork)
    slow.start()
    while len(fake_upstream.chat_requests()) < 2:
        threading.Event().wait(0.01)
    leaf = proxy.client.responses.create(model=MODEL, input="Two.", conversation=chat)
    slow.join(timeout=SLOW + 10)

    ids = {first.id, made["fork"].id, leaf.id}
    assert len(ids) == 3
    for response in (made["fork"], leaf):
        assert proxy.client.responses.retrieve(response.id).output_text == response.output_text

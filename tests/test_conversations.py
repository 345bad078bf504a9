"""OpenAI's Conversations API through the official `openai` SDK, against the real server process
on both stores: conversations made, read, changed and deleted; any chat is one (a chat made by
`POST /<chat_id>/chat` too); another key's are not found; the listing beyond OpenAI's API;
every bad input refused with its `param` and nothing stored."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
from openai.pagination import SyncConversationCursorPage
from openai.types.conversations import Conversation, ConversationItem, ConversationItemList
from pydantic import TypeAdapter

from harness.fake_upstream import FakeUpstream
from harness.server_process import ROOT, StartServer, http, server_env

KEY = "conversations-key-0123456789abcdef"
OTHER_KEY = "conversations-other-0123456789ab"
SYSTEM = "Be kind."
ITEM: TypeAdapter[Any] = TypeAdapter(ConversationItem)

Items = list[dict[str, Any]]


@pytest.fixture
def proxy(start_server: StartServer, proxy_env: dict[str, str]) -> str:
    """The real server process on the fake upstream and the parametrized store, with two keys
    (two tenants); its URL."""
    keys = f"sdk={KEY},other={OTHER_KEY}"
    env = server_env(**proxy_env, PROXY_API_KEYS=keys, SYSTEM_PROMPT=SYSTEM)
    return start_server(env).url


def sdk(url: str, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(api_key=key, base_url=f"{url}/v1", max_retries=0)


@pytest.fixture
def client(proxy: str) -> Iterator[openai.OpenAI]:
    with sdk(proxy) as made:
        yield made


@pytest.fixture
def other(proxy: str) -> Iterator[openai.OpenAI]:
    with sdk(proxy, OTHER_KEY) as made:
        yield made


def stored(url: str, chat: str) -> list[dict[str, Any]]:
    """The chat's current path, as the chat API shows it (without the system prompt)."""
    reply = http("GET", f"{url}/{chat}/chat", headers={"X-API-Key": KEY})
    assert reply.status == 200, reply.body
    return [m for m in reply.json() if m["role"] != "system" or "id" in m]


def conversations(client: openai.OpenAI, limit: int = 20, most: int = 100) -> list[Conversation]:
    """Every conversation of the client's key (up to `most`: a listing that pages in a loop
    ends), walked page by page as the SDK pages lists."""
    page = client.get_api_list(
        "/conversations",
        model=Conversation,
        page=SyncConversationCursorPage[Conversation],
        options={"params": {"limit": limit}},
    )
    return list(itertools.islice(page, most))


def tool_round(n: int) -> Items:
    """A question, a reply that calls two tools with text beside, their outputs, an answer:
    7 items, 5 stored messages."""
    return [
        {"role": "user", "content": f"question {n}"},
        {
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": f"looking {n} up"}],
        },
        {"type": "function_call", "call_id": f"c{n}a", "name": "look", "arguments": '{"n":1}'},
        {"type": "function_call", "call_id": f"c{n}b", "name": "look", "arguments": "{}"},
        {"type": "function_call_output", "call_id": f"c{n}a", "output": "one"},
        {"type": "function_call_output", "call_id": f"c{n}b", "output": "two"},
        {"role": "assistant", "content": f"answer {n}"},
    ]


def test_a_conversation_is_created_with_items_and_metadata_then_read_changed_and_deleted(
    client: openai.OpenAI, proxy: str
) -> None:
    made = client.conversations.create(items=tool_round(1), metadata={"topic": "demo"})

    assert made.id.startswith("conv_")
    assert (made.object, made.metadata) == ("conversation", {"topic": "demo"})
    assert client.conversations.retrieve(made.id) == made
    path = stored(proxy, made.id)  # one chat, the items its messages
    assert [(m["role"], m["content"]) for m in path] == [
        ("user", "question 1"),
        ("assistant", "looking 1 up"),
        ("tool", "one"),
        ("tool", "two"),
        ("assistant", "answer 1"),
    ]
    assert [c["id"] for c in path[1]["tool_calls"]] == ["c1a", "c1b"]
    raw = client.conversations.items.with_raw_response.list(made.id, order="asc").http_response
    listed = ConversationItemList.model_validate(raw.json())  # OpenAI's types, strictly
    assert [(i.type, getattr(i, "role", None)) for i in listed.data] == [
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", None),
        ("function_call", None),
        ("function_call_output", None),
        ("function_call_output", None),
        ("message", "assistant"),
    ]
    for item in raw.json()["data"]:
        ITEM.validate_python(item)

    changed = client.conversations.update(made.id, metadata={"topic": "other", "user": "ana"})
    assert changed.metadata == {"topic": "other", "user": "ana"}
    assert client.conversations.retrieve(made.id).metadata == changed.metadata
    assert client.conversations.update(made.id, metadata=None).metadata == {}

    gone = client.conversations.delete(made.id)
    assert (gone.id, gone.object, gone.deleted) == (made.id, "conversation.deleted", True)
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.delete(made.id)
    assert stored(proxy, made.id) == []


def test_a_missing_conversation_or_item_is_not_found_as_openai_answers_it(
    client: openai.OpenAI,
) -> None:
    """OpenAI's 404 for an object it has none of is an `invalid_request_error` (its API has no
    `not_found_error`), as the proxy's for a missing response is."""
    made = client.conversations.create(items=[{"role": "user", "content": "Hi"}]).id
    gone = client.conversations.create().id
    client.conversations.delete(gone)
    asks: list[Any] = [
        lambda: client.conversations.retrieve(gone),
        lambda: client.conversations.update(gone, metadata={"k": "v"}),
        lambda: client.conversations.delete(gone),
        lambda: client.conversations.items.list(gone),
        lambda: client.conversations.items.create(gone, items=[{"role": "user", "content": "x"}]),
        lambda: client.conversations.items.retrieve(f"msg_{made}_9", conversation_id=made),
        lambda: client.conversations.items.delete(f"msg_{made}_9", conversation_id=made),
    ]

    for ask in asks:
        with pytest.raises(openai.NotFoundError) as missing:
            ask()
        assert isinstance(missing.value.body, dict)
        assert (missing.value.body["type"], missing.value.body["code"]) == (
            "invalid_request_error",
            "not_found",
        )


def test_an_update_racing_a_delete_never_brings_the_conversation_back(
    client: openai.OpenAI, proxy: str
) -> None:
    made = [client.conversations.create(metadata={"n": str(n)}).id for n in range(12)]

    def update(conversation: str) -> str:
        try:
            client.conversations.update(conversation, metadata={"after": "delete?"})
        except openai.NotFoundError:
            return "404"
        return "200"

    with ThreadPoolExecutor(max_workers=8) as pool:  # each delete and update sent together
        deletes = [pool.submit(client.conversations.delete, c) for c in made]
        updates = [pool.submit(update, c) for c in made]
        answers = {future.result() for future in updates}
    late = update(made[0])  # an update after its delete

    assert all(future.result().deleted for future in deletes)
    assert answers <= {"200", "404"}
    assert late == "404"
    assert conversations(client) == []
    for conversation in made:
        with pytest.raises(openai.NotFoundError):
            client.conversations.retrieve(conversation)
        assert stored(proxy, conversation) == []


def test_a_conversation_without_items_exists_with_its_metadata(client: openai.OpenAI) -> None:
    bare = client.conversations.create()
    tagged = client.conversations.create(metadata={"k": "v"})

    assert client.conversations.retrieve(bare.id).metadata == {}
    assert client.conversations.retrieve(tagged.id).metadata == {"k": "v"}
    empty = client.conversations.items.list(bare.id)
    assert (empty.data, empty.has_more, empty.last_id) == ([], False, None)


def test_items_are_added_after_the_leaf_and_the_next_turn_sends_them(
    client: openai.OpenAI, proxy: str, fake_upstream: FakeUpstream
) -> None:
    made = client.conversations.create(items=[{"role": "user", "content": "Hi, I'm Ana."}])
    first = client.conversations.items.create(
        made.id, items=[{"role": "assistant", "content": "Hello Ana."}], include=["x"]
    )
    added = client.conversations.items.create(made.id, items=tool_round(2)[:4])

    assert [i.id for i in first.data] == [f"msg_{made.id}_1"]
    assert (first.first_id, first.last_id, first.has_more) == (
        first.data[0].id,
        first.data[0].id,
        False,
    )
    assert [i.id for i in added.data] == [
        f"msg_{made.id}_2",
        f"msg_{made.id}_3",
        f"fc_{made.id}_3_0",
        f"fc_{made.id}_3_1",
    ]
    rest = client.conversations.items.create(made.id, items=tool_round(2)[4:6])
    assert [i.type for i in rest.data] == ["function_call_output", "function_call_output"]
    reply = http(
        "POST", f"{proxy}/{made.id}/chat", {"content": "And now?"}, headers={"X-API-Key": KEY}
    )
    assert reply.status == 200, reply.body
    sent = fake_upstream.chat_requests()[-1]["messages"]
    assert [m["role"] for m in sent] == [
        "system", "user", "assistant", "user", "assistant", "tool", "tool", "user"
    ]  # fmt: skip
    newest = client.conversations.items.list(made.id, limit=2)
    assert [i.type for i in newest.data] == ["message", "message"]
    assert newest.data[0].role == "assistant"  # type: ignore[union-attr]
    assert newest.has_more is True


def test_a_chat_of_the_seed_route_is_a_conversation(client: openai.OpenAI, proxy: str) -> None:
    reply = http("POST", f"{proxy}/seeded/chat", {"content": "Hi"}, headers={"X-API-Key": KEY})
    assert reply.status == 200

    conversation = client.conversations.retrieve("seeded")
    items = client.conversations.items.list("seeded", order="asc").data

    assert (conversation.id, conversation.metadata) == ("seeded", {})
    assert [(i.id, i.role) for i in items] == [  # type: ignore[union-attr]
        ("msg_seeded_0", "user"),
        ("msg_seeded_1", "assistant"),
    ]
    assert items[1].content[0].text == reply.json()["content"]  # type: ignore[union-attr]
    assert client.conversations.items.retrieve("msg_seeded_0", conversation_id="seeded") == items[0]
    assert "seeded" in [c.id for c in conversations(client)]


def test_another_keys_conversations_are_not_found(
    client: openai.OpenAI, other: openai.OpenAI
) -> None:
    made = client.conversations.create(items=[{"role": "user", "content": "mine"}])
    item = f"msg_{made.id}_0"

    calls = [
        lambda: other.conversations.retrieve(made.id),
        lambda: other.conversations.update(made.id, metadata={"a": "b"}),
        lambda: other.conversations.items.list(made.id),
        lambda: other.conversations.items.create(made.id, items=[{"role": "user", "content": "x"}]),
        lambda: other.conversations.items.retrieve(item, conversation_id=made.id),
        lambda: other.conversations.items.delete(item, conversation_id=made.id),
        lambda: other.conversations.delete(made.id),
    ]
    for call in calls:
        with pytest.raises(openai.NotFoundError):
            call()
    assert made.id not in [c.id for c in conversations(other)]
    assert client.conversations.retrieve(made.id).metadata == {}
    assert [i.id for i in client.conversations.items.list(made.id).data] == [item]


def test_the_listing_walks_every_conversation_once_newest_activity_first(
    client: openai.OpenAI, other: openai.OpenAI
) -> None:
    made = [client.conversations.create(metadata={"n": str(n)}).id for n in range(5)]
    other.conversations.create()
    client.conversations.items.create(made[1], items=[{"role": "user", "content": "up"}])

    walked = conversations(client, limit=2)

    assert [c.id for c in walked] == [made[1], made[4], made[3], made[2], made[0]]
    assert walked[0].metadata == {"n": "1"}
    with pytest.raises(openai.BadRequestError) as refused:
        client.get("/conversations", cast_to=object, options={"params": {"after": "nope"}})
    assert refused.value.param == "after"


def test_the_listing_pages_by_the_order_it_lists_in_when_settings_change(
    client: openai.OpenAI, proxy: str
) -> None:
    made = [client.conversations.create(metadata={"n": str(n)}).id for n in range(4)]
    changed = http(
        "POST", f"{proxy}/{made[1]}/settings", {"temperature": 0.5}, headers={"X-API-Key": KEY}
    )

    walked = conversations(client, limit=1)

    assert changed.status == 200, changed.body
    assert [c.id for c in walked] == [made[1], made[3], made[2], made[0]]


@pytest.mark.parametrize("store_kind", ["sqlite"])  # the example, not the store, is at test
def test_the_readmes_example_runs_as_written(proxy: str, store_kind: str) -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("#### Conversations") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```", start)]
    env = {**os.environ, "PROXY_URL": proxy, "PROXY_KEY": KEY}

    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )

    assert done.returncode == 0, done.stderr
    printed = [line.split() for line in done.stdout.splitlines()]
    assert [kind for kind, _ in printed] == ["message", "function_call", "function_call_output"]
    conversation = printed[0][1].removeprefix("msg_").removesuffix("_0")
    assert [item_id for _, item_id in printed] == [
        f"msg_{conversation}_0", f"fc_{conversation}_1_0", f"fco_{conversation}_2"
    ]  # fmt: skip

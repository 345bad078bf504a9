"""A conversation's items through the official `openai` SDK, against the real server process on
both stores: the SDK's auto-paging walks a long conversation (tool-call messages split across
pages) exactly once in both orders; items read and deleted by id; a busy chat refuses a change;
bad inputs are refused with their `param`, and nothing is stored."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import openai
import pytest
from openai.types.conversations import Message as MessageItem
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseFunctionToolCallItem,
    ResponseFunctionToolCallOutputItem,
)

from chatproxy.store.items import ChatRef
from harness.server_process import StartServer, server_env
from tests.conftest import MakeStore, take_lock
from tests.test_conversations import KEY, OTHER_KEY, conversations, sdk, stored, tool_round

ROUNDS = 50  # 5 messages each: 250 messages, 350 items
LONG = "x" * 32_001  # one over MAX_CONTENT_CHARS' default


@pytest.fixture
def proxy(start_server: StartServer, proxy_env: dict[str, str]) -> str:
    keys = f"sdk={KEY},other={OTHER_KEY}"
    env = server_env(**proxy_env, PROXY_API_KEYS=keys, TURN_WAIT_SECONDS="0.2")
    return start_server(env).url


@pytest.fixture
def client(proxy: str) -> Iterator[openai.OpenAI]:
    with sdk(proxy) as made:
        yield made


def test_auto_paging_walks_a_long_conversation_once_in_both_orders(
    client: openai.OpenAI, proxy: str
) -> None:
    conversation = client.conversations.create(items=tool_round(0)).id
    # The ids the conversation holds, oldest first, from what each call stored.
    added = [i.id for i in client.conversations.items.list(conversation, order="asc").data]
    for n in range(1, ROUNDS, 2):
        batch = [*tool_round(n), *tool_round(n + 1)] if n + 1 < ROUNDS else tool_round(n)
        added += [i.id for i in client.conversations.items.create(conversation, items=batch).data]
    assert len(stored(proxy, conversation)) == 5 * ROUNDS
    assert len(added) == len(set(added)) == 7 * ROUNDS

    for limit in (3, 20, 100):  # 3 cuts a text-and-two-calls message in every way
        oldest_first = client.conversations.items.list(conversation, limit=limit, order="asc")
        newest_first = client.conversations.items.list(conversation, limit=limit)
        assert [i.id for i in oldest_first] == added, limit
        assert [i.id for i in newest_first] == added[::-1], limit


def test_a_page_after_a_tool_call_goes_on_inside_its_message(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(items=tool_round(0)).id
    call = f"fc_{conversation}_1_0"

    after_desc = client.conversations.items.list(conversation, after=call, limit=5)
    after_asc = client.conversations.items.list(conversation, after=call, order="asc", limit=2)
    short_form = client.conversations.items.list(conversation, after="fc_1_0", order="asc")

    assert [i.id for i in after_desc.data] == [f"msg_{conversation}_1", f"msg_{conversation}_0"]
    assert after_desc.has_more is False
    assert [i.id for i in after_asc.data] == [f"fc_{conversation}_1_1", f"fco_{conversation}_2"]
    assert after_asc.has_more is True
    assert [i.id for i in short_form.data][:1] == [f"fc_{conversation}_1_1"]


def calls_made(client: openai.OpenAI, conversation: str, count: int) -> list[dict[str, Any]]:
    """Have the dev model make `count` parallel calls in `conversation` (it calls each tool its
    text names); return an output item for each."""
    tools = [
        {"type": "function", "name": f"t{n}", "parameters": {"type": "object"}}
        for n in range(count)
    ]
    asked = " ".join(f"t{n}" for n in range(count))
    reply = client.responses.create(
        model="gpt-4.1-mini",
        input=asked,
        tools=tools,
        conversation=conversation,  # type: ignore[arg-type]
    )
    calls = [item for item in reply.output if isinstance(item, ResponseFunctionToolCall)]
    assert len(calls) == count
    return [{"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in calls]


def test_outputs_of_many_parallel_calls_may_come_in_any_number_of_requests(
    client: openai.OpenAI, proxy: str
) -> None:
    conversation = client.conversations.create().id
    outputs = calls_made(client, conversation, 40)
    for batch in (outputs[:20], outputs[20:33]):  # at most 20 items a request, as OpenAI's
        client.conversations.items.create(conversation, items=batch)  # type: ignore[arg-type]

    with pytest.raises(openai.BadRequestError):  # calls are still waiting for their outputs
        client.conversations.items.create(conversation, items=[USER])  # type: ignore[list-item]
    client.conversations.items.create(conversation, items=outputs[33:])  # type: ignore[arg-type]
    client.conversations.items.create(conversation, items=[USER])  # type: ignore[list-item]

    roles = [m["role"] for m in stored(proxy, conversation)]
    assert roles == ["user", "assistant", *["tool"] * 40, "user"]


def test_a_turn_waits_for_the_outputs_that_items_did_not_bring(
    client: openai.OpenAI, proxy: str
) -> None:
    conversation = client.conversations.create().id
    outputs = calls_made(client, conversation, 3)
    client.conversations.items.create(conversation, items=outputs[:2])  # type: ignore[arg-type]

    with pytest.raises(openai.BadRequestError) as waiting:
        client.responses.create(model="gpt-4.1-mini", input="hi", conversation=conversation)
    last = client.responses.create(
        model="gpt-4.1-mini",
        input=outputs[2:],
        conversation=conversation,  # type: ignore[arg-type]
    )

    assert outputs[2]["call_id"] in waiting.value.message
    roles = [m["role"] for m in stored(proxy, conversation)]
    assert roles == ["user", "assistant", "tool", "tool", "tool", "assistant"]
    assert "ok" in last.output_text


def test_items_are_read_by_id_as_the_sdk_types_them(client: openai.OpenAI) -> None:
    conversation = client.conversations.create(items=tool_round(0)).id

    def item(item_id: str) -> Any:
        return client.conversations.items.retrieve(item_id, conversation_id=conversation)

    text = item(f"msg_{conversation}_1")
    call = item(f"fc_{conversation}_1_1")
    output = item(f"fco_{conversation}_3")

    assert isinstance(text, MessageItem)
    assert (text.role, text.content[0].text) == ("assistant", "looking 0 up")
    assert isinstance(call, ResponseFunctionToolCallItem)
    assert (call.call_id, call.name, call.arguments) == ("c0b", "look", "{}")
    assert isinstance(output, ResponseFunctionToolCallOutputItem)
    assert (output.call_id, output.output) == ("c0b", "two")
    for missing in (f"msg_{conversation}_9", f"fc_{conversation}_1_2", f"msg_{conversation}_2"):
        with pytest.raises(openai.NotFoundError):
            item(missing)  # no message 9, no third call, message 2 is a tool result (fco_)


def test_deleting_an_item_removes_its_message_and_its_children_move_up(
    client: openai.OpenAI, proxy: str
) -> None:
    conversation = client.conversations.create(items=tool_round(0), metadata={"a": "b"}).id

    with pytest.raises(openai.BadRequestError) as refused:
        client.conversations.items.delete(f"fc_{conversation}_1_0", conversation_id=conversation)
    assert refused.value.param == "item_id"
    assert f"msg_{conversation}_1" in str(refused.value)
    after = client.conversations.items.delete(f"fco_{conversation}_2", conversation_id=conversation)
    client.conversations.items.delete(f"msg_{conversation}_0", conversation_id=conversation)

    assert (after.id, after.metadata) == (conversation, {"a": "b"})
    path = stored(proxy, conversation)
    assert [(m["id"], m["parent"]) for m in path] == [(1, None), (3, 1), (4, 3)]
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.delete(f"msg_{conversation}_0", conversation_id=conversation)


@pytest.mark.anyio
async def test_a_busy_conversation_refuses_changes_until_its_turn_ends(
    proxy: str, make_store: MakeStore
) -> None:
    store = make_store()
    async with openai.AsyncOpenAI(api_key=KEY, base_url=f"{proxy}/v1", max_retries=0) as client:
        conversation = (await client.conversations.create(items=tool_round(0))).id
        assert await take_lock(store, ChatRef("sdk", conversation), "a-turn", 30)

        with pytest.raises(openai.ConflictError):
            await client.conversations.items.create(
                conversation, items=[{"role": "user", "content": "waits"}]
            )
        with pytest.raises(openai.ConflictError):
            await client.conversations.items.delete(
                f"msg_{conversation}_0", conversation_id=conversation
            )
        await store.release_turn(ChatRef("sdk", conversation), "a-turn")
        added = await client.conversations.items.create(
            conversation, items=[{"role": "user", "content": "in"}]
        )
        assert [i.id for i in added.data] == [f"msg_{conversation}_5"]


Call = Callable[[openai.OpenAI, str], object]
USER = {"role": "user", "content": "hi"}
BAD: list[tuple[str, Call, str]] = [
    ("21 items", lambda c, _: c.conversations.create(items=[USER] * 21), "items"),
    (
        "17 pairs",
        lambda c, _: c.conversations.create(metadata={str(n): "v" for n in range(17)}),
        "metadata",
    ),
    ("long key", lambda c, _: c.conversations.create(metadata={"k" * 65: "v"}), "metadata"),
    ("long value", lambda c, _: c.conversations.create(metadata={"k": "v" * 513}), "metadata"),
    (
        "value not text",
        lambda c, _: c.conversations.create(metadata={"k": 1}),  # type: ignore[dict-item]
        "metadata",
    ),
    (
        "unknown item",
        lambda c, _: c.conversations.create(items=[USER, {"type": "web_search_call"}]),  # type: ignore[list-item]
        "items[1].type",
    ),
    (
        "unknown part",
        lambda c, cid: c.conversations.items.create(
            cid,
            items=[{"role": "user", "content": [{"type": "audio"}]}],  # type: ignore[list-item]
        ),
        "items[0].content[0].type",
    ),
    (
        "no items",
        lambda c, cid: c.conversations.items.create(cid, items=[]),
        "items",
    ),
    (
        "output without call",
        lambda c, cid: c.conversations.items.create(
            cid, items=[{"type": "function_call_output", "call_id": "nope", "output": "x"}]
        ),
        "items",
    ),
    (
        "call then message",
        lambda c, cid: c.conversations.items.create(
            cid,
            items=[
                {"type": "function_call", "call_id": "a", "name": "f", "arguments": "{}"},
                USER,
            ],
        ),
        "items",
    ),
    (
        "call id twice",
        lambda c, cid: c.conversations.items.create(
            cid,
            items=[
                {"type": "function_call", "call_id": "d", "name": "f", "arguments": "{}"},
                {"type": "function_call", "call_id": "d", "name": "f", "arguments": "{}"},
            ],
        ),
        "items[0]",  # the message the calls make, which starts at item 0
    ),
    (
        "blank message",
        lambda c, cid: c.conversations.items.create(cid, items=[{"role": "user", "content": " "}]),
        "items[0]",
    ),
    (
        "long arguments",
        lambda c, cid: c.conversations.items.create(
            cid,
            items=[
                USER,
                {"type": "function_call", "call_id": "a", "name": "f", "arguments": LONG},
            ],
        ),
        "items[1].arguments",
    ),
    (
        "long call id",
        lambda c, cid: c.conversations.items.create(
            cid,
            items=[
                {"type": "function_call", "call_id": "c" * 65, "name": "f", "arguments": "{}"},
            ],
        ),
        "items[0].call_id",
    ),
    (
        "item reference",
        lambda c, cid: c.conversations.items.create(
            cid, items=[{"type": "item_reference", "id": f"msg_{cid}_0"}]
        ),
        "items[0]",
    ),
    (
        "long file",
        lambda c, _: c.conversations.create(
            items=[{"role": "user", "content": [{"type": "input_file", "file_data": LONG}]}]
        ),
        "items[0].content[0].file_data",
    ),
    (
        "long filename",
        lambda c, _: c.conversations.create(
            items=[
                {
                    "role": "user",
                    "content": [{"type": "input_file", "file_data": "aGk=", "filename": LONG}],
                }
            ]
        ),
        "items[0].content[0].filename",
    ),
    ("order", lambda c, cid: c.conversations.items.list(cid, order="up"), "order"),  # type: ignore[arg-type]
    ("limit 0", lambda c, cid: c.conversations.items.list(cid, limit=0), "limit"),
    ("limit 101", lambda c, cid: c.conversations.items.list(cid, limit=101), "limit"),
    ("after", lambda c, cid: c.conversations.items.list(cid, after="item_1"), "after"),
    (
        "another's item",
        lambda c, cid: c.conversations.items.list(cid, after="msg_other_1"),
        "after",
    ),
    (
        "item id",
        lambda c, cid: c.conversations.items.retrieve("msg_01", conversation_id=cid),
        "item_id",
    ),
    (
        "conversation id",
        lambda c, _: c.conversations.retrieve("bad id!"),
        "conversation_id",
    ),
    (
        "unknown field",
        lambda c, cid: c.conversations.update(cid, metadata={}, extra_body={"name": "x"}),
        "name",
    ),
]


@pytest.mark.parametrize(("call", "param"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_inputs_are_refused_with_their_param_and_nothing_is_stored(
    client: openai.OpenAI, proxy: str, call: Call, param: str
) -> None:
    conversation = client.conversations.create(items=[USER], metadata={"kept": "yes"}).id
    before = stored(proxy, conversation)

    with pytest.raises(openai.BadRequestError) as refused:
        call(client, conversation)

    assert refused.value.param == param
    assert [c.id for c in conversations(client)] == [conversation]
    assert stored(proxy, conversation) == before
    assert client.conversations.retrieve(conversation).metadata == {"kept": "yes"}


def test_an_item_reference_is_refused_for_what_it_is_not_as_not_found(
    client: openai.OpenAI,
) -> None:
    conversation = client.conversations.create(items=[USER]).id
    first = client.conversations.items.list(conversation).data[0].id

    with pytest.raises(openai.BadRequestError) as referenced:
        client.conversations.items.create(
            conversation, items=[{"type": "item_reference", "id": first}]
        )
    with pytest.raises(openai.BadRequestError) as unknown:
        client.conversations.items.create(conversation, items=[{"type": "weird"}])  # type: ignore[list-item]

    assert "is in its conversation already" in referenced.value.message
    assert "not found" not in referenced.value.message
    assert "use message, function_call, function_call_output" in unknown.value.message
    assert "item_reference" not in unknown.value.message

"""The chat document (`service/chat_document.py`): written the same every time, read back as
the same chat, and refused with the place of the fault when it is not a chat."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatproxy.service import chat_document
from chatproxy.store.chat_tree import ChatTree, DocumentError
from chatproxy.store.items import Message, chained
from chatproxy.store.summary import Summary

USAGE = {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
TOOL_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
# What a reply keeps of the Responses request that asked for it (nulls kept as they came).
KEPT = {"instructions": None, "tools": [], "store": True, "created_at": 2.0, "input_first": 0}


def tree() -> ChatTree:
    items = chained(
        [
            Message("user", "hi ✓", created_at=1.5),
            Message(
                "assistant",
                None,
                created_at=2.25,
                tool_calls=[TOOL_CALL],
                model="m-1",
                finish_reason="tool_calls",
                usage={"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
                response=KEPT,
            ),
            Message("tool", "42", created_at=3.0, tool_call_id="call_1"),
        ],
        0,
        None,
    )
    fork = Message("user", [{"type": "text", "text": "other"}], created_at=4.0).placed(3, 0)
    return ChatTree(
        "c-1",
        1.0,
        5.0,
        [*items, fork],
        leaf=2,
        title="hi ✓",
        system="Be brief.",
        settings={"temperature": 0.5, "model": "m-2", "compaction": "summary"},
        metadata={"b": "2", "a": "1"},
        tokens={"prompt_tokens": 9, "completion_tokens": 1, "total_tokens": 10},
        summaries=[Summary(0, 1, "hi, then a call", model="m-s", usage=USAGE, created_at=4.5)],
    )


def document() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(chat_document.dumps(tree()))
    return data


def test_a_document_reads_back_as_the_same_chat_and_writes_the_same_bytes() -> None:
    text = chat_document.dumps(tree())

    again = chat_document.parse(json.loads(text))

    assert again.items == tree().items
    assert again.summaries == tree().summaries
    assert chat_document.dumps(again) == text
    assert list(json.loads(text)) == [
        "format", "version", "id", "title", "created", "updated", "leaf", "system",
        "settings", "metadata", "tokens", "items", "summaries",
    ]  # fmt: skip
    assert text.startswith('{"format":"chatproxy.chat","version":1,"id":"c-1"')
    assert '"metadata":{"a":"1","b":"2"}' in text


def test_a_document_may_be_imported_under_another_id() -> None:
    assert chat_document.parse(document(), "c-2").chat_id == "c-2"


def test_items_in_any_order_are_read_in_the_order_of_their_ids() -> None:
    data = document()
    data["items"].reverse()

    assert chat_document.parse(data).items == tree().items


def test_missing_totals_are_the_items_usage() -> None:
    data = document()
    del data["tokens"]

    assert chat_document.parse(data).tokens == {
        "prompt_tokens": 3,
        "completion_tokens": 1,
        "total_tokens": 4,
    }


def broken(change: str) -> dict[str, Any]:
    data = document()
    items = data["items"]
    if change == "missing parent":
        items[3]["parent"] = 9
    elif change == "cycle":
        items[0]["parent"], items[1]["parent"] = 2, 2
        items[2]["parent"] = 1
    elif change == "parent after child":
        items[1]["parent"] = 3
    elif change == "same id":
        items[3]["id"] = 1
    elif change == "bad role":
        items[2]["role"] = "robot"
    elif change == "leaf":
        data["leaf"] = 7
    elif change == "chat id":
        data["id"] = "a/b"
    elif change == "newer":
        data["version"] = 2
    elif change == "format":
        data["format"] = "other"
    elif change == "unknown field":
        items[0]["colour"] = "red"
    elif change == "string id":
        items[0]["id"] = "0"
    elif change == "summary of no item":
        data["summaries"][0]["covers"] = [0, 9]
    elif change == "summary backwards":
        data["summaries"][0]["covers"] = [1, 0]
    elif change == "setting":
        data["settings"]["compaction"] = "sometimes"
    elif change == "id too large":
        items[3]["id"] = 10**15  # Lua would write it back as 1e+15
    elif change == "tokens too large":
        data["tokens"]["total_tokens"] = 2**63 - 1
    elif change == "item tokens too large":
        items[1]["tokens"]["completion_tokens"] = 2**64
    elif change == "item tokens details":
        items[1]["tokens"]["prompt_tokens_details"] = {"cached_tokens": -1}
    elif change == "item tokens object":
        items[1]["tokens"]["total_tokens"] = {"a": 5}
    elif change == "item tokens breakdown":
        items[1]["tokens"]["prompt_tokens_details"] = 7
    elif change == "response time":
        items[1]["response"]["created_at"] = "x"
    elif change == "response tools":
        items[1]["response"]["tools"] = 5
    elif change == "call of no function":
        items[1]["tool_calls"] = [{"id": "call_1", "type": "function", "function": None}]
    elif change == "call of no name":
        items[1]["tool_calls"] = [{"id": "call_1", "type": "custom", "custom": {"input": ""}}]
    elif change == "call not an object":
        items[1]["tool_calls"] = ["call_1"]
    elif change == "two summaries at one item":
        data["summaries"].append(dict(data["summaries"][0], content="again"))
    return data


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ("missing parent", "items[3] (id 3): its parent 9 is not an item of the chat"),
        ("cycle", "items[1] (id 1): its parents make a cycle (1 → 2 → 1)"),
        ("parent after child", "items[1] (id 1): its parent 3 is numbered after it"),
        ("same id", "items[3] (id 1): id 1 is also items[1]'s"),
        ("bad role", "items[2] (id 2).role: Input should be 'system'"),
        ("leaf", "leaf: 7 is not an item of the chat"),
        ("chat id", "id: must be 1-128 of"),
        ("newer", "version 2 of the chat document is newer than this proxy reads (1)"),
        ("format", 'not a chat document: "format" must be "chatproxy.chat"'),
        ("unknown field", "items[0] (id 0).colour: Extra inputs are not permitted"),
        ("string id", "items[0].id: Input should be a valid integer"),
        ("summary of no item", "summaries[0]: the item it covers up to, 9, is not an item"),
        ("summary backwards", "summaries[0].covers: must be [first, last]"),
        ("setting", "settings.compaction: Input should be 'off' or 'summary'"),
        ("id too large", "items[3] (id 1000000000000000).id: Input should be less than or"),
        ("tokens too large", "tokens.total_tokens: Input should be less than or equal to"),
        ("item tokens too large", "items[1] (id 1).tokens: completion_tokens: must be a count"),
        ("item tokens object", "items[1] (id 1).tokens: total_tokens: must be a count"),
        ("item tokens details", "items[1] (id 1).tokens: prompt_tokens_details: each must be"),
        ("item tokens breakdown", "items[1] (id 1).tokens: prompt_tokens_details: must be an obj"),
        ("call of no function", "items[1] (id 1).tool_calls: call 0 must be a function or"),
        ("call of no name", "items[1] (id 1).tool_calls: call 0's custom.name must be a str"),
        ("call not an object", "items[1] (id 1).tool_calls[0]: Input should be a valid dict"),
        ("two summaries at one item", "summaries[1]: another summary also covers up to 1"),
        ("response time", "items[1] (id 1).response: created_at: Input should be"),
        ("response tools", "items[1] (id 1).response: tools: Input should be"),
    ],
)
def test_a_broken_document_is_refused_naming_the_place(change: str, error: str) -> None:
    with pytest.raises(DocumentError) as refused:
        chat_document.parse(broken(change))

    assert str(refused.value).startswith(error)


@pytest.mark.parametrize("data", [[], "x", None, {"format": "chatproxy.chat"}])
def test_what_is_no_document_is_refused(data: object) -> None:
    with pytest.raises(DocumentError):
        chat_document.parse(data)

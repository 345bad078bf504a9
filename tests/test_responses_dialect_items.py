"""The Responses dialect's items, without a server: item ids, the items stored messages are
(checked with the openai SDK's own types), and a request's `input` as chat completion messages
(checked with the service's own message rules), including every refusal."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from openai.types.conversations import ConversationItem
from openai.types.responses import ResponseInputItemParam, ResponseItem, ResponseOutputItem
from pydantic import TypeAdapter

from chatproxy.errors import ValidationFailed
from chatproxy.http.responses_input import input_messages, referenced_ids
from chatproxy.http.responses_items import ItemId, message_items, parse_item_id
from chatproxy.http.responses_lengths import check_lengths, text_names
from chatproxy.service import message_rules
from chatproxy.service.message_keys import message_key
from chatproxy.service.message_rules import Names, check_messages
from chatproxy.store.items import Message

CONVERSATION_ITEM: TypeAdapter[Any] = TypeAdapter(ConversationItem)
RESPONSE_ITEM: TypeAdapter[Any] = TypeAdapter(ResponseItem)
OUTPUT_ITEM: TypeAdapter[Any] = TypeAdapter(ResponseOutputItem)
INPUT_ITEM: TypeAdapter[Any] = TypeAdapter(ResponseInputItemParam)

IMAGE = "data:image/png;base64,iVBORw0KGgo="
PDF = "data:application/pdf;base64,JVBERi0="
CALL_A = {
    "id": "call_a",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
}
CALL_B = {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}

# A chat's path as the store keeps it: every kind of message the Responses API shows.
PATH = [
    Message("system", "Be brief.", id=0),
    Message("developer", "Answer in English.", id=1, parent=0),
    Message(
        "user",
        [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": IMAGE, "detail": "low"}},
            {"type": "file", "file": {"file_data": PDF, "filename": "a.pdf"}},
        ],
        id=2,
        parent=1,
    ),
    Message("assistant", "A picture and a PDF.", id=3, parent=2, model="m", finish_reason="stop"),
    Message("user", "Weather and time in Oslo?", id=4, parent=3),
    Message("assistant", "Let me look.", id=5, parent=4, tool_calls=[CALL_A, CALL_B]),
    Message("tool", '{"temp":3}', id=6, parent=5, tool_call_id="call_a"),
    Message("tool", [{"type": "text", "text": "12:00"}], id=7, parent=6, tool_call_id="call_b"),
    Message("assistant", None, id=8, parent=7, tool_calls=[CALL_A]),
    Message("tool", "4", id=9, parent=8, tool_call_id="call_a"),
    Message("assistant", "3 degrees at noon.", id=10, parent=9),
]


@pytest.mark.parametrize(
    ("text", "item_id"),
    [
        ("msg_0", ItemId(0)),
        ("msg_42", ItemId(42)),
        ("fc_5_0", ItemId.of_call(5, 0)),
        ("fc_5_12", ItemId.of_call(5, 12)),
        ("fco_6", ItemId.of_output(6)),
        ("msg_demo_3", ItemId(3, chat="demo")),
        ("msg_1_2", ItemId(2, chat="1")),
        ("fc_conv_a.b@c:d-e_5_0", ItemId.of_call(5, 0, "conv_a.b@c:d-e")),
        ("fco_x_9", ItemId.of_output(9, "x")),
    ],
)
def test_an_item_id_names_a_message_and_its_part_and_reads_back(text: str, item_id: ItemId) -> None:
    assert parse_item_id(text) == item_id
    assert str(item_id) == text


@pytest.mark.parametrize(
    "text",
    [
        *("msg_", "msg_01", "msg_-1", "fc_5", "rs_1", "resp_1", " msg_1", "msg_1 "),
        *("msg__1", "msg_a b_1", "msg_.._1", f"msg_{'c' * 129}_1", "fc_x_5", "fco_x_01"),
    ],
)
def test_an_id_the_proxy_does_not_give_names_nothing(text: str) -> None:
    assert parse_item_id(text) is None


def test_item_ids_order_as_a_path_shows_them() -> None:
    ids = [ItemId.of_call(5, 1), ItemId(6), ItemId(5), ItemId.of_call(5, 0), ItemId.of_output(4)]
    assert [str(i) for i in sorted(ids)] == ["fco_4", "msg_5", "fc_5_0", "fc_5_1", "msg_6"]


def path_items(chat: str = "") -> list[dict[str, Any]]:
    return [item for message in PATH for item in message_items(message, chat)]


def test_stored_messages_are_the_items_openai_lists() -> None:
    items = path_items()
    assert [item["id"] for item in items] == [
        *("msg_0", "msg_1", "msg_2", "msg_3", "msg_4", "msg_5", "fc_5_0", "fc_5_1"),
        *("fco_6", "fco_7", "fc_8_0", "fco_9", "msg_10"),
    ]
    for item in items:
        assert CONVERSATION_ITEM.validate_python(item).id == item["id"]
        assert RESPONSE_ITEM.validate_python(item).id == item["id"]
    user = items[2]
    assert user["role"] == "user"
    assert user["status"] == "completed"
    assert user["content"] == [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": IMAGE, "detail": "low"},
        {"type": "input_file", "file_data": PDF, "filename": "a.pdf"},
    ]
    assert items[0]["role"] == "system"
    assert items[1]["role"] == "developer"
    assert items[3]["content"] == [
        {"type": "output_text", "text": "A picture and a PDF.", "annotations": [], "logprobs": []}
    ]
    assert items[6] == {
        "id": "fc_5_0",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_a",
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    }
    assert items[8]["call_id"] == "call_a"
    assert items[8]["output"] == '{"temp":3}'
    assert items[9]["output"] == [{"type": "input_text", "text": "12:00"}]


def test_items_may_name_their_chat() -> None:
    ids = [item["id"] for item in path_items("conv_7")]
    assert ids[:2] == ["msg_conv_7_0", "msg_conv_7_1"]
    assert ids[6:9] == ["fc_conv_7_5_0", "fc_conv_7_5_1", "fco_conv_7_6"]
    assert all(parse_item_id(i) is not None for i in ids)
    assert {parse_item_id(i).chat for i in ids} == {"conv_7"}  # type: ignore[union-attr]


def test_a_replys_items_are_output_items_of_the_sdk() -> None:
    for message in PATH:
        if message.role == "assistant":
            for item in message_items(message.to_json()):  # the stored form works too
                assert OUTPUT_ITEM.validate_python(item).type == item["type"]


def test_an_assistant_message_without_text_or_calls_still_shows() -> None:
    (item,) = message_items(Message("assistant", "", id=3))
    assert item["content"][0]["text"] == ""
    assert CONVERSATION_ITEM.validate_python(item).type == "message"


def test_a_call_without_an_id_gets_one_from_its_item() -> None:
    call = {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}}
    (item,) = message_items(Message("assistant", None, id=3, tool_calls=[call]))
    assert item["call_id"] == "call_3_0"
    assert item["arguments"] == '{"a":1}'


def test_a_message_without_its_id_has_no_items() -> None:
    with pytest.raises(ValueError, match="id"):
        message_items(Message("user", "hi"))


def keys(messages: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What the service compares of messages (its own normalisation)."""
    return [
        message_key(m["role"], m.get("content"), m.get("tool_calls"), m.get("tool_call_id"))
        for m in messages
    ]


def test_the_items_of_a_path_sent_back_as_input_are_that_path() -> None:
    items = path_items()
    for item in items:  # what a client may send back is what the SDK may send
        INPUT_ITEM.validate_python(item)
    messages = input_messages(items)
    check_messages(messages)
    assert keys(messages) == keys([m.for_upstream() for m in PATH])


def test_a_string_is_one_user_message() -> None:
    assert input_messages("Hello") == [{"role": "user", "content": "Hello"}]
    assert referenced_ids("Hello") == []


# What the Vercel AI SDK (@ai-sdk/openai 3.x, store: true) sends for a conversation with a
# reasoning model's earlier reply, an image and tool calls.
AI_SDK_INPUT: list[dict[str, Any]] = [
    {"role": "developer", "content": "Be brief."},
    {
        "role": "user",
        "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": IMAGE},
            {"type": "input_file", "filename": "part-2.pdf", "file_data": PDF},
        ],
    },
    {"type": "reasoning", "id": "rs_1", "summary": []},
    {"type": "item_reference", "id": "msg_3"},
    {"role": "user", "content": [{"type": "input_text", "text": "Weather and time in Oslo?"}]},
    {
        "type": "function_call",
        "call_id": "call_a",
        "name": "get_weather",
        "arguments": '{"city":"Oslo"}',
    },
    {"type": "function_call", "call_id": "call_b", "name": "get_time", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_a", "output": '{"temp":3}'},
    {
        "type": "function_call_output",
        "call_id": "call_b",
        "output": [{"type": "input_text", "text": "12:00"}],
    },
]


def test_the_ai_sdks_input_is_chat_messages() -> None:
    # Not checked with the Python SDK's input types: the AI SDK leaves out an image's
    # `detail`, which those types require.
    assert referenced_ids(AI_SDK_INPUT) == [ItemId(3)]
    messages = input_messages(AI_SDK_INPUT, {3: PATH[3]})
    check_messages(messages)
    assert messages == [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
                {"type": "file", "file": {"file_data": PDF, "filename": "part-2.pdf"}},
            ],
        },
        {"role": "assistant", "content": "A picture and a PDF."},
        {"role": "user", "content": "Weather and time in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL_A, CALL_B]},
        {"role": "tool", "tool_call_id": "call_a", "content": '{"temp":3}'},
        {"role": "tool", "tool_call_id": "call_b", "content": "12:00"},
    ]


def test_function_calls_join_the_assistant_text_before_them() -> None:
    sent = [
        {
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "output_text", "text": "Let me"},
                {"type": "output_text", "text": " look."},
            ],
        },
        {
            "type": "function_call",
            "call_id": "call_a",
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
            "id": "fc_5_0",
            "status": "completed",
        },
        {"type": "function_call_output", "call_id": "call_a", "output": "3"},
        {"type": "function_call", "call_id": "call_b", "name": "get_time", "arguments": "{}"},
    ]
    assert input_messages(sent) == [
        {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL_A]},
        {"role": "tool", "tool_call_id": "call_a", "content": "3"},
        {"role": "assistant", "content": None, "tool_calls": [CALL_B]},
    ]


def test_references_name_a_replys_text_its_calls_and_tool_results() -> None:
    stored = {m.id: m for m in PATH if m.id is not None}
    sent = [
        {"id": "msg_5"},
        {"type": "item_reference", "id": "fc_5_1"},
        {"type": "item_reference", "id": "fco_7"},
    ]
    assert referenced_ids(sent) == [ItemId(5), ItemId.of_call(5, 1), ItemId.of_output(7)]
    assert input_messages(sent, stored) == [
        {"role": "assistant", "content": "Let me look.", "tool_calls": [CALL_B]},
        {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "12:00"}]},
    ]


def test_reasoning_items_are_left_out() -> None:
    sent = [
        {"type": "reasoning", "id": "rs_9", "summary": [{"type": "summary_text", "text": "hm"}]},
        {"role": "user", "content": "hi"},
    ]
    assert input_messages(sent) == [{"role": "user", "content": "hi"}]


def refused(sent: list[Any], stored: dict[int, Message] | None = None) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as caught:
        input_messages(sent, stored)
    error = caught.value
    assert error.status == 400
    assert error.to_openai_json()["error"]["type"] == "invalid_request_error"
    return error


USER = {"role": "user", "content": "hi"}


@pytest.mark.parametrize(
    ("item", "param", "words"),
    [
        ("hi", "input[1]", "must be an object"),
        ({"content": "hi"}, "input[1].type", "required"),
        (
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            "input[1].type",
            "'web_search_call' items are not supported",
        ),
        (
            {"type": "computer_call_output", "call_id": "c", "output": {}},
            "input[1].type",
            "computer_call_output",
        ),
        (
            {"type": "message", "role": "tool", "content": "x"},
            "input[1].role",
            "user, system, developer, assistant",
        ),
        ({"role": "user", "content": 3}, "input[1].content", "string or a list"),
        ({"role": "user", "content": []}, "input[1].content", "string or a list"),
        (
            {"role": "user", "content": [{"type": "output_text", "text": "x"}]},
            "input[1].content[0].type",
            "input_text, input_image, input_file",
        ),
        (
            {"role": "system", "content": [{"type": "input_image", "image_url": IMAGE}]},
            "input[1].content[0].type",
            "input_text",
        ),
        (
            {"role": "user", "content": [{"type": "input_text", "text": 5}]},
            "input[1].content[0].text",
            "must be a string",
        ),
        (
            {"role": "user", "content": [{"type": "input_image", "detail": "auto"}]},
            "input[1].content[0].image_url",
            "required",
        ),
        (
            {
                "role": "user",
                "content": [{"type": "input_image", "file_id": "file-1", "detail": "auto"}],
            },
            "input[1].content[0].file_id",
            "uploaded files",
        ),
        (
            {"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]},
            "input[1].content[0].file_id",
            "uploaded files",
        ),
        (
            {"role": "user", "content": [{"type": "input_file", "file_url": "https://x/a.pdf"}]},
            "input[1].content[0].file_url",
            "files by URL",
        ),
        (
            {"role": "user", "content": [{"type": "input_file", "filename": "a.pdf"}]},
            "input[1].content[0].file_data",
            "required",
        ),
        (
            {"role": "assistant", "content": [{"type": "input_text", "text": "x"}]},
            "input[1].content[0].type",
            "output_text or refusal",
        ),
        ({"type": "function_call", "name": "f", "arguments": "{}"}, "input[1].call_id", "required"),
        ({"type": "function_call", "call_id": "c", "arguments": "{}"}, "input[1].name", "required"),
        (
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": {}},
            "input[1].arguments",
            "must be a string",
        ),
        ({"type": "function_call_output", "output": "x"}, "input[1].call_id", "required"),
        (
            {"type": "function_call_output", "call_id": "c", "output": 5},
            "input[1].output",
            "string or a list",
        ),
        (
            {
                "type": "function_call_output",
                "call_id": "c",
                "output": [{"type": "input_image", "image_url": IMAGE}],
            },
            "input[1].output[0].type",
            "input_text",
        ),
        ({"type": "item_reference", "id": "rs_1"}, "input[1].id", "not found"),
        ({"type": "item_reference"}, "input[1].id", "required"),
    ],
)
def test_an_item_a_chat_model_cannot_take_is_refused_naming_it(
    item: Any, param: str, words: str
) -> None:
    error = refused([USER, item])
    assert error.param == param
    assert words in error.message
    assert error.to_openai_json()["error"]["param"] == param


ELEVEN = "x" * 11


def text(kind: str, field: str = "text") -> list[dict[str, str]]:
    return [{"type": kind, field: ELEVEN}]


# An item of each kind with a text over a limit of 10, and the field a refusal names.
OVER_THE_LIMIT = pytest.mark.parametrize(
    ("item", "param"),
    [
        ({"role": "user", "content": ELEVEN}, "input[1].content"),
        ({"role": "user", "content": text("input_text")}, "input[1].content[0].text"),
        (
            {"role": "assistant", "content": text("refusal", "refusal")},
            "input[1].content[0].refusal",
        ),
        (
            {"type": "function_call", "call_id": "c", "name": "f", "arguments": ELEVEN},
            "input[1].arguments",
        ),
        ({"type": "function_call_output", "call_id": "c", "output": ELEVEN}, "input[1].output"),
        (
            {"type": "function_call_output", "call_id": "c", "output": text("input_text")},
            "input[1].output[0].text",
        ),
        (
            {"role": "user", "content": text("input_file", "file_data")},
            "input[1].content[0].file_data",
        ),
    ],
)


@OVER_THE_LIMIT
def test_a_text_arguments_or_file_over_the_limit_is_refused_naming_it(
    item: Any, param: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        check_lengths([USER, item], 10)
    assert caught.value.param == param
    assert caught.value.message == f"{param}: at most 10 characters (MAX_CONTENT_CHARS)"
    check_lengths([USER, item], 11)  # at the limit: taken


def test_ids_names_and_image_urls_are_not_held_to_the_content_limit() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64," + "A" * 50}
    sent = [
        {"role": "user", "content": [image]},
        {"type": "function_call", "call_id": "c" * 50, "name": "f" * 50, "arguments": "{}"},
        {"type": "item_reference", "id": "msg_" + "a" * 50 + "_1"},
    ]
    check_lengths(sent, 10)  # nothing refused
    check_lengths("x" * 50, 10)  # a string input is one message: held to the limit by its turn


@pytest.mark.parametrize("item_id", ["msg_4", "fc_5_2", "fc_3_0", "fco_5", "msg_6", "msg_99"])
def test_a_reference_to_an_item_the_chat_does_not_hold_is_refused(item_id: str) -> None:
    stored = {m.id: m for m in PATH if m.id is not None and m.id != 4}
    error = refused([{"type": "item_reference", "id": item_id}], stored)
    assert error.param == "input[0].id"
    assert "not found" in error.message


def test_references_to_two_chats_are_refused() -> None:
    sent = [{"id": "msg_a_1"}, USER, {"type": "item_reference", "id": "msg_b_3"}]
    with pytest.raises(ValidationFailed) as caught:
        referenced_ids(sent)
    assert caught.value.param == "input[2].id"
    assert referenced_ids(sent[:2]) == [ItemId(1, chat="a")]


def test_a_reference_naming_its_chat_reads_from_that_chat() -> None:
    """The caller reads the chat the references name; the messages are found by their ids."""
    sent = [{"type": "item_reference", "id": "msg_conv_7_3"}, USER]
    (reference,) = referenced_ids(sent)
    assert (reference.chat, reference.message) == ("conv_7", 3)
    assert input_messages(sent, {3: PATH[3]})[0] == {
        "role": "assistant",
        "content": "A picture and a PDF.",
    }


def test_an_unknown_reference_is_refused_before_anything_is_read() -> None:
    with pytest.raises(ValidationFailed) as caught:
        referenced_ids([USER, {"type": "item_reference", "id": "msg_x"}])
    assert caught.value.param == "input[1].id"


def test_the_lengths_of_input_nested_past_the_recursion_limit_are_checked() -> None:
    nested: Any = "x" * 11
    for _ in range(5000):
        nested = [nested]
    deep = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": nested}]}
    check_lengths([deep], 10)  # not a limited field's string: taken here, its shape refused later

    with pytest.raises(ValidationFailed) as refused:
        check_lengths([deep, {"type": "function_call_output", "output": "y" * 11}], 10)
    assert refused.value.param == "input[1].output"


def translated(sent: Any) -> tuple[list[dict[str, Any]], Names]:
    """`sent`'s chat messages, and how a refusal names them (`responses._input`)."""
    origins: list[int] = []
    messages = input_messages(sent, {5: Message("assistant", ELEVEN, id=5)}, origins)
    return messages, Names(tuple(origins), partial(text_names, sent, tuple(origins)))


def held(sent: Any) -> ValidationFailed:
    """The refusal of `sent`'s chat messages over a limit of 10, as a stored request's placement
    holds them (here every message is new)."""
    messages, names = translated(sent)
    with pytest.raises(ValidationFailed) as caught:
        message_rules.check_lengths(messages, 10, names)
    assert (
        caught.value.message == f"{caught.value.param}: at most 10 characters (MAX_CONTENT_CHARS)"
    )
    return caught.value


@OVER_THE_LIMIT
def test_a_text_held_once_translated_is_named_as_in_the_item_it_came_from(
    item: Any, param: str
) -> None:
    assert held([USER, item]).param == param
    messages, names = translated([USER, item])
    message_rules.check_lengths(messages, 11, names)  # at the limit: taken


def call(call_id: str, arguments: str) -> dict[str, str]:
    return {"type": "function_call", "call_id": call_id, "name": "f", "arguments": arguments}


@pytest.mark.parametrize(
    ("sent", "param"),
    [
        (ELEVEN, "input"),  # a string input: one message
        (
            [USER, {"role": "assistant", "content": "ok"}, call("a", "{}"), call("b", ELEVEN)],
            "input[3].arguments",
        ),
        ([USER, {"type": "reasoning", "summary": []}, call("a", ELEVEN)], "input[2].arguments"),
        ([USER, {"type": "item_reference", "id": "msg_5"}], "input[1]"),  # a stored message
        (
            [{"role": "user", "content": [{"type": "input_text", "text": "x" * 6}] * 2}],
            "input[0].content",
        ),
        (
            [
                {"role": "assistant", "content": [{"type": "output_text", "text": "ok"}]},
                call("a", ELEVEN),
            ],
            "input[1].arguments",
        ),
    ],
    ids=["string", "second-call", "after-reasoning", "reference", "parts-together", "reply-call"],
)
def test_a_text_of_a_message_of_several_items_is_named_by_the_item_it_came_from(
    sent: Any, param: str
) -> None:
    assert held(sent).param == param

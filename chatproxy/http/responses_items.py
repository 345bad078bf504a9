"""Own what a chat's stored messages are as the Responses and Conversations APIs' items: their
ids, and the `message`, `function_call` and `function_call_output` items one message is.

A chat completion message and a Responses item are not one to one: an assistant message with
text and tool calls is a `message` item followed by one `function_call` item per call, and a
`role: tool` message is a `function_call_output` item. Item ids say which message (its id in its
chat) and which part of it they name, so every item maps back to the stored message:

    msg_<n>       the message n (user, system, developer, or an assistant's text)
    fc_<n>_<k>    the k-th tool call (from 0) of the assistant message n
    fco_<n>       the tool message n (a tool result)

Such an id names an item within one chat, known from the request (a conversation's id, a
previous response's chat). An id may also name its chat, after the prefix (`msg_<chat>_<n>`,
`fc_<chat>_<n>_<k>`, `fco_<chat>_<n>`; the API key says whose chat): the Vercel AI SDK sends
an earlier reply back as an `item_reference` to its item id even in a request with neither
`previous_response_id` nor `conversation`, so the reply's item ids must say where it is. Every
function here takes the chat to name (`chat`, "" for none).

An assistant message with tool calls and no text has no `message` item; one with neither has
an empty `output_text`, so that every stored message shows.

Nothing here does I/O; the items parse with the openai SDK's own types (`ConversationItem`,
`ResponseItem`, `ResponseOutputItem`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Literal

from chatproxy.store.items import Message, valid_chat_id

JsonObject = dict[str, Any]
ItemKind = Literal["message", "function_call", "function_call_output"]

_NUMBER = r"(0|[1-9][0-9]{0,17})"  # one spelling per number: no leading zeros
_CHAT = r"(?:(.{1,128})_)?"  # a chat id's characters include `_`: the numbers come last
_ID_FORMS: list[tuple[ItemKind, re.Pattern[str]]] = [
    ("message", re.compile(rf"msg_{_CHAT}{_NUMBER}")),
    ("function_call", re.compile(rf"fc_{_CHAT}{_NUMBER}_{_NUMBER}")),
    ("function_call_output", re.compile(rf"fco_{_CHAT}{_NUMBER}")),
]
_PREFIXES: dict[ItemKind, str] = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
}


@dataclass(frozen=True, order=True)
class ItemId:
    """Which stored message an item is, and which part of it: `call` is the index of a tool
    call in an assistant message's `tool_calls` (for a `function_call` item only); `chat` the
    chat it names ("" for the request's). Ordered as the items of a chat's path are: by
    message, then its text before its calls."""

    message: int
    call: int = -1
    kind: ItemKind = "message"
    chat: str = ""

    def __str__(self) -> str:
        numbers = f"{self.message}_{self.call}" if self.kind == "function_call" else self.message
        chat = f"{self.chat}_" if self.chat else ""
        return f"{_PREFIXES[self.kind]}_{chat}{numbers}"

    @classmethod
    def of_call(cls, message: int, call: int, chat: str = "") -> ItemId:
        return cls(message, call, "function_call", chat)

    @classmethod
    def of_output(cls, message: int, chat: str = "") -> ItemId:
        return cls(message, -1, "function_call_output", chat)


def parse_item_id(text: str) -> ItemId | None:
    """The `ItemId` an item id names, or None if it is no id this proxy gives."""
    for kind, form in _ID_FORMS:
        match = form.fullmatch(text)
        if match is None:
            continue
        chat, *numbers = match.groups()
        if chat is not None and not valid_chat_id(chat):
            return None
        if kind == "function_call":
            return ItemId.of_call(int(numbers[0]), int(numbers[1]), chat or "")
        return ItemId(int(numbers[0]), -1, kind, chat or "")
    return None


def carried_ids(sent: Any) -> list[ItemId]:
    """The ids this proxy gave that a request's `input` items carry whole, as the SDKs return
    them (`input += response.output`), when all name one chat: like an item_reference's, they
    say where the turn goes, if it is in the caller's chat (else they are just items)."""
    kinds = ("message", "function_call", "function_call_output")
    items = sent if isinstance(sent, list) else []
    texts = [i.get("id") for i in items if isinstance(i, dict) and i.get("type") in kinds]
    found = [parse_item_id(text) for text in texts if isinstance(text, str)]
    named = [item_id for item_id in found if item_id is not None and item_id.chat]
    return named if len({item_id.chat for item_id in named}) == 1 else []


def message_items(message: Message | JsonObject, chat: str = "") -> list[JsonObject]:
    """The items one stored message is, in order, their ids naming `chat`: a tool result is a
    `function_call_output`; an assistant message its text (if it has any, or nothing at all)
    and then its tool calls; any other message a `message` item with its role."""
    message = as_message(message)
    if message.id is None:
        raise ValueError("a stored message has its id")
    if message.role == "tool":
        return [function_call_output_item(message, chat)]
    item_id = ItemId(message.id, chat=chat)
    if message.role != "assistant":
        return [message_item(item_id, message.role, input_parts(message.content))]
    items: list[JsonObject] = []
    parts = output_parts(message.content)
    if parts or not message.tool_calls:
        items.append(message_item(item_id, "assistant", parts or [output_text("")]))
    for k, call in enumerate(message.tool_calls or []):
        items.append(function_call_item(ItemId.of_call(message.id, k, chat), call))
    return items


def as_message(message: Message | JsonObject) -> Message:
    """A stored message, from itself or its stored form (`Message.to_json`)."""
    return message if isinstance(message, Message) else Message.from_json(message)


def message_item(
    item_id: ItemId, role: str, content: list[JsonObject], status: str = "completed"
) -> JsonObject:
    """A `message` item."""
    return {
        "id": str(item_id),
        "type": "message",
        "status": status,
        "role": role,
        "content": content,
    }


def function_call_item(item_id: ItemId, call: JsonObject, status: str = "completed") -> JsonObject:
    """A `function_call` item of a chat completion tool call (`{id, type, function: {name,
    arguments}}`), with a call id made from the item id if the model gave it none."""
    function = call.get("function")
    if not isinstance(function, dict):
        function = {}
    arguments = function.get("arguments")
    if not isinstance(arguments, str):  # an upstream that sent an object: its JSON text
        arguments = "" if arguments is None else json.dumps(arguments, separators=(",", ":"))
    return {
        "id": str(item_id),
        "type": "function_call",
        "status": status,
        "call_id": call_id_of(call, item_id),
        "name": str(function.get("name") or ""),
        "arguments": arguments,
    }


def call_id_of(call: JsonObject, item_id: ItemId) -> str:
    """A tool call's id: the model's, or one made from its item id (`call_<n>_<k>`)."""
    call_id = call.get("id")
    if isinstance(call_id, str) and call_id:
        return call_id
    return f"call_{item_id.message}_{item_id.call}"


def function_call_output_item(message: Message, chat: str = "") -> JsonObject:
    """The `function_call_output` item of a stored tool message."""
    assert message.id is not None
    content = message.content
    output: str | list[JsonObject]
    if isinstance(content, list):
        output = [part for part in input_parts(content) if part["type"] == "input_text"]
    else:
        output = content or ""
    return {
        "id": str(ItemId.of_output(message.id, chat)),
        "type": "function_call_output",
        "status": "completed",
        "call_id": message.tool_call_id or "",
        "output": output,
    }


def output_text(text: str) -> JsonObject:
    """An assistant's `output_text` content part."""
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def output_parts(content: Any) -> list[JsonObject]:
    """An assistant message's content as output parts: its text, refusals as `refusal`."""
    if isinstance(content, str):
        return [output_text(content)] if content else []
    parts = []
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            continue
        if part.get("type") == "text" and isinstance(part.get("text"), str):
            parts.append(output_text(part["text"]))
        elif part.get("type") == "refusal" and isinstance(part.get("refusal"), str):
            parts.append({"type": "refusal", "refusal": part["refusal"]})
    return parts


def input_parts(content: Any) -> list[JsonObject]:
    """A user, system or developer message's content as input parts: text as `input_text`,
    `image_url` as `input_image`, `file` as `input_file`; a part of any other kind (audio) has
    no input part and is left out."""
    if isinstance(content, str):
        return [{"type": "input_text", "text": content}]
    parts = []
    for part in content if isinstance(content, list) else []:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            parts.append({"type": "input_text", "text": part["text"]})
        elif kind == "image_url" and isinstance(part.get("image_url"), dict):
            image = part["image_url"]
            detail = image.get("detail") or "auto"
            parts.append({"type": "input_image", "image_url": image.get("url"), "detail": detail})
        elif kind == "file" and isinstance(part.get("file"), dict):
            file = {k: v for k, v in part["file"].items() if k in FILE_FIELDS}
            parts.append({"type": "input_file", **file})
    return parts


FILE_FIELDS = ("file_data", "filename", "file_id")

"""Own MAX_CONTENT_CHARS for the items of a request: a Responses request's `input`, and a
Conversations request's `items` (the same items).

`check_lengths` holds each text, tool call's arguments, file's data and filename to it as the
items were sent, before their shape is checked (`responses_input.py` translates them after),
and a refusal names the field (`items[2].arguments`): a Conversations request's items, all of
which the request adds. A Conversations request's tool call ids (`call_id`), which the chat
keeps with the call and its result, and the names its `function_call`s call, are held to the
64 characters OpenAI's API takes here too; a call's output is not, as it must name a call the
chat waits for (`placement.py`, `service/conversations.py`): one of the request's own, or one
the model made, whose id another server's model may have made longer.

A Responses request (stored or not) is held in what it adds only, once its input is placed on
the path it continues (`service/placement.py`, as a chat-mode request's messages are), and so
are the ids and names of the calls it adds (a call the model made, which a client sends back
whole, is matched, whatever its id and name): `text_names` says where in its items each text
(and call id and name) of a chat message it refuses came from, so that the refusal names the
field (`input[3].arguments`, `input[3].call_id`, `input[3].name`; the text of a message of
several text parts as a whole, `input[2].content`).

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatproxy.errors import ValidationFailed
from chatproxy.http.responses_items import parse_item_id
from chatproxy.service.placing import MAX_CALL_ID, MAX_CALL_NAME

# The fields of input items that hold what a message says (text, a tool call's arguments, a
# file's data and name), each held to MAX_CONTENT_CHARS; ids, names and image URLs are not.
LIMITED_FIELDS = frozenset(
    ("content", "text", "refusal", "output", "arguments", "file_data", "filename")
)


def check_lengths(sent: Any, max_chars: int, where: str = "input", *, calls: bool = True) -> None:
    """Refuse a string in `sent` (a request's `input`, walked as it was sent, before its shape
    is checked: without recursion, however deep it nests) of a field of `LIMITED_FIELDS` longer
    than `max_chars`, or with `calls` a call's `call_id` longer than MAX_CALL_ID or a
    `function_call`'s `name` longer than MAX_CALL_NAME, naming it (`input[2].arguments`)."""
    stack: list[tuple[Any, str]] = [(sent, where)]
    while stack:
        node, at = stack.pop()
        inside: list[tuple[str, Any, Any]] = []
        if isinstance(node, dict):
            inside = [(f"{at}.{key}", key, value) for key, value in node.items()]
        elif isinstance(node, list):
            inside = [(f"{at}[{n}]", None, value) for n, value in enumerate(node)]
        for path, key, value in inside:
            if isinstance(value, str) and key in LIMITED_FIELDS and len(value) > max_chars:
                raise ValidationFailed(
                    f"{path}: at most {max_chars} characters (MAX_CONTENT_CHARS)", param=path
                )
            most = _call_bound(node, key) if calls else None
            if most is not None and isinstance(value, str) and len(value) > most:
                raise ValidationFailed(
                    f"{path}: at most {most} characters, as OpenAI's API takes it", param=path
                )
        stack.extend((value, path) for path, _, value in reversed(inside))


def _call_bound(node: Any, key: str | None) -> int | None:
    """The bound on the field `key` of the item `node` when it is a call's: its `call_id`
    (not an output's: see above) or a `function_call`'s `name`."""
    kind = str(node.get("type")) if isinstance(node, dict) else ""
    if key == "call_id" and not kind.endswith("_output"):
        return MAX_CALL_ID
    if key == "name" and kind == "function_call":
        return MAX_CALL_NAME
    return None


TEXT_PARTS = {"input_text": "text", "output_text": "text", "refusal": "refusal"}


def text_names(sent: Any, origins: Sequence[int], n: int) -> dict[str, str]:
    """Name, for the chat message `n` that `responses_input.input_messages` made of `sent`
    (`origins`: the index of the item each message came from), the field of `sent` that each
    text it holds to MAX_CONTENT_CHARS came from, by the text's field in the message ("" for
    its content), as `message_rules.Names.texts` takes them. Asked only of a message refused."""
    if isinstance(sent, str):
        return {"": "input"}
    first = origins[n]
    if n + 1 < len(origins) and origins[n + 1] == first:
        return {}  # the stored call a tool result brought in before it: named by its item
    end = next((i for i in origins[n + 1 :] if i > first), len(sent))
    named: dict[str, str] = {}
    calls = 0
    for i in range(first, end):  # the items the message came from: itself, then its calls
        item, where = sent[i], f"input[{i}]"
        kind = item.get("type") or ("message" if "role" in item else "item_reference")
        reference = parse_item_id(str(item.get("id"))) if kind == "item_reference" else None
        if kind == "function_call" or (reference and reference.kind == "function_call"):
            field = ".arguments" if reference is None else ""
            named[f".tool_calls[{calls}].function.arguments"] = f"{where}{field}"
            named[f".tool_calls[{calls}].function.name"] = f"{where}.name" if field else where
            named[f".tool_calls[{calls}].id"] = f"{where}.call_id" if field else where
            calls += 1
        elif i == first and kind == "item_reference":
            named[""] = where
        elif i == first and kind == "message":
            named.update(_content_names(item.get("content"), f"{where}.content"))
        elif i == first and kind == "function_call_output":
            named[""] = _text_name(item.get("output"), f"{where}.output")
    return named


def _content_names(content: Any, where: str) -> dict[str, str]:
    """The names of a message item's text (`""`) and files, as its chat message holds them."""
    named = {"": _text_name(content, where)}
    for j, part in enumerate(content if isinstance(content, list) else ()):
        if isinstance(part, dict) and part.get("type") == "input_file":
            named[f".content[{j}].file.file_data"] = f"{where}[{j}].file_data"
            named[f".content[{j}].file.filename"] = f"{where}[{j}].filename"
    return named


def _text_name(value: Any, where: str) -> str:
    """The name of the text of a content or an output: its one text part's, else its own."""
    parts = value if isinstance(value, list) else []
    texts = [
        (j, p) for j, p in enumerate(parts) if isinstance(p, dict) and p.get("type") in TEXT_PARTS
    ]
    if len(texts) != 1:
        return where
    j, part = texts[0]
    return f"{where}[{j}].{TEXT_PARTS[part['type']]}"

"""Own the translation of a Responses request's `input` into chat completion messages (the
shape `bodies.ChatMessage` and the store keep: `role`, `content` as a string or a list of
parts), refusing what a chat completion model cannot take with a `ValidationFailed` that names
the field (`param`: `input[3].content[1].type`).

- A string is one user message.
- A `message` item (or an item with a `role` and no `type`, as the SDKs' short form sends it)
  is a message of its role: user, system, developer or assistant. A user's, system's or
  developer's parts: `input_text` → `text`; a user's `input_image` → `image_url` (its URL or
  data URL and `detail`) and `input_file` → `file` (`file_data` and `filename`). Ids of files
  uploaded to OpenAI (`file_id`) and files by URL (`file_url`) have no chat completion form
  and are refused. An assistant's `output_text` and `refusal` parts are its text, joined: the
  proxy stores a reply's text (or refusal) as a string. Content that is one text part is that
  text, as a string.
- `function_call` items are tool calls (`{id: call_id, type: function, function: {name,
  arguments}}`) of the assistant message before them, or of a new one: a reply's text and its
  calls are one chat completion message, as the items they came from were one reply.
- A `function_call_output` item is a `role: tool` message for its `call_id`, its output a
  string or `input_text` parts (a chat completion tool result holds text only).
- An `item_reference` (`{"type": "item_reference", "id": ...}`, or `{"id": ...}` alone) names a
  stored item (`responses_items` ids, all of one chat): `referenced_ids` says which messages
  the caller must read, and `input_messages` puts each in its place, as the item it names (an
  assistant message's text alone, or one of its tool calls). An id the caller could not find
  is refused (400, like OpenAI's "not found" for an item).
- `reasoning` items are dropped: a chat completion model takes no reasoning items, and the
  proxy keeps none (the Vercel AI SDK sends them back for reasoning models).
- Any other item type (built-in tools' calls and outputs, custom tools, MCP, ...) is refused.

MAX_CONTENT_CHARS is `responses_lengths.py`'s: up front for what is all added, else once the
messages are placed, in what they add, named by the field each text came from.

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from chatproxy.errors import ValidationFailed
from chatproxy.http.responses_items import ItemId, parse_item_id
from chatproxy.store.items import Message

JsonObject = dict[str, Any]

ROLES = ("user", "system", "developer", "assistant")
ITEM_TYPES = ("message", "function_call", "function_call_output", "item_reference", "reasoning")


def input_messages(
    sent: str | Sequence[Any],
    stored: Mapping[int, Message] | None = None,
    origins: list[int] | None = None,
    references: bool = True,
) -> list[JsonObject]:
    """The chat completion messages a request's `input` is; `stored` holds the messages its
    item references name (by message id, of the chat `referenced_ids` found them in). Each
    message's item (its first: an assistant's text and calls are one message) is added to
    `origins` (empty when given), by its index in `input`. Without `references` (a
    conversation's new items), an `item_reference` is refused."""
    origins = [] if origins is None else origins
    if isinstance(sent, str):
        origins.append(0)
        return [{"role": "user", "content": sent}]
    messages: list[JsonObject] = []
    for n, item in enumerate(sent):
        where = f"input[{n}]"
        kind = _item_type(item, where, references)
        if kind == "message":
            messages.append(_message(item, where))
        elif kind == "function_call":
            _add_call(messages, _call(item, where))
        elif kind == "function_call_output":
            messages.append(_call_output(item, where))
        elif kind == "item_reference":
            _add_referenced(messages, _reference(item, where), stored or {}, where)
        origins += [n] * (len(messages) - len(origins))
    return messages


def referenced_ids(sent: str | Sequence[Any]) -> list[ItemId]:
    """The stored items a request's `input` names by `item_reference`, in order; an id that is
    none of this proxy's is refused here, before anything is read, and so are references to
    two chats (a request continues one; `ItemId.chat`, "" for the request's own)."""
    if isinstance(sent, str):
        return []
    found: list[ItemId] = []
    for n, item in enumerate(sent):
        if _item_type(item, f"input[{n}]") != "item_reference":
            continue
        found.append(_reference(item, f"input[{n}]"))
        if found[-1].chat != found[0].chat:
            raise ValidationFailed(
                f"input[{n}].id: the items a request names must be of one conversation",
                param=f"input[{n}].id",
            )
    return found


def _item_type(item: Any, where: str, references: bool = True) -> str:
    """An item's type: its `type`, or a message's (a `role` alone) or a reference's (an `id`
    alone) short form; an item of a type chat completions cannot take is refused."""
    if not isinstance(item, dict):
        raise ValidationFailed(f"{where}: must be an object (an input item)", param=where)
    kind = item.get("type")
    if kind is None:
        kind = "message" if "role" in item else "item_reference" if "id" in item else None
    if kind == "item_reference" and not references:
        raise ValidationFailed(
            f"{where}: an item_reference adds nothing: the item it names is in its conversation"
            " already (add a message, function_call or function_call_output)",
            param=where,
        )
    if kind in ITEM_TYPES:
        return str(kind)
    if kind is None:
        raise ValidationFailed(f"{where}.type: required", param=f"{where}.type")
    unused = ("reasoning",) if references else ("reasoning", "item_reference")
    supported = ", ".join(t for t in ITEM_TYPES if t not in unused)
    raise ValidationFailed(
        f"{where}.type: {str(kind)[:64]!r} items are not supported; use {supported}",
        param=f"{where}.type",
    )


def _message(item: JsonObject, where: str) -> JsonObject:
    role = item.get("role")
    if role not in ROLES:
        raise ValidationFailed(
            f"{where}.role: must be one of {', '.join(ROLES)}", param=f"{where}.role"
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list) or not content:
        raise ValidationFailed(
            f"{where}.content: must be a string or a list of content parts",
            param=f"{where}.content",
        )
    if role == "assistant":
        texts = [_output_text(part, f"{where}.content[{j}]") for j, part in enumerate(content)]
        return {"role": role, "content": "".join(texts)}
    allowed = INPUT_PARTS if role == "user" else ("input_text",)
    parts = [_input_part(part, f"{where}.content[{j}]", allowed) for j, part in enumerate(content)]
    return {"role": role, "content": _simplified(parts)}


INPUT_PARTS = ("input_text", "input_image", "input_file")


def _input_part(part: Any, where: str, allowed: Sequence[str]) -> JsonObject:
    """A chat completion content part of a user's (or system's) input part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind not in allowed:
        raise ValidationFailed(
            f"{where}.type: must be one of {', '.join(allowed)}", param=f"{where}.type"
        )
    if kind == "input_text":
        return {"type": "text", "text": _text(part, "text", where)}
    _refuse_uploads(part, where)
    if kind == "input_image":
        image = {"url": _text(part, "image_url", where, required=True)}
        _copy_optional(part, "detail", image, where)
        return {"type": "image_url", "image_url": image}
    file = {"file_data": _text(part, "file_data", where, required=True)}
    _copy_optional(part, "filename", file, where)
    return {"type": "file", "file": file}


def _copy_optional(part: JsonObject, field: str, into: JsonObject, where: str) -> None:
    """Copy a part's optional string field, if it has one."""
    if part.get(field) is not None:
        into[field] = _text(part, field, where)


def _refuse_uploads(part: JsonObject, where: str) -> None:
    """Refuse an image or file given by an uploaded file's id or (a file) by its URL: chat
    completions take neither, and the proxy keeps no files."""
    for field, what in (("file_id", "uploaded files"), ("file_url", "files by URL")):
        if part.get(field) is not None:
            raise ValidationFailed(
                f"{where}.{field}: {what} are not supported; send the file's content"
                " (an image as image_url, a file as file_data)",
                param=f"{where}.{field}",
            )


def _output_text(part: Any, where: str) -> str:
    """The text of an assistant's `output_text` or `refusal` part."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "output_text":
        return _text(part, "text", where)
    if kind == "refusal":
        return _text(part, "refusal", where)
    raise ValidationFailed(
        f"{where}.type: must be output_text or refusal (an assistant's content)",
        param=f"{where}.type",
    )


def _call(item: JsonObject, where: str) -> JsonObject:
    """The chat completion tool call a `function_call` item is."""
    call_id = _text(item, "call_id", where, required=True)
    name = _text(item, "name", where, required=True)
    arguments = _text(item, "arguments", where)
    function = {"name": name, "arguments": arguments}
    return {"id": call_id, "type": "function", "function": function}


def _add_call(messages: list[JsonObject], call: JsonObject) -> None:
    """Add a tool call to the assistant message before it, or to a new one."""
    if messages and messages[-1]["role"] == "assistant":
        messages[-1].setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _call_output(item: JsonObject, where: str) -> JsonObject:
    call_id = _text(item, "call_id", where, required=True)
    output = item.get("output")
    if isinstance(output, list):
        where = f"{where}.output"
        parts = [
            _input_part(part, f"{where}[{j}]", ("input_text",)) for j, part in enumerate(output)
        ]
        output = _simplified(parts)
    elif not isinstance(output, str):
        raise ValidationFailed(
            f"{where}.output: must be a string or a list of input_text parts",
            param=f"{where}.output",
        )
    return {"role": "tool", "tool_call_id": call_id, "content": output}


def _reference(item: JsonObject, where: str) -> ItemId:
    """The stored item an `item_reference` names."""
    text = _text(item, "id", where, required=True)
    item_id = parse_item_id(text)
    if item_id is None:
        raise _not_found(text, where)
    return item_id


def _add_referenced(
    messages: list[JsonObject], item_id: ItemId, stored: Mapping[int, Message], where: str
) -> None:
    """Add the stored item `item_id` names, as the item it is."""
    message = stored.get(item_id.message)
    if message is None:
        raise _not_found(str(item_id), where)
    calls = message.tool_calls or []
    if (
        item_id.kind == "function_call"
        and message.role == "assistant"
        and item_id.call < len(calls)
    ):
        _add_call(messages, dict(calls[item_id.call]))
    elif item_id.kind == "function_call_output" and message.role == "tool":
        messages.append(
            {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content}
        )
    elif item_id.kind == "message" and message.role != "tool":
        messages.append({"role": message.role, "content": message.content})
    else:
        raise _not_found(str(item_id), where)


def _not_found(item_id: str, where: str) -> ValidationFailed:
    return ValidationFailed(
        f"{where}.id: item with id {item_id[:64]!r} not found", param=f"{where}.id"
    )


def _text(item: JsonObject, field: str, where: str, *, required: bool = False) -> str:
    """A field that must be a string (non-empty if `required`)."""
    value = item.get(field)
    if not isinstance(value, str) or (required and not value):
        problem = "required (a non-empty string)" if required else "must be a string"
        raise ValidationFailed(f"{where}.{field}: {problem}", param=f"{where}.{field}")
    return value


def _simplified(parts: list[JsonObject]) -> str | list[JsonObject]:
    """Content of one text part as its text; any other content as its parts."""
    if len(parts) == 1 and parts[0]["type"] == "text":
        return str(parts[0]["text"])
    return parts

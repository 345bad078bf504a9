"""Own what a chat completion message may hold. Pure.

`check_messages` refuses the first message of a request that the proxy cannot store or compare,
with a `ValidationFailed` that says where (`messages[3].content[1].type`): a role other than
system, developer, user, assistant and tool; content that is not a string or a list of parts of
the types its role may send (user: text, image_url, input_audio, file; assistant: text,
refusal; the others: text); a user message with no content; tool calls other than an
assistant's, or without an id (unique in the message) or a tool's name; an assistant message
with neither content, a refusal nor tool calls (no model accepts one); a `refusal` that is not
a string; a tool message without `tool_call_id`, or another message with one. `check_lengths`
refuses the first whose text, refusal, a file's data or name, an audio's data or a tool call's
arguments is longer than MAX_CONTENT_CHARS (`messages[1].tool_calls[0].function.arguments`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chatproxy.errors import ValidationFailed
from chatproxy.tokens import content_text

TEXT = ("text",)
KNOWN_PARTS = {
    "system": TEXT,
    "developer": TEXT,
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": TEXT,
}
CALL_TYPES = ("function", "custom")
CALL_TEXT = {"function": "arguments", "custom": "input"}  # the text a call of each kind holds
# the fields of a part held to MAX_CONTENT_CHARS: its base64 data (and a file's name)
DATA_FIELDS = {"file": ("file_data", "filename"), "input_audio": ("data",)}


@dataclass(frozen=True)
class Names:
    """How a refusal names a request's message n: `messages[n]` (a chat completion request's),
    or, for messages translated from a Responses request's `input`, the item each came from
    (`items[n]`: its index in `input`, None for one of no item, the instructions), whose tool
    result names its call `call_id` and is a `function_call_output`; `texts(n)` name the field
    of its items that each text of message n that `check_lengths` holds, and each call's id and
    name, came from (by its field in the message, "" for its content: `{".tool_calls[0].id":
    "input[3].call_id"}`), asked only of a message refused."""

    items: tuple[int | None, ...] | None = None
    texts: Callable[[int], Mapping[str, str]] | None = None

    def of(self, n: int, field: str | None = None) -> str:
        """The name of message `n`, or of its `field`."""
        if self.items is None:
            where = f"messages[{n}]"
        else:
            item = self.items[n] if n < len(self.items) else None
            where = "input" if item is None else f"input[{item}]"
            field = "call_id" if field == "tool_call_id" else field
        return where if field is None else f"{where}.{field}"

    def of_text(self, n: int, field: str) -> str:
        """The name of the text at `field` of message `n` (as `_limited_texts` says it)."""
        named = self.texts(n).get(field) if self.texts is not None else None
        return named or f"{self.of(n)}{field}"

    def after(self, name: str) -> Names:
        """These names, for the same messages after one of no item named `name` (a Responses
        request's instructions, its system message)."""
        texts = self.texts or (lambda n: {})
        return Names((None, *(self.items or ())), lambda n: texts(n - 1) if n else {"": name})

    @property
    def whole(self) -> str:
        """The name of the messages as a whole."""
        return "messages" if self.items is None else "input"

    @property
    def result(self) -> str:
        """What a tool result is called."""
        return "tool message" if self.items is None else "function_call_output"


MESSAGES = Names()  # a chat completion request's messages


def check_messages(
    sent: Sequence[Mapping[str, Any]],
    start: int = 0,
    stop: int | None = None,
    names: Names | None = None,
) -> None:
    """Refuse the first message (of `sent[start:stop]`) whose shape the proxy cannot store or
    compare, naming it as `names` does."""
    names = names or MESSAGES
    for n in range(start, len(sent) if stop is None else stop):
        try:
            _check_message(names.of(n), sent[n])
        except ValidationFailed as exc:
            if names.items is not None:  # the field is a chat message's: the item is named
                exc.param = names.of(n)
            raise


def check_lengths(
    sent: Sequence[Mapping[str, Any]],
    max_chars: int,
    names: Names,
    skip: range = range(0),
    start: int = 0,
) -> None:
    """Refuse the first message of `sent` from `start` on (but those in `skip`) whose text,
    refusal, a file's data or name, an audio's data or a tool call's arguments (a custom tool's
    input) is longer than `max_chars`, naming the field
    (`messages[2].tool_calls[0].function.arguments`)."""
    for n in (*range(start, skip.start), *range(max(start, skip.stop), len(sent))):
        for field, text in _limited_texts(sent[n]):
            if len(text) > max_chars:
                where = names.of_text(n, field)
                raise ValidationFailed(
                    f"{where}: at most {max_chars} characters (MAX_CONTENT_CHARS)", param=where
                )


def _limited_texts(message: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """The texts of a message held to MAX_CONTENT_CHARS, each with the field it is in: its
    content's text (its text parts together), each file part's data and name (as a Responses
    request's `input_file`) and audio part's data, its refusal, and each tool call's arguments.
    A field of another type is left to `check_messages`."""
    content = message.get("content")
    yield "", content_text(content)[0]
    for j, part in enumerate(content if isinstance(content, list) else ()):
        kind = part.get("type") if isinstance(part, dict) else None
        fields = DATA_FIELDS.get(kind, ()) if isinstance(kind, str) else ()
        body = part.get(kind) if fields else None
        held = body if isinstance(body, dict) else {}
        for name in fields:
            if isinstance(held.get(name), str):
                yield f".content[{j}].{kind}.{name}", held[name]
    refusal = message.get("refusal")
    if isinstance(refusal, str):  # an assistant's refusal is stored as its text
        yield ".refusal", refusal
    calls = message.get("tool_calls")
    for j, call in enumerate(calls if isinstance(calls, list) else ()):
        kind = call.get("type", "function") if isinstance(call, dict) else None
        field = CALL_TEXT.get(kind) if isinstance(kind, str) else None
        body = call.get(kind) if field is not None else None
        if isinstance(body, dict) and isinstance(body.get(field), str):
            yield f".tool_calls[{j}].{kind}.{field}", body[field]


def _check_message(at: str, message: Mapping[str, Any]) -> None:
    role = message.get("role")
    if not isinstance(role, str) or role not in KNOWN_PARTS:
        raise _refused(f"{at}.role: must be one of {', '.join(KNOWN_PARTS)}")
    _check_content(at, role, message.get("content"))
    calls = message.get("tool_calls")
    if calls is not None and role != "assistant":
        raise _refused(f"{at}.tool_calls: only an assistant makes tool calls")
    if calls is not None:
        _check_calls(f"{at}.tool_calls", calls)
    refusal = message.get("refusal")
    if refusal is not None and not isinstance(refusal, str):
        raise _refused(f"{at}.refusal: must be a string")
    if role == "assistant" and message.get("content") in (None, []) and not (refusal or calls):
        raise _refused(f"{at}: the assistant message has no content, refusal or tool_calls")
    call_id = message.get("tool_call_id")
    answers = isinstance(call_id, str) and call_id != ""
    if (role == "tool" and not answers) or (role != "tool" and call_id is not None):
        problem = "name the call this answers" if role == "tool" else "only a tool result has one"
        raise _refused(f"{at}.tool_call_id: {problem}")
    if not isinstance(message.get("name", ""), str):
        raise _refused(f"{at}.name: must be a string")


def _check_content(at: str, role: str, content: Any) -> None:
    if isinstance(content, str):
        if role == "user" and not content.strip():
            raise _refused(f"{at}.content: the user message has no content")
        return
    if content is None and role == "assistant":
        return
    where = f"{at}.content"
    if not isinstance(content, list):
        raise _refused(f"{where}: must be a string or a list of content parts")
    known = KNOWN_PARTS[role]
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind not in known:
            raise _refused(
                f"{where}[{j}].type: {kind!r:.40} is not a content part of {role} messages;"
                f" use {', '.join(known)}"
            )
        if kind in ("text", "refusal") and not isinstance(part.get(kind), str):
            raise _refused(f"{where}[{j}].{kind}: must be a string")
    if role == "user" and not _has_content(content):
        raise _refused(f"{where}: the user message has no content")


def _check_calls(where: str, calls: Any) -> None:
    if not isinstance(calls, list):
        raise _refused(f"{where}: must be a list of tool calls")
    seen: set[str] = set()
    for j, call in enumerate(calls):
        call_id = call.get("id") if isinstance(call, dict) else None
        if not (isinstance(call_id, str) and call_id):
            raise _refused(f"{where}[{j}].id: each tool call needs an id")
        if call_id in seen:
            raise _refused(f"{where}[{j}].id: {call_id!r:.80} is used twice")
        seen.add(call_id)
        kind = call.get("type", "function")
        if kind not in CALL_TYPES or not isinstance(call.get(kind), dict):
            raise _refused(f"{where}[{j}]: must be a function or custom tool call")
        if not isinstance(call[kind].get("name"), str):
            raise _refused(f"{where}[{j}].{kind}.name: must be a string")
        field = "arguments" if kind == "function" else "input"
        if not isinstance(call[kind].get(field), str):  # as OpenAI's API has it
            raise _refused(f"{where}[{j}].{kind}.{field}: must be a string")


def replayable_calls(calls: list[Any] | None) -> list[Any] | None:
    """Return stored tool calls (an import's), or raise ValueError naming the first one unfit to
    replay: each must be an object of a known type whose function (or custom tool) is an object
    with a string name. Looser than a request's: a reply keeps its calls as the model wrote them
    (some send arguments as an object, or no id)."""
    for j, call in enumerate(calls or []):
        kind = call.get("type", "function") if isinstance(call, dict) else None
        body = call.get(kind) if isinstance(call, dict) and kind in CALL_TYPES else None
        if not isinstance(body, dict):
            raise ValueError(f"call {j} must be a function or custom tool call")
        if not isinstance(body.get("name"), str):
            raise ValueError(f"call {j}'s {kind}.name must be a string")
        if not isinstance(call.get("id", ""), str):
            raise ValueError(f"call {j}'s id must be a string")
    return calls


def _refused(text: str) -> ValidationFailed:
    """A refusal whose `param` is the place its text starts with (`messages[3].content: ...`),
    as OpenAI names the field at fault."""
    return ValidationFailed(text, param=text.split(": ", 1)[0])


def _has_content(parts: list[dict[str, Any]]) -> bool:
    """Whether user content holds anything: text that is not blank, or a part of another kind."""
    return any(part["type"] != "text" or part["text"].strip() for part in parts)

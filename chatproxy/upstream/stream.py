"""Own a reply that arrives in pieces: the server-sent events of a streamed chat completion.

The events are read here, to the end of the body, so the connection goes back to the pool for
the next call: a reader that stops at `data: [DONE]` and closes the response throws the
connection away, and every streamed turn then pays a new TCP and TLS handshake.

What the lines mean is kept apart from how they are read: `EventLines` turns lines into chunks
and `ReplyParts` gathers a reply from its chunks (text and tool calls alike, into the body a
plain answer would have had; each chunk's tool-call deltas numbered as OpenAI's first, by
`call_indexes.CallIndexes`, for the reply and for every reader of the chunk), neither doing
any I/O;
`reply_stream.AsyncReplyStream` reads the lines from aiohttp and translates its failures.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from chatproxy.jsontext import parse
from chatproxy.upstream.answers import completion_of
from chatproxy.upstream.base import Completion, Delta, JsonObject
from chatproxy.upstream.call_indexes import CallIndexes
from chatproxy.upstream.provider_errors import tenant_message, withheld
from chatproxy.upstream_errors import UpstreamError

DRAIN_LINES = 16
DRAIN_SECONDS = 0.25  # the longest wait for the end of a body after `[DONE]`
STREAMED_NO_TEXT = "the model provider streamed no text"
# What a chunk says of the whole answer, kept for its reassembled body.
HEAD_FIELDS = ("id", "created", "model", "system_fingerprint", "service_tier")
# The finish reasons of a reply that stopped before it was done: its text may be empty.
CUT_SHORT = frozenset({"length", "content_filter"})
# Fields a streamed delta sends whole, never in pieces.
WHOLE_FIELDS = frozenset({"index", "type", "role", "id"})


class EventLines:
    """The `chat.completion.chunk` objects of an event stream, from its lines one at a time
    (without their line ends): `feed` returns the chunk a line completes, if any, and sets
    `done` at `data: [DONE]`; an error event, or an event that is no chunk, raises."""

    def __init__(self) -> None:
        self.done = False
        self._data: list[str] = []

    def feed(self, line: str) -> JsonObject | None:
        if line.startswith("data:"):
            self._data.append(line[5:].removeprefix(" "))
            return None
        if line or not self._data:  # other fields (event:, id:, comments), or no event yet
            return None
        payload, self._data = "\n".join(self._data), []
        if payload == "[DONE]":
            self.done = True
            return None
        if not payload:
            return None
        chunk = parse(payload)
        if not isinstance(chunk, dict):
            raise UpstreamError("the model provider streamed something that is no chunk")
        if chunk.get("error"):
            raise UpstreamError(_stream_failure(chunk))
        return chunk


class ReplyParts:
    """A streamed reply gathered from its chunks: `add` reads a chunk (its tool-call deltas
    renumbered as OpenAI's, then its first choice's deltas merged as the official SDKs merge
    them: strings joined, a tool call's pieces by their index), and once the stream has ended
    `check_finished` and `completion` say whether and what it replied."""

    def __init__(self, model: str, messages: Sequence[dict[str, Any]]):
        self._messages = messages
        self._head: JsonObject = {"model": model}
        self._message: JsonObject = {}
        self._logprobs: JsonObject | None = None
        self._finish: str | None = None
        self._usage: Any = None
        self._finished = False
        self._indexes = CallIndexes()

    def add(self, chunk: JsonObject) -> Delta:
        """Read the stream's next chunk; return it as every reader sees it (its tool-call
        deltas renumbered), with the text it adds to the reply."""
        chunk = self._indexes.renumbered(chunk)
        for name in HEAD_FIELDS:
            if chunk.get(name) is not None:
                self._head[name] = chunk[name]
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        text, adds = "", False
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            self._finished = self._finished or choice.get("finish_reason") is not None
            delta = choice.get("delta") or {}
            adds = adds or any(_says(v) for k, v in delta.items() if k != "role")
            if choice.get("index", 0) == 0:
                text += self._add_first(choice, delta)
        return Delta(chunk, text, adds)

    def check_finished(self, done: bool) -> None:
        """Raise if the stream ended before the reply said it was complete: with no finish
        reason, and not at `data: [DONE]` (`done`). Some servers never send a finish reason:
        a reply they end at `[DONE]` stopped ("tool_calls" if it calls tools), as OpenAI
        would have said; but one whose function call's arguments broke off (no JSON yet) was
        cut short at its cap ("length")."""
        if done and self._finish is None:
            calls = joined(self._message.get("tool_calls")) or []
            cut = any(map(_broke_off, calls))
            self._finish = "length" if cut else "tool_calls" if calls else "stop"
        elif not self._finished:
            raise UpstreamError("the model provider's stream broke off")

    def completion(self) -> Completion:
        """Return the whole reply once the stream has ended: its tool calls in the order their
        first pieces came, as a Responses stream adds their items, whatever their `index`es."""
        message = {"role": "assistant", **joined(self._message)}
        if not message.get("content") and not self._cut_short(message):
            message["content"] = None  # no text: calls only, or (neither) a bad response
        calls = message.get("tool_calls") or []  # in the order their first pieces came
        if calls:
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        choice = {"index": 0, "message": message, "finish_reason": self._finish}
        choice["logprobs"] = joined(self._logprobs)
        body = {**self._head, "object": "chat.completion", "choices": [choice]}
        if self._usage is not None:
            body["usage"] = self._usage
        return completion_of(body, body["model"], self._messages, STREAMED_NO_TEXT)

    def _cut_short(self, message: JsonObject) -> bool:
        """Whether a reply is empty text that stopped at its cap or its content filter before
        any came (a reasoning model's that thought to the end of it): an incomplete reply, as
        the same answer unstreamed is."""
        calls, refusal = message.get("tool_calls"), message.get("refusal")
        empty = message.get("content") == "" and not calls and not refusal
        return empty and self._finish in CUT_SHORT

    def _add_first(self, choice: JsonObject, delta: Any) -> str:
        """Merge a delta of the first choice; return the text it adds."""
        if choice.get("finish_reason") is not None:
            self._finish = str(choice["finish_reason"])
        logprobs = choice.get("logprobs")
        if isinstance(logprobs, dict):
            self._logprobs = self._logprobs or {}
            merge_delta(self._logprobs, logprobs)
        if not isinstance(delta, dict):
            return ""
        merge_delta(self._message, delta)
        text = delta.get("content") or delta.get("refusal")
        return text if isinstance(text, str) else ""


def merge_delta(into: JsonObject, delta: JsonObject) -> None:
    """Add `delta` to what `into` holds of a streamed object: strings are joined (`joined`
    makes them strings again), objects merged, lists of objects with an `index` merged by it
    (`_merge_items`) and other lists extended; an `index`, `type`, `role` or `id` is replaced,
    as it is sent whole."""
    for key, value in delta.items():
        have = into.get(key)
        if isinstance(value, str) and key not in WHOLE_FIELDS and isinstance(have, str | Pieces):
            into[key] = have if isinstance(have, Pieces) else Pieces([have])
            into[key].append(value)
        elif key not in into or (value is not None and (have is None or key in WHOLE_FIELDS)):
            into[key] = copy.deepcopy(value)  # later pieces change it: never the chunk's own
        elif isinstance(have, dict) and isinstance(value, dict):
            merge_delta(have, value)
        elif isinstance(have, list) and isinstance(value, list):
            _merge_items(have, value)
        elif value is not None:
            into[key] = copy.deepcopy(value)


class Pieces(list[str]):
    """A string that arrives in pieces, joined once (by `joined`) when the reply is whole:
    joining as they come would copy the whole string again for every piece."""


def joined(value: Any) -> Any:
    """`value` with every `Pieces` in it joined into its string, and the halves of a character
    that came apart (`paired`) made one again."""
    if isinstance(value, Pieces):
        return paired("".join(value))
    if isinstance(value, str):
        return paired(value)
    if isinstance(value, dict):
        return {k: joined(v) for k, v in value.items()}
    if isinstance(value, list):
        return [joined(v) for v in value]
    return value


def paired(text: str) -> str:
    """`text` with each UTF-16 surrogate pair in it made the one character it stands for (an
    upstream that slices its text by UTF-16 code units, as JavaScript strings are, can send
    the two halves as escapes in two chunks); a half without its other half becomes U+FFFD."""
    if text.isascii():
        return text
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _merge_items(have: list[Any], items: list[Any]) -> None:
    """Merge each item with the newest one of the same `index` in `have`, or add it (an item
    without an index too)."""
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        same = None
        if index is not None:
            same = next((h for h in reversed(have) if _index_of(h) == index), None)
        if same is not None:
            merge_delta(same, item)
        else:
            have.append(copy.deepcopy(item))


def _index_of(item: Any) -> Any:
    return item.get("index") if isinstance(item, dict) else None


def _broke_off(call: Any) -> bool:
    """Whether a streamed function call's arguments stop before their JSON is whole (none at
    all is not: a call of no arguments, from a server that sends none)."""
    function = call.get("function") if isinstance(call, dict) else None
    arguments = function.get("arguments") if isinstance(function, dict) else None
    if not isinstance(arguments, str) or not arguments.strip():  # a custom tool's: no JSON
        return False
    try:
        parse(arguments)
    except ValueError:
        return True
    return False


def _says(value: Any) -> bool:
    """Whether a delta's value adds something (an empty string, list or object does not)."""
    return value is not None and value != "" and value != [] and value != {}


def _stream_failure(chunk: JsonObject) -> str:
    """What a tenant is told of an error event in a stream: its message, unless it is about
    the operator's account (`provider_errors.py`)."""
    error = chunk.get("error")
    error = error if isinstance(error, dict) else {}
    if withheld(error):
        return "the model provider's stream failed over this service's account with it"
    return f"the model provider's stream failed: {tenant_message(error) or 'no message'}"

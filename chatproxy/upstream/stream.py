"""Own a reply that arrives in pieces: the server-sent events of a streamed chat completion.

The events are read here, to the end of the body, so the connection goes back to the pool for
the next call: a reader that stops at `data: [DONE]` and closes the response throws the
connection away, and every streamed turn then pays a new TCP and TLS handshake.

What the lines mean is kept apart from how they are read: `EventLines` turns lines into chunks
and `ReplyParts` gathers a reply from its chunks, neither doing any I/O;
`client.AsyncReplyStream` reads the lines from aiohttp and translates its failures.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from chatproxy.errors import UpstreamBadResponse, UpstreamError
from chatproxy.tokens import USAGE_FIELDS, estimate_usage
from chatproxy.upstream.base import Completion, JsonObject

DRAIN_LINES = 16
MAX_MESSAGE_CHARS = 500


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
        chunk = json.loads(payload)
        if not isinstance(chunk, dict):
            raise UpstreamError("the model provider streamed something that is no chunk")
        if chunk.get("error"):
            raise UpstreamError(f"the model provider's stream failed: {_error_text(chunk)}")
        return chunk


class ReplyParts:
    """A streamed reply gathered from its chunks: `add` returns a chunk's texts, and once the
    stream has ended `check_finished` and `completion` say whether and what it replied."""

    def __init__(self, model: str, messages: Sequence[dict[str, Any]]):
        self._model = model
        self._messages = messages
        self._parts: list[str] = []
        self._usage: dict[str, int] | None = None
        self._finished = False

    def add(self, chunk: JsonObject) -> list[str]:
        self._model = chunk.get("model") or self._model
        usage = chunk.get("usage")
        if isinstance(usage, dict) and all(type(usage.get(f)) is int for f in USAGE_FIELDS):
            self._usage = {f: usage[f] for f in USAGE_FIELDS}
        texts = []
        for choice in chunk.get("choices") or []:
            self._finished = self._finished or choice.get("finish_reason") is not None
            text = (choice.get("delta") or {}).get("content")
            if text:
                texts.append(str(text))
        self._parts += texts
        return texts

    def check_finished(self) -> None:
        """Raise if the stream ended before the reply said it was complete."""
        if not self._finished:
            raise UpstreamError("the model provider's stream broke off")

    def completion(self) -> Completion:
        """Return the whole reply once the stream has ended."""
        content = "".join(self._parts)
        if not content:
            raise UpstreamBadResponse("the model provider streamed no text")
        if self._usage is None:
            usage = estimate_usage(self._messages, content)
            return Completion(content, self._model, usage, usage_estimated=True)
        return Completion(content, self._model, self._usage, usage_estimated=False)


def _error_text(chunk: JsonObject) -> str:
    """The message of an error event in a stream."""
    error = chunk.get("error")
    text = error.get("message") if isinstance(error, dict) else None
    return str(text or "no message")[:MAX_MESSAGE_CHARS]

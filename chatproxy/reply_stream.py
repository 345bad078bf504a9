"""Own a reply that arrives in pieces: the server-sent events of a streamed chat completion.

The events are read here, to the end of the body, so the connection goes back to the pool for
the next call: a reader that stops at `data: [DONE]` and closes the response throws the
connection away, and every streamed turn then pays a new TCP and TLS handshake.

What the lines mean is kept apart from how they are read: `EventLines` turns lines into chunks
and `ReplyParts` gathers a reply from its chunks, neither doing any I/O, and `ReplyStream` reads
the lines from urllib3 and translates its failures. A reader over another HTTP client needs
only the last part.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.exceptions import HTTPError, TimeoutError

from chatproxy.errors import UpstreamBadResponse, UpstreamError, UpstreamTimeout
from chatproxy.tokens import USAGE_FIELDS, estimate_usage

JsonObject = dict[str, Any]
DRAIN_LINES = 16
MAX_MESSAGE_CHARS = 500
READ_BYTES = 64 * 1024


@dataclass(frozen=True)
class Completion:
    """The reply to one chat completion call."""

    content: str
    model: str
    usage: dict[str, int]
    usage_estimated: bool


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


class ReplyStream:
    """A reply arriving in pieces: iterate for the text deltas, then ask for the `Completion`."""

    def __init__(
        self, response: urllib3.BaseHTTPResponse, model: str, messages: Sequence[dict[str, Any]]
    ):
        self._response = response
        self._reply = ReplyParts(model, messages)

    def __iter__(self) -> Iterator[str]:
        """Yield the reply's text as it arrives; a stream that breaks off is an upstream error.
        What follows `[DONE]` is read too (normally only the end of the body), so the connection
        can serve the next call."""
        try:
            lines, events = _lines(self._response), EventLines()
            for line in lines:
                chunk = events.feed(line)
                if events.done:
                    _drain(lines)
                    break
                if chunk is not None:
                    yield from self._reply.add(chunk)
        except UpstreamError:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout() from exc
        except Exception as exc:  # a cut connection, a malformed chunk: the reply is incomplete
            raise UpstreamError("the model provider's stream broke off") from exc
        finally:
            self.close()
        self._reply.check_finished()

    def completion(self) -> Completion:
        """Return the whole reply once the stream has ended."""
        return self._reply.completion()

    def close(self) -> None:
        """Release the response (see `release`)."""
        release(self._response)


def release(response: urllib3.BaseHTTPResponse) -> None:
    """Give a response's connection back: closed, unless its body was read to the end (then
    urllib3 has already put it back in the pool, open)."""
    response.close()
    response.release_conn()


def _lines(response: urllib3.BaseHTTPResponse) -> Iterator[str]:
    """The body's lines as they arrive (without their line ends), each read as soon as it is
    there: `read1` returns what has arrived rather than waiting for a full buffer."""
    pending = b""
    while data := response.read1(READ_BYTES):
        *complete, pending = (pending + data).split(b"\n")
        for line in complete:
            yield line.removesuffix(b"\r").decode(errors="replace")
    if pending:
        yield pending.removesuffix(b"\r").decode(errors="replace")


def _drain(lines: Iterator[str]) -> None:
    """Read the little that follows `[DONE]`. The reply is complete by then, so a failure here
    (a connection closed without the body's last bytes) only costs the connection, and so does
    a body that goes on: after DRAIN_LINES lines it is left unread and the connection dropped."""
    try:
        for _ in itertools.islice(lines, DRAIN_LINES):
            pass
    except (HTTPError, OSError):
        pass


def _error_text(chunk: JsonObject) -> str:
    """The message of an error event in a stream."""
    error = chunk.get("error")
    text = error.get("message") if isinstance(error, dict) else None
    return str(text or "no message")[:MAX_MESSAGE_CHARS]

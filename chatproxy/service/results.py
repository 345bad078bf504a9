"""Own what the service answers a turn with, the types every handler renders: `TurnResult` for a
plain turn, `StreamingTurn` for a streamed one, and the `StreamEvent`s a stream is made of; and
for the Responses API, a response's turn (`Responded`) and a stored response (`Found`).

Whether a turn is stored (a chat's) or only passed on (the OpenAI endpoint without a chat id), it
answers in these types, so a handler has one way to render a plain answer and one for a stream.
An error after a stream has begun is its last event and carries the `ProxyError`, so the edge
renders it exactly as it renders the same error raised before the stream began.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from chatproxy.errors import ProxyError
from chatproxy.store.items import Message
from chatproxy.upstream.base import Completion, Delta, ReplyStream

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnResult:
    """The answer to a plain turn: the reply as clients see it (as it is stored), whether it is
    a replay, and the upstream's whole answer (None for a replay, which made no call)."""

    body: dict[str, Any]
    replayed: bool = False
    upstream: dict[str, Any] | None = None


@dataclass(frozen=True)
class StreamEvent:
    """One event of a streamed turn: a delta (`data` has its text; `chunk` is the upstream's
    chunk, `Delta.chunk`, None in a replay), the reply once it is whole (stored, for a chat's
    turn), or the error that ended the stream (`error`; `data` is its JSON body)."""

    kind: Literal["delta", "done", "error"]
    data: dict[str, Any]
    error: ProxyError | None = None
    chunk: dict[str, Any] | None = None

    @classmethod
    def piece(cls, delta: Delta) -> StreamEvent:
        """The `delta` event of one chunk of the upstream's stream."""
        return cls("delta", {"content": delta.text}, chunk=delta.chunk)

    @classmethod
    def failure(cls, exc: Exception) -> StreamEvent:
        """The `error` event that ends a stream which failed with `exc`; an exception that is no
        `ProxyError` is logged and reported as an internal error."""
        if not isinstance(exc, ProxyError):
            log.error("a stream failed", exc_info=exc)
            exc = ProxyError()
        return cls("error", exc.to_json(), exc)


class Events(Protocol):
    """A stream's events, read with `async for`; `aclose` tells it that the reader has gone."""

    def __aiter__(self) -> AsyncIterator[StreamEvent]: ...

    def aclose(self) -> Awaitable[None]: ...


@dataclass(frozen=True)
class StreamingTurn:
    """A streamed turn's events (ending with `done` or `error`) and whether it is a replay; for
    a chat's turn, the id its reply has in the chat (known once the turn is placed, before the
    reply is stored), and for a replay the stored reply its events repeat."""

    events: Events
    replayed: bool = False
    reply_id: int | None = None
    replay: dict[str, Any] | None = None


async def replayed(reply: dict[str, Any]) -> AsyncGenerator[StreamEvent, None]:
    """The events of a replayed streamed turn: its whole text (if it has any: a reply may only
    call tools), then its stored reply."""
    if reply.get("content"):
        yield StreamEvent("delta", {"content": reply["content"]})
    yield StreamEvent("done", reply)


async def read_opening(stream: ReplyStream) -> tuple[AsyncIterator[Delta], list[Delta]]:
    """Read `stream`'s chunks up to the first that adds to the reply (text, a tool call's
    piece, ...), that one included; return the rest of its chunks and those. A streamed turn, a
    chat's or a pass-through, reads these before it answers, so that a failure until then is an
    error answer, not an event; so is a stream that ended before its reply began (but for empty
    text, cut at its cap: `ReplyStream.completion`)."""
    pieces = aiter(stream)
    opening = []
    while (delta := await anext(pieces, None)) is not None:
        opening.append(delta)
        if delta.adds:
            return pieces, opening
    stream.completion()  # raises, but for empty text
    return pieces, opening


def reply_of(completion: Completion) -> Message:
    """The reply a completion holds, as a chat stores it: its text, tool calls, model, why it
    stopped and its usage."""
    return Message(
        "assistant",
        completion.content,
        usage=completion.usage,
        model=completion.model,
        tool_calls=completion.tool_calls,
        finish_reason=completion.finish_reason,
    )


Answer = TypeVar("Answer", TurnResult, StreamingTurn)


@dataclass(frozen=True)
class Responded(Generic[Answer]):
    """A Responses API turn: its response's id, the chat its item ids name, its reply's item
    id, when it was asked for (the first time, for a replayed Idempotency-Key), and the turn's
    answer."""

    id: str
    chat: str
    reply_id: int
    created_at: float
    answer: Answer


@dataclass(frozen=True)
class Found:
    """A stored response: its chat, its reply, and (when asked for) its turn's input."""

    chat: str
    reply: Message
    inputs: list[Message]

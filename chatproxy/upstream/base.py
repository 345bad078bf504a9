"""Own what the service knows of the model client: the `Upstream` protocol, the `ReplyStream` a
streamed call answers with, and the `Completion` a call ends with.

The service is written against these, as it is against `store.base.Store`: it never imports
the client (`client.py`, over aiohttp) that `chatproxy.service.open_service` wires in, so a turn's
code does not stand on HTTP client code, and a second client would implement the same protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Completion:
    """The reply to one chat completion call: its first choice (the message as the upstream
    sent it, why it stopped, its logprobs), the model, the usage counted (or estimated when the
    upstream sent none), and the whole answer (`body`; a streamed one reassembled).

    `content` is the reply's text: the message's content, else its refusal; None for a reply
    that only calls tools. `lost_attempts`: the attempts of a plain call before the one answered
    that were sent and never answered (see `upstream_errors.UpstreamError`; a stream's are its
    own)."""

    content: str | None
    model: str
    usage: dict[str, Any]  # the counts (`tokens.USAGE_FIELDS`), and any breakdowns
    usage_estimated: bool
    message: JsonObject = field(default_factory=dict)
    finish_reason: str | None = None
    logprobs: JsonObject | None = None
    body: JsonObject = field(default_factory=dict)
    lost_attempts: int = 0

    @property
    def tool_calls(self) -> list[JsonObject] | None:
        """The tool calls the reply makes, if any."""
        calls = self.message.get("tool_calls")
        return calls if isinstance(calls, list) and calls else None


@dataclass(frozen=True)
class Delta:
    """One chunk of a streamed reply, as the upstream sent it but that its tool-call deltas
    are numbered as OpenAI's (`call_indexes`): the text it adds to the first choice, and
    whether it adds anything to any choice (text, a piece of a tool call, a refusal, ...)
    rather than only a role, a finish reason or usage."""

    chunk: JsonObject
    text: str = ""
    adds: bool = False


class ReplyStream(Protocol):
    """A reply arriving in pieces: iterate (`async for`) for its chunks (`Delta`), then ask for
    the `Completion`; `close` gives the connection back however far it was read.
    `lost_attempts`: the attempts to open it that were sent and never answered."""

    lost_attempts: int

    def __aiter__(self) -> AsyncIterator[Delta]: ...

    def completion(self) -> Completion: ...

    def close(self) -> None: ...


class Upstream(Protocol):
    """The model provider: chat completions, plain or streamed, and moderation. Each call raises
    an `upstream_errors.UpstreamError` when it fails, within `deadline` (a `time.monotonic()`
    instant). A completion says how many of its attempts were lost (sent, then never answered:
    the provider may have billed them) with its answer or its error (`lost_attempts`).

    A completion's `fields` are the request's other fields (tools, response_format, seed, ...),
    sent as they are beside the model, messages, max_tokens and temperature."""

    async def complete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str,
        max_tokens: int,
        temperature: float | None = None,
        fields: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> Completion: ...

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str,
        max_tokens: int,
        temperature: float | None = None,
        fields: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> ReplyStream: ...

    async def moderate(
        self, text: str, *, model: str, deadline: float | None = None
    ) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...

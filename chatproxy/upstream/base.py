"""Own what the service knows of the model client: the `Upstream` protocol, the `ReplyStream` a
streamed call answers with, and the `Completion` a call ends with.

The service is written against these, as it is against `store.base.Store`: it never imports
the client (`client.py`, over aiohttp) that `chatproxy.service.open_service` wires in, so a turn's
code does not stand on HTTP client code, and a second client would implement the same protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

JsonObject = dict[str, Any]


@dataclass(frozen=True)
class Completion:
    """The reply to one chat completion call."""

    content: str
    model: str
    usage: dict[str, int]
    usage_estimated: bool


class ReplyStream(Protocol):
    """A reply arriving in pieces: iterate (`async for`) for the text deltas, then ask for the
    `Completion`; `close` gives the connection back however far it was read."""

    def __aiter__(self) -> AsyncIterator[str]: ...

    def completion(self) -> Completion: ...

    def close(self) -> None: ...


class Upstream(Protocol):
    """The model provider: chat completions, plain or streamed, and moderation. Each call raises
    an `errors.UpstreamError` when it fails, within `deadline` (a `time.monotonic()` instant)."""

    async def complete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str,
        max_tokens: int,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> Completion: ...

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str,
        max_tokens: int,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> ReplyStream: ...

    async def moderate(
        self, text: str, *, model: str, deadline: float | None = None
    ) -> dict[str, Any]: ...

    async def aclose(self) -> None: ...

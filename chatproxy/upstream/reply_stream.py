"""Own a streamed reply as it is read from aiohttp: `AsyncReplyStream`.

`client.AsyncUpstream.stream` opens the call and hands its response here; the lines are read as
they arrive, what they mean is `stream.py`'s (`EventLines`, `ReplyParts`), and aiohttp's failures
become the proxy's errors.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp

from chatproxy.upstream.base import Completion, Delta, JsonObject
from chatproxy.upstream.stream import DRAIN_LINES, DRAIN_SECONDS, EventLines, ReplyParts
from chatproxy.upstream_errors import UpstreamError, UpstreamTimeout


class AsyncReplyStream:
    """A reply arriving in pieces: iterate (`async for`) for its chunks, then ask for the
    `Completion`. As `ReplyStream` does, it reads what follows `[DONE]` too, so the connection
    can serve the next call. A chunk that does not come within `timeout` of the one before is
    a timeout, whatever else (comments: keep-alive pings) comes meanwhile: at the first line
    after it, or when the connection's read timeout ends a silence."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        model: str,
        messages: Sequence[dict[str, Any]],
        timeout: float,
    ):
        self._response = response
        self._reply = ReplyParts(model, messages)
        self._timeout = timeout
        self.lost_attempts = 0  # the attempts to open it before it (see `ReplyStream`)

    def __aiter__(self) -> AsyncIterator[Delta]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[Delta]:
        """Yield the reply's chunks as they arrive; a stream that breaks off is an upstream
        error."""
        events = EventLines()
        try:
            lines = _lines(self._response)
            while True:
                chunk = await _next_chunk(lines, events, self._timeout)
                if events.done:
                    await _drain(lines)
                if chunk is None:
                    break
                yield self._reply.add(chunk)
        except UpstreamError:
            raise
        except TimeoutError as exc:
            raise UpstreamTimeout() from exc
        except Exception as exc:  # a cut connection, a malformed chunk: the reply is incomplete
            raise UpstreamError("the model provider's stream broke off") from exc
        finally:
            self.close()
        self._reply.check_finished(events.done)

    def completion(self) -> Completion:
        """Return the whole reply once the stream has ended."""
        return self._reply.completion()

    def close(self) -> None:
        """Give the connection back: kept if the body was read to its end, else closed."""
        self._response.release()


async def _lines(response: aiohttp.ClientResponse) -> AsyncIterator[str]:
    """The body's lines as they arrive, without their line ends."""
    async for raw in response.content:
        yield raw.removesuffix(b"\n").removesuffix(b"\r").decode(errors="replace")


async def _next_chunk(
    lines: AsyncIterator[str], events: EventLines, timeout: float
) -> JsonObject | None:
    """Read lines up to the next chunk; None at `[DONE]` (`events.done`) or the body's end.
    Lines that bring none (comments: keep-alive pings) for `timeout` are a timeout; silence is
    one already (the connection's read timeout). A clock read a line, not a timer a chunk."""
    clock = asyncio.get_running_loop().time
    give_up = clock() + timeout
    async for line in lines:
        chunk = events.feed(line)
        if chunk is not None or events.done:
            return chunk
        if clock() > give_up:
            raise TimeoutError
    return None


async def _drain(lines: AsyncIterator[str]) -> None:
    """Read the little that follows `[DONE]`; a failure here only costs the connection, and so
    does a body that goes on past DRAIN_LINES lines or is not over within DRAIN_SECONDS (the
    reply is whole: it is not held back for a body left open)."""
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            for _ in range(DRAIN_LINES):
                await anext(lines)
    except (StopAsyncIteration, aiohttp.ClientError, OSError, TimeoutError):
        pass

"""Own the calls to the model provider: `AsyncUpstream`, over aiohttp.

Chat completions (whole or streamed) and moderation, with the failures, retries, deadlines,
proxy and TLS settings that `chatproxy.upstream.rules` defines for any client; only the I/O is here.

Its session is made on the event loop of its first call and belongs to that loop (a worker
process has one); `aclose` releases it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import aiohttp
import certifi

from chatproxy.errors import UpstreamError, UpstreamTimeout
from chatproxy.jsontext import compact_bytes
from chatproxy.upstream import rules as shared
from chatproxy.upstream.answers import completion_of
from chatproxy.upstream.base import Completion, Delta, JsonObject
from chatproxy.upstream.rules import (
    MAX_ERROR_BYTES,
    POOL_CONNECTIONS,
    Provider,
    attempt_timeout,
    completion_body,
    json_object,
    moderation_of,
    proxy_for,
    retry_pause,
    split_proxy,
    status_error,
)
from chatproxy.upstream.stream import DRAIN_LINES, DRAIN_SECONDS, EventLines, ReplyParts

T = TypeVar("T")
LINE_BYTES = 1 << 20  # the longest line of a stream read (aiohttp's default is 64 KiB)


class AsyncUpstream(Provider):
    """Calls the OpenAI-compatible API at `base_url` with `api_key`, from coroutines."""

    def __init__(self, base_url: str, api_key: str, **options: Any):
        super().__init__(base_url, api_key, **options)
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
        self._proxy_headers: dict[str, str] | None = None
        if proxy := proxy_for(self._base_url):
            self._proxy, credentials = split_proxy(proxy)
            if credentials:  # to the proxy: in the CONNECT of a tunnel, else in the request
                auth = {"Proxy-Authorization": aiohttp.encode_basic_auth(*credentials)}
                if self._base_url.startswith("https:"):
                    self._proxy_headers = auth
                else:
                    self._headers.update(auth)

    async def complete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str,
        max_tokens: int,
        temperature: float | None = None,
        fields: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> Completion:
        """Return the model's reply to `messages`, trying again on transient failures."""
        body = completion_body(messages, model, max_tokens, temperature, fields)

        async def attempt(timeout: float) -> Completion:
            response = await self._post("/chat/completions", body, timeout)
            data = await _read(response.read())
            return completion_of(json_object(data), model, messages)

        return await self._with_retries(attempt, deadline)

    async def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str,
        max_tokens: int,
        temperature: float | None = None,
        fields: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> AsyncReplyStream:
        """Open a streamed completion; failures to open it are retried like `complete`'s."""
        body = completion_body(messages, model, max_tokens, temperature, fields)
        body.update(stream=True, stream_options={"include_usage": True})

        async def attempt(timeout: float) -> AsyncReplyStream:
            response = await self._post("/chat/completions", body, timeout)
            return AsyncReplyStream(response, model, messages, timeout)

        return await self._with_retries(attempt, deadline)

    async def moderate(
        self, text: str, *, model: str, deadline: float | None = None
    ) -> dict[str, Any]:
        """Return the moderation result for `text` as the API gives it, with the model's name."""

        async def attempt(timeout: float) -> dict[str, Any]:
            response = await self._post("/moderations", {"input": text, "model": model}, timeout)
            return moderation_of(json_object(await _read(response.read())), model)

        return await self._with_retries(attempt, deadline)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, body: JsonObject, timeout: float) -> aiohttp.ClientResponse:
        """Send one request; return the response, its body unread, if it succeeded, else raise
        the proxy's error for it. Connecting, sending and waiting for the answer's head take at
        most `timeout` together; each read of the body after that, at most `timeout` too."""
        session = self._session or self._open()
        try:
            async with asyncio.timeout(timeout):
                response = await session.post(
                    self._base_url + path,
                    data=compact_bytes(body),
                    headers=self._headers,
                    proxy=self._proxy,
                    proxy_headers=self._proxy_headers,
                    timeout=aiohttp.ClientTimeout(sock_connect=timeout, sock_read=timeout),
                    allow_redirects=False,
                )
        except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            raise UpstreamTimeout() from exc
        except aiohttp.ClientError as exc:  # refused, TLS not trusted, reset, malformed answer
            raise UpstreamError("could not reach the model provider") from exc
        if 200 <= response.status < 300:
            return response
        try:
            data = await response.content.read(MAX_ERROR_BYTES)
        except (aiohttp.ClientError, TimeoutError):
            data = b""
        finally:
            response.release()
        raise status_error(response.status, response.headers, data)

    async def _with_retries(
        self, attempt: Callable[[float], Awaitable[T]], deadline: float | None
    ) -> T:
        """Run `attempt(timeout)` up to 1 + max_retries times, all before `deadline`."""
        failures = 0
        while True:
            timeout = attempt_timeout(self._timeout, deadline)  # none starts past the deadline
            try:
                return await attempt(timeout)
            except UpstreamError as exc:
                failures += 1
                pause = retry_pause(exc, failures, self._max_retries, deadline)
                if pause is None:
                    raise
                await asyncio.sleep(pause)

    def _open(self) -> aiohttp.ClientSession:
        context = ssl.create_default_context(cafile=self._ca_file or certifi.where())
        connector = aiohttp.TCPConnector(
            limit=POOL_CONNECTIONS, ssl=context, keepalive_timeout=shared.IDLE_SECONDS
        )
        self._session = aiohttp.ClientSession(connector=connector, read_bufsize=LINE_BYTES)
        return self._session


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


async def _read(body: Awaitable[bytes]) -> bytes:
    """A successful answer's body; a failure while reading it is the upstream's."""
    try:
        return await body
    except TimeoutError as exc:
        raise UpstreamTimeout() from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("could not reach the model provider") from exc


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

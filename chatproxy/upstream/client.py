"""Own the calls to the model provider: `AsyncUpstream`, over aiohttp.

Chat completions (whole or streamed) and moderation, with the failures, retries, deadlines,
proxy and TLS settings that `chatproxy.upstream.rules` defines for any client; only the I/O is here
(a streamed reply's lines are read by `reply_stream.AsyncReplyStream`), and what of it tells an
attempt that may have been sent (and was lost: `lost_attempts`) from one that was not. A
model that refuses the cap as `max_tokens` (OpenAI's reasoning models: gpt-5, o3, ...) is called
again with it as `max_completion_tokens`, and sent it so from then on, in this process.

Its session is made on the event loop of its first call and belongs to that loop (a worker
process has one); `aclose` releases it.
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any, TypeVar

import aiohttp
import certifi

from chatproxy.jsontext import compact_bytes
from chatproxy.upstream import rules as shared
from chatproxy.upstream.answers import completion_of
from chatproxy.upstream.base import Completion, JsonObject
from chatproxy.upstream.reply_stream import AsyncReplyStream
from chatproxy.upstream.rules import (
    MAX_ERROR_BYTES,
    POOL_CONNECTIONS,
    CapRefused,
    Provider,
    attempt_timeout,
    completion_body,
    connect_timeout,
    json_object,
    moderation_of,
    proxy_for,
    retry_pause,
    split_proxy,
    status_error,
)
from chatproxy.upstream_errors import UpstreamError, UpstreamTimeout

T = TypeVar("T")
LINE_BYTES = 1 << 20  # the longest line of a stream read (aiohttp's default is 64 KiB)
# Failures before anything was sent: no connection (refused, DNS, TLS not trusted) or a proxy
# that refused the tunnel. aiohttp's own connect timeout is told apart where it is caught.
UNSENT = (aiohttp.ClientConnectorError, aiohttp.ClientHttpProxyError)


class AsyncUpstream(Provider):
    """Calls the OpenAI-compatible API at `base_url` with `api_key`, from coroutines."""

    def __init__(self, base_url: str, api_key: str, **options: Any):
        super().__init__(base_url, api_key, **options)
        self._session: aiohttp.ClientSession | None = None
        self._completion_caps: set[str] = set()  # models that refused the cap as `max_tokens`
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

        async def call(request: JsonObject) -> tuple[Completion, int]:
            async def attempt(timeout: float) -> Completion:
                response = await self._post("/chat/completions", request, timeout)
                try:
                    data = await _read(response.read())
                    return completion_of(json_object(data), model, messages)
                except UpstreamError as exc:  # after its head said 200: the provider did it
                    exc.lost_attempts = 1
                    raise

            return await self._with_retries(attempt, deadline)

        body = partial(completion_body, messages, model, max_tokens, temperature, fields)
        completion, lost = await self._capped(model, body, call)
        return replace(completion, lost_attempts=lost) if lost else completion

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

        def body(**cap: bool) -> JsonObject:
            made = completion_body(messages, model, max_tokens, temperature, fields, **cap)
            return {**made, "stream": True, "stream_options": {"include_usage": True}}

        async def call(request: JsonObject) -> tuple[AsyncReplyStream, int]:
            async def attempt(timeout: float) -> AsyncReplyStream:
                response = await self._post("/chat/completions", request, timeout)
                return AsyncReplyStream(response, model, messages, timeout)

            return await self._with_retries(attempt, deadline)

        stream, lost = await self._capped(model, body, call)
        stream.lost_attempts = lost
        return stream

    async def moderate(
        self, text: str, *, model: str, deadline: float | None = None
    ) -> dict[str, Any]:
        """Return the moderation result for `text` as the API gives it, with the model's name."""

        async def attempt(timeout: float) -> dict[str, Any]:
            response = await self._post("/moderations", {"input": text, "model": model}, timeout)
            return moderation_of(json_object(await _read(response.read())), model)

        result, _ = await self._with_retries(attempt, deadline)  # a moderation costs no tokens
        return result

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _post(self, path: str, body: JsonObject, timeout: float) -> aiohttp.ClientResponse:
        """Send one request; return the response, its body unread, if it succeeded, else raise
        the proxy's error for it, lost (`lost_attempts` 1) if the request may have been sent.
        Connecting, sending and waiting for the answer's head take at most `timeout` together;
        each read of the body after that, at most `timeout` too. Connecting alone has a little
        less (`connect_timeout`), so that a connect that takes it all fails as a connect."""
        session = self._session or self._open()
        limits = aiohttp.ClientTimeout(
            connect=connect_timeout(timeout), sock_read=timeout, ceil_threshold=math.inf
        )
        try:
            async with asyncio.timeout(timeout):
                response = await session.post(
                    self._base_url + path,
                    data=compact_bytes(body),
                    headers=self._headers,
                    proxy=self._proxy,
                    proxy_headers=self._proxy_headers,
                    timeout=limits,
                    allow_redirects=False,
                )
        except aiohttp.ConnectionTimeoutError as exc:  # its connect's own: nothing was sent
            raise UpstreamTimeout() from exc
        except TimeoutError as exc:  # before ClientError: aiohttp's timeouts are both
            raise _lost(UpstreamTimeout()) from exc
        except UNSENT as exc:
            raise UpstreamError("could not reach the model provider") from exc
        except aiohttp.ClientError as exc:  # reset after sending, malformed answer
            raise _lost(UpstreamError("could not reach the model provider")) from exc
        if 200 <= response.status < 300:
            return response
        try:
            data = await response.content.read(MAX_ERROR_BYTES)
        except (aiohttp.ClientError, TimeoutError):
            data = b""
        finally:
            response.release()
        raise status_error(response.status, response.headers, data)

    async def _capped(
        self,
        model: str,
        body: Callable[..., JsonObject],
        call: Callable[[JsonObject], Awaitable[tuple[T, int]]],
    ) -> tuple[T, int]:
        """Make `call` with the request `body(completion_cap=...)`: the cap as
        `max_completion_tokens` for a model that refused it as `max_tokens` (OpenAI's reasoning
        models do), which is known from its first refusal, when the call is made again (what
        the refused call lost counts with it)."""
        known = model in self._completion_caps
        try:
            return await call(body(completion_cap=known))
        except CapRefused as refused:
            if known:
                raise
            self._completion_caps.add(model)
            try:
                result, lost = await call(body(completion_cap=True))
            except UpstreamError as exc:
                exc.lost_attempts += refused.lost_attempts
                raise
            return result, lost + refused.lost_attempts

    async def _with_retries(
        self, attempt: Callable[[float], Awaitable[T]], deadline: float | None
    ) -> tuple[T, int]:
        """Run `attempt(timeout)` up to 1 + max_retries times, all before `deadline`; return its
        result and how many attempts were lost before it. The error that ends the call says how
        many of all its attempts were (`lost_attempts`)."""
        failures = lost = 0
        while True:
            try:  # none starts past the deadline (`attempt_timeout`)
                return await attempt(attempt_timeout(self._timeout, deadline)), lost
            except UpstreamError as exc:
                failures += 1
                lost += exc.lost_attempts
                pause = retry_pause(exc, failures, self._max_retries, deadline)
                if pause is None:
                    exc.lost_attempts = lost
                    raise
                await asyncio.sleep(pause)

    def _open(self) -> aiohttp.ClientSession:
        context = ssl.create_default_context(cafile=self._ca_file or certifi.where())
        connector = aiohttp.TCPConnector(
            limit=POOL_CONNECTIONS, ssl=context, keepalive_timeout=shared.IDLE_SECONDS
        )
        self._session = aiohttp.ClientSession(connector=connector, read_bufsize=LINE_BYTES)
        return self._session


def _lost(exc: UpstreamError) -> UpstreamError:
    """`exc`, said of an attempt that may have been sent: the provider may have billed it."""
    exc.lost_attempts = 1
    return exc


async def _read(body: Awaitable[bytes]) -> bytes:
    """A successful answer's body; a failure while reading it is the upstream's."""
    try:
        return await body
    except TimeoutError as exc:
        raise UpstreamTimeout() from exc
    except aiohttp.ClientError as exc:
        raise UpstreamError("could not reach the model provider") from exc

"""Own the turn that is only passed on: the OpenAI-compatible endpoint without a chat id.

The client's messages and other fields go to the model as they are (the proxy still checks the
model and the max_tokens cap) and nothing is stored, but the tenant's token budget still
counts; the answer comes back whole, every choice of it. A streamed answer is read here, not at
the edge: its events end with `done` (the reply, with its model and usage) or `error`, its
tokens are charged once it is whole, and its upstream connection is given back however far it
is read (a reader that leaves closes it, cancelling the answer, as a client of the model itself
would). A stream that ends before its usage came (it comes last: the stream broke off, or the
reader left) was still sent its prompt, which the provider bills: its estimate is charged then
(`tokens.estimate_usage`, of the messages, the tool definitions and the text read so far). So
is each attempt of the call that was sent and never answered (`Quotas.counting_lost`), as
every model call's is.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from chatproxy.config import Settings
from chatproxy.service.defaults import Defaults, TurnOptions
from chatproxy.service.quotas import Quotas
from chatproxy.service.results import StreamEvent, StreamingTurn, TurnResult, read_opening, reply_of
from chatproxy.upstream.base import Delta, ReplyStream, Upstream


class PassThrough:
    """Plain and streamed pass-through turns over one upstream."""

    def __init__(self, settings: Settings, upstream: Upstream, quotas: Quotas, defaults: Defaults):
        self._settings = settings
        self._upstream = upstream
        self._quotas = quotas
        self._defaults = defaults

    async def complete(
        self, tenant: str, messages: Sequence[dict[str, Any]], options: TurnOptions
    ) -> TurnResult:
        """Send `messages` as they are and return the reply."""
        call, deadline = await self._prepare(tenant, options)
        asked = self._upstream.complete(messages, **call, deadline=deadline)
        tools = options.tool_tokens
        completion = await self._quotas.counting_lost(tenant, messages, asked, tools)
        await self._quotas.spend(tenant, completion.usage.get("total_tokens", 0))
        return TurnResult(reply_of(completion).to_json(), upstream=completion.body)

    async def stream(
        self, tenant: str, messages: Sequence[dict[str, Any]], options: TurnOptions
    ) -> StreamingTurn:
        """Send `messages` as they are and return the reply's events; anything that fails
        before the reply's first piece raises, as a chat's streamed turn's does (an error
        answer the client's SDK knows, and retries if it is transient)."""
        call, deadline = await self._prepare(tenant, options)
        opened = self._upstream.stream(messages, **call, deadline=deadline)
        tools = options.tool_tokens
        stream = await self._quotas.counting_lost(tenant, messages, opened, tools)
        try:
            pieces, opening = await read_opening(stream)
        except BaseException as exc:
            stream.close()
            if isinstance(exc, Exception):  # sent, then broke off (or ended) before the reply
                await self._quotas.spend_estimate(tenant, messages, tools=tools)
            raise
        spend = partial(self._quotas.spend, tenant)
        estimate = partial(self._quotas.spend_estimate, tenant, messages, tools=tools)
        return StreamingTurn(PassedStream(stream, pieces, opening, spend, estimate))

    async def _prepare(self, tenant: str, options: TurnOptions) -> tuple[dict[str, Any], float]:
        """Check the options and the tenant's budget, which must hold what `n` choices may use
        (n times max_tokens: the budget is checked before a call, not during it); return the
        call's options and deadline."""
        self._defaults.check(options)
        call = self._defaults.call({}, False, options).options()
        n = options.fields.get("n")
        choices = n if type(n) is int and n > 1 else 1  # another n: the provider refuses it
        await self._quotas.check_budget(tenant, call["max_tokens"] * choices if choices > 1 else 0)
        return call, options.deadline(self._settings.request_timeout)


class PassedStream:
    """The events of a pass-through stream: `delta`s, then `done` once its tokens are counted,
    or `error`. Its upstream connection is given back when it ends or when the reader leaves
    (`aclose`), however far it was read, even not at all; its tokens are counted once, the
    estimate of what was sent and read (`messages`, the text) if it ends before its usage."""

    def __init__(
        self,
        stream: ReplyStream,
        pieces: AsyncIterator[Delta],
        opening: Sequence[Delta],
        spend: Callable[[int], Awaitable[None]],
        spend_estimate: Callable[[str], Awaitable[None]],
    ):
        """`opening`: the chunks read already, up to the reply's first piece; `pieces`: the
        rest of `stream`'s; `spend_estimate(text)` counts the estimate of what was sent (the
        messages, the tools) and `text` (`Quotas.spend_estimate`)."""
        self._stream = stream
        self._pieces = pieces
        self._opening = opening
        self._spend = spend
        self._spend_estimate = spend_estimate
        self._text = "".join(delta.text for delta in opening)
        self._counted = False
        self._events = self._read()

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self._events

    async def aclose(self) -> None:
        await self._events.aclose()  # a generator never started runs no `finally`: close here
        self._stream.close()
        await self._count_estimate()  # the reader left before the usage came

    async def _read(self) -> AsyncGenerator[StreamEvent, None]:
        try:
            for delta in self._opening:
                yield StreamEvent.piece(delta)
            async for delta in self._pieces:
                self._text += delta.text
                yield StreamEvent.piece(delta)
            completion = self._stream.completion()
            await self._count(completion.usage.get("total_tokens", 0))
        except Exception as exc:
            await self._count_estimate()  # it broke off: no usage came
            yield StreamEvent.failure(exc)
            return
        finally:
            self._stream.close()
        yield StreamEvent("done", reply_of(completion).to_json())

    async def _count_estimate(self) -> None:
        """Count the estimate, if nothing was counted (a store away then is not the reader's
        concern: it is told of the stream's own failure, or has gone)."""
        if not self._counted:
            self._counted = True
            await self._spend_estimate(self._text)

    async def _count(self, tokens: int) -> None:
        self._counted = True  # once, even if the count itself fails (the store away)
        await self._spend(tokens)

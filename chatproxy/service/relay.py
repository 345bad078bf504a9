"""Own a streamed turn once its reply has begun: a task that reads the rest from the upstream
and stores the turn, whoever still listens, and the events it hands the reader.

The service (`turns.py`) takes the lock, opens the stream and reads it up to the reply's first
piece (text, or a tool call's); from then on the turn is a `Relay`'s. Its pump task reads the
upstream to the end, stores the turn (through the service's `store` callback) and releases its
lock and key; the reader takes the events as they come. A client that hangs up or stops reading
holds nothing but its events: the turn is stored once, complete, within its lock's lease.
`Relays` keeps the pumps until they finish. A stream that breaks off before its usage came (it
comes last) was still sent its prompt, which the provider bills: the estimate of what was sent
(its messages and tool definitions) and read is counted then (`Quotas.spend_estimate`), as a
pass-through stream's is. The text read is kept for that estimate only, so only while a budget
counts tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from chatproxy.service.guard import Claim, Lease, TurnGuard
from chatproxy.service.placing import Placing
from chatproxy.service.quotas import Quotas
from chatproxy.service.results import StreamEvent
from chatproxy.store.items import ChatRef
from chatproxy.upstream.base import Completion, Delta, ReplyStream


@dataclass(frozen=True)
class OpenTurn:
    """A streamed turn between its reply's first piece and its end: what storing it needs."""

    chat: ChatRef
    placing: Placing
    stream: ReplyStream
    pieces: AsyncIterator[Delta]
    lease: Lease
    claim: Claim | None
    sent: Sequence[dict[str, Any]]  # the messages that went upstream
    tools: int = 0  # the estimated tokens of the tool definitions that went with them


StoreTurn = Callable[[OpenTurn, Completion], Awaitable[dict[str, Any]]]


class Relay:
    """A streamed turn's events: the chunks up to the reply's first piece (read already), the
    rest as the pump reads them, then `done` once the turn is stored, or `error`."""

    def __init__(self, opening: Sequence[Delta]):
        self._events: asyncio.Queue[StreamEvent | None] = asyncio.Queue()
        for delta in opening:
            self._events.put_nowait(StreamEvent.piece(delta))

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self

    async def __anext__(self) -> StreamEvent:
        event = await self._events.get()
        if event is None:
            self._events.put_nowait(None)  # a reader that asks again still finds the end
            raise StopAsyncIteration
        return event

    async def aclose(self) -> None:
        """The reader has gone: nothing changes, the pump still stores the turn."""

    def put(self, event: StreamEvent) -> None:
        self._events.put_nowait(event)

    def end(self) -> None:
        self._events.put_nowait(None)


class Relays:
    """The pumps of the streamed turns of one process."""

    def __init__(self, guard: TurnGuard, store: StoreTurn, quotas: Quotas) -> None:
        self._guard = guard
        self._quotas = quotas
        self._store = store  # save the turn with its reply; return the reply as clients see it
        self._pumps: set[asyncio.Task[None]] = set()

    def relay(self, turn: OpenTurn, opening: Sequence[Delta]) -> Relay:
        """Start the pump of `turn`, whose chunks up to the reply's first piece are `opening`;
        return its events."""
        relay = Relay(opening)
        text = "".join(delta.text for delta in opening) if self._quotas.counts_tokens else None
        pump = asyncio.get_running_loop().create_task(self._pump(turn, relay, text))
        self._pumps.add(pump)  # the loop keeps only a weak reference to a task
        pump.add_done_callback(self._pumps.discard)
        return relay

    async def _pump(self, turn: OpenTurn, relay: Relay, text: str | None) -> None:
        """Relay `turn`'s pieces and store it; `text`: the reply's, read up to its first piece
        (None: no budget counts tokens, and none is kept)."""
        try:
            async for delta in turn.pieces:
                if text is not None:
                    text += delta.text
                relay.put(StreamEvent.piece(delta))
        except Exception as exc:  # it broke off: no usage came
            if text is not None:
                await self._quotas.spend_estimate(turn.chat.tenant, turn.sent, text, turn.tools)
            relay.put(await self._finish(turn, exc))
        except BaseException:  # cancelled: the process is stopping
            await self._abandon(turn)
            raise
        else:
            relay.put(await self._finish(turn))
        finally:
            relay.end()

    async def _finish(self, turn: OpenTurn, failure: Exception | None = None) -> StreamEvent:
        """Store a streamed turn whose stream has ended (or failed: `failure`) and release its
        lock; return the `done` event, or the `error` one (then the claim is released too)."""
        try:
            if failure is not None:
                raise failure
            return StreamEvent("done", await self._store(turn, turn.stream.completion()))
        except Exception as exc:
            if turn.claim is not None:
                await self._guard.forget(turn.chat, turn.claim)
            return StreamEvent.failure(exc)
        finally:
            await self._guard.end(turn.chat, turn.lease)

    async def _abandon(self, turn: OpenTurn) -> None:
        """Give up a streamed turn: drop its upstream connection, release its key and lock."""
        turn.stream.close()
        if turn.claim is not None:
            await self._guard.forget(turn.chat, turn.claim)
        await self._guard.end(turn.chat, turn.lease)

    async def close(self) -> None:
        """Wait for the turns being streamed to be stored."""
        while self._pumps:
            await asyncio.gather(*self._pumps, return_exceptions=True)

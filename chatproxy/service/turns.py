"""Own what a chat turn is (plain or streamed, text or OpenAI content parts), and moderation.

A turn, all within the request's deadline (REQUEST_TIMEOUT):
1. claim the Idempotency-Key if the client sent one (a finished key replays its answer);
2. take the chat's turn lock (a random token with a lease), waiting up to TURN_WAIT_SECONDS, and
   load the chat's window (system prompt + newest messages) in the same store round trip;
3. send system + window + the new user message upstream;
4. save the user message and the reply together, with the idempotent answer, in one atomic step
   that is fenced by the lock token, keyed by a turn id (so a retried save stores nothing) and
   releases the lock (a fork takes none: `placing.Ask.fork`). On any failure the
   lock and the claim are released, so the client may retry.
Nothing is stored unless the upstream answered; the reply is stored with its text (none for a
reply that only calls tools), tool calls, finish reason, model and usage, and the request's
other fields (`TurnOptions.fields`) go to the upstream as they were sent. The lock, the claims
and the fenced save live in `guard.py`; a streamed turn once its reply has begun in `relay.py`;
what goes upstream in `outgoing.py` (the window's token budget in `window.py`, what a chat keeps
of what no longer fits in `compaction.py`); the turn's model, options and system prompt in
`defaults.py`; the OpenAI endpoint's turn without a chat id, which stores nothing, in
`passthrough.py`; a Responses API turn in `responses.py` (`ChatService.responses`). A plain turn
answers a `TurnResult`, a streamed one a `StreamingTurn` (`results.py`). The operations on
chats that are not turns are `chats.py`'s. This module never touches HTTP.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from chatproxy.config import Settings
from chatproxy.service.compactor import Compactor
from chatproxy.service.defaults import (
    NO_OPTIONS,
    Defaults,
    TurnOptions,
    check_one_choice,
)
from chatproxy.service.guard import Claim, Lease, TurnGuard
from chatproxy.service.outgoing import Outgoing, SummaryDue
from chatproxy.service.passthrough import PassThrough
from chatproxy.service.placement import place_ask
from chatproxy.service.placing import Ask, Placing
from chatproxy.service.quotas import Quotas
from chatproxy.service.relay import OpenTurn, Relays
from chatproxy.service.response_asks import TurnMakers
from chatproxy.service.responses import Responses
from chatproxy.service.results import StreamingTurn, TurnResult, read_opening, replayed, reply_of
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef, Content
from chatproxy.upstream.base import Completion, Upstream


class ChatService:
    """Turns (plain or streamed; stored, or passed through) and moderation, over one store and
    one upstream: what the handlers call."""

    def __init__(self, settings: Settings, store: Store, upstream: Upstream, quotas: Quotas):
        self._settings = settings
        self._store = store
        self._upstream = upstream
        self._quotas = quotas
        self._guard = TurnGuard(settings, store)
        self._defaults = Defaults(settings)
        self._compactor = Compactor(settings, store, upstream, quotas)
        self._outgoing = Outgoing(settings, self._defaults, self._compactor)
        self._relays = Relays(self._guard, self._store_streamed, quotas)
        self._pass_through = PassThrough(settings, upstream, quotas, self._defaults)
        self._place = partial(place_ask, store)
        passed, turn, stream = self._pass_through, self._turn, self._stream
        summarized, place = self._outgoing.summarized, self._place
        makers = TurnMakers(turn, stream, passed.complete, passed.stream, summarized, place)
        self.responses = Responses(settings, store, self._defaults, makers)  # /v1/responses

    async def turn(
        self,
        chat: ChatRef,
        content: Content | None,
        *,
        at: int | None = None,
        idempotency_key: str | None = None,
        options: TurnOptions = NO_OPTIONS,
    ) -> TurnResult:
        """Send a user message in `chat` and return the stored reply.

        `content` is text, or OpenAI content parts (see `image_parts`); a message with an image
        goes to the vision model unless the turn names one. It goes under the chat's leaf, or
        `at` (see `placing.Ask`); with no content, the reply to the user message `at` is asked
        for again. The request's other fields (`options.fields`) go to the model as they are,
        but for an `n` other than 1, which is refused: a chat keeps one reply per turn.
        """
        return await self._turn(chat, Ask(content, at), idempotency_key, options)

    async def stream_turn(
        self,
        chat: ChatRef,
        content: Content | None,
        *,
        at: int | None = None,
        idempotency_key: str | None = None,
        options: TurnOptions = NO_OPTIONS,
    ) -> StreamingTurn:
        """Start a turn whose reply streams (`content` and `at` as for `turn`).

        Anything that fails before the reply's first piece (text, or a tool call's) raises, as
        `turn` does. The rest of the stream is read as it arrives; once it ends the turn is
        stored (fenced, idempotent) and the lock released, however much of it the client reads.
        """
        return await self._stream(chat, Ask(content, at), idempotency_key, options)

    async def turn_from_messages(
        self,
        chat: ChatRef,
        sent: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        options: TurnOptions = NO_OPTIONS,
    ) -> TurnResult:
        """A chat-mode `/v1/chat/completions` turn: `sent` is the request's messages, the new
        ones alone or a resent history, matched with the chat's path (`placement.py`)."""
        ask = Ask(None, None, tuple(sent), max_chars=self._settings.max_content_chars)
        return await self._turn(chat, ask, idempotency_key, options)

    async def stream_turn_from_messages(
        self,
        chat: ChatRef,
        sent: Sequence[Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
        options: TurnOptions = NO_OPTIONS,
    ) -> StreamingTurn:
        """Stream a chat-mode `/v1/chat/completions` turn (`sent` as for `turn_from_messages`)."""
        ask = Ask(None, None, tuple(sent), max_chars=self._settings.max_content_chars)
        return await self._stream(chat, ask, idempotency_key, options)

    async def pass_through(
        self, tenant: str, messages: Sequence[dict[str, Any]], *, options: TurnOptions
    ) -> TurnResult:
        """Send `messages` as they are and store nothing (see `passthrough.py`)."""
        return await self._pass_through.complete(tenant, messages, options)

    async def stream_pass_through(
        self, tenant: str, messages: Sequence[dict[str, Any]], *, options: TurnOptions
    ) -> StreamingTurn:
        """Stream the reply to `messages` as they are; store nothing (see `passthrough.py`)."""
        return await self._pass_through.stream(tenant, messages, options)

    async def _stream(
        self, chat: ChatRef, ask: Ask, idempotency_key: str | None, options: TurnOptions
    ) -> StreamingTurn:
        deadline = options.deadline(self._settings.request_timeout)
        claim, replay = await self._claim(chat, ask, options, idempotency_key)
        if replay is not None:
            return StreamingTurn(replayed(replay), True, replay.get("id"), replay)
        try:
            await self._quotas.check_budget(chat.tenant)
            read = self._window(chat, ask, options)
            lease = await self._guard.begin(chat, read, ask.at, ask.reserve)
            try:
                await self._widen(chat, lease, ask, read)
                placing = await self._place(chat, lease.state, ask)
                try:
                    outgoing, call = self._outgoing.build(chat, lease.state, placing, options)
                except SummaryDue as due:  # truncation disabled: summarized before the turn
                    build = self._outgoing.build_summarized
                    outgoing, call = await build(chat, lease.state, placing, options, due, deadline)
                opened = self._upstream.stream(outgoing, **call.options(), deadline=deadline)
                tools = options.tool_tokens
                stream = await self._quotas.counting_lost(chat.tenant, outgoing, opened, tools)
                try:
                    pieces, opening = await read_opening(stream)
                except Exception:  # it was sent, then broke off (or ended) before the reply began
                    await self._quotas.spend_estimate(chat.tenant, outgoing, tools=tools)
                    raise
            except BaseException:
                await self._guard.end(chat, lease)
                raise
        except BaseException:
            if claim is not None:
                await self._guard.forget(chat, claim)
            raise
        turn = OpenTurn(chat, placing, stream, pieces, lease, claim, outgoing, tools)
        relay = self._relays.relay(turn, opening)
        return StreamingTurn(relay, reply_id=placing.reply_id)

    async def _store_streamed(self, turn: OpenTurn, completion: Completion) -> dict[str, Any]:
        return await self._record(turn.chat, turn.placing, completion, turn.lease, turn.claim)

    async def _claim(
        self, chat: ChatRef, ask: Ask, options: TurnOptions, idempotency_key: str | None
    ) -> tuple[Claim | None, dict[str, Any] | None]:
        """Claim an Idempotency-Key; return the claim, or the answer to replay."""
        self._defaults.check(options)
        check_one_choice(options)
        if idempotency_key is None:  # nothing to claim: no fingerprint to build
            return None, None
        request = [*ask.fingerprint(), options.model, options.temperature, options.max_tokens]
        if options.fields:  # a request without them keeps the fingerprint it always had
            request.append(dict(options.fields))
        return await self._guard.claim(chat, idempotency_key, request)

    def _window(self, chat: ChatRef, ask: Ask, options: TurnOptions) -> int:
        """How many messages a turn reads (see `Ask.window`, `Compactor.read_limit`)."""
        most, asked = self._settings.messages_length, options.compact is not None
        return ask.window(self._compactor.read_limit(chat, most, asked))

    async def _widen(self, chat: ChatRef, lease: Lease, ask: Ask, read: int) -> None:
        """Read a chat compacted by its own setting as one (`Compactor.widen`)."""
        wide = ask.window(self._compactor.read_limit(chat, self._settings.messages_length, True))
        lease.state = await self._compactor.widen(chat, lease.state, read, wide, ask.at)

    async def _turn(
        self, chat: ChatRef, ask: Ask, idempotency_key: str | None, options: TurnOptions
    ) -> TurnResult:
        deadline = options.deadline(self._settings.request_timeout)
        claim, replay = await self._claim(chat, ask, options, idempotency_key)
        if replay is not None:
            return TurnResult(replay, replayed=True)
        try:
            await self._quotas.check_budget(chat.tenant)  # after the claim: a replay costs nothing
            read = self._window(chat, ask, options)
            lease = await self._guard.begin(chat, read, ask.at, ask.reserve)
            try:  # `guard.locked` without a context manager's own cost: this is every turn
                await self._widen(chat, lease, ask, read)
                placing = await self._place(chat, lease.state, ask)
                return await self._locked_turn(chat, placing, options, deadline, lease, claim)
            finally:
                await self._guard.end(chat, lease)
        except BaseException:
            if claim is not None:
                await self._guard.forget(chat, claim)
            raise

    async def _locked_turn(
        self,
        chat: ChatRef,
        placing: Placing,
        options: TurnOptions,
        deadline: float,
        lease: Lease,
        claim: Claim | None,
    ) -> TurnResult:
        try:
            outgoing, call = self._outgoing.build(chat, lease.state, placing, options)
        except SummaryDue as due:  # truncation disabled: summarized before the turn
            build = self._outgoing.build_summarized
            outgoing, call = await build(chat, lease.state, placing, options, due, deadline)
        asked = self._upstream.complete(outgoing, **call.options(), deadline=deadline)
        tools = options.tool_tokens
        completion = await self._quotas.counting_lost(chat.tenant, outgoing, asked, tools)
        body = await self._record(chat, placing, completion, lease, claim)
        return TurnResult(body, upstream=completion.body)

    async def _record(
        self,
        chat: ChatRef,
        placing: Placing,
        completion: Completion,
        lease: Lease,
        claim: Claim | None,
    ) -> dict[str, Any]:
        """Count the turn's tokens, store it with its idempotent answer, return the reply body.
        The tokens are counted first: the model has used them, whether the save lands or not
        (a fork's chat deleted meanwhile, the store away)."""
        turn = placing.turn(reply_of(completion))
        body = turn[-1].to_json()
        answer = claim.answer(body) if claim is not None else None
        await self._quotas.spend(chat.tenant, completion.usage.get("total_tokens", 0))
        await self._guard.save(chat, secrets.token_hex(16), turn, lease, answer)
        self._compactor.after_save(chat)
        return body

    async def moderate(self, text: str) -> dict[str, Any]:
        """Run the upstream moderation model on `text`."""
        deadline = time.monotonic() + self._settings.request_timeout
        return await self._upstream.moderate(
            text, model=self._settings.moderation_model, deadline=deadline
        )

    async def close(self) -> None:
        """Release the store's and the upstream's connections (streams still being stored finish
        first)."""
        await self._relays.close()
        await self._compactor.close()
        await self._store.close()
        await self._upstream.aclose()

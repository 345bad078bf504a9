"""Own what a response of the Responses API is in a chat: the assistant reply it produced.

A response id names its reply item, `resp_<chat id>_<item id>` (read from the right: a chat id
may hold `_`), so finding one reads that item in the caller's tenant and no lookup key is kept.
Any assistant reply is a response, whichever API made it; an id that names anything else, or
nothing in the caller's tenant, is a `ResponseNotFound`.

A response's turn (`ResponseAsk`) goes
- after `previous` (a response id): in its chat, under its reply (an older one forks a branch).
  Such a turn is a fork (`placing.Ask.fork`): it holds the chat's lock only to be placed, on
  ids set aside for it, so the forks of one chat, and the turns of a chain, run at once (one
  not found while a turn holds its chat, maybe storing it, is looked for again after: `_waited`);
- at the current leaf of `conversation` (a chat id), which must exist; its input may leave out
  the model's items, which the conversation holds (`placement`'s `elided`: the AI SDK's);
- else, when its input's item references name a chat (the Vercel AI SDK sends an earlier reply
  back by its item id, without `previous_response_id`), in that chat after the newest item
  they name; so too when, with no reference, its items carry ids of an existing chat's items
  (`input += response.output`, as OpenAI's guides write a tool loop);
- else on a new chat `chain-<hex>`, from its root; the hex is the Idempotency-Key's digest when
  there is one, so that a retry finds the chat its key was claimed in.
Its messages are the request's instructions as a system message (this turn's system prompt,
never stored), then its input as chat messages (`ResponseAsk.input`: the edge's translation,
given the messages of the path the turn continues, which its item references may name), placed
as a chat-mode request's are (`placement.py`, on the path that ends where the turn goes): what
a client resends of that path is matched, not stored twice nor held to MAX_CONTENT_CHARS (what
the turn adds is). A resent history is matched on the path to the chat's leaf instead when that
path passes through where the turn goes, so what a turn before stored below it is matched too
(the AI SDK's tool loop resends the call its first step stored, naming only the replies
before). The reply keeps the request's settings (`Kept`) and where the turn's input starts
(`input_first`), for `GET`.

With `store: false` nothing is written: the path the request continues (read as a compacted
chat's stored turn reads it) and its input, placed on that path as a turn's is (what it sends
back of it is sent once, and only what it adds is held to MAX_CONTENT_CHARS), go through the
pass-through (`unstored.py` builds what it sends), and
its id (`resp_<hex>`) names no reply.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from chatproxy.config import Settings
from chatproxy.errors import NotFound, ResponseNotFound
from chatproxy.service.compaction import READ_FACTOR
from chatproxy.service.defaults import Defaults, TurnOptions
from chatproxy.service.guard import wait_out_turn
from chatproxy.service.message_rules import Names
from chatproxy.service.placing import MAX_CALL_ID, Ask, only_new, stored_with, window_for
from chatproxy.service.response_asks import ResponseAsk, TurnMakers
from chatproxy.service.response_ids import (
    missing_response,
    named_reply,
    parse_response_id,
    response_id,
)
from chatproxy.service.results import Answer, Found, Responded, StreamingTurn, TurnResult
from chatproxy.service.unstored import build_unstored
from chatproxy.store.base import Store
from chatproxy.store.items import ROOT, ChatRef, ChatState, valid_chat_id

if TYPE_CHECKING:
    from chatproxy.service.response_asks import MakeTurn, PassOn

CHAIN = "chain-"
LOOKBACK = 50  # messages read back from a reply for its turn's input, at first


@dataclass(frozen=True)
class _Place:
    """Where a response's turn goes (`at`: see `placing.Ask`), and the path it continues."""

    chat: ChatRef
    at: int | None
    state: ChatState


class Responses:
    """Responses as chats' replies: made by a turn, found by their id."""

    def __init__(self, settings: Settings, store: Store, defaults: Defaults, makers: TurnMakers):
        self._settings = settings
        self._store = store
        self._defaults = defaults
        self._makers = makers

    async def create(
        self, ask: ResponseAsk, *, idempotency_key: str | None, options: TurnOptions
    ) -> Responded[TurnResult]:
        """Make a response's turn and return its stored reply (see the module's docstring)."""
        makers = self._makers
        return await self._respond(ask, idempotency_key, options, makers.turn, makers.pass_through)

    async def stream(
        self, ask: ResponseAsk, *, idempotency_key: str | None, options: TurnOptions
    ) -> Responded[StreamingTurn]:
        """Make a response's turn whose reply streams (as `ChatService.stream_turn`)."""
        makers = self._makers
        make, pass_on = makers.stream, makers.stream_pass_through
        return await self._respond(ask, idempotency_key, options, make, pass_on)

    async def find(self, tenant: str, text: str, *, inputs: bool = False) -> Found:
        """The response `text` names, and with `inputs` its turn's input messages: those from
        the first it stored (`input_first`; for a reply made by another API, `stored_with`)
        to the reply."""
        chat, state = await self._reply(tenant, text, lambda _: LOOKBACK if inputs else 1)
        reply = state.messages[-1]
        if not inputs:
            return Found(chat.chat_id, reply, [])
        assert reply.id is not None
        first = (reply.response or {}).get("input_first")
        if type(first) is int and reply.id - first >= LOOKBACK:
            state = await self._store.load_window(chat, reply.id - first + 1, reply.id)
        path = state.messages[:-1]
        if type(first) is not int:
            first = stored_with(reply.id, path)
        return Found(chat.chat_id, reply, [m for m in path if m.id is not None and m.id >= first])

    async def delete(self, tenant: str, text: str) -> str:
        """Delete the response `text` names, its reply and the input its turn stored (what
        hangs below them moves up to the turn's parent: `Store.delete_items`); return its chat's
        id. ChatBusy while a turn at the chat's leaf holds it."""
        found = await self.find(tenant, text, inputs=True)
        ids = [m.id for m in [*found.inputs, found.reply] if m.id is not None]
        await self._store.delete_items(ChatRef(tenant, found.chat), ids)
        return found.chat

    async def _respond(
        self,
        ask: ResponseAsk,
        key: str | None,
        options: TurnOptions,
        make: MakeTurn[Answer],
        pass_on: PassOn[Answer],
    ) -> Responded[Answer]:
        begun = time.monotonic()
        try:
            return await self._respond_once(ask, key, options, make, pass_on)
        except ResponseNotFound as missing:
            previous = ask.previous if missing.param == "previous_response_id" else None
            if previous is None or not await self._waited(ask.tenant, previous, begun):
                raise
        return await self._respond_once(ask, key, replace(options, begun=begun), make, pass_on)

    async def _respond_once(
        self,
        ask: ResponseAsk,
        key: str | None,
        options: TurnOptions,
        make: MakeTurn[Answer],
        pass_on: PassOn[Answer],
    ) -> Responded[Answer]:
        place = await self._place(ask, key if ask.store else None)
        sent, names = self._messages(ask, place)
        if not ask.store:  # its input is matched with the path it continues, as a turn's is
            elided = ask.conversation is not None  # as a stored turn's (below)
            matched = Ask(
                None,
                place.at,
                tuple(sent),
                names=names,
                anchored=True,
                max_chars=self._settings.max_content_chars,  # what it adds, as a turn's
                elided=elided,
                max_call_id=MAX_CALL_ID,
            )
            placed = await self._makers.place(place.chat, place.state, matched)
            state, summarized = place.state, self._makers.summarized
            unstored = build_unstored(
                self._settings, self._defaults, state, placed, ask.instructions, options, summarized
            )
            answer = await pass_on(ask.tenant, unstored, options)
            name = uuid.uuid4().hex  # names no chat's reply: it cannot be found
            return Responded(f"resp_{name}", name, 0, ask.keep.created_at, answer)
        at = await self._below(place, sent)
        # Under a given message, a turn of new messages only is a fork (see `placing.Ask`); one
        # that resends a history is matched under the lock, so that ids are set aside exactly.
        fork = at is not None and at != ROOT and only_new(sent)
        if ask.instructions:
            sent.insert(0, {"role": "system", "content": ask.instructions})
            names = names.after("instructions")  # the instructions are no input item
        after_reply = ask.previous is not None and at == place.at
        elided = ask.conversation is not None  # it holds the model's items, which clients omit
        rules = (self._settings.max_content_chars, elided, MAX_CALL_ID)  # see placement.py
        turn = Ask(None, at, tuple(sent), ask.keep, fork, after_reply, names, True, *rules)
        try:
            answer = await make(place.chat, turn, key, options)
        except NotFound:  # the turn found no reply where `previous_response_id` said
            if ask.previous is None:
                raise
            raise missing_response(ask.previous, previous=True) from None
        reply = answer.body if isinstance(answer, TurnResult) else answer.replay
        reply_id = reply["id"] if reply is not None else answer.reply_id
        assert isinstance(reply_id, int)  # a chat's turn places its reply
        kept = (reply or {}).get("response") or {}
        created_at = kept.get("created_at", ask.keep.created_at)
        chat_id = place.chat.chat_id
        return Responded(response_id(chat_id, reply_id), chat_id, reply_id, created_at, answer)

    async def _waited(self, tenant: str, previous: str, begun: float) -> bool:
        """Whether the response `previous`, not found, names a chat a turn holds (which may be
        storing it): waited for, up to TURN_WAIT_SECONDS from when the request `begun`."""
        found = parse_response_id(previous)
        wait = begun + self._settings.turn_wait_seconds - time.monotonic()
        chat = ChatRef(tenant, found[0]) if found else None
        return chat is not None and await wait_out_turn(self._store, chat, wait)

    async def _place(self, ask: ResponseAsk, key: str | None) -> _Place:
        """Where a response's turn goes, with the path it continues read as deep as its item
        references reach (and, for a response not stored, as its history needs)."""
        if ask.previous is not None and ask.store and not ask.named and only_new(ask.input({})[0]):
            chat, at = named_reply(ask.tenant, ask.previous, previous=True)  # the turn reads it
            return _Place(chat, at, ChatState(False, None, None, []))
        if ask.previous is not None:
            depth = partial(self._depth, ask)
            chat, state = await self._reply(ask.tenant, ask.previous, depth, previous=True)
            return _Place(chat, state.messages[-1].id, state)
        if ask.conversation is not None:
            return await self._conversation(ask, ask.conversation)
        if ask.named_chat:
            chat, at = ChatRef(ask.tenant, ask.named_chat), max(ask.named)
            try:
                state = await self._store.load_window(chat, self._depth(ask, at), at)
            except NotFound:  # its references name nothing: the input's translation says so
                state = ChatState(False, None, None, [])
            if not ask.carried or (state.messages and state.messages[-1].id == at):
                return _Place(chat, at, state)
        chain = hashlib.sha256(key.encode()).hexdigest()[:32] if key else uuid.uuid4().hex
        chat = ChatRef(ask.tenant, CHAIN + chain)
        if ask.store:  # its turn reads what it needs
            return _Place(chat, ROOT, ChatState(False, None, None, []))
        return _Place(chat, ROOT, await self._store.load_window(chat, 0, ROOT))

    async def _below(self, place: _Place, sent: Sequence[dict[str, Any]]) -> int | None:
        """Where a stored turn goes: `place.at`, or the chat's leaf when the input resends a
        history and the leaf's path passes through `at` within what that history can match.
        What a turn stored below `at` is then matched, not stored again: the Vercel AI SDK's
        tool loop resends the call its first step stored, with its result, and names only the
        replies before (by item reference, or the same previous_response_id again)."""
        at, leaf = place.at, place.state.leaf
        if at is None or at == ROOT or leaf is None or leaf <= at or only_new(sent):
            return at
        below = await self._store.load_window(place.chat, window_for(sent), leaf)
        return leaf if any(m.id == at for m in below.messages) else at

    async def _conversation(self, ask: ResponseAsk, chat_id: str) -> _Place:
        """A turn at the leaf of the chat `chat_id`, which must exist."""
        missing = ResponseNotFound(
            f"Conversation with id '{chat_id:.200}' not found.", param="conversation"
        )
        if not valid_chat_id(chat_id):
            raise missing
        chat = ChatRef(ask.tenant, chat_id)
        if ask.named:  # its references may name any item of the path
            state = await self._store.load_history(chat)
        else:
            state = await self._store.load_window(chat, self._depth(ask, None))
        if not state.exists:
            raise missing
        return _Place(chat, None, state)

    def _depth(self, ask: ResponseAsk, at: int | None) -> int:
        """How many messages of the path ending at `at` (None: the leaf) to read: for a response
        not stored, as many as a compacted chat's stored turn reads (so that it meets the same
        summary, whatever compacts the chat), and down to the oldest item its references name
        (ids grow down a path); at least the one at `at`, which a response continued must be
        (MESSAGES_LENGTH 0 sends none of them)."""
        depth = max(READ_FACTOR * self._settings.messages_length, 1) if not ask.store else 1
        if ask.named and at is not None:
            depth = max(depth, at - min(ask.named) + 1)
        return depth

    async def _reply(
        self, tenant: str, text: str, depth: Callable[[int], int], *, previous: bool = False
    ) -> tuple[ChatRef, ChatState]:
        """Read the path that ends at the reply the response id `text` names (its newest
        `depth(reply id)` messages); ResponseNotFound unless the caller has that reply."""
        chat, reply_id = named_reply(tenant, text, previous=previous)
        try:
            state = await self._store.load_window(chat, depth(reply_id), reply_id)
        except NotFound:
            raise missing_response(text, previous=previous) from None
        reply = state.messages[-1] if state.messages else None
        if reply is None or reply.id != reply_id or reply.role != "assistant":
            raise missing_response(text, previous=previous)
        return chat, state

    def _messages(self, ask: ResponseAsk, place: _Place) -> tuple[list[dict[str, Any]], Names]:
        """The input as chat messages (and how a refusal names them), its item references read
        from the path the turn continues (they name nothing when they name another chat)."""
        named_here = ask.named_chat in ("", place.chat.chat_id)
        path = place.state.messages if named_here else []
        return ask.input({m.id: m for m in path if m.id is not None})

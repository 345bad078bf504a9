"""Own what a chat turn is, and the other operations on chats and system prompts.

A turn, all within the request's deadline (REQUEST_TIMEOUT):
1. claim the Idempotency-Key if the client sent one (a finished key replays its answer);
2. take the chat's turn lock (a random token with a lease), waiting up to TURN_WAIT_SECONDS;
3. load the chat's window (system prompt + newest messages) in one store round trip;
4. send system + window + the new user message upstream;
5. save the user message and the reply together, with the idempotent answer, in one atomic step
   that is fenced by the lock token and keyed by a turn id (so a retried save stores nothing);
6. release the lock. On any failure the claim is released too, so the client may retry.
Nothing is stored unless the upstream answered. This module never touches HTTP; handlers never
touch the store or the upstream.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import queue
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from chatproxy.config import Settings
from chatproxy.context import fit_window
from chatproxy.errors import (
    ChatBusy,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    NotFound,
    ProxyError,
    StoreError,
    StoreUnavailable,
    ValidationFailed,
)
from chatproxy.quotas import Quotas
from chatproxy.store import ChatRef, ChatState, IdempotentResult, Message, Store
from chatproxy.store.base import Content
from chatproxy.tokens import content_text
from chatproxy.upstream import Completion, ReplyStream, Upstream

log = logging.getLogger(__name__)

SAVE_ATTEMPTS = 3
SAVE_RETRY_DELAY = 0.2
DEFAULT_PAGE = 50
LOCK_POLL_FIRST = 0.005
LOCK_POLL_MAX = 0.1
CLEAN_UP_FIRST_PAUSE = 0.1
CLEAN_UP_MAX_PAUSE = 2.0


@dataclass(frozen=True)
class TurnResult:
    """The answer to a turn: the reply as clients see it, and whether it is a replay."""

    body: dict[str, Any]
    replayed: bool = False


@dataclass(frozen=True)
class StreamEvent:
    """One server-sent event of a streamed turn: a text delta, the stored reply, or an error."""

    kind: Literal["delta", "done", "error"]
    data: dict[str, Any]
    error: ProxyError | None = None


@dataclass(frozen=True)
class StreamingTurn:
    """A streamed turn's events (ending with `done` or `error`), and whether it is a replay."""

    events: Iterator[StreamEvent]
    replayed: bool = False


@dataclass(frozen=True)
class TurnOptions:
    """What a turn (or a chat's settings) may choose: model, max_tokens, temperature."""

    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None


NO_OPTIONS = TurnOptions()


@dataclass(frozen=True)
class _Call:
    """The options a turn's upstream call is made with, once resolved."""

    model: str
    max_tokens: int
    temperature: float | None

    def options(self) -> dict[str, Any]:
        return {"model": self.model, "max_tokens": self.max_tokens, "temperature": self.temperature}


@dataclass(frozen=True)
class _Claim:
    key: str
    fingerprint: str


class ChatService:
    """Turns, histories, system prompts and moderation, over one store and one upstream."""

    def __init__(self, settings: Settings, store: Store, upstream: Upstream, quotas: Quotas):
        self._settings = settings
        self._store = store
        self._upstream = upstream
        self._quotas = quotas

    def turn(
        self,
        chat: ChatRef,
        content: str,
        *,
        idempotency_key: str | None = None,
        options: TurnOptions = NO_OPTIONS,
    ) -> TurnResult:
        """Send a text message in `chat` and return the stored reply."""
        return self._turn(chat, content, False, idempotency_key, options)

    def image_turn(
        self,
        chat: ChatRef,
        text: str,
        image_url: str,
        *,
        idempotency_key: str | None = None,
        options: TurnOptions = NO_OPTIONS,
    ) -> TurnResult:
        """Send a message that carries an image to the vision model."""
        return self._turn(chat, _image_parts(text, image_url), True, idempotency_key, options)

    def content_turn(
        self,
        chat: ChatRef,
        content: Content,
        *,
        stream: bool = False,
        idempotency_key: str | None = None,
        options: TurnOptions = NO_OPTIONS,
    ) -> TurnResult | StreamingTurn:
        """A turn whose user message is OpenAI content (text or parts; images go to the vision
        model unless the turn names one): the OpenAI-compatible endpoint's chat mode."""
        image = content_text(content)[1] > 0
        if stream:
            return self._stream(chat, content, image, idempotency_key, options)
        return self._turn(chat, content, image, idempotency_key, options)

    def pass_through(
        self,
        tenant: str,
        messages: list[dict[str, Any]],
        *,
        stream: bool,
        options: TurnOptions,
    ) -> dict[str, Any] | ReplyStream:
        """Send `messages` as they are, store nothing (the endpoint without a chat id); the
        tenant's token budget still counts."""
        self._check(options)
        self._quotas.check_budget(tenant)
        deadline = time.monotonic() + self._settings.request_timeout
        call = self._call_options({}, False, options)
        if stream:
            return self._upstream.stream(
                messages,
                **call.options(),
                deadline=deadline,
            )
        completion = self._upstream.complete(
            messages,
            **call.options(),
            deadline=deadline,
        )
        self._quotas.spend(tenant, completion.usage.get("total_tokens", 0))
        return Message(
            "assistant", completion.content, usage=completion.usage, model=completion.model
        ).to_json()

    def spend(self, tenant: str, tokens: int) -> None:
        """Count tokens a pass-through stream used against the tenant's budget."""
        self._quotas.spend(tenant, tokens)

    def stream_turn(
        self,
        chat: ChatRef,
        content: str,
        *,
        image_url: str | None = None,
        idempotency_key: str | None = None,
        options: TurnOptions = NO_OPTIONS,
    ) -> StreamingTurn:
        """Start a turn whose reply streams.

        Anything that fails before the reply's first text raises, as `turn` does. Then a worker
        thread reads the stream to its end, stores the turn (fenced, idempotent) and releases the
        lock, whether or not anyone still reads the events: a client that hangs up mid-stream
        still gets its turn stored once, complete.
        """
        turn_content: Content = content if image_url is None else _image_parts(content, image_url)
        return self._stream(chat, turn_content, image_url is not None, idempotency_key, options)

    def _stream(
        self,
        chat: ChatRef,
        turn_content: Content,
        image: bool,
        idempotency_key: str | None,
        options: TurnOptions,
    ) -> StreamingTurn:
        deadline = time.monotonic() + self._settings.request_timeout
        claim, replay = self._claim(chat, turn_content, image, options, idempotency_key)
        if replay is not None:
            done = StreamEvent("done", replay)
            return StreamingTurn(
                iter([StreamEvent("delta", {"content": replay["content"]}), done]), True
            )
        events: queue.Queue[StreamEvent | None] = queue.Queue()
        try:
            self._quotas.check_budget(chat.tenant)
            token = self._acquire(chat)
            try:
                user = Message("user", turn_content)
                outgoing, call = self._outgoing(chat, user, image, options)
                stream = self._upstream.stream(
                    outgoing,
                    **call.options(),
                    deadline=deadline,
                )
            except BaseException:
                self._release(chat, token)
                raise
        except BaseException:
            if claim is not None:
                self._forget(chat, claim)
            raise
        worker = threading.Thread(
            target=self._pump,
            args=(chat, user, stream, token, claim, events),
            name="stream-turn",
            daemon=True,
        )
        worker.start()
        first = events.get()
        if first is None or first.error is not None:
            raise first.error if first is not None and first.error else ProxyError()
        return StreamingTurn(itertools.chain([first], iter(events.get, None)))

    def _pump(
        self,
        chat: ChatRef,
        user: Message,
        stream: ReplyStream,
        token: str,
        claim: _Claim | None,
        events: queue.Queue[StreamEvent | None],
    ) -> None:
        """Relay the stream to `events`, then store the turn; runs on its own thread."""
        try:
            for text in stream:
                events.put(StreamEvent("delta", {"content": text}))
            body = self._record(chat, user, stream.completion(), token, claim)
            events.put(StreamEvent("done", body))
        except Exception as exc:
            error = exc if isinstance(exc, ProxyError) else ProxyError()
            if not isinstance(exc, ProxyError):
                log.exception("a streamed turn failed")
            if claim is not None:
                self._forget(chat, claim)
            events.put(StreamEvent("error", error.to_json(), error))
        finally:
            self._release(chat, token)
            events.put(None)

    def _claim(
        self,
        chat: ChatRef,
        content: Content,
        image: bool,
        options: TurnOptions,
        idempotency_key: str | None,
    ) -> tuple[_Claim | None, dict[str, Any] | None]:
        """Claim an Idempotency-Key; return the claim, or the answer to replay."""
        self._check(options)
        if idempotency_key is None:
            return None, None
        request = [image, content, options.model, options.temperature, options.max_tokens]
        claim = _Claim(_digest(idempotency_key), _digest(request))
        found = self._store.claim_idempotency(
            chat, claim.key, claim.fingerprint, self._settings.turn_lease_seconds
        )
        if found.state == "done" and found.response is not None:
            replay: dict[str, Any] = json.loads(found.response)
            return None, replay
        if found.state == "mismatch":
            raise IdempotencyKeyReused()
        if found.state != "new":
            raise IdempotencyInProgress()
        return claim, None

    def _turn(
        self,
        chat: ChatRef,
        content: Content,
        image: bool,
        idempotency_key: str | None,
        options: TurnOptions,
    ) -> TurnResult:
        deadline = time.monotonic() + self._settings.request_timeout
        claim, replay = self._claim(chat, content, image, options, idempotency_key)
        if replay is not None:
            return TurnResult(replay, replayed=True)
        try:
            self._quotas.check_budget(chat.tenant)  # after the claim: a replay costs nothing
            with self._turn_lock(chat) as token:
                body = self._locked_turn(chat, content, image, options, deadline, token, claim)
        except BaseException:
            if claim is not None:
                self._forget(chat, claim)
            raise
        return TurnResult(body)

    def _locked_turn(
        self,
        chat: ChatRef,
        content: Content,
        image: bool,
        options: TurnOptions,
        deadline: float,
        token: str,
        claim: _Claim | None,
    ) -> dict[str, Any]:
        user = Message("user", content)
        outgoing, call = self._outgoing(chat, user, image, options)
        completion = self._upstream.complete(
            outgoing,
            **call.options(),
            deadline=deadline,
        )
        return self._record(chat, user, completion, token, claim)

    def _outgoing(
        self, chat: ChatRef, user: Message, image: bool, options: TurnOptions
    ) -> tuple[list[dict[str, Any]], _Call]:
        """Build what the upstream gets (system prompt, the history that fits, the new message)
        and the model, max_tokens and temperature to call it with."""
        state = self._store.load_window(chat, self._settings.messages_length)
        call = self._call_options(state.settings, image, options)
        system = self._system_prompt(state)
        budget = self._settings.context_tokens - call.max_tokens
        window = fit_window(system, state.messages, user, budget=budget)
        outgoing = [m.for_upstream() for m in window] + [user.for_upstream()]
        if call.model != self._settings.vision_model:
            outgoing = [_without_images(m) for m in outgoing]
        if system:
            outgoing.insert(0, {"role": "system", "content": system})
        return outgoing, call

    def _call_options(
        self, chat_settings: dict[str, Any], image: bool, options: TurnOptions
    ) -> _Call:
        """Resolve this turn's model, max_tokens and temperature: the turn's own, else the chat's
        settings, else the defaults (an image turn's default model is VISION_MODEL)."""
        default_model = self._settings.vision_model if image else self._settings.model
        chat_model = None if image else chat_settings.get("model")
        temperature = options.temperature
        if temperature is None:
            temperature = chat_settings.get("temperature")
        return _Call(
            model=options.model or chat_model or default_model,
            max_tokens=options.max_tokens
            or chat_settings.get("max_tokens")
            or self._settings.max_tokens,
            temperature=temperature,
        )

    def _check(self, options: TurnOptions) -> None:
        """Refuse a model outside ALLOWED_MODELS or a max_tokens above MAX_TOKENS."""
        if options.model is not None and options.model not in self._settings.allowed_models:
            allowed = ", ".join(self._settings.allowed_models)
            raise ValidationFailed(f"model: {options.model!r} is not allowed; use one of {allowed}")
        if options.max_tokens is not None and options.max_tokens > self._settings.max_tokens:
            raise ValidationFailed(f"max_tokens: at most {self._settings.max_tokens} (MAX_TOKENS)")

    def chat_settings(self, chat: ChatRef) -> dict[str, Any]:
        """Return what a text turn in `chat` would use, and which of it the chat sets itself."""
        state = self._store.load_window(chat, 0)
        call = self._call_options(state.settings, False, NO_OPTIONS)
        return {
            "model": call.model,
            "temperature": call.temperature,
            "max_tokens": call.max_tokens,
            "system": self._system_prompt(state),
            "own": {**state.settings, "system": state.chat_system},
            "allowed_models": list(self._settings.allowed_models),
        }

    def update_chat_settings(self, chat: ChatRef, changes: dict[str, Any]) -> dict[str, Any]:
        """Change some of a chat's settings; a None value removes that setting."""
        self._check(TurnOptions(model=changes.get("model"), max_tokens=changes.get("max_tokens")))
        if "system" in changes:
            self._store.set_chat_system(chat, changes.pop("system"))
        if changes:
            current = self._store.load_window(chat, 0).settings
            merged = {k: v for k, v in {**current, **changes}.items() if v is not None}
            self._store.set_chat_settings(chat, merged)
        return self.chat_settings(chat)

    def _record(
        self,
        chat: ChatRef,
        user: Message,
        completion: Completion,
        token: str,
        claim: _Claim | None,
    ) -> dict[str, Any]:
        """Store the turn with its idempotent answer, count its tokens, return the reply body."""
        reply = Message(
            "assistant", completion.content, usage=completion.usage, model=completion.model
        )
        body = reply.to_json()
        answer = None
        if claim is not None:
            answer = IdempotentResult(claim.key, claim.fingerprint, json.dumps(body))
        self._save(chat, uuid.uuid4().hex, [user, reply], token, answer)
        self._quotas.spend(chat.tenant, completion.usage.get("total_tokens", 0))
        return body

    @contextmanager
    def _turn_lock(self, chat: ChatRef) -> Iterator[str]:
        """Hold the chat's turn lock, waiting up to TURN_WAIT_SECONDS for it."""
        token = self._acquire(chat)
        try:
            yield token
        finally:
            self._release(chat, token)

    def _acquire(self, chat: ChatRef) -> str:
        """Take the chat's turn lock, waiting up to TURN_WAIT_SECONDS; return its token."""
        token = secrets.token_hex(16)
        lease = self._settings.turn_lease_seconds
        give_up = time.monotonic() + self._settings.turn_wait_seconds
        pause = LOCK_POLL_FIRST
        while not self._store.acquire_turn(chat, token, lease):
            left = give_up - time.monotonic()
            if left <= 0:
                raise ChatBusy()
            time.sleep(min(left, pause * random.uniform(0.5, 1.0)))
            pause = min(pause * 2, LOCK_POLL_MAX)
        return token

    def _release(self, chat: ChatRef, token: str) -> None:
        """Release the turn lock (retried in the background while the store is away)."""
        self._clean_up(
            lambda: self._store.release_turn(chat, token), self._settings.turn_lease_seconds
        )

    def _forget(self, chat: ChatRef, claim: _Claim) -> None:
        """Release an idempotency claim after a failure, so that the client can retry."""
        release = partial(self._store.release_idempotency, chat, claim.key, claim.fingerprint)
        self._clean_up(release, self._settings.turn_lease_seconds)

    def _clean_up(self, action: Callable[[], None], lease: float) -> None:
        """Run a release now, or keep retrying it in the background while the store is away.

        Without this, a turn cut short by a Redis outage would leave its chat locked (or its
        Idempotency-Key pending) for the rest of the lease once Redis is back. Releases compare
        tokens, so a late one never frees what someone else holds.
        """
        try:
            action()
        except StoreError:
            log.warning("the store is unavailable; retrying a lock release in the background")
            give_up = time.monotonic() + lease
            threading.Thread(target=_retry, args=(action, give_up), daemon=True).start()

    def _save(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: list[Message],
        token: str,
        answer: IdempotentResult | None,
    ) -> None:
        """Save the turn, retrying a store outage: the upstream's answer is already paid for.

        The save is idempotent by `turn_id`, so a retry after a save that did land stores nothing.
        """
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                self._store.save_turn(chat, turn_id, messages, lock_token=token, idempotent=answer)
                return
            except StoreUnavailable:
                if attempt == SAVE_ATTEMPTS:
                    raise
                time.sleep(SAVE_RETRY_DELAY * attempt)

    def history(
        self, chat: ChatRef, *, limit: int | None = None, before: int | None = None
    ) -> list[dict[str, Any]]:
        """Return the chat's messages oldest first, each with its number (`id`).

        Without `limit` and `before`: the whole history, the system prompt first when the chat
        has one. With them: a page of at most `limit` messages numbered below `before`.
        """
        if limit is None and before is None:
            state = self._store.load_history(chat)
        else:
            state = self._store.load_page(chat, limit or DEFAULT_PAGE, before)
        messages = [{"id": state.first_id + n, **m.to_json()} for n, m in enumerate(state.messages)]
        system = self._system_prompt(state)
        if state.exists and system and limit is None and before is None:
            messages.insert(0, {"role": "system", "content": system})
        return messages

    def chats(self, tenant: str, *, limit: int, before: float | None) -> dict[str, Any]:
        """List a tenant's chats, newest activity first, with the cursor of the next page."""
        found = self._store.list_chats(tenant, limit, before)
        cursor = found[-1].updated if len(found) == limit else None
        return {"chats": [info.to_json() for info in found], "next_before": cursor}

    def usage(self, chat: ChatRef) -> dict[str, Any]:
        """Return the chat's token totals and size."""
        info = self._store.chat_info(chat)
        if info is None:
            raise NotFound("no such chat")
        return info.to_json()

    def chat_system(self, chat: ChatRef) -> dict[str, Any]:
        """Return the system prompt that applies to `chat` and where it comes from."""
        state = self._store.load_window(chat, 0)
        if state.chat_system:
            return {"role": "system", "content": state.chat_system, "source": "chat"}
        return {
            "role": "system",
            "content": self._global_system(state.global_system) or None,
            "source": "global",
        }

    def set_chat_system(self, chat: ChatRef, content: str | None) -> dict[str, Any]:
        """Set or (with None) remove the chat's own system prompt; return what now applies."""
        self._store.set_chat_system(chat, content)
        return self.chat_system(chat)

    def global_system(self) -> dict[str, Any]:
        """Return the global default system prompt."""
        content = self._global_system(self._store.get_global_system())
        return {"role": "system", "content": content or None}

    def set_global_system(self, content: str | None) -> dict[str, Any]:
        """Set the global default system prompt; None removes it (SYSTEM_PROMPT included)."""
        self._store.set_global_system(content or "")
        return self.global_system()

    def clear(self, chat: ChatRef) -> bool:
        """Delete the chat; return whether it existed."""
        return self._store.delete_chat(chat)

    def moderate(self, text: str) -> dict[str, Any]:
        """Run the upstream moderation model on `text`."""
        deadline = time.monotonic() + self._settings.request_timeout
        return self._upstream.moderate(
            text, model=self._settings.moderation_model, deadline=deadline
        )

    def ping_store(self) -> None:
        """Raise `StoreUnavailable` if the store cannot be reached."""
        self._store.ping()

    def close(self) -> None:
        """Release the store's and the upstream's connections."""
        self._store.close()
        self._upstream.close()

    def _system_prompt(self, state: ChatState) -> str | None:
        """Pick the chat's own prompt, else the global one; never an empty one."""
        return state.chat_system or self._global_system(state.global_system) or None

    def _global_system(self, stored: str | None) -> str | None:
        """The stored global prompt wins; SYSTEM_PROMPT applies until one is stored."""
        return self._settings.system_prompt if stored is None else stored


def _retry(action: Callable[[], None], give_up: float) -> None:
    """Retry `action` with back-off until it works or `give_up` (a monotonic time) passes."""
    pause = CLEAN_UP_FIRST_PAUSE
    while time.monotonic() + pause < give_up:
        time.sleep(pause)
        try:
            action()
            return
        except StoreError:
            pause = min(pause * 2, CLEAN_UP_MAX_PAUSE)


def _image_parts(text: str, image_url: str) -> list[dict[str, Any]]:
    """A user message that carries an image, as OpenAI content parts."""
    return [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": image_url}},
    ]


def _digest(value: object) -> str:
    """Hash a key or a request body canonically (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _without_images(message: dict[str, Any]) -> dict[str, Any]:
    """Flatten image parts to text for a model that cannot see them."""
    content = message["content"]
    if isinstance(content, str):
        return message
    words = []
    for part in content:
        if part.get("type") == "text":
            words.append(str(part.get("text", "")))
        elif part.get("type") == "image_url":
            url = str(part.get("image_url", {}).get("url", ""))
            words.append("[image]" if url.startswith("data:") else f"[image: {url}]")
    return {"role": message["role"], "content": " ".join(words)}

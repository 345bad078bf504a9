"""Own what a chat turn is (plain, streamed, OpenAI-style, pass-through), and moderation.

A turn, all within the request's deadline (REQUEST_TIMEOUT):
1. claim the Idempotency-Key if the client sent one (a finished key replays its answer);
2. take the chat's turn lock (a random token with a lease), waiting up to TURN_WAIT_SECONDS, and
   load the chat's window (system prompt + newest messages) in the same store round trip;
3. send system + window + the new user message upstream;
4. save the user message and the reply together, with the idempotent answer, in one atomic step
   that is fenced by the lock token, keyed by a turn id (so a retried save stores nothing) and
   releases the lock. On any failure the lock and the claim are released, so the client may
   retry.
Nothing is stored unless the upstream answered. The lock, the claims and the fenced save live in
`turns.py`; the window's token budget in `context.py`; the turn's model, options and system prompt
in `defaults.py`. The operations on chats that are not turns are `chats.py`'s. This module never
touches HTTP; handlers never touch the store or the upstream.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from chatproxy.config import Settings
from chatproxy.context import fit_window
from chatproxy.defaults import NO_OPTIONS, CallOptions, Defaults, TurnOptions
from chatproxy.errors import ProxyError, UpstreamBadResponse
from chatproxy.quotas import Quotas
from chatproxy.reply_stream import Completion, ReplyStream
from chatproxy.store import ChatRef, ChatState, Message, Store
from chatproxy.store.base import Content
from chatproxy.tokens import content_text
from chatproxy.turns import Claim, Lease, TurnGuard
from chatproxy.upstream import Upstream

log = logging.getLogger(__name__)

# Streamed turns whose clients left before the end, finished at once by worker threads: more
# wait for a free one.
STREAM_WORKERS = 1000
# A streamed turn whose reader has not asked for its next event this long (a client that stopped
# reading, so the server's write waits) is handed to a worker, which stores it before its lock's
# lease runs out; the relays are looked over every WATCH_SECONDS.
STALL_SECONDS = 10.0
WATCH_SECONDS = 1.0


class _Job:
    """Who owns a streamed turn once it is handed to the worker pool: the worker that starts
    it, or the thread that handed it over if the hand-off failed first. A failed `submit` may
    still have queued the work (Python queues it before starting a thread), and a worker must not
    run a turn whose stream, lock and claim have already been released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owner: str | None = None

    def claim(self, owner: Literal["running", "abandoned"]) -> bool:
        """Take the turn for `owner`; False if it was taken already."""
        with self._lock:
            if self._owner is not None:
                return False
            self._owner = owner
            return True


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


def _nothing() -> None:
    pass


@dataclass(frozen=True)
class StreamingTurn:
    """A streamed turn's events (ending with `done` or `error`), whether it is a replay, and
    what to call once the answer is closed, read to its end or not: a turn whose events were
    not all read is then finished and stored by a worker thread."""

    events: Iterator[StreamEvent]
    replayed: bool = False
    close: Callable[[], None] = _nothing


@dataclass(frozen=True)
class _OpenTurn:
    """A streamed turn between its first text and its end: what storing it needs."""

    chat: ChatRef
    user: Message
    stream: ReplyStream
    pieces: Iterator[str]
    lease: Lease
    claim: Claim | None


class _Relay:
    """A streamed turn's events, each read from the upstream when it is asked for, on the
    thread that asks (the request's): the first text (read already), the rest as it arrives, then
    `done` once the turn is stored, or `error`. Handing each piece to another thread instead cost
    the first text 0.2-0.3 ms of thread wake-ups (row 7 of BENCHMARKS.md).

    `close` before the end (the client hung up, or the answer was never sent) hands the rest to
    a worker, which reads the stream to its end and stores the turn, and so does `take_over` when
    the reader has stalled: once it has begun, a turn is stored once and complete, whoever still
    listens. A reader that comes back after a take-over finds the events ended."""

    def __init__(self, service: ChatService, turn: _OpenTurn, first: str):
        self._service = service
        self._turn = turn
        self._first: str | None = first
        self._open = True  # the turn is still this relay's to finish
        self._lock = threading.Lock()  # held while reading: a take-over waits for the reader
        self._handed_at = time.monotonic()

    def __iter__(self) -> Iterator[StreamEvent]:
        return self

    def __next__(self) -> StreamEvent:
        with self._lock:
            if self._first is not None:
                first, self._first = self._first, None
                return StreamEvent("delta", {"content": first})
            if not self._open:
                raise StopIteration
            try:
                text = next(self._turn.pieces, None)
            except Exception as exc:
                self._end()
                return self._service._finish(self._turn, exc)
            except BaseException:
                self._end()
                self._service._abandon(self._turn)
                raise
            if text is not None:
                self._handed_at = time.monotonic()
                return StreamEvent("delta", {"content": text})
            self._end()
            return self._service._finish(self._turn)

    def close(self) -> None:
        """Hand the turn to a worker if its events were not read to the end."""
        with self._lock:
            if self._open:
                self._end()
                self._service._hand_over(self._turn)

    def take_over(self, now: float) -> None:
        """Hand the turn to a worker if its reader has not asked for an event in
        STALL_SECONDS (and is not reading one now)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._open and now - self._handed_at > STALL_SECONDS:
                log.warning("a streamed turn's client stopped reading; a worker stores the turn")
                self._end()
                self._service._hand_over(self._turn)
        finally:
            self._lock.release()

    def _end(self) -> None:
        self._open = False
        self._service._relays.discard(self)


class ChatService:
    """Turns (plain, streamed, OpenAI-style, pass-through) and moderation, over one store and one
    upstream."""

    def __init__(self, settings: Settings, store: Store, upstream: Upstream, quotas: Quotas):
        self._settings = settings
        self._store = store
        self._upstream = upstream
        self._quotas = quotas
        self._guard = TurnGuard(settings, store)
        self._defaults = Defaults(settings)
        # Reused threads: starting a new one per stream waited for it to be scheduled (0.2-0.3 ms
        # before the first event could leave). At exit Python waits for these to finish, so a
        # turn being stored is not cut off.
        self._pumps = ThreadPoolExecutor(STREAM_WORKERS, thread_name_prefix="stream-turn")
        self._relays: set[_Relay] = set()  # streamed turns being read, looked over for stalls
        self._watching = threading.Lock()
        self._watcher: threading.Thread | None = None

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
        self._defaults.check(options)
        self._quotas.check_budget(tenant)
        deadline = time.monotonic() + self._settings.request_timeout
        call = self._defaults.call({}, False, options)
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

        Anything that fails before the reply's first text raises, as `turn` does. Reading the
        events reads the rest of the stream; after the last text the turn is stored (fenced,
        idempotent) and the lock released. If the answer is closed before that (`close`: a
        client that hangs up mid-stream), a worker thread finishes and stores the turn.
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
        try:
            self._quotas.check_budget(chat.tenant)
            lease = self._guard.begin(chat, self._settings.messages_length)
            try:
                user = Message("user", turn_content)
                outgoing, call = self._outgoing(lease.state, user, image, options)
                stream = self._upstream.stream(
                    outgoing,
                    **call.options(),
                    deadline=deadline,
                )
                pieces = iter(stream)
                first = next(pieces, None)
                if first is None:  # the stream ended without any text
                    stream.completion()  # raises, as it finds no text
                    raise UpstreamBadResponse("the model provider streamed no text")
            except BaseException:
                self._guard.end(chat, lease)
                raise
        except BaseException:
            if claim is not None:
                self._guard.forget(chat, claim)
            raise
        relay = _Relay(self, _OpenTurn(chat, user, stream, pieces, lease, claim), first)
        self._relays.add(relay)
        if self._watcher is None:
            self._start_watching()
        return StreamingTurn(relay, close=relay.close)

    def _start_watching(self) -> None:
        """Start the thread that hands stalled streamed turns over (once per process, when
        the first stream begins: a forked worker does not inherit its parent's threads)."""
        with self._watching:
            if self._watcher is not None:
                return
            watcher = threading.Thread(target=self._watch, name="stream-watch", daemon=True)
            try:
                watcher.start()
            except RuntimeError:  # no thread to be had now: the next stream tries again
                log.warning("could not start the thread that looks for stalled streams")
                return
            self._watcher = watcher

    def _watch(self) -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            now = time.monotonic()
            for relay in list(self._relays):
                relay.take_over(now)

    def _finish(self, turn: _OpenTurn, failure: Exception | None = None) -> StreamEvent:
        """Store a streamed turn whose stream has ended (or failed: `failure`) and release its
        lock; return the `done` event, or the `error` one (then the claim is released too)."""
        try:
            if failure is not None:
                raise failure
            completion = turn.stream.completion()
            body = self._record(turn.chat, turn.user, completion, turn.lease, turn.claim)
            return StreamEvent("done", body)
        except Exception as exc:
            error = exc if isinstance(exc, ProxyError) else ProxyError()
            if not isinstance(exc, ProxyError):
                log.exception("a streamed turn failed")
            if turn.claim is not None:
                self._guard.forget(turn.chat, turn.claim)
            return StreamEvent("error", error.to_json(), error)
        finally:
            self._guard.end(turn.chat, turn.lease)

    def _hand_over(self, turn: _OpenTurn) -> None:
        """Have a worker thread read the rest of a streamed turn and store it; if none can
        start, give the turn up (nothing is stored, the chat and the key are freed)."""
        job = _Job()
        try:
            self._pumps.submit(self._drain, job, turn)
        except Exception:
            if job.claim("abandoned"):  # no worker has it
                log.warning("no worker could start to store a streamed turn; it is not stored")
                self._abandon(turn)
            else:
                log.warning("a stream worker started although its submission failed")

    def _drain(self, job: _Job, turn: _OpenTurn) -> None:
        """Read the rest of a handed-over turn's stream and store it (a worker's job), unless
        the hand-off gave the turn up first."""
        if not job.claim("running"):
            return
        try:
            for _ in turn.pieces:
                pass
        except Exception as exc:
            self._finish(turn, exc)
        else:
            self._finish(turn)

    def _abandon(self, turn: _OpenTurn) -> None:
        """Give up a streamed turn: drop its upstream connection, release its key and lock."""
        turn.stream.close()
        if turn.claim is not None:
            self._guard.forget(turn.chat, turn.claim)
        self._guard.end(turn.chat, turn.lease)

    def _claim(
        self,
        chat: ChatRef,
        content: Content,
        image: bool,
        options: TurnOptions,
        idempotency_key: str | None,
    ) -> tuple[Claim | None, dict[str, Any] | None]:
        """Claim an Idempotency-Key; return the claim, or the answer to replay."""
        self._defaults.check(options)
        request = [image, content, options.model, options.temperature, options.max_tokens]
        return self._guard.claim(chat, idempotency_key, request)

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
            with self._guard.locked(chat, self._settings.messages_length) as lease:
                body = self._locked_turn(chat, content, image, options, deadline, lease, claim)
        except BaseException:
            if claim is not None:
                self._guard.forget(chat, claim)
            raise
        return TurnResult(body)

    def _locked_turn(
        self,
        chat: ChatRef,
        content: Content,
        image: bool,
        options: TurnOptions,
        deadline: float,
        lease: Lease,
        claim: Claim | None,
    ) -> dict[str, Any]:
        user = Message("user", content)
        outgoing, call = self._outgoing(lease.state, user, image, options)
        completion = self._upstream.complete(
            outgoing,
            **call.options(),
            deadline=deadline,
        )
        return self._record(chat, user, completion, lease, claim)

    def _outgoing(
        self, state: ChatState, user: Message, image: bool, options: TurnOptions
    ) -> tuple[list[dict[str, Any]], CallOptions]:
        """Build what the upstream gets (system prompt, the history that fits, the new message)
        and the model, max_tokens and temperature to call it with."""
        call = self._defaults.call(state.settings, image, options)
        system = self._defaults.system_prompt(state)
        budget = self._settings.context_tokens - call.max_tokens
        window = fit_window(system, state.messages, user, budget=budget)
        outgoing = [m.for_upstream() for m in window] + [user.for_upstream()]
        if call.model != self._settings.vision_model:
            outgoing = [_without_images(m) for m in outgoing]
        if system:
            outgoing.insert(0, {"role": "system", "content": system})
        return outgoing, call

    def _record(
        self,
        chat: ChatRef,
        user: Message,
        completion: Completion,
        lease: Lease,
        claim: Claim | None,
    ) -> dict[str, Any]:
        """Store the turn with its idempotent answer, count its tokens, return the reply body."""
        reply = Message(
            "assistant", completion.content, usage=completion.usage, model=completion.model
        )
        body = reply.to_json()
        answer = claim.answer(body) if claim is not None else None
        self._guard.save(chat, uuid.uuid4().hex, [user, reply], lease, answer)
        self._quotas.spend(chat.tenant, completion.usage.get("total_tokens", 0))
        return body

    def moderate(self, text: str) -> dict[str, Any]:
        """Run the upstream moderation model on `text`."""
        deadline = time.monotonic() + self._settings.request_timeout
        return self._upstream.moderate(
            text, model=self._settings.moderation_model, deadline=deadline
        )

    def close(self) -> None:
        """Release the store's and the upstream's connections (streams still being stored finish
        first)."""
        self._pumps.shutdown()
        self._store.close()
        self._upstream.close()


def _image_parts(text: str, image_url: str) -> list[dict[str, Any]]:
    """A user message that carries an image, as OpenAI content parts."""
    return [
        {"type": "text", "text": text},
        {"type": "image_url", "image_url": {"url": image_url}},
    ]


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

"""Own a streamed turn once its first text has arrived: its events, read from the upstream on
the thread that asks for them (the request's), and its hand-over to a worker thread when its
client hangs up or stops reading, so that a turn that has begun is stored once, complete.

The service (`service.py`) takes the lock, opens the stream and reads its first text; from then
on the turn is a `Relay`'s, and `Relays` stores it (through the service's `store` callback),
releases its lock and key, and keeps the workers and the thread that looks for stalled readers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from chatproxy.errors import ProxyError
from chatproxy.reply_stream import Completion, ReplyStream
from chatproxy.store import ChatRef, Message
from chatproxy.turns import Claim, Lease, TurnGuard

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
class StreamEvent:
    """One server-sent event of a streamed turn: a text delta, the stored reply, or an error."""

    kind: Literal["delta", "done", "error"]
    data: dict[str, Any]
    error: ProxyError | None = None


@dataclass(frozen=True)
class OpenTurn:
    """A streamed turn between its first text and its end: what storing it needs."""

    chat: ChatRef
    user: Message
    stream: ReplyStream
    pieces: Iterator[str]
    lease: Lease
    claim: Claim | None


class Relay:
    """A streamed turn's events, each read from the upstream when it is asked for, on the
    thread that asks (the request's): the first text (read already), the rest as it arrives, then
    `done` once the turn is stored, or `error`. Handing each piece to another thread instead cost
    the first text 0.2-0.3 ms of thread wake-ups (row 7 of BENCHMARKS.md).

    `close` before the end (the client hung up, or the answer was never sent) hands the rest to
    a worker, which reads the stream to its end and stores the turn, and so does `take_over` when
    the reader has stalled: once it has begun, a turn is stored once and complete, whoever still
    listens. A reader that comes back after a take-over finds the events ended."""

    def __init__(self, relays: Relays, turn: OpenTurn, first: str):
        self._relays = relays
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
                return self._relays.finish(self._turn, exc)
            except BaseException:
                self._end()
                self._relays.abandon(self._turn)
                raise
            if text is not None:
                self._handed_at = time.monotonic()
                return StreamEvent("delta", {"content": text})
            self._end()
            return self._relays.finish(self._turn)

    def close(self) -> None:
        """Hand the turn to a worker if its events were not read to the end."""
        with self._lock:
            if self._open:
                self._end()
                self._relays.hand_over(self._turn)

    def take_over(self, now: float) -> None:
        """Hand the turn to a worker if its reader has not asked for an event in
        STALL_SECONDS (and is not reading one now)."""
        if not self._lock.acquire(blocking=False):
            return
        try:
            if self._open and now - self._handed_at > STALL_SECONDS:
                log.warning("a streamed turn's client stopped reading; a worker stores the turn")
                self._end()
                self._relays.hand_over(self._turn)
        finally:
            self._lock.release()

    def _end(self) -> None:
        self._open = False
        self._relays.forget(self)


class Relays:
    """The streamed turns being relayed in one process, the workers that finish the ones their
    clients left, and the thread that hands stalled ones over."""

    def __init__(
        self, guard: TurnGuard, store: Callable[[OpenTurn, Completion], dict[str, Any]]
    ) -> None:
        self._guard = guard
        self._store = store  # save the turn with its reply; return the reply as clients see it
        # Reused threads: starting one per turn waits for it to be scheduled. At exit Python waits
        # for them to finish, so a turn being stored is not cut off.
        self._pumps = ThreadPoolExecutor(STREAM_WORKERS, thread_name_prefix="stream-turn")
        self._open: set[Relay] = set()  # streamed turns being read, looked over for stalls
        self._watching = threading.Lock()
        self._watcher: threading.Thread | None = None

    def relay(self, turn: OpenTurn, first: str) -> Relay:
        """Start relaying `turn`, whose first text is `first`."""
        relay = Relay(self, turn, first)
        self._open.add(relay)
        if self._watcher is None:
            self._start_watching()
        return relay

    def forget(self, relay: Relay) -> None:
        """Stop looking over a relay that has ended or been handed over."""
        self._open.discard(relay)

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
            for relay in list(self._open):
                relay.take_over(now)

    def finish(self, turn: OpenTurn, failure: Exception | None = None) -> StreamEvent:
        """Store a streamed turn whose stream has ended (or failed: `failure`) and release its
        lock; return the `done` event, or the `error` one (then the claim is released too)."""
        try:
            if failure is not None:
                raise failure
            return StreamEvent("done", self._store(turn, turn.stream.completion()))
        except Exception as exc:
            error = exc if isinstance(exc, ProxyError) else ProxyError()
            if not isinstance(exc, ProxyError):
                log.exception("a streamed turn failed")
            if turn.claim is not None:
                self._guard.forget(turn.chat, turn.claim)
            return StreamEvent("error", error.to_json(), error)
        finally:
            self._guard.end(turn.chat, turn.lease)

    def hand_over(self, turn: OpenTurn) -> None:
        """Have a worker thread read the rest of a streamed turn and store it; if none can
        start, give the turn up (nothing is stored, the chat and the key are freed)."""
        job = _Job()
        try:
            self._pumps.submit(self._drain, job, turn)
        except Exception:
            if job.claim("abandoned"):  # no worker has it
                log.warning("no worker could start to store a streamed turn; it is not stored")
                self.abandon(turn)
            else:
                log.warning("a stream worker started although its submission failed")

    def _drain(self, job: _Job, turn: OpenTurn) -> None:
        """Read the rest of a handed-over turn's stream and store it (a worker's job), unless
        the hand-off gave the turn up first."""
        if not job.claim("running"):
            return
        try:
            for _ in turn.pieces:
                pass
        except Exception as exc:
            self.finish(turn, exc)
        else:
            self.finish(turn)

    def abandon(self, turn: OpenTurn) -> None:
        """Give up a streamed turn: drop its upstream connection, release its key and lock."""
        turn.stream.close()
        if turn.claim is not None:
            self._guard.forget(turn.chat, turn.claim)
        self._guard.end(turn.chat, turn.lease)

    def close(self) -> None:
        """Wait for the turns being stored by workers."""
        self._pumps.shutdown()

"""Own what keeps a turn safe in the store: the chat's turn lock, Idempotency-Key claims, the
fenced save, and the releases of all of them.

The lock is a random token with a lease (TURN_LEASE_SECONDS), waited for up to TURN_WAIT_SECONDS;
taking it also reads the chat's window, and the save releases it, so a turn costs the store two
round trips. A claim hashes the key and the request, so the same key with another body is told
apart. The save is fenced by the lock token and idempotent by turn id, and is retried through a
store outage (the upstream's answer is already paid for). Releases that meet a store outage are
retried in the background (a task on the event loop) until they work or the lease would have
ended them, so a turn cut short never leaves its chat locked or its key pending. What waits for
another turn to end without taking the lock (`wait_out_turn`) polls with the same back-off.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

from chatproxy.config import Settings
from chatproxy.errors import (
    ChatBusy,
    IdempotencyInProgress,
    IdempotencyKeyReused,
    StoreError,
    StoreUnavailable,
    TurnLeaseLost,
)
from chatproxy.jsontext import compact
from chatproxy.store.base import Store
from chatproxy.store.idempotency import IdempotentResult
from chatproxy.store.items import ChatRef, ChatState, Message

log = logging.getLogger(__name__)

SAVE_ATTEMPTS = 3
SAVE_RETRY_DELAY = 0.2
LANDED_LOOKBACK = 50  # newest messages searched for a turn whose save reply was lost
LOCK_POLL_FIRST = 0.005
LOCK_POLL_MAX = 0.1
CLEAN_UP_FIRST_PAUSE = 0.1
CLEAN_UP_MAX_PAUSE = 2.0


@dataclass(frozen=True)
class Claim:
    """A claimed Idempotency-Key: the key's hash and the request's fingerprint."""

    key: str
    fingerprint: str

    def answer(self, body: dict[str, Any]) -> IdempotentResult:
        """The idempotent answer to record with the turn."""
        return IdempotentResult(self.key, self.fingerprint, compact(body))


@dataclass
class Lease:
    """A held turn lock: its token, the chat's window read with it, whether it is released, and
    whether it is a fork's (`detached`: no lock was taken, and its save is not fenced)."""

    token: str
    state: ChatState
    released: bool = False
    detached: bool = False


class Backoff:
    """Pauses between tries at what another holds, jittered, from LOCK_POLL_FIRST doubling up
    to LOCK_POLL_MAX, for `seconds` in all (from when it is made)."""

    def __init__(self, seconds: float):
        self._give_up = time.monotonic() + seconds
        self._pause = LOCK_POLL_FIRST

    async def pause(self) -> bool:
        """Sleep before the next try; False, at once, when the time is up."""
        left = self._give_up - time.monotonic()
        if left <= 0:
            return False
        await asyncio.sleep(min(left, self._pause * random.uniform(0.5, 1.0)))
        self._pause = min(self._pause * 2, LOCK_POLL_MAX)
        return True


async def wait_out_turn(store: Store, chat: ChatRef, seconds: float) -> bool:
    """Wait while a turn holds the chat's lock, up to `seconds`; return whether one held it
    (False, after one read, when none does)."""
    if not await store.turn_held(chat):
        return False
    waiting = Backoff(seconds)
    while await waiting.pause() and await store.turn_held(chat):
        pass
    return True


class TurnGuard:
    """Locks, claims, saves and releases for the turns of one store."""

    def __init__(self, settings: Settings, store: Store):
        self._settings = settings
        self._store = store
        self._retrying: set[asyncio.Task[None]] = set()  # releases retried in the background

    async def claim(
        self, chat: ChatRef, idempotency_key: str | None, request: object
    ) -> tuple[Claim | None, dict[str, Any] | None]:
        """Claim an Idempotency-Key for `request`; return the claim, or the answer to replay."""
        if idempotency_key is None:
            return None, None
        claim = Claim(_digest(idempotency_key), _digest(request))
        found = await self._store.claim_idempotency(
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

    async def forget(self, chat: ChatRef, claim: Claim) -> None:
        """Release a claim after a failure, so that the client can retry."""
        release = partial(self._store.release_idempotency, chat, claim.key, claim.fingerprint)
        await self._clean_up(release)

    @asynccontextmanager
    async def locked(
        self, chat: ChatRef, window: int, at: int | None = None, reserve: int = 0
    ) -> AsyncIterator[Lease]:
        """Hold the chat's turn lock (see `begin`) until the save or the end of the block."""
        lease = await self.begin(chat, window, at, reserve)
        try:
            yield lease
        finally:
            await self.end(chat, lease)

    async def begin(
        self, chat: ChatRef, window: int, at: int | None = None, reserve: int = 0
    ) -> Lease:
        """Take the chat's turn lock, waiting up to TURN_WAIT_SECONDS, and read with it the
        newest `window` messages of the path ending at `at` (None: the leaf). A fork sets
        `reserve` ids aside for its messages instead and takes no lock (it waits while another
        turn holds it: `Store.begin_turn`), so the forks of a chat run at once."""
        token = secrets.token_hex(16)
        lease = self._settings.turn_lease_seconds
        waiting = Backoff(self._settings.turn_wait_seconds)
        while (state := await self._begin(chat, token, lease, window, at, reserve)) is None:
            if not await waiting.pause():
                raise ChatBusy()
        fork = reserve > 0
        return Lease(token, state, released=fork, detached=fork)

    async def _begin(
        self, chat: ChatRef, token: str, lease: float, window: int, at: int | None, reserve: int
    ) -> ChatState | None:
        """One try at the lock. When the store fails, the lock may still have been taken (the
        reply lost, as when Redis dies right after it): release it by its token, so that the
        chat is not held for a whole lease by a turn that never began."""
        try:
            return await self._store.begin_turn(chat, token, lease, window, at, reserve)
        except StoreError:
            await self._clean_up(partial(self._store.release_turn, chat, token))
            raise

    async def end(self, chat: ChatRef, lease: Lease) -> None:
        """Release the turn lock unless the save did (retried in the background while the
        store is away)."""
        if not lease.released:
            lease.released = True
            await self._clean_up(partial(self._store.release_turn, chat, lease.token))

    async def save(
        self,
        chat: ChatRef,
        turn_id: str,
        messages: Sequence[Message],
        lease: Lease,
        answer: IdempotentResult | None,
    ) -> None:
        """Save the turn fenced by the lease and release the lock in the same step, retrying a
        store outage: a retry after a save that did land stores nothing (the save is idempotent
        by `turn_id`).

        A save whose reply was lost may have landed, released the lock and let the chat's next
        turn (or a fork, or a move of the leaf) in before the retry; the retry is then refused
        (the lock is gone), so the turn's own reply is looked for by its id before calling the
        turn lost.
        """
        unknown = False  # whether an earlier attempt may have landed
        for attempt in range(1, SAVE_ATTEMPTS + 1):
            try:
                token = None if lease.detached else lease.token
                await self._store.save_turn(
                    chat,
                    turn_id,
                    messages,
                    lock_token=token,
                    idempotent=answer,
                    release=True,
                    existed=lease.state.exists,
                )
                lease.released = True
                return
            except StoreUnavailable:
                if attempt == SAVE_ATTEMPTS:
                    raise
                unknown = True
                await asyncio.sleep(SAVE_RETRY_DELAY * attempt)
            except TurnLeaseLost:
                if unknown and await self._landed(chat, messages[-1]):
                    lease.released = True
                    return
                raise

    async def _landed(self, chat: ChatRef, reply: Message) -> bool:
        """Whether a save landed: its reply is stored under its id (another turn that took the
        id, the save having not landed, stored a reply of its own there)."""
        if reply.id is None:  # placed by the store: looked for among the newest messages
            return reply in (await self._store.load_window(chat, LANDED_LOOKBACK)).messages
        return (await self._store.load_items(chat, [reply.id])) == [reply]

    async def _clean_up(self, action: Callable[[], Awaitable[None]]) -> None:
        """Run a release now, or keep retrying it in the background while the store is away.

        Releases compare tokens, so a late one never frees what someone else holds.
        """
        try:
            await action()
        except StoreError:
            log.warning("the store is unavailable; retrying a release in the background")
            give_up = time.monotonic() + self._settings.turn_lease_seconds
            task = asyncio.get_running_loop().create_task(_retry(action, give_up))
            self._retrying.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(self._retrying.discard)


async def _retry(action: Callable[[], Awaitable[None]], give_up: float) -> None:
    """Retry `action` with back-off until it works or `give_up` (a monotonic time) passes."""
    pause = CLEAN_UP_FIRST_PAUSE
    while time.monotonic() + pause < give_up:
        await asyncio.sleep(pause)
        try:
            await action()
            return
        except StoreError:
            pause = min(pause * 2, CLEAN_UP_MAX_PAUSE)


def _digest(value: object) -> str:
    """Hash a key or a request body canonically (sorted keys, no whitespace)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()

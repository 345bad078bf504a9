"""Own how a due summary is made (`compactor.py` owns when, `compaction.py` when one falls due):
`Folder`, the prompt it writes with, and how what it reads is cut into pieces.

It reads what the newest summary on the path does not cover (`Store.load_unsummarized`, at
most `FOLD_ITEMS` messages, never the whole chat) and folds it into that summary with
COMPACTION_MODEL, in pieces that fit its context, each kept at once (`Store.save_summary`,
fenced: nothing is kept if items were removed, or the chat deleted, meanwhile); a summary so
far larger than summaries are now takes the first piece's room (`pieces`' `taken`), and is
folded again alone if it leaves none. A summary further up the path than those messages is
still met, passing the items between unread (at most SEEK_ITEMS a read), and folded on from,
its transcript saying that messages were not read: what it holds is not lost. Its tokens count
against the tenant's TOKEN_BUDGET_PER_DAY, as a turn's do; a tenant over its budget makes no
summary.

A fold runs under the chat's summary claim (`claimed`, `Store.claim_summary`), so that two
processes (Cloud Functions instances, workers on one SQLite file) never fold the same messages
at once: one that finds it held waits, polling the store, until it is released or its own time
is up. Its lease covers one model call within REQUEST_TIMEOUT and the save after it, and is
renewed before each further piece: a holder that dies frees it within a lease.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from chatproxy.config import Settings
from chatproxy.errors import NotFound
from chatproxy.service.compaction_rules import transcript
from chatproxy.service.window import message_tokens
from chatproxy.store.items import ChatRef, Message, Unsummarized
from chatproxy.store.summary import Summary
from chatproxy.tokens import CHARS_PER_TOKEN, estimate_tokens
from chatproxy.upstream_errors import UpstreamBadResponse, UpstreamTimeout

if TYPE_CHECKING:  # given by the compactor: named in annotations only
    from chatproxy.service.quotas import Quotas
    from chatproxy.store.base import Store
    from chatproxy.upstream.base import Upstream

FOLD_ITEMS = 2000  # the most messages one summarizing reads
SEEK_ITEMS = FOLD_ITEMS  # the most items one read passes, unread, to the summary above them
SLACK_TOKENS = 64  # the transcript's own lines
CLAIM_SLACK_SECONDS = 5.0  # a claim's lease beyond REQUEST_TIMEOUT: the budget's check, the save
POLL_SECONDS = (0.05, 0.5)  # the first and the longest wait between tries of a claim held
PROMPT = (
    "You keep the memory of a conversation between a user and an assistant. Fold the summary"
    " so far and the new messages into one updated summary. Keep every fact, name, number,"
    " decision, preference, instruction and open question that later turns may need, in the"
    " order they came up; leave out small talk. Write plain text in the conversation's"
    " language, and answer with the summary only."
)


def pieces(messages: Sequence[Message], room: int, taken: int = 0) -> list[list[Message]]:
    """Split `messages` into runs that fit `room` tokens each (a longer message alone);
    `taken` tokens of the first run's room are taken already (by a summary so far larger than
    summaries are now): the first run is empty when what is left holds no message."""
    runs: list[list[Message]] = [[]] if taken else []
    used = taken or room
    for message in messages:
        tokens = message_tokens(message)
        if used + tokens > room:
            runs.append([])
            used = 0
        runs[-1].append(message)
        used += tokens
    return runs


class Folder:
    """Folds what a chat's newest summary does not cover into it, and keeps what it made."""

    def __init__(self, settings: Settings, store: Store, upstream: Upstream, quotas: Quotas):
        self._settings = settings
        self._config = settings.compaction
        self._store = store
        self._upstream = upstream
        self._quotas = quotas

    @property
    def lease(self) -> float:
        """How long the chat's summary claim holds unrenewed: one piece's call and save."""
        return self._settings.request_timeout + CLAIM_SLACK_SECONDS

    @asynccontextmanager
    async def claimed(self, chat: ChatRef, end: float) -> AsyncIterator[str]:
        """Hold the chat's summary claim (its token) for the block, and release it after; while
        another process holds it, wait, until `end` (then UpstreamTimeout)."""
        token, wait = uuid.uuid4().hex, POLL_SECONDS[0]
        while not await self._store.claim_summary(chat, token, self.lease):
            left = end - time.monotonic()
            if left <= 0:
                raise UpstreamTimeout("the chat's summary was not made in time")
            await asyncio.sleep(min(wait, left))
            wait = min(2 * wait, POLL_SECONDS[1])
        try:
            yield token
        finally:
            await self._store.release_summary(chat, token)

    async def summarize(
        self, chat: ChatRef, through: int, token: str, end: float = 0
    ) -> list[Summary]:
        """Fold what the newest summary on the path ending at `through` does not cover into
        it, under the claim `token` holds (`claimed`); return the summaries kept (one per
        piece), by `end` if set (a waiting turn's)."""
        found = await self._unsummarized(chat, through)
        summary, unread = found.summary, found.unread
        made: list[Summary] = []
        for run in pieces(found.messages, self._room, self._beyond(summary)):
            if made and not await self._store.claim_summary(chat, token, self.lease):
                break  # its lease ran out and another process took it: that one goes on
            await self._quotas.check_budget(chat.tenant)  # TokenBudgetExhausted: none made
            summary = await self._fold(chat, summary, run, end, unread)
            unread = unread and not run  # told beside the first messages read
            if not await self._store.save_summary(chat, summary, found.fence):
                break
            made.append(summary)
        return made

    async def _unsummarized(self, chat: ChatRef, through: int) -> Unsummarized:
        """What a fold through `through` reads: at most FOLD_ITEMS messages up from it, after
        the newest summary on the path, met however far above them it lies (each read passes
        at most SEEK_ITEMS items, reading none), so that what that summary holds is kept."""
        found = await self._store.load_unsummarized(chat, through, FOLD_ITEMS, SEEK_ITEMS)
        above = found.above
        while above is not None:
            try:
                on = await self._store.load_unsummarized(chat, above, 0, SEEK_ITEMS)
            except NotFound:  # trimmed (or deleted) meanwhile: none above; the save is fenced
                break
            if on.summary is not None:
                return replace(found, summary=on.summary, unread=True)
            above = on.above
        return found

    @property
    def _room(self) -> int:
        """The tokens of messages one summary call may read: COMPACTION_MODEL's context (taken
        to be CONTEXT_TOKENS) less the prompt, the summary so far and the summary it writes."""
        reserved = estimate_tokens(PROMPT) + 2 * self._config.summary_tokens + SLACK_TOKENS
        return max(self._settings.context_tokens - reserved, 1)

    def _beyond(self, summary: Summary | None) -> int:
        """The tokens a summary so far takes beyond COMPACTION_SUMMARY_TOKENS (one kept under
        other settings, or imported), of the first piece's room: at most all of it."""
        if summary is None:
            return 0
        over = estimate_tokens(summary.content) - self._config.summary_tokens
        return min(max(over, 0), self._room)

    async def _fold(
        self,
        chat: ChatRef,
        summary: Summary | None,
        run: Sequence[Message],
        end: float,
        unread: bool = False,
    ) -> Summary:
        """`summary` with `run` folded in (`unread`: messages between them were not read); its
        tokens count once the model answers (any way)."""
        most = self._room * CHARS_PER_TOKEN  # a message's; a summary so far has its own too
        ample = most + self._config.summary_tokens * CHARS_PER_TOKEN
        text = transcript(summary, run, most, unread, ample)
        messages = [{"role": "system", "content": PROMPT}, {"role": "user", "content": text}]
        deadline = end or time.monotonic() + self._settings.request_timeout
        asked = self._upstream.complete(
            messages,
            model=self._config.model,
            max_tokens=self._config.summary_tokens,
            deadline=deadline,
        )
        completion = await self._quotas.counting_lost(chat.tenant, messages, asked)
        await self._quotas.spend(chat.tenant, completion.usage.get("total_tokens", 0))
        if not (completion.content or "").strip():
            raise UpstreamBadResponse("the summary came back empty")
        ids = [m.id or 0 for m in run] or [summary.last if summary else 0]  # none: it alone
        return Summary(
            summary.first if summary else ids[0],
            ids[-1],
            (completion.content or "").strip(),
            model=completion.model,
            usage=completion.usage,
        )

"""Own when a chat's due summary is made (`compaction.py` owns what compaction is and when a
summary falls due, `folding.py` how one is made): `Compactor`, one per process.

- **Off the reply's path.** A due summary is made after the turn is stored, in a task of its own
  (`after_save`), one at a time per chat; only a turn that may not leave history out and does
  not fit whole has it made first (`outgoing.SummaryDue`), once the one being made ends, from
  what that one kept (`summary_for_turn`). A failure in the background is logged, without any
  text, and the window leaves the messages out meanwhile, as without compaction; the next turn
  tries again.
- **One at a time.** In a process, a summary being made is an event that the others wait for;
  across processes, the chat's summary claim (`Folder.claimed`), which a summary made elsewhere
  holds: a turn waits for it as long as for one made here, to its deadline, and a summary in
  the background for at most one lease (a holder that died has freed it by then); then each
  folds on from what that one kept, or gives up (the next turn tries again).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from contextvars import Context, copy_context
from dataclasses import replace
from typing import Any

from chatproxy.config import Settings
from chatproxy.errors import ProxyError
from chatproxy.service.compaction import READ_FACTOR, compacting, due_through
from chatproxy.service.folding import Folder
from chatproxy.service.quotas import Quotas
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef, ChatState, Message
from chatproxy.store.summary import Summary
from chatproxy.upstream.base import Upstream
from chatproxy.upstream_errors import UpstreamTimeout

log = logging.getLogger(__name__)

MAX_REMEMBERED = 4096  # chats known to compact, and summaries due, kept per process


class Compactor:
    """Plans each window's compaction and makes due summaries in the background."""

    def __init__(self, settings: Settings, store: Store, upstream: Upstream, quotas: Quotas):
        self._settings = settings
        self._config = settings.compaction
        self._store = store
        self._folder = Folder(settings, store, upstream, quotas)
        self._known: dict[ChatRef, None] = {}  # chats seen compacting (with COMPACTION=off)
        self._due: dict[ChatRef, int] = {}
        self._running: dict[ChatRef, asyncio.Event] = {}  # set once that summary is made
        # due while one was being made: made after it, in the context of the turn that made it
        # due (its log lines name that request)
        self._next: dict[ChatRef, tuple[int, Context]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    def read_limit(self, chat: ChatRef, most: int, asked: bool = False) -> int:
        """How many messages a turn of `chat` reads, given MESSAGES_LENGTH (see the module);
        `asked`: the turn asks for compaction itself."""
        if asked or self._config.mode == "summary" or chat in self._known:
            return most * READ_FACTOR
        return most

    async def widen(
        self, chat: ChatRef, state: ChatState, read: int, wide: int, at: int | None
    ) -> ChatState:
        """`state` (read `read`), read `wide` for a chat its own setting compacts (`_known`)."""
        whole = len(state.messages) < read  # the path read to its first message
        if whole or read >= wide or not compacting(self._settings, state.settings):
            return state
        again = await self._store.load_window(chat, wide, leaf=at)
        return replace(state, messages=again.messages, summary=again.summary)

    def plan(
        self,
        chat: ChatRef,
        on: bool,
        read: Sequence[Message],
        sent: Sequence[Message],
        summary: Summary | None,
        asked: int | None = None,
        whole: bool = False,
        dropped: Summary | None = None,
    ) -> None:
        """Note whether the window of this turn (`on`: of a compacted chat) makes a summary
        due (made by `after_save`); `asked`: the turn holds its history to that many tokens
        itself, and a summary falls due at that many left out, if below COMPACTION_THRESHOLD;
        `dropped`: the path's summary, left out for its size (`compaction.due_through`)."""
        if not on:
            self._due.pop(chat, None)
            return
        _remember(self._known, chat)
        threshold = min(self._config.threshold, asked or self._config.threshold)
        through = due_through(read, sent, summary, threshold, whole, dropped)
        if through is None:
            self._due.pop(chat, None)
        else:
            _remember(self._due, chat, through)

    def after_save(self, chat: ChatRef) -> None:
        """Start the summary the chat's stored turn made due; while one is being made, the
        newest due is made once it ends (a chat whose turns stop still gets it)."""
        through = self._due.pop(chat, None)
        if through is None:
            return
        if chat in self._running:
            _remember(self._next, chat, (through, copy_context()))
            return
        self._start(chat, through)

    def _start(self, chat: ChatRef, through: int, context: Context | None = None) -> None:
        self._running[chat] = asyncio.Event()
        made = self._summarize(chat, through)
        task = asyncio.get_running_loop().create_task(made, context=context)
        self._tasks.add(task)  # the loop keeps only a weak reference to a task
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop summaries still being made (the next turn of their chats makes them again)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _summarize(self, chat: ChatRef, through: int) -> None:
        started = time.monotonic()
        try:
            async with self._folder.claimed(chat, started + self._folder.lease) as token:
                made = len(await self._folder.summarize(chat, through, token))
        except ProxyError as error:
            log.warning(
                "compaction: no summary made, the window leaves messages out (%s)",
                type(error).__name__,
            )
        except Exception:
            log.exception("compaction: no summary made, the window leaves messages out")
        else:
            log.info("compaction: %d summaries made in %.2f s", made, time.monotonic() - started)
        finally:
            self._ended(chat)

    def _ended(self, chat: ChatRef) -> None:
        """The chat's summary being made ended (made or not): wake the turns waiting for it,
        and start the one that fell due meanwhile."""
        self._running.pop(chat).set()
        later = self._next.pop(chat, None)
        if later is not None and not self._closed:
            self._start(chat, *later)

    async def summary_for_turn(
        self,
        chat: ChatRef,
        through: int,
        ends: Sequence[int],
        end: float,
        stale: Summary | None = None,
    ) -> Summary | None:
        """The summary a turn that may not leave history out needs before its call, by its
        deadline `end`: one through `through`, or through a later item of its path (`ends`,
        through included). A summary of the chat being made (in the background, or for another
        turn; in this process or another) is waited for first, and what it kept is used, as it
        is or folded on from: the turn does not pay again for what that one folded. `stale`: a
        summary kept through `through` that the turn's window cannot hold (kept for a larger
        one), folded again rather than used, unless that was done meanwhile. None: none could
        be kept."""
        while True:
            await self._made(chat, end)
            if (kept := await self._kept(chat, ends, stale)) is not None:
                return kept
            if chat not in self._running:  # none began while the store was read
                break
        self._running[chat] = asyncio.Event()
        try:
            async with self._folder.claimed(chat, end) as token:  # once another process's ends
                if (kept := await self._kept(chat, ends, stale)) is not None:  # kept by it
                    return kept
                made = await self._folder.summarize(chat, through, token, end)
        finally:
            self._ended(chat)
        return made[-1] if made else None

    async def _kept(
        self, chat: ChatRef, ends: Sequence[int], stale: Summary | None
    ) -> Summary | None:
        """The summary kept through the latest of `ends` that has one (ids grow along a path:
        the widest), unless that is `stale`."""
        kept = await self._store.load_summaries(chat, ends)
        newest = kept[max(kept)] if kept else None
        return newest if newest != stale else None

    async def _made(self, chat: ChatRef, end: float) -> None:
        """Wait, until `end`, for the chat's summaries being made to end (UpstreamTimeout)."""
        while (making := self._running.get(chat)) is not None:
            try:
                await asyncio.wait_for(making.wait(), max(end - time.monotonic(), 0))
            except TimeoutError:
                raise UpstreamTimeout("the chat's summary was not made in time") from None


def _remember(kept: dict[ChatRef, Any], chat: ChatRef, value: Any = None) -> None:
    """Keep `chat` (newest last), forgetting the oldest beyond MAX_REMEMBERED."""
    kept.pop(chat, None)
    kept[chat] = value
    if len(kept) > MAX_REMEMBERED:
        del kept[next(iter(kept))]

"""Own the chat windows a process already has, so that Redis does not send them again.

A turn reads its chat's newest messages (MESSAGES_LENGTH) and then appends two; the next turn of
the chat reads the same messages again, less the oldest two, plus the two it wrote: a large part
of a turn's work in Redis, and several kilobytes on the wire to a hosted Redis. So the Redis
store remembers, per chat, the newest stored texts as its own last save left them and the turn
id of that save. The next turn sends that id; if the chat's `last_turn` still is that id, the
script answers how many of the newest messages the window holds instead of the messages.

Why that is safe (tests/test_known_windows.py drives each case against a real Redis): a chat's
messages change only by a save, which sets `last_turn` to its own turn id, by a delete of items
(`delete_items`), which removes `last_turn`, or all at once with the whole chat (delete, expiry:
the messages and the hash expire together), which removes `last_turn` too. Only ids of this
process's own saves of a turn it began are remembered, and those are random (16 bytes): no other
write can leave one behind. Between a turn's read and its save, every other writer of the chat's
messages waits for its turn lock (a delete of items refuses to run while it is held), but a fork
and a delete of the whole chat. A fork (`begin_turn(reserve=…)`) adds only its own items, on ids
set aside for it and under an item it names, so the turn's path stays as it read it, and its own
save moves the leaf back to its reply. After a delete of the whole chat the save leaves only its
own messages, the newest of those remembered. A save that trims the oldest messages
(MAX_MESSAGES), the turn's or a fork's, leaves the newest ones too, and the script counts the
window on the list as it is.

A fork (a response that continues another, `begin_turn(reserve=…)`) holds no lock, so any
writer may come between its read and its save. Its save is remembered only if the chat's
`last_turn` it found was still the one its read saw (`seen`, never none: a delete of items
removes it), so nothing was written in between, and it goes under the read's last item: the
path to that item is then as read, and the fork's messages follow it. A chain of responses,
each continuing the one before in one process, is then read from the known window too.

Bounded like `DecodedMessages`: when the chats or characters kept would pass their bounds,
everything is forgotten at once (the next turns read their windows from Redis again).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from typing import NamedTuple

from chatproxy.store.items import ChatRef


class Window(NamedTuple):
    """A chat's newest stored texts of a path as this process last read or wrote them: `limit`
    is how many the turn asked for, `turn` the id of the save that left them (None for a read,
    which is not trusted later), `token` the turn lock they were read under, `chars` their
    length, `whole` whether they are the whole path, `seen` the chat's last turn when read."""

    raws: tuple[str, ...]
    limit: int
    turn: str | None
    token: str | None
    chars: int
    whole: bool  # the raws are the whole path
    seen: str | None = None


ITEM_ID = re.compile(r'\{"id":(\d+),')


def item_id(raw: str) -> int:
    """The id at the start of a stored item's text (`Message.dumps`)."""
    found = ITEM_ID.match(raw)
    if found is None:
        raise ValueError("a stored item starts with its id")
    return int(found.group(1))


class KnownWindows:
    """Windows by chat (thread-safe)."""

    def __init__(self, max_chats: int, max_chars: int):
        self._max_chats = max_chats
        self._max_chars = max_chars
        self._windows: dict[ChatRef, Window] = {}
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, chat: ChatRef) -> Window | None:
        """The chat's window, if kept."""
        return self._windows.get(chat)

    def usable(self, chat: ChatRef, limit: int, at: int | None = None) -> Window | None:
        """The chat's window, if kept and it holds a read of `limit` items of the path ending
        at `at` (None: the leaf, as the script checks): as many, or the whole path. Of a path
        ending at a given item, only the one to the window's own last item is known."""
        window = self._windows.get(chat)
        if window is None or window.turn is None:
            return None
        if at is not None and (not window.raws or item_id(window.raws[-1]) != at):
            return None
        return window if len(window.raws) >= limit or window.whole else None

    def read(
        self, chat: ChatRef, token: str, raws: Sequence[str], limit: int, seen: str | None = None
    ) -> None:
        """Keep the window a turn read under the lock `token` (a fork's: its token, without a
        lock), when the chat's last turn was `seen`, for its save."""
        kept = tuple(raws)
        whole = len(kept) < limit
        self._put(chat, Window(kept, limit, None, token, sum(map(len, kept)), whole, seen))

    def saved(
        self,
        chat: ChatRef,
        token: str,
        turn_id: str,
        raws: Sequence[str],
        *,
        parent: int | None,
        first: int,
    ) -> None:
        """A save under `token` landed as `turn_id` with `raws`, the first under `parent`, and
        kept the items from id `first` on. Under the last item of the window read under that
        token (a turn at the leaf, or where the read ended), the chat's window is that read,
        then `raws`, less the items dropped, known by `turn_id`; under any other item (a `/v1`
        edit of a message inside the window read), the window is not known."""
        before = self._windows.get(chat)
        if before is None or before.token != token:
            return
        self._follow(chat, before, turn_id, raws, parent, first)

    def forked(
        self,
        chat: ChatRef,
        turn_id: str,
        raws: Sequence[str],
        *,
        parent: int | None,
        first: int,
        previous: str | None,
    ) -> None:
        """A save without the lock (a fork's) landed as `turn_id` with `raws`, the first under
        `parent`, kept the items from id `first` on, and found the chat's last turn `previous`.
        If the window kept is a read that saw that same last turn (nothing was written since),
        it is continued as `saved` continues one; else it is forgotten."""
        before = self._windows.get(chat)
        if before is None:
            return
        if before.turn is not None or before.seen is None or before.seen != previous:
            self.forget(chat)
            return
        self._follow(chat, before, turn_id, raws, parent, first)

    def _follow(
        self,
        chat: ChatRef,
        before: Window,
        turn_id: str,
        raws: Sequence[str],
        parent: int | None,
        first: int,
    ) -> None:
        """Continue the window read `before` with a save's `raws` under `parent`."""
        if parent != (item_id(before.raws[-1]) if before.raws else None):
            self.forget(chat)
            return
        joined = before.raws + tuple(raws)
        kept = joined
        if joined and item_id(joined[0]) < first:  # ids grow along a path: the oldest tells
            kept = tuple(raw for raw in joined if item_id(raw) >= first)
        newest = kept[-before.limit :] if before.limit > 0 else ()
        trimmed = len(kept) < len(joined) and len(kept) <= before.limit
        whole = trimmed or (before.whole and len(joined) <= before.limit)
        chars = sum(map(len, newest))
        self._put(chat, Window(newest, before.limit, turn_id, None, chars, whole))

    def forget(self, chat: ChatRef) -> None:
        """Drop the chat's window."""
        with self._lock:
            window = self._windows.pop(chat, None)
            if window is not None:
                self._chars -= window.chars

    def _put(self, chat: ChatRef, window: Window) -> None:
        chars = window.chars
        with self._lock:
            old = self._windows.pop(chat, None)
            if old is not None:
                self._chars -= old.chars
            if len(self._windows) >= self._max_chats or self._chars + chars > self._max_chars:
                self._windows.clear()
                self._chars = 0
                if chars > self._max_chars:
                    return
            self._windows[chat] = window
            self._chars += chars

    def __len__(self) -> int:
        return len(self._windows)

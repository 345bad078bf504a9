"""Own the chat windows a process already has, so that Redis does not send them again.

A turn reads its chat's newest messages (MESSAGES_LENGTH) and then appends two; the next turn of
the chat reads the same messages again, less the oldest two, plus the two it wrote: a large part
of a turn's work in Redis, and several kilobytes on the wire to a hosted Redis. So the Redis
store remembers, per chat, the newest stored texts as its own last save left them and the turn
id of that save. The next turn sends that id; if the chat's `last_turn` still is that id, the
script answers how many of the newest messages the window holds instead of the messages.

Why that is safe (tests/test_known_windows.py drives each case against a real Redis): a chat's
messages change only by a save, which sets `last_turn` to its own
turn id, or all at once with the whole chat (delete, expiry: the messages and the hash expire
together), which removes `last_turn`. Only ids of this process's own saves of a turn it began
are remembered, and those are random (uuid4), so no other write can leave one behind. Between a
turn's read and its save, every other writer of the chat's messages waits for its turn lock, but
a delete: after one, the save leaves only its own messages, the newest of those remembered. A
save that trims the oldest messages (MAX_MESSAGES) leaves the newest ones too, and the script
counts the window on the list as it is.

Bounded like `DecodedMessages`: when the chats or characters kept would pass their bounds,
everything is forgotten at once (the next turns read their windows from Redis again).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

from chatproxy.store.base import ChatRef


class Window(NamedTuple):
    """A chat's newest stored texts as this process last read or wrote them: `limit` is how
    many the turn asked for, `turn` the id of the save that left them (None for a read, which is
    not trusted later), `token` the turn lock they were read under, `chars` their length."""

    raws: tuple[str, ...]
    limit: int
    turn: str | None
    token: str | None
    chars: int


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

    def read(self, chat: ChatRef, token: str, raws: Sequence[str], limit: int) -> None:
        """Keep the window a turn read under the lock `token`, for its save."""
        kept = tuple(raws)
        self._put(chat, Window(kept, limit, None, token, sum(map(len, kept))))

    def saved(self, chat: ChatRef, token: str, turn_id: str, raws: Sequence[str]) -> None:
        """A save under `token` landed as `turn_id` with `raws`: the chat's window is the one
        read under that token, then `raws`, and is known by `turn_id`."""
        before = self._windows.get(chat)
        if before is None or before.token != token:
            return
        newest = (before.raws + tuple(raws))[-before.limit :] if before.limit > 0 else ()
        self._put(chat, Window(newest, before.limit, turn_id, None, sum(map(len, newest))))

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

"""Own the decoding of stored messages, and a store's memory of messages it decoded before.

A turn reads its chat's newest messages (MESSAGES_LENGTH), all but the last turn's two of which
the turn before read too. `DecodedMessages` keeps the messages of turns' windows by their stored
text, so the next turn decodes only what is new. A stored entry never changes once written and
the key is the whole entry, so what a look-up finds is always that entry's decoding; messages are
frozen. tests/test_decoding.py checks these properties.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from chatproxy.jsontext import parse
from chatproxy.store.items import Message


def decode_messages(raws: Sequence[str], places: Sequence[int] = ()) -> list[Message]:
    """Parse stored messages (each one JSON object written by `Message.dumps`); a damaged one
    raises ValueError naming its place (its number in `places`, else in `raws`).

    The entries are parsed in one go (one parse of the joined entries costs less than one per
    entry); if that is not one object per entry, they are parsed one by one, which names the
    damaged one. (Entries crafted to parse differently together than apart need write access to
    the store, which could write any messages anyway.)"""
    try:
        parsed = parse(f"[{','.join(raws)}]")
    except ValueError:
        parsed = None
    if (
        not isinstance(parsed, list)
        or len(parsed) != len(raws)
        or not all(isinstance(data, dict) for data in parsed)
    ):
        numbers = places or range(len(raws))
        parsed = [_stored_object(raw, n) for n, raw in zip(numbers, raws, strict=True)]
    return [Message.from_json(data) for data in parsed]


class DecodedMessages:
    """Messages already decoded, by their stored text (thread-safe).

    Bounded by entries and by characters: when either would pass its bound, everything is
    forgotten at once (the next reads decode again)."""

    def __init__(self, max_entries: int = 4096, max_chars: int = 2_000_000):
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._entries: dict[str, Message] = {}
        self._chars = 0
        self._lock = threading.Lock()

    def decode(self, raws: Sequence[str], *, keep: bool = False) -> list[Message]:
        """Decode stored messages, those kept taken from memory; with `keep`, remember the
        ones decoded here. A damaged entry raises ValueError naming its place in `raws`."""
        found = self.get_many(raws)
        places = [n for n, message in enumerate(found) if message is None]
        if not places:
            return found  # type: ignore[return-value]  # no None in it
        missing = [raws[n] for n in places]
        new = decode_messages(missing, places)
        if keep:
            self.remember(missing, new)
        fill = iter(new)
        return [message or next(fill) for message in found]

    def get_many(self, raws: Sequence[str]) -> list[Message | None]:
        """The decoded message of each entry, None for those not kept."""
        get = self._entries.get
        return [get(raw) for raw in raws]

    def remember(self, raws: Sequence[str], messages: Sequence[Message]) -> None:
        """Keep `messages` as the decodings of `raws` (the same length; each message's `dumps`
        is its entry)."""
        chars = sum(map(len, raws))
        with self._lock:
            if (
                len(self._entries) + len(raws) > self.max_entries
                or self._chars + chars > self.max_chars
            ):
                self._entries.clear()
                self._chars = 0
                if len(raws) > self.max_entries or chars > self.max_chars:
                    return
            self._entries.update(zip(raws, messages, strict=True))
            self._chars += chars

    @property
    def chars(self) -> int:
        """The characters of the entries kept."""
        return self._chars

    def __len__(self) -> int:
        return len(self._entries)


def _stored_object(raw: str, n: int) -> dict[str, Any]:
    """Parse entry `n` of a chat's stored messages, which must be one JSON object."""
    try:
        data = parse(raw)
    except ValueError as exc:
        raise ValueError(f"stored message {n} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"stored message {n} is not a JSON object")
    return data

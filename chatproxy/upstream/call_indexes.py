"""Own the one rule for the tool-call deltas of an upstream's stream: each call at an index of
its own, its id in its first delta only, as OpenAI's stream numbers them.

Clients merge a stream's tool-call deltas by their index (strings joined, an `id` too), and so
do the proxy's own readers of a stream: the reply it stores (`stream.ReplyParts`), the Responses
events and the `/v1` chunks. Some OpenAI-compatible servers send every call of a reply at
index 0, told apart by their ids only, and some repeat a call's id in each of its deltas; each
chunk is renumbered once, as it is read (`ReplyParts.add`), so that every reader sees OpenAI's
shape and none has a rule of its own.
"""

from __future__ import annotations

import copy
from typing import Any

JsonObject = dict[str, Any]


class CallIndexes:
    """The tool-call deltas of one stream's chunks as OpenAI's come. A delta that names a
    call that came before goes to that call's index, without the id (some servers repeat it in
    each delta, or go back to an earlier call at an index another call took since); one that
    names a new call, at an index another call has, starts a call at the next free index
    (some servers send every call at index 0). A delta without an id goes to the newest call
    that came at its index. A chunk none of whose deltas changes is returned as it came
    (OpenAI's chunks, and every chunk without tool calls)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[Any, int], str | None] = {}  # (choice, index sent): the call's id
        self._named: dict[tuple[Any, str], int] = {}  # (choice, a call's id): its index sent
        # (choice, index that came): the index sent of the newest call that came at it
        self._moved: dict[tuple[Any, int], int] = {}

    def renumbered(self, chunk: JsonObject) -> JsonObject:
        """`chunk`, or a copy of it with its deltas changed as the class says."""
        pieces = _call_pieces(chunk)
        if not pieces:
            return chunk
        sent = [self._index(choice, call["index"], call.get("id")) for choice, call in pieces]
        if all(
            n == call["index"] and not again
            for (_, call), (n, again) in zip(pieces, sent, strict=True)
        ):
            return chunk
        chunk = copy.deepcopy(chunk)
        for (_, call), (n, again) in zip(_call_pieces(chunk), sent, strict=True):
            call["index"] = n
            if again:
                del call["id"]
        return chunk

    def _index(self, choice: Any, index: int, call_id: Any) -> tuple[int, bool]:
        """The index a delta of the call at `index` (of the choice `choice`) is sent at, and
        whether it repeats its call's id."""
        call_id = call_id if isinstance(call_id, str) and call_id else None
        named = self._named.get((choice, call_id)) if call_id else None
        if named is not None:  # a call that came before: where it went, wherever it comes now
            self._moved.setdefault((choice, index), named)
            return named, True
        sent = self._moved.get((choice, index))
        known = self._ids.get((choice, sent)) if sent is not None else None
        if sent is None or (call_id and known is not None):  # a new call
            taken = [n for c, n in self._ids if c == choice]
            sent = index if sent is None and index not in taken else max(taken) + 1
            self._moved[choice, index] = sent
            known = None
        if known is None:  # the call's first delta, or the first to name it
            self._ids[choice, sent] = call_id
            if call_id:
                self._named[choice, call_id] = sent
        return sent, False


def _call_pieces(chunk: JsonObject) -> list[tuple[Any, JsonObject]]:
    """The tool-call deltas of a chunk that have an index, each with its choice's index (a
    list, not a generator: most chunks have none, and are read once each)."""
    pieces: list[tuple[Any, JsonObject]] = []
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        calls = delta.get("tool_calls") if isinstance(delta, dict) else None
        if not isinstance(calls, list):  # most chunks: text, or the end
            continue
        for call in calls:
            if isinstance(call, dict) and type(call.get("index")) is int:
                pieces.append((choice.get("index"), call))
    return pieces

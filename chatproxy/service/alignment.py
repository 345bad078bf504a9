"""Own how a resent history is aligned with a stored path, message units compared: pure, linear.

Both sides are lists of units (`units`): a message, or a run of tool results taken as a set (any
order). A fit says that the request's units from `request` on agree with the stored ones from
`stored` on, for `length` units. `fits` finds them, earliest first:

- a fit that starts the request inside the path (`request == 0`): a client that resends from
  somewhere in the path, or cut its history; its first unit may be part of a stored run (a cut
  inside the run);
- when the path's oldest messages were dropped (MAX_CHAT_MESSAGES), also a fit that starts the
  path inside the request (`stored == 0`): the request's units before it were dropped, which
  makes it earlier than any fit of the first kind (it starts before the path); the path's first
  unit may be part of the request's run.

Keys are interned as numbers, so what follows compares numbers, each pairing once at most (the
Z-algorithm). `align` chooses among the fits of a request's messages on a stored path, as
`placement`'s docstring states the rule, and says where the messages after the fit go;
`align_elided` does the same for a history that left out the model's messages, on the path's
other messages.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any, NamedTuple

from chatproxy.service.message_keys import Key, message_key, sent_content
from chatproxy.store.items import ROOT, Message


class Unit(NamedTuple):
    """A unit's key, then where its messages start and end."""

    key: Key
    start: int
    end: int


class Fit(NamedTuple):
    """The request's units from `request` on agree with the stored ones from `stored` on."""

    stored: int
    request: int
    length: int


def units(keys: list[Key]) -> list[Unit]:
    """Group messages into the units matching compares: a run of tool results is one unit,
    its results in any order; every other message is a unit of its own."""
    found: list[Unit] = []
    start = 0
    while start < len(keys):
        end = start + 1
        key = keys[start]
        if key[0] == "tool":
            while end < len(keys) and keys[end][0] == "tool":
                end += 1
            key = ("tools", tuple(sorted(keys[start:end], key=lambda k: str(k[3]))))
        found.append(Unit(key, start, end))
        start = end
    return found


def fits(request: list[Unit], stored: list[Unit], trimmed: bool) -> list[Fit]:
    """The fits of the request on the stored path that agree on a unit at least, earliest first
    (`trimmed`: the path's oldest messages were dropped, so the request may start before it)."""
    found: list[Fit] = []
    if trimmed:
        before = match_lengths(stored, request)
        found = [Fit(0, j, before[j]) for j in range(len(request) - 1, -1, -1) if before[j]]
    lengths = match_lengths(request, stored)
    return found + [Fit(s, 0, n) for s, n in enumerate(lengths) if n]


def match_lengths(pattern: list[Unit], text: list[Unit]) -> list[int]:
    """For each unit of `text`, how many units of `pattern` agree with its units from there on
    (the pattern's first unit, a run of results, may be part of the run it meets).

    Each key is hashed once and interned as a number (equal keys, one number), so the
    comparisons that follow are of numbers, and the Z-algorithm makes them linear."""
    codes: dict[Hashable, int] = {}
    ours = [codes.setdefault(unit.key, len(codes)) for unit in pattern]
    theirs = [codes.setdefault(unit.key, len(codes)) for unit in text]
    lead = pattern[0].key if pattern else ()
    if lead[:1] != ("tools",):
        return prefix_lengths(ours, theirs)
    rest = [*prefix_lengths(ours[1:], theirs), 0]
    results = set(lead[1])
    return [
        1 + rest[s + 1] if unit.key[0] == "tools" and results <= set(unit.key[1]) else 0
        for s, unit in enumerate(text)
    ]


def prefix_lengths(pattern: list[int], text: list[int]) -> list[int]:
    """For each position of `text`, the length of the longest prefix of `pattern` there."""
    seq = [*pattern, -1, *text]
    z = [0] * len(seq)
    left = right = 0
    for i in range(1, len(seq)):
        if i < right:
            z[i] = min(right - i, z[i - left])
        while i + z[i] < len(seq) and seq[z[i]] == seq[i + z[i]]:
            z[i] += 1
        if i + z[i] > right:
            left, right = i, i + z[i]
    return z[len(pattern) + 1 :]


Aligned = tuple[int | None, int, bool, int]


def align(
    path: Sequence[Message],
    convo: Sequence[Mapping[str, Any]],
    complete: bool,
    anchored: bool,
    cut: bool | None = None,
) -> Aligned | None:
    """Align the request with the path, normalised: return the parent, where on the path it
    ends (one past it), whether it is a branch, and where the new messages start; None: need
    the whole path (`complete`: `path` is the whole path, which may start at a message whose
    parent was dropped, `cut` unless given: then the request may start before it)."""
    stored = units([message_key(m.role, m.content, m.tool_calls, m.tool_call_id) for m in path])
    request = units(
        [
            message_key(m["role"], sent_content(m), m.get("tool_calls"), m.get("tool_call_id"))
            for m in convo
        ]
    )
    if cut is None:
        cut = bool(path) and path[0].parent is not None
    found = fits(request, stored, cut and complete)
    size = len(stored)
    last_assistant = max((i for i, u in enumerate(request) if u.key[0] == "assistant"), default=-1)
    # A fit that reaches the leaf and adds no assistant message: a resend, decided in the
    # window (every such fit that starts the request inside the path lies in it).
    fit = next(
        (f for f in found if f.stored + f.length == size and f.request + f.length > last_assistant),
        None,
    )
    if fit is None and cut and not complete:
        return None
    if fit is None:  # an edit, a regenerate, or a history of its own: the longest agreement
        fit = max(found, key=lambda f: f.length, default=None)
    if fit is None and path and last_assistant >= 0 and not anchored:
        return ROOT, 0, True, 0
    if fit is None:  # user messages only, or anchored: nothing to keep apart, so at the leaf
        return None, len(path), False, 0
    end = fit.request + fit.length
    at = request[end].start if end < len(request) else len(convo)
    last = stored[fit.stored + fit.length - 1].end  # one past the last message that fits
    return path[last - 1].id, last, fit.stored + fit.length < size, at


def align_elided(
    path: Sequence[Message], convo: Sequence[Mapping[str, Any]], complete: bool, anchored: bool
) -> Aligned | None:
    """Align a history that left out the model's items (none of `convo` is an assistant
    message) with the path's other messages, as `align` does. What follows the last match goes
    after the model's items that follow it on the path (at the leaf when the match reaches the
    path's newest message); a history that ends on a match asks again for a reply to it."""
    theirs = [m for m in path if m.role != "assistant"]
    found = align(theirs, convo, complete, anchored, bool(path) and path[0].parent is not None)
    if found is None or found[0] is None:  # the whole path is needed; or at the leaf
        return None if found is None else (None, len(path), False, found[3])
    parent, _, _, at = found  # not ROOT: that is for a history with the model's messages
    end = next(n for n, m in enumerate(path) if m.id == parent) + 1
    while at < len(convo) and end < len(path) and path[end].role == "assistant":
        end += 1
    return path[end - 1].id, end, end < len(path), at

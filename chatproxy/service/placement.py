"""Own where a chat-mode request's messages go in the chat's tree: a pure decision, no I/O, but
for `place_ask`, which places a turn's ask and reads the whole path when its window is not enough.

`place_request(path, sent)` checks a request's `messages` against the newest messages of the
chat's path and says which are new and under which stored message they go. Leading `system` or
`developer` messages are this turn's system prompt (joined by a blank line), never stored.

- **Only new messages** (no assistant message, at most one user message) go under the current
  leaf, as always: `[user "hi"]`; `[tool call_1, tool call_2]` or `[tool call_1, user "and?"]`
  when the leaf is the assistant message that made those calls. (So a client that edits a
  chat's first message, and resends only that, adds it at the leaf: an edit needs history.)
- **A resent history** (an assistant message, or two user messages) is matched with the stored
  path, and what matches is not stored again. On the path `A, B`, LangChain's `[system, user A,
  assistant B, user C]` stores `C` under `B`; so does `[assistant B, user C]` (a client that
  cut its history: the request may start anywhere in the path).
- **An edit**: `[user A, assistant B, user C2]` on `A, B, C, D` stores `C2` under `B`, beside
  `C`. **Regenerate**: `[user A, assistant B, user C]` on it stores nothing; the reply goes under
  `C`, beside `D`.
- **Nothing in common**: `[user X, assistant Y, user Z]` on `A, B` stores all three on a new
  path from the root (`ROOT`). A client that brings its own history to a chat id keeps it, and
  the old path stays in the tree; a 400 would make the client throw its history away. User
  messages alone (`[user X, user Y]`) that match nothing go under the current leaf, and so does
  an `anchored` request's history (a Responses request names where its input goes).
- **A path whose oldest messages were dropped** (MAX_CHAT_MESSAGES): the client still resends
  them, so the request may also start before the path. On `C, D` (`A, B` dropped), `[user A,
  assistant B, user C, assistant D, user E]` stores `E` under `D`, as on `A, B, C, D`; what
  comes before the path's first message is taken as dropped, not compared.
- **A history without the model's messages** (`elided`: a Responses request that names a
  conversation, which holds them; the Vercel AI SDK leaves out all that has an item id): more
  than one message, none an assistant's, is aligned with the path's other messages, the
  user's and the tools' results (`alignment.align_elided`), as above. On `A, B, C, D`,
  `[user A, user C, user E]` stores `E` under `D`; `[user A, user C2]` stores `C2` under `B`;
  `[user A, user C]` asks again for the reply to `C`; `[user C, tool]` on `A, B, C, D(calls)`
  stores the result under `D`.

Where the request fits in several places, a fit that reaches the leaf with no assistant message
after it wins (the earliest: the most resent); else the longest agreement does (ties: the
earliest, as clients resend from the start), which needs the whole path: `place_request`
returns None when `path` does not start at a first message (load the whole path, ask again).
A fit that starts before a dropped path's first message is earlier than any other (see
`alignment`), and is looked for in the whole path only: a path shorter than the window asked for
(`placing.window_for`) is the whole path, as the store returns fewer only when it has no more.

Matching compares messages as `message_keys.message_key` normalises them (a string and one
text part are alike, tool-call arguments are JSON values, ...), and a run of tool results as a
set (any order); a request that starts inside a run matches the run it was cut from (and a path
whose start was dropped inside a run, the request's run). The common resend, exactly as stored,
is recognised with plain comparisons first; only a request that is not is normalised and
aligned, each message once (the Z-algorithm: linear).

A `ValidationFailed` names the message at fault (as `message_rules.Names` does: `messages[n]`,
or a Responses request's `input[n]`): one `check_messages` refuses, a result that answers no
pending call or one already answered, a call without a result before the next other message or
at the request's end (`tool_answers.py`; a conversation's items may have stored some results),
a request that does not end with a user message or tool results, with
`max_chars` a message over MAX_CONTENT_CHARS, a tool call that names a function (or a custom
tool) at more than MAX_CALL_NAME characters, and with `max_call_id` (a Responses request's) one
whose id is longer. Tool answers and lengths are checked in what the request adds only (lengths
in its system prompt too): what matches is stored and was checked then, or is the model's own
reply (MAX_TOKENS bounds it; another server's model may give a call a longer id or name than
OpenAI's API takes); what the path dropped is not sent. The leading messages that the ask
checked already, shapes and lengths, before the turn's claim (`checked`: its system prompt, or
all of its messages when they are only new; `placing.Ask.checked`) are not checked again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from chatproxy.errors import ValidationFailed
from chatproxy.service.alignment import align, align_elided
from chatproxy.service.content import prompt_end, system_text
from chatproxy.service.message_keys import sent_content
from chatproxy.service.message_rules import MESSAGES, Names, check_lengths, check_messages
from chatproxy.service.placing import (
    MAX_CALL_NAME,
    Ask,
    Kept,
    Placing,
    history_elided,
    only_new,
    place_turn,
    window_for,
)
from chatproxy.service.tool_answers import check_answers, waiting_after
from chatproxy.store.base import Store
from chatproxy.store.items import ROOT, ChatRef, ChatState, Message, chained


@dataclass(frozen=True)
class Placement:
    """Where a request's messages go: `new` (unplaced) under `parent`, then the reply.

    `parent` is None for the current leaf (nothing was resent, or the chat is empty), `ROOT`
    for a new path, else the stored message they go under (the leaf itself when a resent
    history continues it); `branch` says the reply will not continue the current path.
    `system` is the request's own system prompt, or None."""

    system: str | None
    parent: int | None
    new: list[Message]
    branch: bool = False


def place_request(
    path: Sequence[Message],
    sent: Sequence[Mapping[str, Any]],
    *,
    whole: bool = False,
    names: Names = MESSAGES,
    anchored: bool = False,
    max_chars: int | None = None,
    elided: bool = False,
    max_call_id: int | None = None,
    checked: int = 0,
) -> Placement | None:
    """Check a request's `messages` and place them on the chat's `path` (oldest first); a
    refusal names the message at fault as `names` does. An `anchored` request (a Responses
    request, which names where its input goes) whose history matches nothing goes at the end
    of `path`, not on a new path from the root. `max_chars` bounds the messages it adds, and
    `max_call_id` the ids of the tool calls they make (their names, always, to MAX_CALL_NAME).
    An `elided` request (a conversation's) may have left out the model's messages. The first
    `checked` messages of `sent` passed `check_messages` and, with `max_chars`,
    `check_lengths` already.

    Return None when the placement needs the whole path and `path` is only its newest part:
    load the path from its first message and call again with `whole` (see the module's
    docstring; a path whose oldest messages were dropped, MAX_CHAT_MESSAGES, starts below a
    first message)."""
    first = prompt_end(sent)
    check_messages(sent, checked, first, names)
    convo = sent[first:]
    # What is resent exactly as stored was checked when it came: only the rest is checked.
    resent = _resent_as_stored(path, convo)
    check_messages(sent, max(first + resent, checked), None, names)
    system = "\n\n".join(system_text(m["content"]) for m in sent[:first]) if first else None
    if not convo or convo[-1]["role"] not in ("user", "tool"):
        where = names.of(len(sent) - 1) if sent else names.whole
        raise ValidationFailed(
            f"{where}: the last message must be a user message or tool results, for the model"
            " to answer",
            param=where,
        )
    elided = history_elided(convo, elided)
    if only_new(convo) and not elided:
        check_answers(waiting_after(path, len(path)), convo, first, names)
        placement: Placement | None = Placement(system, None, [_to_message(m) for m in convo])
    else:  # a path shorter than the window the request needs is all the store holds: whole
        whole = whole or len(path) < window_for(sent, elided)
        how = (whole, anchored, elided)
        placement = _place_history(path, convo, (first, names), system, how, resent)
    if placement is not None:  # the new messages end the request
        added = range(len(sent) - len(placement.new), len(sent))
        if max_chars is not None:
            check_lengths(sent, max_chars, names, skip=range(first, added.start), start=checked)
        _check_calls(sent, added, max_call_id, names)
    return placement


def _check_calls(
    sent: Sequence[Mapping[str, Any]], added: range, max_call_id: int | None, names: Names
) -> None:
    """Refuse, in the messages `added` (the client's own calls: a call the model made is
    matched, whatever it holds), a tool call that names its function (or custom tool) at more
    than MAX_CALL_NAME characters or, with `max_call_id`, whose id is longer than that, naming
    it (`messages[1].tool_calls[0].function.name`, `input[1].call_id`)."""
    for n in added:
        for j, call in enumerate(sent[n].get("tool_calls") or ()):
            kind = call.get("type", "function")
            held = [(f".tool_calls[{j}].{kind}.name", call[kind]["name"], MAX_CALL_NAME)]
            if max_call_id is not None:
                held.append((f".tool_calls[{j}].id", call["id"], max_call_id))
            for field, text, most in held:
                if len(text) > most:
                    where = names.of_text(n, field)
                    raise ValidationFailed(
                        f"{where}: at most {most} characters, as OpenAI's API takes it",
                        param=where,
                    )


def _place_history(
    path: Sequence[Message],
    convo: Sequence[Mapping[str, Any]],
    named: tuple[int, Names],
    system: str | None,
    how: tuple[bool, bool, bool],
    resent: int,
) -> Placement | None:
    """Find where a resent history agrees with the stored path and place what follows
    (`resent`: how many of its messages are, exactly as stored, the path's newest; `named`:
    where `convo` starts in the request, and how its messages are named; `how`: whether `path`
    is whole, the request anchored, its history elided)."""
    first, names = named
    at = resent
    if at:
        parent, waiting, branch = path[-1].id, waiting_after(path, len(path)), False
    else:
        whole, anchored, elided = how
        found = (align_elided if elided else align)(path, convo, whole, anchored)
        if found is None:
            return None
        parent, end, branch, at = found
        waiting = waiting_after(path, end)
    check_answers(waiting, convo[at:], first + at, names)
    return Placement(system, parent, [_to_message(m) for m in convo[at:]], branch)


def _resent_as_stored(path: Sequence[Message], convo: Sequence[Mapping[str, Any]]) -> int:
    """Recognise the common resend with plain comparisons, before any normalising: the request
    up to its last assistant message is, exactly as stored, the newest part of a path that ends
    with an assistant message (so no fit can start earlier). Return its length, else 0."""
    k = next(
        (n + 1 for n in range(len(convo) - 1, -1, -1) if convo[n].get("role") == "assistant"), 0
    )
    if not k or k > len(path) or path[-1].role != "assistant":
        return 0
    same = all(
        m["role"] == p.role
        and m.get("content") == p.content
        and (m.get("tool_calls") or None) == p.tool_calls
        and m.get("tool_call_id") == p.tool_call_id
        for m, p in zip(convo[:k], path[len(path) - k :], strict=True)
    )
    return k if same else 0


def _to_message(message: Mapping[str, Any]) -> Message:
    """A request's message as an item to store, with the fields it came with."""
    return Message(
        role=message["role"],
        content=sent_content(message),
        tool_calls=message.get("tool_calls") or None,
        tool_call_id=message.get("tool_call_id"),
        name=message.get("name"),
    )


def place_sent(
    state: ChatState,
    path: Sequence[Message],
    placement: Placement,
    *,
    at: int | None = None,
    keep: Kept | None = None,
) -> Placing:
    """Place a `/v1` request as `placement` says, on `path`: the newest messages of the path
    that ends at `at` (None: the chat's leaf; `ROOT`: none), read under the turn's lock, as many
    as the placement saw. The reply keeps `keep` of its request."""
    if placement.parent is None:
        parent = state.leaf if at is None else None if at == ROOT else at
    else:
        parent = None if placement.parent == ROOT else placement.parent
    before = _up_to(path, parent)
    new = chained(placement.new, state.next_id, parent)
    # A request that ends on the stored path asks its last message again.
    history, asked = (before, new) if new else (before[:-1], before[-1:])
    reply_parent = new[-1].id if new else parent
    reply_id = state.next_id + len(new)
    return Placing(new, history, asked, reply_id, reply_parent, placement.system, keep)


def _up_to(path: Sequence[Message], parent: int | None) -> list[Message]:
    """The part of `path` that ends at `parent` (none for a new path)."""
    if parent is None:
        return []
    # The placement's parent is a message of the path it was given: this one.
    end = next(n for n in range(len(path) - 1, -1, -1) if path[n].id == parent)
    return list(path[: end + 1])


async def place_ask(store: Store, chat: ChatRef, state: ChatState, ask: Ask) -> Placing:
    """Place a turn (under its lock); a resent history that needs the whole path (that ends
    where the turn goes) to be placed reads it from `store`."""
    ask.check(state)
    if ask.sent is None:
        return place_turn(state, ask)
    path = state.messages
    place = partial(place_request, names=ask.names, anchored=ask.anchored, elided=ask.elided)
    place = partial(place, max_chars=ask.max_chars, max_call_id=ask.max_call_id)
    place = partial(place, checked=ask.checked)
    placement = place(path, ask.sent)
    if placement is None:
        path = (await store.load_history(chat, ask.at)).messages
        placement = place(path, ask.sent, whole=True)
        assert placement is not None  # a whole path is always enough
    return place_sent(state, path, placement, at=ask.at, keep=ask.keep)

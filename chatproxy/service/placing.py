"""Own where a turn's messages go in its chat's tree.

A turn asks (`Ask`) with a new user message, placed under the chat's current leaf, under a given
message (an edit is a new child of the edited message's parent), or before the first message
(`ROOT`: a new first message); or, with no message, asks the model again for the path that ends
at a given user message (a regeneration: the new reply is a sibling of the replies it has).
A chat-mode `/v1/chat/completions` request asks with the messages it sent (`Ask.sent`), which
`placement.place_request` matches with the stored path (and `placement.place_sent` places);
such an ask refuses when made (before the turn's claim and lock) what the request adds whatever
the chat holds over MAX_CONTENT_CHARS: its system prompt, and messages that are only new, which
the placement then does not check again (`Ask.checked`).
`place_turn` turns an ask and the window read under the turn's lock into a `Placing`: the
messages to store, what goes upstream after the history, and where the reply goes. A turn made
through `POST /v1/responses` also says what its reply keeps of the request (`Kept`), where
its input starts; a reply made by another API says where by its ids (`stored_with`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chatproxy.errors import NotFound, ValidationFailed
from chatproxy.service.content import prompt_end
from chatproxy.service.message_rules import MESSAGES, Names, check_lengths, check_messages
from chatproxy.store.items import ROOT, ChatState, Content, Message

MAX_CALL_ID = 64  # OpenAI's bound on a Responses item's `call_id`
MAX_CALL_NAME = 64  # OpenAI's bound on a function's name, which a call a client adds names


def window_for(sent: Sequence[Mapping[str, Any]], elided: bool = False) -> int:
    """How many of the path's newest messages `placement.place_request` needs to see first;
    twice as many for a history that may leave out the model's replies (`elided`: one for each
    message sent, in a chat without tools)."""
    return (2 if elided else 1) * len(sent) + 1


def only_new(sent: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a request's messages are only new: no assistant message and at most one user
    message (else they are a resent history, to be matched with the path)."""
    users = sum(1 for m in sent if m.get("role") == "user")
    return users <= 1 and not any(m.get("role") == "assistant" for m in sent)


def history_elided(sent: Sequence[Mapping[str, Any]], elided: bool) -> bool:
    """Whether a request's messages (after its system prompt) that may leave out the model's
    (`elided`: a conversation's) are such a history, aligned with the path's other messages:
    more than one, none an assistant's."""
    return elided and len(sent) > 1 and all(m.get("role") != "assistant" for m in sent)


@dataclass(frozen=True)
class Kept:
    """What a reply keeps of the request that asked for it (`Message.response`): a Responses
    request's settings, and when it came (which no Idempotency-Key compares)."""

    settings: Mapping[str, Any]
    created_at: float

    def response(self, input_first: int) -> dict[str, Any]:
        """The reply's `response`, its turn's input being the items from `input_first` on."""
        return {**self.settings, "created_at": self.created_at, "input_first": input_first}


def stored_with(reply_id: int, path: Sequence[Message]) -> int:
    """The first id of the input a reply made by another API stored with it (it kept no
    `input_first`): the messages after the reply before it whose ids run up to the reply's,
    as a turn saves its messages and its reply on consecutive ids. A regeneration stored none:
    its question is an earlier turn's, which another reply answers."""
    first = reply_id
    for message in reversed(path):
        if message.role == "assistant" or message.id != first - 1:
            break
        first -= 1
    return first


@dataclass(frozen=True)
class Ask:
    """What a turn asks: `content` is the new user message (None: regenerate the reply to the
    user message `at`); `at` is where it goes (None: under the leaf; `ROOT`; or an item id).
    `sent` holds instead a `/v1` request's messages (chat mode), placed by matching on the path
    that ends at `at`; `keep`, what the reply keeps of a Responses request. A `fork` (a turn at
    `at`, a message of the chat) does not hold the chat's lock: it moves no other turn's
    place, so the forks of a chat are made at once, each on ids set aside for it."""

    content: Content | None
    at: int | None = None
    sent: tuple[Mapping[str, Any], ...] | None = None
    keep: Kept | None = None
    fork: bool = False
    after_reply: bool = False  # `at` must be an assistant reply (a response's): see `check`
    names: Names = MESSAGES  # how a refusal names the messages of `sent`
    anchored: bool = False  # `sent` goes where `at` says: a history matching nothing too
    max_chars: int | None = None  # MAX_CONTENT_CHARS for the messages `sent` adds
    elided: bool = False  # `sent` may leave out the model's items (a conversation holds them)
    max_call_id: int | None = None  # a bound on the ids of the tool calls `sent` adds
    # how many leading messages of `sent` were held when the ask was made: the placement
    # checks only the others (`placement.place_request`'s `checked`)
    checked: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.sent is None and self.content is None and (self.at is None or self.at == ROOT):
            raise ValidationFailed("parent: regenerating a reply needs a user message's id")
        if self.sent is not None and self.max_chars is not None:
            object.__setattr__(self, "checked", self._hold_added(self.sent, self.max_chars))

    def _hold_added(self, sent: Sequence[Mapping[str, Any]], max_chars: int) -> int:
        """Refuse, before the turn's claim, lock and reads, what `sent` adds whatever the chat
        holds: its system prompt, and all of its messages when they are only new, which the
        placement stores whole (`placement.place_request`), each checked as it would check them;
        return how many leading messages that is. Which messages of a resent history are new,
        and held, only its placement can say: any may match a stored one (a reply, or a message
        stored under a higher limit)."""
        first = prompt_end(sent)
        convo = sent[first:]
        added = only_new(convo) and not history_elided(convo, self.elided)
        end = len(sent) if added else first
        check_messages(sent, 0, end, self.names)
        check_lengths(sent[:end], max_chars, self.names)
        return end

    def check(self, state: ChatState) -> None:
        """Raise NotFound when the turn must go after an assistant reply and the window read
        at `at` does not end with one."""
        last = state.messages[-1] if state.messages else None
        if self.after_reply and (last is None or last.id != self.at or last.role != "assistant"):
            raise NotFound("no such reply in this chat")

    @property
    def reserve(self) -> int:
        """How many ids a fork sets aside: one for each message it stores (a fork sends only
        new messages; leading system ones are its system prompt), and its reply."""
        if not self.fork:
            return 0
        sent = self.sent or ({"role": "user"},)
        return len(sent) - prompt_end(sent) + 1

    def window(self, history: int) -> int:
        """How many of the path's newest messages the turn reads, given MESSAGES_LENGTH: the
        history, the message asked again, or as many as a resent history needs to be matched.
        A new message reads at least the one it goes under (MESSAGES_LENGTH 0 sends none of
        them): a reply waiting for tool results refuses it, and its reply keeps where its input
        starts when that one is no reply (`Placing.turn`)."""
        if self.sent is not None:
            return max(history, window_for(self.sent, self.elided))
        if self.content is None:
            return history + 1  # and the message asked again
        return max(history, 1)

    def fingerprint(self) -> list[Any]:
        """What tells this ask from another, for an Idempotency-Key (a request of one user
        message is told apart by its content, as before histories were resent). A Responses
        request is told apart by its messages and what it keeps (its previous_response_id and
        conversation: where it goes), not by `at`: a resent history may be placed below the
        item it names, where a retry finds its first attempt's turn."""
        if self.sent is None:
            return [self.content, self.at]
        if self.keep is not None:
            return [None, list(self.sent), dict(self.keep.settings)]
        if len(self.sent) == 1 and self.sent[0].get("role") == "user":
            return [self.sent[0].get("content"), None]
        return [None, None, list(self.sent)]


@dataclass(frozen=True)
class Placing:
    """A turn placed in its chat's tree: `new` (placed) is stored before the reply, `history`
    is the window before `asked`, the messages the model answers; the reply gets `reply_id`
    under `reply_parent`. `system` is this turn's own system prompt (a `/v1` request's), which
    replaces the chat's for the turn only; `keep`, what the reply keeps of its request."""

    new: list[Message]
    history: list[Message]
    asked: list[Message]
    reply_id: int
    reply_parent: int | None
    system: str | None = None
    keep: Kept | None = None

    def turn(self, reply: Message) -> list[Message]:
        """The messages the turn stores: the new ones, then the reply, placed. A reply of
        another API keeps where its input starts only when the message above it is numbered
        right before it and is not a reply (stored by another request: a conversation's items,
        a regenerated question), which a Response's reader would count as its input."""
        placed = reply.placed(self.reply_id, self.reply_parent)
        first = self.new[0].id if self.new else self.reply_id
        assert first is not None  # placed
        above = self.history[-1:] if self.new else self.asked[-1:]
        if self.keep is not None:
            placed = replace(placed, response=self.keep.response(first))
        elif above and above[0].id == first - 1 and above[0].role != "assistant":
            placed = replace(placed, response={"input_first": first})
        return [*self.new, placed]


def place_turn(state: ChatState, ask: Ask) -> Placing:
    """Place a seed-route turn given the window of the path ending where it goes (read under
    its lock)."""
    if ask.content is None:
        last = state.messages[-1] if state.messages else None
        if last is None or last.id != ask.at or last.role != "user":
            raise ValidationFailed(
                "parent: a reply is regenerated for a user message; this is not one"
            )
        return Placing([], state.messages[:-1], [last], state.next_id, last.id)
    parent = state.leaf if ask.at is None else None if ask.at == ROOT else ask.at
    anchor = state.messages[-1] if state.messages and parent is not None else None
    if anchor is not None and anchor.role == "assistant" and anchor.tool_calls:
        raise ValidationFailed(
            f"parent: message {anchor.id} called tools and waits for their results; send them"
            " with POST /v1/chat/completions (role: tool), or continue from another message"
        )
    user = Message("user", ask.content).placed(state.next_id, parent)
    return Placing([user], state.messages, [user], state.next_id + 1, user.id)

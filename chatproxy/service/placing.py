"""Own where a turn's messages go in its chat's tree.

A turn asks (`Ask`) with a new user message, placed under the chat's current leaf, under a given
message (an edit is a new child of the edited message's parent), or before the first message
(`ROOT`: a new first message); or, with no message, asks the model again for the path that ends
at a given user message (a regeneration: the new reply is a sibling of the replies it has).
`place_turn` turns that and the window read under the turn's lock into a `Placing`: the
messages to store, what goes upstream last, and where the reply goes.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatproxy.errors import ValidationFailed
from chatproxy.store.base import ROOT, ChatState, Content, Message


@dataclass(frozen=True)
class Ask:
    """What a turn asks: `content` is the new user message (None: regenerate the reply to the
    user message `at`); `at` is where it goes (None: under the leaf; `ROOT`; or an item id)."""

    content: Content | None
    at: int | None = None

    def __post_init__(self) -> None:
        if self.content is None and (self.at is None or self.at == ROOT):
            raise ValidationFailed("parent: regenerating a reply needs a user message's id")


@dataclass(frozen=True)
class Placing:
    """A turn placed in its chat's tree: `new` (placed) is stored before the reply, `history`
    is the window before `question`, the message the model answers; the reply gets `reply_id`
    under `reply_parent`."""

    new: list[Message]
    history: list[Message]
    question: Message
    reply_id: int
    reply_parent: int | None

    def turn(self, reply: Message) -> list[Message]:
        """The messages the turn stores: the new ones, then the reply, placed."""
        return [*self.new, reply.placed(self.reply_id, self.reply_parent)]


def place_turn(state: ChatState, ask: Ask) -> Placing:
    """Place a turn given the window of the path ending where it goes (read under its lock)."""
    if ask.content is None:
        last = state.messages[-1] if state.messages else None
        if last is None or last.id != ask.at or last.role != "user":
            raise ValidationFailed(
                "parent: a reply is regenerated for a user message; this is not one"
            )
        return Placing([], state.messages[:-1], last, state.next_id, last.id)
    parent = state.leaf if ask.at is None else None if ask.at == ROOT else ask.at
    user = Message("user", ask.content).placed(state.next_id, parent)
    return Placing([user], state.messages, user, state.next_id + 1, user.id)

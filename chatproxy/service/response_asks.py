"""Own what a `POST /v1/responses` turn asks of the service (`ResponseAsk`, in the terms of
`responses.py`), and how the service makes the turns a response needs (`TurnMakers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: the import chain stays within its floors
    from chatproxy.service.defaults import TurnOptions
    from chatproxy.service.message_rules import Names
    from chatproxy.service.placing import Ask, Kept, Placing
    from chatproxy.service.results import Answer, StreamingTurn, TurnResult
    from chatproxy.store.items import ChatRef, ChatState, Message

    # The input as chat messages, given the stored messages its item references may name; and how
    # a refusal names each message and its texts (by the item and the field of it they came from).
    Translate = Callable[[Mapping[int, Message]], tuple[list[dict[str, Any]], Names]]
    MakeTurn = Callable[[ChatRef, Ask, str | None, TurnOptions], Awaitable[Answer]]
    PassOn = Callable[[str, Sequence[dict[str, Any]], TurnOptions], Awaitable[Answer]]


@dataclass(frozen=True)
class ResponseAsk:
    """A `POST /v1/responses` turn in the service's terms (see `responses.py`):
    `named` are the ids of the messages its input's item references name, in `named_chat`
    ("": the chat the turn goes in)."""

    tenant: str
    input: Translate
    keep: Kept
    instructions: str | None = None
    previous: str | None = None
    conversation: str | None = None
    named: tuple[int, ...] = ()
    named_chat: str = ""
    carried: bool = False  # `named` are ids items carry: where the turn goes, if they exist
    store: bool = True


@dataclass(frozen=True)
class TurnMakers:
    """How the service makes a chat's turn and a pass-through, plain and streamed."""

    turn: MakeTurn[TurnResult]
    stream: MakeTurn[StreamingTurn]
    pass_through: PassOn[TurnResult]
    stream_pass_through: PassOn[StreamingTurn]
    summarized: Callable[..., Any]  # what a window of a path sends (unstored.Summarized)
    place: Callable[[ChatRef, ChatState, Ask], Awaitable[Placing]]  # a turn's, with no lock

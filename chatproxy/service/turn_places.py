"""Own where a turn goes in its chat, under its lock: a new message (`placing.place_turn`), or a
chat-mode request's messages (`placement.place_request`), reading the whole path when the
window the lock read is not enough to place a resent history."""

from __future__ import annotations

from functools import partial

from chatproxy.service.placement import place_request, place_sent
from chatproxy.service.placing import Ask, Placing, place_turn
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef, ChatState


async def place_ask(store: Store, chat: ChatRef, state: ChatState, ask: Ask) -> Placing:
    """Place a turn (under its lock); a resent history that needs the whole path (that ends
    where the turn goes) to be placed reads it."""
    ask.check(state)
    if ask.sent is None:
        return place_turn(state, ask)
    path = state.messages
    place = partial(place_request, names=ask.names, anchored=ask.anchored, elided=ask.elided)
    place = partial(place, max_chars=ask.max_chars, max_call_id=ask.max_call_id)
    placement = place(path, ask.sent)
    if placement is None:
        path = (await store.load_history(chat, ask.at)).messages
        placement = place(path, ask.sent, whole=True)
        assert placement is not None  # a whole path is always enough
    return place_sent(state, path, placement, at=ask.at, keep=ask.keep)

"""Own what a response id says: `resp_<chat id>_<reply item id>` names the reply a response is
(read from the right: a chat id may hold `_`), in the caller's tenant; no lookup key is kept."""

from __future__ import annotations

import re

from chatproxy.errors import ResponseNotFound
from chatproxy.store.items import ChatRef, valid_chat_id

RESPONSE_ID = re.compile(r"resp_(.{1,128})_(0|[1-9][0-9]{0,17})")


def response_id(chat_id: str, reply_id: int) -> str:
    """The id of the response that is the reply `reply_id` of the chat `chat_id`."""
    return f"resp_{chat_id}_{reply_id}"


def parse_response_id(text: str) -> tuple[str, int] | None:
    """The chat id and reply id a response id names, or None for an id no reply has."""
    match = RESPONSE_ID.fullmatch(text)
    if match is None or not valid_chat_id(match[1]):
        return None
    return match[1], int(match[2])


def named_reply(tenant: str, text: str, *, previous: bool) -> tuple[ChatRef, int]:
    """The chat and reply the response id `text` names in the caller's tenant (not read)."""
    found = parse_response_id(text)
    if found is None:
        raise missing_response(text, previous=previous)
    return ChatRef(tenant, found[0]), found[1]


def missing_response(text: str, *, previous: bool) -> ResponseNotFound:
    """The error for a response id that names no reply of the caller's."""
    return ResponseNotFound(
        f"{'Previous response' if previous else 'Response'} with id '{text:.200}' not found.",
        param="previous_response_id" if previous else None,
    )

"""Own what the Conversations API shows of chats, pure (no I/O): a chat as a `conversation`
object, a request's items as the chat messages to store, stored messages as items and pages of
them, and the ids a request names.

A stored message is one item or more (`responses_items.message_items`: an assistant's text and
then each of its tool calls), so a page of items is cut from a page of messages: the service
reads one message more than the page has items (`page_messages`), which is enough to know
whether more follow, and a cursor (`after`) that names a tool call inside a message continues
with that message's other items. Item ids name their conversation (`msg_<conversation>_<n>`,
`fc_<conversation>_<n>_<k>`, `fco_<conversation>_<n>`), so an item listed here can be sent to
`/v1/responses` as an `item_reference`; an id without one (`msg_<n>`) is of the conversation in
the path, an id of another is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatproxy.errors import ValidationFailed
from chatproxy.http.responses_input import input_messages
from chatproxy.http.responses_items import ItemId, message_items, parse_item_id
from chatproxy.http.responses_lengths import check_lengths
from chatproxy.service.message_rules import Names, check_messages
from chatproxy.store.items import ChatInfo, Message, valid_chat_id

JsonObject = dict[str, Any]


def conversation(info: ChatInfo) -> JsonObject:
    """A chat as OpenAI's `conversation` object."""
    return {
        "id": info.chat_id,
        "object": "conversation",
        "created_at": int(info.created),
        "metadata": info.metadata or {},
    }


def deleted(conversation_id: str) -> JsonObject:
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}


def id_list(data: list[JsonObject], has_more: bool = False) -> JsonObject:
    """OpenAI's list of objects with ids (first_id and last_id null when it is empty)."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }


def conversation_id(text: str, param: str = "conversation_id") -> str:
    """A conversation's id as a request names it: a chat id."""
    if not valid_chat_id(text):
        raise ValidationFailed(
            f"{param}: a conversation id is 1-128 characters of A-Z a-z 0-9 . _ @ : -",
            param=param,
        )
    return text


def item_id(text: str, conversation: str, param: str) -> ItemId:
    """The item `text` names in `conversation`, refused when it is none of this proxy's ids or
    names another conversation."""
    found = parse_item_id(text)
    if found is None:
        raise ValidationFailed(
            f"{param}: {text[:80]!r} is not an item id (msg_…, fc_…, fco_…)", param=param
        )
    if found.chat and found.chat != conversation:
        raise ValidationFailed(
            f"{param}: the item {text[:200]!r} is of another conversation", param=param
        )
    return ItemId(found.message, found.call, found.kind, conversation)


def item_messages(items: Sequence[Any], max_chars: int) -> list[JsonObject]:
    """The chat messages a request's `items` are (`responses_input.input_messages`), each
    text, tool call's arguments and file's data within `max_chars` (`check_lengths`), refused
    with the item at fault (`items[3].content[0].type`). An `item_reference` is refused: an
    item of a conversation is in it already."""
    try:
        check_lengths(items, max_chars)
        origins: list[int] = []
        messages = input_messages(items, origins=origins, references=False)
        try:  # the rules a response's input is held to
            check_messages(messages, names=Names(tuple(origins)))
        except ValidationFailed as exc:
            raise ValidationFailed(exc.message, param=exc.param or "input") from None
        return messages
    except ValidationFailed as exc:
        message = "items" + exc.message.removeprefix("input")
        param = None if exc.param is None else "items" + exc.param.removeprefix("input")
        raise ValidationFailed(message, param=param) from None


def items_of(messages: Sequence[Message], conversation: str) -> list[JsonObject]:
    """The items of stored messages, in order."""
    return [item for message in messages for item in message_items(message, conversation)]


def stored_item(message: Message | None, item: ItemId) -> JsonObject | None:
    """The item `item` of its stored message, if the message has it."""
    wanted = str(item)
    found = message_items(message, item.chat) if message is not None else []
    return next((each for each in found if each["id"] == wanted), None)


def rereads_cursor(after: ItemId | None, descending: bool) -> bool:
    """Whether a page after `after` starts inside its message: oldest first, any item but a
    message's last may be followed by its others; newest first, only a tool call's message
    has items before it (its text, its earlier calls)."""
    if after is None:
        return False
    return not descending or after.kind == "function_call"


def page_messages(limit: int) -> int:
    """How many messages past the cursor's a page of `limit` items reads: one more than it
    shows, each message being an item or more, tells whether more follow."""
    return limit + 1


def item_page(
    messages: Sequence[Message],
    conversation: str,
    after: ItemId | None,
    descending: bool,
    limit: int,
) -> JsonObject:
    """A page of at most `limit` items of `messages` (a path's, in the page's order, read as
    `rereads_cursor` and `page_messages` say), after the item `after`."""
    items: list[JsonObject] = []
    for message in messages:
        each = message_items(message, conversation)
        items.extend(reversed(each) if descending else each)
    if after is not None:
        mark = (after.message, after.call)
        items = [item for item in items if _beyond(_place(item), mark, descending)]
    return id_list(items[:limit], len(items) > limit)


def _beyond(place: tuple[int, int], mark: tuple[int, int], descending: bool) -> bool:
    return place < mark if descending else place > mark


def _place(item: JsonObject) -> tuple[int, int]:
    """Where an item is on its path: its message, and its place in it (-1 for the text)."""
    found = parse_item_id(item["id"])
    assert found is not None  # an id `message_items` made
    return found.message, found.call

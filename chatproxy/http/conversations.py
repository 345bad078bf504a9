"""Own OpenAI's Conversations API under `/v1/conversations`: a conversation is a chat of the
caller's tenant (the same id and store as `POST /<chat_id>/chat`'s), its items the messages of
the chat's current path (`conversation_items.py`), so the official SDKs'
`client.conversations.*` and `client.conversations.items.*` work on every chat.

- `POST /v1/conversations` makes one (`conv_<hex>`) with up to 20 items and metadata;
  `GET`, `POST` (new metadata) and `DELETE /v1/conversations/{id}`;
- `POST /v1/conversations/{id}/items` adds items after the leaf, under the chat's turn lock;
  `GET` lists them (`after`, `limit` 1-100, `order` asc|desc, newest first by default);
- `GET` and `DELETE /v1/conversations/{id}/items/{item_id}`: a `msg_` or `fco_` item deletes
  its stored message (an assistant's text with its tool calls); a tool call (`fc_`) is part of
  its message and is refused (400) with the id that deletes the message;
- beyond OpenAI: `GET /v1/conversations` lists the caller's conversations (every chat), most
  recent activity first (`limit`, `after`: the last id of the page before).

`include` is accepted and ignored: no item holds what it asks for. Errors are OpenAI's shape,
a 400 naming its `param`; an unknown conversation, or another tenant's, is a 404.
"""

from __future__ import annotations

from chatproxy.errors import NotFound, ValidationFailed
from chatproxy.http.context import Context, Reply, Route
from chatproxy.http.conversation_bodies import ConversationBody, ItemsBody, MetadataBody
from chatproxy.http.conversation_items import (
    conversation,
    conversation_id,
    deleted,
    id_list,
    item_id,
    item_messages,
    item_page,
    items_of,
    page_messages,
    rereads_cursor,
    stored_item,
)
from chatproxy.http.responses_items import ItemId
from chatproxy.store.items import OPEN_TENANT, ChatRef

MAX_LIST = 100
DEFAULT_LIST = 20
ORDERS = ("asc", "desc")


async def create_conversation(ctx: Context) -> Reply:
    body = await ctx.body(ConversationBody)
    messages = item_messages(body.items or [], ctx.settings.max_content_chars)
    info = await ctx.conversations.create(_tenant(ctx), messages, body.metadata)
    ctx.log_fields["chat_id"] = info.chat_id
    return conversation(info)


async def list_conversations(ctx: Context) -> Reply:
    limit = _limit(ctx)
    after = ctx.request.query_params.get("after")
    if after is not None:
        conversation_id(after, "after")
    found, more = await ctx.conversations.listing(_tenant(ctx), limit, after)
    return id_list([conversation(info) for info in found], more)


async def get_conversation(ctx: Context) -> Reply:
    return conversation(await ctx.conversations.get(_chat(ctx)))


async def update_conversation(ctx: Context) -> Reply:
    chat = _chat(ctx)
    body = await ctx.body(MetadataBody)
    return conversation(await ctx.conversations.update(chat, body.metadata))


async def delete_conversation(ctx: Context) -> Reply:
    chat = _chat(ctx)
    await ctx.conversations.delete(chat)
    return deleted(chat.chat_id)


async def create_items(ctx: Context) -> Reply:
    chat = _chat(ctx)
    body = await ctx.body(ItemsBody)
    messages = item_messages(body.items, ctx.settings.max_content_chars)
    stored = await ctx.conversations.append(chat, messages)
    return id_list(items_of(stored, chat.chat_id))


async def list_items(ctx: Context) -> Reply:
    chat = _chat(ctx)
    limit = _limit(ctx)
    order = ctx.request.query_params.get("order", "desc")
    if order not in ORDERS:
        raise ValidationFailed("order: must be asc or desc", param="order")
    descending = order == "desc"
    raw = ctx.request.query_params.get("after")
    after = None if raw is None else item_id(raw, chat.chat_id, "after")
    messages = await ctx.conversations.path(
        chat,
        descending=descending,
        after=None if after is None else after.message,
        with_after=rereads_cursor(after, descending),
        count=page_messages(limit),
    )
    return item_page(messages, chat.chat_id, after, descending, limit)


async def get_item(ctx: Context) -> Reply:
    chat, item = _item(ctx)
    found = stored_item(await ctx.conversations.message(chat, item.message), item)
    if found is None:
        raise NotFound(f"item with id {str(item)!r} not found in conversation {chat.chat_id!r}")
    return found


async def delete_item(ctx: Context) -> Reply:
    chat, item = _item(ctx)
    if item.kind == "function_call":
        whole = ItemId(item.message, chat=chat.chat_id)
        raise ValidationFailed(
            f"item_id: a function_call is stored in its assistant message, with the message's"
            f" text and its other calls; delete the message whole: {str(whole)!r}",
            param="item_id",
        )
    tool = item.kind == "function_call_output"
    return conversation(await ctx.conversations.delete_message(chat, item.message, tool=tool))


ROUTES: list[Route] = [
    Route("/v1/conversations", "POST", create_conversation),
    Route("/v1/conversations", "GET", list_conversations),
    Route("/v1/conversations/{conversation_id}", "GET", get_conversation),
    Route("/v1/conversations/{conversation_id}", "POST", update_conversation),
    Route("/v1/conversations/{conversation_id}", "DELETE", delete_conversation),
    Route("/v1/conversations/{conversation_id}/items", "POST", create_items),
    Route("/v1/conversations/{conversation_id}/items", "GET", list_items),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", "GET", get_item),
    Route("/v1/conversations/{conversation_id}/items/{item_id}", "DELETE", delete_item),
]


def _tenant(ctx: Context) -> str:
    return ctx.caller.tenant if ctx.caller else OPEN_TENANT


def _chat(ctx: Context) -> ChatRef:
    """The conversation the path names, in the caller's tenant."""
    chat = ChatRef(_tenant(ctx), conversation_id(ctx.args["conversation_id"]))
    ctx.log_fields["chat_id"] = chat.chat_id
    return chat


def _item(ctx: Context) -> tuple[ChatRef, ItemId]:
    """The conversation and the item the path names."""
    chat = _chat(ctx)
    return chat, item_id(ctx.args["item_id"], chat.chat_id, "item_id")


def _limit(ctx: Context) -> int:
    return ctx.query_int("limit", minimum=1, maximum=MAX_LIST) or DEFAULT_LIST

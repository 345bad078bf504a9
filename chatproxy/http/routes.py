"""Own the HTTP handlers: parse and validate a request, call the service, shape the response.

Each handler takes the request context and returns a JSON-able body (and optionally a status).
Request bodies are validated with pydantic (`bodies.py`); `app.py` turns any error into a JSON
response. `ROUTES` is this module's part of the route table.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

from chatproxy.errors import StoreError, ValidationFailed
from chatproxy.http.bodies import (
    DEFAULT_CHATS_PAGE,
    MAX_PAGE,
    ContentBody,
    ImageBody,
    LeafBody,
    SettingsBody,
    TurnBody,
)
from chatproxy.http.context import Answer, Context, Reply, Route
from chatproxy.http.event_stream import EventStream
from chatproxy.jsontext import compact
from chatproxy.service.content import image_parts
from chatproxy.service.results import StreamingTurn, TurnResult
from chatproxy.store.items import Content, valid_chat_id


async def health(ctx: Context) -> Reply:
    settings = ctx.settings
    body: dict[str, Any] = {
        "status": "ok",
        "store": settings.store_kind,
        "upstream": settings.upstream_mode,
        "model": settings.model,
    }
    body["auth"] = "none" if ctx.app.auth.open else "api_keys"
    notices = []
    if settings.upstream_mode == "dev":
        notices.append(
            "offline dev upstream: replies are canned; set GPT_API_KEY to talk to OpenAI"
        )
    if ctx.app.auth.open:
        notices.append("no PROXY_API_KEYS: anyone who can reach this service can use it")
    if notices:
        body["notice"] = "; ".join(notices)
    try:
        await ctx.chats.ping_store()
    except StoreError:
        body["status"] = "unavailable"
        return body, 503
    return body


async def post_chat(ctx: Context) -> Answer:
    key = ctx.idempotency_key
    body = await ctx.body(TurnBody)
    return await _send(ctx, key, body, body.content, body.at)


async def post_image(ctx: Context) -> Answer:
    key = ctx.idempotency_key
    body = await ctx.body(ImageBody)
    return await _send(ctx, key, body, image_parts(body.content, body.url))


async def _send(
    ctx: Context, key: str | None, body: ContentBody, content: Content | None, at: int | None = None
) -> Answer:
    """Answer a turn whose user message is `content` (None: regenerate the reply to the user
    message `at`), placed at `at`: as server-sent events when the client wants a stream, else
    as one JSON reply."""
    chat = ctx.chat
    if _wants_stream(ctx, body):
        turn = await ctx.service.stream_turn(
            chat, content, at=at, idempotency_key=key, options=body.options
        )
        return _event_stream(ctx, body.content, turn)
    result = await ctx.service.turn(chat, content, at=at, idempotency_key=key, options=body.options)
    return _turn_reply(ctx, body.content, result)


def _wants_stream(ctx: Context, body: ContentBody) -> bool:
    """Stream when the body says `"stream": true` or the client accepts only server-sent events."""
    return body.stream or ctx.prefers("text/event-stream")


def _event_stream(ctx: Context, content: str | None, turn: StreamingTurn) -> EventStream:
    """Answer with server-sent events: `delta` events with the text, then `done` with the stored
    reply (or `error` if the stream broke off after it began)."""
    ctx.log_fields["stream"] = True
    ctx.log_fields["replayed"] = turn.replayed or None
    if ctx.settings.log_content:
        ctx.log_fields["content"] = content

    async def events() -> AsyncIterator[str]:
        async with aclosing(turn.events) as stream:
            async for event in stream:
                ctx.note(event)
                if event.kind == "delta" and not event.data["content"]:
                    continue  # a chunk without text (a role, a tool call's piece, usage)
                data = compact(event.data)
                yield f"event: {event.kind}\ndata: {data}\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if turn.replayed:
        headers["Idempotent-Replayed"] = "true"
    return EventStream(events(), headers)


async def get_chat(ctx: Context) -> Reply:
    limit = ctx.query_int("limit", minimum=1, maximum=MAX_PAGE)
    before = ctx.query_int("before", minimum=0)
    leaf = ctx.query_int("leaf", minimum=0)
    summaries = ctx.query_flag("include", "summaries")
    chat = ctx.chat
    return await ctx.chats.history(chat, limit=limit, before=before, leaf=leaf, summaries=summaries)


async def get_children(ctx: Context) -> Reply:
    chat = ctx.chat
    parent = ctx.query_int("parent", minimum=0)
    return await ctx.chats.children(chat, parent)


async def post_leaf(ctx: Context) -> Reply:
    chat = ctx.chat
    body = await ctx.body(LeafBody)
    return await ctx.chats.set_leaf(chat, body.id, descend=body.descend)


async def list_chats(ctx: Context) -> Reply:
    assert ctx.caller is not None
    limit = ctx.query_int("limit", minimum=1, maximum=MAX_PAGE) or DEFAULT_CHATS_PAGE
    before = ctx.query_number("before")
    before_id = ctx.request.query_params.get("before_id", "")
    if before_id and not valid_chat_id(before_id):
        raise ValidationFailed(
            "before_id: must be a chat id, as given in next_before_id", param="before_id"
        )
    return await ctx.chats.chats(ctx.caller.tenant, limit=limit, before=before, before_id=before_id)


async def get_usage(ctx: Context) -> Reply:
    return await ctx.chats.usage(ctx.chat)


async def delete_chat(ctx: Context) -> Reply:
    chat = ctx.chat
    return {"chat_id": chat.chat_id, "deleted": await ctx.chats.clear(chat)}


async def get_settings(ctx: Context) -> Reply:
    return await ctx.chats.chat_settings(ctx.chat)


async def post_settings(ctx: Context) -> Reply:
    chat = ctx.chat
    body = await ctx.body(SettingsBody)
    if "system" in body.model_fields_set and body.system is not None and not body.system.strip():
        raise ValidationFailed("system: must not be blank")
    return await ctx.chats.update_chat_settings(chat, body.changes())


async def get_chat_system(ctx: Context) -> Reply:
    return await ctx.chats.chat_system(ctx.chat)


async def post_chat_system(ctx: Context) -> Reply:
    chat = ctx.chat
    return await ctx.chats.set_chat_system(chat, (await ctx.body(ContentBody)).content)


async def delete_chat_system(ctx: Context) -> Reply:
    return await ctx.chats.set_chat_system(ctx.chat, None)


async def get_system(ctx: Context) -> Reply:
    return await ctx.chats.global_system()


async def post_system(ctx: Context) -> Reply:
    ctx.require_admin()
    return await ctx.chats.set_global_system((await ctx.body(ContentBody)).content)


async def delete_system(ctx: Context) -> Reply:
    ctx.require_admin()
    return await ctx.chats.set_global_system(None)


async def post_moderation(ctx: Context) -> Reply:
    return await ctx.service.moderate((await ctx.body(ContentBody)).content)


ROUTES: list[Route] = [
    Route("/{chat_id}/chat", "POST", post_chat),
    Route("/{chat_id}/chat", "GET", get_chat),
    Route("/{chat_id}/chat", "DELETE", delete_chat),
    Route("/{chat_id}/children", "GET", get_children),
    Route("/{chat_id}/leaf", "POST", post_leaf),
    Route("/", "GET", health, public=True),  # it reads nothing a caller owns
    Route("/system", "GET", get_system),
    Route("/system", "POST", post_system),
    Route("/system", "DELETE", delete_system),
    Route("/mod", "POST", post_moderation),
    Route("/chats", "GET", list_chats),
    Route("/{chat_id}/usage", "GET", get_usage),
    Route("/{chat_id}/settings", "GET", get_settings),
    Route("/{chat_id}/settings", "POST", post_settings),
    Route("/{chat_id}/clear", "POST", delete_chat),
    Route("/{chat_id}/img", "POST", post_image),
    Route("/{chat_id}/system", "GET", get_chat_system),
    Route("/{chat_id}/system", "POST", post_chat_system),
    Route("/{chat_id}/system", "DELETE", delete_chat_system),
]


def _turn_reply(ctx: Context, content: str | None, result: TurnResult) -> Reply:
    """Answer a turn (a replayed Idempotency-Key says so in a header) and note it for the log."""
    ctx.log_fields["tokens"] = result.body.get("tokens")
    ctx.log_fields["replayed"] = result.replayed or None
    if ctx.settings.log_content:
        ctx.log_fields["content"] = content
        ctx.log_fields["reply"] = result.body.get("content")
    if result.replayed:
        return result.body, 200, {"Idempotent-Replayed": "true"}
    return result.body

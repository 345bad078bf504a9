"""Own OpenAI's Responses API over chats: `POST /v1/responses` (plain and streamed),
`GET` and `DELETE /v1/responses/{response_id}`, `GET /v1/responses/{response_id}/input_items`,
and `POST /v1/responses/{response_id}/cancel`, refused as OpenAI refuses a response that was
not made in the background (the proxy makes none); `POST /v1/responses/input_tokens` and
`/compact` (and any other method of their paths) are a 404 that says the proxy does not offer
them.

A response is the assistant reply it produced, and its id names that reply
(`service/responses.py` maps one onto the other and places each turn): `previous_response_id`
continues the chat that holds it, `conversation` is a chat id, a response with neither starts
a chat of its own (`chain-…`). The request is read by the dialect (`responses_request.py`), its
input translated into chat messages once the service has read the path its item references
may name (`responses_input.py`), the stored reply answered as a Response
(`responses_objects.py`) or its stream as Responses events (`responses_events.py`: the service
says the reply's item id before the reply is stored). A request that is not stored
(`store: false`) answers a Response that cannot be found later. Errors are OpenAI's shape
(`app.py`), a missing response a 404 as OpenAI words it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from functools import partial
from typing import Any

from chatproxy.errors import NotOffered, ValidationFailed
from chatproxy.http.context import Answer, Context, Handler, Reply, Route
from chatproxy.http.event_stream import EventStream
from chatproxy.http.responses_events import ResponseEvents, sse_frame
from chatproxy.http.responses_input import input_messages, referenced_ids
from chatproxy.http.responses_items import carried_ids, message_items
from chatproxy.http.responses_lengths import text_names
from chatproxy.http.responses_objects import ResponseHead, response_object
from chatproxy.http.responses_request import ResponsesRequest
from chatproxy.service.message_rules import Names
from chatproxy.service.placing import Kept
from chatproxy.service.response_asks import ResponseAsk
from chatproxy.service.response_ids import response_id
from chatproxy.service.results import Found, Responded, StreamingTurn, TurnResult
from chatproxy.store.items import Message

DEFAULT_PAGE = 20
MAX_PAGE = 100
ORDERS = ("asc", "desc")


async def create_response(ctx: Context) -> Answer:
    key = ctx.idempotency_key  # a malformed one is refused, stored or not
    request = await ctx.body(ResponsesRequest)
    ask = _ask(ctx, request)
    responses, options = ctx.service.responses, request.options
    if request.stream:
        streamed = await responses.stream(ask, idempotency_key=key, options=options)
        return _sse(ctx, ask, streamed, request.model)
    made = await responses.create(ask, idempotency_key=key, options=options)
    return _answered(ctx, ask, made)


async def get_response(ctx: Context) -> Reply:
    found = await ctx.service.responses.find(_tenant(ctx), ctx.args["response_id"])
    ctx.log_fields["chat_id"] = found.chat
    if ctx.request.query_params.get("stream", "").lower() == "true":  # the SDK would wait on
        raise ValidationFailed(  # events that never come
            "stream: only a background response streams again, and this proxy makes none;"
            " leave stream out",
            param="stream",
        )
    return _stored(ctx, found)


async def delete_response(ctx: Context) -> Reply:
    """Delete a response: its reply and the input its turn stored."""
    response_id = ctx.args["response_id"]
    ctx.log_fields["chat_id"] = await ctx.service.responses.delete(_tenant(ctx), response_id)
    return {"id": response_id, "object": "response", "deleted": True}


async def cancel_response(ctx: Context) -> Reply:
    """Refuse to cancel a response, as OpenAI refuses one not made in the background: the proxy
    answers each response when it is created, so none is left running (an id the caller has
    none of is a 404, as for `retrieve`)."""
    found = await ctx.service.responses.find(_tenant(ctx), ctx.args["response_id"])
    ctx.log_fields["chat_id"] = found.chat
    raise ValidationFailed(
        "Only responses created with background=true can be cancelled; this proxy answers"
        f" every response when it is created ({ctx.args['response_id']!r} is complete)."
    )


async def list_input_items(ctx: Context) -> Reply:
    """The items of the response's turn's input, a page at a time, as OpenAI lists them."""
    limit = ctx.query_int("limit", minimum=1, maximum=MAX_PAGE) or DEFAULT_PAGE
    query = ctx.request.query_params
    order = query.get("order", "desc")
    if order not in ORDERS:
        raise ValidationFailed("order: must be asc or desc", param="order")
    found = await ctx.service.responses.find(_tenant(ctx), ctx.args["response_id"], inputs=True)
    ctx.log_fields["chat_id"] = found.chat
    items = [item for message in found.inputs for item in message_items(message, found.chat)]
    if order == "desc":
        items.reverse()
    after = query.get("after")
    if after is not None:
        ids = [item["id"] for item in items]
        if after not in ids:
            raise ValidationFailed(f"after: no input item {after[:64]!r} here", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def not_offered(endpoint: str, instead: str) -> Handler:
    """The handler of an endpoint of OpenAI's Responses API that the proxy does not serve: a
    404 naming the method and the endpoint, for every method (`Route.offered`; its path would
    otherwise read as a response id's)."""

    async def refuse(ctx: Context) -> Reply:
        method = ctx.request.method
        raise NotOffered(f"{method} {endpoint}: this proxy does not offer it; {instead}")

    return refuse


# Each before `/v1/responses/{response_id}`, which its path would match; POST is OpenAI's method.
NOT_OFFERED = {
    "/v1/responses/input_tokens": "it could only estimate what the model would count; a"
    " response's usage.input_tokens is the model's count of what its turn sent",
    "/v1/responses/compact": "a chat is compacted by POST /v1/responses with"
    ' context_management: [{"type": "compaction"}]',
}

ROUTES: list[Route] = [
    Route("/v1/responses", "POST", create_response),
    *(
        Route(path, "POST", not_offered(path, instead), offered=False)
        for path, instead in NOT_OFFERED.items()
    ),
    Route("/v1/responses/{response_id}", "GET", get_response),
    Route("/v1/responses/{response_id}", "DELETE", delete_response),
    Route("/v1/responses/{response_id}/cancel", "POST", cancel_response),
    Route("/v1/responses/{response_id}/input_items", "GET", list_input_items),
]


def _tenant(ctx: Context) -> str:
    assert ctx.caller is not None  # a private route's
    return ctx.caller.tenant


def _ask(ctx: Context, request: ResponsesRequest) -> ResponseAsk:
    """The request in the service's terms: where it goes, its input's translation (given the
    stored messages its item references may name), and what its reply keeps."""
    named = referenced_ids(request.input)  # ids none of ours are refused before any read
    carried = not (named or request.previous_response_id or request.conversation_id)
    named = carried_ids(request.input) if carried else named
    _hold(request, ctx.settings.max_content_chars)
    settings = {
        **request.settings(),
        "previous_response_id": request.previous_response_id,
        "conversation": request.conversation_id,
    }
    return ResponseAsk(
        _tenant(ctx),
        partial(_input, request.input),
        Kept(settings, time.time()),
        instructions=request.instructions,
        previous=request.previous_response_id,
        conversation=request.conversation_id,
        named=tuple(item.message for item in named),
        named_chat=named[0].chat if named else "",
        carried=carried,
        store=request.store,
    )


def _hold(request: ResponsesRequest, max_chars: int) -> None:
    """Refuse, with `store: false`, before anything is read, instructions over
    MAX_CONTENT_CHARS (they are no input item, and are sent as they are). The input of any
    request is held in what it adds once it is placed on the path it continues (`placement.py`,
    `store: false` too, with nothing written): a chat's reply that a client resends may be
    longer (MAX_TOKENS bounds it); and so are the ids of the calls it adds (a call the model
    made, resent whole, is matched: another server's model may give longer ids)."""
    if request.store or request.instructions is None or len(request.instructions) <= max_chars:
        return
    raise ValidationFailed(
        f"instructions: at most {max_chars} characters (MAX_CONTENT_CHARS)", param="instructions"
    )


def _input(sent: Any, stored: Mapping[int, Message]) -> tuple[list[dict[str, Any]], Names]:
    """The request's input as chat messages, and how a refusal names each one and its texts:
    by the item it came from (`input[2]`), and the field of it (`input[3].arguments`)."""
    origins: list[int] = []
    messages = input_messages(sent, stored, origins)
    return messages, Names(tuple(origins), partial(text_names, sent, tuple(origins)))


def _head(
    ctx: Context, made: Responded[Any], kept: Mapping[str, Any], model: str | None = None
) -> ResponseHead:
    return _head_of(ctx, made.id, made.created_at, made.reply_id, made.chat, kept, model)


def _head_of(
    ctx: Context,
    name: str,
    created_at: float,
    reply_id: int,
    chat: str,
    kept: Mapping[str, Any],
    model: str | None = None,
) -> ResponseHead:
    """What a Response says of itself: its id, when it was asked for, the model (the one asked
    for, else MODEL, until its reply says its own), its reply's item and chat, and where it
    continues from."""
    return ResponseHead(
        name,
        created_at,
        model or ctx.settings.model,
        reply_id,
        previous_response_id=kept.get("previous_response_id"),
        conversation_id=kept.get("conversation"),
        chat=chat,
    )


def _answered(ctx: Context, ask: ResponseAsk, made: Responded[TurnResult]) -> Reply:
    """A plain response: its Response (a replayed Idempotency-Key's says so in a header)."""
    result = made.answer
    ctx.log_fields["tokens"] = result.body.get("tokens")
    if ask.store:
        ctx.log_fields["chat_id"] = made.chat
    kept = result.body.get("response") or ask.keep.settings  # a replay's, as it was stored
    body = response_object(_head(ctx, made, kept), kept, result.body)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return body, 200, headers


def _stored(ctx: Context, found: Found) -> dict[str, Any]:
    """The Response a stored reply is (settings defaulted for a reply of another API)."""
    reply = found.reply
    assert reply.id is not None
    kept = reply.response or {}
    created_at = kept.get("created_at", reply.created_at)
    name = response_id(found.chat, reply.id)
    head = _head_of(ctx, name, created_at, reply.id, found.chat, kept)
    return response_object(head, kept, reply)


def _sse(
    ctx: Context, ask: ResponseAsk, made: Responded[StreamingTurn], model: str | None
) -> EventStream:
    turn = made.answer
    if ask.store:
        ctx.log_fields["chat_id"] = made.chat
    kept = (turn.replay or {}).get("response") or ask.keep.settings
    events = ResponseEvents(_head(ctx, made, kept, model), kept)
    headers = {"Cache-Control": "no-cache"}
    if turn.replayed:
        headers["Idempotent-Replayed"] = "true"
    return EventStream(_frames(ctx, turn, events), headers, until_gone=not ask.store)


async def _frames(ctx: Context, turn: StreamingTurn, events: ResponseEvents) -> AsyncIterator[str]:
    """The Responses events of a streamed turn, as server-sent events."""
    async with aclosing(turn.events) as stream:  # a reader that leaves lets go of the stream
        async for event in stream:
            ctx.note(event)
            for sent in events.translate(event):
                yield sse_frame(sent)

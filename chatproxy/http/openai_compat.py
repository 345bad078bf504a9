"""Own the OpenAI-compatible API: `POST /v1/chat/completions`, `GET /v1/models` and
`GET /v1/models/{model}` (ALLOWED_MODELS; a model id may hold `/`, as other servers' do).

The official SDKs work with `base_url=<proxy>/v1` and a proxy key as their `api_key`. With a chat
id (`X-Chat-Id` header, or `metadata.chat_id`) the client sends its new messages (a user message,
tool results), or its whole history as most clients do, which is matched with the chat's path
(`service/placement.py`): the proxy adds the stored history, stores what is new and the reply,
exactly as `POST /<chat_id>/chat` does (locks, idempotency, budgets, tenants); MAX_CONTENT_CHARS
holds what the request adds, not what it resends (a reply of the model's may be longer). Without
one it is an authenticated pass-through that stores nothing, each message held to
MAX_CONTENT_CHARS. Either way the proxy owns only what `bodies.CompletionRequest` declares (the
messages, the model, the max_tokens cap, streaming, the chat id); every other field reaches the
model as the client sent it, and `n` other than 1 is refused with a chat id, whose turn keeps
one reply. Answers are the upstream's `chat.completion` as it sent it, or with `stream: true`
its `chat.completion.chunk`s (`completion_chunks.py`); a replayed Idempotency-Key answers the
stored reply. Errors use OpenAI's `{"error": {...}}` shape, built in one place
(`ProxyError.to_openai_json`): the answer to an error before a stream (see `app.py`) and the
last chunk of a stream that an error ends hold the same `error` object.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, cast

from chatproxy.errors import InvalidChatId, ModelNotFound
from chatproxy.http.bodies import CompletionRequest
from chatproxy.http.completion_chunks import Chunks
from chatproxy.http.context import Answer, Context, Reply, Route
from chatproxy.http.event_stream import EventStream
from chatproxy.jsontext import compact
from chatproxy.service.message_rules import MESSAGES, check_lengths
from chatproxy.service.results import StreamingTurn, TurnResult
from chatproxy.store.items import ChatRef, valid_chat_id


async def list_models(ctx: Context) -> Reply:
    return {"object": "list", "data": [_model(model) for model in ctx.settings.allowed_models]}


async def retrieve_model(ctx: Context) -> Reply:
    model = ctx.args["model"]
    if model not in ctx.settings.allowed_models:
        raise ModelNotFound(model)
    return _model(model)


async def chat_completions(ctx: Context) -> Answer:
    idempotency_key = ctx.idempotency_key  # a malformed one is refused, chat id or not
    request = await ctx.body(CompletionRequest)
    caller = ctx.caller
    assert caller is not None
    chat_id = ctx.request.headers.get("X-Chat-Id")  # an empty one is an invalid id, not none
    if chat_id is None:
        chat_id = request.chat_id
    if chat_id is None:  # nothing is known to be resent: every message is held to the limit
        check_lengths(request.messages, ctx.settings.max_content_chars, MESSAGES)
        return await _pass_through(ctx, caller.tenant, request)
    if not valid_chat_id(chat_id):
        raise InvalidChatId()
    chat = ChatRef(caller.tenant, chat_id)
    ctx.log_fields["chat_id"] = chat_id
    sent = request.messages
    key, options = idempotency_key, request.options
    if request.stream:
        service = ctx.service
        turn = await service.stream_turn_from_messages(
            chat, sent, idempotency_key=key, options=options
        )
        return _sse(ctx, turn, request.include_usage)
    result = await ctx.service.turn_from_messages(chat, sent, idempotency_key=key, options=options)
    return _completion_reply(ctx, result)


ROUTES: list[Route] = [
    Route("/v1/chat/completions", "POST", chat_completions),
    Route("/v1/models", "GET", list_models),
    Route("/v1/models/{model:path}", "GET", retrieve_model),
]


def _model(model: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": "chatproxy"}


async def _pass_through(ctx: Context, tenant: str, request: CompletionRequest) -> Answer:
    """Without a chat id: the client's messages go to the model as they are; nothing is stored."""
    messages = cast("list[dict[str, Any]]", request.messages)  # validated plain dicts
    if request.stream:
        turn = await ctx.service.stream_pass_through(tenant, messages, options=request.options)
        return _sse(ctx, turn, request.include_usage, until_gone=True)
    result = await ctx.service.pass_through(tenant, messages, options=request.options)
    return _completion_reply(ctx, result)


def _completion_reply(ctx: Context, result: TurnResult) -> Reply:
    """Answer a plain turn as a chat.completion: the upstream's, or for a replayed
    Idempotency-Key the stored reply's (which says so)."""
    ctx.log_fields["tokens"] = result.body.get("tokens")
    if result.upstream is not None:
        return _answered(result.upstream, result.body)
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return _completion(result.body), 200, headers


def _answered(upstream: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
    """The upstream's answer as it sent it (every choice, usage details, fingerprint, ...),
    with what it lacks of a chat.completion taken from the reply."""
    body = {**_completion_head(reply), **upstream, "object": "chat.completion"}
    if not isinstance(body.get("usage"), dict):
        body["usage"] = reply.get("tokens")  # estimated: the upstream counted none
    return body


def _completion(reply: dict[str, Any]) -> dict[str, Any]:
    """Shape a stored reply as a standard chat.completion."""
    message = {"role": "assistant", "content": reply["content"], "refusal": None}
    if reply.get("tool_calls"):
        message["tool_calls"] = reply["tool_calls"]
    finish = reply.get("finish_reason") or "stop"
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    return {**_completion_head(reply), "choices": [choice], "usage": reply.get("tokens")}


def _completion_head(reply: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(reply.get("created_at", time.time())),
        "model": reply.get("model"),
    }


def _sse(
    ctx: Context, turn: StreamingTurn, include_usage: bool, *, until_gone: bool = False
) -> EventStream:
    """The answer of a streamed turn; `until_gone` for one nobody stores (`EventStream`)."""
    headers = {"Cache-Control": "no-cache"}
    if turn.replayed:
        headers["Idempotent-Replayed"] = "true"
    return EventStream(_lines(ctx, turn, include_usage), headers, until_gone=until_gone)


async def _lines(ctx: Context, turn: StreamingTurn, include_usage: bool) -> AsyncIterator[str]:
    """The chat.completion.chunk events of a streamed turn, then `[DONE]`; an error ends the
    stream as an event that holds the same `error` object as the error's JSON answer."""
    chunks = Chunks(include_usage, turn.replay)
    async with aclosing(turn.events) as events:  # a reader that leaves lets go of the stream
        async for event in events:
            ctx.note(event)
            if event.kind == "delta":
                sent = chunks.delta(event.data["content"], event.chunk)
            elif event.kind == "done":
                sent = chunks.done(event.data)
            else:
                assert event.error is not None  # an `error` event carries its error
                yield _data(event.error.to_openai_json())
                return
            for chunk in sent:
                yield _data(chunk)
    yield "data: [DONE]\n\n"


def _data(item: dict[str, Any]) -> str:
    return f"data: {compact(item)}\n\n"

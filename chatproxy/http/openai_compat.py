"""Own the OpenAI-compatible API: `POST /v1/chat/completions` and `GET /v1/models`.

The official SDKs work with `base_url=<proxy>/v1` and a proxy key as their `api_key`. With a chat
id (`X-Chat-Id` header, or `metadata.chat_id`) the client sends only its new user message: the
proxy adds the stored history and stores the turn, exactly as `POST /<chat_id>/chat` does (locks,
idempotency, budgets, tenants). Without one it is an authenticated pass-through that stores
nothing. Answers are standard `chat.completion` objects, or `chat.completion.chunk` server-sent
events with `stream: true`; errors use OpenAI's `{"error": {...}}` shape (see `app.py`).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr
from starlette.responses import Response

from chatproxy.errors import InvalidChatId, ProxyError, ValidationFailed
from chatproxy.http.routes import Context, EventStream, Handler, Reply
from chatproxy.service.defaults import TurnOptions
from chatproxy.service.turns import StreamEvent, StreamingTurn, TurnResult
from chatproxy.store.base import ChatRef, valid_chat_id
from chatproxy.tokens import content_text
from chatproxy.upstream.client import AsyncReplyStream


class ChatMessage(BaseModel):
    """One message of a chat completion request (other fields are passed through)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: StrictStr | list[dict[str, Any]] | None = None


class CompletionRequest(BaseModel):
    """The standard request; fields this proxy does not use are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    messages: list[ChatMessage] = Field(min_length=1, max_length=10_000)
    stream: StrictBool = False
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    metadata: dict[str, StrictStr] | None = None
    stream_options: dict[str, Any] | None = None

    @property
    def options(self) -> TurnOptions:
        return TurnOptions(
            self.model, self.max_completion_tokens or self.max_tokens, self.temperature
        )

    @property
    def include_usage(self) -> bool:
        return bool((self.stream_options or {}).get("include_usage"))


async def list_models(ctx: Context) -> Reply:
    return {
        "object": "list",
        "data": [
            {"id": model, "object": "model", "created": 0, "owned_by": "chatproxy"}
            for model in ctx.settings.allowed_models
        ],
    }


async def chat_completions(ctx: Context) -> Reply | Response:
    idempotency_key = ctx.idempotency_key  # a malformed one is refused, chat id or not
    request = await ctx.body(CompletionRequest)
    caller = ctx.caller
    assert caller is not None
    chat_id = ctx.request.headers.get("X-Chat-Id")  # an empty one is an invalid id, not none
    if chat_id is None:
        chat_id = (request.metadata or {}).get("chat_id")
    if chat_id is None:
        return await _pass_through(ctx, caller.tenant, request)
    if not valid_chat_id(chat_id):
        raise InvalidChatId()
    chat = ChatRef(caller.tenant, chat_id)
    ctx.log_fields["chat_id"] = chat_id
    content = _new_user_message(request, ctx.settings.max_content_chars)
    result = await ctx.service.content_turn(
        chat,
        content,
        stream=request.stream,
        idempotency_key=idempotency_key,
        options=request.options,
    )
    if isinstance(result, StreamingTurn):
        return _sse(_chunks_of_turn(result.events, request.include_usage))
    assert isinstance(result, TurnResult)
    ctx.log_fields["tokens"] = result.body.get("tokens")
    headers = {"Idempotent-Replayed": "true"} if result.replayed else {}
    return _completion(result.body), 200, headers


ROUTES: list[tuple[str, str, Handler]] = [
    ("/v1/models", "GET", list_models),
    ("/v1/chat/completions", "POST", chat_completions),
]


async def _pass_through(ctx: Context, tenant: str, request: CompletionRequest) -> Reply | Response:
    messages = [m.model_dump(exclude_none=True) for m in request.messages]
    answer = await ctx.service.pass_through(
        tenant, messages, stream=request.stream, options=request.options
    )
    if isinstance(answer, AsyncReplyStream):
        return _sse(_chunks_of_stream(ctx, tenant, answer, request.include_usage))
    ctx.log_fields["tokens"] = answer.get("tokens")
    return _completion(answer)


def _new_user_message(request: CompletionRequest, max_chars: int) -> str | list[dict[str, Any]]:
    """With a chat id the client sends only its new user message; the proxy has the rest."""
    if len(request.messages) != 1 or request.messages[0].role != "user":
        raise ValidationFailed(
            "messages: with a chat id, send only the new user message; the proxy adds the"
            " chat's history and system prompt"
        )
    content = request.messages[0].content
    text, images = content_text(content)
    if content is None or (not text.strip() and not images):
        raise ValidationFailed("messages: the user message has no content")
    if len(text) > max_chars:
        raise ValidationFailed(f"messages: at most {max_chars} characters (MAX_CONTENT_CHARS)")
    return content


def _completion(reply: dict[str, Any]) -> dict[str, Any]:
    """Shape a stored reply as a standard chat.completion."""
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(reply.get("created_at", time.time())),
        "model": reply.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply["content"], "refusal": None},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": reply.get("tokens"),
    }


class _Chunks:
    """Builds chat.completion.chunk objects that share one id."""

    def __init__(self) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())
        self.model: str | None = None

    def chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._base([choice])

    def usage(self, tokens: Any) -> dict[str, Any]:
        return {**self._base([]), "usage": tokens}

    def _base(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }


async def _chunks_of_turn(
    events: AsyncIterable[StreamEvent], include_usage: bool
) -> AsyncIterator[Any]:
    chunks = _Chunks()
    yield chunks.chunk({"role": "assistant", "content": ""})
    async for event in events:
        if event.kind == "delta":
            yield chunks.chunk({"content": event.data["content"]})
        elif event.kind == "done":
            chunks.model = event.data.get("model")
            yield chunks.chunk({}, "stop")
            if include_usage:
                yield chunks.usage(event.data.get("tokens"))
        else:
            yield {"error": _openai_error_body(event.data)}
            return
    yield "[DONE]"


async def _chunks_of_stream(
    ctx: Context, tenant: str, stream: AsyncReplyStream, include_usage: bool
) -> AsyncIterator[Any]:
    """The chunks of a pass-through stream; its connection is given back however far it is
    read (a client that hangs up cancels the answer: `finally` runs then too)."""
    chunks = _Chunks()
    try:
        yield chunks.chunk({"role": "assistant", "content": ""})
        async for text in stream:
            yield chunks.chunk({"content": text})
        completion = stream.completion()
    except ProxyError as exc:
        yield {"error": _openai_error_body(exc.to_json())}
        return
    finally:
        stream.close()
    await ctx.service.spend(tenant, completion.usage.get("total_tokens", 0))
    chunks.model = completion.model
    yield chunks.chunk({}, "stop")
    if include_usage:
        yield chunks.usage(completion.usage)
    yield "[DONE]"


def _sse(items: AsyncIterator[Any]) -> Response:
    async def lines() -> AsyncIterator[str]:
        async for item in items:
            data = item if isinstance(item, str) else json.dumps(item, separators=(",", ":"))
            yield f"data: {data}\n\n"

    headers = {"Cache-Control": "no-cache"}
    return EventStream(lines(), headers)


def _openai_error_body(error: dict[str, Any]) -> dict[str, Any]:
    return {"message": error.get("error"), "type": "api_error", "code": error.get("code")}

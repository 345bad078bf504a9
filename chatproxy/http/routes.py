"""Own the HTTP handlers: parse and validate a request, call the service, shape the response.

Each handler takes the request context and returns a JSON-able body (and optionally a status).
Request bodies are validated with pydantic; `app.py` turns any error into a JSON response.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from werkzeug.datastructures import MIMEAccept
from werkzeug.http import parse_accept_header

from chatproxy.config import Settings
from chatproxy.errors import (
    Forbidden,
    InvalidChatId,
    InvalidIdempotencyKey,
    InvalidJSON,
    PayloadTooLarge,
    StoreError,
    ValidationFailed,
)
from chatproxy.http.auth import Authenticator, Caller
from chatproxy.jsontext import compact
from chatproxy.service.chats import Chats
from chatproxy.service.defaults import TurnOptions
from chatproxy.service.turns import ChatService, StreamingTurn, TurnResult
from chatproxy.store.base import OPEN_TENANT, ChatRef, valid_chat_id

MAX_URL_CHARS = 2048
MAX_PAGE = 1000
MAX_DIGITS = 18  # a whole number in a query: below 2**63
DEFAULT_CHATS_PAGE = 20
MAX_DATA_URL_CHARS = 20 * 1024 * 1024

IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")

Body = dict[str, Any] | list[Any]
Reply = Body | tuple[Body, int] | tuple[Body, int, dict[str, str]]

B = TypeVar("B", bound=BaseModel)


class App(Protocol):
    """What handlers need of the application."""

    settings: Settings
    service: ChatService
    chats: Chats
    auth: Authenticator


class EventStream(StreamingResponse):
    """Server-sent events from an async iterator of texts, each sent as it comes.

    Starlette's own streaming response also listens for the client's disconnect, in a task group
    of its own, on ASGI servers before spec 2.4 (uvicorn's httptools server is 2.3): that cost a
    stream's first event about 0.1 ms. Nothing here needs to stop early: a streamed turn is read
    and stored by its own task whoever listens, and uvicorn drops what is sent to a client that
    has gone, so a stream ends when its events do.
    """

    def __init__(self, events: AsyncIterator[str], headers: dict[str, str]):
        super().__init__(events, media_type="text/event-stream", headers=headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.stream_response(send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()  # its `finally` runs now, also when the send was cancelled
        if self.background is not None:
            await self.background()


@dataclass
class Context:
    """What a handler gets: the request, the app, the caller, URL values and log fields."""

    request: Request
    app: App
    caller: Caller | None
    args: dict[str, str]
    log_fields: dict[str, Any]
    _raw_body: bytes | None = field(default=None, repr=False)

    @property
    def service(self) -> ChatService:
        return self.app.service

    @property
    def chats(self) -> Chats:
        return self.app.chats

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def path(self) -> str:
        """The request's path, percent-decoded."""
        path: str = self.request.scope["path"]
        return path

    @property
    def chat(self) -> ChatRef:
        """Return the validated chat addressed by the URL, in the caller's tenant."""
        chat_id = self.args["chat_id"]
        if not valid_chat_id(chat_id):
            raise InvalidChatId()
        return ChatRef(self.caller.tenant if self.caller else OPEN_TENANT, chat_id)

    def query_int(self, name: str, *, minimum: int, maximum: int | None = None) -> int | None:
        """Read an optional whole-number query parameter within bounds."""
        raw = self.request.query_params.get(name)
        if raw is None:
            return None
        # ASCII digits only ("²".isdigit() is true, but int() refuses it), and few enough of
        # them for int() and for a store's 64-bit integers.
        digits = raw.isascii() and raw.isdigit() and len(raw) <= MAX_DIGITS
        if not digits or int(raw) < minimum or (maximum is not None and int(raw) > maximum):
            upper = f" and at most {maximum}" if maximum is not None else ""
            raise ValidationFailed(f"{name}: must be a whole number at least {minimum}{upper}")
        return int(raw)

    def query_number(self, name: str) -> float | None:
        """Read an optional non-negative number query parameter (a listing cursor)."""
        raw = self.request.query_params.get(name)
        if raw is None:
            return None
        try:
            value = float(raw)
        except ValueError:
            value = -1.0
        if not 0 <= value < float("inf"):
            raise ValidationFailed(f"{name}: must be a number, as given in next_before")
        return value

    def require_admin(self) -> None:
        """Refuse callers whose key is not an admin key."""
        if self.caller is None or not self.caller.admin:
            raise Forbidden("only an admin key (ADMIN_KEYS) may change the global system prompt")

    @property
    def idempotency_key(self) -> str | None:
        """Return the validated `Idempotency-Key` header, if the client sent one."""
        key = self.request.headers.get("Idempotency-Key")
        if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidIdempotencyKey()
        return key

    async def body(self, model: type[B]) -> B:
        """Read the body as JSON (whatever the Content-Type, as curl -d sends) and validate it."""
        raw = await self._read_body()
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise InvalidJSON() from None
        if not isinstance(data, dict):
            raise InvalidJSON()
        try:
            return model.model_validate(
                data, context={"max_chars": self.settings.max_content_chars}
            )
        except ValidationError as exc:
            raise ValidationFailed(_describe(exc)) from None

    async def _read_body(self) -> bytes:
        """The body, read once, refused past MAX_BODY_BYTES without reading the rest."""
        if self._raw_body is not None:
            return self._raw_body
        limit = self.settings.max_body_bytes
        length = self.request.headers.get("Content-Length", "")
        if length.isascii() and length.isdigit() and int(length) > limit:
            raise PayloadTooLarge(limit)
        raw = bytearray()
        async for chunk in self.request.stream():
            raw += chunk
            if len(raw) > limit:
                raise PayloadTooLarge(limit)
        self._raw_body = bytes(raw)
        return self._raw_body


class ContentBody(BaseModel):
    """`{"content": "<text>"}`; other fields are ignored."""

    model_config = ConfigDict(extra="ignore")

    content: StrictStr = Field(min_length=1)
    stream: StrictBool = False
    model: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1)

    @property
    def options(self) -> TurnOptions:
        """The settings this turn overrides, if any."""
        return TurnOptions(self.model, self.max_tokens, self.temperature)

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        limit = (info.context or {}).get("max_chars")
        if limit is not None and len(value) > limit:
            raise ValueError(f"must be at most {limit} characters (MAX_CONTENT_CHARS)")
        return value


class SettingsBody(BaseModel):
    """A change to a chat's settings: only the fields sent change; null removes a setting."""

    model_config = ConfigDict(extra="forbid")

    model: StrictStr | None = Field(default=None, min_length=1, max_length=128)
    temperature: StrictFloat | None = Field(default=None, ge=0, le=2)
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    system: StrictStr | None = Field(default=None, min_length=1)

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class ImageBody(ContentBody):
    """`{"content": "<text>", "url": "<image URL>"}`: an http(s) or data:image URL."""

    url: StrictStr

    @field_validator("url")
    @classmethod
    def _image_url(cls, value: str) -> str:
        if value.startswith("data:image/") and len(value) <= MAX_DATA_URL_CHARS:
            return value
        if re.fullmatch(r"https?://[^\s/$.?#][^\s]*", value) and len(value) <= MAX_URL_CHARS:
            return value
        raise ValueError(
            f"must be an http(s) URL of at most {MAX_URL_CHARS} characters or a data:image/ URL"
        )


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


async def post_chat(ctx: Context) -> Reply | Response:
    key = ctx.idempotency_key
    body = await ctx.body(ContentBody)
    if _wants_stream(ctx, body):
        turn = await ctx.service.stream_turn(
            ctx.chat, body.content, idempotency_key=key, options=body.options
        )
        return _event_stream(ctx, body.content, turn)
    result = await ctx.service.turn(
        ctx.chat, body.content, idempotency_key=key, options=body.options
    )
    return _turn_reply(ctx, body.content, result)


async def post_image(ctx: Context) -> Reply | Response:
    key = ctx.idempotency_key
    body = await ctx.body(ImageBody)
    if _wants_stream(ctx, body):
        turn = await ctx.service.stream_turn(
            ctx.chat, body.content, image_url=body.url, idempotency_key=key, options=body.options
        )
        return _event_stream(ctx, body.content, turn)
    result = await ctx.service.image_turn(
        ctx.chat, body.content, body.url, idempotency_key=key, options=body.options
    )
    return _turn_reply(ctx, body.content, result)


def _wants_stream(ctx: Context, body: ContentBody) -> bool:
    """Stream when the body says `"stream": true` or the client accepts only server-sent events."""
    accept = parse_accept_header(ctx.request.headers.get("Accept"), MIMEAccept)
    return body.stream or (accept.best == "text/event-stream")


def _event_stream(ctx: Context, content: str, turn: StreamingTurn) -> Response:
    """Answer with server-sent events: `delta` events with the text, then `done` with the stored
    reply (or `error` if the stream broke off after it began)."""
    ctx.log_fields["stream"] = True
    ctx.log_fields["replayed"] = turn.replayed or None
    if ctx.settings.log_content:
        ctx.log_fields["content"] = content

    async def events() -> AsyncIterator[str]:
        async for event in turn.events:
            data = compact(event.data)
            yield f"event: {event.kind}\ndata: {data}\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    if turn.replayed:
        headers["Idempotent-Replayed"] = "true"
    return EventStream(events(), headers)


async def get_chat(ctx: Context) -> Reply:
    limit = ctx.query_int("limit", minimum=1, maximum=MAX_PAGE)
    before = ctx.query_int("before", minimum=0)
    return await ctx.chats.history(ctx.chat, limit=limit, before=before)


async def list_chats(ctx: Context) -> Reply:
    assert ctx.caller is not None
    limit = ctx.query_int("limit", minimum=1, maximum=MAX_PAGE) or DEFAULT_CHATS_PAGE
    before = ctx.query_number("before")
    return await ctx.chats.chats(ctx.caller.tenant, limit=limit, before=before)


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


Handler = Callable[[Context], Awaitable[Reply | Response]]

Route = tuple[str, str, Handler]

# Answered without authentication or quotas: they read nothing a caller owns.
PUBLIC_ROUTES: list[Route] = [("/", "GET", health)]

ROUTES: list[Route] = [
    ("/system", "GET", get_system),
    ("/system", "POST", post_system),
    ("/system", "DELETE", delete_system),
    ("/mod", "POST", post_moderation),
    ("/chats", "GET", list_chats),
    ("/<chat_id>/usage", "GET", get_usage),
    ("/<chat_id>/settings", "GET", get_settings),
    ("/<chat_id>/settings", "POST", post_settings),
    ("/<chat_id>/chat", "GET", get_chat),
    ("/<chat_id>/chat", "POST", post_chat),
    ("/<chat_id>/chat", "DELETE", delete_chat),
    ("/<chat_id>/clear", "POST", delete_chat),
    ("/<chat_id>/img", "POST", post_image),
    ("/<chat_id>/system", "GET", get_chat_system),
    ("/<chat_id>/system", "POST", post_chat_system),
    ("/<chat_id>/system", "DELETE", delete_chat_system),
]


def _turn_reply(ctx: Context, content: str, result: TurnResult) -> Reply:
    """Answer a turn (a replayed Idempotency-Key says so in a header) and note it for the log."""
    ctx.log_fields["tokens"] = result.body.get("tokens")
    ctx.log_fields["replayed"] = result.replayed or None
    if ctx.settings.log_content:
        ctx.log_fields["content"] = content
        ctx.log_fields["reply"] = result.body.get("content")
    if result.replayed:
        return result.body, 200, {"Idempotent-Replayed": "true"}
    return result.body


def _describe(exc: ValidationError) -> str:
    """Say what is wrong with a body in one line, e.g. `content: Field required`."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{where}: {first['msg']}"

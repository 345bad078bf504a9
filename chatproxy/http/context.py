"""Own what a handler works with: the request `Context`, and the `Route` that names a handler.

A route table is a list of `Route`s (`routes.ROUTES`, `openai_compat.ROUTES`, ...): `app.py`
routes requests by it, `apidocs.py` describes it. A handler takes a `Context` and returns a
JSON-able body (and optionally a status and headers), a Starlette response, or an event stream.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from chatproxy.config import Settings
from chatproxy.errors import (
    Forbidden,
    InvalidChatId,
    InvalidIdempotencyKey,
    InvalidJSON,
    PayloadTooLarge,
    ValidationFailed,
)
from chatproxy.http.auth import Authenticator, Caller
from chatproxy.http.bodies import IDEMPOTENCY_KEY, MAX_DIGITS
from chatproxy.http.event_stream import EventStream
from chatproxy.http.openapi_operation import Operation
from chatproxy.jsontext import Unwritable, parse_sent
from chatproxy.service.chats import Chats
from chatproxy.service.conversations import Conversations
from chatproxy.service.results import StreamEvent
from chatproxy.service.transfer import Transfer
from chatproxy.service.turns import ChatService
from chatproxy.store.items import OPEN_TENANT, ChatRef, valid_chat_id

Body = dict[str, Any] | list[Any]
Reply = Body | tuple[Body, int] | tuple[Body, int, dict[str, str]]
Answer = Reply | Response | EventStream

B = TypeVar("B", bound=BaseModel)


class App(Protocol):
    """What handlers need of the application."""

    settings: Settings
    service: ChatService
    chats: Chats
    conversations: Conversations
    transfer: Transfer
    auth: Authenticator


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
    def conversations(self) -> Conversations:
        return self.app.conversations

    @property
    def transfer(self) -> Transfer:
        return self.app.transfer

    @property
    def settings(self) -> Settings:
        return self.app.settings

    @property
    def path(self) -> str:
        """The request's path, percent-decoded."""
        path: str = self.request.scope["path"]
        return path

    @cached_property
    def chat(self) -> ChatRef:
        """Return the validated chat addressed by the URL, in the caller's tenant (checked and
        built once: the app names it in the log line before the handler uses it)."""
        chat_id = self.args["chat_id"]
        if not valid_chat_id(chat_id):
            raise InvalidChatId()
        return ChatRef(self.caller.tenant if self.caller else OPEN_TENANT, chat_id)

    def note(self, event: StreamEvent) -> None:
        """Note how a stream ended in the request's log line, as a plain answer's notes it
        (written once the stream has been sent): the reply's tokens (and text, with
        LOG_CONTENT), or the code of the error that ended it."""
        if event.kind == "done":
            self.log_fields["tokens"] = event.data.get("tokens")
            if self.settings.log_content:
                self.log_fields["reply"] = event.data.get("content")
        elif event.kind == "error" and event.error is not None:
            self.log_fields["error"] = event.error.code

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
            raise ValidationFailed(
                f"{name}: must be a whole number at least {minimum}{upper}", param=name
            )
        return int(raw)

    def query_flag(self, name: str, value: str) -> bool:
        """Whether the optional query parameter `name` is `value` (any other value is refused)."""
        raw = self.request.query_params.get(name)
        if raw is not None and raw != value:
            raise ValidationFailed(f"{name}: must be {value}", param=name)
        return raw is not None

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
            raise ValidationFailed(f"{name}: must be a number, as given in next_before", param=name)
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

    def prefers(self, media_type: str) -> bool:
        """Say whether `media_type` comes first in the request's `Accept` header (a lower-case
        type: one the header does not name is not ranked, as for almost every turn)."""
        accept = self.request.headers.get("Accept")
        if accept is None or media_type not in accept.lower():
            return False
        return preferred_media_type(accept) == media_type

    async def body(self, model: type[B]) -> B:
        """Read the body as JSON (whatever the Content-Type, as curl -d sends) and validate it."""
        raw = await self._read_body()
        try:
            data = parse_sent(raw)
        except Unwritable as exc:
            raise InvalidJSON(f"the request body cannot be kept: {exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise InvalidJSON() from None
        if not isinstance(data, dict):
            raise InvalidJSON()
        try:
            bounds = {
                "max_chars": self.settings.max_content_chars,
                "max_tools_chars": self.settings.max_tools_chars,
            }
            return model.model_validate(data, context=bounds)
        except ValidationError as exc:
            raise ValidationFailed(_describe(exc), param=_param(exc)) from None

    async def raw_body(self) -> bytes:
        """The body as sent, read once, refused past MAX_BODY_BYTES without reading the rest."""
        return await self._read_body()

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


Handler = Callable[[Context], Awaitable[Answer]]


@dataclass(frozen=True)
class Route:
    """One entry of the route table: a path in Starlette's form (`/{chat_id}/chat`), a method
    and its handler. A public route is answered without a key or quotas (it reads nothing a
    caller owns); `doc` is its OpenAPI operation when the route makes its own (a page's files),
    else `openapi.py` has it by path and method. A route not `offered` is an endpoint of
    OpenAI's API that the proxy does not serve: its handler (a 404) answers every method of a
    path whose routes are all such, so that none is a 405 telling to use the method it refuses
    too (`router.py`)."""

    path: str
    method: str
    handler: Handler
    public: bool = False
    doc: Operation | None = None
    offered: bool = True


def preferred_media_type(accept: str | None) -> str | None:
    """The media type an `Accept` header asks for first: the most specific range (`a/b` before
    `a/*` before `*/*`), then the highest `q`, then the first listed; None without one."""
    ranked = []
    for position, item in enumerate((accept or "").split(",")):
        media_type, *params = (part.strip() for part in item.split(";"))
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = -1.0
        if media_type and 0 <= quality <= 1:
            specificity = tuple(part != "*" for part in media_type.split("/"))
            ranked.append(((specificity, quality), -position, media_type.lower()))
    return max(ranked)[2] if ranked else None


def _describe(exc: ValidationError) -> str:
    """Say what is wrong with a body in one line, e.g. `content: Field required`, or for our own
    validators' `ValueError`s their words alone (`content: must not be blank`), without the
    `Value error, ` that pydantic puts before them (a check of the whole body says which fields
    it is about)."""
    first = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"]) or "body"
    error = first.get("ctx", {}).get("error")
    ours = first["type"] == "value_error" and error is not None
    what = str(error) if ours else first["msg"]
    if ours and not first["loc"]:  # a check of the whole body names its fields itself
        return what
    return f"{where}: {what}"


def _param(exc: ValidationError) -> str | None:
    """The field a body's first error is about, as OpenAI names one (`items[3].type`); None
    for a check of the whole body."""
    param = ""
    for part in exc.errors(include_url=False)[0]["loc"]:
        param += f"[{part}]" if isinstance(part, int) else f".{part}" if param else str(part)
    return param or None

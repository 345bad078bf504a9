"""Own the HTTP application: build it from settings, route each request, turn errors into JSON.

`create_app(settings)` wires the store, the authenticator, the quotas and the service (over the
model client the settings configure: `chatproxy.service.open_service`). `ProxyApp` is an ASGI
application, to which functions-framework hands every request (main.py, `every_path.py`). It
routes by the route table (`ROUTES` of the handler modules, and the docs' routes) with
Starlette's `Router`. Every request, public, unknown or refused, counts against its client
address's limit first. For every route but the public ones (health, pages, the spec) it
authenticates the caller and counts the request against its key's limit before any store or
upstream work; a path that names no route, or a method that a private path lacks, needs a key
too, when keys are configured. It is the one place where an error becomes a response, and it
logs each request once, after the answer is sent (an answer that fails once sent, an error
record instead).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from chatproxy.config import Settings
from chatproxy.errors import MethodNotAllowed, NoRoute, ProxyError
from chatproxy.http import apidocs, exports, openai_compat, responses, routes, ui
from chatproxy.http.auth import Authenticator, Caller
from chatproxy.http.context import Answer, Context, Route
from chatproxy.http.conversations import ROUTES as CONVERSATION_ROUTES
from chatproxy.http.event_stream import EventStream
from chatproxy.http.router import PathRoutes, build_router
from chatproxy.jsontext import compact
from chatproxy.logs import EXECUTION, execution, request_fields
from chatproxy.service import Upstream, open_quotas, open_service
from chatproxy.service.chats import Chats
from chatproxy.service.conversations import Conversations
from chatproxy.service.quotas import Quotas
from chatproxy.service.transfer import Transfer
from chatproxy.service.turns import ChatService
from chatproxy.store import Store, open_store

log = logging.getLogger("chatproxy")
access_log = logging.getLogger("chatproxy.requests")


class ProxyApp:
    """Routes requests to handlers; every answer, error or not, is JSON. An ASGI application."""

    def __init__(
        self,
        settings: Settings,
        service: ChatService,
        chats: Chats,
        quotas: Quotas,
        auth: Authenticator,
        conversations: Conversations,
        transfer: Transfer,
    ):
        self.settings = settings
        self.service = service
        self.chats = chats
        self.quotas = quotas
        self.auth = auth
        self.conversations = conversations
        self.transfer = transfer
        api = [*openai_compat.ROUTES, *responses.ROUTES, *routes.ROUTES, *ui.ROUTES]
        api += [*CONVERSATION_ROUTES, *exports.ROUTES]
        self.routes: list[Route] = [*api, *apidocs.routes(api)]
        self.router = build_router(self.routes, self.answer)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)

    async def answer(
        self, scope: Scope, receive: Receive, send: Send, path: PathRoutes | None = None
    ) -> None:
        """Answer a request that the router matched to `path`, or to no path. An error while
        the answer is sent (a stream whose source fails) is logged here, as one JSON record, and
        ends the connection: the status is sent already."""
        request = Request(scope, receive)
        named = (
            EXECUTION.set(execution(request.headers)) if self.settings.log_execution_id else None
        )
        try:
            response = await self.handle(request, path)
            await response(scope, receive, send)
        except Exception:
            log.exception("error while answering %s %s", request.method, path_of(request))
            raise
        finally:
            if named is not None:
                EXECUTION.reset(named)

    async def handle(self, request: Request, path: PathRoutes | None) -> Response | EventStream:
        """Answer one request, and log it once the answer has been sent (a background task of
        the response): the line costs the client no time, and a stream's line carries the whole
        stream's duration."""
        started = time.perf_counter()
        client_ip = self.client_ip(request)
        fields: dict[str, Any] = {}
        try:
            response = await self._dispatch(request, path, client_ip, fields)
        except ProxyError as exc:
            response = error_response(exc, openai=_is_openai_path(request))
            fields["error"] = exc.code
        except Exception:
            log.exception("unhandled error on %s %s", request.method, path_of(request))
            response = error_response(ProxyError(), openai=_is_openai_path(request))
            fields["error"] = ProxyError.code
        status = response.status_code

        async def log_request() -> None:  # a coroutine: Starlette runs a function in a thread
            access_log.info(
                "%s %s %d",
                request.method,
                path_of(request),
                status,
                extra={
                    "fields": request_fields(
                        method=request.method,
                        path=path_of(request),
                        status=status,
                        latency=time.perf_counter() - started,
                        remote_ip=client_ip,
                        extra=fields,
                    )
                },
            )

        response.background = BackgroundTask(log_request)
        return response

    async def _dispatch(
        self, request: Request, path: PathRoutes | None, client_ip: str, fields: dict[str, Any]
    ) -> Response | EventStream:
        await self.quotas.admit_address(client_ip)  # every request: public, unknown, unauthorized
        if path is None:
            self.auth.authenticate(request.headers)  # with keys, say nothing more without one
            raise NoRoute(f"no route for {path_of(request)}")
        fields["route"] = path.logged_as
        try:
            route = path.route_for(request.method)
        except MethodNotAllowed:
            if not all(each.public for each in path.by_method.values()):
                self.auth.authenticate(request.headers)  # a private path's methods need a key
            raise
        caller = None if route.public else await self._admit_caller(request, client_ip, fields)
        args = {name: request.path_params[name] for name in path.params}
        ctx = Context(request, self, caller, args, fields)
        if "chat_id" in args:
            fields["chat_id"] = ctx.chat.chat_id  # an invalid id is refused before the body
        return _response(await route.handler(ctx))

    async def _admit_caller(
        self, request: Request, client_ip: str, fields: dict[str, Any]
    ) -> Caller:
        """Authenticate the caller of a private route and count the request against RATE_LIMIT:
        its key's, or on a service without keys its address's (the address's own limit,
        RATE_LIMIT_PER_ADDRESS, has counted every request before routing)."""
        caller = self.auth.authenticate(request.headers)
        fields["tenant"] = caller.tenant
        await self.quotas.admit(("ip", client_ip) if self.auth.open else ("key", caller.tenant))
        return caller

    def client_ip(self, request: Request) -> str:
        """Return the client's address: the socket peer, or with TRUSTED_PROXY_HOPS the entry
        that many hops from the right of X-Forwarded-For (entries further left can be forged)."""
        hops = self.settings.trusted_proxy_hops
        forwarded = ",".join(request.headers.getlist("X-Forwarded-For"))  # lines are one list
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if hops and chain:
            return chain[-min(hops, len(chain))]
        return request.client.host if request.client else "unknown"

    async def aclose(self) -> None:
        """Release the store's and the upstream's connections (streams still being stored finish
        first)."""
        await self.service.close()
        await self.quotas.close()


def _response(result: Answer) -> Response | EventStream:
    if isinstance(result, Response | EventStream):
        return result
    if not isinstance(result, tuple):
        return json_response(result)
    return json_response(*result)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize `body` as a JSON response."""
    text = compact(body)
    return Response(text, status_code=status, headers=headers, media_type="application/json")


def error_response(exc: ProxyError, *, openai: bool = False) -> Response:
    """Turn a proxy error into its JSON response, headers included (OpenAI's shape on /v1)."""
    body = exc.to_openai_json() if openai else exc.to_json()
    return json_response(body, exc.status, exc.headers)


def path_of(request: Request) -> str:
    """The request's path, percent-decoded (Starlette's `request.url` would parse a decoded `?`
    or `#` in a chat id as the start of the query or fragment)."""
    path: str = request.scope["path"]
    return path


def _is_openai_path(request: Request) -> bool:
    return path_of(request).startswith("/v1/")


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    upstream: Upstream | None = None,
) -> ProxyApp:
    """Build the application; tests pass their own store or upstream."""
    if store is None:
        store = open_store(settings)
    auth = Authenticator(settings.api_keys)
    if auth.open:
        log.warning(
            "no PROXY_API_KEYS: the service is OPEN. Anyone who can reach it can read every chat"
            " and spend the upstream account's money. Set PROXY_API_KEYS before exposing it."
        )
    quotas = open_quotas(settings, store)
    service = open_service(settings, store, quotas, upstream)
    where = settings.redis.describe() if settings.redis else settings.store_path
    log.info(
        "chatproxy ready: store=%s (%s) upstream=%s model=%s auth=%s rate_limit=%s per_address=%s",
        settings.store_kind,
        where,
        settings.upstream_mode,
        settings.model,
        "open" if auth.open else f"{len(settings.api_keys)} keys",
        settings.rate_limit or "none",
        settings.rate_limit_per_address or "none",
    )
    chats = Chats(settings, store)
    conversations = Conversations(settings, store)
    return ProxyApp(settings, service, chats, quotas, auth, conversations, Transfer(store))

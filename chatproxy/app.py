"""Own the HTTP application: build it from settings, route each request, turn errors into JSON.

`create_app(settings)` wires the store, the upstream (the bundled dev upstream when no key and no
base URL are configured), the authenticator, the quotas and the service. `ProxyApp.handle`
is what the Cloud Function calls. For every route but the public ones (health, pages, the spec) it
authenticates the caller and counts the request against its limits before any store or upstream
work; it is the one place where an error becomes a response, and it logs each request once, after
the answer is sent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask_cors import cross_origin
from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from chatproxy import apidocs, openai_compat, routes, ui
from chatproxy.auth import Authenticator
from chatproxy.bridge import EventLoop
from chatproxy.chats import Chats
from chatproxy.config import Settings
from chatproxy.devupstream import DevUpstream
from chatproxy.errors import MethodNotAllowed, NotFound, ProxyError
from chatproxy.jsontext import compact
from chatproxy.logs import request_fields
from chatproxy.quotas import Identity, Quotas
from chatproxy.service import ChatService
from chatproxy.store import AsyncStore, open_async_store
from chatproxy.upstream_aio import AsyncUpstream

log = logging.getLogger("chatproxy")
DEV_STREAM_PAUSE = 0.03  # seconds between the dev upstream's streamed words, to see them arrive
access_log = logging.getLogger("chatproxy.requests")


class ProxyApp:
    """Routes requests to handlers; every answer, error or not, is JSON."""

    def __init__(
        self,
        settings: Settings,
        service: ChatService,
        chats: Chats,
        quotas: Quotas,
        auth: Authenticator,
        loop: EventLoop,
    ):
        self.loop = loop  # where the service, the store and the upstream client run
        self.settings = settings
        self.service = service
        self.chats = chats
        self.quotas = quotas
        self.auth = auth
        public = routes.PUBLIC_ROUTES + ui.ROUTES + apidocs.ROUTES
        private = routes.ROUTES + openai_compat.ROUTES
        self._public = {handler for _, _, handler in public}
        self._map = Map(
            [
                Rule(path, methods=[method], endpoint=handler)
                for path, method, handler in public + private
            ],
            strict_slashes=False,
            merge_slashes=False,
        )

    def handle(self, request: Request) -> Response:
        """Answer one request, and log it once the answer has been sent (the server closes the
        response then): the line costs the client no time, and a stream's line carries the
        whole stream's duration."""
        started = time.perf_counter()
        client_ip = self.client_ip(request)
        fields: dict[str, Any] = {}
        try:
            response = self._dispatch(request, client_ip, fields)
        except ProxyError as exc:
            response = error_response(exc, openai=_is_openai_path(request))
            fields["error"] = exc.code
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            response = error_response(ProxyError(), openai=_is_openai_path(request))
            fields["error"] = ProxyError.code
        status = response.status_code

        def log_request() -> None:
            access_log.info(
                "%s %s %d",
                request.method,
                request.path,
                status,
                extra={
                    "fields": request_fields(
                        method=request.method,
                        path=request.path,
                        status=status,
                        latency=time.perf_counter() - started,
                        remote_ip=client_ip,
                        extra=fields,
                    )
                },
            )

        response.call_on_close(log_request)
        return response

    def _dispatch(self, request: Request, client_ip: str, fields: dict[str, Any]) -> Response:
        adapter = self._map.bind_to_environ(request.environ)
        try:
            rule, args = adapter.match(return_rule=True)
        except WerkzeugNotFound:
            raise NotFound(f"no route for {request.path}") from None
        except WerkzeugMethodNotAllowed as exc:
            raise MethodNotAllowed(list(exc.valid_methods or [])) from None
        fields["route"] = rule.rule
        handler: routes.Handler = rule.endpoint
        caller = None
        if handler not in self._public:
            caller = self.auth.authenticate(request.headers)
            fields["tenant"] = caller.tenant
            identities: list[Identity] = [("ip", client_ip)]
            if not self.auth.open:
                identities.insert(0, ("key", caller.tenant))
            self.loop.run(self.quotas.admit(identities))
        ctx = routes.Context(request, self, caller, dict(args), fields)
        if "chat_id" in args:
            fields["chat_id"] = ctx.chat.chat_id  # an invalid id is refused before the body
        result = handler(ctx)
        if isinstance(result, Response):
            return result
        if not isinstance(result, tuple):
            return json_response(result)
        return json_response(*result)

    def client_ip(self, request: Request) -> str:
        """Return the client's address: the socket peer, or with TRUSTED_PROXY_HOPS the entry
        that many hops from the right of X-Forwarded-For (entries further left can be forged)."""
        hops = self.settings.trusted_proxy_hops
        forwarded = request.headers.get("X-Forwarded-For", "")
        chain = [part.strip() for part in forwarded.split(",") if part.strip()]
        if hops and chain:
            return chain[-min(hops, len(chain))]
        return request.remote_addr or "unknown"

    def close(self) -> None:
        """Release the store's and the upstream's connections, and stop the event loop."""
        self.loop.run(self.service.close())
        self.loop.close()


View = Callable[[Request], Response]

CORS_HEADERS_IN = ["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "X-Chat-Id"]
CORS_HEADERS_OUT = [
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Idempotent-Replayed",
]


def with_cors(view: View, origins: tuple[str, ...]) -> View:
    """Answer browsers from `origins` (ALLOWED_ORIGINS) with flask-cors, preflights included.

    Origins not on the list get no CORS headers; with no list, no CORS at all.
    """
    if not origins:
        return view
    allowed: str | list[str] = "*" if origins == ("*",) else list(origins)

    def answer(request: Request) -> Response:  # flask-cors marks the function it wraps
        return view(request)

    wrapped: View = cross_origin(
        origins=allowed,
        methods=["GET", "POST", "DELETE"],
        allow_headers=CORS_HEADERS_IN,
        expose_headers=CORS_HEADERS_OUT,
        max_age=600,
        send_wildcard=allowed == "*",
    )(answer)
    return wrapped


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize `body` as a JSON response."""
    text = compact(body)
    return Response(text, status=status, headers=headers, mimetype="application/json")


def error_response(exc: ProxyError, *, openai: bool = False) -> Response:
    """Turn a proxy error into its JSON response, headers included (OpenAI's shape on /v1)."""
    body = exc.to_openai_json() if openai else exc.to_json()
    return json_response(body, exc.status, exc.headers)


def _is_openai_path(request: Request) -> bool:
    return request.path.startswith("/v1/")


def create_app(
    settings: Settings,
    *,
    store: AsyncStore | None = None,
    upstream: AsyncUpstream | None = None,
) -> ProxyApp:
    """Build the application; tests pass their own store or upstream."""
    if upstream is None:
        base_url = None
        if settings.upstream_mode == "dev":
            base_url = DevUpstream(chunk_delay=DEV_STREAM_PAUSE).start()
            log.warning(
                "no GPT_API_KEY or OPENAI_BASE_URL: using the bundled offline dev upstream at %s;"
                " replies are canned. Set GPT_API_KEY to talk to OpenAI.",
                base_url,
            )
        upstream = AsyncUpstream.from_settings(settings, base_url)
    if store is None:
        store = open_async_store(settings)
    auth = Authenticator(settings.api_keys)
    if auth.open:
        log.warning(
            "no PROXY_API_KEYS: the service is OPEN. Anyone who can reach it can read every chat"
            " and spend the upstream account's money. Set PROXY_API_KEYS before exposing it."
        )
    quotas = Quotas.from_settings(settings, store)
    where = settings.redis.describe() if settings.redis else settings.store_path
    log.info(
        "chatproxy ready: store=%s (%s) upstream=%s model=%s auth=%s rate_limit=%s",
        settings.store_kind,
        where,
        settings.upstream_mode,
        settings.model,
        "open" if auth.open else f"{len(settings.api_keys)} keys",
        settings.rate_limit or "none",
    )
    service = ChatService(settings, store, upstream, quotas)
    return ProxyApp(settings, service, Chats(settings, store), quotas, auth, EventLoop())

"""Own the HTTP application: build it from settings, route each request, turn errors into JSON.

`create_app(settings)` wires the store, the upstream (the bundled dev upstream when no key and no
base URL are configured) and the service. `ProxyApp.handle(request)` is what the Cloud Function
calls; it is the one place where an error becomes a response.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from werkzeug.exceptions import MethodNotAllowed as WerkzeugMethodNotAllowed
from werkzeug.exceptions import NotFound as WerkzeugNotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from chatproxy import routes
from chatproxy.config import Settings
from chatproxy.devupstream import DevUpstream
from chatproxy.errors import MethodNotAllowed, NotFound, ProxyError
from chatproxy.service import ChatService
from chatproxy.store import Store, open_store
from chatproxy.upstream import Upstream

log = logging.getLogger("chatproxy")


class ProxyApp:
    """Routes requests to handlers; every answer, error or not, is JSON."""

    def __init__(self, settings: Settings, service: ChatService):
        self.settings = settings
        self.service = service
        self._map = Map(
            [
                Rule(path, methods=[method], endpoint=handler)
                for path, method, handler in routes.ROUTES
            ],
            strict_slashes=False,
            merge_slashes=False,
        )

    def handle(self, request: Request) -> Response:
        """Answer one request."""
        try:
            adapter = self._map.bind_to_environ(request.environ)
            try:
                handler, args = adapter.match()
            except WerkzeugNotFound:
                raise NotFound(f"no route for {request.path}") from None
            except WerkzeugMethodNotAllowed as exc:
                raise MethodNotAllowed(list(exc.valid_methods or [])) from None
            ctx = routes.Context(request, self.service, self.settings, dict(args))
            if "chat_id" in args:
                _ = ctx.chat  # an invalid id is refused before the body is read
            result = handler(ctx)
        except ProxyError as exc:
            return error_response(exc)
        except Exception:
            log.exception("unhandled error on %s %s", request.method, request.path)
            return error_response(ProxyError())
        if not isinstance(result, tuple):
            return json_response(result)
        return json_response(*result)

    def close(self) -> None:
        """Release the store's and the upstream's connections."""
        self.service.close()


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize `body` as a JSON response."""
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    return Response(text, status=status, headers=headers, mimetype="application/json")


def error_response(exc: ProxyError) -> Response:
    """Turn a proxy error into its JSON response, headers included."""
    return json_response(exc.to_json(), exc.status, exc.headers)


def create_app(
    settings: Settings, *, store: Store | None = None, upstream: Upstream | None = None
) -> ProxyApp:
    """Build the application; tests pass their own store or upstream."""
    if upstream is None:
        base_url = None
        if settings.upstream_mode == "dev":
            base_url = DevUpstream().start()
            log.warning(
                "no GPT_API_KEY or OPENAI_BASE_URL: using the bundled offline dev upstream at %s;"
                " replies are canned. Set GPT_API_KEY to talk to OpenAI.",
                base_url,
            )
        upstream = Upstream.from_settings(settings, base_url)
    if store is None:
        store = open_store(settings)
    where = settings.redis.describe() if settings.redis else settings.store_path
    log.info(
        "chatproxy ready: store=%s (%s) upstream=%s model=%s",
        settings.store_kind,
        where,
        settings.upstream_mode,
        settings.model,
    )
    return ProxyApp(settings, ChatService(settings, store, upstream))

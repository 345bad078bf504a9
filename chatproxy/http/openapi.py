"""Own the OpenAPI 3.1 spec of the service: the document, every route in it, and the operations
of the docs and the pages.

The spec is generated from the route table (`build_spec(routes)`): each route's operation
(`openapi_operation.Operation`) is its own `doc`, or the one listed by its path (as OpenAPI
writes it, `template`) and method in `OPERATIONS`, gathered here with the schemas from the
module of each API (`openapi_chats.py`, `openapi_settings.py`, `openapi_completions.py`,
`openapi_responses.py`, `openapi_conversations.py`, `openapi_exports.py`); whether it needs a
key comes from the route.
`openapi_schemas.py` puts the components together: the APIs' schemas beside the shared parts
(bodies from the pydantic models of `bodies.py`, errors, parameters). `apidocs.py` serves the
spec at `GET /openapi.json`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Protocol

from chatproxy.http import (
    openapi_chats,
    openapi_completions,
    openapi_conversations,
    openapi_exports,
    openapi_responses,
    openapi_settings,
)
from chatproxy.http.openapi_operation import (
    NOT_MODIFIED,
    Operation,
    Schema,
    file_answer,
    headers,
    ok,
)
from chatproxy.http.openapi_schemas import components

OPENAPI_VERSION = "3.1.0"
API_VERSION = "1.0.0"
DESCRIPTION = """Persistent, separated chats in front of the OpenAI chat completion API.

With `PROXY_API_KEYS` set, every route but the public ones (health, the pages, these docs)
needs a key: `X-API-Key: <key>` or `Authorization: Bearer <key>`. A service run without keys
ignores them.
Bodies are read as JSON whatever the `Content-Type`. Errors are `{"error", "code"}`, and
`{"error": {"message", "type", "param", "code"}}` under `/v1`."""

# The docs' and the pages' routes that carry no `doc` of their own.
PAGES: dict[tuple[str, str], Operation] = {
    ("/openapi.json", "GET"): Operation(
        "docs", "This OpenAPI spec", ok("The spec.", {"type": "object"})
    ),
    ("/ui", "GET"): Operation(
        "pages",
        "The chat page",
        file_answer("The page.", "text/html"),
        more={
            "304": NOT_MODIFIED,
            "308": {"description": "`/ui/` redirects to `/ui`.", "headers": headers("Location")},
        },
    ),
    ("/docs", "GET"): Operation(
        "docs",
        "The API docs page (Swagger UI, served offline)",
        file_answer("The page.", "text/html"),
        more={
            "308": {"description": "`/docs/` redirects to `/docs`.", "headers": headers("Location")}
        },
    ),
}

OPERATIONS: dict[tuple[str, str], Operation] = {
    **openapi_chats.OPERATIONS,
    **openapi_settings.OPERATIONS,
    **openapi_completions.OPERATIONS,
    **openapi_responses.OPERATIONS,
    **openapi_conversations.OPERATIONS,
    **openapi_exports.OPERATIONS,
    **PAGES,
}
SCHEMAS: dict[str, Schema] = {
    **openapi_chats.SCHEMAS,
    **openapi_settings.SCHEMAS,
    **openapi_completions.SCHEMAS,
    **openapi_responses.SCHEMAS,
    **openapi_conversations.SCHEMAS,
    **openapi_exports.SCHEMAS,
}


def template(path: str) -> str:
    """A route's path as OpenAPI writes it: Starlette's `{model:path}` (a value that may hold
    `/`) is `{model}`."""
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", path)


class Described(Protocol):
    """A route as the spec sees it (`context.Route`)."""

    @property
    def path(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def public(self) -> bool: ...
    @property
    def doc(self) -> Operation | None: ...


def build_spec(routes: Iterable[Described]) -> dict[str, Any]:
    """Return the OpenAPI document of `routes` (a route table), in its order."""
    paths: Schema = {}
    for route in routes:
        path = template(route.path)
        operation = route.doc or OPERATIONS[(path, route.method)]
        openai = path.startswith("/v1/")
        rendered = operation.render(public=route.public, openai=openai)
        paths.setdefault(path, {})[route.method.lower()] = rendered
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": "chatproxy", "version": API_VERSION, "description": DESCRIPTION},
        "servers": [{"url": ".", "description": "this service (where the spec was fetched from)"}],
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
        "components": components(SCHEMAS),
    }

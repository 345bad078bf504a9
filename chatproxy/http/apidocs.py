"""Own the API docs: the OpenAPI spec at `GET /openapi.json` and a Swagger UI page at `GET /docs`.

The page works offline: Swagger UI's files come from the pinned `flask-swagger-ui` package (only
its `dist` folder is used, not its Flask blueprint), the page and its start-up script from
`static/docs/`. They are served by the proxy itself with a Content-Security-Policy that allows
nothing but this origin, and no inline script. These routes are public: they show nothing that
a caller owns. The spec describes the route table it is given (`routes(served)`): this module
imports no handler.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from starlette.responses import Response

from chatproxy.http.context import Context, Handler, Route
from chatproxy.http.openapi import build_spec
from chatproxy.http.openapi_operation import file_operation

STATIC = Path(__file__).parent / "static" / "docs"
SWAGGER_UI = files("flask_swagger_ui") / "dist"

# path -> (where the file is, its media type)
FILES: dict[str, tuple[Traversable, str]] = {
    "/docs/swagger-ui-bundle.js": (SWAGGER_UI / "swagger-ui-bundle.js", "text/javascript"),
    "/docs/swagger-ui.css": (SWAGGER_UI / "swagger-ui.css", "text/css"),
    "/docs/favicon-32x32.png": (SWAGGER_UI / "favicon-32x32.png", "image/png"),
    "/docs/docs.js": (STATIC / "docs.js", "text/javascript"),
}

# Swagger UI sets some styles from its scripts (allowed) and builds its SVG icons as data: URLs.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
FILE_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=3600"}


def routes(served: Sequence[Route]) -> list[Route]:
    """The docs' own routes: the spec, the page and its files. The spec describes `served` (the
    rest of the route table) and these."""
    spec = Spec()
    own = [
        Route("/openapi.json", "GET", spec.serve, public=True),
        Route("/docs", "GET", docs_page, public=True),
        *(
            Route(path, "GET", _file_handler(path), public=True, doc=file_operation(media_type))
            for path, (_, media_type) in FILES.items()
        ),
    ]
    spec.table = [*served, *own]
    return own


class Spec:
    """The OpenAPI spec of a route table, built on its first request."""

    def __init__(self) -> None:
        self.table: list[Route] = []

    @functools.cached_property
    def text(self) -> str:
        return json.dumps(build_spec(self.table), ensure_ascii=False, separators=(",", ":"))

    async def serve(self, ctx: Context) -> Response:
        headers = {"Cache-Control": "no-cache"}
        return Response(self.text, media_type="application/json", headers=headers)


async def docs_page(ctx: Context) -> Response:
    if ctx.path.endswith("/"):
        # The page links its files relative to itself (so that it works under a path prefix):
        # from `/docs/` they would resolve below it.
        return Response(status_code=308, headers={"Location": "../docs"})
    return Response(_page(), media_type="text/html", headers=PAGE_HEADERS)


@functools.cache
def _page() -> bytes:
    return (STATIC / "index.html").read_bytes()


def _file_handler(path: str) -> Handler:
    media_type = FILES[path][1]

    async def serve_file(ctx: Context) -> Response:
        return Response(_read(path), media_type=media_type, headers=FILE_HEADERS)

    return serve_file


@functools.cache
def _read(path: str) -> bytes:
    """A file's bytes, read once: the files of an installed package do not change."""
    return FILES[path][0].read_bytes()

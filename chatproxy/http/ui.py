"""Own the chat page at `GET /ui`: plain HTML, CSS and JavaScript from `static/ui/`, no build step.

The page holds no data (it calls the API with the key the user pastes), so its routes are public.
Each answer carries a strict Content-Security-Policy (scripts and styles only from this origin,
nothing inline, requests only to this origin). Every file under `static/ui/` of a known kind is
served: the page's own ES modules and the vendored renderer and sanitizer in `vendor/` (copied
from npm by `scripts/vendor-web.sh`). The page links its assets, and each module its imports,
with a hash of their content (`ui/app.js?v=<hash>`, `./api.js?v=<hash>`), so those can be cached
for good while the page itself is revalidated on every load (`ETag`, `304`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.responses import Response

from chatproxy.http.context import Context, Route
from chatproxy.http.openapi_operation import file_operation

STATIC = Path(__file__).parent / "static" / "ui"
PAGE = "index.html"
KINDS = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# name under `ui/` -> media type: `app.js`, `vendor/markdown-it.mjs`, ...
ASSETS = {
    path.relative_to(STATIC).as_posix(): KINDS[path.suffix]
    for path in sorted(STATIC.rglob("*"))
    if path.suffix in KINDS
}
# The page's own modules, whose imports get versions; the vendored files are left as they are.
OWN_MODULES = {name for name in ASSETS if name.endswith(".js") and "/" not in name}
CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
REVALIDATE = "no-cache"
FOREVER = "public, max-age=31536000, immutable"


@dataclass(frozen=True)
class Asset:
    """One static file, read once: its bytes and a short hash of them."""

    body: bytes
    version: str


@functools.cache
def load_asset(name: str) -> Asset:
    """Read a file of the page; the page gets its assets' versions written into its links, a
    module those of its imports (so a module's hash covers the modules it imports)."""
    body = (STATIC / name).read_bytes()
    if name == PAGE:
        body = _link_versions(body, "ui/")
    elif name in OWN_MODULES:
        body = _link_versions(body, "./")
    return Asset(body, hashlib.sha256(body).hexdigest()[:16])


def _link_versions(body: bytes, prefix: str) -> bytes:
    """Write each asset's version into the quoted links to it (`"<prefix><name>"`)."""
    for asset in ASSETS:
        link = f'"{prefix}{asset}"'.encode()
        if link in body:
            body = body.replace(link, f'"{prefix}{asset}?v={load_asset(asset).version}"'.encode())
    return body


async def get_page(ctx: Context) -> Response:
    """Serve the page at `/ui`, sending `/ui/` there."""
    if ctx.path.endswith("/"):
        # The page links its assets relative to itself, as `ui/app.js`, so that it works under
        # a path prefix too (a Cloud Functions URL): serve it only without the trailing slash.
        return Response(status_code=308, headers={"Location": "../ui", **SECURITY_HEADERS})
    return _static(ctx, PAGE, "text/html; charset=utf-8", REVALIDATE)


def _asset_handler(name: str, content_type: str) -> Callable[[Context], Awaitable[Response]]:
    """Make the handler of one asset: cached for good when asked for by its current version."""

    async def get_asset(ctx: Context) -> Response:
        fresh = ctx.request.query_params.get("v") == load_asset(name).version
        return _static(ctx, name, content_type, FOREVER if fresh else REVALIDATE)

    get_asset.__name__ = "get_ui_" + re.sub(r"\W", "_", name)
    return get_asset


def _static(ctx: Context, name: str, content_type: str, cache: str) -> Response:
    """The file, or a 304 when the browser's copy (If-None-Match) is this version."""
    asset = load_asset(name)
    headers = {"Cache-Control": cache, "ETag": f'"{asset.version}"', **SECURITY_HEADERS}
    if _names_version(ctx.request.headers.get("If-None-Match"), asset.version):
        return Response(status_code=304, headers=headers)
    return Response(asset.body, headers={"Content-Type": content_type, **headers})


def _names_version(if_none_match: str | None, version: str) -> bool:
    """Say whether an `If-None-Match` header names `version`: `*`, or one of its entity tags,
    weak (`W/"..."`) or strong."""
    for tag in (if_none_match or "").split(","):
        tag = tag.strip()
        if tag[:2] in ("W/", "w/"):
            tag = tag[2:]
        if tag == "*" or tag.strip('"') == version:
            return True
    return False


# The page and its files need no key: the page holds no data.
ROUTES: list[Route] = [
    Route("/ui", "GET", get_page, public=True),
    *[
        Route(
            f"/ui/{name}",
            "GET",
            _asset_handler(name, kind),
            public=True,
            doc=file_operation(kind.split(";")[0], versioned=True),
        )
        for name, kind in ASSETS.items()
    ],
]

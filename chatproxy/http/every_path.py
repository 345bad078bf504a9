"""Own the one hook into functions-framework: it hands the proxy the paths it would keep.

functions-framework's ASGI app routes `/` and `/{path:path}` to the function, but answers
`/robots.txt` and `/favicon.ico` itself, and Starlette's `path` convertor (`.*`) does not match
a path with a line break in it (`%0A`, part of a chat id the proxy refuses): both get a
plain-text 404 where every other answer of the proxy is JSON. functions-framework builds its app
itself, from the command line, and has no option for this; so `serve_every_path(app)` wraps the
first middleware it adds to its app (`functions_framework.aio.ExceptionHandlerMiddleware`, a
public name, looked up when main.py has been imported and the app is built), and sends those
requests to `app` directly. Every other request takes functions-framework's own way to the
function.

`tests/test_every_path.py` fails when functions-framework changes under this: other paths of its
own, a catch-all that takes line breaks, or a first middleware of another name.
"""

from __future__ import annotations

from collections.abc import Callable

import functions_framework.aio
from starlette.types import ASGIApp, Receive, Scope, Send

KEPT_PATHS = frozenset({"/robots.txt", "/favicon.ico"})  # routes of functions-framework's own
# functions-framework's own, as imported (before any hook): it logs and answers a crash.
OUTERMOST: Callable[[ASGIApp], ASGIApp] = functions_framework.aio.ExceptionHandlerMiddleware


def kept_by_framework(path: str) -> bool:
    """Say whether functions-framework would answer `path` itself, without the function."""
    return path in KEPT_PATHS or "\n" in path


def serve_every_path(app: ASGIApp) -> None:
    """Have the app functions-framework builds next hand `app` the paths it would keep."""

    class EveryPath:
        """functions-framework's first middleware, which first takes the paths it keeps."""

        def __init__(self, inner: ASGIApp):
            self.framework = OUTERMOST(inner)

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http" and kept_by_framework(scope["path"]):
                await app(scope, receive, send)
            else:
                await self.framework(scope, receive, send)

    functions_framework.aio.ExceptionHandlerMiddleware = EveryPath  # type: ignore[assignment,misc]

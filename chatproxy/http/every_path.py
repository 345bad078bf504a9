"""Own the one hook into functions-framework: it hands the proxy every HTTP request.

functions-framework builds its ASGI app itself, from the command line, and has no option to
serve an app of ours. Its way to the function costs every request, and answers some requests
itself:
- its middleware (its crash handler, and one that makes an execution id for each request), its
  router, a Starlette `Request` and the call of the function that returns the proxy: about
  0.05 ms of a plain turn's added latency (`make bench`, row 1, taking turns pair by pair);
- `/robots.txt` and `/favicon.ico`, a method outside its list (`TRACE`), and a path with a line
  break (`%0A`, part of a chat id the proxy refuses; Starlette's `path` convertor does not match
  it) get a plain-text 404 or 405, where every other answer of the proxy is JSON.

So `serve_every_path(app)` wraps the first middleware it adds to its app
(`functions_framework.aio.ExceptionHandlerMiddleware`, a public name, looked up when main.py has
been imported and the app is built) and sends every HTTP request to `app` directly. What else
reaches its app (the lifespan's start and end) takes its own way. The proxy loses nothing by
it: `app` answers and logs its own errors, those that end an answer already begun too (which
the framework's crash handler logged before), and the framework's execution id never reached
the proxy's log lines (its function returns the proxy, which runs after the id is unset): with
LOG_EXECUTION_ID on, the proxy names each request's execution on its lines itself (logs.py). If
the hook is not installed, requests still reach the proxy, through `main`.

`tests/test_every_path.py` fails when functions-framework changes under this (a first
middleware of another name) or a request takes its way.
"""

from __future__ import annotations

from collections.abc import Callable

import functions_framework.aio
from starlette.types import ASGIApp, Receive, Scope, Send

# functions-framework's own, as imported (before any hook): it logs and answers a crash.
OUTERMOST: Callable[[ASGIApp], ASGIApp] = functions_framework.aio.ExceptionHandlerMiddleware


def serve_every_path(app: ASGIApp, built: Callable[[], None] = lambda: None) -> None:
    """Have the app functions-framework builds next hand `app` every HTTP request; `built` runs
    when it builds that app's middleware (in each worker, once the framework has set up its
    logging: main.py sets up the proxy's there again)."""

    class EveryPath:
        """functions-framework's first middleware, which hands every HTTP request to `app`."""

        def __init__(self, inner: ASGIApp):
            self.framework = OUTERMOST(inner)
            built()

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                await app(scope, receive, send)
            else:
                await self.framework(scope, receive, send)

    functions_framework.aio.ExceptionHandlerMiddleware = EveryPath  # type: ignore[assignment,misc]

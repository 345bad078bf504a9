"""Own routing by the route table, with Starlette's `Router`.

Each path of the table becomes one Starlette route whose endpoint (`PathRoutes`) holds that
path's routes by method; the app answers the request with it (`answer(scope, receive, send,
path)`), or with none when no path matches. Starlette matches the path and converts its values
(`{chat_id}`: any characters but `/`; `{model:path}`: any, `/` too); the methods are ours to
check, so that a wrong one is a JSON 405 naming the right ones.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from starlette.routing import Route as StarletteRoute
from starlette.routing import Router, compile_path
from starlette.types import Receive, Scope, Send

from chatproxy.errors import MethodNotAllowed
from chatproxy.http.context import Route

Answerer = Callable[[Scope, Receive, Send, "PathRoutes | None"], Awaitable[None]]


class PathRoutes:
    """The routes of one path of the route table, by method; the router's endpoint for it."""

    def __init__(self, path: str, by_method: dict[str, Route], answer: Answerer):
        self.path = path
        self.by_method = by_method
        self.params = list(compile_path(path)[2])
        # Logged as the README writes routes: `/<chat_id>/chat`.
        self.logged_as = re.sub(r"\{(\w+)(?::\w+)?\}", r"<\1>", path)
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.answer(scope, receive, send, self)

    def route_for(self, method: str) -> Route:
        """The route of `method` (HEAD is answered as GET), or a 405 naming the methods; on a
        path of endpoints not offered, any of them (each is a 404, whatever the method)."""
        route = self.by_method.get(method)
        if route is None and method == "HEAD":
            route = self.by_method.get("GET")
        if route is None and not any(each.offered for each in self.by_method.values()):
            route = next(iter(self.by_method.values()))
        if route is None:
            allowed = set(self.by_method)
            raise MethodNotAllowed(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
        return route


def build_router(table: Sequence[Route], answer: Answerer) -> Router:
    """Route by `table` with Starlette's router; `answer` answers every request, matched or not.

    Each path may end with one slash more (`/c1/chat/`, `/docs/`), as it always could; a page
    redirects that to its own path. A path that matches no route goes to `answer` too.
    """
    paths: dict[str, dict[str, Route]] = {}
    for route in table:
        paths.setdefault(route.path, {})[route.method] = route
    endpoints = [PathRoutes(path, by_method, answer) for path, by_method in paths.items()]
    exact = [StarletteRoute(e.path, e) for e in endpoints]
    slashed = [StarletteRoute(e.path + "/", e) for e in endpoints if e.path != "/"]

    async def unrouted(scope: Scope, receive: Receive, send: Send) -> None:
        await answer(scope, receive, send, None)

    return Router([*exact, *slashed], redirect_slashes=False, default=unrouted)

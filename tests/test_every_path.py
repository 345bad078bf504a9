"""The one hook into functions-framework (`chatproxy.http.every_path`) still fits the library:
these fail when functions-framework changes the paths it answers itself, or the middleware the
hook wraps."""

from __future__ import annotations

import functions_framework.aio
import pytest
from starlette.routing import Route

from chatproxy.http.every_path import KEPT_PATHS, OUTERMOST, kept_by_framework
from tests.asgi_client import ProxyClient


@pytest.fixture
def store_kind() -> str:
    """The paths do not depend on the store: one is enough here."""
    return "sqlite"


def framework_routes(client: ProxyClient) -> list[Route]:
    """The routes of the app functions-framework built from main.py."""
    return [route for route in client.app.routes if isinstance(route, Route)]


def test_the_framework_keeps_exactly_the_paths_the_hook_takes(client: ProxyClient) -> None:
    routes = framework_routes(client)
    function = next(route for route in routes if route.path == "/").endpoint
    own = {route.path for route in routes if route.endpoint is not function}
    catch_all = [route for route in routes if route.endpoint is function and route.path != "/"]

    assert own == KEPT_PATHS
    assert [route.path for route in catch_all] == ["/{path:path}"]
    assert not catch_all[0].path_regex.match("/a\nb/chat")  # why the hook takes line breaks
    assert catch_all[0].path_regex.match("/a\rb/chat")


def test_the_hook_wraps_the_frameworks_outermost_middleware(client: ProxyClient) -> None:
    assert OUTERMOST.__module__ == "functions_framework.aio"
    assert OUTERMOST.__name__ == "ExceptionHandlerMiddleware"
    hooked = functions_framework.aio.ExceptionHandlerMiddleware
    assert hooked is not OUTERMOST
    assert isinstance(hooked(client.app).framework, OUTERMOST)
    assert hooked in [middleware.cls for middleware in client.app.user_middleware]


@pytest.mark.parametrize("path", ["/robots.txt", "/favicon.ico", "/a\nb/chat", "/a\r\nb"])
def test_the_paths_the_framework_keeps_go_to_the_proxy(path: str) -> None:
    assert kept_by_framework(path)


@pytest.mark.parametrize("path", ["/", "/c1/chat", "/robots.txt/", "/a\rb/chat", "/favicon.ico2"])
def test_every_other_path_takes_the_frameworks_way(path: str) -> None:
    assert not kept_by_framework(path)


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("path", ["/robots.txt", "/favicon.ico"])
def test_the_frameworks_paths_are_answered_in_json(
    client: ProxyClient, method: str, path: str
) -> None:
    response = client.open(path, method=method)

    assert response.status_code == 404
    assert response.is_json

"""The one hook into functions-framework (`chatproxy.http.every_path`) still fits the library,
and every HTTP request reaches the proxy: these fail when functions-framework changes the
middleware the hook wraps, or when a request takes the framework's way."""

from __future__ import annotations

import functions_framework.aio
import functions_framework.execution_id
import pytest
from starlette.types import Receive, Scope, Send

from chatproxy.http.every_path import OUTERMOST
from tests.asgi_client import ProxyClient


@pytest.fixture
def store_kind() -> str:
    """The paths do not depend on the store: one is enough here."""
    return "sqlite"


def test_the_hook_wraps_the_frameworks_outermost_middleware(client: ProxyClient) -> None:
    assert OUTERMOST.__module__ == "functions_framework.aio"
    assert OUTERMOST.__name__ == "ExceptionHandlerMiddleware"
    hooked = functions_framework.aio.ExceptionHandlerMiddleware
    assert hooked is not OUTERMOST
    assert isinstance(hooked(client.app).framework, OUTERMOST)
    assert hooked in [middleware.cls for middleware in client.app.user_middleware]


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("path", ["/robots.txt", "/favicon.ico"])
def test_the_frameworks_paths_are_answered_in_json(
    client: ProxyClient, method: str, path: str
) -> None:
    response = client.open(path, method=method)

    assert response.status_code == 404
    assert response.is_json


def test_a_method_the_framework_does_not_route_is_answered_by_the_proxy(
    client: ProxyClient,
) -> None:
    response = client.open("/c1/chat", method="TRACE")  # not in functions-framework's list

    assert response.status_code == 405
    assert response.is_json
    assert response.headers["Allow"] == "DELETE, GET, HEAD, POST"


def test_a_request_skips_the_frameworks_middleware(
    client: ProxyClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def refuse(self: object, scope: Scope, receive: Receive, send: Send) -> None:
        raise AssertionError(f"{scope['type']} took the framework's way")

    # the middleware functions-framework adds after the one the hook wraps (a public name)
    monkeypatch.setattr(functions_framework.execution_id.AsgiMiddleware, "__call__", refuse)

    assert client.get("/openapi.json").status_code == 200
    assert client.post("/c1/chat", json={"content": "hello"}).status_code == 200

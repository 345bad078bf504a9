"""Call the real functions-framework app in process, as the tests always have.

`ProxyClient` drives the ASGI app that functions-framework builds from main.py through
Starlette's test client (one event loop for the client's life, as a server worker has), with
the calls and answers of Flask's test client that the tests were written against:
`client.post(path, data=..., headers=...)`, `answer.get_json()`, `answer.get_data(as_text=True)`.
`open_stream` starts a request and hands back its body unread, to read a piece at a time, stop
reading, or hang up (`close`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import httpx2 as httpx
from starlette.testclient import TestClient
from starlette.types import ASGIApp

Headers = dict[str, str] | list[tuple[str, str]]  # a list: several lines of one header


class Answer:
    """One answer, read to its end."""

    def __init__(self, response: httpx.Response):
        self.response = response
        self.status_code = response.status_code
        self.headers = response.headers

    @property
    def status(self) -> str:
        return f"{self.status_code} {self.response.reason_phrase}"

    @property
    def data(self) -> bytes:
        return self.response.content

    def get_data(self, as_text: bool = False) -> Any:
        return self.response.text if as_text else self.response.content

    def get_json(self) -> Any:
        return json.loads(self.response.content)

    @property
    def json(self) -> Any:
        return self.get_json()

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def mimetype(self) -> str:
        return self.content_type.split(";")[0].strip()

    @property
    def is_json(self) -> bool:
        return self.mimetype == "application/json" or self.mimetype.endswith("+json")


class Streamed:
    """An answer whose body is read as it comes: iterate for its pieces; `close` hangs up."""

    def __init__(self, opened: AbstractContextManager[httpx.Response]):
        self._opened = opened
        self.response = opened.__enter__()
        self.status_code = self.response.status_code
        self.headers = self.response.headers
        self._pieces = self.response.iter_raw()

    def __iter__(self) -> Iterator[bytes]:
        return self._pieces

    def close(self) -> None:
        self._opened.__exit__(None, None, None)


class ProxyClient:
    """Flask's test-client calls, over an ASGI app."""

    def __init__(self, app: ASGIApp):
        self._client = TestClient(app, base_url="http://localhost", follow_redirects=False)
        self._client.__enter__()
        self.app = app

    def open(
        self,
        path: str,
        method: str = "GET",
        *,
        data: str | bytes | None = None,
        json: Any = None,
        headers: Headers | None = None,
        content_type: str | None = None,
        query_string: dict[str, str] | None = None,
        buffered: bool = True,  # every answer is read to its end (see `open_stream`)
    ) -> Answer:
        request = self._request(path, method, data, json, headers, content_type, query_string)
        return Answer(self._client.request(**request))

    def get(self, path: str, **options: Any) -> Answer:
        return self.open(path, "GET", **options)

    def post(self, path: str, **options: Any) -> Answer:
        return self.open(path, "POST", **options)

    def delete(self, path: str, **options: Any) -> Answer:
        return self.open(path, "DELETE", **options)

    def options(self, path: str, **options: Any) -> Answer:
        return self.open(path, "OPTIONS", **options)

    def open_stream(
        self, path: str, method: str = "POST", *, data: str | bytes | None = None, **options: Any
    ) -> Streamed:
        """Start a request and return its answer with the body unread."""
        headers = options.pop("headers", None)
        request = self._request(path, method, data, options.pop("json", None), headers, None, None)
        return Streamed(self._client.stream(**request))

    def portal_call(self, call: Any, *args: Any) -> Any:
        """Run a coroutine function on the client's event loop (the app's), and wait for it."""
        assert self._client.portal is not None
        return self._client.portal.call(call, *args)

    def close(self) -> None:
        self._client.__exit__(None, None, None)

    @staticmethod
    def _request(
        path: str,
        method: str,
        data: str | bytes | None,
        body: Any,
        headers: Headers | None,
        content_type: str | None,
        query_string: dict[str, str] | None,
    ) -> dict[str, Any]:
        lines = list((headers or {}).items()) if isinstance(headers, dict | None) else headers
        if content_type is not None:
            lines = [*lines, ("Content-Type", content_type)]
        request: dict[str, Any] = {"method": method, "url": path, "headers": lines}
        if data is not None:
            request["content"] = data
        if body is not None:
            request["json"] = body
        if query_string is not None:
            request["params"] = query_string
        return request

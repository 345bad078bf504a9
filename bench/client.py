"""The load generator's HTTP client: one keep-alive connection, timed from send to last byte."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit


class Client:
    """One keep-alive HTTP/1.1 connection (reopened after an error)."""

    def __init__(self, base_url: str, timeout: float = 60.0) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.conn: http.client.HTTPConnection | None = None

    def connection(self) -> http.client.HTTPConnection:
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            self.conn.connect()
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> tuple[int, bytes, float]:
        """Send one request (with `headers` besides the body's type); returns status, body and
        seconds from send to the last byte."""
        data = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if data is not None else {}
        sent.update(headers or {})
        conn = self.connection()
        start = time.perf_counter()
        try:
            conn.request(method, self.prefix + path, body=data, headers=sent)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        elapsed = time.perf_counter() - start
        if response.will_close:
            self.close()
        return response.status, payload, elapsed

    def first_delta(self, path: str, body: Any, marker: bytes) -> tuple[int, float]:
        """POST a streaming request; seconds until the first line holding `marker`, then drain."""
        conn = self.connection()
        data = json.dumps(body).encode()
        start = time.perf_counter()
        try:
            headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
            conn.request("POST", self.prefix + path, body=data, headers=headers)
            response = conn.getresponse()
            first = float("nan")
            while line := response.readline():
                if marker in line:
                    first = time.perf_counter() - start
                    break
            response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            raise
        if response.will_close:
            self.close()
        return response.status, first

"""Scriptable fake OpenAI upstream for tests: a real local HTTP server, no SDK patching.

``FakeUpstream`` extends the offline ``DevUpstream`` (same routes and default answers) with:

* recording -- every request lands in ``requests`` as ``{"path", "body", "headers"}`` (header
  names lower-cased, ``body`` None when absent or not a JSON object); ``chat_requests()`` gives
  the chat-completion bodies in arrival order;
* canned answers -- ``reply_text`` (fixed reply), ``usage`` (fixed usage dict), ``omit_usage``
  (no usage at all, also not in streams) and ``delay`` (seconds to sleep before each chat answer);
* one-shot faults -- ``script(Fault(...), ...)`` queues behaviours, each consumed by one chat
  completion request: a scripted status/body/headers, a delay, or a dropped connection;
* other servers' stream dialects -- ``same_call_index`` (every tool call's deltas carry
  ``index`` 0, the calls told apart by their ``id`` only), ``omit_finish_reason`` (no chunk
  says why the reply ended) and ``omit_done`` (the body ends without ``data: [DONE]``).

``reset()`` clears recordings and all scripted behaviour. State is guarded by a lock because the
server answers on its own threads.
"""

from __future__ import annotations

import copy
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from chatproxy.upstream.dev import DevRequestHandler, DevUpstream, error_body
from chatproxy.upstream.dev_answers import Answer


@dataclass
class Fault:
    """One scripted answer to a chat completion request.

    ``drop=True`` resets the connection without any response. Otherwise, after sleeping ``delay``
    seconds, the answer is ``status`` with ``body`` (dict -> JSON; str/bytes verbatim, with
    Content-Type ``text/plain`` unless ``headers`` says otherwise) plus ``headers``. With
    ``body=None`` an error status gets OpenAI's error shape, and a success status gets the normal
    (dev/fake) completion plus ``headers`` -- so ``Fault(delay=2)`` is a one-shot slow answer.
    """

    status: int = 200
    body: str | bytes | dict[str, Any] | None = None
    headers: dict[str, str] | None = None
    delay: float = 0.0
    drop: bool = False

    @classmethod
    def error(
        cls,
        status: int,
        message: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Fault:
        """An HTTP error in OpenAI's shape ``{"error": {"message", "type", "param", "code"}}``."""
        kind = "server_error" if status >= 500 else "invalid_request_error"
        if status == 429:
            kind = "requests"
        body = error_body(message or f"Fake upstream error (HTTP {status}).", kind)
        body["error"]["code"] = code
        return cls(status=status, body=body, headers=headers)

    @classmethod
    def non_json(cls) -> Fault:
        """A 200 answer that is HTML, not JSON (as from a misbehaving gateway)."""
        return cls(status=200, body="<html>oops</html>", headers={"Content-Type": "text/html"})


class FakeUpstream(DevUpstream):
    """``DevUpstream`` plus request recording, canned answers and one-shot faults."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self._faults: deque[Fault] = deque()
        self.reply_text: str | None = None
        self.usage: dict[str, int] | None = None
        self.omit_usage = False
        self.delay = 0.0
        self.cut_stream_after: int | None = None  # drop a stream after this many events
        self.cut_stream_end = False  # drop a stream after all its events, before its last bytes
        self.same_call_index = False
        self.omit_finish_reason = False
        self.omit_done = False

    # -- test API ----------------------------------------------------------------------------
    def script(self, *faults: Fault) -> None:
        """Queue one-shot behaviours; each chat completion request consumes the next one."""
        with self._lock:
            self._faults.extend(faults)

    def chat_requests(self) -> list[dict[str, Any]]:
        """Bodies of the chat completion requests, in arrival order."""
        with self._lock:
            return [
                r["body"]
                for r in self.requests
                if r["path"] == "/v1/chat/completions" and r["body"] is not None
            ]

    def reset(self) -> None:
        """Forget recorded requests and every scripted behaviour."""
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.reply_text = None
            self.usage = None
            self.omit_usage = False
            self.delay = 0.0
            self.chunk_delay = 0.0
            self.cut_stream_after = None
            self.cut_stream_end = False
            self.same_call_index = False
            self.omit_finish_reason = False
            self.omit_done = False

    # -- DevUpstream hooks -------------------------------------------------------------------
    def route(self, handler: DevRequestHandler) -> None:
        headers = {name.lower(): value for name, value in handler.headers.items()}
        entry = {
            "path": handler.route_path,
            "body": handler.body,
            "headers": headers,
            "peer": handler.client_address,  # one per connection: tells reuse from new ones
        }
        with self._lock:
            self.requests.append(entry)
        super().route(handler)

    def reply_for(self, request: dict[str, Any]) -> str:
        reply = self.reply_text
        return reply if reply is not None else super().reply_for(request)

    def usage_for(self, request: dict[str, Any], reply: str) -> dict[str, Any] | None:
        if self.omit_usage:
            return None
        usage = self.usage
        return dict(usage) if usage is not None else super().usage_for(request, reply)

    def handle_chat(self, handler: DevRequestHandler, body: dict[str, Any]) -> None:
        with self._lock:
            fault = self._faults.popleft() if self._faults else None
        if fault is None:
            time.sleep(self.delay)
            super().handle_chat(handler, body)
            return
        time.sleep(fault.delay)
        if fault.drop:
            # Linger 0 turns the close into a TCP reset; nothing is written.
            handler.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            handler.close_connection = True
            return
        handler.extra_headers.update(fault.headers or {})
        if fault.body is None and fault.status < 400:
            super().handle_chat(handler, body)
            return
        self._send_fault(handler, fault)

    def stream_chat(
        self,
        handler: DevRequestHandler,
        body: dict[str, Any],
        base: dict[str, Any],
        answers: list[Answer],
        usage: dict[str, Any] | None,
    ) -> None:
        """Stream as the dev upstream does, but break off after `cut_stream_after` events, or
        in the dialect the flags set."""
        self._speak_dialect(handler)
        cut = self.cut_stream_after
        if cut is not None:
            send, sent = handler.send_event, 0

            def send_until_cut(payload: Any) -> None:
                nonlocal sent
                if sent >= cut:
                    handler.connection.setsockopt(
                        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                    )
                    raise ConnectionAbortedError("the fake upstream cut the stream")
                sent += 1
                send(payload)

            handler.send_event = send_until_cut  # type: ignore[method-assign]
        if self.cut_stream_end:

            def reset() -> None:
                handler.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                raise ConnectionAbortedError("the fake upstream cut the stream's end")

            handler.end_stream = reset  # type: ignore[method-assign]
        super().stream_chat(handler, body, base, answers, usage)

    def _speak_dialect(self, handler: DevRequestHandler) -> None:
        """Rewrite the events `handler` sends as `same_call_index`, `omit_finish_reason` and
        `omit_done` say (left alone when none is set: a benchmark's streams cost no more)."""
        if not (self.same_call_index or self.omit_finish_reason or self.omit_done):
            return
        send = handler.send_event

        def send_in_dialect(payload: Any) -> None:
            if payload == "[DONE]" and self.omit_done:
                return
            if isinstance(payload, dict):
                payload = copy.deepcopy(payload)
                choices = payload.get("choices") or []
                for choice in choices:
                    if self.omit_finish_reason:
                        choice["finish_reason"] = None
                    for call in choice["delta"].get("tool_calls") or []:
                        if self.same_call_index:
                            call["index"] = 0
                if self.omit_finish_reason and choices and not any(c["delta"] for c in choices):
                    return  # a chunk that said only why the reply ended
            send(payload)

        handler.send_event = send_in_dialect  # type: ignore[method-assign]

    @staticmethod
    def _send_fault(handler: DevRequestHandler, fault: Fault) -> None:
        body = fault.body
        if body is None:
            body = Fault.error(fault.status).body
        content_type = "text/plain; charset=utf-8"
        if isinstance(body, dict):
            body, content_type = json.dumps(body), "application/json"
        for name in [n for n in handler.extra_headers if n.lower() == "content-type"]:
            content_type = handler.extra_headers.pop(name)
        data = body.encode() if isinstance(body, str) else bytes(body or b"")
        handler.send_bytes(fault.status, data, content_type)

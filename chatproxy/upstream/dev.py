"""Offline, OpenAI-compatible HTTP server: the "dev upstream" (standard library only).

It lets the proxy run with no OpenAI key and no internet (``make run``) and is the base of the
test fake (``harness/fake_upstream.py``). It owns three routes, all JSON unless streaming:
``POST /v1/chat/completions`` answers by the deterministic rules of ``dev_answers.py``: a reply
echoing the last user message (:meth:`DevUpstream.reply_for`), cut to the request's
``max_tokens`` (or ``max_completion_tokens``) with ``finish_reason: "length"`` as a model would;
tool calls when the request has ``tools``; JSON for a ``response_format``; ``n`` choices and
logprobs when asked; or with ``"stream": true`` the same answer as server-sent
``chat.completion.chunk`` events, one per word (a tool call's arguments in pieces), ending
``data: [DONE]``; ``POST /v1/moderations`` follows the dev rule "flagged iff the input contains
the whole word 'kill' (any case)"; ``GET /v1/models`` lists ``dev-model``. Unknown paths answer
404 and bodies that are not a JSON object 400, in OpenAI's error shape. Subclasses hook in via
``route``, ``handle_chat``, ``stream_chat``, ``reply_for`` and ``usage_for``.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self, cast

from chatproxy.tokens import content_text, estimate_usage
from chatproxy.upstream.dev_answers import (
    FINGERPRINT,
    USAGE_DETAILS,
    Answer,
    BadChatRequest,
    logprobs_of,
    plan,
    streamed_deltas,
    tool_results,
    words_of,
)

MODERATION_CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/instructions", "self-harm/intent", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip
_ROUTES = {("POST", "/v1/chat/completions"), ("POST", "/v1/moderations"), ("GET", "/v1/models")}
_FLAG_WORD = re.compile(r"\bkill\b", re.IGNORECASE)


def moderation_result(flagged: bool) -> dict[str, Any]:
    """One moderation result; a flagged input is put in the "violence" category."""
    hit = {c: flagged and c == "violence" for c in MODERATION_CATEGORIES}
    return {
        "flagged": flagged,
        "categories": hit,
        "category_scores": {c: 0.9 if v else 0.0001 for c, v in hit.items()},
        "category_applied_input_types": {c: ["text"] for c in MODERATION_CATEGORIES},
    }


def error_body(message: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    """OpenAI's error JSON shape."""
    return {"error": {"message": message, "type": type_, "param": None, "code": None}}


class DevRequestHandler(BaseHTTPRequestHandler):
    """Per-request handler: reads the body and delegates to the owning DevUpstream."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; with Nagle on, the client's delayed ACK would
    # stall every answer by about 40 ms on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default per-request stderr log line."""

    def do_POST(self) -> None:
        """Read the body, then let the owning DevUpstream answer (``route``)."""
        self.extra_headers: dict[str, str] = {}  # a subclass may add headers to the answer
        self.route_path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        self.body: dict[str, Any] | None = parsed if isinstance(parsed, dict) else None
        self.body_ok = not raw or self.body is not None  # False: a body that is no JSON object
        cast("_Server", self.server).upstream.route(self)

    do_GET = do_POST

    def start_response(self, status: int, content_type: str, length: int | None) -> None:
        """Send the status line and headers; ``length=None`` starts a chunked stream (the
        connection stays open for the next request, as OpenAI's does), ended by `end_stream`."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.chunked = length is None
        if length is None:
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        for name, value in self.extra_headers.items():
            self.send_header(name, value)
        self.end_headers()

    def send_bytes(self, status: int, data: bytes, content_type: str = "application/json") -> None:
        self.start_response(status, content_type, len(data))
        self.wfile.write(data)

    def send_json(self, status: int, obj: Any) -> None:
        self.send_bytes(status, json.dumps(obj).encode())

    def send_error_json(self, status: int, message: str) -> None:
        self.send_json(status, error_body(message))

    def send_event(self, payload: Any) -> None:
        """Write one server-sent event ``data: ...`` as one chunk, and flush it."""
        data = payload if isinstance(payload, str) else json.dumps(payload)
        event = f"data: {data}\n\n".encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
        self.wfile.flush()

    def end_stream(self) -> None:
        """End a chunked stream."""
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 drops connections that arrive together (a proxy
    # opening many at once), which the client only retries a second later.
    request_queue_size = 1024
    upstream: DevUpstream

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that hang up (timeouts, dropped streams) are normal here, not errors."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class DevUpstream:
    """A local OpenAI-compatible server on a daemon thread; also a context manager."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, chunk_delay: float = 0.0) -> None:
        self.host = host
        self.port = port
        self.chunk_delay = chunk_delay  # seconds between streamed words, so streams look real
        self._server: _Server | None = None
        self._ids = itertools.count(1)  # next() on a count is atomic under the GIL

    def start(self) -> str:
        """Bind and serve in the background; returns the base URL (``http://host:port/v1``)."""
        if self._server is None:
            server = _Server((self.host, self.port), DevRequestHandler)
            server.upstream = self
            self.port = server.server_address[1]
            self._server = server
            serve = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
            serve.start()  # a short poll interval keeps stop() fast
        return self.base_url

    def stop(self) -> None:
        """Stop serving and close the socket; safe to call twice."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}/v1"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def route(self, handler: DevRequestHandler) -> None:
        """Answer one request (``handler.command``, ``.route_path``, ``.body``, ``.body_ok``)."""
        method, path, body = handler.command, handler.route_path, handler.body or {}
        if (method, path) not in _ROUTES:
            handler.send_error_json(404, f"Unknown request URL: {method} {path}.")
        elif not handler.body_ok or (method == "POST" and handler.body is None):
            handler.send_error_json(400, "We could not parse the JSON body of your request.")
        elif path == "/v1/chat/completions":
            self.handle_chat(handler, body)
        elif path == "/v1/moderations":
            handler.send_json(200, self.moderation(body))
        else:
            models = [{"id": "dev-model", "object": "model", "created": 0, "owned_by": "dev"}]
            handler.send_json(200, {"object": "list", "data": models})

    def next_id(self) -> int:
        return next(self._ids)

    def reply_for(self, request: dict[str, Any]) -> str:
        """Deterministic dev reply echoing the last user message and counting earlier ones (or,
        after tool results, what they said)."""
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        results = tool_results(messages)
        if results is not None:
            return results
        last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
        text, images = content_text(messages[last].get("content")) if last >= 0 else ("", 0)
        said = f"You said: {text}" if text else "You said nothing"
        if images:
            said += " and sent " + ("an image" if images == 1 else f"{images} images")
        earlier = f"{max(last, 0)} earlier message" + ("" if last == 1 else "s")  # before it
        return f"[dev upstream] {said}. (I can see {earlier}.)"

    def usage_for(self, request: dict[str, Any], reply: str) -> dict[str, Any] | None:
        """Token usage: prompt = sum(ceil(chars/4) + 4) per message, with OpenAI's details (all
        zero); None sends no usage."""
        messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
        return {**estimate_usage(messages, reply), **USAGE_DETAILS}

    def handle_chat(self, handler: DevRequestHandler, body: dict[str, Any]) -> None:
        """Answer a chat completion, as one JSON object or as an SSE stream."""
        number = self.next_id()
        try:
            answers = plan(body, self.reply_for(body), f"call_dev_{number}")
        except BadChatRequest as exc:
            handler.send_error_json(400, str(exc))
            return
        first = answers[0]
        said = first.content if first.tool_calls is None else json.dumps(first.tool_calls)
        usage = self.usage_for(body, said or "")
        base = {"id": f"chatcmpl-dev-{number}", "created": int(time.time())}
        base.update(model=body.get("model", "dev-model"), system_fingerprint=FINGERPRINT)
        if body.get("stream"):
            self.stream_chat(handler, body, base, answers, usage)
            return
        choices = [_choice(n, answer, body) for n, answer in enumerate(answers)]
        result = {**base, "object": "chat.completion", "choices": choices}
        if usage is not None:
            result["usage"] = usage
        handler.send_json(200, result)

    def stream_chat(self, handler: DevRequestHandler, body: dict[str, Any], base: dict[str, Any],
                    answers: list[Answer], usage: dict[str, Any] | None) -> None:  # fmt: skip
        """Send each choice as chat.completion.chunk events (a word, or a piece of a tool
        call, each), then the usage if asked, then ``[DONE]``."""
        opts = body.get("stream_options")
        with_usage = usage is not None and isinstance(opts, dict) and opts.get("include_usage")
        extra = {"usage": None} if with_usage else {}

        def chunk(index: int, delta: dict[str, Any], finish: str | None = None,
                  logprobs: dict[str, Any] | None = None) -> dict[str, Any]:  # fmt: skip
            choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
            return {**base, "object": "chat.completion.chunk", "choices": [choice], **extra}

        handler.start_response(200, "text/event-stream", None)
        words = 0
        for index, answer in enumerate(answers):
            for delta, word in streamed_deltas(answer):
                if word is not None and words and self.chunk_delay:
                    time.sleep(self.chunk_delay)
                words += word is not None
                logprobs = None if word is None else logprobs_of([word], body)
                handler.send_event(chunk(index, delta, logprobs=logprobs))
            handler.send_event(chunk(index, {}, answer.finish))
        if with_usage:
            handler.send_event({**chunk(0, {}), "choices": [], "usage": usage})
        handler.send_event("[DONE]")
        handler.end_stream()

    def moderation(self, body: dict[str, Any]) -> dict[str, Any]:
        """Dev moderation: one result per input; flagged iff it contains the word "kill"."""
        raw = body.get("input", "")
        items = raw if isinstance(raw, list) else [raw]
        texts = [i if isinstance(i, str) else content_text([i])[0] for i in items]
        results = [moderation_result(bool(_FLAG_WORD.search(t))) for t in texts]
        mod_id = f"modr-dev-{self.next_id()}"
        return {"id": mod_id, "model": "omni-moderation-latest", "results": results}


def _choice(index: int, answer: Answer, request: dict[str, Any]) -> dict[str, Any]:
    """One choice of a whole (not streamed) answer."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls is not None:
        message["tool_calls"] = answer.tool_calls
    words = words_of(answer.content or "")
    logprobs = None if answer.tool_calls is not None else logprobs_of(words, request)
    choice = {"index": index, "message": message, "finish_reason": answer.finish}
    return {**choice, "logprobs": logprobs}

"""Own the model provider: chat completions and moderation through the official `openai` client.

One client per process (it keeps its connection pool). Every SDK failure is translated here into
the proxy's error tree, so nothing above this module ever sees an `openai` exception.

Retries are done here rather than by the SDK, because the SDK does not know the request's
deadline (it may sleep up to a minute on a Retry-After): each attempt gets at most the time left,
and no retry starts that could not finish before the deadline.
"""

from __future__ import annotations

import itertools
import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import httpx2
import openai

from chatproxy.config import Settings
from chatproxy.errors import (
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from chatproxy.tokens import USAGE_FIELDS, estimate_usage

DEFAULT_RETRY_AFTER = 5
MAX_MESSAGE_CHARS = 500
MIN_ATTEMPT_SECONDS = 0.5
RETRY_BASE_SECONDS = 0.25
RETRY_CAP_SECONDS = 4.0

# Keep a connection open for every call that may run at once: the SDK's default keeps 100, so
# under more concurrent turns (THREADS is 250) connections were opened and closed on every call,
# each a new TCP and TLS handshake. Idle ones still close after httpx's keep-alive expiry (5 s).
CONNECTION_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=1000)

T = TypeVar("T")
JsonObject = dict[str, Any]
DRAIN_LINES = 16


@dataclass(frozen=True)
class Completion:
    """The reply to one chat completion call."""

    content: str
    model: str
    usage: dict[str, int]
    usage_estimated: bool


class ReplyStream:
    """A reply arriving in pieces: iterate for the text deltas, then ask for the `Completion`.

    It reads the server-sent events of the open response itself, to the end of the body: the
    SDK's own stream stops reading at `data: [DONE]` and closes the response before the body's
    last bytes, which throws the connection away, so every streamed turn paid a new TCP and TLS
    handshake.
    """

    def __init__(self, response: httpx2.Response, model: str, messages: Sequence[dict[str, Any]]):
        self._response = response
        self._model = model
        self._messages = messages
        self._parts: list[str] = []
        self._usage: dict[str, int] | None = None
        self._finished = False

    def __iter__(self) -> Iterator[str]:
        """Yield the reply's text as it arrives; a stream that breaks off is an upstream error."""
        try:
            for chunk in self._chunks():
                self._model = chunk.get("model") or self._model
                usage = chunk.get("usage")
                if isinstance(usage, dict) and all(type(usage.get(f)) is int for f in USAGE_FIELDS):
                    self._usage = {f: usage[f] for f in USAGE_FIELDS}
                for choice in chunk.get("choices") or []:
                    self._finished = self._finished or choice.get("finish_reason") is not None
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        self._parts.append(str(text))
                        yield str(text)
        except UpstreamError:
            raise
        except httpx2.TimeoutException as exc:
            raise UpstreamTimeout() from exc
        except Exception as exc:  # a cut connection, a malformed chunk: the reply is incomplete
            raise UpstreamError("the model provider's stream broke off") from exc
        finally:
            self.close()
        if not self._finished:  # the connection ended before the reply said it was complete
            raise UpstreamError("the model provider's stream broke off")

    def completion(self) -> Completion:
        """Return the whole reply once the stream has ended."""
        content = "".join(self._parts)
        if not content:
            raise UpstreamBadResponse("the model provider streamed no text")
        if self._usage is None:
            usage = estimate_usage(self._messages, content)
            return Completion(content, self._model, usage, usage_estimated=True)
        return Completion(content, self._model, self._usage, usage_estimated=False)

    def close(self) -> None:
        """Release the response: its connection goes back to the pool if the body was read to
        the end, and is closed otherwise (a stream abandoned or broken off)."""
        self._response.close()

    def _chunks(self) -> Iterator[JsonObject]:
        """The `chat.completion.chunk` objects of the event stream, up to `data: [DONE]`; an
        error event raises. What follows `[DONE]` is read too (normally only the end of the
        body), so the connection can serve the next call."""
        lines = self._response.iter_lines()
        data: list[str] = []
        for line in lines:
            if line.startswith("data:"):
                data.append(line[5:].removeprefix(" "))
                continue
            if line or not data:  # other fields (event:, id:, comments), or no event yet
                continue
            payload, data = "\n".join(data), []
            if payload == "[DONE]":
                _drain(lines)
                return
            if not payload:
                continue
            chunk = json.loads(payload)
            if not isinstance(chunk, dict):
                raise UpstreamError("the model provider streamed something that is no chunk")
            if chunk.get("error"):
                raise UpstreamError(f"the model provider's stream failed: {_error_text(chunk)}")
            yield chunk


def _drain(lines: Iterator[str]) -> None:
    """Read the little that follows `[DONE]`. The reply is complete by then, so a failure here
    (a connection closed without the body's last bytes) only costs the connection, and so does
    a body that goes on: after DRAIN_LINES lines it is left unread and the connection dropped."""
    try:
        for _ in itertools.islice(lines, DRAIN_LINES):
            pass
    except (httpx2.HTTPError, httpx2.StreamError):
        pass


class Upstream:
    """Calls the OpenAI-compatible API configured for this process."""

    def __init__(self, client: openai.OpenAI, *, timeout: float, max_retries: int):
        self._client = client
        self._timeout = timeout
        self._max_retries = max_retries

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str | None = None) -> Upstream:
        """Build the client from settings; `base_url` overrides (the dev upstream's address)."""
        client = openai.OpenAI(
            api_key=settings.gpt_api_key or "no-key",
            base_url=base_url or settings.openai_base_url,
            timeout=settings.upstream_timeout,
            max_retries=0,
            http_client=openai.DefaultHttpxClient(limits=CONNECTION_LIMITS),
        )
        return cls(
            client, timeout=settings.upstream_timeout, max_retries=settings.upstream_max_retries
        )

    def complete(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str,
        max_tokens: int,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> Completion:
        """Return the model's reply to `messages`, trying again on transient failures."""

        def attempt(timeout: float) -> Completion:
            result = self._create(messages, model, max_tokens, temperature, timeout)
            content, usage = _read_completion(result)
            served_by = str(result.get("model") or model)
            if usage is None:
                return Completion(content, served_by, estimate_usage(messages, content), True)
            return Completion(content, served_by, usage, usage_estimated=False)

        return self._with_retries(attempt, deadline)

    def stream(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        model: str,
        max_tokens: int,
        temperature: float | None = None,
        deadline: float | None = None,
    ) -> ReplyStream:
        """Open a streamed completion; failures to open it are retried like `complete`'s."""

        def attempt(timeout: float) -> ReplyStream:
            response = self._create(messages, model, max_tokens, temperature, timeout, stream=True)
            return ReplyStream(response, model, messages)

        return self._with_retries(attempt, deadline)

    def moderate(self, text: str, *, model: str, deadline: float | None = None) -> dict[str, Any]:
        """Return the moderation result for `text` as the API gives it."""

        def attempt(timeout: float) -> dict[str, Any]:
            with _translated():
                result: object = self._client.moderations.create(
                    input=text, model=model, timeout=timeout
                )
            if not isinstance(result, openai.types.ModerationCreateResponse) or not result.results:
                raise UpstreamBadResponse()
            answer: dict[str, Any] = result.results[0].model_dump(mode="json", by_alias=True)
            answer["model"] = result.model
            return answer

        return self._with_retries(attempt, deadline)

    def _create(
        self,
        messages: Sequence[dict[str, Any]],
        model: str,
        max_tokens: int,
        temperature: float | None,
        timeout: float,
        *,
        stream: bool = False,
    ) -> Any:
        """Make one chat completion call (a temperature is sent only when one is set).

        The messages are plain JSON already, so they go through the client's public low-level
        `post` rather than `chat.completions.create`, whose request transform walks every message
        (about 0.17 ms each, most of the SDK's cost per call). The answer stays the plain JSON
        object the API sent: building the SDK's pydantic models for it cost more than all of the
        proxy's own work on a turn. A stream comes back as the open response (see
        `ReplyStream`). The SDK still raises its errors for failed calls.
        """
        body: dict[str, Any] = {
            "model": model,
            "messages": list(messages),
            "max_tokens": max_tokens,
        }
        if temperature is not None:
            body["temperature"] = temperature
        options: openai.RequestOptions = {"timeout": timeout, "security": {"bearer_auth": True}}
        with _translated():
            if stream:
                body.update(stream=True, stream_options={"include_usage": True})
                return self._client.post(
                    "/chat/completions",
                    cast_to=httpx2.Response,
                    body=body,
                    options=options,
                    stream=True,
                )
            return self._client.post(
                "/chat/completions", cast_to=JsonObject, body=body, options=options
            )

    def _with_retries(self, attempt: Callable[[float], T], deadline: float | None) -> T:
        """Run `attempt(timeout)` up to 1 + max_retries times, all before `deadline`."""
        failures = 0
        while True:
            left = math.inf if deadline is None else deadline - time.monotonic()
            if left <= MIN_ATTEMPT_SECONDS:
                raise UpstreamTimeout()
            try:
                return attempt(min(self._timeout, left))
            except UpstreamError as exc:
                failures += 1
                if not exc.retryable or failures > self._max_retries:
                    raise
                pause = _pause_before_retry(exc, failures)
                left = math.inf if deadline is None else deadline - time.monotonic()
                if pause + MIN_ATTEMPT_SECONDS >= left:
                    raise
                time.sleep(pause)

    def close(self) -> None:
        self._client.close()


def _pause_before_retry(exc: UpstreamError, failures: int) -> float:
    """Wait as the provider asks on a 429, else back off exponentially with jitter."""
    if isinstance(exc, UpstreamRateLimited):
        return float(exc.retry_after)
    backoff = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2.0 ** (failures - 1))
    return backoff * random.uniform(0.5, 1.0)


def _read_completion(result: object) -> tuple[str, dict[str, int] | None]:
    """Return the reply text and usage, or raise if the answer is not a usable completion.

    The SDK returns a bare string for a non-JSON 200 answer, and JSON of any shape as it came;
    neither may reach the store unless it holds a reply.
    """
    if not isinstance(result, dict):
        raise UpstreamBadResponse()
    try:
        message = result["choices"][0]["message"]
        content = message.get("content")
        if content is None:
            content = message.get("refusal")
    except (AttributeError, IndexError, KeyError, TypeError):
        raise UpstreamBadResponse() from None
    if not isinstance(content, str):
        raise UpstreamBadResponse("the model provider returned no text")
    counts = result.get("usage")
    if not isinstance(counts, dict) or not all(type(counts.get(f)) is int for f in USAGE_FIELDS):
        return content, None
    return content, {f: int(counts[f]) for f in USAGE_FIELDS}


@contextmanager
def _translated() -> Iterator[None]:
    """Turn the SDK's exceptions into the proxy's upstream errors."""
    try:
        yield
    except openai.APITimeoutError as exc:
        raise UpstreamTimeout() from exc
    except openai.APIConnectionError as exc:
        raise UpstreamError("could not reach the model provider") from exc
    except openai.APIResponseValidationError as exc:
        raise UpstreamBadResponse() from exc
    except openai.APIStatusError as exc:
        raise _status_error(exc) from exc
    except ValueError as exc:  # the SDK lets a JSON decode error of a 200 answer escape
        raise UpstreamBadResponse() from exc


def _status_error(exc: openai.APIStatusError) -> UpstreamError:
    status = exc.status_code
    message = _upstream_message(exc)
    if status == 429 and exc.code == "insufficient_quota":
        return UpstreamRejected(f"the model provider's quota is exhausted: {message}")
    if status == 429:
        return UpstreamRateLimited(_retry_after(exc.response.headers.get))
    if status in (401, 403):
        return UpstreamAuthFailed()
    if status >= 500:
        return UpstreamError(f"the model provider failed (HTTP {status})")
    return UpstreamRejected(message, status=400 if status in (400, 413, 422) else 502)


def _upstream_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    text = body.get("message") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text:
        text = f"the model provider refused the request (HTTP {exc.status_code})"
    return text[:MAX_MESSAGE_CHARS]


def _error_text(chunk: JsonObject) -> str:
    """The message of an error event in a stream."""
    error = chunk.get("error")
    text = error.get("message") if isinstance(error, dict) else None
    return str(text or "no message")[:MAX_MESSAGE_CHARS]


def _retry_after(header: Callable[[str], str | None]) -> int:
    """Read how long to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    millis = header("retry-after-ms")
    seconds: float | None = None
    if millis:
        try:
            seconds = float(millis) / 1000
        except ValueError:
            seconds = None
    raw = header("retry-after")
    if seconds is None and raw:
        try:
            seconds = float(raw)
        except ValueError:
            try:
                seconds = parsedate_to_datetime(raw).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = None
    if seconds is None or seconds != seconds:
        return DEFAULT_RETRY_AFTER
    return min(3600, max(1, math.ceil(seconds)))

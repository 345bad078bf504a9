"""Own what a call to the model provider is, apart from the HTTP client that makes it: the
provider's settings (`Provider`), the request bodies, the timing of retries, and the
translation of failures into the proxy's error tree (what an answer means is `answers.py`'s).

`client.AsyncUpstream` makes the calls (aiohttp). The calls are plain JSON over kept-alive
connections: the official `openai` client was used before, and profiled in a turn its request
building and HTTP stack (httpx, httpcore, h11) cost about 1.4 ms of CPU a call on a slow 2-core
machine, more than the proxy's own work and both store round trips together. Nothing of it was
left to use: the proxy sends the messages as plain JSON, reads the answers as plain JSON,
parses streams itself and does its own retries.

Every failure is translated into the proxy's error tree, so nothing above the client ever sees
an HTTP library's exception. Retries are decided here too: each attempt gets at most the time
left before the request's deadline, and no retry starts that could not finish before it.

An attempt that was sent and never answered (it timed out, or its connection broke after the
request went out) may have been processed and billed by the provider: the client counts such
attempts (`UpstreamError.lost_attempts`, `Completion.lost_attempts`) for the service to charge.
One that never reached the provider (it could not connect, or its connect timed out) or that
the provider answered with an error (429, 5xx, any other status) is not counted.
"""

from __future__ import annotations

import json
import math
import random
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any, Self
from urllib.parse import unquote, urlsplit, urlunsplit

from chatproxy.config import Settings
from chatproxy.jsontext import parse
from chatproxy.upstream.base import JsonObject
from chatproxy.upstream.provider_errors import tenant_message, withheld
from chatproxy.upstream_errors import (
    UpstreamAuthFailed,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_RETRY_AFTER = 5
USER_AGENT = "chatproxy"
MAX_ERROR_BYTES = 64 * 1024
MIN_ATTEMPT_SECONDS = 0.5
# A connect (a pooled connection waited for, TCP, TLS, a proxy's tunnel) that takes its attempt's
# whole time fails as a connect, which sent nothing, not as the attempt's timeout, which may
# have been billed: its own timeout ends this much sooner.
CONNECT_LEAD_SECONDS = 0.05
RETRY_BASE_SECONDS = 0.25
RETRY_CAP_SECONDS = 4.0
# What a call sets itself; a request's own fields never override these.
CALL_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "stream",
     "stream_options"}
)  # fmt: skip

# Keep a connection open for every call that may run at once (deploy.sh's --concurrency is 250),
# so no call under load pays a new TCP and TLS handshake.
POOL_CONNECTIONS = 1000

# Kept connections idle longer than this are closed instead of reused: one that a NAT or firewall
# dropped without a word would hang the next call until its timeout. NATs keep idle TCP for
# minutes (Cloud NAT: 20); httpx, under the openai client, closed them after 5 s.
IDLE_SECONDS = 60.0


class Provider:
    """What every client of the OpenAI-compatible API at `base_url` shares: the key and headers,
    the timeout of each attempt, how many retries, and where TLS certificates are checked."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float,
        max_retries: int,
        headers: Mapping[str, str] | None = None,
        ca_file: str | None = None,
    ):
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._max_retries = max_retries
        self._ca_file = ca_file
        self._headers = {
            "Authorization": f"Bearer {api_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }

    @classmethod
    def from_settings(cls, settings: Settings, base_url: str | None = None) -> Self:
        """Build the client from settings; `base_url` overrides (the dev upstream's address)."""
        headers = {}
        if settings.openai_organization:
            headers["OpenAI-Organization"] = settings.openai_organization
        if settings.openai_project:
            headers["OpenAI-Project"] = settings.openai_project
        return cls(
            base_url or settings.openai_base_url or DEFAULT_BASE_URL,
            settings.gpt_api_key or "no-key",
            timeout=settings.upstream_timeout,
            max_retries=settings.upstream_max_retries,
            headers=headers,
            ca_file=settings.upstream_ca_file,
        )


def proxy_for(base_url: str) -> str | None:
    """The proxy the environment names for `base_url` (HTTPS_PROXY, HTTP_PROXY or ALL_PROXY,
    unless NO_PROXY names the host), if any."""
    url = urlsplit(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme or "https") or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass(url.hostname or ""):
        return proxy
    return None


def split_proxy(proxy: str) -> tuple[str, tuple[str, str] | None]:
    """A proxy's URL (`host:port` means `http://host:port`) without the credentials in it, and
    those credentials (`http://user:password@host:port`), unquoted."""
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    parts = urlsplit(proxy)
    if parts.username is None:
        return proxy, None
    bare = parts._replace(netloc=parts.netloc.rpartition("@")[2])
    return urlunsplit(bare), (unquote(parts.username), unquote(parts.password or ""))


class CapRefused(UpstreamRejected):
    """The model refused the cap as `max_tokens` (OpenAI's reasoning models take only
    `max_completion_tokens`): the client calls it again with the cap under that name."""


def completion_body(
    messages: Sequence[dict[str, Any]],
    model: str,
    max_tokens: int,
    temperature: float | None,
    fields: Mapping[str, Any] | None = None,
    *,
    completion_cap: bool = False,
) -> JsonObject:
    """A chat completion request: the request's own `fields` as they are, and the call's model,
    messages, max_tokens and temperature (sent only when one is set), which no field overrides
    (nor a `stream` or `stream_options` of theirs). The cap goes as `max_completion_tokens`
    when the request named it so, or asked for reasoning (`reasoning_effort`), or the model is
    known to refuse `max_tokens` (`completion_cap`): OpenAI's reasoning models do."""
    fields = fields or {}
    body = {k: v for k, v in fields.items() if k not in CALL_FIELDS}
    named = "max_completion_tokens" in fields or "reasoning_effort" in fields
    cap = "max_completion_tokens" if named or completion_cap else "max_tokens"
    body.update({"model": model, "messages": list(messages), cap: max_tokens})
    if temperature is not None:
        body["temperature"] = temperature
    return body


def attempt_timeout(timeout: float, deadline: float | None) -> float:
    """How long the next attempt may take: `timeout`, or less if the deadline is nearer; an
    attempt that could not take MIN_ATTEMPT_SECONDS is not started (a timeout)."""
    left = math.inf if deadline is None else deadline - time.monotonic()
    if left <= MIN_ATTEMPT_SECONDS:
        raise UpstreamTimeout()
    return min(timeout, left)


def connect_timeout(timeout: float) -> float:
    """How long an attempt of `timeout` seconds may take to connect (see CONNECT_LEAD_SECONDS)."""
    return timeout - min(CONNECT_LEAD_SECONDS, timeout / 2)


def retry_pause(
    exc: UpstreamError, failures: int, max_retries: int, deadline: float | None
) -> float | None:
    """How long to wait before trying again after `failures` failed attempts, the last with
    `exc`; None when no retry may follow (not retryable, none left, or past the deadline)."""
    if not exc.retryable or failures > max_retries:
        return None
    pause = _pause_before_retry(exc, failures)
    left = math.inf if deadline is None else deadline - time.monotonic()
    return None if pause + MIN_ATTEMPT_SECONDS >= left else pause


def moderation_of(result: JsonObject, model: str) -> dict[str, Any]:
    """The first moderation result, as the API gives it, with the model's name."""
    results = result.get("results")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise UpstreamBadResponse()
    return {**results[0], "model": str(result.get("model") or model)}


def json_object(data: bytes) -> JsonObject:
    """The JSON object a successful call answered; anything else is a bad response."""
    try:
        result = parse(data)
    except ValueError as exc:  # not JSON (an HTML page from a gateway), or not UTF-8
        raise UpstreamBadResponse() from exc
    if not isinstance(result, dict):
        raise UpstreamBadResponse()
    return result


def _pause_before_retry(exc: UpstreamError, failures: int) -> float:
    """Wait as the provider asks on a 429, else back off exponentially with jitter."""
    if isinstance(exc, UpstreamRateLimited):
        return float(exc.retry_after)
    backoff = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2.0 ** (failures - 1))
    return backoff * random.uniform(0.5, 1.0)


def status_error(status: int, headers: Mapping[str, str], data: bytes) -> UpstreamError:
    """The proxy's error for a failed call, from its status and OpenAI's error object. The
    provider's message is passed on only for a refusal of the request itself: one about the
    operator's account (`provider_errors.py`; a 402 always) is said without its words, as
    are a 401, a 403, a 429 and a 5xx, which are the account's or the provider's."""
    error = _error_object(data)
    if status == 429 and error.get("code") == "insufficient_quota":  # the operator's account
        return UpstreamRejected("the model provider's quota for this service is exhausted")
    if status == 429:
        return UpstreamRateLimited(_retry_after(headers.get))
    if status in (401, 403):
        return UpstreamAuthFailed()
    if status >= 500:
        return UpstreamError(f"the model provider failed (HTTP {status})")
    if withheld(error, status) or status == 402:
        return UpstreamRejected(
            f"the model provider refused the call over this service's account with it, not"
            f" over the request (HTTP {status})"
        )
    message = tenant_message(error) or f"the model provider refused the request (HTTP {status})"
    if status == 400 and error.get("param") == "max_tokens" and "max_completion_tokens" in message:
        return CapRefused(message, status=400)
    return UpstreamRejected(message, status=400 if status in (400, 413, 422) else 502)


def _error_object(data: bytes) -> JsonObject:
    """OpenAI's `{"error": {...}}` of an error answer (or the body itself if it is the object);
    empty if the body is no JSON object."""
    try:
        body = json.loads(data)
    except ValueError:
        return {}
    if not isinstance(body, dict):
        return {}
    error = body.get("error", body)
    return error if isinstance(error, dict) else {}


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
    if seconds is None or not math.isfinite(seconds):  # NaN or infinite: no time at all
        return DEFAULT_RETRY_AFTER
    return min(3600, max(1, math.ceil(seconds)))

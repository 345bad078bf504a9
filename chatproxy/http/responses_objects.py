"""Own the Response object (`"object": "response"`) as `POST /v1/responses` answers it, its
stream's lifecycle events carry it, and `GET /v1/responses/{id}` rebuilds it: from the stored
reply, the settings kept with the response (`ResponsesRequest.settings`) and its `ResponseHead`.

- `status`: `completed`; `incomplete` with `incomplete_details.reason` `max_output_tokens`
  when the reply stopped at its cap (finish reason `length`) or `content_filter`; `failed`
  with `error` when the turn failed; `in_progress` before there is a reply (a stream's first
  events).
- `output`: the reply's items (`responses_items.message_items`): a `message` with its
  `output_text` when it has text, then a `function_call` per tool call, with the ids of the
  reply's item (`msg_<n>`, `fc_<n>_<k>`). The SDKs compute `output_text` themselves.
- `usage` from the stored usage (`prompt_tokens` → `input_tokens`, ..., and the cached and
  reasoning tokens when the upstream counted them).
- the request's settings as the client sent them, with OpenAI's defaults for those it left
  out (`ECHOED`).

Nothing here does I/O; the objects parse with `openai.types.responses.Response`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from chatproxy.errors import ProxyError
from chatproxy.http.responses_items import as_message, message_items
from chatproxy.store.items import Message

JsonObject = dict[str, Any]

# The settings a Response echoes, and OpenAI's defaults for those a request left out.
ECHOED: dict[str, Any] = {
    "instructions": None,
    "metadata": {},
    "tools": [],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "text": {"format": {"type": "text"}},
    "truncation": "disabled",
    "store": True,
    "temperature": None,
    "top_p": None,
    "reasoning": {"effort": None, "summary": None},
    "user": None,
    "safety_identifier": None,
    "max_output_tokens": None,
    "max_tool_calls": None,
    "top_logprobs": None,
    "prompt_cache_key": None,
}
# Why a reply stopped short, as a Response's `incomplete_details.reason` says it.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(frozen=True)
class ResponseHead:
    """What a Response says of itself besides its reply: its id (`resp_...`), when the
    request came (`created_at`, seconds), the model the turn asked for (the reply's own model
    replaces it once there is one), the id its reply's item has in the chat (`reply_id`, known
    before the reply is saved: it names the output items), where it continues from, and the
    chat its item ids name (`chat`, "" for none: `responses_items`)."""

    id: str
    created_at: float
    model: str
    reply_id: int
    previous_response_id: str | None = None
    conversation_id: str | None = None
    chat: str = ""


def response_object(
    head: ResponseHead,
    settings: Mapping[str, Any],
    reply: Message | JsonObject | None = None,
    *,
    error: ProxyError | None = None,
    output: list[JsonObject] | None = None,
) -> JsonObject:
    """The Response of a turn: with its stored `reply`, completed (or incomplete); with an
    `error`, failed; with neither, in progress. `output` replaces the items built from the
    reply (a stream's items, in the order it sent them)."""
    message = None if reply is None else replace(as_message(reply), id=head.reply_id)
    status, incomplete = _status(message, error)
    if output is None:
        output = [] if message is None else message_items(message, head.chat)
    body: JsonObject = {
        "id": head.id,
        "object": "response",
        "created_at": int(head.created_at),
        "status": status,
        "background": False,
        "error": None if error is None else response_error(error),
        "incomplete_details": None if incomplete is None else {"reason": incomplete},
        "model": (message.model if message else None) or head.model,
        "output": output,
        "usage": _usage(message.usage) if message else None,
        "previous_response_id": head.previous_response_id,
        "conversation": None if head.conversation_id is None else {"id": head.conversation_id},
    }
    if status == "completed" and message is not None:
        body["completed_at"] = int(message.created_at)
    for name, default in ECHOED.items():
        value = settings.get(name)
        body[name] = default if value is None else value
    return body


def response_error(error: ProxyError) -> JsonObject:
    """A failed Response's `error`: OpenAI's code for it (`rate_limit_exceeded` or
    `server_error`, the codes a Response's error may have), the proxy's message, and the type
    and param of its OpenAI error shape."""
    shape = error.to_openai_json()["error"]
    limited = error.status == 429 or error.code == "upstream_rate_limited"
    code = "rate_limit_exceeded" if limited else "server_error"
    return {"code": code, "message": error.message, "type": shape["type"], "param": error.param}


def _status(message: Message | None, error: ProxyError | None) -> tuple[str, str | None]:
    """A Response's status, and why it is incomplete (if it is)."""
    if error is not None:
        return "failed", None
    if message is None:
        return "in_progress", None
    reason = INCOMPLETE.get(message.finish_reason or "")
    return ("incomplete", reason) if reason else ("completed", None)


def _usage(tokens: Mapping[str, Any] | None) -> JsonObject | None:
    """A Response's `usage` of a reply's stored token counts."""
    if not tokens:
        return None
    prompt = _count(tokens, "prompt_tokens")
    completion = _count(tokens, "completion_tokens")
    cached = _count(tokens.get("prompt_tokens_details"), "cached_tokens")
    reasoning = _count(tokens.get("completion_tokens_details"), "reasoning_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": _count(tokens, "total_tokens") or prompt + completion,
    }


def _count(counts: Any, name: str) -> int:
    value = counts.get(name) if isinstance(counts, Mapping) else None
    return value if type(value) is int else 0

"""Own what a chat completion's answer means: the `Completion` its body holds, whether the
upstream answered it whole or streamed it (`stream.ReplyParts` puts a streamed answer's body
together from its chunks, then reads it here).

The first choice is kept as the upstream sent it: its message (text, refusal, tool calls,
audio, annotations, ...), finish reason and logprobs; the whole body beside it. What the proxy
itself needs of it is the text, the tool calls and the usage, checked here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chatproxy.tokens import (
    MAX_DETAIL_NAME,
    MAX_DETAILS,
    USAGE_DETAILS,
    USAGE_FIELDS,
    estimate_usage,
    is_count,
)
from chatproxy.upstream.base import Completion, JsonObject
from chatproxy.upstream_errors import UpstreamBadResponse

NO_TEXT = "the model provider returned no text"


def completion_of(
    result: JsonObject, model: str, messages: Sequence[dict[str, Any]], no_text: str = NO_TEXT
) -> Completion:
    """The `Completion` a chat completion's answer holds (usage estimated if it has none); an
    answer whose first choice has neither text nor a tool call is a bad response (`no_text`)."""
    choice = _first_choice(result)
    message: JsonObject = choice["message"]
    content = message.get("content")
    if content is None:
        content = message.get("refusal")
    calls = message.get("tool_calls")
    calls = calls if isinstance(calls, list) and calls else None
    if not isinstance(content, str | None) or (content is None and calls is None):
        raise UpstreamBadResponse(no_text)
    served_by = str(result.get("model") or model)
    usage = usage_counts(result.get("usage"))
    estimated = usage is None
    if usage is None:
        usage = estimate_usage(messages, _reply_text(content, calls))
    finish = choice.get("finish_reason")
    logprobs = choice.get("logprobs")
    return Completion(
        content,
        served_by,
        usage,
        estimated,
        message=message,
        finish_reason=finish if isinstance(finish, str) else None,
        logprobs=logprobs if isinstance(logprobs, dict) else None,
        body=result,
    )


def usage_counts(usage: Any) -> dict[str, Any] | None:
    """The token counts of a `usage` object, or None if it lacks one of them (or one is not a
    count); with the breakdowns it gives (`USAGE_DETAILS`), each held to its counts but zero
    (OpenAI's always hold six, most of them 0 for most replies)."""
    if not isinstance(usage, dict) or not all(is_count(usage.get(f)) for f in USAGE_FIELDS):
        return None
    counts: dict[str, Any] = {f: usage[f] for f in USAGE_FIELDS}
    for name in USAGE_DETAILS:
        details = usage.get(name)
        if isinstance(details, dict):
            kept = [
                (k, v)
                for k, v in details.items()
                if v and is_count(v) and len(k) <= MAX_DETAIL_NAME
            ]
            if kept:
                counts[name] = dict(kept[:MAX_DETAILS])
    return counts


def _first_choice(result: JsonObject) -> JsonObject:
    """The answer's first choice, with a message object; anything else is a bad response."""
    choices = result.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise UpstreamBadResponse()
    if not isinstance(choices[0].get("message"), dict):
        raise UpstreamBadResponse()
    return choices[0]


def _reply_text(content: str | None, calls: list[Any] | None) -> str:
    """What a reply says, for estimating its tokens: its text and its calls' arguments."""
    words = [content or ""]
    for call in calls or []:
        function = call.get("function") if isinstance(call, dict) else None
        if isinstance(function, dict):
            words += [str(function.get("name") or ""), str(function.get("arguments") or "")]
    return " ".join(w for w in words if w)

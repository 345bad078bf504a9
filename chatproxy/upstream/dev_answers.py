"""Own what the dev upstream (`dev.py`) answers a chat completion with: deterministic rules, so
the proxy runs offline and tests can say what the model will do.

- **Text**: the reply echoes the last user message (`DevUpstream.reply_for`); when the last
  message is a tool result, it repeats the results it was sent instead. A text reply is cut to
  `max_tokens` / `max_completion_tokens` with `finish_reason: "length"`, as a model would.
- **Tools**: with `tools` (function tools) and a user message last, the reply calls every tool
  whose name the user's text contains as a whole word, in the order the tools are listed, all
  at once (parallel calls) unless `parallel_tool_calls` is false (then only the first).
  `tool_choice: "required"` calls the first tool when the text names none, a named
  `tool_choice` calls that tool, `"none"` calls nothing. A call's arguments are an example of
  its `parameters` schema (`example_of`). Such a reply has no text and finishes `"tool_calls"`.
- **JSON**: `response_format` `json_schema` answers an example of its schema as the text;
  `json_object` answers `{"reply": <the echo>}`.
- **Choices**: `n` (1-16) answers that many choices; choice k > 1 ends its text with
  ` (choice k)`.
- **Logprobs**: `logprobs: true` gives each word of a text reply a log probability, with
  `top_logprobs` alternatives.
- Every answer carries `system_fingerprint: "fp_dev"`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chatproxy.tokens import CHARS_PER_TOKEN, content_text, estimate_tokens

MAX_CHOICES = 16
FINGERPRINT = "fp_dev"
SCALARS: dict[str, Any] = {"string": "dev", "integer": 1, "number": 1, "boolean": True}
ARGUMENT_PIECE_CHARS = 8  # a streamed call's arguments arrive in pieces this long
USAGE_DETAILS = {
    "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    "completion_tokens_details": {
        "reasoning_tokens": 0,
        "audio_tokens": 0,
        "accepted_prediction_tokens": 0,
        "rejected_prediction_tokens": 0,
    },
}


class BadChatRequest(ValueError):
    """A request the dev upstream refuses with a 400, as OpenAI would."""


@dataclass(frozen=True)
class Answer:
    """One choice of a dev answer: its text or its tool calls, and why it stopped."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish: str


def cut_to_limit(reply: str, request: dict[str, Any]) -> tuple[str, str]:
    """Cut `reply` to the request's `max_completion_tokens` or `max_tokens` (estimated as
    `tokens.estimate_tokens` does, at a word's end where one fits) and return it with its
    finish reason: "length" when cut, as OpenAI answers, else "stop"."""
    limit = request.get("max_completion_tokens", request.get("max_tokens"))
    if not isinstance(limit, int) or isinstance(limit, bool) or estimate_tokens(reply) <= limit:
        return reply, "stop"
    cut = reply[: max(limit, 0) * CHARS_PER_TOKEN]
    words = cut.rsplit(" ", 1)[0] if " " in cut else cut
    return words, "length"


def tool_results(messages: list[dict[str, Any]]) -> str | None:
    """The reply to a conversation that ends with tool results: what they said."""
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, content_text(message.get("content"))[0])
    if not results:
        return None
    return "[dev upstream] The tools said: " + "; ".join(results) + "."


def plan(request: dict[str, Any], reply: str, call_prefix: str) -> list[Answer]:
    """The choices answering `request`, whose text reply is `reply`; raises `BadChatRequest`."""
    count = request.get("n", 1)
    if count is None:
        count = 1
    if type(count) is not int or not 1 <= count <= MAX_CHOICES:
        raise BadChatRequest(f"n must be an integer from 1 to {MAX_CHOICES}.")
    calls = _tool_calls(request, call_prefix)
    if calls:
        return [Answer(None, calls, "tool_calls")] * count
    formatted = _formatted(request, reply)
    if formatted is not None:  # JSON: whole, in every choice
        return [Answer(formatted, None, "stop")] * count
    answers = []
    for n in range(count):
        content, finish = cut_to_limit(reply if n == 0 else f"{reply} (choice {n + 1})", request)
        answers.append(Answer(content, None, finish))
    return answers


def example_of(schema: Any, depth: int = 0) -> Any:
    """A value that fits a (simple) JSON schema: an enum's or const's first value, an object
    with each of its properties, one item of an array, "dev" for a string, 1 for a number."""
    if not isinstance(schema, dict) or depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for choice in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(choice), list) and schema[choice]:
            return example_of(schema[choice][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        properties = schema.get("properties")
        if not isinstance(properties, dict):
            return {}
        return {str(k): example_of(v, depth + 1) for k, v in properties.items()}
    if kind == "array":
        return [example_of(schema.get("items"), depth + 1)]
    return SCALARS.get(str(kind))


def logprobs_of(words: list[str], request: dict[str, Any]) -> dict[str, Any] | None:
    """The logprobs of a text's words, if the request asked for them."""
    if request.get("logprobs") is not True:
        return None
    top = request.get("top_logprobs")
    top = top if type(top) is int and 0 <= top <= 20 else 0
    entries = []
    for word in words:
        others = [{"token": word, "logprob": -0.01, "bytes": list(word.encode())}]
        others += [{"token": f"alt{k}", "logprob": -5.0 - k, "bytes": None} for k in range(1, top)]
        entries.append({**others[0], "top_logprobs": others[:top]})
    return {"content": entries, "refusal": None}


def words_of(text: str) -> list[str]:
    """A text's words, each with the spaces before it (a trailing space goes with the last)."""
    return re.findall(r"\s*\S+(?:\s+$)?", text)


def streamed_deltas(answer: Answer) -> Iterator[tuple[dict[str, Any], str | None]]:
    """A choice's deltas as a stream sends them, each with the word it carries (None for a
    piece of a tool call)."""
    if answer.tool_calls is None:
        yield {"role": "assistant", "content": ""}, None
        for word in words_of(answer.content or ""):
            yield {"content": word}, word
        return
    yield {"role": "assistant", "content": None}, None
    for index, call in enumerate(answer.tool_calls):
        function = call["function"]
        head = {"index": index, **call, "function": {"name": function["name"], "arguments": ""}}
        yield {"tool_calls": [head]}, None
        arguments = function["arguments"]
        for start in range(0, len(arguments), ARGUMENT_PIECE_CHARS):
            piece = arguments[start : start + ARGUMENT_PIECE_CHARS]
            yield {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}, None


def _formatted(request: dict[str, Any], reply: str) -> str | None:
    """The text a JSON `response_format` asks for (None without one): an example of its
    schema, or the reply in an object."""
    form = request.get("response_format")
    kind = form.get("type") if isinstance(form, dict) else None
    if kind == "json_schema":
        spec = form.get("json_schema") if isinstance(form, dict) else None
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return json.dumps(example_of(schema if isinstance(schema, dict) else {"type": "object"}))
    if kind == "json_object":
        return json.dumps({"reply": reply})
    return None


def _tool_calls(request: dict[str, Any], call_prefix: str) -> list[dict[str, Any]] | None:
    """The calls a request with tools gets (see the module's rules), or None."""
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    tools = [t.get("function") for t in request.get("tools") or [] if isinstance(t, dict)]
    functions = [f for f in tools if isinstance(f, dict) and isinstance(f.get("name"), str)]
    choice = request.get("tool_choice")
    if not functions or choice == "none" or not messages or messages[-1].get("role") != "user":
        return None
    text = content_text(messages[-1].get("content"))[0]
    called = [f for f in functions if re.search(rf"\b{re.escape(f['name'])}\b", text)]
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        called = [f for f in functions if f["name"] == choice["function"].get("name")]
    elif choice == "required" and not called:
        called = functions[:1]
    if request.get("parallel_tool_calls") is False:
        called = called[:1]
    return [
        {
            "id": f"{call_prefix}_{n}",
            "type": "function",
            "function": {
                "name": f["name"],
                "arguments": json.dumps(example_of(f.get("parameters") or {"type": "object"})),
            },
        }
        for n, f in enumerate(called)
    ] or None

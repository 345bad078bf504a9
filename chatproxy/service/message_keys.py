"""Own when two chat completion messages are the same message. Pure.

`message_key` is what matching a resent history compares: role, content, tool calls (id, name,
arguments) and `tool_call_id`, with the normalisations real clients need:
- `developer` is `system` (clients rename it per model);
- a string is a list of one text part, text is compared without surrounding whitespace, and
  empty, missing and null content are alike (an assistant's tool-call message comes back with
  any of them);
- a part's `cache_control` is ignored (clients move it to the newest messages); an `image_url`
  given as a string is `{"url": ...}`, and `"detail": "auto"` is no detail;
- tool-call arguments are compared as JSON values (LangChain and the AI SDK re-serialize them);
- an assistant message without content is its `refusal` (`sent_content`: the proxy stores a
  refused reply's refusal as its text, and the OpenAI SDK sends it back as `content: null` and
  `refusal`), and a refusal part is a text part;
- `name` and fields the proxy does not store are not compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

Key = tuple[Any, ...]


def sent_content(message: Mapping[str, Any]) -> Any:
    """A sent message's content as the proxy stores it: an assistant's refusal when its content
    is empty (a reply's text is its content, else its refusal)."""
    content = message.get("content")
    refusal = message.get("refusal")
    if not content and refusal and message.get("role") == "assistant":
        return refusal
    return content


def message_key(role: str, content: Any, calls: Any, call_id: Any) -> Key:
    """What matching compares of a message: its role, content, tool calls and `tool_call_id`,
    normalised (see the module's docstring)."""
    if isinstance(content, str):  # the common case, without building a part
        text = content.strip()
        content_key: Key = (("text", text),) if text else ()
    else:
        keys = (_part_key(part) for part in content or ())
        content_key = tuple(key for key in keys if key != ("text", ""))
    role = "system" if role == "developer" else role
    return (role, content_key, tuple(map(_call_key, calls)) if calls else (), call_id)


def _part_key(part: Mapping[str, Any]) -> Key:
    kind = part.get("type")
    body = part.get(kind) if isinstance(kind, str) else None
    if kind in ("text", "refusal"):
        return ("text", str(body).strip())
    if kind == "image_url" and isinstance(body, str):
        body = {"url": body}
    if kind == "image_url" and isinstance(body, dict) and body.get("detail") == "auto":
        body = {k: v for k, v in body.items() if k != "detail"}
    return (kind, json.dumps(body, sort_keys=True))


def _call_key(call: Mapping[str, Any]) -> Key:
    kind = call.get("type", "function")
    body = call.get(kind) or {}
    arguments = body.get("arguments" if kind == "function" else "input")
    if kind == "function" and isinstance(arguments, str):
        with suppress(ValueError, RecursionError):  # not JSON: compared as the text it is
            arguments = json.dumps(json.loads(arguments), sort_keys=True)
    elif arguments is not None and not isinstance(arguments, str):  # a stored one not as text
        arguments = json.dumps(arguments, sort_keys=True, default=str)
    return (call.get("id"), kind, body.get("name"), arguments)

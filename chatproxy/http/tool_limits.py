"""Own the bounds of the tool definitions a request gives the model, as OpenAI's API bounds
them: at most MAX_TOOLS tools, each named with 1-64 characters of A-Z a-z 0-9 _ -; and, the
proxy's own, all of them together at most MAX_TOOLS_CHARS characters of JSON text
(`Settings.max_tools_chars`). A request's tools go with its call to the model, each turn again
(and a stored Response keeps them with its reply): within MAX_BODY_BYTES alone, one request
could send a megabyte of them, which the operator pays for as prompt tokens.

`check_chat_tools` holds a chat completion request's `tools` (a function's or a custom tool's
name; other types are the model's to judge) and its legacy `functions`;
`responses_options.chat_tools` holds a Responses request's function tools with `tool_name`,
and `check_tools_size` their JSON text. A refusal is a `ValidationFailed` naming the field
(`tools[2].function.name`), as OpenAI names it. The characters measured are returned too: the
turn counts the tools' tokens from them (`TurnOptions.tool_tokens`: against CONTEXT_TOKENS and
in the token budget's estimates), so the definitions are written as JSON once, and not at all
for a request without any. Nothing here does I/O.
"""

from __future__ import annotations

import re
from typing import Any

from chatproxy.errors import ValidationFailed
from chatproxy.jsontext import compact

MAX_TOOLS = 128
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
CHAT_TOOL_TYPES = ("function", "custom")  # the chat completion tools that carry a name


def check_tool_count(tools: Any, where: str = "tools") -> list[Any]:
    """`tools`, if it is a list of at most MAX_TOOLS."""
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise ValidationFailed(f"{where}: must be a list of at most {MAX_TOOLS} tools", param=where)
    return tools


def tool_name(name: Any, where: str) -> str:
    """`name`, if it is a name OpenAI's API takes for a function (or a tool, or a schema)."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValidationFailed(f"{where}: must be 1-64 characters of A-Z a-z 0-9 _ -", param=where)
    return name


def check_tools_size(where: str, max_chars: int | None, *definitions: Any) -> int:
    """The characters of the JSON text of tool `definitions` (each may be None: none), together;
    refuse them if that is more than `max_chars` (MAX_TOOLS_CHARS; None: not held), naming
    `where`."""
    size = sum(len(compact(value)) for value in definitions if value is not None)
    if max_chars is not None and size > max_chars:
        raise ValidationFailed(
            f"{where}: the tool definitions are {size} characters of JSON; at most {max_chars}"
            " (MAX_TOOLS_CHARS), as each turn sends them to the model",
            param=where,
        )
    return size


def check_chat_tools(tools: Any, functions: Any, max_chars: int | None) -> int:
    """Hold a chat completion request's `tools` and legacy `functions` (either may be None):
    at most MAX_TOOLS of each, each function (or custom tool) named as OpenAI takes it, and
    their JSON text together within `max_chars`; return that text's characters."""
    for n, tool in enumerate(check_tool_count(tools) if tools is not None else ()):
        where = f"tools[{n}]"
        if not isinstance(tool, dict):
            raise ValidationFailed(f"{where}: must be an object (a tool)", param=where)
        kind = tool.get("type")
        if kind not in CHAT_TOOL_TYPES:
            continue
        body = tool.get(kind)
        if not isinstance(body, dict):
            raise ValidationFailed(f"{where}.{kind}: must be an object", param=f"{where}.{kind}")
        tool_name(body.get("name"), f"{where}.{kind}.name")
    for n, function in enumerate(
        check_tool_count(functions, "functions") if functions is not None else ()
    ):
        where = f"functions[{n}]"
        if not isinstance(function, dict):
            raise ValidationFailed(f"{where}: must be an object (a function)", param=where)
        tool_name(function.get("name"), f"{where}.name")
    where = "tools" if tools is not None else "functions"
    return check_tools_size(where, max_chars, tools, functions)

"""Own the translation of a Responses request's tool and output options into chat completion
fields: `tools`, `tool_choice`, `text.format` (→ `response_format`), `text.verbosity` and
`reasoning.effort` (→ `reasoning_effort`); each refused with a `ValidationFailed` naming the
field (`param`) when a chat completion model cannot take it.

- Function tools (`{"type": "function", name, description, parameters, strict}`) become chat
  tools (`{"type": "function", "function": {...}}`); `strict` and `parameters` go only when
  sent (other fields of a function tool, such as `defer_loading`, have no chat form and are
  left out). Any other tool type is refused, naming it: the proxy runs no built-in tools (web
  search, file search, code interpreter, computer use, image generation, MCP, shells, custom
  and namespaced tools).
- `tool_choice`: `auto`, `none` and `required` as they are; `{"type": "function", "name"}` and
  `{"type": "allowed_tools", "mode", "tools"}` of function tools in their chat form; a named
  function must be one of `tools`.
- `text.format`: `text` is the default (no `response_format`); `json_object` and `json_schema`
  (name, schema, strict, description) become `response_format`.

A stored response keeps these options as the turn used them (`kept_options`), for its `GET`: a
field the proxy does not know inside them (OpenAI adds some, such as a function tool's
`defer_loading` or `reasoning.context`) is accepted, but neither sent nor kept, so that the
settings kept with each reply hold what the proxy understands only.

Nothing here does I/O.
"""

from __future__ import annotations

from typing import Any

from chatproxy.errors import ValidationFailed
from chatproxy.http.tool_limits import check_tool_count, tool_name

JsonObject = dict[str, Any]

CHOICES = ("auto", "none", "required")
VERBOSITY = ("low", "medium", "high")


def chat_tools(tools: Any) -> list[JsonObject]:
    """The chat completion tools of a request's function tools (at most MAX_TOOLS; their size
    is held by the request, `tool_limits.check_tools_size`)."""
    return [_chat_tool(tool, f"tools[{n}]") for n, tool in enumerate(check_tool_count(tools))]


def _chat_tool(tool: Any, where: str) -> JsonObject:
    if not isinstance(tool, dict):
        raise ValidationFailed(f"{where}: must be an object (a tool)", param=where)
    kind = tool.get("type")
    if kind != "function":
        raise ValidationFailed(
            f"{where}.type: {str(kind)[:64]!r} tools are not supported: the proxy offers the"
            " model function tools only (type 'function'), and runs no built-in tools",
            param=f"{where}.type",
        )
    function: JsonObject = {"name": tool_name(tool.get("name"), f"{where}.name")}
    optional = {"description": str, "parameters": dict, "strict": bool}
    function.update(_optional(tool, optional, where))
    return {"type": "function", "function": function}


def _optional(given: JsonObject, kinds: dict[str, type], where: str) -> JsonObject:
    """The optional fields of `given` that are set (not null), each of its kind."""
    fields = {}
    for field, kind in kinds.items():
        value = given.get(field)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise ValidationFailed(
                f"{where}.{field}: must be a {kind.__name__}", param=f"{where}.{field}"
            )
        fields[field] = value
    return fields


def chat_tool_choice(choice: Any, tools: list[JsonObject]) -> Any:
    """The chat completion `tool_choice` of a request's, for its (chat) `tools`."""
    if isinstance(choice, str) and choice in CHOICES:
        return choice
    if not isinstance(choice, dict):
        raise ValidationFailed(
            f"tool_choice: must be one of {', '.join(CHOICES)} or an object", param="tool_choice"
        )
    names = {tool["function"]["name"] for tool in tools}
    kind = choice.get("type")
    if kind == "function":
        return _named(choice.get("name"), names, "tool_choice.name")
    if kind == "allowed_tools":
        mode = choice.get("mode")
        if mode not in ("auto", "required"):
            raise ValidationFailed(
                "tool_choice.mode: must be auto or required", param="tool_choice.mode"
            )
        allowed = choice.get("tools")
        if not isinstance(allowed, list) or not allowed:
            raise ValidationFailed(
                "tool_choice.tools: must be a list of function tools", param="tool_choice.tools"
            )
        chosen = [
            _allowed(tool, names, f"tool_choice.tools[{n}]") for n, tool in enumerate(allowed)
        ]
        return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": chosen}}
    raise ValidationFailed(
        f"tool_choice.type: {str(kind)[:64]!r} is not supported: the proxy offers the model"
        " function tools only",
        param="tool_choice.type",
    )


def _allowed(tool: Any, names: set[str], where: str) -> JsonObject:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise ValidationFailed(f"{where}.type: must be function", param=f"{where}.type")
    return _named(tool.get("name"), names, f"{where}.name")


def _named(name: Any, names: set[str], where: str) -> JsonObject:
    """A chat tool choice of the function `name`, which must be one of the request's tools."""
    name = tool_name(name, where)
    if name not in names:
        raise ValidationFailed(f"{where}: no function tool named {name!r} in tools", param=where)
    return {"type": "function", "function": {"name": name}}


def text_fields(text: Any) -> JsonObject:
    """The chat completion fields of a request's `text`: `response_format` and `verbosity`."""
    if not isinstance(text, dict):
        raise ValidationFailed("text: must be an object", param="text")
    fields: JsonObject = {}
    verbosity = text.get("verbosity")
    if verbosity is not None:
        if verbosity not in VERBOSITY:
            raise ValidationFailed(
                f"text.verbosity: must be one of {', '.join(VERBOSITY)}", param="text.verbosity"
            )
        fields["verbosity"] = verbosity
    form = text.get("format")
    if form is None:
        return fields
    if not isinstance(form, dict):
        raise ValidationFailed("text.format: must be an object", param="text.format")
    kind = form.get("type")
    if kind == "json_object":
        fields["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        fields["response_format"] = {"type": "json_schema", "json_schema": _json_schema(form)}
    elif kind != "text":
        raise ValidationFailed(
            "text.format.type: must be text, json_object or json_schema",
            param="text.format.type",
        )
    return fields


def _json_schema(form: JsonObject) -> JsonObject:
    """The chat completion `json_schema` of a `json_schema` text format."""
    schema: JsonObject = {"name": tool_name(form.get("name"), "text.format.name")}
    if not isinstance(form.get("schema"), dict):
        raise ValidationFailed(
            "text.format.schema: required (a JSON schema object)", param="text.format.schema"
        )
    schema["schema"] = form["schema"]
    schema.update(_optional(form, {"strict": bool, "description": str}, "text.format"))
    return schema


def reasoning_effort(reasoning: Any) -> str | None:
    """The chat completion `reasoning_effort` of a request's `reasoning` (its `effort`); a
    summary is not asked for (a chat completion returns no reasoning summary), but kept, so it
    is held as the effort is: a word (OpenAI's are auto, concise and detailed)."""
    if not isinstance(reasoning, dict):
        raise ValidationFailed("reasoning: must be an object", param="reasoning")
    kinds = {"effort": "effort (minimal, low, medium, high, ...)", "summary": "summary (auto, ...)"}
    for field, kind in kinds.items():
        value = reasoning.get(field)
        if value is not None and (not isinstance(value, str) or not 0 < len(value) <= 32):
            where = f"reasoning.{field}"
            raise ValidationFailed(f"{where}: must be a reasoning {kind}", param=where)
    return reasoning.get("effort")


FORMAT_FIELDS = ("type", "name", "schema", "strict", "description")


def kept_options(settings: JsonObject) -> JsonObject:
    """`settings` (a valid request's echoed fields) with its tools, tool_choice, text and
    reasoning as the turn used them: their known fields (tools as `chat_tools` reads them, a
    tool_choice's allowed tools once each), unknown ones left out."""
    kept = dict(settings)
    if settings.get("tools") is not None:
        tools = chat_tools(settings["tools"])
        kept["tools"] = [{"type": "function", **tool["function"]} for tool in tools]
    choice = settings.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        kept["tool_choice"] = {"type": "function", "name": choice["name"]}
    elif isinstance(choice, dict):
        names = dict.fromkeys(tool["name"] for tool in choice["tools"])
        allowed = [{"type": "function", "name": name} for name in names]
        kept["tool_choice"] = {"type": "allowed_tools", "mode": choice["mode"], "tools": allowed}
    text = settings.get("text")
    if text is not None:
        form = text.get("format")
        kept["text"] = {key: text[key] for key in ("format", "verbosity") if key in text}
        if isinstance(form, dict):
            kept["text"]["format"] = {key: form[key] for key in FORMAT_FIELDS if key in form}
    if settings.get("reasoning") is not None:
        reasoning = settings["reasoning"]
        kept["reasoning"] = {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")}
    return kept

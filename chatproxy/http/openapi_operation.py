"""Own how the spec describes one route: an `Operation`, and the answers it is made of.

A route of the table may carry its own `Operation` (`context.Route.doc`: the pages' files do);
the others are listed by the module of their API (`openapi_chats.py`, `openapi_completions.py`,
...) and gathered in `openapi.py`. Whether a route needs a key is the route's to say, so an
operation is rendered for it (`Operation.render`). The pieces those modules build operations and
schemas from are here: plain schemas, the headers an answer may carry, the error statuses that
several APIs share. The shared components an operation refers to (`ref`, `param`) are in
`openapi_schemas.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Schema = dict[str, Any]
STRING: Schema = {"type": "string"}
NUMBER: Schema = {"type": "number"}
COUNT: Schema = {"type": "integer", "minimum": 0}
# Every route that needs a key may be refused, limited, or meet a store failure.
AUTHED = (401, 429, 500, 503)
WITH_CHAT = (400, 404)  # an invalid chat id; `.` and `..` are normalised away by clients
WITH_BODY = (400, 413)
UPSTREAM = (*WITH_BODY, 502, 503, 504)
NOT_MODIFIED = {"description": "Not modified (`If-None-Match`)."}

DIGITS: Schema = {"type": "string", "pattern": "^[0-9]+$"}
HEADERS: dict[str, Schema] = {
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": DIGITS},
    "RateLimit-Limit": {
        "description": "Requests (or tokens) allowed per window.",
        "schema": DIGITS,
    },
    "RateLimit-Remaining": {"description": "What is left of them.", "schema": DIGITS},
    "RateLimit-Reset": {"description": "Seconds until the window resets.", "schema": DIGITS},
    "X-Should-Retry": {
        "description": "`false` with `token_budget_exhausted`: its wait is hours, so the openai"
        " SDKs are told not to try again at once.",
        "schema": {"type": "string", "enum": ["false"]},
    },
    "WWW-Authenticate": {"description": "The scheme to authenticate with.", "schema": STRING},
    "Location": {"description": "Where the resource is.", "schema": STRING},
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the"
        " same Idempotency-Key and body.",
        "schema": {"const": "true"},
    },
}


def ref(name: str) -> Schema:
    """A reference to a schema of the spec's components."""
    return {"$ref": f"#/components/schemas/{name}"}


def param(name: str) -> Schema:
    """A reference to a parameter of the spec's components."""
    return {"$ref": f"#/components/parameters/{name}"}


CHAT = param("chat_id")  # the chat routes' path parameter


def nullable(schema: Schema) -> Schema:
    """`schema`, or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def object_of(required: list[str], **properties: Schema) -> Schema:
    """An object of `properties`, the `required` ones always present."""
    return {"type": "object", "required": required, "properties": properties}


def headers(*names: str, required: bool = False) -> Schema:
    """Response headers by name, each marked as always sent (`required`) or not."""
    return {name: {**HEADERS[name], "required": required} for name in names}


def query(name: str, description: str, schema: Schema) -> Schema:
    """A query parameter."""
    return {"name": name, "in": "query", "description": description, "schema": schema}


def json_content(schema: Schema) -> Schema:
    """A JSON body of `schema`."""
    return {"application/json": {"schema": schema}}


def ok(description: str, schema: Schema, extra_headers: Schema | None = None) -> Schema:
    """A 200 answer with a JSON body."""
    response: Schema = {"description": description, "content": json_content(schema)}
    if extra_headers:
        response["headers"] = extra_headers
    return response


def streamed(description: str, schema: Schema, event: Schema) -> Schema:
    """A turn's answer: JSON, or server-sent events; either may be an idempotent replay."""
    response = ok(description, schema, headers("Idempotent-Replayed"))
    response["content"]["text/event-stream"] = {"schema": event}
    return response


def file_answer(description: str, media_type: str) -> Schema:
    """A 200 answer with a file of `media_type`."""
    return {"description": description, "content": {media_type: {"schema": STRING}}}


@dataclass(frozen=True)
class Operation:
    """What the spec says of one route: its success answer (None for a route the proxy only
    refuses: what OpenAI's API offers and the proxy does not), the error statuses it can answer
    with, its parameters and body, and `more` answers of its own."""

    tag: str
    summary: str
    ok: Schema | None
    errors: tuple[int, ...] = ()
    params: tuple[Schema, ...] = ()
    body: str | None = None
    more: Schema = field(default_factory=dict)

    def render(self, *, public: bool, openai: bool) -> Schema:
        """The OpenAPI operation; a route that needs a key may also be refused or limited."""
        operation: Schema = {"tags": [self.tag], "summary": self.summary}
        if self.params:
            operation["parameters"] = list(self.params)
        if self.body is not None:
            operation["requestBody"] = {
                "required": True,
                "description": "JSON, whatever the Content-Type (so `curl -d` works).",
                "content": json_content(ref(self.body)),
            }
        if public:
            operation["security"] = []
        statuses = sorted(set(self.errors if public else (*self.errors, *AUTHED)))
        prefix = "OpenAIError" if openai else "Error"
        operation["responses"] = {} if self.ok is None else {"200": self.ok}
        operation["responses"] |= {
            str(status): {"$ref": f"#/components/responses/{prefix}{status}"} for status in statuses
        }
        operation["responses"].update(self.more)
        return operation


VERSION = query("v", "The file's content hash as the page links it: cacheable for good.", STRING)


def file_operation(media_type: str, *, versioned: bool = False) -> Operation:
    """A static file of a page (a script, a style sheet, an icon); the chat page's files are
    linked with their content hash (`versioned`) and answer `If-None-Match`."""
    if not versioned:
        return Operation("pages", "A file of a page", file_answer("The file.", media_type))
    return Operation(
        "pages",
        "A file of the chat page",
        file_answer("The file.", media_type),
        params=(VERSION,),
        more={"304": NOT_MODIFIED},
    )

"""Own how the spec describes export and import (`http/exports.py`): the operations, the chat
document (the pydantic model the import validates with) and the import's report. `openapi.py`
lists the operations with the others', `openapi_schemas.py` puts the schemas among the
components."""

from __future__ import annotations

from pydantic import BaseModel

from chatproxy.http.openapi_operation import STRING, Operation, Schema, ok, query, ref
from chatproxy.service.document_schema import ChatDocument

MODELS: dict[str, type[BaseModel]] = {"ChatDocument": ChatDocument}

NULLABLE_STRING: Schema = {"anyOf": [STRING, {"type": "null"}]}
SCHEMAS: dict[str, Schema] = {
    "ImportBody": {
        "anyOf": [
            ref("ChatDocument"),
            {
                "type": "array",
                "items": {"type": "object"},
                "description": "With `format=chatgpt`: ChatGPT's `conversations.json`; with"
                " `format=openwebui`: Open WebUI's chat export. Each chat is one object.",
            },
            {"type": "object", "description": "One chat of such an export."},
        ]
    },
    "ImportReport": {
        "type": "object",
        "required": ["imported", "skipped", "renamed", "failed"],
        "properties": {
            "imported": {"type": "array", "items": STRING, "description": "Their ids now."},
            "skipped": {"type": "array", "items": STRING, "description": "Ids that exist."},
            "renamed": {
                "type": "object",
                "additionalProperties": STRING,
                "description": "With `on_conflict=new_id`: the id in the file → the new one.",
            },
            "failed": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["line", "id", "error"],
                    "properties": {
                        "line": {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]},
                        "index": {"type": "integer", "minimum": 0},
                        "id": NULLABLE_STRING,
                        "error": STRING,
                    },
                },
                "description": "The chats not imported, and why: an NDJSON `line`, or the"
                " `index` of a chat in another tool's export (`line` null).",
            },
        },
    },
}

CHAT = {"$ref": "#/components/parameters/chat_id"}
ON_CONFLICT = query(
    "on_conflict",
    "What to do with a chat whose id exists: `skip` it (the default), `replace` it whole, or"
    " import it under a `new_id` (`<id>-<8 hex>`).",
    {"enum": ["skip", "replace", "new_id"]},
)
FORMAT = query(
    "format",
    "What the body is: `native` chat documents (the default), `chatgpt` (ChatGPT's data export,"
    " `conversations.json`) or `openwebui` (Open WebUI's chat export); see the README's"
    " Export and import for what each keeps.",
    {"enum": ["native", "chatgpt", "openwebui"]},
)
NDJSON_ANSWER: Schema = {
    "description": "One chat document a line, newest activity first, streamed.",
    "content": {"application/x-ndjson": {"schema": STRING}},
}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/{chat_id}/export", "GET"): Operation(
        "export",
        "The whole chat (every branch, its leaf, settings, system prompt, title, times, token"
        " totals) as a chat document",
        ok("The chat document.", ref("ChatDocument")),
        errors=(400, 404),
        params=(CHAT,),
    ),
    ("/export", "GET"): Operation("export", "All of the caller's chats, as NDJSON", NDJSON_ANSWER),
    ("/import", "POST"): Operation(
        "export",
        "Import a chat document into the caller's chats, or with `Content-Type:"
        " application/x-ndjson` one a line (each line at most MAX_BODY_BYTES), or with"
        " `format=chatgpt|openwebui` another tool's export (a JSON array of chats); each chat"
        " is written whole or not at all, and a bad line or chat is reported while the rest"
        " import",
        ok("What became of each chat.", ref("ImportReport")),
        errors=(400, 409, 413),
        params=(ON_CONFLICT, FORMAT),
        body="ImportBody",
    ),
}

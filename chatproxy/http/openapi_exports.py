"""Own how the spec describes export and import (`http/exports.py`): the operations, the chat
document (the pydantic model the import validates with) and the import's report. `openapi.py`
lists the operations with the others', `openapi_schemas.py` puts the schemas among the
components."""

from __future__ import annotations

from pydantic import BaseModel

from chatproxy.http.openapi_operation import STRING, Operation, Schema, ok, query, ref
from chatproxy.service.chat_document import ChatDocument

MODELS: dict[str, type[BaseModel]] = {"ChatDocument": ChatDocument}

NULLABLE_STRING: Schema = {"anyOf": [STRING, {"type": "null"}]}
SCHEMAS: dict[str, Schema] = {
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
                        "line": {"type": "integer", "minimum": 1},
                        "id": NULLABLE_STRING,
                        "error": STRING,
                    },
                },
                "description": "The NDJSON lines not imported, and why.",
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
        " application/x-ndjson` one a line (each line at most MAX_BODY_BYTES); each chat is"
        " written whole or not at all, and a bad line is reported while the rest import",
        ok("What became of each chat.", ref("ImportReport")),
        errors=(400, 409, 413),
        params=(ON_CONFLICT,),
        body="ChatDocument",
    ),
}

"""Own how the spec describes the Conversations API (`http/conversations.py`): its operations,
their parameters, the bodies they take (the pydantic models of `conversation_bodies.py`) and
the objects they answer with, in OpenAI's shapes. `openapi.py` lists the operations with the
others', `openapi_schemas.py` puts the schemas among the components.
"""

from __future__ import annotations

from pydantic import BaseModel

from chatproxy.http.conversation_bodies import ConversationBody, ItemsBody, MetadataBody
from chatproxy.http.openapi_operation import STRING, Operation, Schema, object_of, ok, query, ref
from chatproxy.store.items import CHAT_ID

NUMBER = "(?:0|[1-9][0-9]{0,17})"
IN_CHAT = f"(?:{CHAT_ID.pattern}_)?"
# An item id: `msg_`, `fco_` or `fc_`, the conversation's id (optional), the message's number
# and, for a tool call, its place in the message (`responses_items.parse_item_id`).
ITEM_ID = f"^(?:msg|fco)_{IN_CHAT}{NUMBER}$|^fc_{IN_CHAT}{NUMBER}_{NUMBER}$"
CONVERSATION_ID = f"^{CHAT_ID.pattern}$"
EXAMPLE = "conv_6f1e0d2c3b4a59687766554433221100ffeeddccbbaa9988"


NULLABLE_ID: Schema = {"anyOf": [STRING, {"type": "null"}]}
CONVERSATION = {
    "name": "conversation_id",
    "in": "path",
    "required": True,
    "description": "The conversation: any chat of the caller's (a chat id).",
    "schema": {"type": "string", "pattern": CONVERSATION_ID},
    "example": EXAMPLE,
}
ITEM = {
    "name": "item_id",
    "in": "path",
    "required": True,
    "description": "An item's id (`msg_…`, `fc_…`, `fco_…`), as the conversation's items name it.",
    "schema": {"type": "string", "pattern": ITEM_ID},
    "example": f"msg_{EXAMPLE}_0",
}
INCLUDE = query(
    "include",
    "Accepted and ignored: no item holds what it asks for.",
    {"type": "array", "items": STRING},
)
LIMIT = query(
    "limit",
    "At most this many (1-100, default 20).",
    {"type": "integer", "minimum": 1, "maximum": 100},
)
ITEMS_PAGE = (
    CONVERSATION,
    query(
        "after",
        "The `last_id` of the page before: the items after it.",
        {"type": "string", "pattern": ITEM_ID},
    ),
    LIMIT,
    query(
        "order", "`desc` (default): newest first; `asc`: oldest first.", {"enum": ["asc", "desc"]}
    ),
    INCLUDE,
)
LIST_PAGE = (
    LIMIT,
    query(
        "after",
        "The `last_id` of the page before: the conversations active before it.",
        {"type": "string", "pattern": CONVERSATION_ID},
    ),
)
ONE = ok("The conversation.", ref("Conversation"))
WITH_ID = (400, 404)

SCHEMAS: dict[str, Schema] = {
    "Conversation": object_of(
        ["id", "object", "created_at", "metadata"],
        id=STRING,
        object={"const": "conversation"},
        created_at={"type": "integer", "description": "Unix time, in seconds."},
        metadata={"type": "object", "additionalProperties": STRING},
    ),
    "ConversationDeleted": object_of(
        ["id", "object", "deleted"],
        id=STRING,
        object={"const": "conversation.deleted"},
        deleted={"const": True},
    ),
    "ConversationItem": {
        **object_of(
            ["id", "type"],
            id=STRING,
            type={"enum": ["message", "function_call", "function_call_output"]},
            status=STRING,
            role={"enum": ["user", "assistant", "system", "developer"]},
            content={"type": "array", "items": {"type": "object"}},
            call_id=STRING,
            name=STRING,
            arguments=STRING,
            output={"anyOf": [STRING, {"type": "array", "items": {"type": "object"}}]},
        ),
        "description": "A Responses item: a message (an assistant's text), one tool call of an"
        " assistant message, or a tool result.",
    },
    "ConversationItemList": object_of(
        ["object", "data", "first_id", "last_id", "has_more"],
        object={"const": "list"},
        data={"type": "array", "items": ref("ConversationItem")},
        first_id={**NULLABLE_ID, "description": "null when the list is empty."},
        last_id={**NULLABLE_ID, "description": "Pass as `after` for the next page."},
        has_more={"type": "boolean"},
    ),
    "ConversationList": object_of(
        ["object", "data", "first_id", "last_id", "has_more"],
        object={"const": "list"},
        data={"type": "array", "items": ref("Conversation")},
        first_id=NULLABLE_ID,
        last_id={**NULLABLE_ID, "description": "Pass as `after` for the next page."},
        has_more={"type": "boolean"},
    ),
}

MODELS: dict[str, type[BaseModel]] = {
    "ConversationBody": ConversationBody,
    "MetadataBody": MetadataBody,
    "ItemsBody": ItemsBody,
}

OPERATIONS: dict[tuple[str, str], Operation] = {
    ("/v1/conversations", "POST"): Operation(
        "conversations",
        "Create a conversation (a chat, `conv_…`) with up to 20 items and metadata",
        ONE,
        errors=(400, 413),
        body="ConversationBody",
    ),
    ("/v1/conversations", "GET"): Operation(
        "conversations",
        "The caller's conversations (every chat), most recent activity first (not in OpenAI's API)",
        ok("A page of conversations.", ref("ConversationList")),
        errors=(400,),
        params=LIST_PAGE,
    ),
    ("/v1/conversations/{conversation_id}", "GET"): Operation(
        "conversations", "A conversation", ONE, errors=WITH_ID, params=(CONVERSATION,)
    ),
    ("/v1/conversations/{conversation_id}", "POST"): Operation(
        "conversations",
        "Replace a conversation's metadata",
        ONE,
        errors=(*WITH_ID, 413),
        params=(CONVERSATION,),
        body="MetadataBody",
    ),
    ("/v1/conversations/{conversation_id}", "DELETE"): Operation(
        "conversations",
        "Delete a conversation (the chat and its messages)",
        ok("Deleted.", ref("ConversationDeleted")),
        errors=WITH_ID,
        params=(CONVERSATION,),
    ),
    ("/v1/conversations/{conversation_id}/items", "POST"): Operation(
        "conversations",
        "Add up to 20 items after the conversation's last, under its turn lock",
        ok("The items added, as stored.", ref("ConversationItemList")),
        errors=(*WITH_ID, 409, 413),
        params=(CONVERSATION, INCLUDE),
        body="ItemsBody",
    ),
    ("/v1/conversations/{conversation_id}/items", "GET"): Operation(
        "conversations",
        "The items of the conversation's current path, a page at a time",
        ok("A page of items.", ref("ConversationItemList")),
        errors=WITH_ID,
        params=ITEMS_PAGE,
    ),
    ("/v1/conversations/{conversation_id}/items/{item_id}", "GET"): Operation(
        "conversations",
        "An item of the conversation",
        ok("The item.", ref("ConversationItem")),
        errors=WITH_ID,
        params=(CONVERSATION, ITEM, INCLUDE),
    ),
    ("/v1/conversations/{conversation_id}/items/{item_id}", "DELETE"): Operation(
        "conversations",
        "Delete an item's stored message (`msg_…`: an assistant's text with its tool calls;"
        " `fco_…`); a tool call alone (`fc_…`) is refused",
        ONE,
        errors=(*WITH_ID, 409),
        params=(CONVERSATION, ITEM),
    ),
}

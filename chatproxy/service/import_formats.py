"""Own the formats an import reads and how each is recognised (pure: no I/O): `native` (our chat
documents, `chat_document.py`), `chatgpt` (ChatGPT's `conversations.json`,
`chatgpt_format.py`) and `openwebui` (Open WebUI's chat export, `openwebui_format.py`); which
reader reads which is `transfer.py`'s.

The other tools' exports are one JSON array of chats (one chat object is taken too), read
whole and imported a chat at a time. `detect` names a file's format from its decoded JSON: a
chat document (`"format": "chatproxy.chat"`), ChatGPT's (objects with a `mapping`) or Open
WebUI's (objects with `chat.history`), judged by the first chat.
"""

from __future__ import annotations

from typing import Any, Literal

from chatproxy.service import document_schema
from chatproxy.store.chat_tree import DocumentError

Format = Literal["native", "chatgpt", "openwebui"]
FORMATS: tuple[Format, ...] = ("native", "chatgpt", "openwebui")
Foreign = Literal["chatgpt", "openwebui"]
FOREIGN: tuple[Foreign, ...] = ("chatgpt", "openwebui")


def detect(data: Any) -> Format | None:
    """The format of a decoded file (judged by its first chat), or None if it is none of them."""
    first = data[0] if isinstance(data, list) and data else data
    if not isinstance(first, dict):
        return None
    if first.get("format") == document_schema.FORMAT:
        return "native"
    if "mapping" in first:
        return "chatgpt"
    chat = first.get("chat")
    if isinstance(chat, dict) and "history" in chat:
        return "openwebui"
    return None


def entries_of(data: Any) -> list[dict[str, Any]]:
    """The chats of another tool's export: a JSON array of objects, or one object; raise
    `DocumentError` naming the first entry that is not an object."""
    entries = data if isinstance(data, list) else [data]
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise DocumentError(f"[{index}]: each chat of the file is a JSON object")
    return entries


def chat_id_in(entry: dict[str, Any]) -> str | None:
    """The id a chat of another tool's export names for itself, if any (for a report)."""
    chat = entry.get("chat")
    inner = chat.get("id") if isinstance(chat, dict) else None
    for value in (entry.get("id"), entry.get("conversation_id"), inner):
        if isinstance(value, str):
            return value
    return None

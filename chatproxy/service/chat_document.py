"""Own the chat document: one chat, whole, as versioned JSON, the form export writes and import
reads (pure: no I/O).

    {"format": "chatproxy.chat", "version": 1, "id", "title", "created", "updated", "leaf",
     "system", "settings", "metadata", "tokens", "items": [<item>, ...],
     "summaries": [<summary>, ...]}

An item is a stored message as `GET /<chat_id>/chat` shows it (`Message.to_json`): `id`,
`parent`, `role`, `content`, `created_at`, and when set `tokens`, `model`, `finish_reason`,
`tool_calls`, `tool_call_id`, `name`, `response`; items come in the order of their ids, every
branch. A summary (compaction) is as `GET /<chat_id>/chat?include=summaries` shows it:
`{"type": "summary", "covers": [first, last], "content", "model", "tokens", "created_at"}`, in
the order of the last item each covers, which must be an item of the chat. `dumps` writes
compact JSON in this key order (settings' and metadata's keys sorted), so exporting what an
import wrote gives the same bytes. `parse` validates a document (pydantic, by the models of
`document_schema.py`, then the tree: ids unique, each parent an item numbered below its child or
below every item (one dropped at MAX_CHAT_MESSAGES), no cycle, the leaf an item) and names the
place of the first fault (`items[3] (id 7): ...`); a document of a newer version is refused as
such.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from chatproxy.jsontext import compact
from chatproxy.service.document_schema import FORMAT, VERSION, ChatDocument
from chatproxy.store.chat_tree import ChatTree, DocumentError
from chatproxy.store.items import Message, usage_of
from chatproxy.store.summary import Summary
from chatproxy.tokens import USAGE_FIELDS


def document_of(tree: ChatTree) -> dict[str, Any]:
    """The chat document of a whole chat, its keys in the documented order."""
    return {
        "format": FORMAT,
        "version": VERSION,
        "id": tree.chat_id,
        "title": tree.title,
        "created": tree.created,
        "updated": tree.updated,
        "leaf": tree.leaf,
        "system": tree.system,
        "settings": dict(sorted(tree.settings.items())),
        "metadata": None if tree.metadata is None else dict(sorted(tree.metadata.items())),
        "tokens": {name: tree.tokens.get(name, 0) for name in USAGE_FIELDS},
        "items": [item.to_json() for item in tree.items],
        "summaries": [summary.to_json() for summary in tree.summaries],
    }


def dumps(tree: ChatTree) -> str:
    """The chat document as compact JSON text, the same bytes for the same chat."""
    return compact(document_of(tree))


def parse(data: Any, chat_id: str | None = None) -> ChatTree:
    """Validate a decoded chat document and return its chat (as `chat_id`, when given: an
    import under another id); raise `DocumentError` naming the first fault's place."""
    _check_format(data)
    try:
        document = ChatDocument.model_validate(data)
    except ValidationError as exc:
        raise DocumentError(_describe(exc, data)) from None
    _check_tree(document)
    ordered = sorted(document.items, key=lambda item: item.id)
    items = [Message.from_json(item.model_dump(exclude_none=True)) for item in ordered]
    tokens = document.tokens.model_dump() if document.tokens else usage_of(items)
    return ChatTree(
        chat_id=chat_id or document.id,
        created=document.created,
        updated=document.updated,
        items=items,
        leaf=document.leaf,
        title=document.title,
        system=document.system,
        settings=document.settings.model_dump(exclude_none=True),
        metadata=document.metadata,
        tokens=tokens,
        summaries=sorted(
            (Summary.from_json(s.model_dump()) for s in document.summaries),
            key=lambda summary: summary.last,
        ),
    )


def _check_format(data: Any) -> None:
    """Refuse what is not a chat document, or one of a version this proxy does not read."""
    if not isinstance(data, dict):
        raise DocumentError("not a chat document: a JSON object is expected")
    if data.get("format") != FORMAT:
        raise DocumentError(f'not a chat document: "format" must be "{FORMAT}"')
    version = data.get("version")
    if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
        raise DocumentError(
            f"version {version} of the chat document is newer than this proxy reads"
            f" ({VERSION}): upgrade the proxy to import it"
        )


def _describe(exc: ValidationError, data: dict[str, Any]) -> str:
    """The first error's place and what is wrong, e.g. `items[3] (id 7).role: Input should ...`."""
    first = exc.errors(include_url=False)[0]
    where = ""
    for part in first["loc"]:
        if isinstance(part, int):
            where += f"[{part}]"
            if where == f"items[{part}]":
                where += _id_of(data, part)
        else:
            where += f".{part}" if where else str(part)
    error = first.get("ctx", {}).get("error")
    what = str(error) if first["type"] == "value_error" and error is not None else first["msg"]
    return f"{where or 'document'}: {what}"


def _id_of(data: dict[str, Any], index: int) -> str:
    """` (id N)` for the item at `index` of the raw document, when it names one."""
    items = data.get("items")
    item = items[index] if isinstance(items, list) and index < len(items) else None
    if isinstance(item, dict) and isinstance(item.get("id"), int):
        return f" (id {item['id']})"
    return ""


def _check_tree(document: ChatDocument) -> None:
    """Check the items make a tree as the stores keep one; raise `DocumentError` if not."""
    where: dict[int, int] = {}
    for index, item in enumerate(document.items):
        if item.id in where:
            raise DocumentError(
                f"items[{index}] (id {item.id}): id {item.id} is also items[{where[item.id]}]'s"
            )
        where[item.id] = index
    parents = {item.id: item.parent for item in document.items}
    lowest = min(parents, default=0)  # a parent below every item: one MAX_CHAT_MESSAGES dropped
    for index, item in enumerate(document.items):
        if item.parent is not None and item.parent not in parents and item.parent >= lowest:
            raise DocumentError(
                f"items[{index}] (id {item.id}): its parent {item.parent} is not an item of the"
                " chat"
            )
    backwards = [
        (n, item) for n, item in enumerate(document.items) if (item.parent or -1) >= item.id
    ]
    for index, item in backwards:  # a cycle has a step up to an id at least its own
        cycle = _cycle_from(item.id, parents)
        if cycle:
            raise DocumentError(
                f"items[{index}] (id {item.id}): its parents make a cycle ({cycle})"
            )
    if backwards:
        index, item = backwards[0]
        raise DocumentError(
            f"items[{index}] (id {item.id}): its parent {item.parent} is numbered after it (a"
            " parent's id is below its children's)"
        )
    if document.leaf is not None and document.leaf not in parents:
        raise DocumentError(f"leaf: {document.leaf} is not an item of the chat")
    ends: set[int] = set()
    for index, summary in enumerate(document.summaries):
        if summary.covers[1] not in parents:
            raise DocumentError(
                f"summaries[{index}]: the item it covers up to, {summary.covers[1]}, is not an"
                " item of the chat"
            )
        if summary.covers[1] in ends:
            raise DocumentError(
                f"summaries[{index}]: another summary also covers up to {summary.covers[1]}"
            )
        ends.add(summary.covers[1])


def _cycle_from(start: int, parents: dict[int, int | None]) -> str:
    """The cycle through `start`, as `3 → 5 → 3`, or "" if following parents leaves it."""
    path, node = [start], parents[start]
    while node is not None and node != start and len(path) <= len(parents):
        path.append(node)
        node = parents.get(node)  # None past an item dropped
    return " → ".join(map(str, [*path, start])) if node == start else ""

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
import wrote gives the same bytes. `parse` validates a document (pydantic, then the tree: ids
unique, each parent an item numbered below its child or below every item (one dropped at
MAX_CHAT_MESSAGES), no cycle, the leaf an item) and names the place of the first fault
(`items[3] (id 7): ...`); a document of a newer version is refused as such.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chatproxy.jsontext import compact
from chatproxy.service.kept_document import KeptDoc, Tokens
from chatproxy.service.message_rules import replayable_calls
from chatproxy.store.chat_tree import ChatTree, DocumentError
from chatproxy.store.items import Message, usage_of, valid_chat_id
from chatproxy.store.summary import Summary
from chatproxy.tokens import MAX_TOKEN_COUNT, USAGE_FIELDS

FORMAT = "chatproxy.chat"
VERSION = 1
# Ids are numbered from 0 as items are added; the Redis scripts write numbers as Lua's `%.14g`
# does, so an id must stay far below 10**14 to be written back as itself.
MAX_ITEM_ID = 2**31 - 1
Count = Annotated[int, Field(ge=0, le=MAX_TOKEN_COUNT)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _finite(value: float) -> float:
    if not math.isfinite(value) or value < 0:
        raise ValueError("must be a finite number, at least 0")
    return value


class ItemDoc(_Strict):
    """One item of the chat's tree, as `Message.to_json` writes it."""

    id: int = Field(ge=0, le=MAX_ITEM_ID)
    parent: int | None = Field(ge=0, le=MAX_ITEM_ID)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None
    created_at: float
    tokens: Tokens | None = None
    model: str | None = None
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    response: dict[str, Any] | None = None

    _created_at = field_validator("created_at")(_finite)
    _tool_calls = field_validator("tool_calls")(replayable_calls)

    @field_validator("response")
    @classmethod
    def _kept(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        try:
            KeptDoc.model_validate(value)  # kept as it came, so an export gives the same bytes
        except ValidationError as exc:
            error = exc.errors()[0]
            raise ValueError(f"{'.'.join(map(str, error['loc']))}: {error['msg']}") from None
        return value


class SettingsDoc(_Strict):
    """A chat's own settings (those `POST /<chat_id>/settings` takes, but the system prompt)."""

    model: str | None = Field(default=None, min_length=1, max_length=128)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, ge=1)
    compaction: Literal["off", "summary"] | None = None


class TokensDoc(_Strict):
    prompt_tokens: Count
    completion_tokens: Count
    total_tokens: Count


class SummaryDoc(_Strict):
    """One summary, as `Summary.to_json` writes it."""

    type: Literal["summary"]
    covers: list[int] = Field(min_length=2, max_length=2)
    content: str
    model: str | None = None
    tokens: Tokens | None = None
    created_at: float

    _created_at = field_validator("created_at")(_finite)

    @field_validator("covers")
    @classmethod
    def _range(cls, value: list[int]) -> list[int]:
        if not 0 <= value[0] <= value[1] <= MAX_ITEM_ID:
            raise ValueError("must be [first, last]: item ids, first at most last")
        return value


class ChatDocument(_Strict):
    """A chat document, version 1 (see the module docstring)."""

    format: Literal["chatproxy.chat"]
    version: Literal[1]
    id: str
    title: str | None = None
    created: float
    updated: float
    leaf: int | None = Field(default=None, ge=0, le=MAX_ITEM_ID)
    system: str | None = None
    settings: SettingsDoc = Field(default_factory=SettingsDoc)
    metadata: dict[str, str] | None = None
    tokens: TokensDoc | None = None
    items: list[ItemDoc]
    summaries: list[SummaryDoc] = Field(default_factory=list)

    _times = field_validator("created", "updated")(_finite)

    @field_validator("id")
    @classmethod
    def _chat_id(cls, value: str) -> str:
        if not valid_chat_id(value):
            raise ValueError("must be 1-128 of A-Z a-z 0-9 . _ @ : -, not dots only")
        return value


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

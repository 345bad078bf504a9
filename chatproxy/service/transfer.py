"""Own export and import: a chat as its document (`chat_document.py`), all of a tenant's chats as
NDJSON (one document a line, read a page of the listing at a time, so memory stays flat however
many chats), and documents written back, each chat in one atomic store step.

An import reports each chat: imported, skipped (its id exists: `on_conflict="skip"`, the
default, so a second run of the same file adds nothing and a run after a crash finishes the
job), or failed with the reason and its line; a bad chat never stops the rest. With
`"replace"` an existing chat is replaced whole; with `"new_id"` the chat is written under a new
id (`<id>-<8 hex>`) when its own is taken, so each run adds copies.

Other tools' exports (`import_formats.py`) come in a chat at a time too: `CONVERTERS` names the
pure reader of each (`chatgpt_format.py`, `openwebui_format.py`), a chat it cannot read is
reported with its index in the file, and the rest import on the same rules.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from chatproxy.errors import BadRequest, Conflict, InvalidJSON, NotFound, ValidationFailed
from chatproxy.jsontext import Unwritable, parse_sent
from chatproxy.service import chat_document
from chatproxy.service.chatgpt_format import chatgpt_tree
from chatproxy.service.import_formats import Foreign, chat_id_in, entries_of
from chatproxy.service.openwebui_format import openwebui_tree
from chatproxy.store.base import Store
from chatproxy.store.chat_tree import ChatTree, DocumentError
from chatproxy.store.items import ChatRef

OnConflict = Literal["skip", "replace", "new_id"]
ON_CONFLICT: tuple[OnConflict, ...] = ("skip", "replace", "new_id")
EXPORT_PAGE = 100
NEW_ID_TRIES = 3
CONVERTERS: dict[Foreign, Callable[[Any], ChatTree]] = {
    "chatgpt": chatgpt_tree,
    "openwebui": openwebui_tree,
}


@dataclass
class ImportReport:
    """What an import did, chat by chat."""

    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    failed: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "skipped": self.skipped,
            "renamed": self.renamed,
            "failed": self.failed,
        }


class Transfer:
    """Chats out of and into one store, as chat documents."""

    def __init__(self, store: Store):
        self._store = store

    async def export_chat(self, chat: ChatRef) -> str:
        """The chat's document (compact JSON); `NotFound` if there is no such chat."""
        tree = await self._store.load_tree(chat)
        if tree is None:
            raise NotFound("no such chat")
        return chat_document.dumps(tree)

    async def export_chats(self, tenant: str) -> AsyncGenerator[str, None]:
        """Yield each of the tenant's chats as one NDJSON line, newest activity first, reading
        the listing a page at a time. A chat changed while the export runs moves to the top of
        the listing, so it may be left out (it was exported before, or is newer than the
        export); one deleted meanwhile is left out."""
        async for chat_id in self._listed(tenant):
            tree = await self._store.load_tree(ChatRef(tenant, chat_id))
            if tree is not None:
                yield chat_document.dumps(tree) + "\n"

    async def _listed(self, tenant: str) -> AsyncIterator[str]:
        """The ids of the tenant's chats, by last activity, page by page: each page those after
        the last chat of the one before (its activity and id: `Store.list_chats`)."""
        before, before_id = None, ""
        while True:
            page = await self._store.list_chats(tenant, EXPORT_PAGE, before, before_id=before_id)
            for info in page:
                yield info.chat_id
            if len(page) < EXPORT_PAGE:
                return
            before, before_id = page[-1].updated, page[-1].chat_id

    async def import_document(
        self, tenant: str, text: str | bytes, on_conflict: OnConflict = "skip"
    ) -> ImportReport:
        """Import one chat document, a request's whole body: what is wrong with it is the
        request's error (`InvalidJSON`, `ValidationFailed` naming the place; `ChatBusy`)."""
        data = _body(text)
        report = ImportReport()
        try:
            await self._write(tenant, chat_document.parse(data), report, on_conflict)
        except DocumentError as exc:
            raise ValidationFailed(str(exc)) from None
        return report

    async def import_line(
        self,
        tenant: str,
        text: str | bytes,
        report: ImportReport,
        *,
        line: int | None = None,
        on_conflict: OnConflict = "skip",
    ) -> None:
        """Import the chat document `text` (line `line` of a file, None for a file of one
        document) into the tenant, noting in `report` what became of it; only a store failure
        raises."""
        try:
            data = parse_sent(text)
        except Unwritable as exc:
            report.failed.append({"line": line, "id": None, "error": f"cannot be kept: {exc}"})
            return
        except (ValueError, RecursionError) as exc:
            report.failed.append({"line": line, "id": None, "error": f"not JSON: {exc}"})
            return
        chat_id = data.get("id") if isinstance(data, dict) else None
        failure = {"line": line, "id": chat_id if isinstance(chat_id, str) else None}
        await self._import(tenant, lambda: chat_document.parse(data), report, failure, on_conflict)

    async def import_foreign(
        self, tenant: str, text: str | bytes, form: Foreign, on_conflict: OnConflict = "skip"
    ) -> ImportReport:
        """Import another tool's export (`import_formats.py`), a request's whole body: what is
        not JSON, or not an array of objects (or one), is the request's error; each chat that
        fails is reported while the rest import."""
        data = _body(text)
        try:
            entries = entries_of(data)
        except DocumentError as exc:
            raise ValidationFailed(str(exc)) from None
        report = ImportReport()
        for index, entry in enumerate(entries):
            await self.import_entry(
                tenant, entry, form, report, index=index, on_conflict=on_conflict
            )
        return report

    async def import_entry(
        self,
        tenant: str,
        entry: dict[str, Any],
        form: Foreign,
        report: ImportReport,
        *,
        index: int,
        on_conflict: OnConflict = "skip",
    ) -> None:
        """Import one chat of another tool's export (entry `index` of its array), noting in
        `report` what became of it; only a store failure raises."""
        failure = {"line": None, "index": index, "id": chat_id_in(entry)}
        convert = CONVERTERS[form]
        await self._import(tenant, lambda: convert(entry), report, failure, on_conflict)

    async def _import(
        self,
        tenant: str,
        read: Callable[[], ChatTree],
        report: ImportReport,
        failure: dict[str, Any],
        on_conflict: OnConflict,
    ) -> None:
        """Write the chat `read` gives, or note in `report` why not (`failure` says where)."""
        try:
            await self._write(tenant, read(), report, on_conflict)
        except DocumentError as exc:
            report.failed.append({**failure, "error": str(exc)})
        except (BadRequest, Conflict) as exc:
            report.failed.append({**failure, "error": exc.message})

    async def _write(
        self, tenant: str, tree: ChatTree, report: ImportReport, on_conflict: OnConflict
    ) -> None:
        """Write one chat as `on_conflict` says, and note it."""
        chat = ChatRef(tenant, tree.chat_id)
        if await self._store.save_tree(chat, tree, replace=on_conflict == "replace"):
            report.imported.append(tree.chat_id)
            return
        if on_conflict == "skip":
            report.skipped.append(tree.chat_id)
            return
        for _ in range(NEW_ID_TRIES):
            new_id = f"{tree.chat_id[:119]}-{secrets.token_hex(4)}"
            renamed = dataclasses.replace(tree, chat_id=new_id)
            if await self._store.save_tree(ChatRef(tenant, new_id), renamed):
                report.imported.append(new_id)
                report.renamed[tree.chat_id] = new_id
                return
        raise DocumentError("no free id was found for it; import it again")


def _body(text: str | bytes) -> Any:
    """A request's whole body, read as JSON; `InvalidJSON` (saying why) if it cannot be."""
    try:
        return parse_sent(text)
    except Unwritable as exc:
        raise InvalidJSON(f"the request body cannot be kept: {exc}") from None
    except (ValueError, RecursionError):
        raise InvalidJSON() from None

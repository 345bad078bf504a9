"""Own the commands `python -m chatproxy export [--tenant NAME] [-o FILE]` and
`python -m chatproxy import FILE [--format auto|native|chatgpt|openwebui] [--tenant NAME]
[--on-conflict ...]`: their arguments, the settings they read (the environment and `.env`, as the
service does: REDIS_URL or STORE_PATH), which format a file is in (`auto`: NDJSON is ours; a file
that is one JSON value is whatever `service/import_formats.py` recognises), a progress bar on
stderr (when it is a terminal), the summary and exit codes. The documents and the work are
`service/transfer.py`'s.

An import is resumable: each chat is written whole or not at all and a chat whose id exists is
skipped by default, so running it again after a crash finishes the job and duplicates nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from itertools import chain
from pathlib import Path
from typing import Any, TextIO

from dotenv import load_dotenv
from tqdm import tqdm

from chatproxy.config import ConfigError, Settings, load_settings
from chatproxy.errors import ProxyError
from chatproxy.jsontext import Unwritable, parse, parse_sent
from chatproxy.service.import_formats import FOREIGN, FORMATS, Foreign, detect, entries_of
from chatproxy.service.transfer import ON_CONFLICT, ImportReport, OnConflict, Transfer
from chatproxy.store import open_store
from chatproxy.store.chat_tree import DocumentError
from chatproxy.store.items import OPEN_TENANT, TENANT

Work = Callable[[Transfer], Awaitable[int]]
Chats = tuple[Foreign, list[dict[str, Any]]]


class Unreadable(Exception):
    """Why a file cannot be imported at all (not JSON, a format this command does not read)."""


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m chatproxy {prog}", description=description)
    parser.add_argument(
        "--tenant",
        default=OPEN_TENANT,
        help=f"whose chats (an API key's name); default {OPEN_TENANT}",
    )
    return parser


def export_main(argv: Sequence[str] | None = None) -> int:
    """Write every chat of a tenant as NDJSON; 0 when done, 1 on a store failure, 2: bad usage."""
    parser = _parser("export", "Write a tenant's chats as NDJSON, one chat document a line.")
    parser.add_argument("-o", "--output", metavar="FILE", help="where to write; default stdout")
    args = parser.parse_args(argv)
    settings = _settings(parser, args.tenant)
    if args.output is None:
        return _run(settings, lambda transfer: _export(transfer, args.tenant, sys.stdout))
    with Path(args.output).open("w", encoding="utf-8", newline="\n") as out:
        return _run(settings, lambda transfer: _export(transfer, args.tenant, out))


def import_main(argv: Sequence[str] | None = None) -> int:
    """Import a file of chats; 0 when every chat was imported or skipped, 1 when some failed
    (listed), the file cannot be read or the store failed, 2 on bad usage."""
    parser = _parser(
        "import",
        "Import chats into a tenant: chat documents (NDJSON, or one JSON document), ChatGPT's"
        " conversations.json or Open WebUI's chat export.",
    )
    parser.add_argument(
        "file", metavar="FILE", help="what `export` wrote, one chat document, or an export"
    )
    parser.add_argument(
        "--format",
        choices=("auto", *FORMATS),
        default="auto",
        help="the file's format; auto (the default) recognises each",
    )
    parser.add_argument(
        "--on-conflict",
        choices=ON_CONFLICT,
        default="skip",
        help="a chat whose id exists: skip it (default), replace it, or import it under a new id",
    )
    args = parser.parse_args(argv)
    path = Path(args.file)
    if not path.is_file():
        parser.error(f"{args.file}: no such file")
    settings = _settings(parser, args.tenant)
    try:
        chats = _foreign_chats(path, args.format)
    except Unreadable as exc:
        print(f"error: {args.file}: {exc}", file=sys.stderr)
        return 1
    if chats is not None:
        form, entries = chats
        return _run(
            settings,
            lambda transfer: _import_chats(transfer, args.tenant, form, entries, args.on_conflict),
        )
    return _run(settings, lambda transfer: _import(transfer, args.tenant, path, args.on_conflict))


def _settings(parser: argparse.ArgumentParser, tenant: str) -> Settings:
    if not TENANT.fullmatch(tenant):
        parser.error(f"--tenant must be 1-64 of A-Z a-z 0-9 _ -, got {tenant!r}")
    load_dotenv(".env")
    try:
        return load_settings(os.environ)
    except ConfigError as exc:
        parser.exit(2, f"error: configuration: {exc}\n")


def _run(settings: Settings, work: Work) -> int:
    """Run `work` over the configured store, closing it after; report a store failure."""

    async def run() -> int:
        store = open_store(settings)
        try:
            return await work(Transfer(store))
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ProxyError as exc:
        print(f"error: the store failed: {exc.message}", file=sys.stderr)
        return 1


async def _export(transfer: Transfer, tenant: str, out: TextIO) -> int:
    count = 0
    with tqdm(unit=" chats", file=sys.stderr, disable=None) as progress:
        async for line in transfer.export_chats(tenant):
            out.write(line)
            count += 1
            progress.update()
    print(f"exported {count} chat(s) of tenant {tenant}", file=sys.stderr)
    return 0


def _foreign_chats(path: Path, form: str) -> Chats | None:
    """The chats of another tool's export in `path`, or None for a file of chat documents;
    `Unreadable` when it is neither."""
    if form == "native":
        return None
    size = path.stat().st_size
    with path.open("rb") as file:
        first = file.readline()
    array = first.lstrip().startswith(b"[")
    if form == "auto" and not (array or len(first) >= size or _one_document(first, size)):
        return None  # NDJSON: chat documents
    try:
        data = parse_sent(path.read_bytes())
    except (ValueError, RecursionError) as exc:
        if form == "auto" and not array:
            return None  # read as chat documents, which reports what is wrong where
        what = "cannot be kept" if isinstance(exc, Unwritable) else "not JSON"
        raise Unreadable(f"{what}: {exc}") from None
    kind = detect(data) if form == "auto" else form
    if kind is None:
        raise Unreadable(
            "not a format this command reads (chat documents, ChatGPT's conversations.json,"
            " Open WebUI's chat export); name one with --format"
        )
    for name in FOREIGN:
        if kind == name:
            try:
                return name, entries_of(data)
            except DocumentError as exc:
                raise Unreadable(str(exc)) from None
    return None


async def _import_chats(
    transfer: Transfer,
    tenant: str,
    form: Foreign,
    entries: list[dict[str, Any]],
    on_conflict: OnConflict,
) -> int:
    """Import the chats of another tool's export, one at a time."""
    report = ImportReport()
    with tqdm(entries, unit=" chats", file=sys.stderr, disable=None) as progress:
        for index, entry in enumerate(progress):
            await transfer.import_entry(
                tenant, entry, form, report, index=index, on_conflict=on_conflict
            )
    print(_summary(report))
    return 1 if report.failed else 0


async def _import(transfer: Transfer, tenant: str, path: Path, on_conflict: OnConflict) -> int:
    report = ImportReport()
    size = path.stat().st_size
    with (
        path.open("rb") as file,
        tqdm(total=size, unit="B", unit_scale=True, file=sys.stderr, disable=None) as progress,
    ):
        first = file.readline()
        if first.strip() and _one_document(first, size):
            file.seek(0)  # a document spread over lines (pretty-printed): the file is one chat
            await transfer.import_line(tenant, file.read(), report, on_conflict=on_conflict)
            progress.update(size)
        else:
            for number, line in enumerate(chain([first], file), start=1):
                if line.strip():
                    await transfer.import_line(
                        tenant, line, report, line=number, on_conflict=on_conflict
                    )
                progress.update(len(line))
    print(_summary(report))
    return 1 if report.failed else 0


def _one_document(first: bytes, size: int) -> bool:
    """Whether a file whose first line is `first` holds one document over several lines."""
    if len(first) >= size:
        return False
    try:
        parse(first)
    except (ValueError, RecursionError):
        return first.strip() == b"{"
    return False


def _summary(report: ImportReport) -> str:
    lines = [
        f"imported {len(report.imported)} chat(s), skipped {len(report.skipped)} that exist,"
        f" {len(report.failed)} failed"
    ]
    lines += [f"  {old} was imported as {new}" for old, new in report.renamed.items()]
    for failure in report.failed:
        where = f"line {failure['line']}" if failure["line"] is not None else "the file"
        if "index" in failure:
            where = f"chat [{failure['index']}] of the file"
        chat = f" (chat {failure['id']!r})" if failure["id"] is not None else ""
        lines.append(f"  {where}{chat}: {failure['error']}")
    return "\n".join(lines)

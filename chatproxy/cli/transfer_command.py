"""Own the commands `python -m chatproxy export [--tenant NAME] [-o FILE]` and
`python -m chatproxy import FILE [--format auto|native] [--tenant NAME] [--on-conflict ...]`:
their arguments, the settings they read (the environment and `.env`, as the service does: REDIS_URL
or STORE_PATH), a progress bar on stderr (when it is a terminal), the summary and exit codes. The
documents and the work are `service/transfer.py`'s.

An import is resumable: each chat is written whole or not at all and a chat whose id exists is
skipped by default, so running it again after a crash finishes the job and duplicates nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TextIO

from dotenv import load_dotenv
from tqdm import tqdm

from chatproxy.config import ConfigError, Settings, load_settings
from chatproxy.errors import ProxyError
from chatproxy.jsontext import parse
from chatproxy.service.transfer import ON_CONFLICT, ImportReport, OnConflict, Transfer
from chatproxy.store import open_store
from chatproxy.store.items import OPEN_TENANT, TENANT

Work = Callable[[Transfer], Awaitable[int]]


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
    """Import a file of chat documents; 0 when every chat was imported or skipped, 1 when some
    failed (listed) or the store failed, 2 on bad usage."""
    parser = _parser(
        "import", "Import chat documents (NDJSON, or one JSON document) into a tenant."
    )
    parser.add_argument("file", metavar="FILE", help="what `export` wrote, or one chat document")
    parser.add_argument(
        "--format", choices=("auto", "native"), default="auto", help="the file's format"
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
            for number, line in enumerate([first, *file], start=1):
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
        chat = f" (chat {failure['id']!r})" if failure["id"] is not None else ""
        lines.append(f"  {where}{chat}: {failure['error']}")
    return "\n".join(lines)

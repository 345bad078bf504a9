"""Own the command `python -m chatproxy legacy --from URL`: its arguments, the settings it reads
(the environment and `.env`), its output and exit codes; the import itself is `legacy.py`'s."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
from dotenv import load_dotenv

from chatproxy.cli.legacy import SOURCE_TIMEOUT_SECONDS, ImportReport, import_legacy
from chatproxy.config import ConfigError, Settings, load_settings
from chatproxy.errors import ProxyError
from chatproxy.store import open_store
from chatproxy.store.items import OPEN_TENANT, TENANT


class _Parser(argparse.ArgumentParser):
    """argparse that hides credentials in the messages it prints."""

    def error(self, message: str) -> NoReturn:
        super().error(mask(message))


def mask(text: str) -> str:
    """Replace the credentials of any URL in `text` (user info, `password=`) with `***`."""
    text = re.sub(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@", r"\1***@", text)
    return re.sub(r"(password=)[^&\s'\"]*", r"\1***", text, flags=re.IGNORECASE)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the import; return 0 when done, 1 on problems or failures (2: bad arguments)."""
    parser = _Parser(
        prog="python -m chatproxy legacy",
        description="Copy the chats of the original project's Redis (user-<chat_id> lists and"
        " the `system` key) into the store that the environment / .env configures."
        " Safe to run again: it appends only what is new.",
    )
    parser.add_argument(
        "--from",
        dest="source",
        required=True,
        metavar="URL",
        help="the original Redis, e.g. redis://:password@old-host:6379/0",
    )
    parser.add_argument(
        "--tenant",
        default=OPEN_TENANT,
        help=f"the tenant (API key name) that gets the chats; default {OPEN_TENANT}",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="report what would be imported, write nothing"
    )
    args = parser.parse_args(argv)
    if not TENANT.fullmatch(args.tenant):
        parser.error(f"--tenant must be 1-64 of A-Z a-z 0-9 _ -, got {args.tenant!r}")
    url: str = args.source
    if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
        parser.error(f"--from must be a redis://, rediss:// or unix:// URL, got {url!r}")
    try:
        source = redis.Redis.from_url(  # bytes: a non-UTF-8 key is reported, not fatal
            url,
            socket_timeout=SOURCE_TIMEOUT_SECONDS,
            socket_connect_timeout=SOURCE_TIMEOUT_SECONDS,
        )
    except ValueError as exc:
        parser.error(f"--from {url!r}: {exc}")
    with source:
        return _run(source, url, args.tenant, args.dry_run)


def _run(source: redis.Redis, url: str, tenant: str, dry_run: bool) -> int:
    """Import from `source` into the configured store and print the summary; return the code."""
    load_dotenv(".env")
    try:
        settings = load_settings(os.environ)
    except ConfigError as exc:
        print(f"error: configuration: {exc}", file=sys.stderr)
        return 2
    target = settings.redis.describe() if settings.redis else f"SQLite {settings.store_path}"
    shown = _describe(url)
    print(f"importing chats from {shown} into {target}, tenant {tenant}", flush=True)
    try:
        source.ping()  # before the target is opened (and a SQLite file created)
        report = asyncio.run(_import_into(settings, source, tenant, dry_run))
    except redis.RedisError as exc:
        reason = _hide(f"{type(exc).__name__}: {exc}", url)
        print(f"error: reading {shown} failed: {reason}", file=sys.stderr)
        return 1
    except ProxyError as exc:
        print(f"error: the target store failed: {exc.message}", file=sys.stderr)
        return 1
    print(report.summary())
    return 1 if report.problems else 0


async def _import_into(
    settings: Settings, source: redis.Redis, tenant: str, dry_run: bool
) -> ImportReport:
    """Import from `source` into the store the settings configure, closing it after."""
    store = open_store(settings)
    try:
        return await import_legacy(
            source, store, tenant=tenant, dry_run=dry_run, default_system=settings.system_prompt
        )
    finally:
        await store.close()


def _describe(url: str) -> str:
    """Return the URL without credentials or query (which may hold a password), for output."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _hide(text: str, url: str) -> str:
    """Mask URL credentials in `text`, and the source's password wherever it appears."""
    parts = urlsplit(url)
    passwords = [value for name, value in parse_qsl(parts.query) if name == "password"]
    passwords += [parts.password, unquote(parts.password)] if parts.password else []
    for password in sorted(filter(None, passwords), key=len, reverse=True):
        text = text.replace(password, "***")
    return mask(text)

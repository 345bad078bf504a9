"""Own the export and import routes: one chat's document, all of the caller's chats as NDJSON
(streamed as the service reads them), and an import of one document (a bad one is a 400) or of
NDJSON (`Content-Type: application/x-ndjson`), read a line at a time, each line at most
MAX_BODY_BYTES, each bad line reported while the rest import; with `?format=chatgpt` or
`?format=openwebui`, of another tool's export (one JSON array, at most MAX_BODY_BYTES), each bad
chat reported while the rest import. The documents and the work are `service/transfer.py`'s.
`ROUTES` is this module's part of the route table.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import TypeVar

from starlette.responses import Response

from chatproxy.errors import ValidationFailed
from chatproxy.http.context import Answer, Context, Reply, Route
from chatproxy.http.event_stream import EventStream
from chatproxy.service.import_formats import FORMATS
from chatproxy.service.transfer import ON_CONFLICT, ImportReport

NDJSON = "application/x-ndjson"
Choice = TypeVar("Choice", bound=str)


async def get_export(ctx: Context) -> Answer:
    text = await ctx.transfer.export_chat(ctx.chat)
    return Response(text, media_type="application/json")


async def get_exports(ctx: Context) -> Answer:
    assert ctx.caller is not None
    lines = ctx.transfer.export_chats(ctx.caller.tenant)
    first = await anext(lines, None)  # read before the answer: a store that is down is a 503
    return EventStream(_after(first, lines), {"Cache-Control": "no-store"}, NDJSON.encode())


async def _after(first: str | None, rest: AsyncGenerator[str, None]) -> AsyncIterator[str]:
    """`first` (None: there is nothing), then `rest`."""
    async with aclosing(rest):
        if first is not None:
            yield first
            async for line in rest:
                yield line


async def post_import(ctx: Context) -> Reply:
    assert ctx.caller is not None
    tenant, on_conflict, form = (
        ctx.caller.tenant,
        _choice(ctx, "on_conflict", ON_CONFLICT),
        _choice(ctx, "format", FORMATS),
    )
    report = ImportReport()
    media_type = ctx.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    if form != "native":
        report = await ctx.transfer.import_foreign(tenant, await ctx.raw_body(), form, on_conflict)
    elif media_type == NDJSON:
        limit = ctx.settings.max_body_bytes
        async for number, line in _lines(ctx.request.stream(), limit):
            if line is None:
                error = f"longer than MAX_BODY_BYTES ({limit})"
                report.failed.append({"line": number, "id": None, "error": error})
                continue
            await ctx.transfer.import_line(
                tenant, line, report, line=number, on_conflict=on_conflict
            )
    else:
        report = await ctx.transfer.import_document(tenant, await ctx.raw_body(), on_conflict)
    ctx.log_fields["imported"] = len(report.imported)
    ctx.log_fields["failed"] = len(report.failed)
    return report.to_json()


def _choice(ctx: Context, name: str, allowed: tuple[Choice, ...]) -> Choice:
    """The query parameter `name`: one of `allowed`, the first when it is not given."""
    value = ctx.request.query_params.get(name, allowed[0])
    for choice in allowed:
        if value == choice:
            return choice
    listed = ", ".join(allowed[:-1])
    raise ValidationFailed(f"{name}: must be {listed} or {allowed[-1]}", param=name)


async def _lines(
    chunks: AsyncIterator[bytes], limit: int
) -> AsyncIterator[tuple[int, bytes | None]]:
    """Yield the number and text of each line of the body that is not blank, as it arrives;
    None for a line longer than `limit` (its text is not kept)."""
    buffer, number, over = bytearray(), 0, False
    async for chunk in chunks:
        buffer += chunk
        if b"\n" in chunk:
            *done, rest = buffer.split(b"\n")
            buffer = bytearray(rest)
            for line in done:
                number += 1
                if over or len(line) > limit:
                    yield number, None
                elif line.strip():
                    yield number, bytes(line)
                over = False
        if len(buffer) > limit:  # the line goes on past the limit: drop it as it comes
            over = True
            buffer.clear()
    if over or buffer.strip():
        yield number + 1, None if over else bytes(buffer)


ROUTES: list[Route] = [
    Route("/{chat_id}/export", "GET", get_export),
    Route("/export", "GET", get_exports),
    Route("/import", "POST", post_import),
]

"""Own the answer of a streamed turn: server-sent events, written by a small ASGI app of our own.

`EventStream` sends each text of an async iterator as it comes, and nothing else. It does not
listen for the client's disconnect as Starlette's `StreamingResponse` does (in a task group of
its own on ASGI servers before spec 2.4, as uvicorn's httptools server is): a chat's streamed
turn is read and stored by its own task whoever listens, and uvicorn drops what is sent to a
client that has gone, so such a stream ends when its events do (and a worker's graceful stop
waits for it). A stream whose reply nobody stores (`until_gone`: the pass-through's) has no
reason to go on for no one, its reply generated and billed to its end: a task waits for the
client's `http.disconnect`, and the stream stops after the event it was sending. An async
generator is closed however the sending ends, so its `finally` runs then, also when the send
was cancelled.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping

from starlette.background import BackgroundTask
from starlette.types import Receive, Scope, Send

MEDIA_TYPE = b"text/event-stream; charset=utf-8"


class EventStream:
    """A `text/event-stream` answer from an async iterator of texts; an ASGI application.

    Like a Starlette response it has a `status_code`, and runs its `background` task once the
    last event is sent.
    """

    status_code = 200

    def __init__(
        self,
        events: AsyncIterator[str],
        headers: Mapping[str, str],
        media_type: bytes = MEDIA_TYPE,
        *,
        until_gone: bool = False,
    ):
        self.events = events
        self.until_gone = until_gone
        self.media_type = media_type
        self.headers = dict(headers)
        self.background: BackgroundTask | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_headers = [(b"content-type", self.media_type)]
        raw_headers += [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in self.headers.items()
        ]
        gone = None
        if self.until_gone:
            gone = asyncio.get_running_loop().create_task(_disconnect(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
            async for text in self.events:
                # JSON, whose only characters past ASCII are in strings: a lone surrogate (half
                # a character, as an upstream's chunk may hold) goes as its escape, `\ud83d`
                body = text.encode(errors="backslashreplace")
                await send({"type": "http.response.body", "body": body, "more_body": True})
                if gone is not None and gone.done():
                    break  # the client has gone
            else:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if gone is not None:
                gone.cancel()
            aclose = getattr(self.events, "aclose", None)
            if aclose is not None:
                await aclose()
        if self.background is not None:
            await self.background()


async def _disconnect(receive: Receive) -> None:
    """Return once the client has gone (a request's body was read before its answer began);
    a server that fails to say is taken to have lost it."""
    try:
        while (await receive())["type"] != "http.disconnect":
            pass
    except Exception:  # noqa: S110 (the answer stops: there is no one to tell)
        pass

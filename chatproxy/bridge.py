"""Own the event loop the service's coroutines run on while requests arrive on server threads.

The service, the store and the upstream client are coroutines; the HTTP layer still answers on
gunicorn's threads (WSGI). `EventLoop` runs one asyncio loop in a thread of its own per process,
and lets a request's thread wait for a coroutine there (`run`) or read an async iterator one item
at a time (`iterate`). Each call is a hand-over between threads; the coroutine rewrite ends with
the HTTP layer on the loop itself, and this module gone.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class EventLoop:
    """An asyncio loop in a daemon thread, started on first use in each process (a forked
    worker does not inherit its parent's threads)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._starting = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop of this process, started if need be."""
        loop = self._loop
        if loop is not None and self._pid == os.getpid():
            return loop
        with self._starting:
            if self._loop is None or self._pid != os.getpid():
                self._loop = asyncio.new_event_loop()
                self._pid = os.getpid()
                ready = threading.Event()
                thread = threading.Thread(
                    target=_serve, args=(self._loop, ready), name="event-loop", daemon=True
                )
                thread.start()
                ready.wait()
            return self._loop

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run `call` on the loop and wait for its result (its exception is raised here)."""
        return asyncio.run_coroutine_threadsafe(call, self.loop).result()

    def iterate(self, items: AsyncIterator[T]) -> Iterator[T]:
        """Read `items` from this thread, each one awaited on the loop."""
        while True:
            try:
                yield self.run(_next(items))
            except StopAsyncIteration:
                return

    def call_soon(self, action: Callable[[], object]) -> None:
        """Have the loop call `action` (what touches the loop's objects must run there)."""
        self.loop.call_soon_threadsafe(action)

    def close(self) -> None:
        """Stop the loop (the coroutines still on it are dropped)."""
        loop, self._loop = self._loop, None
        if loop is not None and self._pid == os.getpid():
            loop.call_soon_threadsafe(loop.stop)


def _serve(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(ready.set)
    try:
        loop.run_forever()
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _next(items: AsyncIterator[T]) -> T:
    return await anext(items)

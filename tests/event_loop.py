"""Run coroutines from a test's thread: an event loop in a thread of its own (the test's thread
may have one running: Playwright's), living as long as what uses it, as a worker's loop does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running in its own thread until `close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        """Run `call` on the loop and wait for its result (safe from any thread)."""
        return asyncio.run_coroutine_threadsafe(call, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def run_on_own_loop(call: Coroutine[Any, Any, T]) -> T:
    """Run `call` to its end on a new loop in a thread of its own (asyncio.run would refuse,
    in a thread whose loop is running)."""
    loop = LoopThread()
    try:
        return loop.run(call)
    finally:
        loop.close()

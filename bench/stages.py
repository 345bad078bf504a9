"""The proxy with a CPU clock on each step of a request (`make bench`, row 1's cost table).

functions-framework serves this file's `main` in place of main.py's: the same app, with the
WORKERS of a normal run, whose steps add up the CPU time of the thread that runs them (the
worker's event loop; `time.thread_time`, system calls included):

- `request`: uvicorn's run of the ASGI app for one request (functions-framework's Starlette app,
  the proxy inside it, the answer written to the transport);
- `app`: the proxy's ASGI app (`ProxyApp.__call__`): routing, validation, logging, JSON;
- `turn`: `ChatService.turn`, the turn without HTTP;
- `upstream`: the chat completion call (`AsyncUpstream.complete`), request and answer;
- `begin`: the first store trip (take the lock, read the window and the global prompt);
- `save`: the second (store both messages, release the lock).

A coroutine's clock runs while it waits, too, and so counts what other coroutines do on the loop
meanwhile: with one turn at a time (row 1), that is nothing but the loop's own bookkeeping.

`GET /bench/steps` answers the totals in seconds (with WORKERS=1: one process holds them all):
main.py's hook (`http/every_path.py`) hands every request to the proxy before functions-framework
would call a function, so this file installs the hook again, with that path in front.
"""

from __future__ import annotations

import functools
import inspect
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import functions_framework.aio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import RequestResponseCycle

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import main as proxy  # noqa: E402  (builds the app, as functions-framework would)
from chatproxy.http.app import ProxyApp  # noqa: E402
from chatproxy.http.every_path import serve_every_path  # noqa: E402
from chatproxy.service.turns import ChatService  # noqa: E402
from chatproxy.store.redis import RedisStore  # noqa: E402
from chatproxy.upstream.client import AsyncUpstream  # noqa: E402

STEPS = {
    "request": (RequestResponseCycle, "run_asgi"),
    "app": (ProxyApp, "__call__"),
    "turn": (ChatService, "turn"),
    "upstream": (AsyncUpstream, "complete"),
    "begin": (RedisStore, "begin_turn"),
    "save": (RedisStore, "save_turn"),
}
spent: Counter[str] = Counter()


def timed(name: str, cls: type, attr: str) -> None:
    """Replace `cls.attr` with a wrapper that adds its thread's CPU time to `spent[name]`."""
    original = getattr(cls, attr)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[name] += time.thread_time() - start

    @functools.wraps(original)
    async def coroutine_wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.thread_time()
        try:
            return await original(*args, **kwargs)
        finally:
            spent[name] += time.thread_time() - start

    setattr(cls, attr, coroutine_wrapper if inspect.iscoroutinefunction(original) else wrapper)


for step, (owner, method) in STEPS.items():
    timed(step, owner, method)


async def with_steps(scope: Scope, receive: Receive, send: Send) -> None:
    """The proxy, and the totals at `/bench/steps`."""
    if scope["path"] == "/bench/steps":
        await JSONResponse(dict(spent))(scope, receive, send)
    else:
        await proxy.serve(scope, receive, send)


serve_every_path(with_steps)


@functions_framework.aio.http
async def main(request: Request) -> Any:
    """functions-framework's target; the hook answers every request before it."""
    return with_steps

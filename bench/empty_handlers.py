"""Handlers that do no work: the cost of functions-framework's own servers, under any handler.

`make bench` serves each with functions-framework and times it like the proxy (target 0):
- `wsgi`: the default server, gunicorn's threaded worker, which `make run` and deploy.sh use; it
  hands every kept-alive request from its poller thread to a worker thread and back.
- `asgi_async`: functions-framework's ASGI server (`--asgi`: uvicorn in gunicorn) with a
  coroutine, which runs on the event loop.
- `asgi_thread`: the ASGI server with the body read on the event loop and the answer made in a
  worker thread: how the proxy's blocking code would run there without being rewritten.
Each reads the JSON body and answers a small JSON object, as a turn does.
"""

import json

import anyio.to_thread
import functions_framework
import functions_framework.aio
from starlette.requests import Request
from starlette.responses import Response


def answer(body: bytes) -> bytes:
    return json.dumps({"content": str(json.loads(body)["content"])}).encode()


@functions_framework.http
def wsgi(request):  # type: ignore[no-untyped-def]
    return {"content": str(request.get_json()["content"])}


@functions_framework.aio.http
async def asgi_async(request: Request) -> Response:
    return Response(answer(await request.body()), media_type="application/json")


@functions_framework.aio.http
async def asgi_thread(request: Request) -> Response:
    body = await request.body()
    return Response(await anyio.to_thread.run_sync(answer, body), media_type="application/json")

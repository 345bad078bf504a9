"""The lean handler's steps written as coroutines: the floor of the design BENCHMARKS.md proposes.

`bench/lean_handler.py` does the least a chat proxy can do for one turn on the proxy's own stack
(gunicorn's threaded worker, blocking redis-py and urllib3). This file does the same steps, with
the same bounded waits, model, max_tokens and window, on functions-framework's ASGI server
(uvicorn in gunicorn, with uvloop and httptools: functions-framework picks it for an
`aio.http` target; `make bench` also sets FUNCTION_USE_ASGI, which skips the Flask app it would
build first), with redis.asyncio (hiredis) and aiohttp. Nothing else: no lock, no validation, no
limits, no logs.

`make bench` times it like the proxy and the lean handler (rows 1 and 7) and saturates one worker
with it (row 3b), so the report can say what the coroutine rewrite would start from, measured
rather than estimated.
"""

import gc
import json
import os

import aiohttp
import functions_framework.aio
import redis.asyncio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

store = redis.asyncio.Redis.from_url(
    os.environ["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1
)
url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
headers = {
    "Authorization": "Bearer " + os.environ["GPT_API_KEY"],
    "Content-Type": "application/json",
}
session: aiohttp.ClientSession | None = None  # made on the worker's event loop, at its first turn
gc.freeze()  # as main.py does after start-up


def http() -> aiohttp.ClientSession:
    global session
    if session is None:
        connector = aiohttp.TCPConnector(limit=1000)
        timeout = aiohttp.ClientTimeout(sock_connect=25, sock_read=25)
        session = aiohttp.ClientSession(connector=connector, timeout=timeout)
    return session


@functions_framework.aio.http
async def main(request: Request) -> Response:
    key = "lean:" + request.url.path.split("/")[1]
    body = json.loads(await request.body())
    history = [json.loads(m) for m in await store.lrange(key, -20, -1)]
    user = {"role": "user", "content": body["content"]}
    call = {"model": "gpt-4.1-mini", "messages": [*history, user], "max_tokens": 500}
    if body.get("stream"):
        return StreamingResponse(relay(key, user, call), media_type="text/event-stream")
    async with http().post(url, data=json.dumps(call).encode(), headers=headers) as reply:
        content = json.loads(await reply.read())["choices"][0]["message"]["content"]
    answer = {"role": "assistant", "content": content}
    await store.rpush(key, json.dumps(user), json.dumps(answer))
    return Response(json.dumps(answer), media_type="application/json")


async def relay(key, user, call):  # type: ignore[no-untyped-def]
    """Relay the streamed reply's text as the proxy's `delta` events, then store the turn."""
    call = {**call, "stream": True}
    parts = []
    async with http().post(url, data=json.dumps(call).encode(), headers=headers) as reply:
        async for line in reply.content:  # one line at a time, as the upstream sends them
            line = line.rstrip(b"\r\n")
            if not line.startswith(b"data: ") or line == b"data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices") or []:
                if text := choice.get("delta", {}).get("content"):
                    parts.append(text)
                    yield f"event: delta\ndata: {json.dumps({'content': text})}\n\n"
    answer = {"role": "assistant", "content": "".join(parts)}
    await store.rpush(key, json.dumps(user), json.dumps(answer))
    yield f"event: done\ndata: {json.dumps(answer)}\n\n"

"""The floor of the proxy's design: the least a chat proxy on its stack can do for one turn.

functions-framework on the proxy's server settings (THREADS, WORKERS), redis-py (with hiredis)
and urllib3, as the proxy uses them, and only the work no chat proxy can skip: one Redis round
trip to read the history, the model call, one round trip to store both messages, each with a
bounded wait as the proxy's are (REDIS_TIMEOUT's and UPSTREAM_TIMEOUT's defaults). No lock, no
validation, no limits, no idempotency, no logs. The model, max_tokens and window are the proxy's
defaults, as bench/run.py's MODEL, MAX_TOKENS and WINDOW.

`make bench` times it like the proxy (rows 1 and 7), so the gap between the two is what the
proxy's features cost, and its own number is what any handler built this way adds on the machine.
"""

import gc
import json
import os

import functions_framework
import redis
import urllib3
from flask import Response

store = redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=1, socket_connect_timeout=1)
pool = urllib3.PoolManager(maxsize=1000, timeout=urllib3.Timeout(connect=25, read=25))
url = os.environ["OPENAI_BASE_URL"].rstrip("/") + "/chat/completions"
headers = {
    "Authorization": "Bearer " + os.environ["GPT_API_KEY"],
    "Content-Type": "application/json",
}
gc.freeze()  # as main.py does after start-up


@functions_framework.http
def main(request):  # type: ignore[no-untyped-def]
    key = "lean:" + request.path.split("/")[1]
    body = request.get_json()
    history = [json.loads(m) for m in store.lrange(key, -20, -1)]
    user = {"role": "user", "content": body["content"]}
    call = {"model": "gpt-4.1-mini", "messages": [*history, user], "max_tokens": 500}
    if body.get("stream"):
        return Response(relay(key, user, call), mimetype="text/event-stream")
    reply = pool.request("POST", url, body=json.dumps(call).encode(), headers=headers)
    answer = {"role": "assistant", "content": reply.json()["choices"][0]["message"]["content"]}
    store.rpush(key, json.dumps(user), json.dumps(answer))
    return answer


def relay(key, user, call):  # type: ignore[no-untyped-def]
    """Relay the streamed reply's text as the proxy's `delta` events, then store the turn."""
    call = {**call, "stream": True}
    reply = pool.request(
        "POST", url, body=json.dumps(call).encode(), headers=headers, preload_content=False
    )
    parts, pending = [], b""
    try:
        while data := reply.read1(64 * 1024):
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if not line.startswith(b"data: ") or line == b"data: [DONE]":
                    continue
                for choice in json.loads(line[6:]).get("choices") or []:
                    if text := choice.get("delta", {}).get("content"):
                        parts.append(text)
                        yield f"event: delta\ndata: {json.dumps({'content': text})}\n\n"
    finally:
        reply.release_conn()
    answer = {"role": "assistant", "content": "".join(parts)}
    store.rpush(key, json.dumps(user), json.dumps(answer))
    yield f"event: done\ndata: {json.dumps(answer)}\n\n"

"""Row 9: a `/v1/chat/completions` request in chat mode that resends 200 messages of the chat's
path (as LangChain and `llm -c` do), against one that sends only the new user message."""

from __future__ import annotations

import json
import uuid
from typing import Any

from bench.client import Client
from bench.rig import Rig
from bench.seeding import TENANT, seed
from bench.stats import med, ms
from chatproxy.store.items import ChatRef
from chatproxy.store.redis_keys import chat_keys

COMPLETIONS = "/v1/chat/completions"


def t9_resend(rig: Rig, n: int, resent: int) -> dict[str, Any]:
    """Row 9: requests to a chat of `resent` messages that resend its newest `resent` messages
    and add a user message, against requests with only that message to another chat as long,
    interleaved (both chats grow by a turn per request)."""
    with rig.running(delay=0.0) as (server, _):
        full, single = f"resend-{uuid.uuid4().hex[:8]}", f"single-{uuid.uuid4().hex[:8]}"
        seed(rig.redis.url, full, resent)
        seed(rig.redis.url, single, resent)
        client = Client(server.url)
        history = _stored_path(client, full, resent)
        post_full, post_single, body_bytes = [], [], 0
        for i in range(n + 10):
            question = {"role": "user", "content": f"Question {i}: what is Redis?"}
            body = {"messages": [*history[-resent:], question]}
            body_bytes = len(json.dumps(body))
            reply, t_full = _complete(client, full, body)
            _, t_single = _complete(client, single, {"messages": [question]})
            history += [question, {"role": "assistant", "content": reply}]
            if i >= 10:
                post_full.append(t_full)
                post_single.append(t_single)
        client.close()
        stored = {chat: _items(rig, chat) for chat in (full, single)}
    expected = resent + 2 * (n + 10)
    if stored != {full: expected, single: expected}:
        raise RuntimeError(f"each request should store 2 items, to {expected}; hold {stored}")
    return {
        "resent": resent,
        "body_kb": round(body_bytes / 1024, 1),
        "stored_after": stored[full],
        "post_full_ms": ms(med(post_full)),
        "post_single_ms": ms(med(post_single)),
        "post_ratio": round(med(post_full) / med(post_single), 3),
    }


def _stored_path(client: Client, chat: str, size: int) -> list[dict[str, Any]]:
    """The chat's path as the API shows it, each message as a client resends it: role and
    content (it must be the seeded `size` messages)."""
    status, page, _ = client.request("GET", f"/{chat}/chat?limit={size}")
    path = [{"role": m["role"], "content": m["content"]} for m in json.loads(page)]
    if status != 200 or len(path) != size or path[-1]["role"] != "assistant":
        raise RuntimeError(f"the seeded chat is not a path of {size} messages: {status}")
    return path


def _complete(client: Client, chat: str, body: dict[str, Any]) -> tuple[str, float]:
    """POST a chat completion in chat mode; the reply's text and the seconds it took."""
    status, answer, took = client.request("POST", COMPLETIONS, body, {"X-Chat-Id": chat})
    if status != 200:
        raise RuntimeError(f"chat completion in {chat} failed: {status} {answer[:300]!r}")
    return json.loads(answer)["choices"][0]["message"]["content"], took


def _items(rig: Rig, chat: str) -> int:
    """How many items the chat's tree holds (HLEN of its items hash)."""
    with rig.redis.client() as redis_client:
        return int(redis_client.hlen(chat_keys(ChatRef(TENANT, chat))[0]) or 0)

"""Row 4: a POST at the tip and a page of history in a 10,000-message chat, against short
chats."""

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


def t4_long_chat(rig: Rig, n: int, size: int) -> dict[str, Any]:
    """Rows 4 and 4b: turns and pages of a `size`-message chat against short chats."""
    with rig.running(delay=0.0) as (server, _):
        big, small = f"big-{uuid.uuid4().hex[:8]}", f"small-{uuid.uuid4().hex[:8]}"
        seed(rig.redis.url, big, size)
        seed(rig.redis.url, small, 60)
        client = Client(server.url)
        post_big, post_empty, get_big, get_small = [], [], [], []
        for i in range(n + 10):
            body = {"content": f"Question {i}: what is Redis?"}
            _, _, t_big = client.request("POST", f"/{big}/chat", body)
            _, _, t_empty = client.request("POST", f"/empty-{uuid.uuid4().hex}/chat", body)
            status, page, g_big = client.request("GET", f"/{big}/chat?limit=50")
            _, _, g_small = client.request("GET", f"/{small}/chat?limit=50")
            if i == 0:
                _check_tip(status, page, size)
            if i >= 10:
                post_big.append(t_big)
                post_empty.append(t_empty)
                get_big.append(g_big)
                get_small.append(g_small)
        client.close()
        with rig.redis.client() as redis_client:
            items = chat_keys(ChatRef(TENANT, big))[0]
            stored = int(redis_client.hlen(items) or 0)
    return {
        "messages": size,
        "stored_after": stored,
        "post_big_ms": ms(med(post_big)),
        "post_empty_ms": ms(med(post_empty)),
        "post_ratio": round(med(post_big) / med(post_empty), 3),
        "get_big_ms": ms(med(get_big)),
        "get_small_ms": ms(med(get_small)),
        "get_ratio": round(med(get_big) / med(get_small), 3),
    }


def _check_tip(status: int, page: bytes, size: int) -> None:
    """The first page after the first POST: 50 messages, ending with that turn, whose question
    went under the seeded path's last message (item `size` - 1), at the tip."""
    messages = json.loads(page) if status == 200 else []
    if len(messages) < 50:
        raise RuntimeError(f"GET page of the long chat failed: {status}")
    question, reply = messages[-2:]
    if (question["id"], question["parent"], reply["parent"]) != (size, size - 1, size):
        raise RuntimeError(f"the turn did not go at the tip of the long chat: {messages[-2:]}")

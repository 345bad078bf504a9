"""Row 4: a POST and a page of history in a 10,000-message chat, against short chats."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from bench.client import Client
from bench.rig import Rig
from bench.stats import med, ms
from chatproxy.config import RedisSettings
from chatproxy.store.base import ChatRef, Message
from chatproxy.store.redis import RedisStore

TENANT = "public"  # the tenant of an open service (no PROXY_API_KEYS)


def seed(redis_url: str, chat_id: str, messages: int) -> None:
    """Store `messages` messages (user/assistant pairs) in a chat, straight into Redis."""
    asyncio.run(_seed_turns(redis_url, chat_id, messages))


async def _seed_turns(redis_url: str, chat_id: str, messages: int) -> None:
    store = RedisStore.from_settings(RedisSettings(redis_url, False, 5.0), None)
    chat = ChatRef(TENANT, chat_id)
    try:
        for turn in range(messages // 2):
            pair = [
                Message("user", f"Seeded question {turn}: tell me something about Redis."),
                Message("assistant", f"Seeded answer {turn}: Redis keeps data in memory."),
            ]
            await store.save_turn(chat, f"seed-{turn}", pair)
    finally:
        await store.close()


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
            if i == 0 and (status != 200 or len(json.loads(page)) < 50):
                raise RuntimeError(f"GET page of the long chat failed: {status}")
            if i >= 10:
                post_big.append(t_big)
                post_empty.append(t_empty)
                get_big.append(g_big)
                get_small.append(g_small)
        client.close()
        with rig.redis.client() as redis_client:
            stored = int(redis_client.llen(f"chat:{{{TENANT}:{big}}}:msgs") or 0)
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

"""Chats seeded straight into Redis with the store, placed as turns place them (rows 4, 8, 9
and 11)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from chatproxy.config import RedisSettings
from chatproxy.service.response_ids import response_id
from chatproxy.store.items import OPEN_TENANT, ChatRef, Message, chained
from chatproxy.store.redis import RedisStore

TENANT = OPEN_TENANT  # the tenant of an open service (no PROXY_API_KEYS)


def seed(
    redis_url: str, chat_id: str, messages: int, siblings: int = 1, *, responses: bool = False
) -> None:
    """Store a path of `messages` messages in a chat (user/assistant pairs, item n under item
    n - 1, two per save as a turn saves them); its last one is a reply, item `messages` - 1.

    With `responses`, each reply keeps what `POST /v1/responses` has it keep (`response`): its
    turn's input is the question before it, and it continues the reply before that by its
    `previous_response_id`. The path is then a chain of responses, each made from the last.

    With `siblings` > 1, `siblings` - 1 more replies follow under that reply's parent (items
    `messages`, `messages` + 1, ...), as regenerations leave them: the path's last message is
    then one of `siblings` children of its parent, the oldest, and the chat's leaf is the newest.
    """
    if messages < 2 or messages % 2:
        raise ValueError("a seeded path is user/assistant pairs")
    asyncio.run(_seed(redis_url, ChatRef(TENANT, chat_id), messages, siblings, responses))


async def _seed(
    redis_url: str, chat: ChatRef, messages: int, siblings: int, responses: bool
) -> None:
    store = RedisStore.from_settings(RedisSettings(redis_url, False, 5.0), None)
    try:
        for turn in range(messages // 2):
            first = 2 * turn
            kept = _response(chat.chat_id, first) if responses else None
            pair = [
                Message("user", f"Seeded question {turn}: tell me something about Redis."),
                Message(
                    "assistant",
                    f"Seeded answer {turn}: Redis keeps data in memory.",
                    response=kept,
                ),
            ]
            await store.save_turn(
                chat, f"seed-{turn}", chained(pair, first, first - 1 if turn else None)
            )
        question = messages - 2  # the parent of the path's last message
        for take in range(1, siblings):
            again = Message("assistant", f"Seeded answer, take {take + 1}: Redis is in memory.")
            placed = chained([again], messages - 1 + take, question)
            await store.save_turn(chat, f"seed-again-{take}", placed)
    finally:
        await store.close()


def _response(chat_id: str, question: int) -> dict[str, Any]:
    """What a reply made by `POST /v1/responses` keeps when its input was the question
    `question` alone and it continued the reply just before that question (if any)."""
    previous = response_id(chat_id, question - 1) if question else None
    return {"previous_response_id": previous, "created_at": time.time(), "input_first": question}

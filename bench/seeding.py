"""Chats seeded straight into Redis with the store: placed as turns place them (rows 4, 8, 9
and 11), or written whole as an import writes a chat (rows 13b and 14)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from chatproxy.config import RedisSettings
from chatproxy.service.response_ids import response_id
from chatproxy.store.chat_tree import ChatTree
from chatproxy.store.items import OPEN_TENANT, ChatRef, Message, chained
from chatproxy.store.redis import RedisStore
from chatproxy.store.summary import Summary

TENANT = OPEN_TENANT  # the tenant of an open service (no PROXY_API_KEYS)
AT_ONCE = 100  # chats written whole at a time
# A summary as long as compaction writes by default (COMPACTION_SUMMARY_TOKENS, 600 tokens).
SUMMARY = " ".join(
    f"Fact {n}: the user asked how Redis keeps data in memory and was told so." for n in range(33)
)


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
    store = _store(redis_url)
    try:
        for turn in range(messages // 2):
            first = 2 * turn
            kept = _response(chat.chat_id, first) if responses else None
            await store.save_turn(
                chat, f"seed-{turn}", chained(_pair(turn, kept), first, first - 1 if turn else None)
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


def seed_trees(redis_url: str, chat_ids: Sequence[str], messages: int, summarized: int = 0) -> None:
    """Write each chat of `chat_ids` whole (`RedisStore.save_tree`, one call a chat, as an
    import writes one): a path of `messages` messages as `seed` places them, its last the leaf,
    each chat last active a moment after the one before. With `summarized`, a summary of the
    path's first `summarized` messages too, as compaction keeps one when they no longer fit."""
    if messages < 2 or messages % 2 or not 0 <= summarized < messages:
        raise ValueError("a seeded path is user/assistant pairs, a summary covers part of it")
    items = chained([m for turn in range(messages // 2) for m in _pair(turn)], 0, None)
    summaries = [Summary(0, summarized - 1, SUMMARY, model="gpt-4.1-mini")] if summarized else []
    began = time.time()
    trees = [
        ChatTree(chat_id, began, began + n / 1000, items, leaf=messages - 1, summaries=summaries)
        for n, chat_id in enumerate(chat_ids)
    ]
    asyncio.run(_save_trees(redis_url, trees))


async def _save_trees(redis_url: str, trees: Sequence[ChatTree]) -> None:
    store = _store(redis_url)
    try:
        for start in range(0, len(trees), AT_ONCE):
            batch = trees[start : start + AT_ONCE]
            saved = await asyncio.gather(
                *(store.save_tree(ChatRef(TENANT, t.chat_id), t) for t in batch)
            )
            if not all(saved):
                raise RuntimeError("a seeded chat existed already")
    finally:
        await store.close()


def _store(redis_url: str) -> RedisStore:
    return RedisStore.from_settings(RedisSettings(redis_url, False, 5.0), None)


def _pair(turn: int, kept: dict[str, Any] | None = None) -> list[Message]:
    """The seeded question and answer of turn `turn` (the answer keeping `kept`)."""
    return [
        Message("user", f"Seeded question {turn}: tell me something about Redis."),
        Message("assistant", f"Seeded answer {turn}: Redis keeps data in memory.", response=kept),
    ]

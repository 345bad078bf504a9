"""Row 15: `python -m chatproxy import FILE --format chatgpt` of a ChatGPT export
(`conversations.json`, written here in its published shape: a root node without a message, then
one linear path of text messages) into the rig's Redis, timed as a whole, from the command's
start to its exit."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.rig import ROOT, Rig
from bench.seeding import TENANT
from chatproxy.store.items import ChatRef
from chatproxy.store.redis_keys import chat_keys, index_key
from harness.server_process import server_env

MESSAGES = 50  # each conversation's
IMPORT_TIMEOUT_S = 900


def t15_cli_import(rig: Rig, conversations: int, messages: int = MESSAGES) -> dict[str, Any]:
    """Row 15: write an export of `conversations` conversations of `messages` messages, import
    it with the command on an empty Redis, check what the store holds after."""
    rig.flush()
    path = rig.workdir / "conversations.json"
    ids = write_chatgpt_export(path, conversations, messages)
    env = server_env(REDIS_URL=rig.redis.url, PYTHONPATH=str(ROOT), GPT_API_KEY="bench-key")
    command = [sys.executable, "-m", "chatproxy", "import", str(path), "--format", "chatgpt"]
    began = time.perf_counter()
    done = subprocess.run(
        command, cwd=rig.workdir, env=env, capture_output=True, text=True,
        timeout=IMPORT_TIMEOUT_S, check=False,
    )  # fmt: skip
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"the import exited with {done.returncode}: {done.stderr[-500:]}")
    _check(rig, ids, messages)
    return {
        "conversations": conversations,
        "messages": messages,
        "file_mb": round(path.stat().st_size / 2**20, 1),
        "import_s": round(took, 2),
        "chats_per_s": round(conversations / took, 1),
        "messages_per_s": round(conversations * messages / took),
    }


def write_chatgpt_export(path: Path, conversations: int, messages: int) -> list[str]:
    """Write ChatGPT's `conversations.json` of `conversations` conversations, each a root node
    and then `messages` text messages, user and assistant by turns, each the only child of the
    one before, the last the current node; return the conversations' ids."""
    ids = []
    with path.open("w", encoding="utf-8") as out:
        out.write("[")
        for n in range(conversations):
            conversation = _conversation(str(uuid.uuid4()), n, messages)
            ids.append(conversation["id"])
            out.write(("," if n else "") + json.dumps(conversation))
        out.write("]")
    return ids


def _conversation(conversation_id: str, n: int, messages: int) -> dict[str, Any]:
    """One conversation as ChatGPT's export writes it (`chatproxy/service/chatgpt_format.py`)."""
    began = 1_700_000_000.0 + n * 3600
    keys = [f"{conversation_id}-root", *(f"{conversation_id}-{m}" for m in range(messages))]
    mapping = {}
    for m, key in enumerate(keys):
        parent = keys[m - 1] if m else None
        children = keys[m + 1 : m + 2]
        message = _message(key, m - 1, began + m) if m else None
        mapping[key] = {"id": key, "message": message, "parent": parent, "children": children}
    return {
        "id": conversation_id,
        "conversation_id": conversation_id,
        "title": f"Conversation {n} about Redis",
        "create_time": began,
        "update_time": began + messages,
        "mapping": mapping,
        "current_node": keys[-1],
        "moderation_results": [],
    }


def _message(key: str, m: int, at: float) -> dict[str, Any]:
    """The `m`-th message of a conversation: a question, or the answer to the one before."""
    role = ("user", "assistant")[m % 2]
    text = (
        f"Question {m // 2}: how does Redis keep a chat's messages, and for how long?"
        if role == "user"
        else f"Answer {m // 2}: in a hash per chat, with a TTL that each turn renews."
    )
    metadata = {"model_slug": "gpt-4o"} if role == "assistant" else {}
    return {
        "id": key,
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": at,
        "update_time": None,
        "content": {"content_type": "text", "parts": [text]},
        "status": "finished_successfully",
        "end_turn": role == "assistant" or None,
        "weight": 1.0,
        "metadata": metadata,
        "recipient": "all",
    }


def _check(rig: Rig, ids: list[str], messages: int) -> None:
    """Every conversation is a chat of the tenant's listing, and the last holds every message."""
    with rig.redis.client() as client:
        listed = int(client.zcard(index_key(TENANT)) or 0)
        items = int(client.hlen(chat_keys(ChatRef(TENANT, ids[-1]))[0]) or 0)
    if (listed, items) != (len(ids), messages):
        raise RuntimeError(f"the import left {listed} chats, the last of {items} items")

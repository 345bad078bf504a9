"""Rows 13 and 13b: what compaction (`COMPACTION=summary`) costs a turn. 13: a plain turn when
no summary is due, added latency pair by pair as row 1 times it, against the same with
`COMPACTION=off`. 13b: a turn in a long chat whose window holds a summary, against one in a chat
as long with compaction off."""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from typing import Any

from bench.client import Client
from bench.load import WINDOW, Pairs, take_turns
from bench.rig import Rig
from bench.seeding import seed_trees
from bench.stats import med, ms
from harness.server_process import Server

TURNS_PER_CHAT = 8  # turns in one chat before the next chat takes over (see below)
WARMUP = 10  # rounds of 13b not counted
MODES = ("summary", "off")  # COMPACTION of the two servers that take turns


class ShortChats(Pairs):
    """Row 1's pairs in a new chat every TURNS_PER_CHAT turns: a window of MESSAGES_LENGTH
    then holds the whole chat, so nothing is left out of it and no summary is ever due."""

    def pair(self, counted: bool) -> None:
        if len(self.window) >= 2 * TURNS_PER_CHAT:
            self.chat, self.window = f"short-{uuid.uuid4().hex[:8]}", []
        super().pair(counted)


def t13_compaction(rig: Rig, n: int, n_long: int, length: int) -> dict[str, Any]:
    """Rows 13 (`n` pairs a server) and 13b (`n_long` rounds in chats of `length` messages)."""
    return _no_summary_due(rig, n) | _with_summary(rig, n_long, length)


def _no_summary_due(rig: Rig, n: int) -> dict[str, Any]:
    """Row 13: a server with `COMPACTION=summary` and one with `COMPACTION=off` take turns in
    blocks of pairs, as row 1's proxy and floors do, each in chats too short to leave out a
    message."""
    with contextlib.ExitStack() as stack:
        targets = [
            stack.enter_context(rig.running(0.0, config={"COMPACTION": mode})) for mode in MODES
        ]
        on, off = take_turns([ShortChats(server, upstream) for server, upstream in targets], n)
        summaries = _summaries(targets[0][0], on.chat)
    if summaries:
        raise RuntimeError(f"a short chat of row 13 has {len(summaries)} summaries")
    return {
        "turns_per_chat": TURNS_PER_CHAT,
        "on_added_ms": ms(med(on.diffs)),
        "off_added_ms": ms(med(off.diffs)),
        "added_ratio": round(med(on.diffs) / med(off.diffs), 3),
        "on_turn_ms": ms(med(on.proxied)),
        "off_turn_ms": ms(med(off.proxied)),
    }


def _with_summary(rig: Rig, n: int, length: int) -> dict[str, Any]:
    """Row 13b: chats of `length` messages whose first `length` - MESSAGES_LENGTH are summed up
    in a summary (a window of the newest MESSAGES_LENGTH then holds the summary and every
    message after it), on a server with `COMPACTION=summary`, against chats as long on a server
    with `COMPACTION=off`, a turn in each alternately, on one connection each.

    A chat takes TURNS_PER_CHAT turns, then the next takes over: the messages that leave its
    window meanwhile stay well under COMPACTION_THRESHOLD (so no summary is made during the
    timed turns, which the run checks), and the summary stays within the twice MESSAGES_LENGTH
    messages a compacted chat's turn reads, as a chat's summaries keep up with it."""
    rounds = n + WARMUP
    chats = math.ceil(rounds / TURNS_PER_CHAT)
    tag = uuid.uuid4().hex[:8]
    summarized = [f"summarized-{tag}-{i}" for i in range(chats)]
    plain = [f"plain-{tag}-{i}" for i in range(chats)]
    covered = length - WINDOW
    with contextlib.ExitStack() as stack:
        (on, _), (off, _) = [
            stack.enter_context(rig.running(0.0, config={"COMPACTION": mode})) for mode in MODES
        ]
        seed_trees(rig.redis.url, summarized, length, summarized=covered)
        seed_trees(rig.redis.url, plain, length)
        on_client, off_client = Client(on.url), Client(off.url)
        with_summary, without = [], []
        for i in range(rounds):
            chat = i // TURNS_PER_CHAT
            t_on = _turn(on_client, summarized[chat], i)
            t_off = _turn(off_client, plain[chat], i)
            if i >= WARMUP:
                with_summary.append(t_on)
                without.append(t_off)
        on_client.close()
        off_client.close()
        kept = [len(_summaries(on, chat)) for chat in summarized]
    if kept != [1] * chats:
        raise RuntimeError(f"row 13b's chats should keep their one summary each, keep {kept}")
    return {
        "length": length,
        "covered": covered,
        "post_summary_ms": ms(med(with_summary)),
        "post_plain_ms": ms(med(without)),
        "post_ratio": round(med(with_summary) / med(without), 3),
    }


def _turn(client: Client, chat: str, i: int) -> float:
    """POST one turn to `chat`: its seconds."""
    status, body, took = client.request("POST", f"/{chat}/chat", {"content": f"Question {i}?"})
    if status != 200:
        raise RuntimeError(f"a turn of row 13b answered {status}: {body[:200]!r}")
    return took


def _summaries(server: Server, chat: str) -> list[dict[str, Any]]:
    """The summaries `GET ?include=summaries` shows in the chat's current path."""
    client = Client(server.url)
    try:
        status, body, _ = client.request("GET", f"/{chat}/chat?include=summaries")
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"GET {chat} answered {status}")
    return [entry for entry in json.loads(body) if entry.get("type") == "summary"]

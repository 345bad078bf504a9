"""Row 11: a response that continues a chain of 1,000 responses (`previous_response_id` naming
the newest), against a response that starts a chain of its own."""

from __future__ import annotations

import json
import uuid
from typing import Any

from bench.client import Client
from bench.load import MODEL
from bench.response_latency import respond
from bench.rig import Rig
from bench.seeding import seed
from bench.stats import med, ms
from chatproxy.service.response_ids import parse_response_id, response_id

WARMUP = 10  # rounds of requests not counted


def t11_response_chain(rig: Rig, n: int, length: int) -> dict[str, Any]:
    """Row 11: responses continuing a seeded chain of `length` responses, each from the one
    made before it, against responses with no `previous_response_id`, interleaved; each of
    those is then continued too (a chain of one response), which tells the chain's length
    from continuing a chain at all."""
    with rig.running(delay=0.0) as (server, _):
        chat = f"chain-seeded-{uuid.uuid4().hex[:8]}"
        seed(rig.redis.url, chat, 2 * length, responses=True)
        client = Client(server.url)
        _check_chain(client, chat, length)
        last, times = _rounds(client, response_id(chat, 2 * length - 1), n)
        after = _depth(client, chat, last)
        client.close()
    if after != 2 * (length + n + WARMUP):
        raise RuntimeError(f"the chain should have grown by a turn per response; is {after} deep")
    chained, fresh, short = times
    return {
        "length": length,
        "depth_after": after,
        "post_chain_ms": ms(med(chained)),
        "post_fresh_ms": ms(med(fresh)),
        "post_short_ms": ms(med(short)),
        "post_ratio": round(med(chained) / med(fresh), 3),
    }


def _rounds(client: Client, last: str, n: int) -> tuple[str, tuple[list[float], ...]]:
    """`n` rounds after `WARMUP`, each a response after `last` (then the newest), a new one,
    and one after that new one: the chain's newest response, and the seconds of each kind."""
    chained: list[float] = []
    fresh: list[float] = []
    short: list[float] = []
    for i in range(n + WARMUP):
        body = {"model": MODEL, "input": f"Question {i}: what is Redis?"}
        made, t_chained = respond(client, body | {"previous_response_id": last})
        new, t_fresh = respond(client, body)
        _, t_short = respond(client, body | {"previous_response_id": new["id"]})
        last = made["id"]
        if i >= WARMUP:
            chained.append(t_chained)
            fresh.append(t_fresh)
            short.append(t_short)
    return last, (chained, fresh, short)


def _check_chain(client: Client, chat: str, length: int) -> None:
    """What the API shows of the seeded chain: its newest response continues the one before,
    its input is one question, and the path that ends at it holds `length` turns."""
    newest, before = response_id(chat, 2 * length - 1), response_id(chat, 2 * length - 3)
    status, found, _ = client.request("GET", f"/v1/responses/{newest}")
    previous = json.loads(found).get("previous_response_id") if status == 200 else None
    status, items, _ = client.request("GET", f"/v1/responses/{newest}/input_items")
    inputs = len(json.loads(items)["data"]) if status == 200 else None
    shape = (previous, inputs, _depth(client, chat, newest))
    if shape != (before, 1, 2 * length):
        raise RuntimeError(f"the seeded chain is not as row 11 describes it: {shape}")


def _depth(client: Client, chat: str, response: str) -> int:
    """How many messages the path ending at the reply `response` names holds."""
    _, reply = parse_response_id(response) or ("", -1)
    status, path, _ = client.request("GET", f"/{chat}/chat?leaf={reply}")
    if status != 200:
        raise RuntimeError(f"GET the path to {response} answered {status}")
    return sum(1 for message in json.loads(path) if "id" in message)

"""Row 8: a turn from a message deep in a branching chat (a reply with 50 siblings at depth
1,000), against a turn in an empty chat."""

from __future__ import annotations

import json
import uuid
from typing import Any

from bench.client import Client
from bench.rig import Rig
from bench.seeding import seed
from bench.stats import med, ms


def t8_branches(rig: Rig, n: int, depth: int, siblings: int) -> dict[str, Any]:
    """Row 8: POSTs continuing from the message at `depth` (item `depth` - 1, one of `siblings`
    children of its parent, not the chat's leaf) against POSTs to new empty chats, interleaved."""
    with rig.running(delay=0.0) as (server, _):
        tree = f"tree-{uuid.uuid4().hex[:8]}"
        seed(rig.redis.url, tree, depth, siblings)
        at = depth - 1
        client = Client(server.url)
        _check_shape(client, tree, at, depth, siblings)
        post_branch, post_empty = [], []
        for i in range(n + 10):
            body = {"content": f"Question {i}: what is Redis?"}
            status, _, t_branch = client.request("POST", f"/{tree}/chat", body | {"parent": at})
            _, _, t_empty = client.request("POST", f"/empty-{uuid.uuid4().hex}/chat", body)
            if status != 200:
                raise RuntimeError(f"POST with a parent failed: {status}")
            if i >= 10:
                post_branch.append(t_branch)
                post_empty.append(t_empty)
        status, found, _ = client.request("GET", f"/{tree}/children?parent={at}")
        client.close()
    children = len(json.loads(found)["children"]) if status == 200 else 0
    if children != n + 10:
        raise RuntimeError(f"{children} turns went under message {at}, not {n + 10}")
    return {
        "depth": depth,
        "siblings": siblings,
        "children_after": children,
        "post_branch_ms": ms(med(post_branch)),
        "post_empty_ms": ms(med(post_empty)),
        "post_ratio": round(med(post_branch) / med(post_empty), 3),
    }


def _check_shape(client: Client, chat: str, at: int, depth: int, siblings: int) -> None:
    """What the API shows of the seeded chat: the path to `at` holds `depth` messages, `at`
    has `siblings` siblings (itself among them) and is not the leaf."""
    status, found, _ = client.request("GET", f"/{chat}/chat?leaf={at}")
    path = [m for m in json.loads(found) if "id" in m] if status == 200 else []
    status, leaf_page, _ = client.request("GET", f"/{chat}/chat?limit=1")
    (leaf,) = json.loads(leaf_page) if status == 200 else [None]
    shape = (len(path), path[-1]["id"], len(path[-1]["siblings"])) if path else None
    if shape != (depth, at, siblings) or leaf is None or leaf["id"] == at:
        raise RuntimeError(f"the seeded tree is not as row 8 describes it: {shape}, leaf {leaf}")

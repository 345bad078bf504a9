"""Row 12: a page deep in a list of items against the first page. `GET
/v1/responses/{id}/input_items` of a response whose input is 241 items, page 100 against page 1
(`limit=2`; page 100 is asked for `after` the last item of page 99, as a client walks the
list); and `GET /v1/conversations/{id}/items` of that response's chat the same way, where the
proxy serves the route (where it answers 404 for that chat, that part is not measured)."""

from __future__ import annotations

import json
from typing import Any

from bench.client import Client
from bench.load import MODEL
from bench.response_latency import respond
from bench.rig import Rig
from bench.stats import med, ms
from bench.upstream import REPLY
from chatproxy.service.response_ids import parse_response_id

LIMIT = 2  # items per page
DEEP = 100  # the page timed against the first
PAIRS = 120  # the response's input: a resent history of 120 user/assistant pairs, a question
WARMUP = 10  # rounds of requests not counted


def t12_item_pages(rig: Rig, n: int, pairs: int = PAIRS) -> dict[str, Any]:
    """Row 12: page 1 and page `DEEP` of a long input's items, interleaved with page 1 of a
    one-item input's; then the same pages of the response's conversation, if served."""
    with rig.running(delay=0.0) as (server, _):
        client = Client(server.url)
        texts = [f"Message {i}: tell me about Redis." for i in range(2 * pairs + 1)]
        sent = [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(texts)]
        made, _ = respond(client, {"model": MODEL, "input": sent})
        small, _ = respond(client, {"model": MODEL, "input": "What is Redis?"})
        newest_first = texts[::-1]
        inputs = f"/v1/responses/{made['id']}/input_items"
        result: dict[str, Any] = {"items": len(texts), "limit": LIMIT, "page": DEEP}
        one_item = f"/v1/responses/{small['id']}/input_items"
        result |= _pages(client, inputs, newest_first, n, "input", one_item)
        chat, _ = parse_response_id(made["id"]) or ("", 0)
        result |= _conversation(client, chat, newest_first, n)
        client.close()
    return result


def _conversation(client: Client, chat: str, inputs: list[str], n: int) -> dict[str, Any]:
    """The pages of the chat's conversation (its path: the input, then the reply), or why they
    were not measured."""
    path = f"/v1/conversations/{chat}/items"
    status, body, _ = client.request("GET", f"{path}?limit={LIMIT}")
    if status == 404:  # for a chat that exists: the message says why
        error = json.loads(body).get("error", {}).get("message", "")
        return {"conversation_missing": f"answered 404 ({error.replace(chat, '{id}')[:120]})"}
    measured = _pages(client, path, [REPLY, *inputs], n, "conversation")
    return measured | {"conversation_items": len(inputs) + 1}


def _pages(
    client: Client, path: str, texts: list[str], n: int, name: str, reference: str = ""
) -> dict[str, Any]:
    """Page 1 and page `DEEP` of the list at `path` (whose items, newest first, hold `texts`),
    timed alternately `n` times after `WARMUP` rounds; with `reference`, that list's page 1
    in each round too."""
    after = _walk(client, path, texts)
    first_page, deep_page = f"{path}?limit={LIMIT}", f"{path}?limit={LIMIT}&after={after}"
    first, deep, other = [], [], []
    for i in range(n + WARMUP):
        t_first = _page(client, first_page)[1]
        t_deep = _page(client, deep_page)[1]
        t_other = _page(client, f"{reference}?limit={LIMIT}")[1] if reference else 0.0
        if i >= WARMUP:
            first.append(t_first)
            deep.append(t_deep)
            other.append(t_other)
    found = {
        f"{name}_first_ms": ms(med(first)),
        f"{name}_deep_ms": ms(med(deep)),
        f"{name}_ratio": round(med(deep) / med(first), 3),
    }
    return found | ({f"{name}_one_item_ms": ms(med(other))} if reference else {})


def _walk(client: Client, path: str, texts: list[str]) -> str:
    """Walk the list at `path` a page at a time, each after the last item of the one before,
    to page `DEEP`, checking each page's items; return the cursor page `DEEP` is asked with."""
    after = ""
    for number in range(1, DEEP + 1):
        query = f"?limit={LIMIT}" + (f"&after={after}" if after else "")
        page, _ = _page(client, path + query)
        held = [part["text"] for item in page["data"] for part in item["content"]]
        if held != texts[(number - 1) * LIMIT : number * LIMIT]:
            raise RuntimeError(f"page {number} of {path} holds {held}")
        if number < DEEP:
            after = page["last_id"]
    return after


def _page(client: Client, query: str) -> tuple[dict[str, Any], float]:
    """GET one page of a list: the list and the seconds it took."""
    status, body, took = client.request("GET", query)
    if status != 200:
        raise RuntimeError(f"GET {query} answered {status}: {body[:300]!r}")
    page: dict[str, Any] = json.loads(body)
    return page, took

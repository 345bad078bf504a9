"""Row 10: what `POST /v1/responses` adds at concurrency 1, each response continuing the one
before (`previous_response_id`, as a chain of responses is made), pair by pair against the same
chat completion sent straight to the upstream, as row 1 times a turn; taking turns with row 1's
own turns on the same server."""

from __future__ import annotations

import json
from typing import Any

from bench.client import Client
from bench.load import MODEL, Pairs, direct_body, take_turns
from bench.rig import Rig, Upstream
from bench.stats import med, ms, pct
from harness.server_process import Server

RESPONSES = "/v1/responses"


def respond(client: Client, body: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """POST a response, not streamed: the Response and the seconds it took."""
    status, answer, took = client.request("POST", RESPONSES, body)
    if status != 200:
        raise RuntimeError(f"POST {RESPONSES} answered {status}: {answer[:300]!r}")
    response: dict[str, Any] = json.loads(answer)
    return response, took


def output_text(response: dict[str, Any]) -> str:
    """The text of a Response's output messages (what the SDKs call `output_text`)."""
    return "".join(
        part["text"]
        for item in response["output"]
        if item["type"] == "message"
        for part in item["content"]
        if part["type"] == "output_text"
    )


class ResponsePairs(Pairs):
    """Row 1's pairs with each turn a response that continues the one before (the first, a
    warm-up pair, starts the chain): the upstream is sent the same window and new message."""

    def __init__(self, server: Server, upstream: Upstream) -> None:
        super().__init__(server, upstream)
        self.previous: str | None = None

    def _plain(self, content: str) -> tuple[str, float, float]:
        body = direct_body(self.window, content)
        asked: dict[str, Any] = {"model": MODEL, "input": content}
        if self.previous is not None:
            asked["previous_response_id"] = self.previous
        response, proxied = respond(self.proxy, asked)
        self.previous = response["id"]
        status, _, straight = self.direct.request("POST", "/chat/completions", body)
        if status != 200:
            raise RuntimeError(f"upstream answered {status}")
        return output_text(response), proxied, straight


def t10_response_latency(rig: Rig, n: int) -> dict[str, Any]:
    """Row 10: responses in a chain minus the same completion sent directly, pair by pair, in
    blocks taking turns with row 1's turns (`POST /<chat>/chat`) on the same server."""
    with rig.running(delay=0.0) as (server, upstream):
        ours, turns = take_turns([ResponsePairs(server, upstream), Pairs(server, upstream)], n)
    return {
        "median_ms": ms(med(ours.diffs)),
        "p99_ms": ms(pct(ours.diffs, 99)),
        "p99_apart_ms": ms(pct(ours.proxied, 99) - pct(ours.straight, 99)),
        "proxy_median_ms": ms(med(ours.proxied)),
        "direct_median_ms": ms(med(ours.straight)),
        "turn_median_ms": ms(med(turns.diffs)),
        "turn_p99_ms": ms(pct(turns.diffs, 99)),
        "samples": len(ours.diffs),
    }

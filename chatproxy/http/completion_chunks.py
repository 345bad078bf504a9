"""Own the `chat.completion.chunk`s a streamed turn on `/v1` is sent as.

The upstream's chunks go to the client as the upstream sent them (text, tool-call deltas,
logprobs, every choice; tool-call deltas numbered as OpenAI's already, whatever the server's
numbering: `upstream.call_indexes`), with three exceptions that keep a stream honest about its
end. The chunks from the first that finishes a choice on (its finish reason, the usage) are held
until the turn is whole, stored for a chat's turn: a turn that then fails ends with the error
instead, as the client would otherwise take a finish reason for success. The usage the proxy
always asks for is sent on only if the client asked for it too (`stream_options.include_usage`).
And a reply that an upstream ended at `data: [DONE]` without saying why (some servers never send
a finish reason) gets a chunk that says it, as OpenAI's would: the reply's stored finish reason.

A replayed turn has no upstream chunks: its chunks are built from the stored reply.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

JsonObject = dict[str, Any]


class Chunks:
    """The chunks to send for each event of one streamed turn."""

    def __init__(self, include_usage: bool, replay: JsonObject | None = None) -> None:
        """`replay`: the stored reply a replay's events repeat (its model names every chunk)."""
        self._include_usage = include_usage
        self._model = (replay or {}).get("model")
        self._id = f"chatcmpl-{uuid.uuid4().hex}"
        self._created = int(time.time())
        self._held: list[JsonObject] = []
        self._upstream = False  # the upstream's chunks are sent (else: a replay)
        self._last: JsonObject = {}  # the upstream's latest chunk
        self._finished = False  # an upstream chunk said why the reply (the first choice) ended
        self._began = False  # a built chunk has carried the role

    def delta(self, text: str, chunk: JsonObject | None) -> list[JsonObject]:
        """What to send for a `delta` event: its chunk, or none while chunks are held."""
        if chunk is None:  # a replay: its text
            return [self._built({"content": text})]
        self._upstream, self._last = True, chunk
        self._finished = self._finished or _finishes_first(chunk)
        if self._held or _closing(chunk):
            self._held.append(chunk)
            return []
        return [self._shown(chunk)]

    def done(self, reply: JsonObject) -> list[JsonObject]:
        """What to send once the turn is whole: the held chunks (a replay's end, built from
        the stored `reply`), and the usage if the client asked for it and none was sent."""
        if self._upstream:
            sent = [self._shown(c) for c in self._held if self._include_usage or c.get("choices")]
            if not self._finished:
                sent.insert(0, self._finishing(reply))
        else:
            calls = reply.get("tool_calls") or []
            sent = [self._built({"tool_calls": _indexed(calls)})] if calls else []
            sent.append(self._built({}, reply.get("finish_reason") or "stop", reply))
        if self._include_usage and not any(isinstance(c.get("usage"), dict) for c in sent):
            sent.append({**self._base([], reply), "usage": reply.get("tokens")})
        return sent

    def _shown(self, chunk: JsonObject) -> JsonObject:
        """An upstream chunk as the client sees it: without the usage it did not ask for."""
        if self._include_usage or "usage" not in chunk:
            return chunk
        return {k: v for k, v in chunk.items() if k != "usage"}

    def _finishing(self, reply: JsonObject) -> JsonObject:
        """The chunk that says why the reply ended, for an upstream whose chunks did not."""
        head = {k: v for k, v in self._last.items() if k not in ("choices", "usage")}
        finish = reply.get("finish_reason") or "stop"
        choice: JsonObject = {"index": 0, "delta": {}, "logprobs": None, "finish_reason": finish}
        return {**head, "object": "chat.completion.chunk", "choices": [choice]}

    def _built(
        self, delta: JsonObject, finish: str | None = None, reply: JsonObject | None = None
    ) -> JsonObject:
        """A chunk of a replay (the first carries the role)."""
        if not self._began:
            delta = {"role": "assistant", **delta}
            self._began = True
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return self._base([choice], reply)

    def _base(self, choices: list[JsonObject], reply: JsonObject | None) -> JsonObject:
        return {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": (reply or {}).get("model") or self._model,
            "choices": choices,
        }


def _closing(chunk: JsonObject) -> bool:
    """Whether a chunk finishes a choice, or is the usage that ends a stream. A chunk with no
    choices and no usage does not (Azure OpenAI's first: the prompt's filter results)."""
    choices = chunk.get("choices")
    if not isinstance(choices, list) or not choices:
        return isinstance(chunk.get("usage"), dict)
    return any(isinstance(c, dict) and c.get("finish_reason") is not None for c in choices)


def _finishes_first(chunk: JsonObject) -> bool:
    """Whether a chunk says why the first choice ended."""
    choices = chunk.get("choices")
    choices = choices if isinstance(choices, list) else []
    first = [c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0]
    return any(c.get("finish_reason") is not None for c in first)


def _indexed(calls: list[JsonObject]) -> list[JsonObject]:
    """Stored tool calls as a stream's delta carries them: each with its index."""
    return [{"index": n, **call} for n, call in enumerate(calls)]

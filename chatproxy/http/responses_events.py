"""Own the Responses stream of a streamed turn: the service's `StreamEvent`s (text and tool-call
deltas, the stored reply, or the error that ended the turn) as the events of OpenAI's
Responses stream, each with its `sequence_number` (from 0), in the order the SDKs' stream
helpers accept (`client.responses.stream()`, the Vercel AI SDK):

    response.created, response.in_progress
    per output item, in output_index order of their first piece:
      text:  response.output_item.added, response.content_part.added,
             response.output_text.delta ...
      call:  response.output_item.added, response.function_call_arguments.delta ...
    once the reply is stored, each item closed in output_index order:
      text:  response.output_text.done, response.content_part.done, response.output_item.done
      call:  response.function_call_arguments.done, response.output_item.done
    response.completed (or response.incomplete, when the reply stopped at its cap)

Items stay open until the reply is stored, and are closed with what was stored: a reply's
stored text and calls are its truth (any part of it that was not streamed, such as a replay's
tool calls, is sent then). Item ids are those of the final Response (`responses_items`), so
the translator is made with the id the reply's item will have (`ResponseHead.reply_id`): the
service knows it before the reply is saved. A tool call's item is `fc_<n>_<k>`, k its place
among the calls in the order their chunk `index`es first came, which is its place in the stored
reply's calls however the upstream numbers them (OpenAI's from 0; gateways to Claude number a
call after a text block 1; the calls of a server that numbers every call 0 come renumbered
as OpenAI's, by `upstream.call_indexes`); its item is added once its id and name have come,
its arguments held until then.

A turn that fails after the stream began ends with an `error` event, then `response.failed`
(its `error`: `responses_objects.response_error`). The `error` event carries the error both
flat (`code`, `message`, `param`: OpenAI's documented shape and the SDKs' type) and nested
(`error`: what OpenAI sends), so that the Python and Node SDKs raise their `APIError` and the
Vercel AI SDK reports it once. `sse_frame` writes one event as it goes on the wire.

Nothing here does I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from chatproxy.errors import ProxyError
from chatproxy.http.responses_items import (
    ItemId,
    function_call_item,
    message_item,
    message_items,
    output_text,
)
from chatproxy.http.responses_objects import ResponseHead, response_object
from chatproxy.service.results import StreamEvent
from chatproxy.store.items import Message

JsonObject = dict[str, Any]


@dataclass
class _Item:
    """An output item being streamed: its place, id, and what has come of it (text, or a
    call's id, name and arguments)."""

    index: int
    item_id: ItemId
    pieces: list[str] = field(default_factory=list)
    call_id: str | None = None
    name: str | None = None

    @property
    def streamed(self) -> str:
        return "".join(self.pieces)


class ResponseEvents:
    """The Responses stream events of one streamed turn: `translate` each `StreamEvent` in
    turn (the first call also starts the response); after `done` or `error`, nothing."""

    def __init__(self, head: ResponseHead, settings: Mapping[str, Any]):
        self._head = head
        self._settings = settings
        self._sequence = 0
        self._started = False
        self._ended = False
        self._items: list[_Item] = []  # opened, by output_index
        self._calls: dict[int, _Item] = {}  # by their place, opened or not yet
        self._places: dict[int, int] = {}  # a call's place, by its chunk index

    def translate(self, event: StreamEvent) -> list[JsonObject]:
        """The events to send for `event`."""
        if self._ended:
            return []
        sent = [] if self._started else self._start()
        if event.kind == "delta":
            sent += self._text(event.data.get("content") or "")
            sent += self._call_pieces(event.chunk)
        elif event.kind == "done":
            sent += self._finish(Message.from_json(event.data))
        else:
            error = event.error if event.error is not None else ProxyError()
            sent += self._fail(error)
        return sent

    def _start(self) -> list[JsonObject]:
        self._started = True
        response = response_object(self._head, self._settings)
        return [
            self._event("response.created", response=response),
            self._event("response.in_progress", response=response),
        ]

    def _text(self, text: str) -> list[JsonObject]:
        """Events for a piece of the reply's text: its item and part first, if it is the
        first piece."""
        if not text:
            return []
        sent: list[JsonObject] = []
        item = self._message_item()
        if item is None:
            item, sent = self._open_message()
        item.pieces.append(text)
        sent.append(self._text_event("response.output_text.delta", item, delta=text))
        return sent

    def _message_item(self) -> _Item | None:
        return next((i for i in self._items if i.item_id.kind == "message"), None)

    def _open_message(self) -> tuple[_Item, list[JsonObject]]:
        item = _Item(len(self._items), ItemId(self._head.reply_id, chat=self._head.chat))
        self._items.append(item)
        added = message_item(item.item_id, "assistant", [], status="in_progress")
        return item, [
            self._event("response.output_item.added", output_index=item.index, item=added),
            self._text_event("response.content_part.added", item, part=output_text("")),
        ]

    def _call_pieces(self, chunk: JsonObject | None) -> list[JsonObject]:
        """Events for the tool-call pieces of an upstream chunk's first choice."""
        sent: list[JsonObject] = []
        for piece in _tool_call_pieces(chunk):
            call_id = _string(piece.get("id"))
            k = self._place(piece.get("index"))
            call = self._calls.setdefault(k, _Item(-1, self._call_id(k)))
            function = piece.get("function")
            function = function if isinstance(function, dict) else {}
            call.call_id = call.call_id or call_id
            call.name = call.name or _string(function.get("name"))
            arguments = _string(function.get("arguments"))
            if arguments:
                call.pieces.append(arguments)
            if call.index < 0 and call.call_id and call.name:
                sent += self._open_call(call, call.streamed)
            elif call.index >= 0 and arguments:
                sent.append(self._arguments_delta(call, arguments))
        return sent

    def _place(self, index: Any) -> int:
        """A call piece's place: where its chunk `index` first came; a new one for a piece
        without an index."""
        if type(index) is not int or index < 0:
            return len(self._calls)
        return self._places.setdefault(index, len(self._calls))

    def _call_id(self, k: int) -> ItemId:
        return ItemId.of_call(self._head.reply_id, k, self._head.chat)

    def _open_call(self, call: _Item, arguments: str) -> list[JsonObject]:
        """Add a call's item, with the arguments that came before it could be added."""
        call.index = len(self._items)
        self._items.append(call)
        pending = {"id": call.call_id, "function": {"name": call.name, "arguments": ""}}
        added = function_call_item(call.item_id, pending, status="in_progress")
        sent = [self._event("response.output_item.added", output_index=call.index, item=added)]
        if arguments:
            sent.append(self._arguments_delta(call, arguments))
        return sent

    def _arguments_delta(self, call: _Item, delta: str) -> JsonObject:
        return self._event(
            "response.function_call_arguments.delta",
            item_id=str(call.item_id),
            output_index=call.index,
            delta=delta,
        )

    def _finish(self, reply: Message) -> list[JsonObject]:
        """Close every item with what the stored reply holds (adding what was not streamed),
        in output_index order, then complete the response."""
        placed = replace(reply, id=self._head.reply_id)
        final = {item["id"]: item for item in message_items(placed, self._head.chat)}
        sent: list[JsonObject] = []
        for item_id, stored in final.items():
            self._opened(item_id, stored, sent)
        output = []
        for item in self._items:  # one the reply does not hold (never so) ends as it came
            closed = final.get(str(item.item_id)) or self._partial(item, "completed")
            sent += self._complete(item, closed)
            output.append(closed)
        self._ended = True
        response = response_object(self._head, self._settings, reply, output=output)
        return [*sent, self._event(f"response.{response['status']}", response=response)]

    def _opened(self, item_id: str, final: JsonObject, sent: list[JsonObject]) -> None:
        """Open the item of a final one if it was not streamed (its events go to `sent`)."""
        if any(str(i.item_id) == item_id for i in self._items):
            return
        if final["type"] == "message":
            sent += self._open_message()[1]
            return
        k = int(item_id.rsplit("_", 1)[1])
        call = _Item(-1, self._call_id(k), call_id=final["call_id"])
        call.name = final["name"]
        sent += self._open_call(call, "")

    def _complete(self, item: _Item, final: JsonObject) -> list[JsonObject]:
        """An item's last events: the rest of its text or arguments, then its done events."""
        message = final["type"] == "message"  # a reply's text is one output_text part
        whole = final["content"][0]["text"] if message else final["arguments"]
        rest = whole[len(item.streamed) :] if whole.startswith(item.streamed) else ""
        sent: list[JsonObject] = []
        if message:
            if rest:
                sent.append(self._text_event("response.output_text.delta", item, delta=rest))
            sent.append(self._text_event("response.output_text.done", item, text=whole))
            part = final["content"][0]
            sent.append(self._text_event("response.content_part.done", item, part=part))
        else:
            if rest:
                sent.append(self._arguments_delta(item, rest))
            where = {"item_id": str(item.item_id), "output_index": item.index}
            sent.append(
                self._event("response.function_call_arguments.done", **where, arguments=whole)
            )
        sent.append(self._event("response.output_item.done", output_index=item.index, item=final))
        return sent

    def _fail(self, error: ProxyError) -> list[JsonObject]:
        """The `error` event, then the failed response with what was streamed of it."""
        self._ended = True
        output = [self._partial(item, "incomplete") for item in self._items]
        response = response_object(self._head, self._settings, error=error, output=output)
        flat = {"code": error.code, "message": error.message, "param": error.param}
        return [
            self._event("error", **flat, error=error.to_openai_json()["error"]),
            self._event("response.failed", response=response),
        ]

    def _partial(self, item: _Item, status: str) -> JsonObject:
        """An item as far as it was streamed."""
        if item.item_id.kind == "message":
            content = [output_text(item.streamed)]
            return message_item(item.item_id, "assistant", content, status=status)
        call = {"id": item.call_id, "function": {"name": item.name, "arguments": item.streamed}}
        return function_call_item(item.item_id, call, status=status)

    def _text_event(self, kind: str, item: _Item, **fields: Any) -> JsonObject:
        if kind in ("response.output_text.delta", "response.output_text.done"):
            fields["logprobs"] = []
        where = {"item_id": str(item.item_id), "output_index": item.index, "content_index": 0}
        return self._event(kind, **where, **fields)

    def _event(self, kind: str, **fields: Any) -> JsonObject:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event


def sse_frame(event: JsonObject) -> str:
    """One event as a server-sent event: `event: <type>` and its JSON as `data`."""
    return f"event: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def _tool_call_pieces(chunk: JsonObject | None) -> list[JsonObject]:
    """The `delta.tool_calls` pieces of a chunk's first choice."""
    for choice in (chunk or {}).get("choices") or []:
        if isinstance(choice, dict) and choice.get("index", 0) == 0:
            delta = choice.get("delta")
            calls = delta.get("tool_calls") if isinstance(delta, dict) else None
            return [c for c in calls if isinstance(c, dict)] if isinstance(calls, list) else []
    return []


def _string(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None

"""The stream's parts that do no I/O: lines to chunks (`EventLines`), chunks to a reply
(`ReplyParts`). The streaming suites run them through the real upstream and server; these pin
the cases a second reader (over another HTTP client) has to get the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatproxy.errors import UpstreamBadResponse, UpstreamError
from chatproxy.upstream.stream import EventLines, ReplyParts


def chunks_of(lines: list[str]) -> tuple[list[dict[str, Any]], bool]:
    events = EventLines()
    chunks = []
    for line in lines:
        chunk = events.feed(line)
        if chunk is not None:
            chunks.append(chunk)
    return chunks, events.done


def delta(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"model": "m-2", "choices": [{"delta": {"content": text}, "finish_reason": finish}]}


def test_an_event_ends_at_its_blank_line_and_other_fields_are_skipped() -> None:
    lines = [": keep-alive", "event: message", "id: 7", f"data: {json.dumps(delta('Hi'))}", ""]
    assert chunks_of(lines) == ([delta("Hi")], False)


def test_data_lines_of_one_event_are_joined_and_done_is_seen() -> None:
    lines = ['data: {"choices":', "data: []}", "", "data: [DONE]", ""]
    assert chunks_of(lines) == ([{"choices": []}], True)


def test_an_event_without_data_is_no_chunk() -> None:
    assert chunks_of(["", "data:", "", "data: [DONE]"]) == ([], False)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ('{"error": {"message": "overloaded"}}', "stream failed: overloaded"),
        ('["not", "a chunk"]', "no chunk"),
    ],
)
def test_an_error_event_or_a_non_chunk_raises(payload: str, message: str) -> None:
    with pytest.raises(UpstreamError, match=message):
        chunks_of([f"data: {payload}", ""])


def test_a_reply_gathers_its_texts_model_and_usage() -> None:
    reply = ReplyParts("m-1", [{"role": "user", "content": "hello"}])
    assert reply.add(delta("Hel")) == ["Hel"]
    assert reply.add(delta("lo", finish="stop")) == ["lo"]
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert reply.add({"choices": [], "usage": usage}) == []

    reply.check_finished()
    completion = reply.completion()
    assert (completion.content, completion.model, completion.usage) == ("Hello", "m-2", usage)
    assert not completion.usage_estimated


def test_a_reply_without_usage_is_estimated_and_one_never_finished_raises() -> None:
    reply = ReplyParts("m-1", [{"role": "user", "content": "hello"}])
    reply.add(delta("Hi"))

    with pytest.raises(UpstreamError, match="broke off"):
        reply.check_finished()
    assert reply.completion().usage_estimated


def test_a_reply_with_no_text_is_a_bad_response() -> None:
    reply = ReplyParts("m-1", [])
    reply.add(delta("", finish="stop"))

    reply.check_finished()
    with pytest.raises(UpstreamBadResponse):
        reply.completion()

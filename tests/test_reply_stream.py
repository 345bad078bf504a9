"""The stream's parts that do no I/O: lines to chunks (`EventLines`), chunks to a reply
(`ReplyParts`), and what a whole answer holds (`completion_of`). The streaming suites run them
through the real upstream and server; these pin the cases a second reader (over another HTTP
client) has to get the same."""

from __future__ import annotations

import json
from typing import Any

import pytest

from chatproxy.upstream.answers import completion_of, usage_counts
from chatproxy.upstream.stream import EventLines, ReplyParts
from chatproxy.upstream_errors import UpstreamBadResponse, UpstreamError


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


def call_piece(index: int, **piece: Any) -> dict[str, Any]:
    function = {k: piece.pop(k) for k in ("name", "arguments") if k in piece}
    delta = {"tool_calls": [{"index": index, **piece, "function": function}]}
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def test_a_reply_gathers_its_texts_model_and_usage() -> None:
    reply = ReplyParts("m-1", [{"role": "user", "content": "hello"}])
    assert reply.add(delta("Hel")).text == "Hel"
    assert reply.add(delta("lo", finish="stop")).text == "lo"
    usage = {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert reply.add({"choices": [], "usage": usage}).text == ""

    reply.check_finished(done=False)  # a finish reason came: whole, with [DONE] or without
    completion = reply.completion()
    assert (completion.content, completion.model, completion.usage) == ("Hello", "m-2", usage)
    assert not completion.usage_estimated


def test_a_reply_without_usage_is_estimated_and_one_never_finished_raises() -> None:
    reply = ReplyParts("m-1", [{"role": "user", "content": "hello"}])
    reply.add(delta("Hi"))

    with pytest.raises(UpstreamError, match="broke off"):
        reply.check_finished(done=False)
    assert reply.completion().usage_estimated


@pytest.mark.parametrize(
    ("chunk", "finish"),
    [
        (delta("Hi"), "stop"),
        (call_piece(0, id="c", type="function", name="f"), "tool_calls"),
        (call_piece(0, id="c", type="function", name="f", arguments='{"a": 1}'), "tool_calls"),
        (call_piece(0, id="c", type="function", name="f", arguments='{"a": '), "length"),
    ],
    ids=["text", "calls", "whole-arguments", "cut-arguments"],
)
def test_a_reply_that_ends_at_done_without_a_finish_reason_stopped(
    chunk: dict[str, Any], finish: str
) -> None:
    reply = ReplyParts("m-1", [{"role": "user", "content": "hello"}])
    reply.add(chunk)

    reply.check_finished(done=True)

    assert reply.completion().finish_reason == finish


def test_a_reply_with_no_text_is_a_bad_response() -> None:
    reply = ReplyParts("m-1", [])
    reply.add(delta("", finish="stop"))

    reply.check_finished(done=True)
    with pytest.raises(UpstreamBadResponse):
        reply.completion()


def test_parallel_tool_calls_are_put_together_from_their_pieces() -> None:
    chunks = [
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": None}}]},
        call_piece(0, id="call_a", type="function", name="get_", arguments=""),
        call_piece(1, id="call_b", type="function", name="get_time", arguments='{"zo'),
        call_piece(0, name="weather", arguments='{"city":'),
        call_piece(1, arguments='ne": "UTC"}'),
        call_piece(0, arguments=' "Oslo"}'),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    sent = json.loads(json.dumps(chunks))
    reply = ReplyParts("m", [{"role": "user", "content": "go"}])

    deltas = [reply.add(chunk) for chunk in chunks]

    assert [d.adds for d in deltas] == [False, True, True, True, True, True, False]
    assert all(d.text == "" for d in deltas)
    assert chunks == sent  # the chunks go to the client as they came: never changed
    assert all(d.chunk is c for d, c in zip(deltas, chunks, strict=True))  # nor copied
    completion = reply.completion()
    assert completion.content is None
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls == [
        {"id": "call_a", "type": "function",
         "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"id": "call_b", "type": "function",
         "function": {"name": "get_time", "arguments": '{"zone": "UTC"}'}},
    ]  # fmt: skip
    assert completion.usage_estimated
    assert completion.body["choices"][0]["message"]["tool_calls"] == completion.tool_calls


def numbered(deltas: list[Any]) -> list[tuple[int, str | None]]:
    """Each tool-call delta of the chunks `deltas` carry: its index and its id, if it has one."""
    return [
        (call["index"], call.get("id"))
        for delta in deltas
        for choice in delta.chunk["choices"]
        for call in choice["delta"].get("tool_calls") or []
    ]


def test_a_piece_with_another_calls_id_at_the_same_index_starts_a_call() -> None:
    """Some servers number every call 0 and tell them apart by their ids; others repeat a
    call's id on each of its pieces, which is still that call. The chunks every reader gets
    have them as OpenAI's: each call at an index of its own, its id in its first piece only."""
    chunks = [
        call_piece(0, id="call_a", type="function", name="f", arguments='{"a":'),
        call_piece(0, id="call_a", arguments="1}"),
        call_piece(0, id="call_b", type="function", name="g", arguments=""),
        call_piece(0, arguments='{"b":2}'),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    sent = json.loads(json.dumps(chunks))
    reply = ReplyParts("m", [{"role": "user", "content": "go"}])

    deltas = [reply.add(chunk) for chunk in chunks]

    assert numbered(deltas) == [(0, "call_a"), (0, None), (1, "call_b"), (1, None)]
    assert chunks == sent  # renumbered in copies: the chunks that came are not changed
    assert reply.completion().tool_calls == [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"b":2}'}},
    ]


def test_a_piece_that_goes_back_to_an_earlier_calls_id_is_a_piece_of_that_call() -> None:
    """Calls at one index whose pieces interleave (ids a, b, a): the third piece is call a's,
    not a call of its own with a's id again. A piece without an id at that index is the
    newest call's there (b's), as it was before the index's calls interleaved."""
    chunks = [
        call_piece(0, id="call_a", type="function", name="f", arguments='{"a":'),
        call_piece(0, id="call_b", type="function", name="g", arguments='{"b":'),
        call_piece(0, id="call_a", arguments="1}"),
        call_piece(0, arguments="2}"),
    ]
    reply = ReplyParts("m", [{"role": "user", "content": "go"}])

    deltas = [reply.add(chunk) for chunk in chunks]

    assert numbered(deltas) == [(0, "call_a"), (1, "call_b"), (0, None), (1, None)]
    assert reply.completion().tool_calls == [
        {"id": "call_a", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "g", "arguments": '{"b":2}'}},
    ]


def test_a_streamed_reply_keeps_its_logprobs_fingerprint_and_usage_details() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    details = {**usage, "completion_tokens_details": {"reasoning_tokens": 1}}
    reply = ReplyParts("m", [])
    for word in ("Hi", " there"):
        logprobs = {"content": [{"token": word, "logprob": -0.5}], "refusal": None}
        chunk = {"system_fingerprint": "fp_1", **delta(word)}
        chunk["choices"][0]["logprobs"] = logprobs
        reply.add(chunk)
    reply.add({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    reply.add({"choices": [], "usage": details})

    completion = reply.completion()

    assert (completion.content, completion.usage) == ("Hi there", details)
    assert completion.logprobs == {
        "content": [{"token": "Hi", "logprob": -0.5}, {"token": " there", "logprob": -0.5}],
        "refusal": None,
    }
    assert completion.body["system_fingerprint"] == "fp_1"
    assert completion.body["usage"] == details


def test_only_the_first_choice_is_the_reply_and_a_refusal_is_its_text() -> None:
    reply = ReplyParts("m", [])
    first = reply.add({"choices": [{"index": 1, "delta": {"content": "other"}}]})
    reply.add({"choices": [{"index": 0, "delta": {"refusal": "I can't"}, "finish_reason": "stop"}]})

    assert (first.text, first.adds) == ("", True)
    completion = reply.completion()
    assert completion.content == "I can't"
    assert completion.message["refusal"] == "I can't"


@pytest.mark.parametrize(
    ("message", "content"),
    [
        ({"content": None, "tool_calls": [{"id": "c", "function": {"name": "f"}}]}, None),
        ({"content": None, "refusal": "no"}, "no"),
        ({"content": "hi"}, "hi"),
    ],
)
def test_a_whole_answer_with_text_or_tool_calls_is_a_reply(
    message: dict[str, Any], content: str | None
) -> None:
    body = {"model": "m", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}

    completion = completion_of(body, "m", [])

    assert (completion.content, completion.message, completion.body) == (content, message, body)


@pytest.mark.parametrize("message", [{"content": None}, {"content": None, "tool_calls": []}])
def test_a_whole_answer_with_neither_text_nor_tool_calls_is_a_bad_response(
    message: dict[str, Any],
) -> None:
    with pytest.raises(UpstreamBadResponse, match="no text"):
        completion_of({"choices": [{"message": message}]}, "m", [])


def test_usage_keeps_the_counts_of_its_breakdowns_and_refuses_counts_that_are_not() -> None:
    counts = {"prompt_tokens": 30, "completion_tokens": 20, "total_tokens": 50}
    given = {
        **counts,
        "prompt_tokens_details": {"cached_tokens": 8, "audio_tokens": 0, "x" * 65: 1, "t": None},
        "completion_tokens_details": {"reasoning_tokens": 12, "accepted": True, "rejected": -1},
        "cost": 0.02,
    }
    wide = {**counts, "prompt_tokens_details": {f"kind_{i}": i + 1 for i in range(40)}}

    assert usage_counts(given) == {
        **counts,
        "prompt_tokens_details": {"cached_tokens": 8},
        "completion_tokens_details": {"reasoning_tokens": 12},
    }
    assert usage_counts({**counts, "prompt_tokens_details": {"audio_tokens": None}}) == counts
    assert usage_counts({**counts, "completion_tokens_details": [1]}) == counts
    assert len(usage_counts(wide)["prompt_tokens_details"]) == 16  # type: ignore[index]
    for bad in (-1, True, 2.5, 10**13, "3"):
        assert usage_counts({**counts, "total_tokens": bad}) is None  # estimated instead

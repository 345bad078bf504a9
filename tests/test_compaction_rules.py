"""The pure rules of compaction (`service/compaction_rules.py`, `compaction.py`, `folding.py`):
which summary a path may use, what a window sends beside it, when a summary is due and through
which item, and how what is left out is cut into pieces that fit the summarizing call."""

from __future__ import annotations

from chatproxy.service.compaction import due_through
from chatproxy.service.compaction_rules import (
    SUMMARY_HEADING,
    UNREAD,
    after_summary,
    summary_on,
    transcript,
    with_summary,
)
from chatproxy.service.folding import pieces
from chatproxy.store.items import Message, chained
from chatproxy.store.summary import Summary


def path(n: int, first: int = 0, parent: int | None = None, chars: int = 40) -> list[Message]:
    """n messages chained from id `first` under `parent`, each `chars` long (10 tokens + 4)."""
    said = [Message("user" if i % 2 == 0 else "assistant", "x" * chars) for i in range(n)]
    return chained(said, first, parent)


def summary(last: int, first: int = 0) -> Summary:
    return Summary(first, last, "the user is Ada", created_at=1.0)


def test_a_path_uses_a_summary_of_an_item_on_it_or_just_above_it_only() -> None:
    read = path(4, first=10, parent=9)  # items 10..13
    assert summary_on(summary(9), read) == summary(9)
    assert summary_on(summary(12), read) == summary(12)
    assert summary_on(summary(8), read) is None  # not known to be on this path
    assert summary_on(summary(14), read) is None  # on another branch
    assert summary_on(None, read) is None
    assert summary_on(summary(9), []) is None


def test_a_window_sends_what_follows_the_summary_and_the_summary_with_the_system_prompt() -> None:
    read = path(4, first=10, parent=9)
    assert [m.id for m in after_summary(read, summary(11))] == [12, 13]
    assert after_summary(read, None) == read
    assert (
        with_summary("Be kind.", summary(11)) == f"Be kind.\n\n{SUMMARY_HEADING}\nthe user is Ada"
    )
    assert with_summary(None, summary(11)) == f"{SUMMARY_HEADING}\nthe user is Ada"
    assert with_summary("Be kind.", None) == "Be kind."


def test_a_summary_is_due_through_the_newest_message_left_out_past_the_threshold() -> None:
    read = path(6)  # items 0..5, 14 tokens each, from the first message
    sent = read[3:]
    assert due_through(read, sent, None, threshold=42) == 2  # 0, 1, 2 left out: 42 tokens
    assert due_through(read, sent, None, threshold=43) is None
    assert due_through(read, sent, summary(1), threshold=14) == 2  # only 2 is new
    assert due_through(read, sent, summary(1), threshold=15) is None
    assert due_through(read, read, None, threshold=1) is None  # nothing left out
    assert due_through([], [], None, threshold=1) is None


def test_a_summary_the_window_left_out_for_its_size_is_due_again_before_any_older_one() -> None:
    read = path(8, first=10, parent=9)  # items 10..17
    large = summary(14)  # on the path, kept for a larger window: this one left it out
    sent = read[3:]  # 13..17, without it
    assert due_through(read, sent, None, threshold=1) == 12  # as if never summarized
    assert due_through(read, sent, None, threshold=1, dropped=large) == 14  # it, alone
    assert due_through(read, read, None, threshold=1, dropped=large) == 14  # though all fit
    assert due_through(read, read[7:], None, threshold=1, dropped=large) == 16  # on from it
    assert due_through(read, read[6:], None, threshold=15, dropped=large) == 14  # 15 is 14
    assert due_through([], [], None, threshold=1, dropped=large) is None


def test_a_path_never_summarized_that_goes_on_above_the_read_is_due_at_once() -> None:
    read = path(4, first=10, parent=9)
    assert due_through(read, read, None, threshold=10_000) == 9  # all sent: the one above
    assert due_through(read, read[2:], None, threshold=10_000) == 11
    assert due_through(read, read[2:], summary(9), threshold=10_000) is None


def test_what_is_left_out_is_cut_into_pieces_that_fit() -> None:
    messages = path(5)  # 14 tokens each
    assert [[m.id for m in run] for run in pieces(messages, 28)] == [[0, 1], [2, 3], [4]]
    assert [[m.id for m in run] for run in pieces(messages, 10)] == [[0], [1], [2], [3], [4]]
    assert pieces([], 28) == []


def test_a_summary_so_far_larger_than_summaries_are_now_takes_the_first_piece_s_room() -> None:
    messages = path(3)  # 14 tokens each
    assert [[m.id for m in run] for run in pieces(messages, 28, taken=14)] == [[0], [1, 2]]
    assert [[m.id for m in run] for run in pieces(messages, 28, taken=20)] == [[], [0, 1], [2]]
    assert pieces([], 28, taken=1) == [[]]  # the summary so far, folded again alone


def test_the_transcript_holds_the_summary_so_far_and_each_message_cut_short() -> None:
    calls = [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]
    asked = Message("user", "hello there", id=3, parent=2)
    calling = Message("assistant", None, id=4, parent=3, tool_calls=calls)
    text = transcript(summary(2), [asked, calling], most_chars=5)
    assert text == (
        "Summary so far:\nthe user is Ada\n\nNew messages:\n"
        "[user] hello\n[assistant] (calls lookup)"
    )
    assert transcript(None, [], 10).startswith("Summary so far:\n(none)\n")
    assert transcript(summary(2), [], 5, summary_chars=8) == (
        "Summary so far:\nthe user\n\nNew messages:\n(none)"
    )
    assert transcript(summary(2), [asked], 5, unread=True) == (
        f"Summary so far:\nthe user is Ada\n\n{UNREAD}\n\nNew messages:\n[user] hello"
    )


def test_the_transcript_names_calls_of_any_shape_a_model_wrote() -> None:
    calls = [
        {"id": "c1", "type": "custom", "custom": {"name": "grep", "input": "x"}},
        {"id": "c2", "type": "function", "function": None},
        "c3",
    ]
    calling = Message("assistant", "", id=4, parent=3, tool_calls=calls)
    text = transcript(None, [calling], most_chars=5)
    assert text.endswith("[assistant] (calls grep, ?, ?)")

"""Stored messages are decoded as they were written, and a store's memory of decoded messages
never changes what a read returns: properties over random messages and random uses of the memory,
then single cases."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatproxy.store.decoding import DecodedMessages, decode_messages
from chatproxy.store.items import Message, chained

texts = st.text(max_size=20)
contents = st.one_of(
    texts,
    st.lists(
        st.fixed_dictionaries({"type": st.just("text"), "text": texts})
        | st.fixed_dictionaries(
            {"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": texts})}
        ),
        max_size=3,
    ),
)
messages = st.builds(
    Message,
    role=st.sampled_from(["user", "assistant"]),
    content=contents,
    created_at=st.floats(min_value=0, max_value=2e9, allow_nan=False),
    usage=st.none()
    | st.dictionaries(
        st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens"]),
        st.integers(0, 10**9),
    ),
    model=st.none() | texts,
    id=st.integers(0, 10**6),
    parent=st.none() | st.integers(0, 10**6),
    tool_calls=st.none()
    | st.lists(st.fixed_dictionaries({"id": texts, "type": st.just("function")}), max_size=2),
    tool_call_id=st.none() | texts,
    name=st.none() | texts,
    finish_reason=st.none() | st.sampled_from(["stop", "length", "tool_calls"]),
)
# A read of stored entries, some written by this process (the store remembers what it saved)
# and whether the read keeps what it decodes (a turn's window) or not (a history).
reads = st.lists(
    st.tuples(st.lists(messages, max_size=6), st.booleans(), st.booleans()), max_size=12
)


@given(st.lists(messages, max_size=8))
def test_a_stored_message_decodes_to_the_message_written(written: list[Message]) -> None:
    # What makes remembering a saved message as its entry's decoding correct.
    assert decode_messages([m.dumps() for m in written]) == written


@settings(max_examples=200)
@given(reads, st.integers(1, 12), st.integers(1, 3000))
def test_the_memory_never_changes_what_a_read_returns_and_stays_in_its_bounds(
    script: list[tuple[list[Message], bool, bool]], max_entries: int, max_chars: int
) -> None:
    decoded = DecodedMessages(max_entries, max_chars)
    for written, saved_here, keep in script:
        raws = [m.dumps() for m in written]
        if saved_here:
            decoded.remember(raws, written)

        read = decoded.decode(raws, keep=keep)

        assert read == written
        assert [json.loads(m.dumps()) for m in read] == [json.loads(raw) for raw in raws]
        assert len(decoded) <= max_entries
        assert decoded.chars <= max_chars
        for raw, kept in zip(raws, decoded.get_many(raws), strict=True):
            assert kept is None or kept.dumps() == raw  # a hit is that entry's own decoding


@given(st.lists(messages, min_size=1, max_size=6), st.data())
def test_a_damaged_entry_is_named_by_its_place_and_never_kept(
    written: list[Message], data: st.DataObject
) -> None:
    raws = [m.dumps() for m in written]
    decoded = DecodedMessages()
    decoded.decode(data.draw(st.lists(st.sampled_from(raws))), keep=True)  # some known already
    place = data.draw(st.integers(0, len(raws) - 1))
    damage = data.draw(st.sampled_from(["[]", raws[place][:-1], f"{raws[place]},{raws[0]}"]))
    raws[place] = damage

    with pytest.raises(ValueError, match=f"stored message {place} is not"):
        decoded.decode(raws, keep=True)
    assert decoded.get_many([damage]) == [None]


def test_messages_are_read_back_in_one_parse_and_a_damaged_entry_is_named() -> None:
    messages = chained([Message("user", f"q{n}", created_at=float(n)) for n in range(4)], 0, None)
    stored = [m.dumps() for m in messages]
    assert decode_messages(stored) == messages
    assert decode_messages([]) == []

    # Damaged entries that still parse together are read one by one, naming the bad one: two
    # values in one entry would shift every message after it.
    with pytest.raises(ValueError, match="stored message 0 is not JSON"):
        decode_messages([f"{stored[0]},{stored[1]}", stored[2]])
    with pytest.raises(ValueError, match="stored message 0 is not JSON"):
        decode_messages([f"[{stored[0]}", f"{stored[1]}]", f"{stored[2]},{stored[3]}"])
    with pytest.raises(ValueError, match="stored message 1 is not a JSON object"):
        decode_messages([stored[0], "[]"])
    with pytest.raises(ValueError, match="stored message 1 is not JSON"):
        decode_messages([stored[0], stored[1][:-1]])


def test_decoded_messages_are_forgotten_together_at_either_bound() -> None:
    decoded = DecodedMessages(max_entries=3, max_chars=30)
    one, two, three = (Message("user", text) for text in ("a", "b", "c"))

    decoded.remember(["x" * 10, "y" * 10], [one, two])
    assert decoded.get_many(["x" * 10, "y" * 10, "z"]) == [one, two, None]
    decoded.remember(["z" * 10, "w"], [three, one])  # a fourth entry: all forgotten first
    assert decoded.get_many(["x" * 10, "z" * 10, "w"]) == [None, three, one]
    decoded.remember(["v" * 20], [two])  # 11 + 20 characters: all forgotten first
    assert decoded.get_many(["z" * 10, "v" * 20]) == [None, two]
    decoded.remember(["u" * 31], [three])  # over the bound alone: not kept at all
    assert len(decoded) == 0


def test_a_damaged_entry_beside_decoded_ones_is_named_by_its_place() -> None:
    messages = chained([Message("user", "q7", created_at=7.0), Message("assistant", "a7")], 7, 6)
    stored = [m.dumps() for m in messages]
    decoded = DecodedMessages()
    decoded.decode(stored[:1], keep=True)

    assert decoded.decode(stored, keep=True) == messages
    with pytest.raises(ValueError, match="stored message 2 is not a JSON object"):
        decoded.decode([*stored, "[]"])
    with pytest.raises(ValueError, match="stored message 1 is not JSON"):
        decoded.decode([stored[0], stored[1][:-1]], keep=True)
    assert decoded.get_many([stored[1][:-1]]) == [None]

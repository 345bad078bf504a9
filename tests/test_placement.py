"""Where a chat-mode request's messages go in the chat's tree (`service/placement.py`, with the
alignment of `service/alignment.py`, the message checks of `service/message_rules.py` and the
normalised comparison of `service/message_keys.py`).

Tables of requests in the shapes real clients send (LangChain, `llm chat`, the OpenAI SDK's tool
loop and refusals, a Vercel-style resend), on paths whose oldest messages were dropped too, the
normalisations matching needs, the bad input it refuses, then hypothesis properties: any cut of
the stored path resent with a new message appends it; any prefix resent with another user
message branches there; a window of the path decides as the whole path does, or asks for it; a
whole-history client replaying a conversation stores it once, and keeps storing only what is new
when the chat drops its oldest messages; the plain comparison of an exact resend agrees with the
alignment. Last, what a long resend costs, counted (no timings). Paths hold ids from 10 up
(`stored`): `11` is the second message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from openai.types.chat import ChatCompletionMessage

from chatproxy.errors import ValidationFailed
from chatproxy.service import alignment, placement
from chatproxy.service.placement import place_request
from chatproxy.service.placing import Ask, window_for
from chatproxy.store.items import ROOT, Message, chained

Sent = dict[str, Any]


def u(content: Any, **extra: Any) -> Sent:
    return {"role": "user", "content": content, **extra}


def a(content: Any, *calls: Sent, **extra: Any) -> Sent:
    message = {"role": "assistant", "content": content, **extra}
    if calls:
        message["tool_calls"] = list(calls)
    return message


def s(content: Any, role: str = "system") -> Sent:
    return {"role": role, "content": content}


def t(call_id: str, content: Any = "done") -> Sent:
    return {"role": "tool", "tool_call_id": call_id, "content": content}


def call(call_id: str, name: str = "weather", arguments: Any = '{"city":"Paris"}') -> Sent:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def stored(*messages: Sent, first_id: int = 10, parent: int | None = None) -> list[Message]:
    """A stored path: the messages as the store keeps them, chained from `first_id`."""
    items = [
        Message(
            role=m["role"],
            content=m.get("content"),
            tool_calls=m.get("tool_calls"),
            tool_call_id=m.get("tool_call_id"),
            name=m.get("name"),
        )
        for m in messages
    ]
    return chained(items, first_id, parent)


def placed(
    path: Sequence[Message], sent: Sequence[Sent], *, whole: bool = False
) -> tuple[Any, ...] | None:
    """The placement as (system, parent, branch, new messages in the upstream's form)."""
    result = place_request(path, sent, whole=whole)
    if result is None:
        return None
    assert all(m.id is None and m.parent is None for m in result.new)  # unplaced
    return result.system, result.parent, result.branch, [m.for_upstream() for m in result.new]


QUESTION = u("Weather in Paris and Zürich?")
CALLS = a(
    None,
    call("call_1"),
    call("call_2", arguments='{"city":"Z\\u00fcrich"}'),
)
RESULTS = [t("call_1", "sunny"), t("call_2", "rain")]
ANSWER = a("Sunny in Paris, rain in Zürich.")
AB = [u("A"), a("B")]
ABCD = [u("A"), a("B"), u("C"), a("D")]
XYZ = [u("X"), a("Y"), u("Z")]  # a history of its own

# What the OpenAI SDK sends back when a client appends `completion.choices[0].message` to its
# messages: the response's message dumped as the SDK dumps models in a request.
SDK_CALLS = ChatCompletionMessage.model_validate(
    {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "annotations": [],
        "tool_calls": CALLS["tool_calls"],
    }
).model_dump(exclude_unset=True, mode="json")
SDK_ANSWER = ChatCompletionMessage.model_validate(
    {"role": "assistant", "content": ANSWER["content"], "refusal": None, "annotations": []}
).model_dump(exclude_unset=True, mode="json")

# LangChain's ChatOpenAI: a tool-calling AIMessage goes out with null content and its parsed
# arguments serialized again (`json.dumps(args, ensure_ascii=False)`).
LANGCHAIN_CALLS = a(
    None,
    call("call_1", arguments='{"city": "Paris"}'),
    call("call_2", arguments='{"city": "Zürich"}'),
)
# A Vercel-style resend (the AI SDK): empty text for a tool-calling message, `JSON.stringify`ed
# arguments, a user message as its list of parts.
AI_SDK_CALLS = a("", call("call_1"), call("call_2", arguments='{"city":"Zürich"}'))
# A refused reply, stored with its refusal as its text, as the OpenAI SDK sends it back.
REFUSAL = "I can't help with that."
SDK_REFUSAL = ChatCompletionMessage.model_validate(
    {"role": "assistant", "content": None, "refusal": REFUSAL, "annotations": []}
).model_dump(exclude_unset=True, mode="json")

PLACEMENTS = [
    pytest.param([], [u("hi")], (None, None, False, [u("hi")]), id="new-user-on-an-empty-chat"),
    pytest.param(AB, [u("C")], (None, None, False, [u("C")]), id="new-user-at-the-leaf"),
    pytest.param(
        AB, [s("be brief"), u("C")], ("be brief", None, False, [u("C")]), id="system-and-new-user"
    ),
    pytest.param(
        AB,
        [s("be brief"), s([{"type": "text", "text": "in French"}], "developer"), u("C")],
        ("be brief\n\nin French", None, False, [u("C")]),
        id="leading-system-and-developer-join",
    ),
    pytest.param(
        [QUESTION, CALLS], RESULTS, (None, None, False, RESULTS), id="tool-results-for-the-leaf"
    ),
    pytest.param(
        [QUESTION, CALLS],
        [RESULTS[1], RESULTS[0], u("and?")],
        (None, None, False, [RESULTS[1], RESULTS[0], u("and?")]),
        id="tool-results-any-order-and-a-user-message",
    ),
    pytest.param(
        AB,
        [s("be brief"), u("A"), a("B"), u("C")],
        ("be brief", 11, False, [u("C")]),
        id="langchain-system-history-and-new-user",
    ),
    pytest.param(
        [u("hi"), a("Hello! How can I help?")],
        [u("hi"), a("Hello! How can I help?"), u("how are you?")],
        (None, 11, False, [u("how are you?")]),
        id="llm-chat-second-turn",
    ),
    pytest.param(
        AB,
        [s("old"), u("A"), a("B"), s("new"), u("C")],
        ("old", 11, False, [s("new"), u("C")]),
        id="llm-changed-system-prompt-is-stored-in-the-path",
    ),
    pytest.param(
        [QUESTION, CALLS],
        [QUESTION, SDK_CALLS, *RESULTS],
        (None, 11, False, RESULTS),
        id="openai-sdk-tool-loop-results",
    ),
    pytest.param(
        [QUESTION, CALLS, *RESULTS, ANSWER],
        [QUESTION, SDK_CALLS, *RESULTS, SDK_ANSWER, u("thanks")],
        (None, 14, False, [u("thanks")]),
        id="openai-sdk-tool-loop-next-turn",
    ),
    pytest.param(
        [QUESTION, CALLS, *RESULTS, ANSWER],
        [s("be brief"), QUESTION, LANGCHAIN_CALLS, *RESULTS, ANSWER, u("thanks")],
        ("be brief", 14, False, [u("thanks")]),
        id="langchain-tool-loop-reserialized-arguments",
    ),
    pytest.param(
        [QUESTION, CALLS, *RESULTS, ANSWER],
        [
            u([{"type": "text", "text": QUESTION["content"]}]),
            AI_SDK_CALLS,
            *RESULTS,
            ANSWER,
            u("thanks"),
        ],
        (None, 14, False, [u("thanks")]),
        id="ai-sdk-resend",
    ),
    pytest.param(
        ABCD, [u("C"), a("D"), u("E")], (None, 13, False, [u("E")]), id="truncated-history"
    ),
    pytest.param(
        [QUESTION, CALLS, *RESULTS, ANSWER],
        [RESULTS[1], ANSWER, u("thanks")],
        (None, 14, False, [u("thanks")]),
        id="history-truncated-inside-tool-results",
    ),
    pytest.param(
        ABCD, [u("A"), a("B"), u("C2")], (None, 11, True, [u("C2")]), id="edit-in-the-middle"
    ),
    pytest.param(
        ABCD,
        [u("A"), a("B2"), u("C")],
        (None, 10, True, [a("B2"), u("C")]),
        id="edit-of-an-assistant-reply",
    ),
    pytest.param(ABCD, [u("A"), a("B"), u("C")], (None, 12, True, []), id="regenerate"),
    pytest.param(
        [QUESTION, CALLS, *RESULTS, ANSWER],
        [QUESTION, CALLS, *RESULTS],
        (None, 13, True, []),
        id="regenerate-after-tool-results",
    ),
    pytest.param(
        AB,
        [u("X"), a("Y"), u("Z")],
        (None, ROOT, True, [u("X"), a("Y"), u("Z")]),
        id="own-history-starts-a-new-path",
    ),
    pytest.param(
        AB,
        [u("A2"), a("B"), u("C")],
        (None, ROOT, True, [u("A2"), a("B"), u("C")]),
        id="edit-of-the-first-message-starts-a-new-path",
    ),
    pytest.param(
        [],
        [u("X"), a("Y"), u("Z")],
        (None, None, False, [u("X"), a("Y"), u("Z")]),
        id="own-history-on-an-empty-chat",
    ),
    pytest.param(
        [u("A"), a(REFUSAL)],
        [u("A"), SDK_REFUSAL, u("C")],
        (None, 11, False, [u("C")]),
        id="openai-sdk-resends-a-refusal",
    ),
    pytest.param(
        AB,
        [u("A"), a(None, refusal="no"), u("C")],
        (None, 10, True, [a("no"), u("C")]),
        id="a-new-refusal-is-stored-as-its-text",
    ),
    pytest.param(
        AB,
        [u("C"), u("are you there?")],
        (None, None, False, [u("C"), u("are you there?")]),
        id="user-messages-only-matching-nothing-go-at-the-leaf",
    ),
    pytest.param(
        [u("write"), a("part 1"), u("continue"), a("part 2")],
        [u("write"), a("part 1"), u("continue"), a("part 2"), u("continue")],
        (None, 13, False, [u("continue")]),
        id="repeated-user-message-is-appended",
    ),
    pytest.param(
        [u("hi"), a("hello"), u("q"), a("r"), u("hi"), a("hello"), u("q2"), a("r2")],
        [u("hi"), a("hello"), u("q3")],
        (None, 11, True, [u("q3")]),
        id="edit-that-fits-twice-goes-to-the-earliest",
    ),
    pytest.param(
        [u("hi"), a("hello"), u("q"), a("r"), u("hi"), a("hello")],
        [u("hi"), a("hello"), u("q"), a("r2"), u("z")],
        (None, 12, True, [a("r2"), u("z")]),
        id="opening-exchange-repeated-at-the-end-is-no-append",
    ),
]


@pytest.mark.parametrize(("path", "sent", "expected"), PLACEMENTS)
def test_request_is_placed(path: list[Sent], sent: list[Sent], expected: tuple[Any, ...]) -> None:
    assert placed(stored(*path), sent) == expected


def test_cut_path_that_cannot_decide_asks_for_the_whole_path() -> None:
    whole = stored(u("0"), a("1"), *ABCD)
    window = whole[-window_for([u("A"), a("B"), u("C2")]) :]
    assert window[0].parent is not None
    assert placed(window, [u("A"), a("B"), u("C2")]) is None
    assert placed(whole, [u("A"), a("B"), u("C2")]) == (None, 13, True, [u("C2")])
    assert placed(window, [u("C"), a("D"), u("E")]) == (None, 15, False, [u("E")])


def test_a_chat_that_differs_from_a_cut_path_asks_for_the_whole_path() -> None:
    window = stored(u("0"), a("1"), *AB, first_id=38, parent=37)
    assert placed(window, [u("X"), a("Y"), u("Z")]) is None


def test_a_path_shorter_than_the_window_is_the_whole_path() -> None:
    """The store returns fewer messages than the window asks for only when the path has no
    more: one whose oldest messages were dropped decides without being read again."""
    path = stored(u("0"), a("1"), *AB)[2:]
    assert path[0].parent is not None
    assert placed(path, XYZ) == (None, ROOT, True, XYZ)


# --- a path whose oldest messages were dropped (MAX_CHAT_MESSAGES) ------------------------------

ABCDEF = [*ABCD, u("E"), a("F")]  # stored with the first two dropped: C 12, D 13, E 14, F 15
TOOL_TURN = [QUESTION, CALLS, *RESULTS, ANSWER]  # ids 10-14

TRIMMED = [
    pytest.param(
        ABCDEF, 2, [*ABCDEF, u("G")], (None, 15, False, [u("G")]), id="whole-history-resent"
    ),
    pytest.param(
        ABCDEF,
        2,
        [s("be brief"), *ABCDEF, u("G")],
        ("be brief", 15, False, [u("G")]),
        id="whole-history-with-a-system-prompt",
    ),
    pytest.param(
        ABCDEF, 2, [u("E"), a("F"), u("G")], (None, 15, False, [u("G")]), id="cut-history"
    ),
    pytest.param(
        ABCDEF,
        2,
        [u("A2"), *ABCDEF[1:], u("G")],
        (None, 15, False, [u("G")]),
        id="a-dropped-message-is-not-compared",
    ),
    pytest.param(
        ABCDEF, 2, [*ABCD, u("E2")], (None, 13, True, [u("E2")]), id="edit-after-the-drop"
    ),
    pytest.param(
        ABCDEF,
        2,
        [*ABCDEF[:5], a("F2"), u("G")],
        (None, 14, True, [a("F2"), u("G")]),
        id="edit-of-an-assistant-reply",
    ),
    pytest.param(ABCDEF, 2, ABCDEF[:5], (None, 14, True, []), id="regenerate"),
    pytest.param(ABCDEF, 2, XYZ, (None, ROOT, True, XYZ), id="own-history-starts-a-new-path"),
    pytest.param(
        TOOL_TURN,
        3,  # the first result kept, the other dropped
        [QUESTION, SDK_CALLS, RESULTS[1], RESULTS[0], SDK_ANSWER, u("thanks")],
        (None, 14, False, [u("thanks")]),
        id="dropped-inside-a-run-of-results",
    ),
    pytest.param(
        TOOL_TURN,
        2,
        [QUESTION, LANGCHAIN_CALLS, *RESULTS, ANSWER, u("thanks")],
        (None, 14, False, [u("thanks")]),
        id="dropped-the-calls",
    ),
    pytest.param(
        [u("hi"), a("hello"), u("hi"), a("hello"), u("q"), a("r")],
        2,
        [u("hi"), a("hello"), u("hi"), a("hello"), u("z")],
        (None, 13, True, [u("z")]),
        id="an-agreement-after-the-dropped-part-wins-a-tie",
    ),
]


@pytest.mark.parametrize(("conversation", "dropped", "sent", "expected"), TRIMMED)
def test_request_is_placed_on_a_path_whose_start_was_dropped(
    conversation: list[Sent], dropped: int, sent: list[Sent], expected: tuple[Any, ...]
) -> None:
    path = stored(*conversation)[dropped:]
    assert placed(path, sent, whole=True) == expected
    # A window as long as the path may be all of it, or not: it asks for the path if need be.
    assert placed(path, sent) in ((None, expected) if len(path) >= len(sent) + 1 else (expected,))


def test_a_window_of_a_dropped_path_asks_for_it_whole_when_it_cannot_decide() -> None:
    conversation = [m for n in range(6) for m in (u(f"q{n}"), a(f"r{n}"))]
    path = stored(*conversation)[2:]  # q1 is 12
    sent = [*conversation[:4], u("q2 edited")]
    assert placed(window(path, sent), sent) is None
    assert placed(path, sent, whole=True) == (None, 13, True, [u("q2 edited")])
    resend = [*conversation, u("q6")]
    assert placed(window(path, resend), resend) == (None, 21, False, [u("q6")])


# --- a conversation's history without the model's messages (the AI SDK's, `elided`) ----------

TOOL_CHAT = [*AB, *TOOL_TURN]  # A 10, B 11, the question 12, its calls 13, results 14-15, 16
ELIDED = [
    pytest.param(ABCD, [u("A"), u("C"), u("E")], (None, 13, False, [u("E")]), id="resent-then-new"),
    pytest.param(
        ABCD,
        [s("be brief"), u([{"type": "text", "text": "A"}]), u("C"), u("E")],
        ("be brief", 13, False, [u("E")]),
        id="system-prompt-and-text-parts",
    ),
    pytest.param(ABCD, [u("C"), u("E")], (None, 13, False, [u("E")]), id="cut-history"),
    pytest.param(ABCD, [u("A"), u("C2")], (None, 11, True, [u("C2")]), id="an-edit-branches"),
    pytest.param(ABCD, [u("A"), u("C")], (None, 12, True, []), id="a-regeneration"),
    pytest.param(ABCD, [u("C")], (None, None, False, [u("C")]), id="one-message-is-new"),
    pytest.param(
        ABCD, [u("X"), u("Y")], (None, None, False, [u("X"), u("Y")]), id="nothing-matches"
    ),
    pytest.param(
        TOOL_CHAT[:4], [u("A"), QUESTION, *RESULTS], (None, 13, False, RESULTS), id="results"
    ),
    pytest.param(
        TOOL_CHAT[:4], [QUESTION, *RESULTS], (None, 13, False, RESULTS), id="a-steps-results"
    ),
    pytest.param(
        TOOL_CHAT,
        [u("A"), QUESTION, *RESULTS[::-1], u("E")],
        (None, 16, False, [u("E")]),
        id="results-resent",
    ),
]


@pytest.mark.parametrize(("path", "sent", "expected"), ELIDED)
def test_history_without_the_models_messages_is_matched_with_the_others(
    path: list[Sent], sent: list[Sent], expected: tuple[Any, ...]
) -> None:
    result = place_request(stored(*path), sent, anchored=True, elided=True)
    assert result is not None
    assert (result.system, result.parent, result.branch) == expected[:3]
    assert [m.for_upstream() for m in result.new] == expected[3]


def test_history_without_the_models_messages_is_a_branch_unless_elided() -> None:
    assert placed(stored(*ABCD), [u("A"), u("C"), u("E")]) == (None, 10, True, [u("C"), u("E")])


def test_a_window_too_short_for_an_elided_history_asks_for_the_whole_path() -> None:
    conversation = [m for n in range(6) for m in (u(f"q{n}"), a(f"r{n}"))]
    path = stored(*conversation)
    sent = [u("q0"), u("q1"), u("q2 edited")]
    assert window_for(sent, True) == 7
    assert place_request(path[-7:], sent, anchored=True, elided=True) is None
    result = place_request(path, sent, anchored=True, elided=True, whole=True)
    assert result is not None
    assert (result.parent, result.branch) == (13, True)


def around(message: Sent) -> list[Sent]:
    """A conversation that holds `message` in the middle, ending in an assistant reply."""
    if message["role"] == "assistant" and message.get("tool_calls"):
        return [u("Q"), message, *[t(c["id"]) for c in message["tool_calls"]], a("S")]
    if message["role"] == "assistant":
        return [u("Q"), message, u("T"), a("S")]
    if message["role"] == "tool":
        return [u("Q"), a(None, call(message["tool_call_id"])), message, a("S")]
    return [u("Q"), a("R"), message, a("S")]


PARTS = [{"type": "text", "text": "hi"}]
IMAGE = {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
SAME = [
    pytest.param(u("hi"), u(PARTS), id="string-as-one-text-part"),
    pytest.param(u(PARTS), u("hi"), id="one-text-part-as-string"),
    pytest.param(u("hi\n"), u("  hi"), id="surrounding-whitespace"),
    pytest.param(
        u(PARTS), u([{**PARTS[0], "cache_control": {"type": "ephemeral"}}]), id="cache-control"
    ),
    pytest.param(
        u([PARTS[0], IMAGE]),
        u([PARTS[0], {"type": "image_url", "image_url": {**IMAGE["image_url"], "detail": "auto"}}]),
        id="image-detail-auto",
    ),
    pytest.param(
        u([PARTS[0], IMAGE]),
        u([PARTS[0], {"type": "image_url", "image_url": "https://example.com/a.png"}]),
        id="image-url-as-string",
    ),
    pytest.param(u("hi", name="ann"), u("hi"), id="name-not-compared"),
    pytest.param(a(None, call("c1")), a("", call("c1")), id="null-content-as-empty"),
    pytest.param(
        a(None, call("c1")),
        {k: v for k, v in a(None, call("c1")).items() if k != "content"},
        id="missing-content",
    ),
    pytest.param(a("", call("c1")), a(None, call("c1")), id="empty-content-as-null"),
    pytest.param(
        a(None, call("c1", arguments='{"city":"Z\\u00fcrich","days":2}')),
        a(None, call("c1", arguments='{"days": 2, "city": "Zürich"}')),
        id="arguments-as-json-values",
    ),
    pytest.param(
        a(None, call("c1", arguments={"city": "Paris"})),
        a(None, call("c1")),
        id="stored-arguments-not-as-text",  # as an import may have stored them
    ),
    pytest.param(
        a(None, call("c1")),
        a(None, {k: v for k, v in call("c1").items() if k != "type"}),
        id="call-type-function-by-default",
    ),
    pytest.param(a("hello"), a([{"type": "text", "text": "hello"}]), id="assistant-text-part"),
    pytest.param(
        a("hello"), a("hello", refusal=None, annotations=[], audio=None), id="sdk-extra-fields"
    ),
    pytest.param(a(REFUSAL), a(None, refusal=REFUSAL), id="null-content-as-its-refusal"),
    pytest.param(a("sure"), a("sure", refusal="no"), id="refusal-beside-content-not-compared"),
    pytest.param(a(REFUSAL), a("", refusal=REFUSAL), id="empty-content-as-its-refusal"),
    pytest.param(
        a(REFUSAL), a([{"type": "refusal", "refusal": REFUSAL}]), id="refusal-part-as-text"
    ),
    pytest.param(t("c1", "sunny"), t("c1", [{"type": "text", "text": "sunny"}]), id="tool-parts"),
    pytest.param(s("in French"), s("in French", "developer"), id="developer-as-system"),
]


@pytest.mark.parametrize(("kept", "resent"), SAME)
def test_resent_message_matches_its_stored_form(kept: Sent, resent: Sent) -> None:
    path = stored(*around(kept))
    sent = [*around(resent), u("next")]
    assert placed(path, sent) == (None, path[-1].id, False, [u("next")])


DIFFERENT = [
    pytest.param(u("hi"), u("hi!"), id="text"),
    pytest.param(u(PARTS), u([*PARTS, *PARTS]), id="two-text-parts"),
    pytest.param(
        u([PARTS[0], IMAGE]),
        u([PARTS[0], {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}}]),
        id="image",
    ),
    pytest.param(
        a(None, call("c1")), a(None, call("c1", arguments='{"city":"Rome"}')), id="arguments"
    ),
    pytest.param(a(None, call("c1")), a(None, call("c1", name="time")), id="tool-name"),
    pytest.param(a("hello"), a("hello", call("c1")), id="added-tool-call"),
    pytest.param(t("c1", "sunny"), t("c1", "rain"), id="tool-result"),
]


@pytest.mark.parametrize(("kept", "resent"), DIFFERENT)
def test_resent_message_that_differs_starts_a_branch(kept: Sent, resent: Sent) -> None:
    path = stored(*around(kept))
    history = around(resent)
    diverges = next(n for n, m in enumerate(history) if m != around(kept)[n])
    result = placed(path, [*history, u("next")])
    assert result == (None, path[diverges - 1].id, True, [*history[diverges:], u("next")])


def test_tool_results_in_another_order_match_their_run() -> None:
    path = stored(QUESTION, CALLS, *RESULTS, ANSWER)
    sent = [QUESTION, CALLS, RESULTS[1], RESULTS[0], ANSWER, u("thanks")]
    assert placed(path, sent) == (None, 14, False, [u("thanks")])


ERRORS = [
    pytest.param(AB, [{"role": "function", "content": "x"}], "messages[0].role", id="role"),
    pytest.param(
        AB,
        [u([PARTS[0], {"type": "video", "video": {}}])],
        "messages[0].content[1].type: 'video'",
        id="unknown-user-part",
    ),
    pytest.param(
        AB,
        [u("A"), a([IMAGE]), u("C")],
        "messages[1].content[0].type: 'image_url' is not a content part of assistant",
        id="image-in-an-assistant-message",
    ),
    pytest.param(AB, [u(["hi"])], "messages[0].content[0].type", id="part-not-an-object"),
    pytest.param(AB, [u([{"type": "text", "text": 3}])], "content[0].text", id="text-not-string"),
    pytest.param(AB, [u(None)], "messages[0].content", id="user-without-content"),
    pytest.param(AB, [u("  ")], "messages[0].content: the user message has", id="blank-user"),
    pytest.param(AB, [u(7)], "messages[0].content: must be", id="content-not-text"),
    pytest.param(AB, [u("hi", name=3)], "messages[0].name", id="name-not-string"),
    pytest.param(
        [QUESTION, CALLS],
        [{"role": "tool", "content": "sunny"}],
        "messages[0].tool_call_id: name the call",
        id="tool-without-tool-call-id",
    ),
    pytest.param(
        AB, [u("hi", tool_call_id="c1")], "messages[0].tool_call_id", id="user-with-call-id"
    ),
    pytest.param(
        AB, [u("hi", tool_calls=[call("c1")])], "messages[0].tool_calls", id="user-with-calls"
    ),
    pytest.param(
        AB,
        [u("A"), a(None, {"type": "function", "function": {"name": "f"}}), t("c1"), u("C")],
        "messages[1].tool_calls[0].id",
        id="call-without-id",
    ),
    pytest.param(
        AB,
        [u("A"), a(None, call("c1"), call("c1")), t("c1"), u("C")],
        "messages[1].tool_calls[1].id: 'c1' is used twice",
        id="call-id-twice",
    ),
    pytest.param(
        AB,
        [u("A"), a(None, {"id": "c1", "type": "search", "search": {}}), t("c1"), u("C")],
        "messages[1].tool_calls[0]: must be a function",
        id="unknown-call-type",
    ),
    pytest.param(
        AB,
        [u("A"), a(None, {"id": "c1", "type": "function", "function": {}}), t("c1"), u("C")],
        "messages[1].tool_calls[0].function.name",
        id="call-without-name",
    ),
    pytest.param(
        AB,
        [u("A"), a(None, call("c1", arguments={"city": "Paris"})), t("c1"), u("C")],
        "messages[1].tool_calls[0].function.arguments: must be a string",
        id="arguments-not-a-string",
    ),
    pytest.param(
        AB,
        [u("A"), a(None), u("C")],
        "messages[1]: the assistant message has no content, refusal or tool_calls",
        id="assistant-with-nothing",
    ),
    pytest.param(
        AB,
        [u("A"), {"role": "assistant", "refusal": None, "tool_calls": []}, u("C")],
        "messages[1]: the assistant message has no content",
        id="assistant-with-no-content-field-and-no-calls",
    ),
    pytest.param(
        AB, [u("A"), a([]), u("C")], "messages[1]: the assistant message", id="assistant-no-parts"
    ),
    pytest.param(
        AB, [u("A"), a(None, refusal=3), u("C")], "messages[1].refusal", id="refusal-not-string"
    ),
    pytest.param(
        AB, [u("A"), a("B")], "messages[1]: the last message must be", id="ends-with-assistant"
    ),
    pytest.param(AB, [s("be brief")], "messages[0]: the last message must be", id="only-system"),
    pytest.param(AB, [], "messages: the last message must be", id="no-messages"),
    pytest.param(
        [QUESTION, CALLS],
        [t("call_1"), t("call_9")],
        "messages[1].tool_call_id: 'call_9' answers no pending tool call",
        id="result-for-an-unknown-call",
    ),
    pytest.param(
        [QUESTION, CALLS],
        [t("call_1"), t("call_1")],
        "messages[1].tool_call_id: 'call_1' is answered twice",
        id="result-twice",
    ),
    pytest.param(
        [QUESTION, CALLS],
        [t("call_1")],
        "messages: no result for 'call_2' (made in the chat's message 11)",
        id="result-missing-at-the-end",
    ),
    pytest.param(
        [QUESTION, CALLS],
        [t("call_2"), u("and?")],
        "messages[1]: no result yet for 'call_1' (made in the chat's message 11)",
        id="user-message-before-all-results",
    ),
    pytest.param(
        [QUESTION, CALLS],
        [u("never mind")],
        "messages[0]: no result yet for 'call_1' (made in the chat's message 11), 'call_2'",
        id="new-user-while-calls-wait",
    ),
    pytest.param(AB, [t("call_1")], "'call_1' answers no pending tool call", id="no-calls"),
    pytest.param(
        AB,
        [u("A"), a("B"), t("call_1"), u("C")],
        "messages[2].tool_call_id: 'call_1' answers no pending tool call",
        id="history-with-a-result-no-message-asked-for",
    ),
    pytest.param(
        AB,
        [u("A"), a("B"), u("C"), a(None, call("c7")), u("D")],
        "messages[4]: no result yet for 'c7' (made in messages[3])",
        id="history-with-calls-and-no-results",
    ),
    pytest.param(
        [],
        [u("X"), a(None, call("c7")), t("c8"), u("Z")],
        "messages[2].tool_call_id: 'c8' answers no pending tool call",
        id="own-history-contradicts-itself",
    ),
]


@pytest.mark.parametrize(("path", "sent", "message"), ERRORS)
def test_bad_request_is_refused_with_where(
    path: list[Sent], sent: list[Sent], message: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        place_request(stored(*path), sent)
    assert message in caught.value.message
    assert caught.value.status == 400
    assert caught.value.param == caught.value.message.split(": ", 1)[0]  # the field at fault


def test_error_messages_never_repeat_message_text() -> None:
    secret = "my password is hunter2"
    for sent in ([u(secret), a(secret)], [u(secret), a(None, call("c1")), u(secret)]):
        with pytest.raises(ValidationFailed) as caught:
            place_request(stored(u(secret), a(secret)), sent)
        assert "hunter2" not in caught.value.message


LIMIT = 10  # MAX_CONTENT_CHARS for the length tables below
LONG = "x" * (LIMIT + 1)
BRIEF = s("be brief")
LONG_CALL = a(None, call("c1", arguments=json.dumps({"city": LONG})))

# An over-long message in each place, and the step that refuses it: the ask, when it is made
# (before the turn's claim and lock), holds the system prompt and messages that are only new;
# the placement, which alone can tell them (under the lock), a resent history's new messages.
OVER_LONG = [
    pytest.param(AB, [u(LONG)], "ask", "messages[0]", id="only-new"),
    pytest.param(AB, [BRIEF, u(LONG)], "ask", "messages[1]", id="only-new-after-a-system-prompt"),
    pytest.param(AB, [s(LONG), u("C")], "ask", "messages[0]", id="system-of-a-new-message"),
    pytest.param(
        [QUESTION, CALLS], [t("call_1", LONG), t("call_2")], "ask", "messages[0]", id="results"
    ),
    pytest.param(AB, [s(LONG), *AB, u("C")], "ask", "messages[0]", id="system-of-a-history"),
    pytest.param(AB, [BRIEF, *AB, u(LONG)], "placement", "messages[3]", id="appended"),
    pytest.param(AB, [u("A"), a(LONG), u("C")], "placement", "messages[1]", id="edited-reply"),
    pytest.param([], [u("X"), a("Y"), u(LONG)], "placement", "messages[2]", id="own-history"),
    pytest.param(
        AB,
        [BRIEF, u("A"), LONG_CALL, t("c1"), u("C")],
        "placement",
        "messages[2].tool_calls[0].function.arguments",
        id="client-tool-call",
    ),
]


def refusal(path: list[Sent], sent: list[Sent]) -> tuple[str, ValidationFailed]:
    """Which step of a turn refuses `sent` on `path` (`ask`: making the turn's ask; `placement`:
    placing it, given what the ask checked), and how."""
    try:
        ask = Ask(None, None, tuple(sent), max_chars=LIMIT)
    except ValidationFailed as exc:
        return "ask", exc
    with pytest.raises(ValidationFailed) as caught:
        place_request(stored(*path), sent, max_chars=LIMIT, checked=ask.checked)
    return "placement", caught.value


@pytest.mark.parametrize(("path", "sent", "step", "param"), OVER_LONG)
def test_an_over_long_message_is_refused_as_checking_every_message_refuses_it(
    path: list[Sent], sent: list[Sent], step: str, param: str
) -> None:
    """Whether the ask held it (and the placement skips it) or the placement did, an over-long
    message is refused with the error that the placement gives when it checks every message."""
    with pytest.raises(ValidationFailed) as whole:
        place_request(stored(*path), sent, max_chars=LIMIT)

    refused_by, refused = refusal(path, sent)

    assert refused_by == step
    assert (refused.message, refused.param) == (whole.value.message, whole.value.param)
    assert refused.message == f"{param}: at most {LIMIT} characters (MAX_CONTENT_CHARS)"


@pytest.mark.parametrize(
    ("sent", "max_chars", "checked"),
    [
        ([u("hi")], LIMIT, 1),
        ([BRIEF, u("hi")], LIMIT, 2),
        (RESULTS, LIMIT, 2),
        ([BRIEF, *AB, u("C")], LIMIT, 1),  # a history: its system prompt only
        ([*AB, u("C")], LIMIT, 0),
        ([u("hi")], None, 0),  # no limit: the placement checks it all
    ],
)
def test_an_ask_says_how_many_of_its_leading_messages_it_checked(
    sent: list[Sent], max_chars: int | None, checked: int
) -> None:
    assert Ask(None, None, tuple(sent), max_chars=max_chars).checked == checked


# --- properties -----------------------------------------------------------------------------


@st.composite
def conversations(draw: st.DrawFn, words: Sequence[str] = ()) -> list[Sent]:
    """A conversation as the store would hold it: turns of a user message, maybe a round of
    parallel tool calls and their results, and an answer. Texts are unique unless `words`
    are given to draw them from (then they repeat, as real chats' "ok"s and "continue"s do)."""
    messages: list[Sent] = []
    for n in range(draw(st.integers(1, 5))):
        text = draw(st.sampled_from(words)) if words else f"question {n}"
        messages.append(u(text))
        ids = [f"call_{n}_{i}" for i in range(draw(st.integers(0, 3)))]
        if ids:
            arguments = [json.dumps({"n": c}, separators=(",", ":")) for c in ids]
            messages.append(a(None, *map(call, ids, ["lookup"] * len(ids), arguments)))
            messages.extend(t(c, f"result {c}") for c in ids)
        messages.append(a(draw(st.sampled_from(words)) if words else f"answer {n}"))
    return messages


def window(path: list[Message], sent: Sequence[Sent]) -> list[Message]:
    """The newest messages of the path, as the caller loads them first."""
    return path[-window_for(sent) :]


def outcome(path: list[Message], sent: Sequence[Sent]) -> Any:
    try:
        return placed(path, sent)
    except ValidationFailed as exc:
        return ("refused", exc.message)


@given(conversations(), st.data())
def test_resending_any_cut_of_the_path_appends_only_the_new_message(
    conversation: list[Sent], data: st.DataObject
) -> None:
    path = stored(*conversation)
    cut = data.draw(st.integers(0, len(path)), label="cut")
    sent = [*conversation[cut:], u("a new question")]
    leaf = path[-1].id if cut < len(path) else None  # nothing resent: the current leaf
    expected = (None, leaf, False, [u("a new question")])
    assert placed(window(path, sent), sent) == expected
    assert placed(path, sent) == expected


@given(conversations(), st.data())
def test_resending_a_prefix_with_another_user_message_branches_there(
    conversation: list[Sent], data: st.DataObject
) -> None:
    users = [n for n, m in enumerate(conversation) if m["role"] == "user" and n > 0]
    assume(users)
    at = data.draw(st.sampled_from(users), label="edited message")
    path = stored(*conversation)
    sent = [*conversation[:at], u("an edited question")]
    expected = (None, path[at - 1].id, True, [u("an edited question")])
    assert placed(window(path, sent), sent) in (None, expected)
    assert placed(path, sent) == expected


@given(conversations(words=("hi", "ok", "continue")), st.data())
def test_a_window_decides_as_the_whole_path_or_asks_for_it(
    conversation: list[Sent], data: st.DataObject
) -> None:
    path = stored(*conversation)
    start = data.draw(st.integers(0, len(conversation)), label="start")
    end = data.draw(st.integers(start, len(conversation)), label="end")
    sent = conversation[start:end]
    if sent and data.draw(st.booleans(), label="edit one"):
        n = data.draw(st.integers(0, len(sent) - 1), label="edited")
        if sent[n]["role"] in ("user", "assistant") and not sent[n].get("tool_calls"):
            sent[n] = {**sent[n], "content": data.draw(st.sampled_from(["hi", "ok", "new"]))}
    sent.append(u(data.draw(st.sampled_from(["hi", "ok", "continue", "new"]), label="last")))
    assert outcome(window(path, sent), sent) in (None, outcome(path, sent))


def resend(message: Sent, form: int) -> Sent:
    """A message as one of the clients sends it back: 0 as stored, 1 LangChain, 2 the AI SDK."""
    if form == 2 and message["role"] == "user":
        return u([{"type": "text", "text": message["content"]}])
    if form == 0 or not message.get("tool_calls"):
        return message
    calls = [
        {
            **c,
            "function": {
                **c["function"],
                "arguments": json.dumps(json.loads(c["function"]["arguments"])),
            },
        }
        for c in message["tool_calls"]
    ]
    return a(None if form == 1 else "", *calls)


@given(
    st.one_of(conversations(), conversations(words=("hi", "ok", "continue"))),
    st.sampled_from([0, 1, 2]),
    st.one_of(st.none(), st.integers(1, 6)),
)
def test_whole_history_client_stores_each_message_once(
    conversation: list[Sent], form: int, limit: int | None
) -> None:
    """Replay a conversation as a client that resends everything: each request holds the
    history and the next user message or tool results; the model answers with the next
    assistant message. What is stored is the conversation, once; on a chat that keeps only its
    `limit` newest messages (read as the service does: the window, then the whole path if
    asked), the conversation's newest messages."""
    path: list[Message] = []
    done = next_id = 0
    while done < len(conversation):
        answer = next(
            n for n in range(done, len(conversation)) if conversation[n]["role"] == "assistant"
        )
        sent = [resend(m, form) for m in conversation[:done]] + conversation[done:answer]
        result = place_request(window(path, sent), sent)
        if limit is not None:  # a window that cannot decide asks for the whole path
            result = result or place_request(path, sent, whole=True)
        assert result is not None
        assert result.branch is False
        assert result.parent in (None, path[-1].id if path else None)
        reply = Message(
            role="assistant",
            content=conversation[answer]["content"],
            tool_calls=conversation[answer].get("tool_calls"),
        )
        turn = chained([*result.new, reply], next_id, path[-1].id if path else None)
        path, next_id = [*path, *turn][-(limit or len(conversation)) :], next_id + len(turn)
        done = answer + 1
    assert [m.for_upstream() for m in path] == conversation[-(limit or len(conversation)) :]


@given(st.one_of(conversations(), conversations(words=("hi", "ok", "continue"))), st.data())
def test_conversation_client_without_the_models_messages_stores_each_message_once(
    conversation: list[Sent], data: st.DataObject
) -> None:
    """Replay a conversation as the AI SDK does with a conversation, its messages resent: each
    request holds the user's messages and the tools' results so far, then the next user message
    or results; the model answers with the next assistant message. What is stored is the
    conversation, once, placed in the window the turn reads first."""
    path: list[Message] = []
    done = 0
    while done < len(conversation):
        answer = next(
            n for n in range(done, len(conversation)) if conversation[n]["role"] == "assistant"
        )
        form = data.draw(st.sampled_from([0, 2]), label="form")
        theirs = [resend(m, form) for m in conversation[:done] if m["role"] != "assistant"]
        sent = [*theirs, *conversation[done:answer]]
        result = place_request(path[-window_for(sent, True) :], sent, anchored=True, elided=True)
        leaf = path[-1].id if path else None
        assert result is not None
        assert result.parent in (None, leaf)
        assert result.branch is False
        said = conversation[answer]
        reply = Message("assistant", said["content"], tool_calls=said.get("tool_calls"))
        path, done = [*path, *chained([*result.new, reply], len(path), leaf)], answer + 1
    assert [m.for_upstream() for m in path] == conversation


@given(st.one_of(conversations(), conversations(words=("hi", "ok", "continue"))), st.data())
def test_resending_a_history_whose_start_was_dropped_appends_only_the_new_message(
    conversation: list[Sent], data: st.DataObject
) -> None:
    assume(len(conversation) > 1)
    dropped = data.draw(st.integers(1, len(conversation) - 1), label="dropped")
    path = stored(*conversation)[dropped:]
    cut = data.draw(st.integers(0, len(conversation) - 1), label="resent from")
    sent = [*conversation[cut:], u("a new question")]
    expected = (None, path[-1].id, False, [u("a new question")])
    assert placed(path, sent, whole=True) == expected
    assert placed(window(path, sent), sent) in (None, expected)


@given(conversations(words=("hi", "ok", "continue")), st.data())
def test_plain_comparison_places_a_resend_as_alignment_does(
    conversation: list[Sent], data: st.DataObject
) -> None:
    path = stored(*conversation)
    start = data.draw(st.integers(0, len(conversation) - 1), label="start")
    convo = [*conversation[start:], u(data.draw(st.sampled_from(["hi", "ok", "new"])))]
    at = placement._resent_as_stored(path, convo)
    assert at == len(convo) - 1
    for seen in (path, window(path, convo)):
        assert alignment.align(seen, convo, False, False) == (path[-1].id, len(seen), False, at)


# --- cost -------------------------------------------------------------------------------------


def as_parts(message: Sent) -> Sent:
    return {**message, "content": [{"type": "text", "text": message["content"]}]}


@pytest.mark.parametrize(
    ("form", "keys"),
    [
        pytest.param(lambda m: m, lambda path, sent: 0, id="as-stored-compared-plainly"),
        pytest.param(as_parts, lambda path, sent: len(path) + len(sent), id="normalised-once"),
    ],
)
def test_long_resent_history_reads_each_message_at_most_once(
    monkeypatch: pytest.MonkeyPatch, form: Any, keys: Any
) -> None:
    conversation = [m for n in range(100) for m in (u("continue"), a(f"part {n}"))]
    path = stored(*conversation)
    sent = [*map(form, conversation), u("continue")]
    made = []
    key = alignment.message_key
    monkeypatch.setattr(alignment, "message_key", lambda *args: made.append(1) or key(*args))
    assert placed(window(path, sent), sent) == (None, path[-1].id, False, [u("continue")])
    assert len(made) == keys(path, sent)


class Counted:
    """A unit code that counts how often it is compared."""

    comparisons = 0

    def __init__(self, code: int) -> None:
        self.code = code

    def __eq__(self, other: object) -> bool:
        Counted.comparisons += 1
        return self.code == (other.code if isinstance(other, Counted) else other)

    __hash__ = None


def test_alignment_compares_a_bounded_number_of_times_on_repetitive_chats() -> None:
    Counted.comparisons = 0
    pattern, text = [Counted(1)] * 1000, [Counted(1)] * 2000
    lengths = alignment.prefix_lengths(pattern, text)
    assert lengths[:3] == [1000, 1000, 1000]
    assert lengths[-3:] == [3, 2, 1]
    assert Counted.comparisons <= 2 * (len(pattern) + len(text) + 1)


@given(st.lists(st.integers(0, 2), max_size=30), st.lists(st.integers(0, 2), max_size=30))
def test_alignment_lengths_agree_with_a_plain_count(pattern: list[int], text: list[int]) -> None:
    def plain(at: int) -> int:
        n = 0
        while n < len(pattern) and at + n < len(text) and pattern[n] == text[at + n]:
            n += 1
        return n

    assert alignment.prefix_lengths(pattern, text) == [plain(i) for i in range(len(text))]

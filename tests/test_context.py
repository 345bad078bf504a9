"""What goes upstream fits CONTEXT_TOKENS: system kept, newest messages kept, exact counts."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from chatproxy.config import RedisSettings
from chatproxy.errors import ContextLengthExceeded
from chatproxy.service.window import fit_window, message_tokens
from chatproxy.store.base import Store
from chatproxy.store.items import ChatRef, Message
from chatproxy.store.redis import RedisStore
from chatproxy.store.sqlite import SqliteStore
from chatproxy.tokens import estimate_tokens, estimate_usage
from harness.fake_upstream import FakeUpstream
from tests.conftest import MakeClient
from tests.event_loop import run_on_own_loop


def reply(text: str, completion_tokens: int) -> Message:
    usage = {"prompt_tokens": 1, "completion_tokens": completion_tokens, "total_tokens": 1}
    return Message("assistant", text, usage=usage)


def test_a_reply_counts_its_exact_tokens_other_messages_are_estimated() -> None:
    assert message_tokens(reply("ok", 120)) == 124
    assert message_tokens(Message("user", "x" * 40)) == 14


def image(detail: str | None = None) -> dict[str, Any]:
    url = {"url": "https://example.com/cat.png", **({"detail": detail} if detail else {})}
    return {"type": "image_url", "image_url": url}


def file(chars: int) -> dict[str, Any]:
    data = "data:application/pdf;base64," + "A" * (chars - 28)
    return {"type": "file", "file": {"file_data": data, "filename": "notes.pdf"}}


def audio(data_bytes: int, kind: str) -> dict[str, Any]:
    data = base64.b64encode(b"\0" * data_bytes).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": kind}}


@pytest.mark.parametrize(
    ("part", "tokens"),
    [
        pytest.param(image(), 1445, id="image-auto-as-high-at-its-largest"),
        pytest.param(image("high"), 1445, id="image-high"),
        pytest.param(image("low"), 85, id="image-low"),
        pytest.param(file(6000), 1500, id="file-data-as-text"),
        pytest.param({"type": "file", "file": {"file_id": "file-1"}}, 0, id="file-by-id"),
        pytest.param(audio(48_000, "wav"), 30, id="wav"),
        pytest.param(audio(48_000, "mp3"), 120, id="mp3"),
    ],
)
def test_a_part_that_is_not_text_counts_by_its_kind_and_size(
    part: dict[str, Any], tokens: int
) -> None:
    content = [{"type": "text", "text": "abcd"}, part]
    assert message_tokens(Message("user", content)) == 1 + tokens + 4
    usage = estimate_usage([{"role": "user", "content": content}], "ok")  # no usage upstream
    assert usage["prompt_tokens"] == 1 + tokens + 4


@pytest.mark.parametrize(
    "part",
    [
        pytest.param(image("high"), id="image"),
        pytest.param(file(6000), id="file"),
        pytest.param(audio(1300 * 400, "mp3"), id="audio"),
    ],
)
def test_a_file_image_or_audio_in_the_history_counts_against_the_window(
    make_client: MakeClient, fake_upstream: FakeUpstream, part: dict[str, Any]
) -> None:
    """A message with a large part is left out of a window it no longer fits beside the new
    message (counted as nothing, or as a small image, it went up and overflowed the model).
    MAX_CONTENT_CHARS lets the audio's data in: over half a million characters."""
    limits = {"CONTEXT_TOKENS": "2100", "MAX_TOKENS": "100", "MESSAGES_LENGTH": "20"}
    client = make_client(**limits, MAX_CONTENT_CHARS="1000000")
    content = [{"type": "text", "text": "Read this."}, part]
    first = client.post(
        "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": content}]},
        headers={"X-Chat-Id": "media"},
    )
    assert first.status_code == 200, first.get_json()

    said = client.post("/media/chat", data=json.dumps({"content": "And now? " + "y" * 3200}))

    assert said.status_code == 200, said.get_json()
    sent = fake_upstream.chat_requests()[-1]["messages"]
    # The reply fits beside the new message; the message with the part, before it, does not.
    assert [m["role"] for m in sent] == ["assistant", "user"]
    assert sent[-1]["content"].startswith("And now?")


def test_usage_estimated_when_the_upstream_gives_none_counts_a_file(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    """What a turn spends of TOKEN_BUDGET_PER_DAY when the upstream gives no usage."""
    fake_upstream.omit_usage = True
    client = make_client()
    content = [{"type": "text", "text": "Read this."}, file(6000)]

    answer = client.post(
        "/v1/chat/completions", json={"messages": [{"role": "user", "content": content}]}
    )

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["usage"]["prompt_tokens"] >= 1500


def call(arguments: str) -> dict[str, Any]:
    function = {"name": "lookup", "arguments": arguments}
    return {"id": "call_1", "type": "function", "function": function}


def test_a_messages_tool_calls_count_the_same_in_the_window_and_in_an_estimated_usage() -> None:
    calls = [call(json.dumps({"query": "q" * 4000}))]
    asked = Message("assistant", None, tool_calls=calls)

    usage = estimate_usage([asked.for_upstream()], "ok")

    assert message_tokens(asked) > 1000
    assert usage["prompt_tokens"] == message_tokens(asked)


@pytest.mark.parametrize("chat", [{"X-Chat-Id": "calls"}, {}], ids=["chat", "pass-through"])
def test_usage_estimated_when_the_upstream_gives_none_counts_the_tool_calls_sent(
    make_client: MakeClient, fake_upstream: FakeUpstream, chat: dict[str, str]
) -> None:
    """What a turn spends of TOKEN_BUDGET_PER_DAY for a history whose calls carry much."""
    fake_upstream.omit_usage = True
    client = make_client()
    messages = [
        {"role": "user", "content": "Look it up."},
        {"role": "assistant", "content": None, "tool_calls": [call("q" * 4000)]},
        {"role": "tool", "tool_call_id": "call_1", "content": "found"},
    ]

    answer = client.post("/v1/chat/completions", json={"messages": messages}, headers=chat)

    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["usage"]["prompt_tokens"] > 1000


def test_newest_messages_that_fit_are_kept_in_order() -> None:
    history = [Message("user", "a" * 40), reply("b", 10), Message("user", "c" * 40), reply("d", 10)]
    new = Message("user", "new!")  # 1 + 4 tokens

    assert fit_window(None, history, new, budget=5 + 14 + 14) == history[2:]
    assert fit_window(None, history, new, budget=5 + 14 + 14 + 13) == history[2:]
    assert fit_window(None, history, new, budget=5 + 14 + 14 + 14) == history[1:]
    assert fit_window(None, history, new, budget=10_000) == history
    assert fit_window("s" * 400, history, new, budget=5 + 104 + 14) == history[3:]


def test_a_new_message_that_cannot_fit_is_refused_as_too_long_a_context() -> None:
    with pytest.raises(ContextLengthExceeded, match="CONTEXT_TOKENS"):
        fit_window("system " * 100, [], Message("user", "x" * 400), budget=100)


SeedTurns = Callable[[ChatRef, list[list[Message]]], None]


@pytest.fixture
def seed_turns(store_kind: str, proxy_env: dict[str, str]) -> SeedTurns:
    """Save turns into the same database as the app under test, as another process would."""

    def seed(chat: ChatRef, turns: list[list[Message]]) -> None:
        async def save_all() -> None:
            store: Store
            if store_kind == "redis":
                settings = RedisSettings(proxy_env["REDIS_URL"], False, 2.0)
                store = RedisStore.from_settings(settings, 3600)
            else:
                store = SqliteStore(proxy_env["STORE_PATH"], 3600)
            try:
                for n, turn in enumerate(turns):
                    await store.save_turn(chat, f"t{n}", turn)
            finally:
                await store.close()

        run_on_own_loop(save_all())

    return seed


def test_a_2000_turn_chat_sends_only_what_fits_and_keeps_everything(
    make_client: MakeClient, fake_upstream: FakeUpstream, seed_turns: SeedTurns
) -> None:
    chat = ChatRef("public", "long")
    # Short replies that cost many tokens: only the exact count keeps the call in budget.
    question = "question {} " + "x" * 30
    seed_turns(
        chat, [[Message("user", question.format(n)), reply(f"answer {n}", 50)] for n in range(2000)]
    )
    client = make_client(
        CONTEXT_TOKENS="3000", MAX_TOKENS="500", MESSAGES_LENGTH="10000", SYSTEM_PROMPT="Be kind."
    )

    response = client.post("/long/chat", data=json.dumps({"content": "and now?"}))

    assert response.status_code == 200
    sent = fake_upstream.chat_requests()[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "Be kind."}
    assert sent[-1] == {"role": "user", "content": "and now?"}
    history = sent[1:-1]
    assert history[-1]["content"] == "answer 1999"  # the newest are kept, contiguous
    first = int(str(history[0]["content"]).split()[1])
    expected = [c for n in range(first, 2000) for c in (f"question {n} " + "x" * 30, f"answer {n}")]
    expected = expected[len(expected) - len(history) :]
    assert [m["content"] for m in history] == expected
    cost = sum(
        54 if m["role"] == "assistant" else estimate_tokens(str(m["content"])) + 4 for m in history
    )
    assert cost + estimate_tokens("Be kind.") + 4 + estimate_tokens("and now?") + 4 <= 2500
    assert cost > 2500 - 100  # and the budget is used, not wasted
    assert len(client.get("/long/chat").get_json()) == 1 + 4002  # the full history is kept


def test_a_tool_call_a_client_sent_counts_its_arguments_against_the_window(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(CONTEXT_TOKENS="2000", MAX_TOKENS="100", MESSAGES_LENGTH="20")
    call = {"id": "call_1", "type": "function", "function": {"name": "save", "arguments": ""}}
    call["function"]["arguments"] = json.dumps({"text": "x" * 6000})  # about 1500 tokens
    messages = [
        {"role": "user", "content": "Save my notes."},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "saved"},
        {"role": "user", "content": "Thanks."},
    ]
    first = client.post(
        "/v1/chat/completions", json={"messages": messages}, headers={"X-Chat-Id": "t"}
    )
    assert first.status_code == 200, first.get_json()

    said = client.post("/t/chat", data=json.dumps({"content": "And now? " + "y" * 2000}))

    assert said.status_code == 200, said.get_json()
    sent = fake_upstream.chat_requests()[-1]["messages"]
    tokens = sum(estimate_tokens(json.dumps(m)) for m in sent)  # arguments are text sent too
    assert tokens <= 1900, sent  # the call does not fit beside the new message
    assert all(not m.get("tool_calls") for m in sent)
    assert sent[0]["role"] != "tool"  # and its result is not sent without it

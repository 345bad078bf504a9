"""`POST /v1/responses` and `GET /v1/responses/{id}` with the official openai SDK, against the real
server process (the fake upstream, both stores): a response is the reply of a chat's turn, its
`previous_response_id` continues (or forks) that chat, a `conversation` is a chat id, and what
the proxy stored is read back through the chat API. Every answer is parsed by the SDK's own
types."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from openai.types.responses import Response

from harness.fake_upstream import FakeUpstream
from harness.server_process import StartServer
from tests.responses_client import (
    MODEL,
    SYSTEM,
    WEATHER,
    Proxy,
    chat_of,
    proxy,
    said,
    script_call,
    sent_upstream,
    start_proxy,
)

__all__ = ["proxy"]  # the fixture this module's tests use

LONG = "x" * 32_001  # one over MAX_CONTENT_CHARS' default


def test_a_string_input_starts_a_chat_and_its_response_is_found_again(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    response = proxy.client.responses.create(model=MODEL, input="Hi, I'm Ana.")

    assert isinstance(response, Response)
    assert response.status == "completed"
    assert response.output_text == said("Hi, I'm Ana.", 1)
    assert response.usage is not None
    assert response.usage.total_tokens > 0
    assert response.previous_response_id is None
    chat = chat_of(response)
    assert chat.startswith("chain-")
    assert response.id == f"resp_{chat}_1"
    assert response.output[0].id == f"msg_{chat}_1"
    assert sent_upstream(fake_upstream) == [("system", SYSTEM), ("user", "Hi, I'm Ana.")]
    # One chat, three APIs: the chain is a chat, listed and read as any other.
    assert proxy.chats() == [chat]
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", "Hi, I'm Ana."),
        ("assistant", response.output_text),
    ]
    found = proxy.client.responses.retrieve(response.id)
    assert found.model_dump() == response.model_dump()


def test_items_and_instructions_make_the_turns_messages_and_instructions_are_not_kept(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    first = proxy.client.responses.create(
        model=MODEL,
        instructions="Answer in French.",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
            {"type": "message", "role": "user", "content": "I'm Ana."},
        ],
        metadata={"topic": "greeting"},
        temperature=0.5,
    )
    second = proxy.client.responses.create(
        model=MODEL, input="And now?", previous_response_id=first.id
    )

    assert first.instructions == "Answer in French."
    assert first.metadata == {"topic": "greeting"}
    assert first.temperature == 0.5
    assert sent_upstream(fake_upstream) == [
        ("system", SYSTEM),  # the instructions were the first turn's only
        ("user", "Hi"),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "And now?"),
    ]
    assert fake_upstream.chat_requests()[0]["messages"][0] == {
        "role": "system",
        "content": "Answer in French.",
    }
    assert second.instructions is None
    assert second.metadata == {}
    assert proxy.path(chat_of(first))[0] == ("system", SYSTEM)
    assert proxy.client.responses.retrieve(first.id).model_dump() == first.model_dump()
    with pytest.raises(openai.BadRequestError) as streamed:  # events of no background response
        proxy.client.responses.retrieve(first.id, stream=True)
    assert streamed.value.param == "stream"  # type: ignore[attr-defined]


def test_previous_response_id_continues_its_chat_and_an_older_one_forks_it(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    client = proxy.client
    first = client.responses.create(model=MODEL, input="I'm Ana.")
    second = client.responses.create(model=MODEL, input="My name?", previous_response_id=first.id)
    fork = client.responses.create(model=MODEL, input="Bye", previous_response_id=first.id)

    chat = chat_of(first)
    assert (chat_of(second), chat_of(fork)) == (chat, chat)
    assert (second.id, fork.id) == (f"resp_{chat}_3", f"resp_{chat}_5")
    assert second.previous_response_id == first.id
    assert second.output_text == said("My name?", 3)  # it saw the history
    assert sent_upstream(fake_upstream) == [
        ("system", SYSTEM),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "Bye"),  # not the branch of `second`
    ]
    assert proxy.get(f"/{chat}/children?parent=1") == {"parent": 1, "children": [2, 4]}
    assert proxy.path(chat)[-2:] == [("user", "Bye"), ("assistant", fork.output_text)]
    assert proxy.chats() == [chat]


def user(text: str) -> dict[str, Any]:
    """A user message as the Vercel AI SDK sends it."""
    return {"role": "user", "content": [{"type": "input_text", "text": text}]}


@pytest.mark.parametrize("previous", [False, True], ids=["references", "and-previous"])
def test_a_resent_history_of_item_references_is_matched_not_stored_twice(
    proxy: Proxy, fake_upstream: FakeUpstream, previous: bool
) -> None:
    """The Vercel AI SDK's second turn: the first turn again, its reply by item reference (with
    or without previous_response_id), then the new message."""
    first = proxy.client.responses.create(model=MODEL, input=[user("I'm Ana.")])
    resent = [user("I'm Ana."), {"type": "item_reference", "id": first.output[0].id}]

    second = proxy.client.responses.create(
        model=MODEL,
        input=[*resent, user("My name?")],
        previous_response_id=first.id if previous else None,
    )

    chat = chat_of(first)
    assert chat_of(second) == chat
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "My name?"),
        ("assistant", second.output_text),
    ]
    assert sent_upstream(fake_upstream) == proxy.path(chat)[:-1]
    assert second.previous_response_id == (first.id if previous else None)


def test_output_items_sent_back_with_their_ids_continue_their_chat(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    """OpenAI's function calling guide: `input += response.output`, then each call's output,
    and the next request sends it all, without previous_response_id. The items the SDK sends
    back carry their ids (`fc_<chat>_…`, `msg_<chat>_…`), which name their chat: the turn goes
    on in it and what matches is not stored again, in a new chat per request."""
    history: list[Any] = [{"role": "user", "content": "Use get_weather for Paris."}]
    called = proxy.client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    history += called.output
    (call,) = called.output
    assert call.type == "function_call"
    history.append({"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"})

    answered = proxy.client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    history += [*answered.output, {"role": "user", "content": "Thanks"}]
    thanked = proxy.client.responses.create(model=MODEL, input=history, tools=[WEATHER])

    chat = chat_of(called)
    assert [chat_of(answered), chat_of(thanked)] == [chat, chat]
    assert proxy.chats() == [chat]
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", "Use get_weather for Paris."),
        ("assistant", None),
        ("tool", "Sunny"),
        ("assistant", answered.output_text),
        ("user", "Thanks"),
        ("assistant", thanked.output_text),
    ]
    assert sent_upstream(fake_upstream) == proxy.path(chat)[:-1]


def test_a_resent_history_below_the_leafs_path_is_matched_and_one_that_leaves_it_forks(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    """The chat's leaf lies below the reply a resent history names: what the history holds of
    the leaf's path is matched (the Vercel AI SDK's tool loop), and where it leaves that path
    it forks, as an older previous_response_id does."""
    first = proxy.client.responses.create(model=MODEL, input=[user("I'm Ana.")])
    resent = [user("I'm Ana."), {"type": "item_reference", "id": first.output[0].id}]
    second = proxy.client.responses.create(model=MODEL, input=[*resent, user("My name?")])

    again = proxy.client.responses.create(
        model=MODEL, input=[*resent, user("My name?")], previous_response_id=first.id
    )
    fork = proxy.client.responses.create(
        model=MODEL, input=[*resent, user("Bye")], previous_response_id=first.id
    )

    chat = chat_of(first)
    assert (second.id, again.id, fork.id) == tuple(f"resp_{chat}_{n}" for n in (3, 4, 6))
    assert proxy.get(f"/{chat}/children?parent=2") == {"parent": 2, "children": [3, 4]}
    assert proxy.get(f"/{chat}/children?parent=1") == {"parent": 1, "children": [2, 5]}
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "Bye"),
        ("assistant", fork.output_text),
    ]
    assert sent_upstream(fake_upstream) == proxy.path(chat)[:-1]


@pytest.mark.parametrize("anchor", ["previous_response_id", "conversation"])
def test_examples_of_its_own_go_where_a_response_names_not_on_a_new_path(
    proxy: Proxy, fake_upstream: FakeUpstream, anchor: str
) -> None:
    first = proxy.client.responses.create(model=MODEL, input="My name is Ana.")
    chat = chat_of(first)
    examples = [user("Translate: cat"), {"role": "assistant", "content": "chat"}]
    where: dict[str, Any] = {
        "previous_response_id": {"previous_response_id": first.id},
        "conversation": {"conversation": chat},
    }[anchor]

    made = proxy.client.responses.create(
        model=MODEL, input=[*examples, user("Translate: dog. And my name?")], **where
    )

    assert chat_of(made) == chat
    assert sent_upstream(fake_upstream) == [
        ("system", SYSTEM),
        ("user", "My name is Ana."),
        ("assistant", first.output_text),
        ("user", "Translate: cat"),
        ("assistant", "chat"),
        ("user", "Translate: dog. And my name?"),
    ]
    assert proxy.get(f"/{chat}/children?parent=1") == {"parent": 1, "children": [2]}
    first_messages = {"parent": None, "children": [0], "messages": 6}  # the two turns' six
    assert proxy.get(f"/{chat}/children") == first_messages


def test_a_conversation_is_a_chat_and_its_turn_goes_at_the_leaf(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    seeded = proxy.post("/ana-chat/chat", {"content": "I'm Ana."})

    response = proxy.client.responses.create(model=MODEL, input="My name?", conversation="ana-chat")
    again = proxy.client.responses.create(model=MODEL, input="Bye", conversation={"id": "ana-chat"})

    assert response.conversation is not None
    assert response.conversation.id == "ana-chat"
    assert (response.id, again.id) == ("resp_ana-chat_3", "resp_ana-chat_5")
    assert proxy.path("ana-chat") == [
        ("system", SYSTEM),
        ("user", "I'm Ana."),
        ("assistant", seeded["content"]),
        ("user", "My name?"),
        ("assistant", response.output_text),
        ("user", "Bye"),
        ("assistant", again.output_text),
    ]
    assert sent_upstream(fake_upstream) == proxy.path("ana-chat")[:-1]


def test_a_reply_of_the_chat_api_is_a_response(proxy: Proxy) -> None:
    seeded = proxy.post("/seeded/chat", {"content": "hi"})

    found = proxy.client.responses.retrieve("resp_seeded_1")

    assert found.output_text == seeded["content"]
    assert found.status == "completed"
    assert found.created_at == int(seeded["created_at"])
    assert (found.instructions, found.tools, found.store) == (None, [], True)
    with pytest.raises(openai.NotFoundError):
        proxy.client.responses.retrieve("resp_seeded_0")  # the user message is no response


def test_a_response_not_stored_cannot_be_found_and_leaves_nothing(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    first = proxy.client.responses.create(model=MODEL, input="I'm Ana.")
    chat = chat_of(first)

    passed = proxy.client.responses.create(
        model=MODEL, input="My name?", previous_response_id=first.id, store=False
    )

    assert passed.store is False
    assert passed.output_text == said("My name?", 3)
    assert sent_upstream(fake_upstream) == [
        ("system", SYSTEM),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "My name?"),
    ]
    assert proxy.chats() == [chat]
    assert len(proxy.path(chat)) == 3
    with pytest.raises(openai.NotFoundError) as missing:
        proxy.client.responses.retrieve(passed.id)
    assert missing.value.body == {
        "message": f"Response with id '{passed.id}' not found.",
        "type": "invalid_request_error",
        "param": None,
        "code": "not_found",
    }
    with pytest.raises(openai.NotFoundError) as previous:
        proxy.client.responses.create(model=MODEL, input="x", previous_response_id=passed.id)
    assert previous.value.param == "previous_response_id"


def test_a_response_not_stored_continues_a_response_with_messages_length_0(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    proxy = start_proxy(start_server, proxy_env, MESSAGES_LENGTH="0")  # no history goes up
    first = proxy.client.responses.create(model=MODEL, input="I'm Ana.")

    passed = proxy.client.responses.create(
        model=MODEL, input="My name?", previous_response_id=first.id, store=False
    )

    assert passed.output_text == said("My name?", 1)  # the system prompt
    assert sent_upstream(fake_upstream) == [("system", SYSTEM), ("user", "My name?")]


@pytest.mark.parametrize("sent_back", ["item_reference", "history"])
def test_a_response_not_stored_sends_what_it_sends_back_of_its_chat_once(
    proxy: Proxy, fake_upstream: FakeUpstream, sent_back: str
) -> None:
    """`store: false` continues the path its item references (or previous_response_id) name,
    and what the input sends back of that path is matched with it, as a stored turn's is: the
    model sees each message once."""
    first = proxy.client.responses.create(model=MODEL, input="I'm Ana.")
    chat = chat_of(first)
    where: dict[str, Any] = {}
    if sent_back == "item_reference":
        back: list[Any] = [{"type": "item_reference", "id": first.output[0].id}]
    else:
        back = [{"role": "user", "content": "I'm Ana."}, *first.output]
        where["previous_response_id"] = first.id

    passed = proxy.client.responses.create(
        model=MODEL, input=[*back, {"role": "user", "content": "My name?"}], store=False, **where
    )

    assert sent_upstream(fake_upstream) == [
        ("system", SYSTEM),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "My name?"),
    ]
    assert passed.output_text == said("My name?", 3)
    assert proxy.chats() == [chat]
    assert len(proxy.path(chat)) == 3


def test_a_response_not_stored_in_a_conversation_may_leave_out_the_models_items(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    """The Vercel AI SDK with a `conversation` resends the user's messages without the model's
    (the conversation holds them); with `store: false` too, the model sees the conversation's
    path with the new message after it, not the resent messages on a branch of their own."""
    first = proxy.client.responses.create(model=MODEL, input="I'm Ana.")
    chat = chat_of(first)
    resent = [{"role": "user", "content": "I'm Ana."}, {"role": "user", "content": "My name?"}]

    proxy.client.responses.create(model=MODEL, input=resent, conversation=chat, store=False)

    assert sent_upstream(fake_upstream) == [
        ("system", SYSTEM),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "My name?"),
    ]
    assert len(proxy.path(chat)) == 3  # nothing stored: its system prompt and the first turn


@pytest.mark.parametrize("store", [True, False], ids=["stored", "not-stored"])
def test_a_leading_system_message_of_the_input_is_the_turns_system_prompt_stored_or_not(
    proxy: Proxy, fake_upstream: FakeUpstream, store: bool
) -> None:
    """The Vercel AI SDK sends its `system` as the input's first message (`store: false` for
    zero data retention): the model gets it in place of the global prompt either way, as it
    gets `instructions`, not both prompts, one after the other."""
    first = proxy.client.responses.create(model=MODEL, input="I'm Ana.")
    brief = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]

    proxy.client.responses.create(model=MODEL, input=brief, store=store)
    alone = sent_upstream(fake_upstream)
    proxy.client.responses.create(model=MODEL, input=brief, instructions="Be exact.", store=store)
    instructed = sent_upstream(fake_upstream)
    proxy.client.responses.create(
        model=MODEL, input=brief, previous_response_id=first.id, store=store
    )
    continued = sent_upstream(fake_upstream)

    assert alone == [("system", "Be brief."), ("user", "Hi")]
    assert instructed == [("system", "Be exact.\n\nBe brief."), ("user", "Hi")]
    assert continued == [
        ("system", "Be brief."),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "Hi"),
    ]


@pytest.mark.parametrize("names", ["the user message", "no item", "no chat"])
def test_a_previous_response_id_that_names_no_reply_is_not_found_and_stores_nothing(
    proxy: Proxy, fake_upstream: FakeUpstream, names: str
) -> None:
    first = proxy.client.responses.create(model=MODEL, input="I'm Ana.")
    chat = chat_of(first)
    previous = {
        "the user message": f"resp_{chat}_0",
        "no item": f"resp_{chat}_7",
        "no chat": "resp_chain-nowhere_1",
    }[names]
    calls = len(fake_upstream.chat_requests())

    with pytest.raises(openai.NotFoundError) as missing:
        proxy.client.responses.create(model=MODEL, input="x", previous_response_id=previous)

    assert missing.value.param == "previous_response_id"
    assert missing.value.body["message"] == f"Previous response with id '{previous}' not found."
    assert len(fake_upstream.chat_requests()) == calls  # the model was not asked
    assert proxy.chats() == [chat]
    assert len(proxy.path(chat)) == 3  # system, the first turn's two messages


def test_another_tenants_response_does_not_exist(proxy: Proxy) -> None:
    response = proxy.client.responses.create(model=MODEL, input="mine")

    with pytest.raises(openai.NotFoundError):
        proxy.other.responses.retrieve(response.id)
    with pytest.raises(openai.NotFoundError):
        proxy.other.responses.create(model=MODEL, input="x", previous_response_id=response.id)
    with pytest.raises(openai.NotFoundError):
        proxy.other.responses.create(model=MODEL, input="x", conversation=chat_of(response))
    assert proxy.client.responses.retrieve(response.id).id == response.id


@pytest.mark.parametrize("chained", ["fresh", "previous", "resent"])
def test_an_idempotency_key_replays_the_same_response(
    proxy: Proxy, fake_upstream: FakeUpstream, chained: str
) -> None:
    """The same request again: alone, after a previous response, or resending the history
    (as the Vercel AI SDK does: the retry finds the chat's leaf below the reply it names, the
    first attempt's own reply, and is still the same request)."""
    earlier = None if chained == "fresh" else proxy.client.responses.create(model=MODEL, input="A")
    previous = earlier.id if earlier and chained == "previous" else None

    def ask(text: str) -> Any:
        if earlier is None or chained != "resent":
            return text
        return [user("A"), {"type": "item_reference", "id": earlier.output[0].id}, user(text)]

    calls = len(fake_upstream.chat_requests())
    create = proxy.client.responses.with_raw_response.create
    key = {"Idempotency-Key": f"idem-{chained}"}

    first = create(model=MODEL, input=ask("hi"), previous_response_id=previous, extra_headers=key)
    again = create(model=MODEL, input=ask("hi"), previous_response_id=previous, extra_headers=key)

    assert again.headers.get("Idempotent-Replayed") == "true"
    assert first.headers.get("Idempotent-Replayed") is None
    assert again.parse().model_dump() == first.parse().model_dump()
    assert len(fake_upstream.chat_requests()) == calls + 1
    assert len(proxy.path(chat_of(first.parse()))) == (3 if earlier is None else 5)
    with pytest.raises(openai.UnprocessableEntityError):
        create(model=MODEL, input=ask("another"), previous_response_id=previous, extra_headers=key)


def test_a_history_over_the_context_is_refused_unless_truncation_is_auto(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    proxy = start_proxy(start_server, proxy_env, MAX_TOKENS="50", CONTEXT_TOKENS="200")
    first = proxy.client.responses.create(model=MODEL, input="x" * 300)

    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.responses.create(model=MODEL, input="y" * 300, previous_response_id=first.id)
    cut = proxy.client.responses.create(
        model=MODEL, input="y" * 300, previous_response_id=first.id, truncation="auto"
    )

    assert (refused.value.code, refused.value.param) == ("context_length_exceeded", "input")
    assert cut.truncation == "auto"
    sent = sent_upstream(fake_upstream)
    assert (sent[0], sent[-1]) == (("system", SYSTEM), ("user", "y" * 300))
    assert ("user", "x" * 300) not in sent  # the oldest was left out
    assert len(proxy.path(chat_of(first))) == 5  # the refused turn stored nothing


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
        ({"input": "hi", "conversation": "c1", "previous_response_id": "resp_c1_1"}, None),
        (
            {"input": [{"type": "function_call_output", "call_id": "call_9", "output": "1"}]},
            "input[0].call_id",
        ),
        ({"input": [{"type": "item_reference", "id": "msg_nowhere_1"}]}, "input[0].id"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "tools[0].type"),
        (
            {
                "input": [
                    {"role": "user", "content": "Look it up."},
                    {"role": "assistant", "content": "Looking."},
                    {"type": "function_call", "call_id": "c1", "name": "f", "arguments": LONG},
                    {"type": "function_call_output", "call_id": "c1", "output": "1"},
                ]
            },
            "input[2].arguments",
        ),
        (
            {
                "input": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "Read this."},
                            {"type": "input_file", "file_data": LONG, "filename": "a.txt"},
                        ],
                    }
                ]
            },
            "input[0].content[1].file_data",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Look it up."},
                    {"type": "function_call", "call_id": "c" * 65, "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c" * 65, "output": "1"},
                ]
            },
            "input[1].call_id",
        ),
        (
            {
                "input": [
                    {"role": "user", "content": "Look it up."},
                    {"type": "function_call", "call_id": "c" * 65, "name": "f", "arguments": "{}"},
                    {"type": "function_call_output", "call_id": "c" * 65, "output": "1"},
                ],
                "store": False,
            },
            "input[1].call_id",
        ),
    ],
    ids=[
        "item-type",
        "conversation-and-previous",
        "unknown-call",
        "reference",
        "tool",
        "long-arguments",
        "long-file",
        "long-call-id",
        "long-call-id-not-stored",
    ],
)
def test_a_request_the_proxy_cannot_serve_is_refused_and_nothing_is_stored(
    proxy: Proxy, body: dict[str, Any], param: str | None
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.responses.create(model=MODEL, **body)

    if param is not None:
        assert refused.value.param == param
    if param is not None and param.endswith(("arguments", "file_data")):
        assert f"{param}: at most 32000 characters (MAX_CONTENT_CHARS)" in refused.value.message
    if "c" * 65 in str(body):
        assert f"{param}: at most 64 characters, as OpenAI's API takes it" in refused.value.message
    if "conversation" in body:
        assert refused.value.param == "conversation"
    assert proxy.chats() == []


def test_a_feature_the_proxy_refuses_may_be_sent_as_null_as_the_sdks_types_allow(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    """The SDK types `prompt` and `moderation` as optional (None sends null): no prompt, no
    moderation, which the proxy serves."""
    response = proxy.client.responses.create(model=MODEL, input="Hi", prompt=None, moderation=None)

    assert (response.status, response.output_text) == ("completed", said("Hi", 1))
    assert sent_upstream(fake_upstream) == [("system", SYSTEM), ("user", "Hi")]
    assert proxy.path(chat_of(response))[1:] == [("user", "Hi"), ("assistant", said("Hi", 1))]


@pytest.mark.parametrize(
    ("sent", "param", "message"),
    [
        (
            [
                {"role": "user", "content": "Hi"},
                {"type": "reasoning", "id": "rs_1", "summary": []},  # left out: no message
                {"type": "function_call_output", "call_id": "call_9", "output": "1"},
            ],
            "input[2].call_id",
            "input[2].call_id: 'call_9' answers no pending tool call",
        ),
        (
            [
                {"role": "user", "content": "Look it up."},
                {"type": "function_call", "call_id": "c1", "name": "look", "arguments": "{}"},
                {"type": "function_call", "call_id": "c2", "name": "look", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "one"},
                {"role": "user", "content": "And?"},
            ],
            "input[4]",
            "input[4]: no result yet for 'c2' (made in input[1])",
        ),
    ],
    ids=["answers-no-call", "call-left-unanswered"],
)
def test_a_tool_result_out_of_place_is_refused_naming_its_input_item(
    proxy: Proxy, sent: list[dict[str, Any]], param: str, message: str
) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        proxy.client.responses.create(model=MODEL, instructions="Be brief.", input=sent)  # type: ignore[arg-type]

    assert refused.value.param == param
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["message"].startswith(message)
    assert "messages[" not in refused.value.body["message"]
    assert proxy.chats() == []


def test_input_items_page_through_a_turns_input_in_either_order(proxy: Proxy) -> None:
    first = proxy.client.responses.create(model=MODEL, input="earlier")
    texts = ["a", "b", "c", "d", "e"]
    response = proxy.client.responses.create(
        model=MODEL,
        input=[user(text) for text in texts],
        instructions="Not an item.",
        previous_response_id=first.id,
    )
    items = proxy.client.responses.input_items

    page = items.list(response.id, limit=2)
    newest_first = list(items.list(response.id, limit=2))  # the SDK follows `after`
    oldest_first = list(items.list(response.id, order="asc", limit=3))

    chat = chat_of(response)
    ids = [f"msg_{chat}_{n}" for n in range(2, 7)]
    assert ([item.id for item in page.data], page.has_more) == (ids[::-1][:2], True)
    assert [item.id for item in newest_first] == ids[::-1]
    assert [item.id for item in oldest_first] == ids
    assert [(i.type, i.role, i.content[0].text) for i in oldest_first] == [
        ("message", "user", text) for text in texts
    ]
    last = proxy.get(f"/v1/responses/{response.id}/input_items?after={ids[1]}&order=asc")
    assert {k: v for k, v in last.items() if k != "data"} == {
        "object": "list",
        "first_id": ids[2],
        "last_id": ids[4],
        "has_more": False,
    }


def test_the_input_items_of_tool_results_and_of_a_chat_api_turn(proxy: Proxy) -> None:
    tools = [{"type": "function", "name": "get_time", "parameters": {"type": "object"}}]
    called = proxy.client.responses.create(model=MODEL, input="Call get_time.", tools=tools)
    call = called.output[0]
    assert call.type == "function_call"
    output = {"type": "function_call_output", "call_id": call.call_id, "output": "noon"}
    answered = proxy.client.responses.create(
        model=MODEL, input=[output], previous_response_id=called.id, tools=tools
    )
    proxy.post("/seeded/chat", {"content": "hi"})

    (result,) = proxy.client.responses.input_items.list(answered.id)
    (seeded,) = proxy.client.responses.input_items.list("resp_seeded_1")

    assert (result.type, result.call_id, result.output) == (
        "function_call_output",
        call.call_id,
        "noon",
    )
    assert (seeded.id, seeded.type) == ("msg_seeded_0", "message")


def test_input_items_of_no_response_or_after_no_item_are_refused(proxy: Proxy) -> None:
    response = proxy.client.responses.create(model=MODEL, input="hi")
    items = proxy.client.responses.input_items

    with pytest.raises(openai.NotFoundError):
        items.list("resp_nowhere_1")
    with pytest.raises(openai.NotFoundError):
        proxy.other.responses.input_items.list(response.id)
    with pytest.raises(openai.BadRequestError) as after:
        items.list(response.id, after="msg_nowhere_0")
    assert after.value.param == "after"
    with pytest.raises(openai.BadRequestError):
        items.list(response.id, limit=101)


def test_deleting_a_response_removes_its_turn_and_what_follows_moves_up(
    proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    first = proxy.client.responses.create(model=MODEL, input="I'm Ana.")
    second = proxy.client.responses.create(
        model=MODEL, input="I like tea.", previous_response_id=first.id
    )
    third = proxy.client.responses.create(
        model=MODEL, input="And you?", previous_response_id=second.id
    )
    chat = chat_of(first)

    assert proxy.client.responses.delete(second.id) is None  # the SDK returns nothing

    with pytest.raises(openai.NotFoundError):
        proxy.client.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError) as previous:
        proxy.client.responses.create(model=MODEL, input="x", previous_response_id=second.id)
    assert previous.value.param == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        proxy.client.responses.delete(second.id)  # only once
    # The third turn now follows the first: the second turn's input and reply are gone.
    assert proxy.path(chat) == [
        ("system", SYSTEM),
        ("user", "I'm Ana."),
        ("assistant", first.output_text),
        ("user", "And you?"),
        ("assistant", third.output_text),
    ]
    after = proxy.client.responses.create(
        model=MODEL, input="Still there?", previous_response_id=third.id
    )
    assert "I like tea." not in [
        m.get("content") for m in fake_upstream.chat_requests()[-1]["messages"]
    ]
    assert proxy.client.responses.retrieve(after.id).previous_response_id == third.id


def test_another_tenant_cannot_delete_a_response(proxy: Proxy) -> None:
    response = proxy.client.responses.create(model=MODEL, input="mine")

    with pytest.raises(openai.NotFoundError):
        proxy.other.responses.delete(response.id)
    assert proxy.client.responses.retrieve(response.id).id == response.id


def test_deleting_a_regenerated_reply_leaves_the_question_its_sibling_answers(
    proxy: Proxy,
) -> None:
    # A regeneration (the seed route's, or a resent history ending on a stored user message)
    # stores no input: its reply answers a question an earlier turn stored.
    proxy.post("/regen/chat", {"content": "Name a colour"})  # user 0, reply 1
    proxy.post("/regen/chat", {"parent": 0})  # reply 2, a sibling of reply 1

    assert list(proxy.client.responses.input_items.list("resp_regen_2")) == []
    proxy.client.responses.delete("resp_regen_2")

    # The first reply still answers its question.
    path = proxy.get("/regen/chat?leaf=1")[1:]  # after the system prompt
    assert [(m["id"], m["parent"]) for m in path] == [(0, None), (1, 0)]


@pytest.mark.parametrize("length", ["20", "0"])  # MESSAGES_LENGTH: 0 reads no history
def test_a_chat_api_turn_after_messages_another_request_stored_has_only_its_own_input(
    start_server: StartServer, proxy_env: dict[str, str], length: str
) -> None:
    proxy = start_proxy(start_server, proxy_env, MESSAGES_LENGTH=length)
    # The conversation's first message is stored by the Conversations API, not by a turn.
    asked = proxy.client.conversations.create(items=[user("Q")]).id  # message 0
    proxy.post(f"/{asked}/chat", {"content": "Q2"})  # the turn stores 1, its reply 2
    again = proxy.client.conversations.create(items=[user("Q")]).id  # message 0
    proxy.post(f"/{again}/chat", {"parent": 0})  # a reply to it (1): the turn stores no input

    assert [i.id for i in proxy.client.responses.input_items.list(f"resp_{asked}_2")] == [
        f"msg_{asked}_1"
    ]
    assert list(proxy.client.responses.input_items.list(f"resp_{again}_1")) == []
    proxy.client.responses.delete(f"resp_{asked}_2")
    proxy.client.responses.delete(f"resp_{again}_1")

    # What the Conversations API stored stays.
    assert proxy.path(asked) == proxy.path(again) == [("system", SYSTEM), ("user", "Q")]


def long_call(fake_upstream: FakeUpstream, name: str = "get_weather") -> str:
    """Have the model's next reply call `name` with an id over OpenAI's 64 characters, as
    another server's model may; return the id."""
    return script_call(fake_upstream, "call_" + "7" * 80, name)


@pytest.mark.parametrize("answer", ["previous_response_id", "conversation item"])
def test_a_call_the_model_gave_a_long_id_is_answered_by_that_id(
    proxy: Proxy, fake_upstream: FakeUpstream, answer: str
) -> None:
    """OpenAI's API takes a `call_id` of up to 64 characters; another server's model may give a
    longer one, which the chat holds, and its output names it (as it must: a call waiting)."""
    call_id = long_call(fake_upstream)
    conversation = proxy.client.conversations.create()
    where: Any = {"conversation": conversation.id} if answer == "conversation item" else {}
    called = proxy.client.responses.create(
        model=MODEL, input="Weather in Oslo?", tools=[WEATHER], **where
    )
    output = {"type": "function_call_output", "call_id": call_id, "output": "Sunny"}

    if answer == "conversation item":
        proxy.client.conversations.items.create(conversation.id, items=[output])  # type: ignore[list-item]
        done = proxy.client.responses.create(model=MODEL, input="And?", **where)
    else:
        done = proxy.client.responses.create(
            model=MODEL,
            input=[output],
            previous_response_id=called.id,  # type: ignore[list-item]
        )

    assert [item.call_id for item in called.output] == [call_id]  # type: ignore[union-attr]
    assert done.status == "completed"
    tool = next(m for m in fake_upstream.chat_requests()[-1]["messages"] if m["role"] == "tool")
    assert tool == {"role": "tool", "tool_call_id": call_id, "content": "Sunny"}


@pytest.mark.parametrize("name", ["get_weather", "f" * 65], ids=["long-id", "long-id-and-name"])
@pytest.mark.parametrize("resent", ["with its ids", "previous_response_id", "not stored"])
def test_a_call_the_model_gave_a_long_id_may_be_sent_back_with_the_whole_input(
    proxy: Proxy, fake_upstream: FakeUpstream, resent: str, name: str
) -> None:
    """A client that resends its whole input (`input += response.output`, the Vercel AI SDK)
    sends the model's call back as a `function_call` item: it matches the call the chat holds,
    so its id and name are not the client's and are not held to 64 characters (a new call's
    are)."""
    call_id = long_call(fake_upstream, name)
    history: list[Any] = [{"role": "user", "content": "Weather in Oslo?"}]
    called = proxy.client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    history += [*called.output, {"type": "function_call_output", "call_id": call_id, "output": "1"}]
    where: dict[str, Any] = {}
    if resent != "with its ids":
        where["previous_response_id"] = called.id
    if resent == "not stored":
        where["store"] = False

    done = proxy.client.responses.create(model=MODEL, input=history, tools=[WEATHER], **where)

    assert done.status == "completed"
    chat = chat_of(called)
    assert proxy.chats() == [chat]
    sent = fake_upstream.chat_requests()[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool"]
    assert sent[2]["tool_calls"][0]["id"] == sent[3]["tool_call_id"] == call_id
    assert sent[2]["tool_calls"][0]["function"]["name"] == name
    # The call is stored once, its result and the reply after it (none when not stored).
    assert len(proxy.path(chat)) == (3 if resent == "not stored" else 5)


def test_a_response_keeps_of_its_settings_what_the_proxy_understands(proxy: Proxy) -> None:
    """Fields the proxy does not know inside `tools`, `tool_choice`, `text` and `reasoning` are
    accepted (OpenAI adds such fields: a function tool's `defer_loading`, `reasoning.context`)
    but neither sent nor kept with the reply: the Response, made or found again, echoes what
    the turn used; a tool_choice's allowed tools once each."""
    bulk = "x" * 10_000
    schema = {"type": "object", "properties": {}}
    created = proxy.client.responses.with_raw_response.create(
        model=MODEL,
        input="Hi",
        tools=[{**WEATHER, "defer_loading": False, "junk": bulk}],  # type: ignore[list-item]
        tool_choice={
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "get_weather", "junk": bulk}] * 50,
            "junk": bulk,
        },
        text={
            "format": {"type": "json_schema", "name": "out", "schema": schema, "junk": bulk},
            "junk": bulk,
        },
        reasoning={"effort": "low", "context": "auto", "junk": bulk},  # type: ignore[typeddict-unknown-key]
    )

    made = created.http_response.json()
    found = proxy.get(f"/v1/responses/{made['id']}")
    for shown in (made, found):
        assert shown["tools"] == [{**WEATHER, "type": "function"}]
        assert shown["tool_choice"] == {
            "type": "allowed_tools",
            "mode": "auto",
            "tools": [{"type": "function", "name": "get_weather"}],
        }
        assert shown["text"] == {"format": {"type": "json_schema", "name": "out", "schema": schema}}
        assert shown["reasoning"] == {"effort": "low", "summary": None}

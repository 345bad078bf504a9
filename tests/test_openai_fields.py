"""Everything the client sends reaches the model, and its answer comes back whole: the official
openai SDK against the real server, with and without a chat id, over the fake upstream (whose
rules for JSON and choices are `chatproxy/upstream/dev_answers.py`'s). Tool calls are
`test_openai_tools.py`'s."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from harness.fake_upstream import FakeUpstream, Fault
from harness.server_process import StartServer, server_env
from tests.conftest import MakeClient
from tests.test_openai_tools import MODEL, TIME, WEATHER, Proxy, ask, stored

# Fields the proxy does not own, each as the client sends it: the model must get them unchanged.
PASSED: dict[str, Any] = {
    "tools": [WEATHER, TIME],
    "tool_choice": "auto",
    "parallel_tool_calls": True,
    "response_format": {"type": "json_object"},
    "seed": 7,
    "top_p": 0.5,
    "stop": ["zzz", "yyy"],
    "presence_penalty": 0.25,
    "frequency_penalty": -0.5,
    "logprobs": True,
    "top_logprobs": 2,
    "user": "user-42",
    "reasoning_effort": "low",
    "logit_bias": {"50256": -100},
    "service_tier": "auto",
}
FUTURE = {"a_field_from_the_future": {"nested": [1, None, "x", {"deep": False}]}}


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
@pytest.mark.parametrize("chat_by", ["header", "metadata", None])
def test_every_field_the_proxy_does_not_own_reaches_the_model_unchanged(
    openai_proxy: Proxy, fake_upstream: FakeUpstream, chat_by: str | None, stream: bool
) -> None:
    client, _ = openai_proxy
    headers = {"X-Chat-Id": "fields"} if chat_by == "header" else {}
    metadata = {"team": "blue", **({"chat_id": "fields"} if chat_by == "metadata" else {})}

    answer = client.chat.completions.create(
        model=MODEL,
        messages=ask("What is the weather?"),
        metadata=metadata,
        stream=stream,
        max_completion_tokens=50,
        extra_headers=headers,
        extra_body=FUTURE,
        **PASSED,
    )
    if stream:
        list(answer)  # type: ignore[arg-type]

    sent = fake_upstream.chat_requests()[-1]
    assert {name: sent.get(name) for name in PASSED} == PASSED
    assert sent["a_field_from_the_future"] == FUTURE["a_field_from_the_future"]
    assert sent["metadata"] == {"team": "blue"}  # the chat id is the proxy's
    # The cap under the name the client gave it (reasoning models refuse `max_tokens`).
    assert (sent["model"], sent["max_completion_tokens"]) == (MODEL, 50)
    assert "max_tokens" not in sent
    assert sent.get("stream", False) is stream
    assert sent["messages"][-1] == ask("What is the weather?")[0]
    if chat_by is not None:
        assert sent["messages"][0] == {"role": "system", "content": "Be kind."}


def test_logprobs_and_the_upstreams_answer_reach_the_client(openai_proxy: Proxy) -> None:
    client, url = openai_proxy

    completion = client.chat.completions.create(
        model=MODEL,
        messages=ask("Hello there"),
        logprobs=True,
        top_logprobs=3,
        extra_headers={"X-Chat-Id": "logprobs"},
    )

    choice = completion.choices[0]
    assert choice.logprobs is not None
    entries = choice.logprobs.content or []
    assert "".join(e.token for e in entries) == choice.message.content
    assert all(len(e.top_logprobs) == 3 for e in entries)
    assert completion.id.startswith("chatcmpl-dev-")  # the upstream's own
    reply = stored(url, "logprobs")[-1]
    assert (reply["content"], reply["finish_reason"]) == (choice.message.content, "stop")


class Weather(BaseModel):
    city: str
    degrees: int
    sunny: bool


@pytest.mark.parametrize("chat_id", ["json", None])
def test_response_format_with_a_json_schema_parses(
    openai_proxy: Proxy, fake_upstream: FakeUpstream, chat_id: str | None
) -> None:
    client, url = openai_proxy
    headers = {"X-Chat-Id": chat_id} if chat_id else {}

    completion = client.chat.completions.parse(
        model=MODEL,
        messages=ask("The weather, please."),
        response_format=Weather,
        extra_headers=headers,
    )

    assert completion.choices[0].message.parsed == Weather(city="dev", degrees=1, sunny=True)
    sent = fake_upstream.chat_requests()[-1]["response_format"]
    assert sent["type"] == "json_schema"
    assert sent["json_schema"]["name"] == "Weather"
    if chat_id:
        assert json.loads(stored(url, chat_id)[-1]["content"])["city"] == "dev"


def test_more_than_one_choice_is_refused_with_a_chat_id_and_nothing_is_stored(
    openai_proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    client, url = openai_proxy

    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as refused:
            client.chat.completions.create(
                model=MODEL,
                messages=ask("hi"),
                n=2,
                stream=stream,
                extra_headers={"X-Chat-Id": "n"},
            )
        error = refused.value.body
        assert isinstance(error, dict)
        assert (error["type"], error["param"]) == ("invalid_request_error", "n")
        assert "one reply" in error["message"]

    assert fake_upstream.chat_requests() == []
    assert stored(url, "n") == []


def test_without_a_chat_id_every_choice_comes_back(
    openai_proxy: Proxy, fake_upstream: FakeUpstream
) -> None:
    client, _ = openai_proxy

    completion = client.chat.completions.create(model=MODEL, messages=ask("hi"), n=2)
    chunks = list(client.chat.completions.create(model=MODEL, messages=ask("hi"), n=2, stream=True))

    texts = [c.message.content or "" for c in completion.choices]
    assert [c.index for c in completion.choices] == [0, 1]
    assert texts[1] == texts[0] + " (choice 2)"
    streamed = {0: "", 1: ""}
    for chunk in chunks:
        for choice in chunk.choices:
            streamed[choice.index] += choice.delta.content or ""
    assert list(streamed.values()) == texts
    assert [body["n"] for body in fake_upstream.chat_requests()] == [2, 2]


def test_a_metadata_that_only_names_the_chat_is_not_sent(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client()
    body = {"messages": ask("hi"), "metadata": {"chat_id": "meta"}, "seed": 1}

    answer = client.post("/v1/chat/completions", json=body)

    assert answer.status_code == 200
    assert client.get("/meta/chat").get_json()[-1]["role"] == "assistant"
    sent = fake_upstream.chat_requests()[-1]
    assert "metadata" not in sent
    assert sent["seed"] == 1


def test_an_idempotency_key_sent_again_with_other_fields_is_refused(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client()
    headers = {"X-Chat-Id": "idem", "Idempotency-Key": "k1"}

    first = client.post(
        "/v1/chat/completions", json={"messages": ask("hi"), "seed": 1}, headers=headers
    )
    same = client.post(
        "/v1/chat/completions", json={"messages": ask("hi"), "seed": 1}, headers=headers
    )
    other = client.post(
        "/v1/chat/completions", json={"messages": ask("hi"), "seed": 2}, headers=headers
    )

    assert (first.status_code, same.status_code, other.status_code) == (200, 200, 422)
    assert same.headers["Idempotent-Replayed"] == "true"
    assert len(fake_upstream.chat_requests()) == 1


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
def test_the_cap_goes_under_the_clients_name_and_within_max_tokens(
    make_client: MakeClient, fake_upstream: FakeUpstream, name: str
) -> None:
    client = make_client(MAX_TOKENS="100")
    body = {"model": MODEL, "messages": ask("Hi"), name: 80}

    answer = client.post("/v1/chat/completions", json=body, headers={"X-Chat-Id": "cap"})
    too_many = client.post("/v1/chat/completions", json={**body, name: 101})

    assert answer.status_code == 200, answer.get_json()
    sent = fake_upstream.chat_requests()[-1]
    other = {"max_tokens", "max_completion_tokens"} - {name}
    assert (sent[name], other & set(sent)) == (80, set())
    assert too_many.status_code == 400
    assert (too_many.get_json()["error"]["param"], too_many.get_json()["error"]["message"]) == (
        name,
        f"{name}: at most 100 (MAX_TOKENS)",
    )
    assert len(fake_upstream.chat_requests()) == 1


def test_a_responses_cap_over_max_tokens_is_refused_by_its_own_name(
    make_client: MakeClient, fake_upstream: FakeUpstream
) -> None:
    client = make_client(MAX_TOKENS="100")
    body = {"model": MODEL, "input": "Hi", "max_output_tokens": 101}

    answer = client.post("/v1/responses", json=body)

    assert answer.status_code == 400
    assert answer.get_json()["error"]["param"] == "max_output_tokens"
    assert answer.get_json()["error"]["message"].startswith("max_output_tokens: at most 100")
    assert fake_upstream.chat_requests() == []


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("/v1/chat/completions", {"messages": ask("Hi"), "reasoning_effort": "low"}),
        ("/v1/responses", {"input": "Hi", "reasoning": {"effort": "low"}}),
    ],
)
def test_a_reasoning_request_without_a_cap_sends_the_default_as_reasoning_models_take_it(
    make_client: MakeClient, fake_upstream: FakeUpstream, route: str, body: dict[str, Any]
) -> None:
    client = make_client(MAX_TOKENS="100")

    answer = client.post(route, json={"model": MODEL, **body}, headers={"X-Chat-Id": "think"})

    assert answer.status_code == 200, answer.get_json()
    sent = fake_upstream.chat_requests()[-1]
    assert (sent["reasoning_effort"], sent["max_completion_tokens"]) == ("low", 100)
    assert "max_tokens" not in sent


# OpenAI's answer to `max_tokens` sent to one of its reasoning models (gpt-5, o3, o4-mini, ...).
MAX_TOKENS_REFUSED = Fault(
    400,
    {
        "error": {
            "message": "Unsupported parameter: 'max_tokens' is not supported with this model."
            " Use 'max_completion_tokens' instead.",
            "type": "invalid_request_error",
            "param": "max_tokens",
            "code": "unsupported_parameter",
        }
    },
)


def test_a_model_that_refuses_max_tokens_gets_the_cap_as_max_completion_tokens(
    start_server: StartServer, proxy_env: dict[str, str], fake_upstream: FakeUpstream
) -> None:
    """Clients that name no cap (the Responses API without max_output_tokens, LangChain, llm)
    get the proxy's default, MAX_TOKENS: a model that refuses it as `max_tokens` is sent it as
    `max_completion_tokens`, at once and on every later call; other models as before."""
    env = {**proxy_env, "PROXY_API_KEYS": "sdk=sdk-key-0123456789abcdef", "MAX_TOKENS": "90"}
    server = start_server(server_env(**env, ALLOWED_MODELS="gpt-5-mini"))
    client = openai.OpenAI(
        api_key="sdk-key-0123456789abcdef", base_url=f"{server.url}/v1", max_retries=0
    )
    fake_upstream.script(MAX_TOKENS_REFUSED)

    first = client.responses.create(model="gpt-5-mini", input="Hi")
    streamed = client.chat.completions.create(
        model="gpt-5-mini", messages=ask("Again"), stream=True, extra_headers={"X-Chat-Id": "r"}
    )
    reply = "".join(chunk.choices[0].delta.content or "" for chunk in streamed if chunk.choices)
    other = client.chat.completions.create(model=MODEL, messages=ask("Hi"))

    assert first.status == "completed"
    assert first.output_text.startswith("[dev upstream] You said: Hi.")
    assert reply.startswith("[dev upstream] You said: Again.")
    assert other.choices[0].message.content
    sent = fake_upstream.chat_requests()
    caps = [(r["model"], r.get("max_tokens"), r.get("max_completion_tokens")) for r in sent]
    assert caps == [
        ("gpt-5-mini", 90, None),  # refused
        ("gpt-5-mini", None, 90),
        ("gpt-5-mini", None, 90),
        (MODEL, 90, None),
    ]
